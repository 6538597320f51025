//! A [`MailMessage`] as the MIME message both mailers send.

use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use rental_service::{MailMessage, PortError};
use uuid::Uuid;

/// The header naming the request a message was sent for.
const X_REQUEST_ID: HeaderName = HeaderName::new_from_ascii_str("X-Request-Id");

/// A message ready to go, with the `Message-ID` it carries (without angle brackets).
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub message: Message,
    pub message_id: String,
}

/// Builds the MIME message: `multipart/alternative` with a text and an HTML part when there is HTML, a single
/// `text/plain` part otherwise; `Message-ID` from the message, or a new one at the sender's domain; an
/// `X-Request-Id` header with the message's request id when it has a sane one (another is left out: the message
/// matters more than its trace).
///
/// # Errors
/// [`PortError::Rejected`] for what no retry can fix: an unparsable recipient or message id.
pub(crate) fn build(from: &Mailbox, message: &MailMessage) -> Result<Outgoing, PortError> {
    let to = message
        .to
        .trim()
        .parse::<Mailbox>()
        .map_err(|err| PortError::Rejected(format!("invalid recipient address {:?}: {err}", message.to)))?;
    let message_id = match &message.message_id {
        Some(id) => normalise_message_id(id)?,
        None => format!("{}@{}", Uuid::now_v7().simple(), from.email.domain()),
    };
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(one_line(&message.subject))
        .message_id(Some(format!("<{message_id}>")));
    match message.request_id.as_deref() {
        Some(id) if rental_service::context::is_sane(id) => {
            builder = builder.raw_header(HeaderValue::new(X_REQUEST_ID, id.to_owned()));
        }
        Some(id) => tracing::debug!(request_id = ?id, "a request id unfit for a header is left out of the message"),
        None => {}
    }
    let built = match &message.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(message.text.clone(), html.clone())),
        None => builder.singlepart(SinglePart::plain(message.text.clone())),
    };
    let message = built.map_err(|err| PortError::Rejected(format!("cannot build the message: {err}")))?;
    Ok(Outgoing { message, message_id })
}

/// The id without the angle brackets it may already carry; it must be visible ASCII without brackets or
/// spaces, as RFC 5322 wants, since it goes into a header as it is.
fn normalise_message_id(id: &str) -> Result<String, PortError> {
    let trimmed = id.trim();
    let bare = trimmed.strip_prefix('<').and_then(|rest| rest.strip_suffix('>')).unwrap_or(trimmed);
    let valid = !bare.is_empty() && bare.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
    if valid { Ok(bare.to_owned()) } else { Err(PortError::Rejected(format!("invalid Message-ID {id:?}"))) }
}

/// Subjects are one line: a line break would end the header.
fn one_line(subject: &str) -> String {
    subject.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn from() -> Mailbox {
        "Rental <noreply@rental.example>".parse().unwrap()
    }

    fn message() -> MailMessage {
        MailMessage {
            to: "Jane <jane@example.com>".into(),
            subject: "Your order\r\nBcc: evil@example.com".into(),
            text: "Hello".into(),
            html: None,
            message_id: Some("<job-7@rental>".into()),
            request_id: None,
        }
    }

    #[test]
    fn the_message_id_loses_its_brackets_and_gets_them_back_in_the_header() {
        let outgoing = build(&from(), &message()).unwrap();
        assert_eq!(outgoing.message_id, "job-7@rental");
        let raw = String::from_utf8(outgoing.message.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <job-7@rental>\r\n"), "{raw}");
        assert!(raw.contains("Subject: Your order Bcc: evil@example.com\r\n"), "{raw}");
        assert!(raw.contains("Content-Type: text/plain"), "{raw}");
    }

    #[test]
    fn the_request_id_goes_into_its_header_when_it_is_sane() {
        let traced = build(&from(), &MailMessage { request_id: Some("abc-123".into()), ..message() }).unwrap();
        let raw = String::from_utf8(traced.message.formatted()).unwrap();
        assert!(raw.contains("X-Request-Id: abc-123\r\n"), "{raw}");
        for id in [None, Some("abc\r\nBcc: spy@example.com".to_owned())] {
            let untraced = build(&from(), &MailMessage { request_id: id, ..message() }).unwrap();
            let raw = String::from_utf8(untraced.message.formatted()).unwrap();
            assert!(!raw.contains("X-Request-Id") && !raw.contains("spy"), "{raw}");
        }
    }

    #[test]
    fn a_missing_message_id_is_made_up_at_the_senders_domain() {
        let outgoing = build(&from(), &MailMessage { message_id: None, ..message() }).unwrap();
        assert!(outgoing.message_id.ends_with("@rental.example"), "{}", outgoing.message_id);
    }

    #[test]
    fn bad_recipients_and_ids_are_rejected() {
        let bad_to = build(&from(), &MailMessage { to: "not an address".into(), ..message() });
        assert!(matches!(bad_to, Err(PortError::Rejected(_))));
        for id in ["", "<>", "a b@c", "a\r\nBcc: x@y", "<a<b>"] {
            let bad_id = build(&from(), &MailMessage { message_id: Some(id.into()), ..message() });
            assert!(matches!(bad_id, Err(PortError::Rejected(_))), "{id:?}");
        }
    }
}
