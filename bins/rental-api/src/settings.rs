//! The binary's configuration: built-in defaults < `config/default.toml` < `config/{RENTAL_ENV}.toml` <
//! `RENTAL__SECTION__KEY` environment variables. Unknown keys are rejected; the result is validated once at
//! start-up and every library crate gets its own `XConfig` section from it.

use std::path::Path;

use config::{Config, Environment, File};
use rental_monitor::MonitorConfig;
use rental_payments::StripeConfig;
use rental_repo::DatabaseConfig;
use rental_service::{
    AuthConfig, CacheConfig, DepositConfig, IdempotencyConfig, JobsConfig, RentalConfig, Secret, ServiceConfig,
};
use rental_tasks::app::NotifyConfig;
use rental_tasks::mail::MailConfig;
use rental_tasks::{SchedulerConfig, WorkerConfig};
use serde::{Deserialize, Serialize};

use crate::middleware::HttpConfig;
use crate::profile::{EffectiveProfile, Host, PerformanceConfig, ProfileValues};
use crate::redis::RedisConfig;

/// The environment variable that names the profile (`development`, `test`, `production`, ...).
pub const ENV_VAR: &str = "RENTAL_ENV";
/// The profile used when `RENTAL_ENV` is unset.
pub const DEFAULT_ENV: &str = "development";

/// Longest lifetime of an idempotency record: 30 days.
const MAX_IDEMPOTENCY_TTL_SECS: u64 = 30 * 86_400;

