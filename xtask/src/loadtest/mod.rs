//! `cargo xtask loadtest`: a closed-loop HTTP load generator for the rental API.
//!
//! Each virtual client holds one HTTP/1.1 keep-alive connection and sends its request again as soon as the
//! previous response is read, until the run's duration ends. Every scenario runs once per entry of
//! `--connections`; the results are printed as lines while the runs go, and as one Markdown table at the end,
//! followed by the server's peak memory. It only talks to loopback addresses.

mod http;
mod reserve;
mod server;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use rental_repo::query::{Cursor, CursorValue};
use serde::Deserialize;
use tokio::task::JoinSet;
use tokio::time::Instant;
use uuid::Uuid;

use self::http::{ClientStats, RequestSpec, Specs, Target, fetch, hammer};
use self::server::{SpawnedServer, peak_rss_kib};
use self::stats::{Summary, markdown_table};
use crate::{DEFAULT_DATABASE_URL, workspace_root};

/// The admin that `--spawn-server` creates when no `--email` is given.
const SPAWNED_ADMIN_EMAIL: &str = "loadtest-admin@example.com";
/// Its password when no `--password` is given; the spawned server is a throw-away loopback instance.
const SPAWNED_ADMIN_PASSWORD: &str = "loadtest-password-1";
/// Clients logging in during `login+health`.
const MIXED_LOGIN_CLIENTS: usize = 64;
/// Clients probing `/health/live` during `login+health`.
const MIXED_HEALTH_CLIENTS: usize = 32;
/// How deep into the user list `users-deep` starts, as a fraction of all users.
const DEEP_FRACTION: f64 = 0.9;
/// Page size of the offset request that finds the deep row (the list's largest page).
const DEEP_PROBE_PER_PAGE: u64 = 100;

const LIVE_PATH: &str = "/health/live";
const LOGIN_PATH: &str = "/api/v1/auth/login";
const ME_PATH: &str = "/api/v1/users/me";
const USERS_PATH: &str = "/api/v1/users";

/// A load-test scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// GET /health/live: the ceiling of the stack.
    Health,
    /// GET /api/v1/users/me with the admin's access token.
    Me,
    /// GET /api/v1/dashboard/stats with the admin's access token (cached for `cache.dashboard_ttl_secs`).
    Dashboard,
    /// The first keyset page of 50 users, without a count.
    UsersFirst,
    /// A keyset page of 50 users about 90% deep into the list.
    UsersDeep,
    /// The first offset page of 50 users, with its COUNT, for comparison.
    OffsetFirst,
    /// POST /api/v1/auth/login (an argon2 verification per request).
    Login,
    /// 64 clients logging in while 32 others probe /health/live; the connection counts do not apply.
    #[value(name = "login+health")]
    LoginHealth,
    /// GET /api/v1/products filtered by a category, 50 per page, keyset without a count, anonymous.
    Products,
    /// POST /api/v1/rentals: each request reserves one item of the next product (round robin over up to
    /// 5,000 products) for one day; counts successful reservations.
    Reserve,
    /// POST /api/v1/rentals: every client reserves one of three products for random overlapping periods
    /// (most are refused); afterwards the database is checked for overbooked holds.
    ReserveContended,
    /// POST /api/v1/users/bulk with 10,000 new users, three times in a row; reports each request's time.
    Bulk,
    /// Every scenario above.
    All,
}

impl Scenario {
    /// Every real scenario, in the order `all` runs them.
    const EVERY: [Scenario; 12] = [
        Scenario::Health,
        Scenario::Me,
        Scenario::Dashboard,
        Scenario::UsersFirst,
        Scenario::UsersDeep,
        Scenario::OffsetFirst,
        Scenario::Login,
        Scenario::LoginHealth,
        Scenario::Products,
        Scenario::Reserve,
        Scenario::ReserveContended,
        Scenario::Bulk,
    ];

