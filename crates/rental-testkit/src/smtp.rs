//! [`SmtpSink`]: an SMTP server on the loopback interface that keeps what it receives, for mail tests that
//! need no external process.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// Longest command line accepted; longer input ends the session.
const MAX_LINE: u64 = 64 * 1024;

/// Largest message accepted; bigger ones are refused with 552 once their data has been read.
const MAX_MESSAGE: usize = 32 * 1024 * 1024;

/// One message as the sink received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), without angle brackets; empty for the null sender.
    pub from: String,
    /// The envelope recipients (`RCPT TO`) that were accepted, in order.
    pub to: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, lines ending in CRLF, without the final `.` line.
    pub data: Vec<u8>,
}

impl ReceivedMail {
    /// The message as text (invalid UTF-8 replaced).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Debug, Default)]
struct State {
    messages: Vec<ReceivedMail>,
    rejected: HashSet<String>,
    temporary_failure: bool,
    stall: bool,
}

#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// A small SMTP server on `127.0.0.1` at a random port, speaking enough ESMTP for a client such as lettre
/// without TLS or authentication: `EHLO`/`HELO` (advertising `8BITMIME` and `SMTPUTF8`), `MAIL FROM`,
/// `RCPT TO`, `DATA` with dot-unstuffing, `RSET`, `NOOP`, `QUIT`.
///
/// It records every message it accepts, and can be told to refuse a recipient (550), to fail every
/// transaction temporarily (451), to stall after a message's data (for timeouts), and to stop and start again
/// on the same port, which a client sees as its server going down (connections refused, open ones closed) and
/// coming back. Stopped when dropped.
#[derive(Debug)]
pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    running: Option<Running>,
}

impl SmtpSink {
    /// Starts a sink on a free port of `127.0.0.1`.
    ///
    /// # Errors
    /// When no port can be bound.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let mut sink = Self { addr, state: Arc::default(), running: None };
        sink.serve(listener);
        Ok(sink)
    }

    /// The address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port the sink listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.state().messages.clone()
    }

    /// Forgets the messages received so far.
    pub fn clear_messages(&self) {
        self.state().messages.clear();
    }

    /// Answers `RCPT TO` for `address` (compared without regard to case) with `550 5.1.1`.
    pub fn reject_recipient(&self, address: &str) {
        self.state().rejected.insert(address.to_ascii_lowercase());
    }

    /// Accepts every recipient again.
    pub fn accept_all_recipients(&self) {
        self.state().rejected.clear();
    }

    /// While `on`, answers `MAIL FROM` with `451 4.3.0`, as a server that is overloaded or greylisting.
    pub fn set_temporary_failure(&self, on: bool) {
        self.state().temporary_failure = on;
    }

    /// While `on`, a session that has sent a message's data gets no answer to it (and to nothing after it),
    /// and the message is not recorded: a server that hangs in the middle of a transaction.
    pub fn set_stall(&self, on: bool) {
        self.state().stall = on;
    }

    /// Whether the sink is accepting connections.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Stops listening and closes every open session; returns once the port is closed. Does nothing when
    /// stopped already.
    pub async fn stop(&mut self) {
        if let Some(Running { stop, task }) = self.running.take() {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Listens again on the same port (what it received and was told is kept). Does nothing when running.
    ///
    /// # Errors
    /// When the port cannot be bound again (another process took it meanwhile).
    pub async fn restart(&mut self) -> io::Result<()> {
        if self.running.is_none() {
            let listener = TcpListener::bind(self.addr).await?;
            self.serve(listener);
        }
        Ok(())
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, Arc::clone(&self.state), stopped));
        self.running = Some(Running { stop, task });
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        if let Some(Running { task, .. }) = self.running.take() {
            // Aborting drops the listener and the set of sessions, which aborts them too.
            task.abort();
        }
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>, mut stopped: oneshot::Receiver<()>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    sessions.spawn(session(stream, Arc::clone(&state)));
                }
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    drop(listener);
    sessions.shutdown().await;
}