/// HTTP server settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    pub host: String,
    /// Port to listen on.
    pub port: u16,
    /// Worker threads; unset means one per CPU core.
    pub workers: Option<usize>,
    /// Largest JSON body accepted, in bytes (413 beyond it).
    pub json_limit_bytes: usize,
    /// Largest body of `POST /api/v1/users/bulk`, in bytes: 10,000 users fit in about 1.5 MB.
    pub bulk_json_limit_bytes: usize,
    /// Seconds given to in-flight requests at shutdown.
    pub shutdown_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 8080,
            workers: None,
            json_limit_bytes: 256 * 1024,
            bulk_json_limit_bytes: 8 * 1024 * 1024,
            shutdown_timeout_secs: 30,
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable lines on a terminal, JSON otherwise.
    Auto,
    /// Readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `tracing` filter, e.g. `info` or `info,rental_repo=debug`; `RUST_LOG` overrides it.
    pub level: String,
    /// Output format.
    pub format: LogFormat,
    /// Requests slower than this many milliseconds are logged as warnings instead of at info level.
    pub slow_request_ms: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { level: "info".into(), format: LogFormat::Auto, slow_request_ms: 1000 }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The profile these settings were loaded for (from `RENTAL_ENV`).
    #[serde(skip_deserializing)]
    pub env: String,
    /// The performance profile's values and what overrode them, filled by [`Settings::load_from`].
    #[serde(skip)]
    pub effective: Option<EffectiveProfile>,
    /// HTTP server.
    pub server: ServerConfig,
    /// Database pool.
    pub database: DatabaseConfig,
    /// Authentication.
    pub auth: AuthConfig,
    /// Caches.
    pub cache: CacheConfig,
    /// Rentals: tax rate.
    pub rentals: RentalConfig,
    /// The jobs the services enqueue (attempts, settlement delay).
    pub jobs: JobsConfig,
    /// `Idempotency-Key` records: how long a key answers replays.
    pub idempotency: IdempotencyConfig,
    /// Deposits held on cards: how early a hold is placed, when a held one is flagged before it lapses.
    pub deposits: DepositConfig,
    /// The background worker.
    pub worker: WorkerConfig,
    /// Periodic jobs.
    pub scheduler: SchedulerConfig,
    /// E-mail: SMTP, or `.eml` files in the outbox directory.
    pub mail: MailConfig,
    /// Links and reminders in e-mails, retention of finished jobs.
    pub notify: NotifyConfig,
    /// Logging.
    pub log: LogConfig,
    /// HTTP middleware: timeouts, rate limits, CORS, compression, security headers.
    pub http: HttpConfig,
    /// The performance profile that sizes workers, pools, caches and job concurrency.
    pub performance: PerformanceConfig,
    /// Redis, optional: shares the rate limits across instances.
    pub redis: RedisConfig,
    /// Monitoring: alert thresholds, refresh interval, the `/metrics` token.
    pub monitor: MonitorConfig,
    /// Stripe: keys (payments are off without them), currency, API base URL, bounds on every call.
    pub stripe: StripeConfig,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            env: DEFAULT_ENV.into(),
            effective: None,
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            auth: AuthConfig::default(),
            cache: CacheConfig::default(),
            rentals: RentalConfig::default(),
            jobs: JobsConfig::default(),
            idempotency: IdempotencyConfig::default(),
            deposits: DepositConfig::default(),
            worker: WorkerConfig::default(),
            scheduler: SchedulerConfig::default(),
            mail: MailConfig::default(),
            notify: NotifyConfig::default(),
            log: LogConfig::default(),
            http: HttpConfig::default(),
            performance: PerformanceConfig::default(),
            redis: RedisConfig::default(),
            monitor: MonitorConfig::default(),
            stripe: StripeConfig::default(),
        }
    }
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// A file or variable could not be read or has an unknown key or a wrong type.
    #[error("cannot load configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// The values do not make sense together.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Loads the settings of the profile in `RENTAL_ENV` from `config_dir` and the environment.
    ///
    /// # Errors
    /// [`SettingsError`] naming the key or rule at fault.
    pub fn load(config_dir: &Path) -> Result<Self, SettingsError> {
        let env = std::env::var(ENV_VAR).unwrap_or_else(|_| DEFAULT_ENV.into());
        Self::load_from(config_dir, &env, Environment::with_prefix("RENTAL").prefix_separator("__").separator("__"))
    }

    /// Loads with an explicit profile and environment source (tests pass a fixed map).
    ///
    /// # Errors
    /// [`SettingsError`] naming the key or rule at fault.
    pub fn load_from(config_dir: &Path, env: &str, environment: Environment) -> Result<Self, SettingsError> {
        if env.is_empty() || !env.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(SettingsError::Invalid(format!("{ENV_VAR} must be a plain name, got `{env}`")));
        }
        let configured = Config::builder()
            .add_source(File::from(config_dir.join("default")).required(false))
            .add_source(File::from(config_dir.join(env)).required(false))
            .add_source(environment.try_parsing(true))
            .build()?;
        // The performance profile's values go under everything configured: an explicit key wins.
        let performance = match configured.get_string("performance.profile") {
            Ok(name) => PerformanceConfig {
                profile: name.parse().map_err(|()| {
                    SettingsError::Invalid(format!(
                        "performance.profile must be minimal, balanced, maximum or auto, got `{name}`"
                    ))
                })?,
            },
            Err(config::ConfigError::NotFound(_)) => PerformanceConfig::default(),
            Err(err) => return Err(err.into()),
        };
        let postgres = configured.get_string("database.url").is_ok_and(|url| url.starts_with("postgres"));
        let host = Host::detect();
        let values = ProfileValues::of(performance.profile, host);
        let overridden = values
            .keys(postgres)
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| configured.get_string(key).is_ok())
            .collect();
        let loaded = values.apply(Config::builder(), postgres)?.add_source(configured).build()?;
        let mut settings: Settings = loaded.try_deserialize()?;
        settings.effective = Some(EffectiveProfile { profile: performance.profile, host, values, overridden });
        settings.env = env.to_owned();
        settings.validate()?;
        Ok(settings)
    }

    /// Whether this is a development profile, where a missing JWT secret is generated.
    pub fn is_development(&self) -> bool {
        matches!(self.env.as_str(), "development" | "test")
    }

    fn validate(&mut self) -> Result<(), SettingsError> {
        let invalid = |msg: String| Err(SettingsError::Invalid(msg));
        if self.auth.jwt_secret.is_empty() {
            if !self.is_development() {
                return invalid(format!(
                    "auth.jwt_secret is required in the `{}` profile: set RENTAL__AUTH__JWT_SECRET to at least 32 \
                     random characters",
                    self.env
                ));
            }
            // Development only: a fresh secret per start, so tokens do not survive a restart.
            let random = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
            self.auth.jwt_secret = Secret::new(random);
        }
        if self.auth.jwt_secret.expose().len() < rental_service::MIN_SECRET_LEN {
            return invalid("auth.jwt_secret must be at least 32 characters".into());
        }
        if self.server.json_limit_bytes == 0 || self.server.bulk_json_limit_bytes == 0 {
            return invalid("server.json_limit_bytes and server.bulk_json_limit_bytes must be positive".into());
        }
        if self.server.workers == Some(0) {
            return invalid("server.workers must be at least 1".into());
        }
        if let (Some(min), Some(max)) = (self.database.min_connections, self.database.max_connections)
            && min > max
        {
            return invalid(format!("database.min_connections ({min}) exceeds database.max_connections ({max})"));
        }
        if self.database.max_connections == Some(0) {
            return invalid("database.max_connections must be at least 1".into());
        }
        if self.rentals.tax_rate_bp > 10_000 {
            return invalid("rentals.tax_rate_bp must be 0 to 10000 (100 %)".into());
        }
        if self.auth.access_token_ttl_secs == 0 || self.auth.refresh_token_ttl_secs == 0 {
            return invalid("auth token lifetimes must be positive".into());
        }
        if self.jobs.max_attempts == 0 {
            return invalid("jobs.max_attempts must be at least 1".into());
        }
        if !(60..=MAX_IDEMPOTENCY_TTL_SECS).contains(&self.idempotency.ttl_secs) {
            return invalid(format!(
                "idempotency.ttl_secs must be 60 to {MAX_IDEMPOTENCY_TTL_SECS} (a minute to 30 days), not {}",
                self.idempotency.ttl_secs
            ));
        }
        if self.cache.refresh_ahead_percent > 99 {
            return invalid(format!(
                "cache.refresh_ahead_percent must be 1 to 99, or 0 for off, not {}",
                self.cache.refresh_ahead_percent
            ));
        }
        // A card hold lasts about 7 days online (`hold_life_days`; longer only with extended authorisation):
        // one placed that early would lapse before the rental starts, and one warned of that late has lapsed.
        let life = self.deposits.hold_life_days;
        if !(2..=30).contains(&life) {
            return invalid(format!("deposits.hold_life_days must be 2 to 30, not {life}"));
        }
        if self.deposits.lead_days >= life {
            return invalid(format!("deposits.lead_days must be 0 to {}, not {}", life - 1, self.deposits.lead_days));
        }
        if !(1..life).contains(&self.deposits.expiry_warning_days) {
            return invalid(format!(
                "deposits.expiry_warning_days must be 1 to {} (before the hold lapses), not {}",
                life - 1,
                self.deposits.expiry_warning_days
            ));
        }
        if self.deposits.return_margin_days > 30 {
            return invalid(format!(
                "deposits.return_margin_days must be 0 to 30, not {}",
                self.deposits.return_margin_days
            ));
        }
        self.worker.validate("worker").map_err(SettingsError::Invalid)?;
        self.http.validate().map_err(SettingsError::Invalid)?;
        self.redis.validate().map_err(SettingsError::Invalid)?;
        self.stripe.validate("stripe").map_err(SettingsError::Invalid)?;
        self.monitor.validate("monitor").map_err(|e| SettingsError::Invalid(e.to_string()))?;
        Ok(())
    }

    /// The sections the services are configured with.
    pub fn service_config(&self) -> ServiceConfig {
        ServiceConfig {
            auth: self.auth.clone(),
            cache: self.cache.clone(),
            rentals: self.rentals.clone(),
            jobs: self.jobs.clone(),
            idempotency: self.idempotency.clone(),
            deposits: self.deposits.clone(),
        }
    }

    /// The effective configuration as TOML, secrets and database password redacted.
    ///
    /// # Errors
    /// When the settings cannot be rendered (they always can; the error is passed on, not hidden).
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        let mut shown = self.clone();
        shown.database.url = self.database.redacted_url();
        if shown.monitor.metrics_token.is_some() {
            shown.monitor.metrics_token = Some("***".into());
        }
        toml::to_string_pretty(&shown)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> Environment {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Environment::with_prefix("RENTAL").prefix_separator("__").separator("__").source(Some(map))
    }

    fn dir_with(files: &[(&str, &str)]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rental-config-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, body) in files {
            std::fs::write(dir.join(name), body).unwrap();
        }
        dir
    }

    #[test]
    fn layers_override_in_order() {
        let dir = dir_with(&[
            ("default.toml", "[server]\nport = 9000\nhost = \"0.0.0.0\"\n"),
            ("staging.toml", "[server]\nport = 9100\n[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n"),
        ]);
        let settings = Settings::load_from(&dir, "staging", env(&[("RENTAL__SERVER__PORT", "9200")])).unwrap();
        assert_eq!(settings.server.port, 9200, "environment beats the profile file");
        assert_eq!(settings.server.host, "0.0.0.0", "default.toml beats built-in defaults");
        assert_eq!(settings.env, "staging");
        let settings = Settings::load_from(&dir, "staging", env(&[])).unwrap();
        assert_eq!(settings.server.port, 9100, "profile file beats default.toml");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = dir_with(&[("default.toml", "[server]\nprot = 9000\n")]);
        let err = Settings::load_from(&dir, "development", env(&[])).unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        let dir = dir_with(&[]);
        let err = Settings::load_from(&dir, "development", env(&[("RENTAL__DATABASE__URLL", "x")])).unwrap_err();
        assert!(err.to_string().contains("urll"), "{err}");
    }

    #[test]
    fn jwt_secret_is_required_outside_development() {
        let dir = dir_with(&[]);
        let err = Settings::load_from(&dir, "production", env(&[])).unwrap_err();
        assert!(err.to_string().contains("RENTAL__AUTH__JWT_SECRET"), "{err}");
        let err = Settings::load_from(&dir, "production", env(&[("RENTAL__AUTH__JWT_SECRET", "short")])).unwrap_err();
        assert!(err.to_string().contains("32"), "{err}");
        let dev = Settings::load_from(&dir, "development", env(&[])).unwrap();
        assert!(dev.auth.jwt_secret.expose().len() >= 32, "development generates one");
    }

    #[test]
    fn bad_values_are_explained() {
        let dir = dir_with(&[]);
        let err = Settings::load_from(&dir, "development", env(&[("RENTAL__SERVER__PORT", "eighty")])).unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
        let err = Settings::load_from(
            &dir,
            "development",
            env(&[("RENTAL__DATABASE__MIN_CONNECTIONS", "9"), ("RENTAL__DATABASE__MAX_CONNECTIONS", "3")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("min_connections"), "{err}");
        let err = Settings::load_from(&dir, "development", env(&[("RENTAL__CACHE__REFRESH_AHEAD_PERCENT", "100")]))
            .unwrap_err();
        assert!(err.to_string().contains("cache.refresh_ahead_percent"), "{err}");
        assert!(Settings::load_from(&dir, "../etc", env(&[])).is_err());
    }

    #[test]
    fn deposit_days_must_fit_in_a_holds_life() {
        let dir = dir_with(&[]);
        let settings = Settings::load_from(&dir, "development", env(&[])).unwrap();
        assert_eq!((settings.deposits.hold_life_days, settings.deposits.return_margin_days), (7, 1));
        let warn_late = env(&[("RENTAL__DEPOSITS__EXPIRY_WARNING_DAYS", "7")]);
        let err = Settings::load_from(&dir, "development", warn_late).unwrap_err();
        assert!(err.to_string().contains("deposits.expiry_warning_days must be 1 to 6"), "{err}");
        let longer =
            env(&[("RENTAL__DEPOSITS__HOLD_LIFE_DAYS", "30"), ("RENTAL__DEPOSITS__EXPIRY_WARNING_DAYS", "28")]);
        assert_eq!(Settings::load_from(&dir, "development", longer).unwrap().deposits.expiry_warning_days, 28);
        let shorter = env(&[("RENTAL__DEPOSITS__HOLD_LIFE_DAYS", "5")]);
        let err = Settings::load_from(&dir, "development", shorter).unwrap_err();
        assert!(err.to_string().contains("deposits.expiry_warning_days must be 1 to 4"), "{err}");
        let err =
            Settings::load_from(&dir, "development", env(&[("RENTAL__DEPOSITS__HOLD_LIFE_DAYS", "1")])).unwrap_err();
        assert!(err.to_string().contains("deposits.hold_life_days"), "{err}");
        let err = Settings::load_from(&dir, "development", env(&[("RENTAL__DEPOSITS__RETURN_MARGIN_DAYS", "31")]))
            .unwrap_err();
        assert!(err.to_string().contains("deposits.return_margin_days"), "{err}");
    }

    #[test]
    fn the_performance_profile_sizes_the_process_and_explicit_keys_win() {
        let dir = dir_with(&[("default.toml", "[performance]\nprofile = \"minimal\"\n[worker]\nconcurrency = 7\n")]);
        let settings =
            Settings::load_from(&dir, "development", env(&[("RENTAL__CACHE__LIST_CAPACITY", "123")])).unwrap();
        assert_eq!(settings.server.workers, Some(1), "minimal: one HTTP worker");
        assert_eq!(settings.database.max_connections, Some(4), "minimal on SQLite");
        assert_eq!(settings.cache.user_capacity, 10_000);
        assert_eq!(settings.worker.concurrency, 7, "a file beats the profile");
        assert_eq!(settings.cache.list_capacity, 123, "the environment beats the profile");
        let effective = settings.effective.unwrap();
        assert_eq!(effective.profile, crate::profile::Profile::Minimal);
        assert_eq!(effective.overridden, ["cache.list_capacity", "worker.concurrency"]);

        let postgres =
            env(&[("RENTAL__DATABASE__URL", "postgres://db/rental"), ("RENTAL__PERFORMANCE__PROFILE", "maximum")]);
        let settings = Settings::load_from(&dir_with(&[]), "development", postgres).unwrap();
        assert_eq!((settings.database.max_connections, settings.database.min_connections), (Some(100), Some(50)));
        assert_eq!(settings.worker.concurrency, 64);

        let settings = Settings::load_from(&dir_with(&[]), "development", env(&[])).unwrap();
        assert_eq!(settings.effective.unwrap().profile, crate::profile::Profile::Balanced, "the default");
        assert_eq!(settings.cache.user_capacity, 100_000);
    }

    #[test]
    fn an_unknown_profile_fails_naming_the_key() {
        let err = Settings::load_from(&dir_with(&[]), "development", env(&[("RENTAL__PERFORMANCE__PROFILE", "turbo")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("turbo") && err.contains("performance"), "{err}");
        assert!(err.contains("balanced"), "the valid names are listed: {err}");
    }

    #[test]
    fn the_monitor_section_is_read_and_validated_with_its_key_named() {
        let dir = dir_with(&[(
            "default.toml",
            "[monitor]\nrefresh_interval_secs = 10\n[monitor.thresholds]\ncpu_warn_percent = 70.0\n",
        )]);
        let settings = Settings::load_from(&dir, "development", env(&[])).unwrap();
        assert_eq!(settings.monitor.refresh_interval_secs, 10);
        assert_eq!(settings.monitor.thresholds.cpu_warn_percent, 70.0);
        let err = Settings::load_from(
            &dir,
            "development",
            env(&[("RENTAL__MONITOR__THRESHOLDS__DISK_ERROR_PERCENT", "150")]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("monitor.thresholds.disk_error_percent"), "{err}");
        let err =
            Settings::load_from(&dir, "development", env(&[("RENTAL__MONITOR__METRICS_TOKEN", "short")])).unwrap_err();
        assert!(err.to_string().contains("monitor.metrics_token"), "{err}");
        let err = Settings::load_from(&dir, "development", env(&[("RENTAL__MONITOR__REFRESH_INTERVALSECS", "1")]))
            .unwrap_err();
        assert!(err.to_string().contains("refresh_intervalsecs"), "{err}");
    }

    #[test]
    fn printed_config_hides_secrets() {
        let dir = dir_with(&[]);
        let settings = Settings::load_from(
            &dir,
            "production",
            env(&[
                ("RENTAL__AUTH__JWT_SECRET", "a-very-long-production-secret-value-123"),
                ("RENTAL__DATABASE__URL", "postgres://app:hunter2@db/rental"),
                ("RENTAL__MONITOR__METRICS_TOKEN", "scrape-token-0123456789"),
            ]),
        )
        .unwrap();
        let shown = settings.to_redacted_toml().unwrap();
        assert!(!shown.contains("a-very-long-production-secret-value-123"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("scrape-token-0123456789"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/rental"), "{shown}");
    }
}
