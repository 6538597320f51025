//! A PostgreSQL server of a test's own, in a temporary directory on a free port, that the test may stop and
//! start again: for outage tests, which must not stop the machine's shared server. Built with the machine's
//! PostgreSQL binaries (`pg_config --bindir`, or the newest `/usr/lib/postgresql/*/bin`); as root, the server
//! runs as the `postgres` user, since PostgreSQL refuses to run as root.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A private PostgreSQL server; stopped and removed when dropped.
#[derive(Debug)]
pub struct PgServer {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    run_as_postgres: bool,
}

impl PgServer {
    /// Creates a cluster (trust authentication, user `postgres`) and starts it.
    ///
    /// # Panics
    /// When the PostgreSQL binaries are missing or the server does not start: the test must fail then.
    pub fn start() -> Self {
        let bin = bin_dir().unwrap_or_else(|| panic!("no PostgreSQL binaries (pg_config or /usr/lib/postgresql)"));
        let dir = std::env::temp_dir().join(format!("rental-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let run_as_postgres = is_root();
        let server = Self { bin, dir, port: free_port(), run_as_postgres };
        if run_as_postgres {
            server.run("chown", &["-R".into(), "postgres:postgres".into(), server.dir.display().to_string()], false);
        }
        let data = server.data_dir().display().to_string();
        let initdb = server.bin.join("initdb").display().to_string();
        server.run(
            &initdb,
            &["-D".into(), data, "-U".into(), "postgres".into(), "--auth=trust".into(), "-E".into(), "UTF8".into()],
            true,
        );
        server.start_again();
        server
    }

    /// The server's URL, database `postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast mode: open sessions are ended) and waits until it is down.
    ///
    /// # Panics
    /// When `pg_ctl` fails.
    pub fn stop(&self) {
        self.pg_ctl(&["stop", "-m", "fast", "-w"]);
    }

    /// Starts the stopped server on the same port and waits until it accepts connections.
    ///
    /// # Panics
    /// When `pg_ctl` fails.
    pub fn start_again(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        let log = self.dir.join("server.log").display().to_string();
        self.pg_ctl(&["start", "-w", "-l", &log, "-o", &options]);
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec!["-D".to_owned(), self.data_dir().display().to_string()];
        all.extend(args.iter().map(|a| (*a).to_owned()));
        self.run(&self.bin.join("pg_ctl").display().to_string(), &all, true);
    }

    /// Runs `program` (as `postgres` when `as_server_user` and this process is root), panicking on failure.
    fn run(&self, program: &str, args: &[String], as_server_user: bool) {
        let mut command = if as_server_user && self.run_as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--", program]);
            command
        } else {
            Command::new(program)
        };
        let output =
            command.args(args).stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data_dir().display().to_string();
        let pg_ctl = self.bin.join("pg_ctl").display().to_string();
        let args = ["-D", data.as_str(), "stop", "-m", "immediate", "-w"];
        let _ = if self.run_as_postgres {
            Command::new("runuser").args(["-u", "postgres", "--", pg_ctl.as_str()]).args(args).output()
        } else {
            Command::new(&pg_ctl).args(args).output()
        };
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn bin_dir() -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
        .filter(|dir| dir.join("initdb").exists());
    from_pg_config.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
            .filter(|dir| dir.join("initdb").exists())
            .collect();
        versions.sort_by_key(|dir| version_of(dir));
        versions.pop()
    })
}

fn version_of(bin: &Path) -> u32 {
    bin.parent().and_then(Path::file_name).and_then(|v| v.to_str()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0").unwrap_or(false)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}
