//! Starting stages against a test Kafka, the resources most tests use, and posting events.

use std::time::Duration;

use hookline::pipeline::{Pipeline, PipelineConfig};
use hookline::resource_file::{self, ResourceFile};
use hookline_runtime::KafkaSettings;
use tokio_util::sync::CancellationToken;

use super::{TestReceiver, eventually};

/// The bearer token of the `app` source.
pub const TOKEN: &str = "test-token";

/// Resources: a source `app`, a destination `crm` at the receiver, and a trigger `signups` with
/// a condition, a body template and a header template.
pub fn resources(receiver: &TestReceiver) -> ResourceFile {
    resources_with(receiver, "")
}

/// [`resources`] with more settings of the `crm` destination, as TOML lines (`secrets = [...]`).
pub fn resources_with(receiver: &TestReceiver, destination: &str) -> ResourceFile {
    resources_at(&receiver.url("/hooks/crm"), destination)
}

/// [`resources_with`] with the `crm` destination at `url`.
pub fn resources_at(url: &str, destination: &str) -> ResourceFile {
    ResourceFile::parse(&format!(
        r#"
[[sources]]
id = "app"
auth = [{{ type = "bearer", tokens = ["{TOKEN}"] }}]
keep_headers = ["X-Env"]

[[destinations]]
id = "crm"
url = "{url}"
headers = {{ "x-static" = "fixed" }}
{destination}

[[triggers]]
id = "signups"
name = "New sign-ups"
when = {{ sources = ["app"] }}
if = 'payload.type == "user.signed_up"'

[[triggers.actions]]
destination = "crm"
body = '{{"email": {{{{ payload.user.email }}}}, "seq": {{{{ payload.seq }}}}, "event": {{{{ event.id }}}}, "env": {{{{ event.headers["x-env"] | default("none") }}}}, "trigger": {{{{ trigger.name }}}}}}'
headers = {{ "x-rendered" = "{{{{ payload.type }}}}" }}
"#,
    ))
    .unwrap()
}

/// The admin token of the control API in tests.
pub const CONTROL_TOKEN: &str = "test-admin-token";
/// The read-only token of the control API in tests.
pub const CONTROL_READ_TOKEN: &str = "test-read-token";

/// How long stages get to stop unless a test says otherwise.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Which stages to start, with their settings.
#[derive(Clone)]
pub struct Stages {
    ingest: Option<hookline_ingest::Config>,
    processor: Option<hookline_processor::Config>,
    dispatcher: Option<hookline_dispatcher::Config>,
    control: Option<hookline_control::Config>,
    shutdown_deadline: Duration,
}

impl Stages {
    /// Ingest settings with rate limits out of the tests' way.
    pub fn all_ingest() -> hookline_ingest::Config {
        hookline_ingest::Config {
            limits: hookline_ingest::limits::LimitSettings {
                source_per_minute: 1_000_000,
                org_per_minute: 1_000_000,
            },
            ..hookline_ingest::Config::default()
        }
    }

    /// Ingest, processor and dispatcher, with rate limits out of the tests' way.
    pub fn all() -> Self {
        Self {
            ingest: Some(Self::all_ingest()),
            processor: Some(hookline_processor::Config::default()),
            dispatcher: Some(hookline_dispatcher::Config::default()),
            control: None,
            shutdown_deadline: SHUTDOWN_DEADLINE,
        }
    }

    /// Only ingest.
    pub fn ingest_only() -> Self {
        Self {
            processor: None,
            dispatcher: None,
            ..Self::all()
        }
    }

    /// Only the processor.
    pub fn processor_only() -> Self {
        Self {
            ingest: None,
            dispatcher: None,
            ..Self::all()
        }
    }

    /// Only a dispatcher with these settings.
    pub fn dispatcher_only(config: hookline_dispatcher::Config) -> Self {
        Self {
            ingest: None,
            processor: None,
            dispatcher: Some(config),
            control: None,
            shutdown_deadline: SHUTDOWN_DEADLINE,
        }
    }

    /// With the control API too, on a free port, with [`CONTROL_TOKEN`] and
    /// [`CONTROL_READ_TOKEN`]; its inbound URLs point at this pipeline's ingest.
    pub fn with_control(mut self) -> Self {
        self.control = Some(hookline_control::Config {
            tokens: vec![CONTROL_TOKEN.to_owned()],
            read_tokens: vec![CONTROL_READ_TOKEN.to_owned()],
            store_memory: true,
            ..hookline_control::Config::default()
        });
        self
    }

    /// With control's store in the file at `path` (kept across restarts) instead of memory.
    pub fn control_store_at(mut self, path: &std::path::Path) -> Self {
        if let Some(control) = &mut self.control {
            control.store_memory = false;
            control.store_path = Some(path.to_owned());
        }
        self
    }

    /// With control's store in this PostgreSQL database and schema instead of memory.
    pub fn control_store_in_postgres(mut self, url: &str, schema: &str) -> Self {
        if let Some(control) = &mut self.control {
            control.store_memory = false;
            control.store_postgres = Some(url.to_owned());
            control.store_postgres_schema = schema.to_owned();
        }
        self
    }