    /// The name used on the command line and in the results.
    fn name(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::Me => "me",
            Scenario::Dashboard => "dashboard",
            Scenario::UsersFirst => "users-first",
            Scenario::UsersDeep => "users-deep",
            Scenario::OffsetFirst => "offset-first",
            Scenario::Login => "login",
            Scenario::LoginHealth => "login+health",
            Scenario::Products => "products",
            Scenario::Reserve => "reserve",
            Scenario::ReserveContended => "reserve-contended",
            Scenario::Bulk => "bulk",
            Scenario::All => "all",
        }
    }

    /// Whether the scenario needs the admin's access token.
    fn needs_token(self) -> bool {
        matches!(
            self,
            Scenario::Me
                | Scenario::Dashboard
                | Scenario::UsersFirst
                | Scenario::UsersDeep
                | Scenario::OffsetFirst
                | Scenario::Bulk
                | Scenario::Reserve
                | Scenario::ReserveContended
        )
    }
}

/// Options of `cargo xtask loadtest`.
#[derive(Debug, clap::Args)]
pub struct LoadtestArgs {
    /// The server under test (loopback only). Ignored with --spawn-server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub base_url: String,
    /// Length of each run, in seconds.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub duration_secs: u64,
    /// Numbers of concurrent clients (one connection each); every scenario runs once per number.
    #[arg(long, value_delimiter = ',', default_value = "32,256")]
    pub connections: Vec<usize>,
    /// Admin e-mail to log in with, for the token of `me`/`users-*` and for `login`.
    #[arg(long)]
    pub email: Option<String>,
    /// That admin's password.
    #[arg(long, env = "LOADTEST_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Scenarios to run, comma-separated: health, me, users-first, users-deep, offset-first, login,
    /// login+health, or all.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "health,users-first,users-deep,me,login")]
    pub scenarios: Vec<Scenario>,
    /// Process id of the server, to report its peak RSS (VmHWM).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Start `target/release/rental-api serve` (built beforehand) on a free port, create the admin
    /// loadtest-admin@example.com, test it, report its peak RSS and stop it.
    #[arg(long)]
    pub spawn_server: bool,
    /// Database of the spawned server.
    #[arg(long, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
}

/// What the scenarios need from the server before they start.
#[derive(Debug, Default)]
struct Prepared {
    /// The admin's access token.
    token: Option<String>,
    /// Keyset cursor about [`DEEP_FRACTION`] into the user list.
    deep_cursor: Option<String>,
    /// A category that has products, for `products`.
    category: Option<Uuid>,
}

/// The part of the login response the load test reads.
#[derive(Debug, Deserialize)]
struct TokenResponse {
    access_token: String,
}

/// The part of an offset page of users the load test reads.
#[derive(Debug, Deserialize)]
struct UserPage {
    items: Vec<UserItem>,
    total: u64,
}

/// The part of the category list the load test reads.
#[derive(Debug, Deserialize)]
struct CategoryList {
    items: Vec<CategoryItem>,
}

#[derive(Debug, Deserialize)]
struct CategoryItem {
    id: Uuid,
}

#[derive(Debug, Deserialize)]
struct UserItem {
    id: Uuid,
    created_at: DateTime<Utc>,
}

