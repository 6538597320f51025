//! Mail tests: SmtpMailer against the test kit's SMTP sink (delivery, MIME structure, Message-ID, how
//! failures are classified), FileMailer's outbox, the templates, and start-up validation of the config.
//! One test runs against a real aiosmtpd process when `TEST_AIOSMTPD_PYTHON` names a Python that has it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use mail_parser::{MessageParser, MimeHeaders};
use rental_service::{MailMessage, Mailer, PortError, Secret};
use rental_tasks::mail::{self, FileMailer, MailConfig, SmtpConfig, SmtpMailer, SmtpTls, TemplateError, Templates};
use rental_testkit::{Aiosmtpd, SmtpSink, TEST_AIOSMTPD_PYTHON};
use serde_json::{Value, json};
use uuid::Uuid;

const FROM: &str = "Rental Desk <desk@rental.example>";

fn smtp_config(port: u16, timeout_secs: u64) -> MailConfig {
    MailConfig {
        from: FROM.into(),
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(port),
            tls: SmtpTls::None,
            timeout_secs,
            ..SmtpConfig::default()
        }),
        ..MailConfig::default()
    }
}

fn message(to: &str, id: &str) -> MailMessage {
    MailMessage {
        to: to.into(),
        subject: format!("Order {id} confirmed"),
        text: format!("Hello Jane,\nyour order {id} is confirmed.\n"),
        html: Some(format!("<p>Hello Jane,</p><p>your order <b>{id}</b> is confirmed.</p>")),
        message_id: Some(format!("{id}@rental.example")),
        request_id: Some(format!("request-of-{id}")),
    }
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(prefix: &str) -> PathBuf {
    std::env::temp_dir().join(format!("{prefix}-{}", Uuid::now_v7().simple()))
}

/// Checks a raw message against what was sent: headers, and a text and an HTML part inside
/// `multipart/alternative` (or a single text part when there was no HTML).
fn assert_message(raw: &[u8], sent: &MailMessage) {
    let parsed = MessageParser::default().parse(raw).expect("the message parses");
    assert_eq!(parsed.subject(), Some(sent.subject.as_str()));
    assert_eq!(parsed.message_id(), sent.message_id.as_deref());
    let request_id = parsed.header("X-Request-Id").and_then(|value| value.as_text());
    assert_eq!(request_id, sent.request_id.as_deref(), "the request id travels as X-Request-Id");
    let to = parsed.to().and_then(|to| to.first()).and_then(|addr| addr.address());
    assert_eq!(to, Some(sent.to.as_str()));
    let from = parsed.from().and_then(|from| from.first()).unwrap();
    assert_eq!((from.name(), from.address()), (Some("Rental Desk"), Some("desk@rental.example")));
    assert_eq!(parsed.text_body_count(), 1);
    let text = parsed.text_part(0).unwrap();
    assert!(text.is_content_type("text", "plain"));
    // Line ends travel as CRLF, and the transport may end the body with a line break of its own.
    let received_text = text.text_contents().map(|t| t.replace("\r\n", "\n").trim_end().to_owned());
    assert_eq!(received_text.as_deref(), Some(sent.text.trim_end()));
    match &sent.html {
        Some(html) => {
            assert!(parsed.root_part().is_content_type("multipart", "alternative"));
            assert_eq!(parsed.html_body_count(), 1);
            let part = parsed.html_part(0).unwrap();
            assert!(part.is_content_type("text", "html"));
            assert_eq!(part.text_contents().map(|t| t.trim_end().to_owned()).as_deref(), Some(html.as_str()));
        }
        None => {
            assert!(parsed.root_part().is_content_type("text", "plain"));
            assert!(parsed.html_bodies().all(|part| !part.is_content_type("text", "html")));
        }
    }
}

// SmtpMailer against the sink.

#[tokio::test]
async fn smtp_delivers_text_and_html_with_the_given_message_id_over_pooled_connections() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = SmtpMailer::new(&smtp_config(sink.port(), 10)).unwrap();

    let first = message("jane@example.com", "order-1");
    mailer.send(&first).await.unwrap();
    let text_only = MailMessage { html: None, request_id: None, ..message("Jim <jim@example.com>", "order-2") };
    mailer.send(&text_only).await.unwrap();

    let received = sink.messages();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].from, "desk@rental.example");
    assert_eq!(received[0].to, vec!["jane@example.com".to_owned()]);
    assert!(received[0].text().contains("Message-ID: <order-1@rental.example>\r\n"));
    assert_message(&received[0].data, &first);
    assert_eq!(received[1].to, vec!["jim@example.com".to_owned()]);
    assert_message(&received[1].data, &MailMessage { to: "jim@example.com".into(), ..text_only });
}

