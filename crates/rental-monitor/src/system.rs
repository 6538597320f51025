//! Host and process metrics over `sysinfo`: [`SystemMonitor`] and its [`SystemSnapshot`].

use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use serde::Serialize;
use sysinfo::{
    CpuRefreshKind, MINIMUM_CPU_UPDATE_INTERVAL, MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System,
};

/// Reads CPU, memory and load of the host and of the current process.
///
/// Cloning is cheap (an [`Arc`]); clones share one `sysinfo::System` behind a mutex. CPU usage is
/// the difference between two readings, so [`SystemMonitor::new`] takes a first reading and each
/// [`SystemMonitor::snapshot`] refreshes again, but never more often than
/// `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL` (200 ms on Linux): a snapshot taken sooner returns the
/// previous readings (with a current uptime), which keeps a busy health endpoint cheap. The first
/// snapshot taken within that interval of creation reports 0 % CPU.
#[derive(Debug, Clone)]
pub struct SystemMonitor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    pid: Option<Pid>,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    system: System,
    last_refresh: Instant,
}

/// A point-in-time reading of host and process resources.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SystemSnapshot {
    /// CPU usage of the whole host, from 0 to 100 %, averaged over all CPUs.
    pub cpu_usage_percent: f64,
    /// Number of logical CPUs.
    pub cpu_count: usize,
    /// RAM in use (total minus available), in bytes.
    pub memory_used_bytes: u64,
    /// Total RAM, in bytes.
    pub memory_total_bytes: u64,
    /// `memory_used_bytes` as a percentage of `memory_total_bytes` (0 when the total is unknown).
    pub memory_usage_percent: f64,
    /// Resident set size of this process, in bytes; `None` if it could not be read.
    pub process_rss_bytes: Option<u64>,
    /// CPU usage of this process, where 100 % is one full CPU (so it can reach
    /// `cpu_count * 100`); `None` if it could not be read.
    pub process_cpu_percent: Option<f64>,
    /// Host load average; `None` where the platform does not provide it (Windows).
    pub load_average: Option<LoadAverage>,
    /// Seconds since the [`SystemMonitor`] was created.
    pub uptime_secs: f64,
}

/// Host load average over one, five and fifteen minutes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LoadAverage {
    /// Average over one minute.
    pub one: f64,
    /// Average over five minutes.
    pub five: f64,
    /// Average over fifteen minutes.
    pub fifteen: f64,
}

/// The system information library could not be initialised on this platform.
#[derive(Debug)]
pub struct MonitorError {
    source: sysinfo::Error,
}

impl fmt::Display for MonitorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot read system information")
    }
}

impl Error for MonitorError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

impl SystemMonitor {
    /// Creates a monitor and takes the first CPU reading. Its uptime counts from now.
    ///
    /// Blocking but quick (a few reads of `/proc` on Linux).
    ///
    /// # Errors
    ///
    /// [`MonitorError`] if `sysinfo` cannot be initialised on this platform.
    pub fn new() -> Result<Self, MonitorError> {
        let started = Instant::now();
        let system = System::new().map_err(|source| MonitorError { source })?;
        let pid = sysinfo::get_current_pid().ok();
        let mut state = State { system, last_refresh: started };
        state.refresh(pid);
        Ok(Self { inner: Arc::new(Inner { started, pid, state: Mutex::new(state) }) })
    }

    /// Reads current resource usage (see the type's docs for how often it really refreshes).
    ///
    /// Blocking but quick; callers on an async runtime may call it directly from a handler.
    pub fn snapshot(&self) -> SystemSnapshot {
        let mut state = self.inner.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.last_refresh.elapsed() >= MINIMUM_CPU_UPDATE_INTERVAL {
            state.refresh(self.inner.pid);
        }
        let system = &state.system;
        let memory_total_bytes = system.total_memory();
        let memory_used_bytes = system.used_memory();
        let process = self.inner.pid.and_then(|pid| system.process(pid));
        let load_average = System::load_average().ok().map(|load| LoadAverage {
            one: load.one,
            five: load.five,
            fifteen: load.fifteen,
        });
        SystemSnapshot {
            cpu_usage_percent: f64::from(system.global_cpu_usage()),
            cpu_count: system.cpus().len(),
            memory_used_bytes,
            memory_total_bytes,
            memory_usage_percent: percent(memory_used_bytes, memory_total_bytes),
            process_rss_bytes: process.map(sysinfo::Process::memory),
            process_cpu_percent: process.map(|p| f64::from(p.cpu_usage())),
            load_average,
            uptime_secs: self.inner.started.elapsed().as_secs_f64(),
        }
    }
}

impl State {
    /// Refreshes only what a snapshot reads: global CPU usage, RAM, and this process's CPU and
    /// memory (not its threads, not other processes).
    fn refresh(&mut self, pid: Option<Pid>) {
        self.system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
        self.system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        if let Some(pid) = pid {
            self.system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory().without_tasks(),
            );
        }
        self.last_refresh = Instant::now();
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 * 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_handles_zero_total() {
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }

    #[test]
    fn snapshot_reads_plausible_values() {
        let monitor = SystemMonitor::new().unwrap();
        // Burn a little CPU so the process has something to report, then wait past the interval.
        let deadline = Instant::now() + MINIMUM_CPU_UPDATE_INTERVAL;
        let mut spins = 0u64;
        while Instant::now() < deadline {
            spins = std::hint::black_box(spins.wrapping_add(1));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let snapshot = monitor.clone().snapshot();

        assert!(snapshot.memory_total_bytes > 0);
        assert!(snapshot.memory_used_bytes > 0);
        assert!(snapshot.memory_used_bytes <= snapshot.memory_total_bytes);
        assert!((0.0..=100.0).contains(&snapshot.memory_usage_percent));
        assert!((0.0..=100.0).contains(&snapshot.cpu_usage_percent));
        assert!(snapshot.cpu_count >= 1);
        assert!(snapshot.uptime_secs >= MINIMUM_CPU_UPDATE_INTERVAL.as_secs_f64());
        if cfg!(any(target_os = "linux", target_os = "macos")) {
            // This test binary uses at least a megabyte of resident memory.
            assert!(snapshot.process_rss_bytes.unwrap() > 1 << 20);
            let cpu = snapshot.process_cpu_percent.unwrap();
            assert!(cpu >= 0.0 && cpu <= snapshot.cpu_count as f64 * 100.0);
            let load = snapshot.load_average.unwrap();
            assert!(load.one >= 0.0);
        }
    }

    #[test]
    fn snapshots_within_the_interval_reuse_the_last_reading() {
        let monitor = SystemMonitor::new().unwrap();
        // Pretend the last refresh just happened, whatever the scheduler did since.
        let pinned = Instant::now() + std::time::Duration::from_secs(3_600);
        monitor.inner.state.lock().unwrap().last_refresh = pinned;
        let first = monitor.snapshot();
        let second = monitor.snapshot();
        assert_eq!(monitor.inner.state.lock().unwrap().last_refresh, pinned);
        assert_eq!(first.memory_used_bytes, second.memory_used_bytes);
        assert_eq!(first.cpu_usage_percent, second.cpu_usage_percent);
        assert!(second.uptime_secs >= first.uptime_secs);
    }

    #[test]
    fn monitor_is_send_and_sync() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<SystemMonitor>();
    }
}