/// Runs the load test.
///
/// # Errors
/// When the target is not on loopback, the server cannot be started or logged in to, or set-up requests fail.
pub async fn run(args: LoadtestArgs) -> anyhow::Result<()> {
    let scenarios = expand(&args.scenarios);
    if args.connections.is_empty() || args.connections.contains(&0) {
        bail!("--connections needs positive numbers, such as 32,256");
    }

    let (spawned, email, password) = if args.spawn_server {
        let email = args.email.clone().unwrap_or_else(|| SPAWNED_ADMIN_EMAIL.to_owned());
        let password = args.password.clone().unwrap_or_else(|| SPAWNED_ADMIN_PASSWORD.to_owned());
        let root = workspace_root();
        let server = SpawnedServer::start(
            &root.join("target/release/rental-api"),
            &args.database_url,
            root.join("target/loadtest-server.log"),
            (&email, &password),
        )
        .await?;
        println!("spawned rental-api (pid {}) at {}", server.pid(), server.base_url());
        (Some(server), Some(email), Some(password))
    } else {
        (None, args.email.clone(), args.password.clone())
    };
    let base_url = spawned.as_ref().map_or(args.base_url.as_str(), SpawnedServer::base_url);
    let target = Arc::new(Target::resolve(base_url).await?);
    let credentials = email.as_deref().zip(password.as_deref());

    let prepared = prepare(&target, &scenarios, credentials).await?;
    let duration = Duration::from_secs(args.duration_secs);
    let mut results = Vec::new();
    for scenario in scenarios {
        let runs = match scenario {
            Scenario::Bulk => {
                let token = prepared.token.as_deref().context("no access token; pass --email and --password")?;
                bulk_rounds(&target, token).await?;
                continue;
            }
            Scenario::LoginHealth => vec![mixed_groups(&target, credentials)?],
            Scenario::Reserve | Scenario::ReserveContended => {
                let token = prepared.token.as_deref().context("no access token; pass --email and --password")?;
                let products = reserve::product_ids(&target).await?;
                let specs = if scenario == Scenario::Reserve {
                    reserve::distinct(Arc::clone(&target), token, products)
                } else {
                    reserve::contended(Arc::clone(&target), token, products)
                };
                args.connections.iter().map(|&n| vec![(scenario.name().to_owned(), specs.clone(), n)]).collect()
            }
            _ => {
                let spec = Specs::Same(Arc::new(request_for(scenario, &target, &prepared, credentials)?));
                args.connections.iter().map(|&n| vec![(scenario.name().to_owned(), spec.clone(), n)]).collect()
            }
        };
        for groups in runs {
            for summary in run_groups(&target, groups, duration).await {
                println!("{}", summary.line());
                if matches!(scenario, Scenario::Reserve | Scenario::ReserveContended) {
                    println!(
                        "  {}: {} reservations made, {:.0}/s; {} refused",
                        summary.label,
                        summary.requests - summary.non_2xx,
                        (summary.requests - summary.non_2xx) as f64 / duration.as_secs_f64(),
                        summary.non_2xx
                    );
                }
                results.push(summary);
            }
        }
        if scenario == Scenario::ReserveContended {
            let overbooked = reserve::overbooked(&args.database_url).await?;
            println!("overbooked holds in the database after the contended runs: {overbooked} (must be 0)");
            if overbooked > 0 {
                bail!("{overbooked} overbooked holds found");
            }
        }
    }

    let pid = spawned.as_ref().map(SpawnedServer::pid).or(args.server_pid);
    let rss = match pid.map(peak_rss_kib) {
        Some(Ok(kib)) => format!("{:.1} MiB", kib as f64 / 1024.0),
        Some(Err(e)) => format!("unknown ({e:#})"),
        None => "unknown (pass --server-pid or --spawn-server)".to_owned(),
    };
    drop(spawned);

    println!();
    println!(
        "Load test of {} ({} s per run, closed loop, one keep-alive connection per client):",
        target.base_url(),
        args.duration_secs
    );
    println!();
    print!("{}", markdown_table(&results));
    println!();
    println!("Server peak RSS (VmHWM): {rss}");
    if let Some(health) = results.iter().find(|r| r.label == mixed_label("health")) {
        println!(
            "/health/live p99 while {MIXED_LOGIN_CLIENTS} clients log in: {:.2} ms (target: under 10 ms)",
            health.p99_ms
        );
    }
    Ok(())
}

/// The scenarios to run, with `all` replaced by every scenario and repeats removed.
fn expand(requested: &[Scenario]) -> Vec<Scenario> {
    let mut scenarios = Vec::new();
    for &scenario in requested {
        let items: &[Scenario] = if scenario == Scenario::All { &Scenario::EVERY } else { &[scenario] };
        for &item in items {
            if !scenarios.contains(&item) {
                scenarios.push(item);
            }
        }
    }
    scenarios
}