    /// Only ingest and the control API: enough to manage sources and post to them.
    pub fn ingest_and_control() -> Self {
        Self {
            ingest: Some(Self::all_ingest()),
            processor: None,
            dispatcher: None,
            control: None,
            shutdown_deadline: SHUTDOWN_DEADLINE,
        }
        .with_control()
    }

    /// Only the control API (with the tokens of [`Self::with_control`]).
    pub fn control_only() -> Self {
        Self {
            ingest: None,
            processor: None,
            dispatcher: None,
            control: None,
            shutdown_deadline: SHUTDOWN_DEADLINE,
        }
        .with_control()
    }

    /// Without the processor.
    pub fn without_processor(mut self) -> Self {
        self.processor = None;
        self
    }

    /// With these ingest settings.
    pub fn ingest(mut self, config: hookline_ingest::Config) -> Self {
        self.ingest = Some(config);
        self
    }

    /// With this shutdown deadline (half of it is what a delivery in progress gets to finish
    /// when the dispatcher stops or its partition is revoked).
    pub fn shutdown_deadline(mut self, deadline: Duration) -> Self {
        self.shutdown_deadline = deadline;
        self
    }

    /// With these processor settings.
    pub fn processor(mut self, config: hookline_processor::Config) -> Self {
        self.processor = Some(config);
        self
    }

    /// With these dispatcher settings.
    pub fn dispatcher(mut self, config: hookline_dispatcher::Config) -> Self {
        self.dispatcher = Some(config);
        self
    }

    /// Starts the stages and waits until they are ready.
    pub async fn start(self, settings: &KafkaSettings) -> Pipeline {
        let mut config = PipelineConfig::new(settings.clone());
        config.shutdown_deadline = self.shutdown_deadline;
        config.ingest = self.ingest;
        config.processor = self.processor;
        config.control = self.control;
        config.dispatcher = self.dispatcher.map(|mut dispatcher| {
            // The receivers are on loopback, which the SSRF guard refuses unless allowed.
            if dispatcher.allow_cidrs.is_empty() {
                dispatcher.allow_cidrs = hookline_dispatcher::config::loopback();
            }
            dispatcher
        });
        let pipeline = Pipeline::start(config, CancellationToken::new())
            .await
            .unwrap();
        pipeline.ready().await.unwrap();
        pipeline
    }
}

/// Applies `file` and waits until `pipeline` sees every resource in it.
pub async fn apply(settings: &KafkaSettings, pipeline: &Pipeline, file: &ResourceFile) {
    resource_file::apply(settings, file, false, false)
        .await
        .unwrap();
    seen(pipeline, file).await;
}

/// Waits until `pipeline` sees every resource in `file`.
pub async fn seen(pipeline: &Pipeline, file: &ResourceFile) {
    let wanted = file.resources();
    eventually("the pipeline to see the applied resources", || async {
        let set = pipeline.store.snapshot();
        wanted
            .iter()
            .all(|r| set.get(&r.key()).as_ref() == Some(r))
            .then_some(())
    })
    .await;
}

/// The value of one sample on `pipeline`'s `/metrics`, `series` being its name and labels as the
/// text format writes them (`name{label="value"}`); `None` when it is not there.
pub async fn metric(pipeline: &Pipeline, series: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://{}/metrics", pipeline.admin_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A request to the `app` source with its token and `X-Env: prod`, ready for a body.
pub fn post_request(pipeline: &Pipeline) -> reqwest::RequestBuilder {
    let url = format!(
        "http://{}/inbound-webhooks/app",
        pipeline.ingest_addr.unwrap()
    );
    reqwest::Client::new()
        .post(url)
        .bearer_auth(TOKEN)
        .header("x-env", "prod")
}

/// Posts `body` to the `app` source.
pub async fn post(pipeline: &Pipeline, body: serde_json::Value) -> reqwest::Response {
    post_request(pipeline).json(&body).send().await.unwrap()
}

/// The event id of a 202 answer; fails the test on any other.
pub async fn accepted_id(response: reqwest::Response) -> String {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 202, "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    body["id"].as_str().unwrap().to_owned()
}

/// A `user.signed_up` event, which the `signups` trigger matches.
pub fn signup(seq: u64) -> serde_json::Value {
    serde_json::json!({"type": "user.signed_up", "seq": seq, "user": {"email": format!("u{seq}@example.com")}})
}

/// A test's world: its Kafka and topics, a receiver, the stages running, and [`resources`]
/// applied. Keep it alive for the whole test: dropping it stops the embedded broker.
pub struct World {
    /// The Kafka the stages use.
    pub kafka: super::TestKafka,
    /// Settings with the test's own topic prefix.
    pub settings: KafkaSettings,
    /// The receiver behind the `crm` destination.
    pub receiver: TestReceiver,
    /// The running stages.
    pub pipeline: Pipeline,
}

impl Stages {
    /// Starts a [`World`] with these stages.
    pub async fn world(self) -> World {
        super::init_logs();
        let kafka = super::TestKafka::start();
        let settings = kafka.settings().await;
        let receiver = TestReceiver::start().await;
        let pipeline = self.start(&settings).await;
        apply(&settings, &pipeline, &resources(&receiver)).await;
        World {
            kafka,
            settings,
            receiver,
            pipeline,
        }
    }
}
