//! The machine the figures belong to (cores, CPU model, memory, kernel, load) and the CPU time
//! the whole machine spent, so the report can say how much went to processes other than the
//! benchmark's.

use procfs::{Current as _, CurrentSI as _};
use serde::Serialize;

/// What the machine is.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    /// Logical CPUs available to the bench.
    pub cores: usize,
    /// The CPU model, from `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Total memory, in bytes.
    pub memory_bytes: u64,
    /// The kernel release.
    pub kernel: String,
    /// The 1-minute load average when the run started: anything well above 0 means other work
    /// was running.
    pub load_average_at_start: f32,
    /// The Hookline commit measured (`git describe --always --dirty`), when known.
    pub hookline_commit: Option<String>,
}

impl Machine {
    /// Describes this machine.
    pub fn describe(workspace: &std::path::Path) -> Self {
        let cpu = procfs::CpuInfo::current().ok();
        let cpu_model = cpu
            .as_ref()
            .and_then(|info| info.model_name(0).map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned());
        let memory_bytes = procfs::Meminfo::current().map_or(0, |info| info.mem_total);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|text| text.trim().to_owned())
            .unwrap_or_default();
        let load_average_at_start = procfs::LoadAverage::current().map_or(0.0, |load| load.one);
        let hookline_commit = std::process::Command::new("git")
            .args(["describe", "--always", "--dirty"])
            .current_dir(workspace)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu_model,
            memory_bytes,
            kernel,
            load_average_at_start,
            hookline_commit,
        }
    }
}

/// CPU seconds every CPU of the machine spent busy (anything but idle and I/O wait) since boot.
pub fn busy_seconds() -> f64 {
    let Ok(stats) = procfs::KernelStats::current() else {
        return 0.0;
    };
    let total = stats.total;
    let ticks = total.user
        + total.nice
        + total.system
        + total.irq.unwrap_or(0)
        + total.softirq.unwrap_or(0)
        + total.steal.unwrap_or(0);
    ticks as f64 / procfs::ticks_per_second() as f64
}
