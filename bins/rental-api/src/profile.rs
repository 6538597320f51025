//! Performance profiles: one setting, `performance.profile`, that sizes HTTP workers, database pools, caches,
//! password hashing and job concurrency together. Each profile's values sit below every configured value: a
//! key set in a file or the environment always wins over the profile. `auto` derives the values from the
//! host's cores and memory, a container's cgroup limits included.

use std::fmt;

use config::{ConfigBuilder, builder::DefaultState};
use serde::{Deserialize, Serialize};

/// Which profile sizes the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Smallest footprint: one HTTP worker, small pools and caches; a small VM or a sidecar.
    Minimal,
    /// The default: a worker per core and the old application's pool (20 kept, 50 at most).
    #[default]
    Balanced,
    /// Throughput first: large pools, caches and job concurrency; a dedicated host.
    Maximum,
    /// Derived from the cores and memory this process may use.
    Auto,
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Minimal => "minimal",
            Self::Balanced => "balanced",
            Self::Maximum => "maximum",
            Self::Auto => "auto",
        })
    }
}

impl std::str::FromStr for Profile {
    type Err = ();

    fn from_str(name: &str) -> Result<Self, ()> {
        match name {
            "minimal" => Ok(Self::Minimal),
            "balanced" => Ok(Self::Balanced),
            "maximum" => Ok(Self::Maximum),
            "auto" => Ok(Self::Auto),
            _ => Err(()),
        }
    }
}

/// The `[performance]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct PerformanceConfig {
    /// `minimal`, `balanced` (default), `maximum` or `auto`.
    pub profile: Profile,
}

/// The memory assumed when the host's cannot be read, in MiB.
const UNKNOWN_MEMORY_MIB: u64 = 1024;

/// What the host offers this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Host {
    /// Cores this process may use (affinity and cgroup CPU quota included).
    pub cores: usize,
    /// Memory this process may use, in MiB (the cgroup limit when lower than the host's memory).
    pub memory_mib: u64,
}

impl Host {
    /// The host this process runs on.
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let limit = sysinfo::System::new().ok().map(|mut system| {
            system.refresh_memory();
            let total = system.total_memory();
            system.cgroup_limits().map_or(total, |cgroup| cgroup.total_memory.min(total))
        });
        // Where the memory cannot be read, size for a modest 1 GiB.
        let memory_mib = limit.filter(|bytes| *bytes > 0).map_or(UNKNOWN_MEMORY_MIB, |bytes| bytes / (1024 * 1024));
        Self { cores, memory_mib: memory_mib.max(1) }
    }
}

/// The values a profile sets, each under its configuration key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProfileValues {
    /// `server.workers`.
    pub http_workers: usize,
    /// `database.max_connections` on PostgreSQL.
    pub postgres_max_connections: u32,
    /// `database.min_connections` on PostgreSQL.
    pub postgres_min_connections: u32,
    /// `database.max_connections` on SQLite.
    pub sqlite_max_connections: u32,
    /// `cache.user_capacity`.
    pub user_cache_capacity: u64,
    /// `cache.list_capacity`.
    pub list_cache_capacity: u64,
    /// `auth.max_concurrent_hashes`: each hash holds `auth.argon2_memory_kib` (19 MiB by default).
    pub concurrent_hashes: usize,
    /// `worker.concurrency`.
    pub job_concurrency: usize,
    /// `worker.claim_batch`.
    pub job_claim_batch: u32,
}

impl ProfileValues {
    /// The values of `profile` on `host`.
    pub fn of(profile: Profile, host: Host) -> Self {
        let cores = host.cores.max(1);
        match profile {
            Profile::Minimal => Self {
                http_workers: 1,
                postgres_max_connections: 10,
                postgres_min_connections: 2,
                sqlite_max_connections: 4,
                user_cache_capacity: 10_000,
                list_cache_capacity: 1_000,
                concurrent_hashes: 1,
                job_concurrency: 4,
                job_claim_batch: 16,
            },
            Profile::Balanced => Self {
                http_workers: cores,
                postgres_max_connections: 50,
                postgres_min_connections: 20,
                sqlite_max_connections: 8,
                user_cache_capacity: 100_000,
                list_cache_capacity: 10_000,
                concurrent_hashes: (cores / 2).max(1),
                job_concurrency: 16,
                job_claim_batch: 64,
            },
            Profile::Maximum => Self {
                http_workers: cores,
                postgres_max_connections: 100,
                postgres_min_connections: 50,
                sqlite_max_connections: 16,
                user_cache_capacity: 1_000_000,
                list_cache_capacity: 100_000,
                concurrent_hashes: cores,
                job_concurrency: 64,
                job_claim_batch: 128,
            },
            Profile::Auto => {
                let cores_u32 = u32::try_from(cores).unwrap_or(u32::MAX);
                let postgres_max = cores_u32.saturating_mul(12).clamp(12, 100);
                // About a tenth of the memory for cached users (~1 KiB each) and a tenth of that for pages.
                let users = (host.memory_mib.saturating_mul(100)).clamp(10_000, 1_000_000);
                // Hashing may take at most an eighth of the memory.
                let hash_budget = usize::try_from(host.memory_mib / 8 / 19).unwrap_or(usize::MAX);
                let jobs = cores.saturating_mul(8).clamp(4, 64);
                Self {
                    http_workers: cores,
                    postgres_max_connections: postgres_max,
                    postgres_min_connections: postgres_max / 3,
                    sqlite_max_connections: cores_u32.saturating_mul(4).clamp(4, 16),
                    user_cache_capacity: users,
                    list_cache_capacity: users / 10,
                    concurrent_hashes: (cores / 2).clamp(1, hash_budget.max(1)),
                    job_concurrency: jobs,
                    job_claim_batch: u32::try_from(jobs * 4).unwrap_or(u32::MAX).min(128),
                }
            }
        }
    }

