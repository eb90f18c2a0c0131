//! `hookline preview`: what a trigger of a resource file would send for a sample event.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use hookline_processor::preview::{self, Preview, SampleEvent};
use hookline_processor::template::Limits;
use hookline_runtime::resources::ResourceSet;
use hookline_schemas::ResourceId;

use crate::cli::PreviewArgs;
use crate::resource_file::ResourceFile;

/// Loads the file and the sample and previews the trigger.
pub fn run(args: &PreviewArgs) -> anyhow::Result<Preview> {
    let file = ResourceFile::load(&args.file)?;
    let Some(trigger) = file.triggers.iter().find(|t| t.id.as_str() == args.trigger) else {
        bail!("{} has no trigger {:?}", args.file.display(), args.trigger);
    };
    let text = std::fs::read_to_string(&args.event)
        .with_context(|| format!("could not read {}", args.event.display()))?;
    let (mut headers, body) = sample(&text);
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .with_context(|| format!("--header {header:?} is not `Name: value`"))?;
        headers.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    let source = match &args.source {
        Some(source) => ResourceId::parse(source.as_str()).context("--source is not a valid id")?,
        None => trigger
            .when
            .sources
            .first()
            .cloned()
            .context("the trigger names no source")?,
    };
    let sample = SampleEvent {
        source,
        headers,
        body,
    };
    Ok(preview::preview(
        trigger,
        &resource_set(&file),
        &sample,
        &Limits::default(),
    )?)
}

/// `hookline validate --sample [SOURCE=]FILE`: the triggers of `file` against each sample (those
/// on `SOURCE`, or all, as if it came from their first source). Returns what each did, or fails naming every sample and trigger
/// that failed to render (a body that is not JSON included).
pub fn samples(file: &ResourceFile, samples: &[String]) -> anyhow::Result<Vec<String>> {
    let resources = resource_set(file);
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for argument in samples {
        let (only, path) = match argument.split_once('=') {
            Some((source, path)) => {
                let source = ResourceId::parse(source).with_context(|| {
                    format!("--sample {argument:?}: {source:?} is not a source id")
                })?;
                (Some(source), PathBuf::from(path))
            }
            None => (None, PathBuf::from(argument)),
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("could not read {}", path.display()))?;
        let (headers, body) = sample(&text);
        for trigger in &file.triggers {
            let source = match &only {
                Some(source) if trigger.when.sources.contains(source) => source,
                Some(_) => continue,
                // Without sources the trigger is invalid, and validation said so.
                None => match trigger.when.sources.first() {
                    Some(source) => source,
                    None => continue,
                },
            };
            let sample = SampleEvent {
                source: source.clone(),
                headers: headers.clone(),
                body: body.clone(),
            };
            let name = format!("{}: trigger {}", path.display(), trigger.id);
            match preview::preview(trigger, &resources, &sample, &Limits::default()) {
                Ok(preview) if preview.matched => lines.push(format!(
                    "{name} fires: {} request(s){}",
                    preview.requests.len(),
                    preview
                        .skipped
                        .iter()
                        .map(|skipped| format!("; {skipped}"))
                        .collect::<String>()
                )),
                Ok(preview) => lines.push(format!(
                    "{name} does not fire: {}",
                    preview.reason.unwrap_or_default()
                )),
                Err(error) => failures.push(format!("  {name}: {error}")),
            }
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} failed on a sample:\n{}",
            if failures.len() == 1 {
                "a trigger"
            } else {
                "triggers"
            },
            failures.join("\n")
        );
    }
    Ok(lines)
}

fn resource_set(file: &ResourceFile) -> ResourceSet {
    let mut resources = ResourceSet::default();
    for resource in file.resources() {
        resources.put(resource);
    }
    resources
}

/// The sample's inbound headers and body: `{"headers": {...}, "body": ...}` is an envelope,
/// anything else is the body itself.
pub fn sample(text: &str) -> (BTreeMap<String, String>, Vec<u8>) {
    if let Ok(serde_json::Value::Object(object)) = serde_json::from_str::<serde_json::Value>(text)
        && object.len() == 2
        && let (Some(serde_json::Value::Object(headers)), Some(body)) =
            (object.get("headers"), object.get("body"))
    {
        let headers = headers
            .iter()
            .map(|(name, value)| {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_owned);
                (name.clone(), value)
            })
            .collect();
        return (headers, body.to_string().into_bytes());
    }
    (BTreeMap::new(), text.as_bytes().to_vec())
}

#[cfg(test)]
mod tests {

    use super::*;

    fn preview(trigger: &str, payload: &str) -> Preview {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        run(&PreviewArgs {
            file: root.join("examples/triggers.toml"),
            trigger: trigger.to_owned(),
            event: root.join("tests/fixtures/payloads").join(payload),
            source: None,
            headers: Vec::new(),
        })
        .unwrap()
    }

    fn body(preview: &Preview) -> serde_json::Value {
        assert!(preview.matched, "{preview:?}");
        serde_json::from_str(&preview.requests[0].body).unwrap()
    }

