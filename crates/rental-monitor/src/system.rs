//! Host and process metrics over `sysinfo`: [`SystemMonitor`], its [`SystemSnapshot`] and the
//! background [`Refresher`].

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::Gauge;
use serde::Serialize;
use sysinfo::{
    CpuRefreshKind, DiskRefreshKind, Disks, MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System,
};

use crate::MonitorError;
use crate::exporter::Exporter;

/// Reads CPU, memory and disk of the host and the memory and open files of this process.
///
/// Reading `/proc` on every request would make a busy health endpoint expensive, so a snapshot is
/// taken by [`SystemMonitor::refresh`] — usually on the thread of a [`Refresher`] — and
/// [`SystemMonitor::snapshot`] only clones the latest one. Each refresh also sets the `rental_system_*`
/// and `rental_process_*` gauges of the [`Exporter`]. Cloning is cheap (an [`Arc`]).
///
/// CPU usage is the difference between two readings, so the snapshot taken at creation reports 0 %
/// CPU until the first refresh.
#[derive(Debug, Clone)]
pub struct SystemMonitor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    started: Instant,
    started_unix_secs: f64,
    pid: Option<Pid>,
    disk_path: PathBuf,
    readers: Mutex<Readers>,
    latest: RwLock<SystemSnapshot>,
    gauges: Gauges,
}

#[derive(Debug)]
struct Readers {
    system: System,
    disks: Disks,
}

#[derive(Debug)]
struct Gauges {
    cpu: Gauge,
    memory_used: Gauge,
    memory_total: Gauge,
    disk_used: Gauge,
    disk_free: Gauge,
    disk_total: Gauge,
    rss: Gauge,
    open_fds: Gauge,
    max_fds: Gauge,
    uptime: Gauge,
    start_time: Gauge,
}

impl Gauges {
    fn new(exporter: &Exporter) -> Self {
        Self {
            cpu: exporter.gauge("rental_system_cpu_usage_ratio", "Host CPU usage averaged over all CPUs, 0 to 1.", &[]),
            memory_used: exporter.gauge(
                "rental_system_memory_used_bytes",
                "Host RAM in use (total minus available).",
                &[],
            ),
            memory_total: exporter.gauge("rental_system_memory_total_bytes", "Host RAM.", &[]),
            disk_used: exporter.gauge("rental_system_disk_used_bytes", "Used space of the monitored disk.", &[]),
            disk_free: exporter.gauge("rental_system_disk_free_bytes", "Space available on the monitored disk.", &[]),
            disk_total: exporter.gauge("rental_system_disk_total_bytes", "Size of the monitored disk.", &[]),
            rss: exporter.gauge("rental_process_resident_memory_bytes", "Resident memory of this process.", &[]),
            open_fds: exporter.gauge("rental_process_open_fds", "Open file descriptors of this process.", &[]),
            max_fds: exporter.gauge("rental_process_max_fds", "Limit of open file descriptors of this process.", &[]),
            uptime: exporter.gauge("rental_process_uptime_seconds", "Seconds since the monitor started.", &[]),
            start_time: exporter.gauge(
                "rental_process_start_time_seconds",
                "When the monitor started, in seconds since the Unix epoch.",
                &[],
            ),
        }
    }
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
    /// The disk holding the monitored path; `None` if no disk could be matched.
    pub disk: Option<DiskSnapshot>,
    /// Resident set size of this process, in bytes; `None` if it could not be read.
    pub process_rss_bytes: Option<u64>,
    /// CPU usage of this process, where 100 % is one full CPU (so it can reach
    /// `cpu_count * 100`); `None` if it could not be read.
    pub process_cpu_percent: Option<f64>,
    /// Open file descriptors of this process; `None` where the platform does not tell.
    pub process_open_files: Option<u64>,
    /// The process's limit of open files; `None` where the platform does not tell.
    pub process_open_files_limit: Option<u64>,
    /// Host load average; `None` where the platform does not provide it (Windows).
    pub load_average: Option<LoadAverage>,
    /// Seconds since the [`SystemMonitor`] was created.
    pub uptime_secs: f64,
    /// When this reading was taken, in milliseconds since the Unix epoch.
    pub taken_at_unix_ms: u64,
}

/// Space on the disk that holds the monitored path.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiskSnapshot {
    /// Where the disk is mounted.
    pub mount_point: String,
    /// Size, in bytes.
    pub total_bytes: u64,
    /// Used space (total minus available), in bytes.
    pub used_bytes: u64,
    /// Space available to this process, in bytes.
    pub free_bytes: u64,
    /// `used_bytes` as a percentage of `total_bytes`.
    pub usage_percent: f64,
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