#[tokio::test]
async fn a_message_id_in_angle_brackets_is_sent_as_it_is_and_a_missing_one_is_made_up() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = SmtpMailer::new(&smtp_config(sink.port(), 10)).unwrap();
    let bracketed = MailMessage { message_id: Some("<job-9@rental.example>".into()), ..message("a@example.com", "x") };
    mailer.send(&bracketed).await.unwrap();
    mailer.send(&MailMessage { message_id: None, ..message("a@example.com", "y") }).await.unwrap();

    let received = sink.messages();
    assert!(received[0].text().contains("Message-ID: <job-9@rental.example>\r\n"));
    let parsed = MessageParser::default().parse(&received[1].data).unwrap();
    assert!(parsed.message_id().unwrap().ends_with("@rental.example"), "{:?}", parsed.message_id());
}

#[tokio::test]
async fn a_refused_recipient_is_rejected_with_the_servers_message() {
    let sink = SmtpSink::start().await.unwrap();
    sink.reject_recipient("ghost@example.com");
    let mailer = SmtpMailer::new(&smtp_config(sink.port(), 10)).unwrap();

    let err = mailer.send(&message("ghost@example.com", "order-3")).await.unwrap_err();
    let PortError::Rejected(reason) = err else { panic!("expected Rejected, got {err:?}") };
    assert!(reason.contains("550") && reason.contains("Recipient address rejected"), "{reason}");
    assert!(sink.messages().is_empty());

    // The mailer goes on working for the others.
    mailer.send(&message("jane@example.com", "order-4")).await.unwrap();
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn the_tracked_mailer_counts_successes_and_failures_with_their_time() {
    let sink = SmtpSink::start().await.unwrap();
    sink.reject_recipient("ghost@example.com");
    let (mailer, stats) = mail::build_tracked(&smtp_config(sink.port(), 10)).unwrap();
    let fresh = stats.snapshot();
    assert_eq!(fresh.transport, "smtp 127.0.0.1");
    assert_eq!((fresh.sent, fresh.failed, fresh.last_success_unix_ms, fresh.last_error.as_deref()), (0, 0, None, None));

    mailer.send(&message("jane@example.com", "tracked-1")).await.unwrap();
    mailer.send(&message("ghost@example.com", "tracked-2")).await.unwrap_err();
    let after = stats.snapshot();
    assert_eq!((after.sent, after.failed), (1, 1));
    assert!(after.last_success_unix_ms.unwrap() <= after.last_failure_unix_ms.unwrap());
    assert!(after.last_error.unwrap().contains("550"));
    assert_eq!(sink.messages().len(), 1, "the wrapped mailer really sent");

    let outbox = temp_dir("tracked-outbox");
    let config = MailConfig { outbox_dir: outbox.clone(), ..MailConfig::default() };
    let (mailer, stats) = mail::build_tracked(&config).unwrap();
    mailer.send(&message("jane@example.com", "tracked-3")).await.unwrap();
    assert_eq!(stats.snapshot().sent, 1);
    assert!(stats.snapshot().transport.starts_with("file outbox "));
    assert!(FileMailer::new(&config).unwrap().path_of("tracked-3@rental.example").exists());
}

#[tokio::test]
async fn an_unparsable_recipient_is_rejected_before_any_connection() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = SmtpMailer::new(&smtp_config(sink.port(), 10)).unwrap();
    let err = mailer.send(&message("jane at example dot com", "order-5")).await.unwrap_err();
    assert!(matches!(err, PortError::Rejected(ref reason) if reason.contains("jane at example dot com")), "{err:?}");
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn a_server_that_is_down_is_unavailable_at_once_and_mail_flows_again_when_it_is_back() {
    let mut sink = SmtpSink::start().await.unwrap();
    // A bound far beyond the test's length: failing by timeout would show as Timeout, not Unavailable.
    let mailer = SmtpMailer::new(&smtp_config(sink.port(), 120)).unwrap();
    mailer.send(&message("jane@example.com", "before")).await.unwrap();

    // The pooled connection is closed and new ones are refused.
    sink.stop().await;
    let err = mailer.send(&message("jane@example.com", "during")).await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    let err = mailer.send(&message("jane@example.com", "during-2")).await.unwrap_err();
    let PortError::Unavailable(reason) = err else { panic!("expected Unavailable, got {err:?}") };
    assert!(reason.to_lowercase().contains("connection refused"), "{reason}");

    sink.restart().await.unwrap();
    mailer.send(&message("jane@example.com", "after")).await.unwrap();
    let ids: Vec<_> = sink.messages().iter().map(|m| m.text().contains("Message-ID: <after@")).collect();
    assert_eq!(ids, vec![false, true]);
}

#[tokio::test]
async fn a_temporary_failure_is_unavailable() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = SmtpMailer::new(&smtp_config(sink.port(), 10)).unwrap();
    sink.set_temporary_failure(true);
    let err = mailer.send(&message("jane@example.com", "order-6")).await.unwrap_err();
    let PortError::Unavailable(reason) = err else { panic!("expected Unavailable, got {err:?}") };
    assert!(reason.contains("451"), "{reason}");

    sink.set_temporary_failure(false);
    mailer.send(&message("jane@example.com", "order-6")).await.unwrap();
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn a_server_that_stops_answering_times_out_and_the_next_send_uses_a_new_connection() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = SmtpMailer::new(&smtp_config(sink.port(), 1)).unwrap();
    sink.set_stall(true);
    let err = mailer.send(&message("jane@example.com", "stalled")).await.unwrap_err();
    assert!(matches!(err, PortError::Timeout(bound) if bound == Duration::from_secs(1)), "{err:?}");

    // lettre puts the abandoned connection back in its pool from a task of its own; give it the time to. That
    // connection still waits for its answer: reusing it would time out again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sink.set_stall(false);
    mailer.send(&message("jane@example.com", "fresh")).await.unwrap();
    let received = sink.messages();
    assert_eq!(received.len(), 1);
    assert!(received[0].text().contains("Message-ID: <fresh@rental.example>"));
}