/// One SMTP session; ends at `QUIT`, at the client's end of stream, or on an I/O error.
async fn session(stream: TcpStream, state: Arc<Mutex<State>>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    reply(&mut write, "220 rental-testkit SmtpSink ESMTP ready").await?;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    let mut line = Vec::new();
    loop {
        if !read_line(&mut reader, &mut line).await? {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line);
        let command = text.trim_end_matches(['\r', '\n']);
        let (verb, argument) = command.split_once(' ').unwrap_or((command, ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                reply(&mut write, "250-rental-testkit\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 33554432").await?;
            }
            "HELO" => reply(&mut write, "250 rental-testkit").await?,
            "MAIL" => {
                let Some(sender) = path(argument, "FROM:") else {
                    reply(&mut write, "501 5.5.4 Syntax: MAIL FROM:<address>").await?;
                    continue;
                };
                if from.is_some() {
                    reply(&mut write, "503 5.5.1 Error: nested MAIL command").await?;
                } else if lock(&state).temporary_failure {
                    reply(&mut write, "451 4.3.0 Temporary failure, please try again later").await?;
                } else {
                    from = Some(sender);
                    to.clear();
                    reply(&mut write, "250 2.1.0 Ok").await?;
                }
            }
            "RCPT" => {
                let Some(recipient) = path(argument, "TO:") else {
                    reply(&mut write, "501 5.5.4 Syntax: RCPT TO:<address>").await?;
                    continue;
                };
                if from.is_none() {
                    reply(&mut write, "503 5.5.1 Error: need MAIL command").await?;
                } else if lock(&state).rejected.contains(&recipient.to_ascii_lowercase()) {
                    let answer = format!("550 5.1.1 <{recipient}>: Recipient address rejected: User unknown");
                    reply(&mut write, &answer).await?;
                } else {
                    to.push(recipient);
                    reply(&mut write, "250 2.1.5 Ok").await?;
                }
            }
            "DATA" => {
                let Some(sender) = from.take().filter(|_| !to.is_empty()) else {
                    from = None;
                    to.clear();
                    reply(&mut write, "503 5.5.1 Error: need MAIL and RCPT commands").await?;
                    continue;
                };
                reply(&mut write, "354 End data with <CR><LF>.<CR><LF>").await?;
                let Some(data) = read_data(&mut reader, &mut line).await? else {
                    reply(&mut write, "552 5.3.4 Message size exceeds fixed limit").await?;
                    to.clear();
                    continue;
                };
                let recipients = std::mem::take(&mut to);
                let stall = {
                    let mut state = lock(&state);
                    if !state.stall {
                        state.messages.push(ReceivedMail { from: sender, to: recipients, data });
                    }
                    state.stall
                };
                if stall {
                    // Read and ignore everything until the client gives up and closes.
                    while read_line(&mut reader, &mut line).await? {}
                    return Ok(());
                }
                reply(&mut write, "250 2.0.0 Ok: queued").await?;
            }
            "RSET" => {
                from = None;
                to.clear();
                reply(&mut write, "250 2.0.0 Ok").await?;
            }
            "NOOP" => reply(&mut write, "250 2.0.0 Ok").await?,
            "VRFY" => reply(&mut write, "252 2.0.0 Cannot verify, send some mail").await?,
            "QUIT" => {
                reply(&mut write, "221 2.0.0 Bye").await?;
                return Ok(());
            }
            "" => reply(&mut write, "500 5.5.2 Error: bad syntax").await?,
            _ => reply(&mut write, "502 5.5.2 Error: command not recognized").await?,
        }
    }
}

/// Reads one line into `line`, its ending included; `false` at the end of the stream.
async fn read_line(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    let read = (&mut *reader).take(MAX_LINE).read_until(b'\n', line).await?;
    if read == 0 {
        return Ok(false);
    }
    if !line.ends_with(b"\n") && read as u64 >= MAX_LINE {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
    }
    Ok(true)
}

/// Reads a message's data up to the line holding a single dot, undoing dot-stuffing; `None` when it was too
/// big (read to its end all the same, so that the session can go on).
async fn read_data(
    reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>,
    line: &mut Vec<u8>,
) -> io::Result<Option<Vec<u8>>> {
    let mut data = Vec::new();
    let mut too_big = false;
    loop {
        if !read_line(reader, line).await? {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed during DATA"));
        }
        if line.as_slice() == b".\r\n" || line.as_slice() == b".\n" {
            return Ok(if too_big { None } else { Some(data) });
        }
        let content = line.strip_prefix(b".").unwrap_or(line);
        if data.len() + content.len() > MAX_MESSAGE {
            too_big = true;
            data = Vec::new();
        } else if !too_big {
            data.extend_from_slice(content);
        }
    }
}

/// The address inside `<...>` after `keyword` (`FROM:` or `TO:`, any case), parameters after it ignored.
fn path(argument: &str, keyword: &str) -> Option<String> {
    let argument = argument.trim_start();
    let head = argument.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = argument[keyword.len()..].trim_start();
    let inner = rest.strip_prefix('<')?;
    let end = inner.find('>')?;
    Some(inner[..end].to_owned())
}

/// Sends a reply in one write: two small writes would wait on the client's delayed acknowledgement.
async fn reply(write: &mut OwnedWriteHalf, lines: &str) -> io::Result<()> {
    write.write_all(format!("{lines}\r\n").as_bytes()).await?;
    write.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn paths_are_read_with_or_without_parameters() {
        assert_eq!(path("FROM:<a@b.c>", "FROM:").as_deref(), Some("a@b.c"));
        assert_eq!(path("from: <a@b.c> BODY=8BITMIME SMTPUTF8", "FROM:").as_deref(), Some("a@b.c"));
        assert_eq!(path("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path("TO:a@b.c", "TO:"), None);
        assert_eq!(path("FROM:<a@b.c>", "TO:"), None);
        assert_eq!(path("", "TO:"), None);
    }
}
