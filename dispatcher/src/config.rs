//! Dispatcher settings and their defaults.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use hookline_schemas::RetryPolicy;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Dispatcher settings.
#[derive(Clone, Debug, Args)]
#[group(id = "dispatcher")]
pub struct Config {
    /// Most deliveries in progress at once, over all destinations.
    #[arg(
        id = "dispatcher-max-in-flight",
        long = "dispatcher-max-in-flight",
        env = "HOOKLINE_DISPATCHER_MAX_IN_FLIGHT",
        default_value_t = 1024
    )]
    pub max_in_flight: usize,

    /// Per-destination Prometheus series (`hookline_dispatcher_destination_*`) for at most this
    /// many destinations, the first ones attempted; later ones share `destination="_other"`.
    /// Off (0) by default: each destination adds about 25 series per dispatcher.
    #[arg(
        long = "metrics-destination-labels",
        env = "HOOKLINE_METRICS_DESTINATION_LABELS",
        default_value_t = 0
    )]
    pub metrics_destination_labels: usize,

    /// Most deliveries in progress to one destination, when it sets no `max_in_flight`; more
    /// jobs for it wait on the retry path instead of taking every slot.
    #[arg(
        long = "destination-max-in-flight",
        env = "HOOKLINE_DESTINATION_MAX_IN_FLIGHT",
        default_value_t = 256
    )]
    pub destination_max_in_flight: u32,

    /// Largest part of a receiver's answer that is read and recorded, in bytes.
    #[arg(long = "dispatcher-response-body-bytes", env = "HOOKLINE_DISPATCHER_RESPONSE_BODY_BYTES", default_value_t = 16 * 1024)]
    pub response_body_bytes: usize,

    /// Deadline of one attempt when the destination sets none, in milliseconds.
    #[arg(
        long = "dispatcher-timeout-ms",
        env = "HOOKLINE_DISPATCHER_TIMEOUT_MS",
        default_value_t = 15_000
    )]
    pub default_timeout_ms: u64,

    /// Retry waits in seconds for destinations that set no `retry` policy, comma separated;
    /// the Standard Webhooks schedule (5,300,1800,7200,18000,36000,50400,72000,86400) when unset.
    #[arg(
        long = "retry-schedule",
        env = "HOOKLINE_RETRY_SCHEDULE",
        value_delimiter = ','
    )]
    pub retry_schedule: Option<Vec<f64>>,

    /// Longest `Retry-After` from a receiver that is honoured, in seconds; longer ones are cut.
    #[arg(
        long = "max-retry-after-seconds",
        env = "HOOKLINE_MAX_RETRY_AFTER_SECONDS",
        default_value_t = 3_600
    )]
    pub max_retry_after_seconds: u64,

    /// Retry waits up to this long (milliseconds) happen in the dispatcher's memory; longer ones
    /// go through the retry topics, which survive restarts.
    #[arg(
        long = "in-process-wait-ms",
        env = "HOOKLINE_IN_PROCESS_WAIT_MS",
        default_value_t = 10_000
    )]
    pub in_process_wait_ms: u64,

    /// Address ranges (CIDRs) deliveries may go to although the SSRF guard refuses them by
    /// default (loopback, private, link-local, ...), comma separated or repeated. `hookline dev`
    /// allows loopback.
    #[arg(
        long = "dispatcher-allow-cidr",
        env = "HOOKLINE_DISPATCHER_ALLOW_CIDRS",
        value_delimiter = ','
    )]
    pub allow_cidrs: Vec<IpNet>,

    /// A PEM file of CA certificates that deliveries over HTTPS trust besides the system's
    /// roots, for receivers whose certificates a private CA issued.
    #[arg(
        long = "destination-ca-file",
        env = "HOOKLINE_DESTINATION_CA_FILE",
        value_name = "PATH",
        value_parser = CaFile::parse
    )]
    pub ca_file: Option<CaFile>,

    /// Consecutive failures (timeouts, connect errors, retryable statuses) that open a
    /// destination's circuit; half of its last 20 attempts failing does too.
    #[arg(
        long = "circuit-failures",
        env = "HOOKLINE_CIRCUIT_FAILURES",
        default_value_t = 10
    )]
    pub circuit_failures: u32,

    /// How long an open circuit defers a destination's jobs before one probe is let through, in
    /// milliseconds.
    #[arg(
        long = "circuit-open-ms",
        env = "HOOKLINE_CIRCUIT_OPEN_MS",
        default_value_t = 30_000
    )]
    pub circuit_open_ms: u64,

    /// The longest an open circuit stays open, in milliseconds (5 minutes): each failed probe
    /// doubles the last open period up to this, and a success starts over from
    /// `--circuit-open-ms`.
    #[arg(
        long = "circuit-open-max-ms",
        env = "HOOKLINE_CIRCUIT_OPEN_MAX_MS",
        default_value_t = 300_000
    )]
    pub circuit_open_max_ms: u64,

    /// A destination that has failed for this long without a single success is disabled, in
    /// seconds (5 days); 0 never disables. The window survives restarts.
    #[arg(
        long = "disable-after-failing-seconds",
        env = "HOOKLINE_DISABLE_AFTER_FAILING_SECONDS",
        default_value_t = 5 * 24 * 3600
    )]
    pub disable_after_failing_seconds: u64,

    /// How long deliveries in progress may go on once shutdown begins; they are then given up
    /// and delivered again after a restart. Set from the process's shutdown deadline.
    #[arg(skip = DEFAULT_DRAIN)]
    pub drain: Duration,
}

