//! The monitor: for the whole run it polls the receiver's counters every 50 ms, keeps the
//! pipeline's backlog in check through the load generator's gate, samples the rates every second
//! for the chart, and draws the progress line.

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use serde::Serialize;
use tokio::sync::watch;

use crate::http;
use crate::load::{Gate, Totals};
use crate::receiver::now_us;
use crate::stats::Counts;

/// How the gate is driven.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// Always open.
    Free,
    /// Closed loop: pause sending while more than this many deliveries are outstanding.
    Bounded(u64),
    /// Open loop: stop the phase when more than this many deliveries are outstanding (the
    /// pipeline does not keep up with the rate).
    StopAbove(u64),
}

/// One second of the run.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Sample {
    /// Unix time, in seconds.
    pub unix_s: f64,
    /// Events accepted by then.
    pub accepted: u64,
    /// Deliveries received by then.
    pub deliveries: u64,
}

struct State {
    label: String,
    phase_start: Instant,
    phase_length: Duration,
    mode: Mode,
    /// Deliveries missing before the phase started (lost earlier), not counted as backlog.
    missing_before: u64,
    counts: Counts,
    samples: Vec<Sample>,
}

/// The run's monitor.
pub struct Monitor {
    state: Mutex<State>,
    totals: Arc<Totals>,
    gate: watch::Sender<Gate>,
}

impl Monitor {
    /// Starts polling `receiver`.
    pub fn start(receiver: SocketAddr, totals: Arc<Totals>) -> Arc<Self> {
        let (gate, _) = watch::channel(Gate::Open);
        let monitor = Arc::new(Self {
            state: Mutex::new(State {
                label: String::new(),
                phase_start: Instant::now(),
                phase_length: Duration::ZERO,
                mode: Mode::Free,
                missing_before: 0,
                counts: Counts::default(),
                samples: Vec::new(),
            }),
            totals,
            gate,
        });
        tokio::spawn(monitor.clone().poll(receiver));
        monitor
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A receiver of the gate, for the load generator.
    pub fn gate(&self) -> watch::Receiver<Gate> {
        self.gate.subscribe()
    }

    /// Announces a phase: its label for the progress line, its length, and the gate's mode.
    pub fn phase(&self, label: &str, length: Duration, mode: Mode) {
        let expected = self.totals.expected_deliveries.load(Ordering::Relaxed);
        let mut state = self.state();
        state.label = label.to_owned();
        state.phase_start = Instant::now();
        state.phase_length = length;
        state.mode = mode;
        state.missing_before = expected.saturating_sub(state.counts.unique);
        let _ = self.gate.send(Gate::Open);
    }

    /// The receiver's latest counters (at most 50 ms old).
    pub fn counts(&self) -> Counts {
        self.state().counts
    }

    /// The per-second samples so far.
    pub fn samples(&self) -> Vec<Sample> {
        self.state().samples.clone()
    }

    /// Waits until every expected delivery arrived, or none arrived for `quiet`; returns how many
    /// are missing.
    pub async fn drain(&self, label: &str, quiet: Duration) -> u64 {
        self.phase(label, Duration::ZERO, Mode::Free);
        let mut last = self.counts().unique;
        let mut last_progress = Instant::now();
        loop {
            let expected = self.totals.expected_deliveries.load(Ordering::Relaxed);
            let unique = self.counts().unique;
            if unique >= expected {
                return 0;
            }
            if unique > last {
                last = unique;
                last_progress = Instant::now();
            } else if last_progress.elapsed() > quiet {
                return expected - unique;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn poll(self: Arc<Self>, receiver: SocketAddr) {
        let interactive = std::io::stderr().is_terminal();
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let mut last_sample = Instant::now();
        let mut last_line = Instant::now();
        let mut last_print = Instant::now();
        let mut previous: Option<Sample> = None;
        let mut rates = (0.0, 0.0);
        loop {
            tick.tick().await;
            let counts = match http::get(receiver, "/counts").await {
                Ok((StatusCode::OK, body)) => serde_json::from_slice::<Counts>(&body).ok(),
                _ => None,
            };
            let accepted = self.totals.accepted.load(Ordering::Relaxed);
            let expected = self.totals.expected_deliveries.load(Ordering::Relaxed);
            let line = {
                let mut state = self.state();
                if let Some(counts) = counts {
                    state.counts = counts;
                }
                let outstanding = expected
                    .saturating_sub(state.counts.unique)
                    .saturating_sub(state.missing_before);
                let gate = match state.mode {
                    Mode::Free => Gate::Open,
                    Mode::Bounded(limit) if outstanding > limit => Gate::Paused,
                    Mode::Bounded(_) => Gate::Open,
                    Mode::StopAbove(limit) if outstanding > limit => Gate::Stop,
                    Mode::StopAbove(_) => Gate::Open,
                };
                if *self.gate.borrow() != gate && *self.gate.borrow() != Gate::Stop {
                    let _ = self.gate.send(gate);
                }
                if last_sample.elapsed() >= Duration::from_secs(1) {
                    last_sample = Instant::now();
                    let sample = Sample {
                        unix_s: now_us() as f64 / 1e6,
                        accepted,
                        deliveries: state.counts.deliveries,
                    };
                    if let Some(before) = previous {
                        let seconds = (sample.unix_s - before.unix_s).max(1e-3);
                        rates = (
                            (sample.accepted - before.accepted) as f64 / seconds,
                            (sample.deliveries - before.deliveries) as f64 / seconds,
                        );
                    }
                    previous = Some(sample);
                    state.samples.push(sample);
                }
                let elapsed = state.phase_start.elapsed().as_secs_f64();
                let length = if state.phase_length.is_zero() {
                    String::new()
                } else {
                    format!("/{:.0}", state.phase_length.as_secs_f64())
                };
                format!(
                    "[{}] {elapsed:5.1}{length} s | accepted {:>7.0}/s | delivered {:>7.0}/s | outstanding {:>6} | failed {}",
                    state.label,
                    rates.0,
                    rates.1,
                    outstanding,
                    self.totals.failed.load(Ordering::Relaxed),
                )
            };
            if interactive && last_line.elapsed() >= Duration::from_millis(250) {
                last_line = Instant::now();
                let mut stderr = std::io::stderr();
                let _ = write!(stderr, "\r\x1b[2K{line}");
                let _ = stderr.flush();
            } else if !interactive && last_print.elapsed() >= Duration::from_secs(5) {
                last_print = Instant::now();
                eprintln!("{line}");
            }
        }
    }

    /// Clears the progress line before other output.
    pub fn clear_line(&self) {
        if std::io::stderr().is_terminal() {
            let mut stderr = std::io::stderr();
            let _ = write!(stderr, "\r\x1b[2K");
            let _ = stderr.flush();
        }
    }
}
