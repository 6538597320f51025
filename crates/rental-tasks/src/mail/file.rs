//! [`FileMailer`]: the [`Mailer`] that writes `.eml` files instead of sending.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use lettre::message::Mailbox;
use rental_service::{MailMessage, Mailer, PortError, PortFuture};
use uuid::Uuid;

use super::config::{MailConfig, MailConfigError};
use super::message;

/// Bound on writing one file: a local disk answers at once, a hung network mount should not hold a worker.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest file name written, well under the 255 bytes file systems allow.
const MAX_FILE_NAME: usize = 200;

/// Writes each message as `<message id>.eml` in the outbox directory: the raw message as it would go over
/// SMTP, openable in any mail client. The name comes from the `Message-ID`, so a repeat of a message
/// (a job run twice) replaces its file instead of adding another. Each file is written under a temporary name
/// and renamed, so a reader never sees half a message.
#[derive(Debug)]
pub struct FileMailer {
    from: Mailbox,
    dir: PathBuf,
}

impl FileMailer {
    /// A mailer writing to `config.outbox_dir`, which it creates, as `config.from`.
    ///
    /// # Errors
    /// [`MailConfigError`] naming `mail.from` or `mail.outbox_dir`.
    pub fn new(config: &MailConfig) -> Result<Self, MailConfigError> {
        let from = config.sender()?;
        let dir = config.outbox()?;
        std::fs::create_dir_all(&dir).map_err(|source| MailConfigError::Outbox { path: dir.clone(), source })?;
        Ok(Self { from, dir })
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a message with this `Message-ID` (with or without angle brackets) is written to.
    pub fn path_of(&self, message_id: &str) -> PathBuf {
        let trimmed = message_id.trim();
        let bare = trimmed.strip_prefix('<').and_then(|rest| rest.strip_suffix('>')).unwrap_or(trimmed);
        self.dir.join(file_name(bare))
    }

    async fn write(&self, message: &MailMessage) -> Result<(), PortError> {
        let outgoing = message::build(&self.from, message)?;
        let path = self.dir.join(file_name(&outgoing.message_id));
        let temporary = self.dir.join(format!(".{}.tmp", Uuid::now_v7().simple()));
        let bytes = outgoing.message.formatted();
        let write = async {
            tokio::fs::create_dir_all(&self.dir).await?;
            tokio::fs::write(&temporary, &bytes).await?;
            tokio::fs::rename(&temporary, &path).await
        };
        match tokio::time::timeout(WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {
                tracing::debug!(message_id = %outgoing.message_id, path = %path.display(), "mail written");
                Ok(())
            }
            Ok(Err(err)) => {
                let _ = tokio::fs::remove_file(&temporary).await;
                Err(PortError::Unavailable(format!("cannot write {}: {err}", path.display())))
            }
            Err(_elapsed) => Err(PortError::Timeout(WRITE_TIMEOUT)),
        }
    }
}

impl Mailer for FileMailer {
    fn send<'a>(&'a self, message: &'a MailMessage) -> PortFuture<'a, ()> {
        Box::pin(self.write(message))
    }
}

/// `<id>.eml`, with every byte outside a safe set written as `%XX` (so distinct ids never share a file, and
/// none can climb out of the directory); an id too long for a file name keeps its start and a hash of all of
/// it.
fn file_name(message_id: &str) -> String {
    let mut name = String::with_capacity(message_id.len() + 4);
    for (i, byte) in message_id.bytes().enumerate() {
        let safe =
            byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'@' | b'+' | b'=') || (byte == b'.' && i > 0);
        if safe {
            name.push(char::from(byte));
        } else {
            let _ = write!(name, "%{byte:02X}");
        }
    }
    if name.len() > MAX_FILE_NAME {
        let hash = fnv1a(message_id.as_bytes());
        name.truncate(MAX_FILE_NAME - 17);
        let _ = write!(name, "~{hash:016x}");
    }
    name.push_str(".eml");
    name
}

/// FNV-1a, 64 bits: stable across releases and platforms, unlike the standard library's hasher, so a repeat
/// of a message finds its file after an upgrade too.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_keep_plain_ids_and_escape_the_rest() {
        assert_eq!(file_name("job-7@rental.example"), "job-7@rental.example.eml");
        assert_eq!(file_name("../etc/passwd"), "%2E.%2Fetc%2Fpasswd.eml");
        assert_ne!(file_name("a/b"), file_name("a%2Fb"));
        let long = "x".repeat(500);
        let name = file_name(&long);
        assert_eq!(name.len(), MAX_FILE_NAME + 4);
        assert_ne!(name, file_name(&format!("{long}y")));
    }
}
