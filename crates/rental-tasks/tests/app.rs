//! The rental backend's jobs end to end: services enqueue in their units of work, a worker runs the jobs and
//! mails through SMTP to the test kit's sink (recipients, subjects, both parts, Message-IDs derived from the
//! jobs); password recovery and reset; the order's confirmation and settlement; an SMTP outage rides on
//! retries; a rejected recipient dead-letters its job alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mail_parser::MessageParser;
use rental_repo::{Database, DatabaseConfig, JobState, JobStore};
use rental_service::Clock;
use rental_service::jobs::kinds;
use rental_service::{
    AuthConfig, ManualClock, NewCategory, NewLocation, NewProduct, NewRental, NewRentalLine, NewUnit, Principal,
    Registration, Secret, ServiceConfig, ServiceError, Services,
};
use rental_tasks::app::{self, NotifyConfig};
use rental_tasks::mail::{self, MailConfig, SmtpConfig, SmtpTls, Templates};
use rental_tasks::{RetryPolicy, Worker, WorkerConfig};
use rental_testkit::{ReceivedMail, SmtpSink, TestDb};
use serde_json::json;
use tokio_util::sync::CancellationToken;

struct World {
    services: Services,
    db: Database,
    sink: SmtpSink,
    stop: CancellationToken,
    worker: tokio::task::JoinHandle<()>,
    _db: TestDb,
}

async fn world() -> World {
    world_at(None).await
}

/// A world whose services and worker judge time by `clock` (the system's when `None`).
async fn world_at(clock: Option<ManualClock>) -> World {
    let test_db = TestDb::new().await;
    let config = DatabaseConfig {
        max_connections: Some(8),
        min_connections: Some(0),
        ..DatabaseConfig::with_url(test_db.url())
    };
    let db = Database::connect(&config).await.unwrap();
    let service_config = ServiceConfig {
        auth: AuthConfig {
            jwt_secret: Secret::new("tasks-test-secret-tasks-test-secret!"),
            argon2_memory_kib: 1024,
            argon2_iterations: 1,
            ..AuthConfig::default()
        },
        ..ServiceConfig::default()
    };
    let services = match &clock {
        Some(clock) => Services::with_clock(db.clone(), &service_config, Arc::new(clock.clone())).unwrap(),
        None => Services::new(db.clone(), &service_config).unwrap(),
    };
    let sink = SmtpSink::start().await.unwrap();
    let mail_config = MailConfig {
        from: "Rental <desk@rental.example>".into(),
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: Some(sink.port()),
            tls: SmtpTls::None,
            timeout_secs: 2,
            ..SmtpConfig::default()
        }),
        ..MailConfig::default()
    };
    let mailer = mail::build(&mail_config).unwrap();
    let templates = Arc::new(Templates::new().unwrap());
    let notify = NotifyConfig { base_url: "https://rental.example".into(), ..NotifyConfig::default() };
    let registry = app::registry(services.clone(), mailer, templates, notify);
    let worker_config = WorkerConfig {
        poll_interval_ms: 50,
        lease_secs: 5,
        rescue_interval_secs: 1,
        retry: RetryPolicy { base_ms: 50, cap_ms: 200 },
        ..WorkerConfig::default()
    };
    let mut worker = Worker::on(&services.jobs.store(), registry, worker_config);
    if let Some(clock) = clock {
        worker = worker.with_clock(Arc::new(clock));
    }
    let stop = CancellationToken::new();
    let task = tokio::spawn(worker.run(stop.clone()));
    World { services, db, sink, stop, worker: task, _db: test_db }
}

