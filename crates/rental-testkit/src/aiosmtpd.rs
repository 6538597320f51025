//! A real SMTP server in its own process: aiosmtpd (from PyPI), storing each message in a Maildir.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The variable naming a Python interpreter that has aiosmtpd installed (`.ci/run` installs one).
pub const TEST_AIOSMTPD_PYTHON: &str = "TEST_AIOSMTPD_PYTHON";

/// An aiosmtpd process listening on a free loopback port, writing to a Maildir of its own; killed and its
/// Maildir removed when dropped.
#[derive(Debug)]
pub struct Aiosmtpd {
    child: Child,
    port: u16,
    maildir: PathBuf,
}

impl Drop for Aiosmtpd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.maildir);
    }
}

impl Aiosmtpd {
    /// Starts aiosmtpd with the Python named by [`TEST_AIOSMTPD_PYTHON`]; `None` when the variable is unset or
    /// empty.
    ///
    /// # Panics
    /// When the variable is set but the server cannot be started or does not listen within 20 s: a test that
    /// was asked to use a real server must not quietly use none.
    pub fn from_env() -> Option<Self> {
        let python = std::env::var(TEST_AIOSMTPD_PYTHON).ok().filter(|p| !p.trim().is_empty())?;
        Some(Self::start(&python))
    }

    /// Starts aiosmtpd with `python`.
    ///
    /// # Panics
    /// As [`Aiosmtpd::from_env`].
    pub fn start(python: &str) -> Self {
        let port = free_port();
        let maildir = std::env::temp_dir().join(format!("rental-maildir-{}", uuid::Uuid::new_v4().simple()));
        let child = Command::new(python)
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("{TEST_AIOSMTPD_PYTHON}={python} is set but cannot be started: {err}"));
        let mut server = Self { child, port, maildir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = server.child.stderr.take() {
                    let _ = pipe.read_to_string(&mut stderr);
                }
                panic!("aiosmtpd ({python}) exited with {status} before listening:\n{stderr}");
            }
            if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok() {
                return server;
            }
            assert!(Instant::now() < deadline, "aiosmtpd ({python}) did not listen on port {port} within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Maildir it writes to.
    pub fn maildir(&self) -> &Path {
        &self.maildir
    }

    /// Every message stored so far, as received (aiosmtpd adds `X-Peer`, `X-MailFrom` and `X-RcptTo`
    /// headers), in no particular order.
    pub fn messages(&self) -> Vec<Vec<u8>> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else { return Vec::new() };
        entries.filter_map(Result::ok).filter_map(|entry| std::fs::read(entry.path()).ok()).collect()
    }
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()).map(|a| a.port()).unwrap_or(2525)
}