/// Logs in and finds the deep cursor, as far as the chosen scenarios need them.
async fn prepare(
    target: &Target,
    scenarios: &[Scenario],
    credentials: Option<(&str, &str)>,
) -> anyhow::Result<Prepared> {
    let mut prepared = Prepared::default();
    if scenarios.contains(&Scenario::Products) {
        let categories: CategoryList = get_json(target, &target.get("/api/v1/categories")?)
            .await
            .context("cannot list the categories; seed products first (cargo xtask seed --products N)")?;
        let first = categories.items.first().context("no category exists; seed products first")?;
        prepared.category = Some(first.id);
    }
    if !scenarios.iter().any(|s| s.needs_token()) {
        return Ok(prepared);
    }
    let token = login(target, credentials).await?;
    if scenarios.contains(&Scenario::UsersDeep) {
        prepared.deep_cursor = Some(deep_cursor(target, &token).await?);
    }
    prepared.token = Some(token);
    Ok(prepared)
}

/// The login request for `credentials`.
fn login_request(target: &Target, credentials: Option<(&str, &str)>) -> anyhow::Result<RequestSpec> {
    let (email, password) = credentials.context("this scenario needs --email and --password of an admin")?;
    target.post_json(LOGIN_PATH, &serde_json::json!({ "email": email, "password": password }))
}

/// Logs in once and returns the access token.
async fn login(target: &Target, credentials: Option<(&str, &str)>) -> anyhow::Result<String> {
    let token: TokenResponse = get_json(target, &login_request(target, credentials)?).await.context("login failed")?;
    Ok(token.access_token)
}

/// Sends a set-up request and parses its 2xx JSON answer.
async fn get_json<T: serde::de::DeserializeOwned>(target: &Target, spec: &RequestSpec) -> anyhow::Result<T> {
    let (status, body) = fetch(target, spec).await?;
    if !status.is_success() {
        bail!("the server answered {status}: {}", String::from_utf8_lossy(&body).chars().take(300).collect::<String>());
    }
    serde_json::from_slice(&body).with_context(|| {
        format!("unexpected answer: {}", String::from_utf8_lossy(&body).chars().take(300).collect::<String>())
    })
}

/// A keyset cursor that starts about [`DEEP_FRACTION`] into the user list (default sort, newest first).
///
/// Walking tens of thousands of keyset pages to get there would take minutes, so one offset page is read at
/// that depth instead, and the cursor is built from its last row with the repository's own [`Cursor`] type:
/// the same base64url JSON (`{"r":"users","s":"created_at","d":"desc","v":<timestamp>,"i":<id>}`) that the
/// API hands out as `next_cursor`.
async fn deep_cursor(target: &Target, token: &str) -> anyhow::Result<String> {
    let count_request = target.get(&format!("{USERS_PATH}?page=1&per_page=1"))?.with_bearer(token)?;
    let total = get_json::<UserPage>(target, &count_request).await.context("cannot count the users")?.total;
    let row = ((total as f64 * DEEP_FRACTION) as u64).max(1);
    let page = row.div_ceil(DEEP_PROBE_PER_PAGE);
    let page_request =
        target.get(&format!("{USERS_PATH}?page={page}&per_page={DEEP_PROBE_PER_PAGE}"))?.with_bearer(token)?;
    let started = Instant::now();
    let items = get_json::<UserPage>(target, &page_request).await.context("cannot read the deep page")?.items;
    let last = items.last().with_context(|| format!("page {page} of the user list is empty"))?;
    println!(
        "users-deep starts after row {} of {total} (found with one offset page in {:.0} ms)",
        (page - 1) * DEEP_PROBE_PER_PAGE + items.len() as u64,
        started.elapsed().as_secs_f64() * 1000.0
    );
    let spec = rental_repo::user_list_spec();
    let (sort, direction) = spec.default_sort;
    let cursor = Cursor {
        resource: spec.resource.to_owned(),
        sort: sort.to_owned(),
        direction,
        value: CursorValue::DateTime(last.created_at),
        id: last.id.to_string(),
    };
    Ok(cursor.encode())
}