    #[test]
    fn a_github_push_becomes_a_chat_message() {
        let preview = preview("push-to-chat", "github-push.json");
        let body = body(&preview);
        assert_eq!(
            body["text"], "octocat pushed 1 commit to acme/hookline",
            "{body}"
        );
        assert_eq!(body["commits"][0]["id"].as_str().unwrap().len(), 7);
        assert_eq!(
            preview.requests[0].url,
            "https://chat.example.com/hooks/T000/B000"
        );
    }

    #[test]
    fn a_high_alert_pages_with_its_details() {
        let preview = preview("page-on-high-alerts", "monitoring-alert.json");
        let body = body(&preview);
        assert_eq!(body["dedup_key"], "al_7781");
        assert_eq!(
            body["payload"]["summary"],
            "[billing-api] API error rate exceeded threshold"
        );
        assert_eq!(body["payload"]["severity"], "error");
        assert_eq!(
            body["payload"]["custom_details"]["since"],
            "2026-11-23 06:58 UTC"
        );
    }

    #[test]
    fn a_sign_up_is_reshaped_for_the_crm() {
        let preview = preview("signup-to-crm", "app-user-signed-up.json");
        let body = body(&preview);
        assert_eq!(
            body,
            serde_json::json!({
                "email": "ada@example.org",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "company": "Analytical Engines",
                "seats": 12,
                "source": "newsletter",
                "signed_up_on": "2026-11-23"
            })
        );
        let request = &preview.requests[0];
        assert_eq!(request.method, "PUT");
        assert_eq!(
            request.url,
            "https://crm.example.com/api/contacts/usr_90412"
        );
        assert_eq!(request.headers["idempotency-key"], "evt_preview");
    }

    #[test]
    fn a_push_to_another_branch_does_not_match() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let event = tempfile::Builder::new()
            .suffix(".json")
            .tempfile()
            .unwrap()
            .into_temp_path();
        let text =
            std::fs::read_to_string(root.join("tests/fixtures/payloads/github-push.json")).unwrap();
        std::fs::write(
            &event,
            text.replace("refs/heads/main", "refs/heads/feature"),
        )
        .unwrap();
        let preview = run(&PreviewArgs {
            file: root.join("examples/triggers.toml"),
            trigger: "push-to-chat".into(),
            event: event.to_path_buf(),
            source: None,
            headers: Vec::new(),
        })
        .unwrap();
        assert!(!preview.matched);
        assert_eq!(
            preview.reason.as_deref(),
            Some("the `if` condition is false")
        );
    }

    #[test]
    fn every_example_trigger_renders_every_sample_payload() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let file = ResourceFile::load(&root.join("examples/triggers.toml")).unwrap();
        let payloads = root.join("tests/fixtures/payloads");
        let arguments: Vec<_> = [
            ("github", "github-push.json"),
            ("monitoring", "monitoring-alert.json"),
            ("app", "app-user-signed-up.json"),
        ]
        .iter()
        .map(|(source, name)| format!("{source}={}", payloads.join(name).display()))
        .collect();
        let lines = samples(&file, &arguments).unwrap();
        assert_eq!(lines.len(), 3, "one trigger per source: {lines:#?}");
        assert!(
            lines
                .iter()
                .all(|line| line.ends_with(" fires: 1 request(s)")),
            "{lines:#?}"
        );
        // Without a source, every trigger renders the sample: the others do not fire on it.
        let path = payloads.join("github-push.json").display().to_string();
        let lines = samples(&file, &[path]).unwrap();
        assert_eq!(lines.len(), file.triggers.len(), "{lines:#?}");
    }

    #[test]
    fn a_trigger_that_fails_on_a_sample_fails_the_validation() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let file = ResourceFile::parse(
            r#"
            [[sources]]
            id = "app"
            auth = [{ type = "open" }]
            [[destinations]]
            id = "d"
            url = "https://example.com/hook"
            [[triggers]]
            id = "fine"
            when = { sources = ["app"] }
            [[triggers.actions]]
            destination = "d"
            body = '{"ok": true}'
            [[triggers]]
            id = "needs-a-field"
            when = { sources = ["app"] }
            [[triggers.actions]]
            destination = "d"
            body = '{"plan": {{ payload.data.plan.name }}}'
            "#,
        )
        .unwrap();
        let error = samples(
            &file,
            &[root
                .join("tests/fixtures/payloads/app-user-signed-up.json")
                .display()
                .to_string()],
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.starts_with("a trigger failed on a sample:")
                && error.contains("trigger needs-a-field: actions[0].body: undefined value")
                && !error.contains("trigger fine"),
            "{error}"
        );
    }

    #[test]
    fn the_examples_file_is_valid() {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let file = ResourceFile::load(&root.join("examples/triggers.toml")).unwrap();
        let problems = crate::resource_file::validate(&file.resources(), &Limits::default());
        assert!(problems.is_empty(), "{problems:?}");
    }
}