/// See [`Config::drain`].
const DEFAULT_DRAIN: Duration = Duration::from_secs(10);

impl Default for Config {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            metrics_destination_labels: 0,
            destination_max_in_flight: 256,
            response_body_bytes: 16 * 1024,
            default_timeout_ms: 15_000,
            retry_schedule: None,
            max_retry_after_seconds: 3_600,
            in_process_wait_ms: 10_000,
            allow_cidrs: Vec::new(),
            ca_file: None,
            circuit_failures: 10,
            circuit_open_ms: 30_000,
            circuit_open_max_ms: 300_000,
            disable_after_failing_seconds: 5 * 24 * 3600,
            drain: DEFAULT_DRAIN,
        }
    }
}

/// Loopback, IPv4 and IPv6: what `hookline dev` and the tests allow past the SSRF guard.
pub fn loopback() -> Vec<IpNet> {
    vec![
        IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(127, 0, 0, 0), 8)),
        IpNet::V6(Ipv6Net::new_assert(Ipv6Addr::LOCALHOST, 128)),
    ]
}

impl Config {
    /// The policy of destinations that set none.
    pub fn default_retry(&self) -> RetryPolicy {
        match &self.retry_schedule {
            Some(waits) => RetryPolicy::Schedule {
                waits_seconds: waits.clone(),
                jitter: true,
            },
            None => RetryPolicy::standard_webhooks(),
        }
    }

    /// See [`Config::max_retry_after_seconds`].
    pub fn max_retry_after(&self) -> Duration {
        Duration::from_secs(self.max_retry_after_seconds)
    }

    /// The certificates of [`Config::ca_file`]; none when it is unset.
    pub fn extra_roots(&self) -> Vec<CertificateDer<'static>> {
        self.ca_file
            .as_ref()
            .map(|file| file.roots.clone())
            .unwrap_or_default()
    }

    /// See [`Config::in_process_wait_ms`].
    pub fn in_process_wait(&self) -> Duration {
        Duration::from_millis(self.in_process_wait_ms)
    }
}

/// The CA certificates of `--destination-ca-file`, read and checked when the settings are parsed,
/// so that a file that cannot be used stops the start with its reason, before anything else.
#[derive(Clone, Debug)]
pub struct CaFile {
    roots: Vec<CertificateDer<'static>>,
}

/// Why a [`CaFile`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("could not read CA certificates from {}: {reason}", path.display())]
pub struct CaFileError {
    path: PathBuf,
    reason: String,
}

impl CaFile {
    /// Reads the PEM certificates in `path`: at least one, each usable as a trust anchor.
    pub fn read(path: impl Into<PathBuf>) -> Result<Self, CaFileError> {
        let path = path.into();
        let failed = |reason: String| CaFileError {
            path: path.clone(),
            reason,
        };
        let roots = CertificateDer::pem_file_iter(&path)
            .and_then(Iterator::collect::<Result<Vec<_>, _>>)
            .map_err(|error| failed(error.to_string()))?;
        if roots.is_empty() {
            return Err(failed("it holds no PEM certificate".to_owned()));
        }
        // Each must be usable as a trust anchor, as the verifier will take it.
        let mut store = RootCertStore::empty();
        for (index, root) in roots.iter().enumerate() {
            store.add(root.clone()).map_err(|error| {
                failed(format!(
                    "certificate {} is not a usable CA certificate ({error})",
                    index + 1
                ))
            })?;
        }
        Ok(Self { roots })
    }

    /// [`CaFile::read`] for clap.
    fn parse(path: &str) -> Result<Self, CaFileError> {
        Self::read(path)
    }
}