/// The request a client of `scenario` repeats.
fn request_for(
    scenario: Scenario,
    target: &Target,
    prepared: &Prepared,
    credentials: Option<(&str, &str)>,
) -> anyhow::Result<RequestSpec> {
    let authorised = |path: &str| -> anyhow::Result<RequestSpec> {
        let token = prepared.token.as_deref().context("no access token; pass --email and --password")?;
        target.get(path)?.with_bearer(token)
    };
    match scenario {
        Scenario::Health => target.get(LIVE_PATH),
        Scenario::Me => authorised(ME_PATH),
        Scenario::Dashboard => authorised("/api/v1/dashboard/stats"),
        Scenario::UsersFirst => authorised(&format!("{USERS_PATH}?limit=50&include_total=false")),
        Scenario::UsersDeep => {
            let cursor = prepared.deep_cursor.as_deref().context("no deep cursor was prepared")?;
            authorised(&format!("{USERS_PATH}?limit=50&include_total=false&cursor={cursor}"))
        }
        Scenario::OffsetFirst => authorised(&format!("{USERS_PATH}?page=1&per_page=50")),
        Scenario::Login => login_request(target, credentials),
        Scenario::Products => {
            let category = prepared.category.context("no category was prepared")?;
            target.get(&format!("/api/v1/products?limit=50&include_total=false&category={category}"))
        }
        Scenario::LoginHealth | Scenario::Bulk | Scenario::Reserve | Scenario::ReserveContended | Scenario::All => {
            bail!("`{}` is not a single request", scenario.name())
        }
    }
}

/// Users per bulk request, the API's maximum.
const BULK_USERS: usize = 10_000;
/// Bulk requests timed one after the other.
const BULK_ROUNDS: usize = 3;

/// Times [`BULK_ROUNDS`] requests of [`BULK_USERS`] new users each (without passwords, as an import would
/// send them), one after the other, and prints each duration.
async fn bulk_rounds(target: &Target, token: &str) -> anyhow::Result<()> {
    let run = Uuid::new_v4().simple().to_string();
    for round in 0..BULK_ROUNDS {
        let users: Vec<serde_json::Value> = (0..BULK_USERS)
            .map(|i| {
                serde_json::json!({
                    "email": format!("bulk-{run}-{round}-{i}@example.com"),
                    "full_name": format!("Bulk User {round}-{i}"),
                })
            })
            .collect();
        let spec =
            target.post_json("/api/v1/users/bulk", &serde_json::json!({ "users": users }))?.with_bearer(token)?;
        let started = Instant::now();
        let (status, body) = fetch(target, &spec).await?;
        let elapsed = started.elapsed();
        if !status.is_success() {
            bail!(
                "bulk request answered {status}: {}",
                String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
            );
        }
        println!(
            "bulk: {BULK_USERS} users in one request, round {}: {:.0} ms",
            round + 1,
            elapsed.as_secs_f64() * 1000.0
        );
    }
    Ok(())
}

/// The label of one side of `login+health`.
fn mixed_label(side: &str) -> String {
    format!("login+health: {side}")
}

/// The two client groups of `login+health`.
fn mixed_groups(target: &Target, credentials: Option<(&str, &str)>) -> anyhow::Result<Vec<Group>> {
    Ok(vec![
        (mixed_label("login"), Specs::Same(Arc::new(login_request(target, credentials)?)), MIXED_LOGIN_CLIENTS),
        (mixed_label("health"), Specs::Same(Arc::new(target.get(LIVE_PATH)?)), MIXED_HEALTH_CLIENTS),
    ])
}

/// Clients that send the same request: label, request, number of clients.
type Group = (String, Specs, usize);

/// Runs every client of every group at the same time for `duration` and summarises each group.
async fn run_groups(target: &Arc<Target>, groups: Vec<Group>, duration: Duration) -> Vec<Summary> {
    let deadline = Instant::now() + duration;
    let mut sets = Vec::with_capacity(groups.len());
    for (label, specs, clients) in groups {
        let mut set = JoinSet::new();
        for _ in 0..clients {
            set.spawn(hammer(Arc::clone(target), specs.clone(), deadline));
        }
        sets.push((label, set));
    }
    let mut summaries = Vec::with_capacity(sets.len());
    for (label, set) in sets {
        summaries.push(Summary::merge(label, duration, join_clients(set).await));
    }
    summaries
}

/// The statistics of every client of a group. A client that panicked measured nothing; its absence shows in
/// the client count of the summary.
async fn join_clients(mut set: JoinSet<ClientStats>) -> Vec<ClientStats> {
    let mut clients = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        clients.extend(joined.ok());
    }
    clients
}