impl SystemMonitor {
    /// Creates a monitor whose gauges live in `exporter`, watching the disk that holds `disk_path`,
    /// and takes a first reading. Its uptime counts from now.
    ///
    /// Blocking but quick (a few reads of `/proc` on Linux).
    ///
    /// # Errors
    /// [`MonitorError`] if `sysinfo` cannot be initialised on this platform.
    pub fn new(exporter: &Exporter, disk_path: &Path) -> Result<Self, MonitorError> {
        let started = Instant::now();
        let system = System::new().map_err(MonitorError::System)?;
        let disks = Disks::new_with_refreshed_list_specifics(DiskRefreshKind::nothing().with_storage())
            .map_err(MonitorError::System)?;
        // A path that does not exist yet is still matched against the mount points, made absolute.
        let disk_path = std::fs::canonicalize(disk_path)
            .or_else(|_| std::env::current_dir().map(|dir| dir.join(disk_path)))
            .unwrap_or_else(|_| disk_path.to_owned());
        let monitor = Self {
            inner: Arc::new(Inner {
                started,
                started_unix_secs: unix_ms(SystemTime::now()) as f64 / 1_000.0,
                pid: sysinfo::get_current_pid().ok(),
                disk_path,
                readers: Mutex::new(Readers { system, disks }),
                latest: RwLock::new(SystemSnapshot::default()),
                gauges: Gauges::new(exporter),
            }),
        };
        monitor.refresh();
        Ok(monitor)
    }

    /// The latest reading, with a current uptime. Cheap: no system call.
    pub fn snapshot(&self) -> SystemSnapshot {
        let mut snapshot = self.inner.latest.read().unwrap_or_else(PoisonError::into_inner).clone();
        snapshot.uptime_secs = self.inner.started.elapsed().as_secs_f64();
        snapshot
    }

    /// Reads CPU, memory, the disk and this process now, publishes the reading for
    /// [`SystemMonitor::snapshot`], sets the gauges and returns it.
    pub fn refresh(&self) -> SystemSnapshot {
        let inner = &*self.inner;
        let mut readers = inner.readers.lock().unwrap_or_else(PoisonError::into_inner);
        let Readers { system, disks } = &mut *readers;
        system.refresh_cpu_specifics(CpuRefreshKind::nothing().with_usage());
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        if let Some(pid) = inner.pid {
            system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_cpu().with_memory().without_tasks(),
            );
        }
        disks.refresh_specifics(false, DiskRefreshKind::nothing().with_storage());

        let memory_total_bytes = system.total_memory();
        let memory_used_bytes = system.used_memory();
        let process = inner.pid.and_then(|pid| system.process(pid));
        let disk = disks
            .iter()
            .filter(|disk| inner.disk_path.starts_with(disk.mount_point()))
            .max_by_key(|disk| disk.mount_point().as_os_str().len())
            .map(|disk| {
                let total_bytes = disk.total_space();
                let free_bytes = disk.available_space();
                let used_bytes = total_bytes.saturating_sub(free_bytes);
                DiskSnapshot {
                    mount_point: disk.mount_point().display().to_string(),
                    total_bytes,
                    used_bytes,
                    free_bytes,
                    usage_percent: percent(used_bytes, total_bytes),
                }
            });
        let snapshot = SystemSnapshot {
            cpu_usage_percent: f64::from(system.global_cpu_usage()),
            cpu_count: system.cpus().len(),
            memory_used_bytes,
            memory_total_bytes,
            memory_usage_percent: percent(memory_used_bytes, memory_total_bytes),
            disk,
            process_rss_bytes: process.map(sysinfo::Process::memory),
            process_cpu_percent: process.map(|p| f64::from(p.cpu_usage())),
            process_open_files: process.and_then(sysinfo::Process::open_files).map(|n| n as u64),
            process_open_files_limit: process.and_then(sysinfo::Process::open_files_limit).map(|n| n as u64),
            load_average: System::load_average().ok().map(|load| LoadAverage {
                one: load.one,
                five: load.five,
                fifteen: load.fifteen,
            }),
            uptime_secs: inner.started.elapsed().as_secs_f64(),
            taken_at_unix_ms: unix_ms(SystemTime::now()),
        };
        drop(readers);
        inner.publish(&snapshot);
        snapshot
    }

    /// Starts a thread that calls [`SystemMonitor::refresh`] and [`Exporter::run_upkeep`] every
    /// `interval` until the returned [`Refresher`] is dropped or stopped.
    ///
    /// # Errors
    /// The operating system's error when the thread cannot be spawned.
    pub fn spawn_refresher(&self, exporter: &Exporter, interval: Duration) -> std::io::Result<Refresher> {
        let (stop, stopped) = mpsc::channel::<()>();
        let monitor = self.clone();
        let exporter = exporter.clone();
        let thread = std::thread::Builder::new().name("rental-monitor".into()).spawn(move || {
            // Any message, or the sender being dropped, ends the loop.
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(interval) {
                monitor.refresh();
                exporter.run_upkeep();
            }
        })?;
        Ok(Refresher { stop: Some(stop), thread: Some(thread) })
    }
}