#[tokio::test]
async fn a_tls_failure_is_unavailable() {
    // The sink speaks plain SMTP: an implicit-TLS handshake fails, and it offers no STARTTLS to require.
    let sink = SmtpSink::start().await.unwrap();
    for tls in [SmtpTls::Implicit, SmtpTls::Starttls] {
        let mut config = smtp_config(sink.port(), 10);
        if let Some(smtp) = config.smtp.as_mut() {
            smtp.tls = tls;
        }
        let err = SmtpMailer::new(&config).unwrap().send(&message("jane@example.com", "tls")).await.unwrap_err();
        assert!(matches!(err, PortError::Unavailable(_)), "{tls:?}: {err:?}");
    }
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn concurrent_sends_share_the_pool_and_all_arrive() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = mail::build(&smtp_config(sink.port(), 10)).unwrap();
    let messages: Vec<_> = (0..12).map(|i| message(&format!("user{i}@example.com"), &format!("bulk-{i}"))).collect();
    let results = futures_util::future::join_all(messages.iter().map(|one| mailer.send(one))).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let mut recipients: Vec<_> = sink.messages().into_iter().flat_map(|m| m.to).collect();
    recipients.sort();
    let mut expected: Vec<_> = messages.iter().map(|m| m.to.clone()).collect();
    expected.sort();
    assert_eq!(recipients, expected);
}

#[tokio::test]
async fn composed_templates_go_out_as_rendered() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = mail::build(&smtp_config(sink.port(), 10)).unwrap();
    let templates = Templates::new().unwrap();
    let context = sample("order_confirmation");
    let composed = templates
        .compose("order_confirmation", "jane@example.com", &context, Some("order-7@rental.example".into()))
        .unwrap();
    assert_eq!(composed.subject, "Your order R-2026-0042 is confirmed");
    mailer.send(&composed).await.unwrap();

    let raw = &sink.messages()[0].data;
    let parsed = MessageParser::default().parse(raw).unwrap();
    assert_eq!(parsed.subject(), Some("Your order R-2026-0042 is confirmed"));
    assert_eq!(parsed.message_id(), Some("order-7@rental.example"));
    assert!(parsed.body_text(0).unwrap().contains("1 x Cordless drill & bits, 2026-03-01 to 2026-03-03"));
    assert!(parsed.body_html(0).unwrap().contains("<td>Cordless drill &amp; bits</td>"));
}

// FileMailer.

fn eml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir).unwrap().map(|entry| entry.unwrap().path()).collect();
    files.sort();
    files
}

