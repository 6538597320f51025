//! The SMTP sink speaking to a raw client: replies, dot-unstuffing, refusals, stop and restart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use rental_testkit::SmtpSink;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Sends `command` and reads the whole reply (every line of a multi-line one).
async fn converse(stream: &mut BufReader<TcpStream>, command: &str) -> String {
    stream.get_mut().write_all(command.as_bytes()).await.unwrap();
    let mut answer = String::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        answer.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return answer;
        }
    }
}

async fn connect(sink: &SmtpSink) -> BufReader<TcpStream> {
    let mut client = BufReader::new(TcpStream::connect(sink.addr()).await.unwrap());
    let mut greeting = String::new();
    client.read_line(&mut greeting).await.unwrap();
    assert!(greeting.starts_with("220 "), "{greeting}");
    client
}

#[tokio::test]
async fn a_session_records_dot_unstuffed_data_and_refuses_what_it_was_told_to() {
    let sink = SmtpSink::start().await.unwrap();
    sink.reject_recipient("Nobody@Example.com");
    let mut client = connect(&sink).await;
    let ehlo = converse(&mut client, "EHLO test\r\n").await;
    assert!(ehlo.starts_with("250-") && ehlo.contains("8BITMIME") && ehlo.contains("\r\n250 "), "{ehlo}");
    assert!(converse(&mut client, "DATA\r\n").await.starts_with("503"));
    assert!(converse(&mut client, "MAIL FROM:<a@example.com> BODY=8BITMIME\r\n").await.starts_with("250"));
    assert!(converse(&mut client, "RCPT TO:<nobody@example.com>\r\n").await.starts_with("550 5.1.1"));
    assert!(converse(&mut client, "RCPT TO:<b@example.com>\r\n").await.starts_with("250"));
    assert!(converse(&mut client, "RCPT TO:<c@example.com>\r\n").await.starts_with("250"));
    assert!(converse(&mut client, "DATA\r\n").await.starts_with("354"));
    let data = "Subject: x\r\n\r\n..leading dot\r\n...\r\nlast\r\n.\r\n";
    assert!(converse(&mut client, data).await.starts_with("250"));
    assert!(converse(&mut client, "MAIL FROM:<a@example.com>\r\n").await.starts_with("250"));
    assert!(converse(&mut client, "RSET\r\n").await.starts_with("250"));
    assert!(converse(&mut client, "RCPT TO:<b@example.com>\r\n").await.starts_with("503"), "RSET ended it");
    assert!(converse(&mut client, "NOOP\r\n").await.starts_with("250"));
    assert!(converse(&mut client, "STARTTLS\r\n").await.starts_with("502"));
    sink.set_temporary_failure(true);
    assert!(converse(&mut client, "MAIL FROM:<a@example.com>\r\n").await.starts_with("451"));
    assert!(converse(&mut client, "QUIT\r\n").await.starts_with("221"));

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].from, "a@example.com");
    assert_eq!(messages[0].to, vec!["b@example.com".to_owned(), "c@example.com".to_owned()]);
    assert_eq!(messages[0].text(), "Subject: x\r\n\r\n.leading dot\r\n..\r\nlast\r\n");
}

#[tokio::test]
async fn stopping_closes_open_sessions_and_refuses_connections_until_restarted() {
    let mut sink = SmtpSink::start().await.unwrap();
    let mut open = connect(&sink).await;
    sink.stop().await;
    assert!(!sink.is_running());
    let mut rest = String::new();
    assert_eq!(open.read_line(&mut rest).await.unwrap_or(0), 0, "the open session was closed: {rest}");
    assert!(TcpStream::connect(sink.addr()).await.is_err());

    sink.restart().await.unwrap();
    let mut client = connect(&sink).await;
    assert!(converse(&mut client, "NOOP\r\n").await.starts_with("250"));
}
