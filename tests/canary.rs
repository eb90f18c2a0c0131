//! The end-to-end canary: its probes go through the real path and show up in `/metrics` as
//! successes with a round trip, or as timeouts when a stage is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod harness;

use std::time::Duration;

use harness::stages::Stages;
use harness::{TestKafka, eventually};
use hookline::canary::CanaryConfig;
use hookline::pipeline::{Pipeline, PipelineConfig};
use tokio_util::sync::CancellationToken;

fn quick_canary() -> CanaryConfig {
    CanaryConfig {
        enabled: true,
        interval_ms: 100,
        timeout_ms: 1_000,
        ..CanaryConfig::default()
    }
}

/// The value of the sample of `name` with these labels (as they appear in the text format); 0
/// while a labelled counter has not appeared yet.
async fn sample(pipeline: &Pipeline, series: &str) -> f64 {
    harness::stages::metric(pipeline, series)
        .await
        .unwrap_or(0.0)
}

async fn start(processor: bool) -> (TestKafka, Pipeline) {
    harness::init_logs();
    let kafka = TestKafka::start();
    let settings = kafka.settings().await;
    let mut config = PipelineConfig::new(settings.clone());
    config.ingest = Some(Stages::all_ingest());
    config.processor = processor.then(hookline_processor::Config::default);
    config.dispatcher = Some(hookline_dispatcher::Config {
        allow_cidrs: hookline_dispatcher::config::loopback(),
        ..hookline_dispatcher::Config::default()
    });
    config.canary = Some(quick_canary());
    config.shutdown_deadline = Duration::from_secs(5);
    let pipeline = Pipeline::start(config, CancellationToken::new())
        .await
        .unwrap();
    pipeline.ready().await.unwrap();
    (kafka, pipeline)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_probes_round_trip_through_the_pipeline() {
    let (_kafka, pipeline) = start(true).await;
    eventually("three successful probes", || async {
        (sample(
            &pipeline,
            r#"hookline_canary_probes_total{outcome="success"}"#,
        )
        .await
            >= 3.0)
            .then_some(())
    })
    .await;
    assert!(sample(&pipeline, "hookline_canary_round_trip_seconds_count").await >= 3.0);
    assert_eq!(
        sample(
            &pipeline,
            r#"hookline_canary_probes_total{outcome="failure"}"#
        )
        .await,
        0.0
    );
    pipeline.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_probes_time_out_when_a_stage_is_missing() {
    // No processor: events are accepted, but no webhook ever comes back.
    let (_kafka, pipeline) = start(false).await;
    eventually("a timed-out probe", || async {
        (sample(
            &pipeline,
            r#"hookline_canary_probes_total{outcome="timeout"}"#,
        )
        .await
            >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        sample(
            &pipeline,
            r#"hookline_canary_probes_total{outcome="success"}"#
        )
        .await,
        0.0
    );
    pipeline.stop().await.unwrap();
}