#[tokio::test]
async fn the_file_mailer_writes_parseable_eml_and_a_repeat_replaces_its_file() {
    let dir = temp_dir("rental-outbox").join("nested");
    let config = MailConfig { from: FROM.into(), outbox_dir: dir.clone(), smtp: None };
    let mailer = FileMailer::new(&config).unwrap();
    assert!(dir.is_dir(), "created at start-up");

    let first = message("jane@example.com", "order-8");
    mailer.send(&first).await.unwrap();
    let path = mailer.path_of("order-8@rental.example");
    assert_eq!(eml_files(&dir), vec![path.clone()]);
    assert_eq!(path.file_name().unwrap(), "order-8@rental.example.eml");
    assert_message(&std::fs::read(&path).unwrap(), &first);

    // The same job again (same Message-ID): the file is replaced, not joined by a second one.
    let repeat = MailMessage { text: "Hello again.\n".into(), ..first.clone() };
    mailer.send(&repeat).await.unwrap();
    assert_eq!(eml_files(&dir), vec![path.clone()]);
    assert_message(&std::fs::read(&path).unwrap(), &repeat);

    // Another message is another file; one without an id gets a new id, hence its own file.
    mailer.send(&message("jim@example.com", "order-9")).await.unwrap();
    mailer.send(&MailMessage { message_id: None, ..first.clone() }).await.unwrap();
    let files = eml_files(&dir);
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(files.iter().all(|file| file.extension().is_some_and(|ext| ext == "eml")), "{files:?}");

    let err = mailer.send(&message("nobody", "order-10")).await.unwrap_err();
    assert!(matches!(err, PortError::Rejected(_)), "{err:?}");
    std::fs::remove_dir_all(dir.parent().unwrap()).unwrap();
}

#[tokio::test]
async fn build_picks_the_outbox_without_smtp_and_smtp_with_it() {
    let dir = temp_dir("rental-outbox");
    let file = mail::build(&MailConfig { outbox_dir: dir.clone(), ..MailConfig::default() }).unwrap();
    assert!(format!("{file:?}").starts_with("FileMailer"), "{file:?}");
    let smtp = mail::build(&smtp_config(2525, 10)).unwrap();
    assert!(format!("{smtp:?}").starts_with("SmtpMailer"), "{smtp:?}");
    std::fs::remove_dir_all(dir).unwrap();
}

// Configuration.

#[test]
fn invalid_settings_fail_at_start_up_naming_the_key() {
    let gmail = || SmtpConfig {
        host: "smtp.gmail.com".into(),
        username: Some("rental@gmail.com".into()),
        password: Some(Secret::new("app-password")),
        ..SmtpConfig::default()
    };
    let with_smtp = |smtp: SmtpConfig| MailConfig { from: FROM.into(), smtp: Some(smtp), ..MailConfig::default() };
    let a_file = temp_dir("rental-not-a-dir");
    std::fs::write(&a_file, b"").unwrap();
    let cases = [
        (MailConfig { from: " ".into(), ..with_smtp(gmail()) }, "mail.from"),
        (MailConfig { from: "Rental <not an address>".into(), ..with_smtp(gmail()) }, "mail.from"),
        (MailConfig { smtp: Some(gmail()), ..MailConfig::default() }, "mail.from"),
        (with_smtp(SmtpConfig { host: String::new(), ..gmail() }), "mail.smtp.host"),
        (with_smtp(SmtpConfig { host: "smtp://smtp.gmail.com".into(), ..gmail() }), "mail.smtp.host"),
        (with_smtp(SmtpConfig { port: Some(0), ..gmail() }), "mail.smtp.port"),
        (with_smtp(SmtpConfig { port: Some(465), ..gmail() }), "mail.smtp.port"),
        (with_smtp(SmtpConfig { tls: SmtpTls::Implicit, port: Some(587), ..gmail() }), "mail.smtp.port"),
        (with_smtp(SmtpConfig { tls: SmtpTls::None, ..gmail() }), "mail.smtp.tls"),
        (with_smtp(SmtpConfig { password: None, ..gmail() }), "mail.smtp.password"),
        (with_smtp(SmtpConfig { password: Some(Secret::new("")), ..gmail() }), "mail.smtp.password"),
        (with_smtp(SmtpConfig { username: None, ..gmail() }), "mail.smtp.username"),
        (with_smtp(SmtpConfig { timeout_secs: 0, ..gmail() }), "mail.smtp.timeout_secs"),
        (with_smtp(SmtpConfig { pool_max_size: 0, ..gmail() }), "mail.smtp.pool_max_size"),
        (MailConfig { outbox_dir: PathBuf::new(), ..MailConfig::default() }, "mail.outbox_dir"),
        (MailConfig { outbox_dir: a_file.join("outbox"), ..MailConfig::default() }, "mail.outbox_dir"),
    ];
    for (config, key) in cases {
        let err = mail::build(&config).map(|_| ()).unwrap_err();
        assert_eq!(err.key(), key, "{config:?}: {err}");
        assert!(err.to_string().starts_with(&format!("{key}: ")), "{err}");
    }
    std::fs::remove_file(a_file).unwrap();

    // Valid: Gmail as documented, implicit TLS, a loopback relay without TLS or credentials (which may take
    // the default local sender).
    let relay = SmtpConfig { host: "localhost".into(), tls: SmtpTls::None, username: None, password: None, ..gmail() };
    for config in [
        with_smtp(gmail()),
        with_smtp(SmtpConfig { tls: SmtpTls::Implicit, ..gmail() }),
        with_smtp(relay.clone()),
        with_smtp(SmtpConfig { host: "[::1]".into(), port: Some(2525), tls: SmtpTls::None, ..gmail() }),
        MailConfig { smtp: Some(relay), ..MailConfig::default() },
    ] {
        SmtpMailer::new(&config).unwrap_or_else(|err| panic!("{config:?}: {err}"));
    }
}

