//! `--spawn-server`: runs an already built `rental-api` as a child process for the load test, and reads a
//! process's peak memory.

use std::fs::File;
use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::time::{Instant, sleep};
use uuid::Uuid;

use super::http::{Target, fetch};
use crate::workspace_root;

/// How long the server may take to answer its liveness probe (migrations included).
const START_TIMEOUT: Duration = Duration::from_secs(120);

/// A `rental-api serve` child process, killed when dropped. It runs in the workspace root, where it finds
/// `config/`.
#[derive(Debug)]
pub struct SpawnedServer {
    child: Child,
    base_url: String,
    log: PathBuf,
}

/// Environment of both `serve` and `create-admin`: the same database, port and signing secret, and no rate
/// limits (the load test sends thousands of requests per second from one address and user; it measures the
/// server, not its limiter).
fn server_env(database_url: &str, port: u16, jwt_secret: &str) -> [(&'static str, String); 5] {
    [
        ("RENTAL__DATABASE__URL", database_url.to_owned()),
        ("RENTAL__SERVER__PORT", port.to_string()),
        ("RENTAL_ENV", "production".to_owned()),
        ("RENTAL__AUTH__JWT_SECRET", jwt_secret.to_owned()),
        ("RENTAL__HTTP__RATE_LIMIT__ENABLED", "false".to_owned()),
    ]
}

/// A port that was free a moment ago: the OS picks it, and it is released at once for the server to take.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot find a free port")?;
    Ok(listener.local_addr().context("cannot read the free port")?.port())
}

/// A signing secret of 48 random characters, new for every run.
fn random_secret() -> String {
    let mut secret = format!("{}{}", Uuid::new_v4().simple(), Uuid::new_v4().simple());
    secret.truncate(48);
    secret
}

impl SpawnedServer {
    /// Starts `bin serve` on a free loopback port with a fresh JWT secret, waits until `/health/live`
    /// answers 2xx, then creates the admin `email` with `password` (an existing one is kept). The server's
    /// output goes to `log`.
    ///
    /// # Errors
    /// When the binary is missing, exits, does not become live in time, or `create-admin` fails for another
    /// reason than an existing account.
    pub async fn start(bin: &Path, database_url: &str, log: PathBuf, admin: (&str, &str)) -> anyhow::Result<Self> {
        if !bin.is_file() {
            bail!("{} does not exist; build it first with `cargo build --release -p rental-api`", bin.display());
        }
        let port = free_port()?;
        let env = server_env(database_url, port, &random_secret());
        let out = File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone().context("cannot share the log file")?;
        let child = Command::new(bin)
            .arg("serve")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .current_dir(workspace_root())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut server = Self { child, base_url: format!("http://127.0.0.1:{port}"), log };
        server.wait_until_live().await?;
        create_admin(bin, &env, admin)?;
        Ok(server)
    }

    /// `http://127.0.0.1:<port>` of the server.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls `/health/live` until it answers 2xx, failing early when the process exits.
    async fn wait_until_live(&mut self) -> anyhow::Result<()> {
        let target = Target::resolve(&self.base_url).await?;
        let probe = target.get("/health/live")?;
        let give_up = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("cannot watch the server process")? {
                bail!("the server exited during start-up ({status}); see {}", self.log.display());
            }
            if matches!(fetch(&target, &probe).await, Ok((status, _)) if status.is_success()) {
                return Ok(());
            }
            if Instant::now() > give_up {
                bail!("the server was not live after {START_TIMEOUT:?}; see {}", self.log.display());
            }
            sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for SpawnedServer {
    fn drop(&mut self) {
        // The process may already have exited; either way nothing is left running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `bin create-admin --email <email> --password-stdin`, writing the password to its stdin. An account
/// that already exists is fine: its password is checked by the login that follows.
fn create_admin(bin: &Path, env: &[(&str, String)], (email, password): (&str, &str)) -> anyhow::Result<()> {
    let mut child = Command::new(bin)
        .args(["create-admin", "--email", email, "--password-stdin"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(workspace_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {} create-admin", bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        writeln!(stdin, "{password}").context("cannot write the password to create-admin")?;
    }
    let output = child.wait_with_output().context("create-admin did not finish")?;
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    if output.status.success() {
        println!("created the load-test admin {email}");
    } else if said.to_lowercase().contains("already exists") {
        println!("the load-test admin {email} already exists");
    } else {
        bail!("create-admin failed ({}): {}", output.status, said.trim());
    }
    Ok(())
}

/// The peak resident set size (`VmHWM`) of process `pid`, in KiB, from `/proc/<pid>/status`.
///
/// # Errors
/// When the process does not exist or the file has no `VmHWM` line (not Linux).
pub fn peak_rss_kib(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{path} has no VmHWM line"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_peak_rss_is_readable() {
        assert!(peak_rss_kib(std::process::id()).unwrap() > 0);
    }

    #[test]
    fn secrets_are_48_characters_and_differ() {
        let (a, b) = (random_secret(), random_secret());
        assert_eq!(a.len(), 48);
        assert_ne!(a, b);
    }
}
