//! The processes the bench starts (Hookline roles, the receiver): spawned with their output in a
//! log file, their ready line read from standard output, their CPU time and memory read from
//! `/proc`, and stopped with SIGTERM (SIGKILL after a deadline).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;

/// How long a stopped process may take to exit before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// A process the bench started.
pub struct Child {
    /// What it is, for reports: `hookline dev`, `ingest`, `processor-2`, `receiver`.
    pub name: String,
    /// Its process id.
    pub pid: u32,
    /// Where its output goes.
    pub log: PathBuf,
    child: tokio::process::Child,
    lines: Option<mpsc::UnboundedReceiver<String>>,
    /// Kept open so a child that watches its standard input lives as long as the bench.
    _stdin: Option<ChildStdin>,
}

impl Child {
    /// Starts `command` with its standard output and error appended to `log`.
    pub async fn spawn(name: &str, mut command: Command, log: &Path) -> anyhow::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("could not open {}", log.display()))?;
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(file))
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("could not start {name}"))?;
        let pid = child.id().context("the child has no pid")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stdin = child.stdin.take();
        let (sender, lines) = mpsc::unbounded_channel();
        let mut file = tokio::fs::OpenOptions::new().append(true).open(log).await?;
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
                // Nobody listens once the ready line was found.
                let _ = sender.send(line);
            }
        });
        Ok(Self {
            name: name.to_owned(),
            pid,
            log: log.to_owned(),
            child,
            lines: Some(lines),
            _stdin: stdin,
        })
    }

    /// Reads standard output until `found` returns something for a line, for up to `timeout`.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        mut found: impl FnMut(&str) -> Option<T>,
    ) -> anyhow::Result<T> {
        let name = self.name.clone();
        let log = self.log.display().to_string();
        let lines = self.lines.as_mut().context("output already consumed")?;
        let search = async {
            while let Some(line) = lines.recv().await {
                if let Some(value) = found(&line) {
                    return Ok(value);
                }
            }
            bail!("{name} exited before it was ready; see {log}")
        };
        tokio::time::timeout(timeout, search)
            .await
            .with_context(|| format!("{name} was not ready within {timeout:?}; see {log}"))?
    }

    /// Stops listening to standard output (it still goes to the log).
    pub fn detach_output(&mut self) {
        self.lines = None;
    }

    /// Its CPU time and memory now.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        Usage::of(self.pid)
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL if it has not exited within the deadline.
    pub async fn stop(mut self) {
        if let Some(pid) = i32::try_from(self.pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::Term);
        }
        if tokio::time::timeout(STOP_DEADLINE, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// CPU time and memory of a process.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Usage {
    /// User and system CPU time since it started, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory now, in bytes.
    pub rss_bytes: u64,
    /// Highest resident memory since it started (`VmHWM`), in bytes.
    pub peak_rss_bytes: u64,
}

impl Usage {
    /// Reads `/proc/<pid>/stat` and `/proc/<pid>/status`.
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let pid = i32::try_from(pid)?;
        let process = procfs::process::Process::new(pid)?;
        let stat = process.stat()?;
        let status = process.status()?;
        let ticks = procfs::ticks_per_second() as f64;
        Ok(Self {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            rss_bytes: status.vmrss.unwrap_or(0) * 1024,
            peak_rss_bytes: status.vmhwm.unwrap_or(0) * 1024,
        })
    }

    /// The bench's own process.
    pub fn own() -> anyhow::Result<Self> {
        Self::of(std::process::id())
    }
}