impl Inner {
    fn publish(&self, snapshot: &SystemSnapshot) {
        let g = &self.gauges;
        g.cpu.set(snapshot.cpu_usage_percent / 100.0);
        g.memory_used.set(snapshot.memory_used_bytes as f64);
        g.memory_total.set(snapshot.memory_total_bytes as f64);
        if let Some(disk) = &snapshot.disk {
            g.disk_used.set(disk.used_bytes as f64);
            g.disk_free.set(disk.free_bytes as f64);
            g.disk_total.set(disk.total_bytes as f64);
        }
        if let Some(rss) = snapshot.process_rss_bytes {
            g.rss.set(rss as f64);
        }
        if let Some(open) = snapshot.process_open_files {
            g.open_fds.set(open as f64);
        }
        if let Some(limit) = snapshot.process_open_files_limit {
            g.max_fds.set(limit as f64);
        }
        g.uptime.set(snapshot.uptime_secs);
        g.start_time.set(self.started_unix_secs);
        *self.latest.write().unwrap_or_else(PoisonError::into_inner) = snapshot.clone();
    }
}

/// The background thread of [`SystemMonitor::spawn_refresher`]; dropping it stops the thread and
/// waits for it (at most one refresh).
#[derive(Debug)]
pub struct Refresher {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Refresher {
    /// Stops the thread and waits for it.
    pub fn stop(mut self) {
        self.shut_down();
    }

    fn shut_down(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            // The thread only refreshes; a panic there has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.shut_down();
    }
}

pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { part as f64 / whole as f64 * 100.0 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DEFAULT_LATENCY_BUCKETS_SECS;

    fn exporter() -> Exporter {
        Exporter::new(&DEFAULT_LATENCY_BUCKETS_SECS).unwrap()
    }

    #[test]
    fn percent_handles_zero_total() {
        assert_eq!(percent(5, 0), 0.0);
        assert_eq!(percent(1, 4), 25.0);
    }

    #[test]
    fn refresh_reads_plausible_values_and_sets_the_gauges() {
        let exporter = exporter();
        let monitor = SystemMonitor::new(&exporter, Path::new(".")).unwrap();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let snapshot = monitor.refresh();

        assert!(snapshot.memory_total_bytes > 0);
        assert!(snapshot.memory_used_bytes > 0);
        assert!(snapshot.memory_used_bytes <= snapshot.memory_total_bytes);
        assert!((0.0..=100.0).contains(&snapshot.memory_usage_percent));
        assert!((0.0..=100.0).contains(&snapshot.cpu_usage_percent));
        assert!(snapshot.cpu_count >= 1);
        assert!(snapshot.taken_at_unix_ms > 0);
        if cfg!(target_os = "linux") {
            // This test binary uses at least a megabyte of resident memory and has its standard
            // streams open.
            assert!(snapshot.process_rss_bytes.unwrap() > 1 << 20);
            assert!(snapshot.process_open_files.unwrap() >= 3);
            assert!(snapshot.process_open_files_limit.unwrap() >= snapshot.process_open_files.unwrap());
            let disk = snapshot.disk.clone().unwrap();
            assert!(disk.total_bytes > 0 && disk.used_bytes + disk.free_bytes == disk.total_bytes);
            let text = exporter.render();
            for name in [
                "rental_system_cpu_usage_ratio",
                "rental_system_memory_used_bytes",
                "rental_system_disk_free_bytes",
                "rental_process_resident_memory_bytes",
                "rental_process_open_fds",
                "rental_process_start_time_seconds",
            ] {
                assert!(text.contains(&format!("# TYPE {name} gauge")), "{name} missing in\n{text}");
            }
            let total = format!("rental_system_memory_total_bytes {}", snapshot.memory_total_bytes);
            assert!(text.contains(&total), "{text}");
        }
        assert_eq!(monitor.snapshot().memory_total_bytes, snapshot.memory_total_bytes);
    }

    #[test]
    fn snapshot_returns_the_latest_reading_without_refreshing() {
        let monitor = SystemMonitor::new(&exporter(), Path::new(".")).unwrap();
        let first = monitor.snapshot();
        let second = monitor.snapshot();
        assert_eq!(first.taken_at_unix_ms, second.taken_at_unix_ms);
        assert!(second.uptime_secs >= first.uptime_secs);
    }

    #[test]
    fn the_refresher_refreshes_until_dropped() {
        let exporter = exporter();
        let monitor = SystemMonitor::new(&exporter, Path::new(".")).unwrap();
        let before = monitor.snapshot().taken_at_unix_ms;
        let refresher = monitor.spawn_refresher(&exporter, Duration::from_millis(5)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while monitor.snapshot().taken_at_unix_ms == before && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_ne!(monitor.snapshot().taken_at_unix_ms, before, "the refresher never refreshed");
        refresher.stop();
        // Stopped: no refresh happens any more.
        let after = monitor.snapshot().taken_at_unix_ms;
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(monitor.snapshot().taken_at_unix_ms, after);
    }

    #[test]
    fn monitor_is_send_and_sync() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<SystemMonitor>();
    }
}