// Templates.

/// A context with every field of `kind`.
fn sample(kind: &str) -> Value {
    match kind {
        "welcome" => json!({ "name": "Jane Doe", "login_url": "https://rental.example/login" }),
        "order_confirmation" => json!({
            "name": "Jane Doe",
            "order_id": "R-2026-0042",
            "lines": [
                { "product": "Cordless drill & bits", "quantity": 1, "starts_at": "2026-03-01",
                  "ends_at": "2026-03-03", "total": "30.00" },
                { "product": "Ladder", "quantity": 2, "starts_at": "2026-03-01", "ends_at": "2026-03-08",
                  "total": "84.00" },
            ],
            "total": "114.00",
            "currency": "EUR",
        }),
        "pickup_reminder" => json!({ "name": "Jane Doe", "order_id": "R-2026-0042", "starts_at": "2026-03-01" }),
        "return_reminder" => json!({ "name": "Jane Doe", "order_id": "R-2026-0042", "ends_at": "2026-03-08" }),
        "overdue_notice" => {
            json!({ "name": "Jane Doe", "order_id": "R-2026-0042", "ends_at": "2026-03-08", "late_fee": "24.00 EUR" })
        }
        "invoice" => json!({ "name": "Jane Doe", "number": "2026-000123", "total": "135.66 EUR",
                             "due_on": "2026-03-15" }),
        "password_reset" => json!({ "name": "Jane Doe", "reset_url": "https://rental.example/reset?token=a&b=c",
                                    "expires_minutes": 30 }),
        "daily_report" => json!({ "date": "2026-03-01", "orders_created": 42, "revenue": "1,234.00 EUR",
                                  "overdue": 3, "dead_jobs": 2 }),
        other => panic!("no sample for {other}"),
    }
}

#[test]
fn every_template_renders_its_sample_with_each_value_in_every_part() {
    let templates = Templates::new().unwrap();
    let kinds: Vec<_> = Templates::kinds().collect();
    assert_eq!(kinds.len(), 8);
    for kind in kinds {
        let context = sample(kind);
        let rendered = templates.render(kind, &context).unwrap_or_else(|err| panic!("{kind}: {err:?}"));
        assert!(!rendered.subject.is_empty() && !rendered.subject.contains('\n'), "{kind}: {:?}", rendered.subject);
        assert!(rendered.html.starts_with("<!DOCTYPE html>"), "{kind}");
        assert!(!rendered.text.contains("{{") && !rendered.html.contains("{{"), "{kind}");
        for (field, value) in context.as_object().unwrap() {
            let shown = match value {
                Value::String(text) => text.clone(),
                Value::Array(_) => continue,
                other => other.to_string(),
            };
            assert!(rendered.text.contains(&shown), "{kind}: text lacks {field} = {shown}:\n{}", rendered.text);
            let escaped = minijinja::HtmlEscape(&shown).to_string();
            assert!(rendered.html.contains(&escaped), "{kind}: html lacks {field} = {escaped}:\n{}", rendered.html);
        }
    }
    let report = templates.render("daily_report", &sample("daily_report")).unwrap();
    assert_eq!(report.subject, "Daily report for 2026-03-01: 2 dead jobs");
    let quiet = templates.render(
        "daily_report",
        &json!({ "date": "2026-03-02", "orders_created": 1,
        "revenue": "0.00 EUR", "overdue": 0, "dead_jobs": 0 }),
    );
    assert_eq!(quiet.unwrap().subject, "Daily report for 2026-03-02");
}

