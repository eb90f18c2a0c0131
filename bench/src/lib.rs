//! `hookline-bench`: Hookline end to end against the raw limits of the machine it runs on.
//!
//! The bench starts a receiver in its own process, measures the raw limits (Kafka
//! produce→consume with Hookline's client settings, HTTP POSTs to the receiver), starts the
//! pipeline (`hookline dev`, or one process per role), drives it with a load generator in a closed
//! loop for the maximum and in open loops for latency, and writes a JSON report, an SVG chart and
//! a table.
//!
//! - [`cli`]: the command line.
//! - [`run`]: the phases of a run.
//! - [`workload`]: sources, triggers, destinations and the events, with the deliveries expected.
//! - [`load`]: the load generator; [`http`]: its connections.
//! - [`receiver`]: the receiver process; [`stats`]: the figures it shares.
//! - [`monitor`]: backlog control, per-second samples and the progress line.
//! - [`pipeline`]: starting Hookline; [`procs`]: child processes and their CPU and memory.
//! - [`raw`]: the raw limits; [`machine`]: the machine's description.
//! - [`report`]: the JSON report and the table; [`chart`]: the SVG chart.
//! - [`store`]: `hookline-bench store`, control's history store at production volume;
//!   [`console`]: `hookline-bench console`, the console's pages over such a store;
//!   [`probe`]: control's history API asked during a run with `--control`.
//! - [`faults`]: `hookline-bench faults`, the fault suite on Apache Kafka.
//! - [`topic_counts`]: Kafka's records and requests per topic, per event, from the broker.

pub mod chart;
pub mod cli;
pub mod console;
pub mod faults;
pub mod http;
pub mod load;
pub mod machine;
pub mod monitor;
pub mod pipeline;
pub mod probe;
pub mod procs;
pub mod raw;
pub mod receiver;
pub mod report;
pub mod run;
pub mod stage;
pub mod stats;
pub mod store;
pub mod topic_counts;
pub mod workload;