    /// The keys this profile sets, as `(key, value)`; `postgres` chooses the pool sizes.
    pub fn keys(&self, postgres: bool) -> Vec<(&'static str, u64)> {
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let mut keys = vec![
            ("server.workers", as_u64(self.http_workers)),
            ("cache.user_capacity", self.user_cache_capacity),
            ("cache.list_capacity", self.list_cache_capacity),
            ("auth.max_concurrent_hashes", as_u64(self.concurrent_hashes)),
            ("worker.concurrency", as_u64(self.job_concurrency)),
            ("worker.claim_batch", u64::from(self.job_claim_batch)),
        ];
        if postgres {
            keys.push(("database.max_connections", u64::from(self.postgres_max_connections)));
            keys.push(("database.min_connections", u64::from(self.postgres_min_connections)));
        } else {
            keys.push(("database.max_connections", u64::from(self.sqlite_max_connections)));
        }
        keys
    }

    /// Puts the profile's values under every configured source, as defaults.
    ///
    /// # Errors
    /// Never in practice: the keys are fixed and valid.
    pub fn apply(
        &self,
        builder: ConfigBuilder<DefaultState>,
        postgres: bool,
    ) -> Result<ConfigBuilder<DefaultState>, config::ConfigError> {
        self.keys(postgres).into_iter().try_fold(builder, |builder, (key, value)| builder.set_default(key, value))
    }
}

/// The profile in effect: its name, the host it was sized for, its values and which keys were set explicitly
/// instead. Logged at start and shown by the monitoring endpoints.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectiveProfile {
    /// The profile's name.
    pub profile: Profile,
    /// The host it was sized for.
    pub host: Host,
    /// What the profile set.
    pub values: ProfileValues,
    /// Keys set in a file or the environment, which override the profile.
    pub overridden: Vec<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Host = Host { cores: 2, memory_mib: 1024 };
    const LARGE: Host = Host { cores: 32, memory_mib: 128 * 1024 };

    #[test]
    fn profiles_grow_from_minimal_to_maximum() {
        let [minimal, balanced, maximum] =
            [Profile::Minimal, Profile::Balanced, Profile::Maximum].map(|profile| ProfileValues::of(profile, SMALL));
        for (small, large) in [(minimal, balanced), (balanced, maximum)] {
            assert!(small.http_workers <= large.http_workers);
            assert!(small.postgres_max_connections < large.postgres_max_connections);
            assert!(small.user_cache_capacity < large.user_cache_capacity);
            assert!(small.job_concurrency < large.job_concurrency);
        }
        assert_eq!(balanced.postgres_max_connections, 50, "the old application's pool");
        assert_eq!(balanced.http_workers, 2, "a worker per core");
    }

    #[test]
    fn auto_follows_the_host() {
        let small = ProfileValues::of(Profile::Auto, SMALL);
        let large = ProfileValues::of(Profile::Auto, LARGE);
        assert_eq!((small.http_workers, large.http_workers), (2, 32));
        assert!(small.postgres_max_connections < large.postgres_max_connections);
        assert!(large.postgres_max_connections <= 100, "PostgreSQL's own default limit");
        assert!(small.user_cache_capacity < large.user_cache_capacity);
        assert!(small.job_concurrency < large.job_concurrency);
        // A container with little memory gets one hash at a time whatever its cores.
        let tight = ProfileValues::of(Profile::Auto, Host { cores: 16, memory_mib: 128 });
        assert_eq!(tight.concurrent_hashes, 1);
        assert_eq!(tight.user_cache_capacity, 12_800);
    }

    #[test]
    fn the_detected_host_has_cores_and_memory() {
        let host = Host::detect();
        assert!(host.cores >= 1 && host.memory_mib >= 1, "{host:?}");
    }
}