impl World {
    /// Waits until the sink holds `n` messages, for at most 20 s.
    async fn mails(&self, n: usize) -> Vec<ReceivedMail> {
        for _ in 0..400 {
            let messages = self.sink.messages();
            if messages.len() >= n {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("expected {n} messages, got {:?}", self.sink.messages().len());
    }

    /// Waits until no job is waiting or running.
    async fn settle(&self) {
        let store = self.services.jobs.store();
        for _ in 0..400 {
            let counts = store.counts(self.services.clock.now()).await.unwrap();
            if counts.iter().all(|c| !(c.state.is_waiting() && c.due > 0) && c.state != JobState::Running) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the queue did not drain");
    }

    async fn stop(self) {
        self.stop.cancel();
        self.worker.await.unwrap();
    }
}

struct Parsed {
    to: Vec<String>,
    subject: String,
    text: String,
    html: String,
    message_id: String,
}

fn parse(mail: &ReceivedMail) -> Parsed {
    let message = MessageParser::default().parse(mail.data.as_slice()).unwrap();
    Parsed {
        to: mail.to.clone(),
        subject: message.subject().unwrap_or_default().to_owned(),
        text: message.body_text(0).unwrap_or_default().into_owned(),
        html: message.body_html(0).unwrap_or_default().into_owned(),
        message_id: message.message_id().unwrap_or_default().to_owned(),
    }
}

async fn register(services: &Services, email: &str) {
    let registration =
        Registration { email: email.into(), full_name: "Ada Lovelace".into(), password: "first-password".into() };
    services.auth.register(registration).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_account_gets_its_welcome_mail_with_the_jobs_message_id() {
    let world = world().await;
    register(&world.services, "ada@example.com").await;
    let mail = parse(&world.mails(1).await[0]);
    assert_eq!(mail.to, vec!["ada@example.com".to_owned()]);
    assert!(mail.subject.to_lowercase().contains("welcome"), "{}", mail.subject);
    assert!(mail.text.contains("Ada Lovelace") && mail.html.contains("Ada Lovelace"), "both parts name the user");
    let jobs = world.services.jobs.store();
    let query = rental_repo::job_list_spec().parse(&[("kind".into(), kinds::MAIL.into())]).unwrap();
    let job = jobs.list(&query).await.unwrap().items()[0].clone();
    assert_eq!(mail.message_id, format!("{}@rental.localhost", job.id), "the Message-ID is the job's");
    world.settle().await;
    assert_eq!(jobs.find(job.id).await.unwrap().unwrap().state, JobState::Succeeded);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mail_carries_the_request_id_of_the_request_that_caused_it() {
    let world = world().await;
    // As the HTTP middleware runs a request: registration enqueues the welcome mail inside the request's scope.
    let registration = Registration {
        email: "ada@example.com".into(),
        full_name: "Ada Lovelace".into(),
        password: "pw-123456".into(),
    };
    rental_service::context::scope(Some("abc-123".into()), world.services.auth.register(registration)).await.unwrap();
    // The recovery job is enqueued in the request's scope; the mail it sends, from its own run, carries the id on.
    let recovery = world.services.auth.request_password_recovery("ada@example.com");
    rental_service::context::scope(Some("def-456".into()), recovery).await.unwrap();
    register(&world.services, "bob@example.com").await;

    let messages = world.mails(3).await;
    let request_id_to = |to: &str, subject: &str| {
        let mail = messages
            .iter()
            .find(|m| m.to == vec![to.to_owned()] && parse(m).subject.to_lowercase().contains(subject))
            .unwrap_or_else(|| {
                panic!("{to} {subject}: {:?}", messages.iter().map(|m| parse(m).subject).collect::<Vec<_>>())
            });
        let message = MessageParser::default().parse(mail.data.as_slice()).unwrap();
        message.header("X-Request-Id").and_then(|v| v.as_text()).map(str::to_owned)
    };
    assert_eq!(request_id_to("ada@example.com", "welcome").as_deref(), Some("abc-123"));
    assert_eq!(request_id_to("ada@example.com", "password").as_deref(), Some("def-456"));
    assert_eq!(request_id_to("bob@example.com", "welcome"), None, "no request, no header");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn password_recovery_mails_a_single_use_token_that_ends_every_session() {
    let world = world().await;
    let services = &world.services;
    register(services, "ada@example.com").await;
    world.mails(1).await;
    let old_session = services.auth.login("ada@example.com", "first-password").await.unwrap();

    services.auth.request_password_recovery("nobody@example.com").await.unwrap();
    services.auth.request_password_recovery("ADA@example.com").await.unwrap();
    world.settle().await;
    let messages = world.mails(2).await;
    assert_eq!(messages.len(), 2, "a reset mail for the account, none for the unknown address");
    let reset = parse(&messages[1]);
    assert_eq!(reset.to, vec!["ada@example.com".to_owned()]);
    let link = reset.text.split_whitespace().find(|w| w.starts_with("https://rental.example/reset-password?token="));
    let token = link.unwrap().rsplit('=').next().unwrap().trim_end_matches(['.', ',']).to_owned();
    assert!(reset.html.contains(&token), "the HTML part has the same link");

    let weak = services.auth.reset_password(&token, "short").await;
    assert!(matches!(weak, Err(ServiceError::Invalid(_))), "{weak:?}");
    services.auth.reset_password(&token, "second-password").await.unwrap();
    let again = services.auth.reset_password(&token, "third-password").await;
    assert!(matches!(again, Err(ServiceError::Unauthorized(_))), "the token works once: {again:?}");
    assert!(services.auth.refresh(&old_session.refresh_token).await.is_err(), "every session ended");
    assert!(services.auth.login("ada@example.com", "first-password").await.is_err());
    services.auth.login("ada@example.com", "second-password").await.unwrap();
    assert!(matches!(
        services.auth.reset_password("not-a-token", "fourth-password").await,
        Err(ServiceError::Unauthorized(_))
    ));
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_mails_its_confirmation_and_its_settlement_job_is_done_by_the_fast_path() {
    let world = world().await;
    let services = &world.services;
    services.users.create_admin("root@example.com", "root-password").await.unwrap();
    let tokens = services.auth.login("root@example.com", "root-password").await.unwrap();
    let admin: Principal = services.auth.authenticate(&tokens.access_token).await.unwrap();
    let c = &services.catalogue;
    let category = c.create_category(&admin, NewCategory { name: "Tents".into(), description: None }).await.unwrap();
    let depot = c.create_location(&admin, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    let product = NewProduct {
        category_id: category.id,
        sku: "TENT-1".into(),
        name: "Dome tent".into(),
        currency: "EUR".into(),
        price_per_day_minor: 1_500,
        ..NewProduct::default()
    };
    let product = c.create_product(&admin, product).await.unwrap();
    let unit = NewUnit { serial_number: "T-1".into(), condition: None, location_id: depot.id };
    c.add_units(&admin, product.id, vec![unit]).await.unwrap();
    register(services, "camper@example.com").await;
    let tokens = services.auth.login("camper@example.com", "first-password").await.unwrap();
    let camper = services.auth.authenticate(&tokens.access_token).await.unwrap();
    let start = Utc::now() + chrono::Duration::days(2);
    let rental = NewRental {
        customer_id: None,
        status: None,
        lines: vec![NewRentalLine {
            product_id: product.id,
            quantity: 1,
            start,
            end: start + chrono::Duration::days(3),
        }],
        notes: None,
    };
    let order = services.rentals.create(&camper, rental).await.unwrap();

    let messages = world.mails(2).await;
    let confirmation = messages
        .iter()
        .map(parse)
        .find(|m| m.to == vec!["camper@example.com".to_owned()] && m.subject.contains("confirmed"))
        .unwrap_or_else(|| panic!("{:?}", messages.iter().map(|m| parse(m).subject).collect::<Vec<_>>()));
    assert!(confirmation.text.contains(&order.id.to_string()), "{}", confirmation.text);
    assert!(
        confirmation.text.contains("Dome tent") && confirmation.text.contains("45.00 EUR"),
        "{}",
        confirmation.text
    );
    let store = services.jobs.store();
    let query = rental_repo::job_list_spec().parse(&[("kind".into(), kinds::SETTLE_ORDER.into())]).unwrap();
    let mut settle = store.list(&query).await.unwrap().items()[0].clone();
    for _ in 0..100 {
        if settle.state == JobState::Succeeded {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        settle = store.find(settle.id).await.unwrap().unwrap();
    }
    assert_eq!((settle.state, settle.attempts), (JobState::Succeeded, 0), "settled after the commit, never run");
    let invoice = services.billing.list_invoices(&camper, &[]).await.unwrap().items()[0].clone();
    assert!(invoice.number.is_some(), "numbered after the commit");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_smtp_outage_is_ridden_out_and_a_rejected_recipient_dies_alone() {
    let mut world = world().await;
    world.sink.stop().await;
    for n in 0..5 {
        register(&world.services, &format!("user{n}@example.com")).await;
    }
    // The sends fail (how fast depends on the machine's load: the mail client gives up on the stopped server
    // after its own timeout), then wait for a retry.
    let mut counts = world.services.jobs.queue_counts().await.unwrap();
    for _ in 0..600 {
        if counts.retrying > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        counts = world.services.jobs.queue_counts().await.unwrap();
    }
    assert!(world.sink.messages().is_empty());
    assert!(counts.retrying > 0, "the sends failed and wait for a retry: {counts:?}");
    world.sink.restart().await.unwrap();
    world.sink.reject_recipient("user9@example.com");
    register(&world.services, "user9@example.com").await;
    let messages = world.mails(5).await;
    world.settle().await;
    let mut to: Vec<String> = messages.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to, (0..5).map(|n| format!("user{n}@example.com")).collect::<Vec<_>>(), "none lost");
    let counts = world.services.jobs.queue_counts().await.unwrap();
    assert_eq!(counts.dead, 1, "the rejected recipient's job is dead: {counts:?}");
    let dead = world
        .services
        .jobs
        .store()
        .list(&rental_repo::job_list_spec().parse(&[("state".into(), "dead".into())]).unwrap())
        .await
        .unwrap()
        .items()[0]
        .clone();
    assert!(dead.last_error.unwrap().contains("550"), "its error is kept");
    assert_eq!(dead.attempts, 1, "a permanent refusal is not retried");
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reminders_notices_and_the_final_invoice_are_mailed_once_each() {
    let clock = ManualClock::new(Utc::now());
    let world = world_at(Some(clock.clone())).await;
    let services = &world.services;
    services.users.create_admin("root@example.com", "root-password").await.unwrap();
    let tokens = services.auth.login("root@example.com", "root-password").await.unwrap();
    let admin: Principal = services.auth.authenticate(&tokens.access_token).await.unwrap();
    let c = &services.catalogue;
    let category = c.create_category(&admin, NewCategory { name: "Bikes".into(), description: None }).await.unwrap();
    let depot = c.create_location(&admin, NewLocation { name: "Depot".into(), address: None }).await.unwrap();
    let product = NewProduct {
        category_id: category.id,
        sku: "BIKE-1".into(),
        name: "Bike".into(),
        currency: "EUR".into(),
        price_per_day_minor: 1_000,
        late_fee_per_day_minor: Some(700),
        ..NewProduct::default()
    };
    let product = c.create_product(&admin, product).await.unwrap();
    let units =
        ["B-1", "B-2"].map(|serial| NewUnit { serial_number: serial.into(), condition: None, location_id: depot.id });
    c.add_units(&admin, product.id, units.to_vec()).await.unwrap();
    register(services, "late@example.com").await;
    register(services, "soon@example.com").await;
    let customer = async |email: &str| {
        let tokens = services.auth.login(email, "first-password").await.unwrap();
        services.auth.authenticate(&tokens.access_token).await.unwrap()
    };
    let start = clock.now() + chrono::Duration::hours(1);
    let book = async |who: &Principal, days: i64| {
        let line =
            NewRentalLine { product_id: product.id, quantity: 1, start, end: start + chrono::Duration::days(days) };
        let rental = NewRental { customer_id: None, status: None, lines: vec![line], notes: None };
        services.rentals.create(who, rental).await.unwrap()
    };
    let late = book(&customer("late@example.com").await, 1).await;
    let soon = book(&customer("soon@example.com").await, 3).await;
    world.settle().await;
    world.sink.clear_messages();
    for _ in 0..2 {
        services.jobs.enqueue(kinds::PICKUP_REMINDERS, &json!({}), None).await.unwrap();
        world.settle().await;
    }
    let reminders: Vec<Parsed> = world.mails(2).await.iter().map(parse).collect();
    assert_eq!(reminders.len(), 2, "one pickup reminder per order, however often the job runs");
    assert!(reminders.iter().all(|m| m.subject.to_lowercase().contains("pick")), "{:?}", reminders[0].subject);
    world.settle().await;
    clock.set(start + chrono::Duration::minutes(5));
    for order in [&late, &soon] {
        services.rentals.pickup(&admin, order.id, Vec::new(), None).await.unwrap();
    }
    // Nothing may be running when the clock jumps: a lease judged by the moved clock would look expired.
    world.settle().await;
    // Two days and a bit after the late rental's end; the other ends in under 24 hours.
    clock.set(start + chrono::Duration::days(2) + chrono::Duration::hours(2));
    world.settle().await;
    world.sink.clear_messages();
    for _ in 0..2 {
        services.jobs.enqueue(kinds::MARK_OVERDUE, &json!({}), None).await.unwrap();
        services.jobs.enqueue(kinds::RETURN_REMINDERS, &json!({}), None).await.unwrap();
        world.settle().await;
    }
    let mails: Vec<Parsed> = world.mails(2).await.iter().map(parse).collect();
    let subjects: Vec<(&Vec<String>, &String)> = mails.iter().map(|m| (&m.to, &m.subject)).collect();
    assert_eq!(mails.len(), 2, "one notice and one reminder, however often the jobs run: {subjects:?}");
    let notice = mails.iter().find(|m| m.to == vec!["late@example.com".to_owned()]).unwrap();
    assert!(notice.text.contains(&late.id.to_string()), "{}", notice.text);
    assert!(notice.text.contains("14.00 EUR"), "two started days late at 7.00: {}", notice.text);
    let reminder = mails.iter().find(|m| m.to == vec!["soon@example.com".to_owned()]).unwrap();
    assert!(reminder.text.contains(&soon.id.to_string()), "{}", reminder.text);

    // Back at last, late fee charged; closing the order mails its final invoice.
    world.sink.clear_messages();
    services.rentals.return_items(&admin, late.id, Vec::new(), None).await.unwrap();
    services.rentals.close(&admin, late.id, None).await.unwrap();
    let invoice = parse(&world.mails(1).await[0]);
    assert_eq!(invoice.to, vec!["late@example.com".to_owned()]);
    let number = services.rentals.get(&admin, late.id).await.unwrap().invoice.unwrap().number.unwrap();
    assert!(invoice.text.contains(&number), "{}", invoice.text);
    assert!(invoice.text.contains("24.00 EUR"), "one day at 10.00 and two late days at 7.00: {}", invoice.text);
    world.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_daily_report_goes_to_every_active_admin_once_per_run() {
    let world = world().await;
    let services = &world.services;
    services.users.create_admin("root@example.com", "root-password").await.unwrap();
    services.users.create_admin("second@example.com", "second-password").await.unwrap();
    register(services, "customer@example.com").await;
    world.settle().await;
    world.sink.clear_messages();
    services.jobs.enqueue(kinds::DAILY_REPORT, &json!({}), None).await.unwrap();
    world.settle().await;
    let reports: Vec<Parsed> = world.mails(2).await.iter().map(parse).collect();
    let mut to: Vec<String> = reports.iter().flat_map(|m| m.to.clone()).collect();
    to.sort();
    assert_eq!(to, ["root@example.com", "second@example.com"], "admins only, one each");
    let yesterday = (Utc::now() - chrono::Duration::days(1)).date_naive().to_string();
    assert!(reports.iter().all(|m| m.text.contains(&yesterday)), "{}", reports[0].text);
    assert_ne!(reports[0].message_id, reports[1].message_id, "one Message-ID per admin");
    world.stop().await;
}

#[tokio::test]
async fn the_purge_job_deletes_expired_idempotency_keys_only() {
    let clock = ManualClock::new(Utc::now());
    let world = world_at(Some(clock.clone())).await;
    let idem = &world.services.idempotency;
    let claim = |key: &str| {
        let key = rental_service::IdempotencyKey::parse(key).unwrap();
        rental_service::IdempotencyClaim::new(None, key, "POST", "/things", "/things", b"{}", 201)
    };
    let write = async |key: &str| {
        let uow = idem.begin(&world.db, Some(&claim(key))).await.unwrap();
        idem.complete(&uow, &claim(key), &json!({"key": key})).await.unwrap();
        uow.commit().await.unwrap();
    };
    write("old").await;
    // A day and a second later "old" has expired (lifetime 24 hours) and "young" is new.
    clock.advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    write("young").await;
    world.services.jobs.enqueue(kinds::PURGE_IDEMPOTENCY, &json!({}), None).await.unwrap();
    world.settle().await;
    assert!(idem.lookup(&claim("young")).await.unwrap().is_some(), "a live key survives the purge");
    assert_eq!(idem.purge_expired().await.unwrap(), 0, "the job deleted the expired key");
    clock.advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    assert_eq!(idem.purge_expired().await.unwrap(), 1, "and left the live one");
    world.stop().await;
}
