//! What every Hookline stage shares. Knows no stage.
//!
//! - [`settings`]: Kafka, topic and admin settings (CLI flags and `HOOKLINE_…` variables).
//! - [`kafka`]: the idempotent producer and the at-least-once consumer builders.
//! - [`topics`]: creation of missing topics at start-up.
//! - [`embedded`]: the embedded Kafka-protocol broker for `hookline dev` and tests.
//! - [`resources`]: the resource store, materialised from the compacted resources topic.
//! - [`secrets`]: secret formats shared by signing and verifying.
//! - [`observe`]: consumer lag and rebalance metrics.
//! - [`offsets`]: which offset may be committed while records finish out of order.
//! - [`order`]: record keys of events and jobs, which decide what is processed in order.
//! - [`consume`]: the at-least-once consume loop every consuming stage runs.
//! - [`produce`]: waiting for a record's acknowledgement through a Kafka outage.
//! - [`reach`]: whether the Kafka cluster answers, for `/readyz`, a metric and the log.
//! - [`admin`]: `/metrics`, `/healthz` and `/readyz`.
//! - [`serve`]: serving HTTP with header and idle timeouts and a connection cap.
//! - [`telemetry`]: logs and the metrics registry.
//! - [`shutdown`]: cooperative shutdown on SIGINT/SIGTERM with a deadline.
//! - [`time`]: timestamps in the RFC 3339 form the contracts use.
//! - [`truncate`]: cutting bodies that must fit in a record.
//! - [`validate`]: checks of a set of resources before it is written.

pub mod admin;
pub mod compacted;
pub mod consume;
pub mod embedded;
pub mod error;
pub mod kafka;
pub mod observe;
pub mod offsets;
pub mod order;
pub mod produce;
pub mod rate;
pub mod reach;
pub mod resources;
pub mod secrets;
pub mod serve;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod time;
pub mod topics;
pub mod truncate;
pub mod validate;

pub use error::Error;
pub use settings::KafkaSettings;