#[test]
fn a_missing_variable_is_an_error_naming_the_template() {
    let templates = Templates::new().unwrap();
    for kind in Templates::kinds() {
        let full = sample(kind);
        for field in full.as_object().unwrap().keys() {
            let mut context = full.clone();
            context.as_object_mut().unwrap().remove(field);
            let err = templates.render(kind, &context).unwrap_err();
            let TemplateError::Render { name, source } = &err else { panic!("{kind} without {field}: {err:?}") };
            assert!(name.starts_with(&format!("{kind}.")), "{name}");
            assert!(source.to_string().contains("undefined"), "{kind} without {field}: {source}");
        }
    }
    let mut line_without_total = sample("order_confirmation");
    line_without_total["lines"][1].as_object_mut().unwrap().remove("total");
    assert!(matches!(templates.render("order_confirmation", &line_without_total), Err(TemplateError::Render { .. })));
}

#[test]
fn an_unknown_kind_is_an_error() {
    let templates = Templates::new().unwrap();
    let err = templates.compose("newsletter", "jane@example.com", &json!({}), None).unwrap_err();
    assert!(matches!(err, TemplateError::UnknownKind(ref kind) if kind == "newsletter"), "{err:?}");
}

// A real SMTP server: aiosmtpd, when TEST_AIOSMTPD_PYTHON names a Python that has it.

#[tokio::test]
async fn aiosmtpd_receives_both_parts_and_the_message_id() {
    let Some(server) = Aiosmtpd::from_env() else {
        println!("{TEST_AIOSMTPD_PYTHON} is not set: the aiosmtpd test has nothing to run against and passes");
        return;
    };
    let port = server.port();

    let mailer = mail::build(&smtp_config(port, 10)).unwrap();
    let sent = [message("jane@example.com", "aio-1"), message("Jim <jim@example.com>", "aio-2")];
    for one in &sent {
        mailer.send(one).await.unwrap();
    }

    // aiosmtpd has stored each message in new/ before it answered the data.
    let mut found = Vec::new();
    for raw in server.messages() {
        let parsed = MessageParser::default().parse(&raw).unwrap();
        let id = parsed.message_id().unwrap().to_owned();
        let rcpt = parsed.header_raw("X-RcptTo").unwrap().trim().to_owned();
        found.push((id, rcpt, raw));
    }
    found.sort();
    assert_eq!(found.len(), 2, "{:?}", found.iter().map(|(id, ..)| id).collect::<Vec<_>>());
    for ((id, rcpt, raw), one) in found.iter().zip(&sent) {
        assert_eq!(Some(id.as_str()), one.message_id.as_deref());
        let address = if one.to.contains("jim") { "jim@example.com" } else { "jane@example.com" };
        assert_eq!(rcpt, address);
        assert_message(raw, &MailMessage { to: address.into(), ..one.clone() });
    }
}

#[tokio::test]
async fn a_check_connects_without_sending_and_moves_only_the_times_and_the_last_error() {
    let mut sink = SmtpSink::start().await.unwrap();
    let (mailer, stats) = mail::build_tracked(&smtp_config(sink.port(), 120)).unwrap();
    mailer.check().await.unwrap();
    let after_check = stats.snapshot();
    assert!(sink.messages().is_empty(), "a check sends nothing");
    assert_eq!((after_check.sent, after_check.failed), (0, 0), "a check is not a send");
    assert!(after_check.last_success_unix_ms.is_some());

    sink.stop().await;
    let err = mailer.check().await.unwrap_err();
    assert!(matches!(err, PortError::Unavailable(_)), "{err:?}");
    let after_failure = stats.snapshot();
    assert_eq!((after_failure.sent, after_failure.failed), (0, 0));
    assert!(after_failure.last_failure_unix_ms >= after_failure.last_success_unix_ms);
    assert!(after_failure.last_error.is_some_and(|e| e.to_lowercase().contains("refused")));

    sink.restart().await.unwrap();
    mailer.check().await.unwrap();
    assert!(stats.snapshot().last_success_unix_ms >= stats.snapshot().last_failure_unix_ms);

    // Files need no server: always ready.
    let config = MailConfig { outbox_dir: temp_dir("check-outbox"), ..MailConfig::default() };
    mail::build(&config).unwrap().check().await.unwrap();
}
