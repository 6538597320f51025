//! [`StripeStandIn`]: an HTTP server on loopback that speaks enough of Stripe's API for the payment tests:
//! payment intents (create, retrieve, list, capture, cancel; saving the card with `setup_future_usage` and
//! confirming off-session on a saved card), checkout sessions, customers and refunds, with
//! Stripe's form-encoded requests, its JSON objects and error envelope, and its idempotency rule (a repeated
//! `Idempotency-Key` on the same path with the same parameters answers the first result again, with other
//! parameters a 400 `idempotency_error`).
//!
//! Tests read back every request (method, path, form parameters, headers) and inject Stripe's failures: an
//! error answer for the next requests to a path (card declined, rate limited, 500), or an answer that stalls
//! after the effect took place (the case of a client that timed out while Stripe did the work).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request the stand-in received.
#[derive(Debug, Clone)]
pub struct StripeRequestRecord {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// The path, `/v1/payment_intents` say.
    pub path: String,
    /// The form parameters (POST) or the query's (GET), in order, with Stripe's bracket keys
    /// (`metadata[reference]`).
    pub params: Vec<(String, String)>,
    /// The `Idempotency-Key` header, if any.
    pub idempotency_key: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The `Stripe-Version` header, if any.
    pub stripe_version: Option<String>,
}

impl StripeRequestRecord {
    /// The first value of parameter `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
    }
}

/// A failure the stand-in answers instead of doing the work, or while doing it.
#[derive(Debug, Clone)]
pub enum StripeFault {
    /// 402 `card_error`, `card_declined` (decline code `generic_decline`); nothing is created.
    CardDeclined,
    /// 402 `card_error`, `authentication_required`: an off-session payment the bank wants the customer to
    /// authenticate. Nothing is created (Stripe would leave an intent in `requires_payment_method`, which holds
    /// nothing).
    AuthenticationRequired,
    /// 429 `rate_limit`; nothing is done.
    RateLimited,
    /// 500 `api_error`; nothing is done.
    ServerError,
    /// The work is done (and remembered under the idempotency key; a replay is not done again), then the
    /// answer waits this long.
    StallAfterEffect(Duration),
}

/// What Stripe remembers under an idempotency key: the method and path, the parameters, and the answer.
#[derive(Debug)]
struct Remembered {
    scope: String,
    params: Vec<(String, String)>,
    status: u16,
    body: Value,
}

#[derive(Debug, Default)]
struct State {
    requests: Vec<StripeRequestRecord>,
    faults: Vec<(String, String, StripeFault)>,
    intents: HashMap<String, Value>,
    sessions: HashMap<String, Value>,
    customers: HashMap<String, Value>,
    refunds: HashMap<String, Value>,
    /// Payment methods saved to a customer (`pm_…` -> `cus_…`).
    saved_methods: HashMap<String, String>,
    idempotent: HashMap<String, Remembered>,
    next_id: u64,
}

impl State {
    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}_test{:014}", self.next_id)
    }
}

/// A Stripe stand-in on `127.0.0.1`, on a port of its own; stopped when dropped.
#[derive(Debug)]
pub struct StripeStandIn {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for StripeStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Answer = (u16, Value);

impl StripeStandIn {
    /// Starts the stand-in.
    ///
    /// # Panics
    /// When no loopback port can be bound.
    pub async fn start() -> Self {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(err) => panic!("cannot bind the Stripe stand-in: {err}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(err) => panic!("the Stripe stand-in has no address: {err}"),
        };
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                });
            }
        });
        Self { addr, state, task }
    }

    /// The base URL to give the client (`http://127.0.0.1:port/`).
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<StripeRequestRecord> {
        self.state().requests.clone()
    }

    /// The requests received for `method` and `path`.
    pub fn requests_to(&self, method: &str, path: &str) -> Vec<StripeRequestRecord> {
        self.requests().into_iter().filter(|r| r.method == method && r.path == path).collect()
    }

    /// Answers the next request to `method` `path` with `fault` (faults queue up in order).
    pub fn fail_next(&self, method: &str, path: &str, fault: StripeFault) {
        self.state().faults.push((method.to_owned(), path.to_owned(), fault));
    }

    /// How many payment intents exist.
    pub fn intent_count(&self) -> usize {
        self.state().intents.len()
    }

    /// How many checkout sessions exist.
    pub fn session_count(&self) -> usize {
        self.state().sessions.len()
    }

    /// How many customers exist.
    pub fn customer_count(&self) -> usize {
        self.state().customers.len()
    }

    /// How many refunds exist.
    pub fn refund_count(&self) -> usize {
        self.state().refunds.len()
    }

    /// A payment intent as Stripe would show it.
    pub fn intent(&self, id: &str) -> Option<Value> {
        self.state().intents.get(id).cloned()
    }

    /// The payment intents whose metadata `reference` is `reference`.
    pub fn intents_with_reference(&self, reference: &str) -> Vec<Value> {
        self.state().intents.values().filter(|intent| intent["metadata"]["reference"] == reference).cloned().collect()
    }

    /// The customer that payment method `method` is saved to, if any.
    pub fn saved_to(&self, method: &str) -> Option<String> {
        self.state().saved_methods.get(method).cloned()
    }

    /// Makes Stripe forget every saved card (as a customer removing theirs would).
    pub fn forget_saved_cards(&self) {
        self.state().saved_methods.clear();
    }

    /// The customer pays payment intent `id` (as Stripe.js would confirm it, with a new card `pm_…`): a
    /// manual-capture one becomes `requires_capture`, any other `succeeded`; with `setup_future_usage` and a
    /// customer, the card is saved to the customer. Returns the intent.
    pub fn pay(&self, id: &str) -> Option<Value> {
        let mut state = self.state();
        let method = state.id("pm");
        let intent = state.intents.get_mut(id)?;
        intent["payment_method"] = json!(method);
        let saves = intent["setup_future_usage"].is_string();
        let customer = intent["customer"].as_str().map(str::to_owned);
        let amount = intent["amount"].clone();
        if intent["capture_method"] == "manual" {
            intent["status"] = json!("requires_capture");
            intent["amount_capturable"] = amount;
        } else {
            intent["status"] = json!("succeeded");
            intent["amount_received"] = amount;
            intent["latest_charge"] = json!(format!("ch_for_{id}"));
        }
        let intent = intent.clone();
        if let (true, Some(customer)) = (saves, customer) {
            state.saved_methods.insert(method, customer);
        }
        Some(intent)
    }
}

async fn handle(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let idempotency_key = header("idempotency-key");
    let authorization = header("authorization");
    let stripe_version = header("stripe-version");
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let raw = if method == "GET" { query } else { String::from_utf8_lossy(&body).into_owned() };
    let params: Vec<(String, String)> = serde_urlencoded::from_str(&raw).unwrap_or_default();
    let record = StripeRequestRecord {
        method: method.clone(),
        path: path.clone(),
        params: params.clone(),
        idempotency_key: idempotency_key.clone(),
        authorization,
        stripe_version,
    };

    let (status, answer, stall, replayed) = {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.requests.push(record);
        let fault =
            state.faults.iter().position(|(m, p, _)| *m == method && *p == path).map(|at| state.faults.remove(at).2);
        let stall = match fault {
            Some(StripeFault::CardDeclined) => {
                let body =
                    error_body("card_error", Some("card_declined"), Some("generic_decline"), "Your card was declined.");
                return Ok(reply(402, &body, false));
            }
            Some(StripeFault::AuthenticationRequired) => {
                let body = error_body(
                    "card_error",
                    Some("authentication_required"),
                    Some("authentication_required"),
                    "Your card was declined. This transaction requires authentication.",
                );
                return Ok(reply(402, &body, false));
            }
            Some(StripeFault::RateLimited) => {
                let body = error_body("invalid_request_error", Some("rate_limit"), None, "Too many requests.");
                return Ok(reply(429, &body, false));
            }
            Some(StripeFault::ServerError) => {
                let body = error_body("api_error", None, None, "Something went wrong on Stripe's end.");
                return Ok(reply(500, &body, false));
            }
            Some(StripeFault::StallAfterEffect(wait)) => Some(wait),
            None => None,
        };
        let scope = format!("{method} {path}");
        match (&idempotency_key, method.as_str()) {
            (Some(key), "POST") => match state.idempotent.get(key) {
                Some(seen) if seen.scope == scope && seen.params == params => {
                    (seen.status, seen.body.clone(), stall, true)
                }
                Some(_) => {
                    let body = error_body(
                        "idempotency_error",
                        None,
                        None,
                        "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                    );
                    return Ok(reply(400, &body, false));
                }
                None => {
                    let (status, body) = route(&mut state, &method, &path, &params);
                    state.idempotent.insert(key.clone(), Remembered { scope, params, status, body: body.clone() });
                    (status, body, stall, false)
                }
            },
            _ => {
                let (status, body) = route(&mut state, &method, &path, &params);
                (status, body, stall, false)
            }
        }
    };
    if let Some(wait) = stall {
        tokio::time::sleep(wait).await;
    }
    Ok(reply(status, &answer, replayed))
}

fn reply(status: u16, body: &Value, replayed: bool) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    headers.insert("request-id", hyper::header::HeaderValue::from_static("req_standin"));
    if replayed {
        headers.insert("idempotent-replayed", hyper::header::HeaderValue::from_static("true"));
    }
    response
}

fn error_body(kind: &str, code: Option<&str>, decline_code: Option<&str>, message: &str) -> Value {
    json!({ "error": { "type": kind, "code": code, "decline_code": decline_code, "message": message } })
}

fn not_found(what: &str, id: &str) -> Answer {
    (404, error_body("invalid_request_error", Some("resource_missing"), None, &format!("No such {what}: '{id}'")))
}

fn metadata(params: &[(String, String)], prefix: &str) -> Value {
    let mut map = serde_json::Map::new();
    for (key, value) in params {
        if let Some(name) =
            key.strip_prefix(prefix).and_then(|rest| rest.strip_prefix('[')).and_then(|rest| rest.strip_suffix(']'))
        {
            map.insert(name.to_owned(), json!(value));
        }
    }
    Value::Object(map)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

fn amount(params: &[(String, String)], name: &str) -> Option<i64> {
    param(params, name).and_then(|raw| raw.parse().ok())
}

fn invalid(message: &str, param_name: &str) -> Answer {
    let mut body = error_body("invalid_request_error", Some("parameter_invalid_integer"), None, message);
    body["error"]["param"] = json!(param_name);
    (400, body)
}

fn route(state: &mut State, method: &str, path: &str, params: &[(String, String)]) -> Answer {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (method, segments.as_slice()) {
        ("POST", ["v1", "payment_intents"]) => create_intent(state, params),
        ("GET", ["v1", "payment_intents"]) => {
            let mut intents: Vec<Value> = state.intents.values().cloned().collect();
            intents.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
            let limit = amount(params, "limit").unwrap_or(10).clamp(1, 100) as usize;
            let has_more = intents.len() > limit;
            intents.truncate(limit);
            (200, json!({ "object": "list", "url": "/v1/payment_intents", "has_more": has_more, "data": intents }))
        }
        ("GET", ["v1", "payment_intents", id]) => match state.intents.get(*id) {
            Some(intent) => (200, intent.clone()),
            None => not_found("payment_intent", id),
        },
        ("POST", ["v1", "payment_intents", id, "capture"]) => {
            let Some(intent) = state.intents.get_mut(*id) else { return not_found("payment_intent", id) };
            if intent["status"] != "requires_capture" {
                return (
                    400,
                    error_body(
                        "invalid_request_error",
                        Some("payment_intent_unexpected_state"),
                        None,
                        "This PaymentIntent could not be captured because it has a status other than requires_capture.",
                    ),
                );
            }
            let capturable = intent["amount_capturable"].as_i64().unwrap_or(0);
            let take = amount(params, "amount_to_capture").unwrap_or(capturable);
            if take <= 0 || take > capturable {
                return invalid("amount_to_capture must be at most the capturable amount", "amount_to_capture");
            }
            intent["status"] = json!("succeeded");
            intent["amount_received"] = json!(take);
            intent["amount_capturable"] = json!(0);
            intent["latest_charge"] = json!(format!("ch_for_{id}"));
            (200, intent.clone())
        }
        ("POST", ["v1", "payment_intents", id, "cancel"]) => {
            let Some(intent) = state.intents.get_mut(*id) else { return not_found("payment_intent", id) };
            if intent["status"] == "succeeded" || intent["status"] == "canceled" {
                return (
                    400,
                    error_body(
                        "invalid_request_error",
                        Some("payment_intent_unexpected_state"),
                        None,
                        "You cannot cancel this PaymentIntent because it has a status of succeeded or canceled.",
                    ),
                );
            }
            intent["status"] = json!("canceled");
            intent["amount_capturable"] = json!(0);
            (200, intent.clone())
        }
        ("POST", ["v1", "checkout", "sessions"]) => create_session(state, params),
        ("GET", ["v1", "checkout", "sessions", id]) => match state.sessions.get(*id) {
            Some(session) => (200, session.clone()),
            None => not_found("checkout.session", id),
        },
        ("POST", ["v1", "customers"]) => {
            let id = state.id("cus");
            let customer = json!({
                "id": id, "object": "customer", "created": 1_700_000_000, "livemode": false,
                "email": param(params, "email"), "name": param(params, "name"), "metadata": metadata(params, "metadata"),
            });
            state.customers.insert(id, customer.clone());
            (200, customer)
        }
        ("GET", ["v1", "customers", id]) => match state.customers.get(*id) {
            Some(customer) => (200, customer.clone()),
            None => not_found("customer", id),
        },
        ("POST", ["v1", "refunds"]) => create_refund(state, params),
        _ => (
            404,
            error_body("invalid_request_error", None, None, &format!("Unrecognized request URL ({method}: {path}).")),
        ),
    }
}

fn create_intent(state: &mut State, params: &[(String, String)]) -> Answer {
    let Some(total) = amount(params, "amount") else { return invalid("Missing required param: amount.", "amount") };
    if total < 1 {
        return invalid("This value must be greater than or equal to 1.", "amount");
    }
    let Some(currency) = param(params, "currency") else {
        return invalid("Missing required param: currency.", "currency");
    };
    let off_session = param(params, "off_session") == Some("true");
    let confirm = param(params, "confirm") == Some("true");
    let method = param(params, "payment_method");
    if off_session && !confirm {
        return invalid("off_session can only be used with confirm=true.", "off_session");
    }
    if let Some(method) = method {
        let customer = param(params, "customer");
        if state.saved_methods.get(method).map(String::as_str) != customer {
            let message = format!(
                "The customer does not have a payment method with the ID {method}. The payment method must be \
                 attached to the customer."
            );
            let mut body = error_body("invalid_request_error", Some("resource_missing"), None, &message);
            body["error"]["param"] = json!("payment_method");
            return (400, body);
        }
    }
    let id = state.id("pi");
    let mut intent = json!({
        "id": id, "object": "payment_intent", "amount": total, "amount_capturable": 0, "amount_received": 0,
        "capture_method": param(params, "capture_method").unwrap_or("automatic_async"),
        "client_secret": format!("{id}_secret_standin"), "confirmation_method": "automatic",
        "created": 1_700_000_000, "currency": currency, "customer": param(params, "customer"),
        "description": param(params, "description"), "livemode": false, "metadata": metadata(params, "metadata"),
        "payment_method": method, "payment_method_types": ["card"], "setup_future_usage": param(params, "setup_future_usage"),
        "status": "requires_payment_method",
    });
    if confirm && method.is_some() {
        // Confirmed at once on a saved card (the stand-in's cards never need the customer, unless a fault says so).
        if intent["capture_method"] == "manual" {
            intent["status"] = json!("requires_capture");
            intent["amount_capturable"] = json!(total);
        } else {
            intent["status"] = json!("succeeded");
            intent["amount_received"] = json!(total);
            intent["latest_charge"] = json!(format!("ch_for_{id}"));
        }
    }
    state.intents.insert(id, intent.clone());
    (200, intent)
}

fn create_session(state: &mut State, params: &[(String, String)]) -> Answer {
    let (Some(unit), Some(currency)) = (
        amount(params, "line_items[0][price_data][unit_amount]"),
        param(params, "line_items[0][price_data][currency]"),
    ) else {
        return invalid("line_items[0][price_data] needs unit_amount and currency.", "line_items");
    };
    let quantity = amount(params, "line_items[0][quantity]").unwrap_or(1);
    let intent_params: Vec<(String, String)> =
        vec![("amount".into(), (unit * quantity).to_string()), ("currency".into(), currency.to_owned())]
            .into_iter()
            .chain(params.iter().filter_map(|(key, value)| {
                // payment_intent_data[metadata][reference] -> metadata[reference]
                key.strip_prefix("payment_intent_data[").map(|rest| (rest.replacen(']', "", 1), value.clone()))
            }))
            .collect();
    let (status, intent) = create_intent(state, &intent_params);
    if status != 200 {
        return (status, intent);
    }
    let id = state.id("cs");
    let session = json!({
        "id": id, "object": "checkout.session", "mode": param(params, "mode").unwrap_or("payment"),
        "amount_total": unit * quantity, "currency": currency, "client_reference_id": param(params, "client_reference_id"),
        "automatic_tax": { "enabled": false }, "created": 1_700_000_000, "expires_at": 1_700_086_400,
        "custom_fields": [], "custom_text": {}, "livemode": false, "metadata": metadata(params, "metadata"),
        "payment_intent": intent["id"], "payment_method_types": ["card"], "payment_status": "unpaid",
        "shipping_options": [], "status": "open", "success_url": param(params, "success_url"),
        "cancel_url": param(params, "cancel_url"), "url": format!("https://checkout.stripe.test/c/pay/{id}"),
    });
    state.sessions.insert(id, session.clone());
    (200, session)
}

fn create_refund(state: &mut State, params: &[(String, String)]) -> Answer {
    let Some(intent_id) = param(params, "payment_intent") else {
        return invalid("One of charge or payment_intent is required.", "payment_intent");
    };
    let Some(intent) = state.intents.get(intent_id).cloned() else { return not_found("payment_intent", intent_id) };
    if intent["status"] != "succeeded" {
        return (
            400,
            error_body(
                "invalid_request_error",
                Some("charge_not_refundable"),
                None,
                "This PaymentIntent has not been charged.",
            ),
        );
    }
    let received = intent["amount_received"].as_i64().unwrap_or(0);
    let refunded: i64 = state
        .refunds
        .values()
        .filter(|refund| refund["payment_intent"] == intent_id)
        .map(|refund| refund["amount"].as_i64().unwrap_or(0))
        .sum();
    let take = amount(params, "amount").unwrap_or(received - refunded);
    if take <= 0 || take > received - refunded {
        return (
            400,
            error_body(
                "invalid_request_error",
                Some("charge_already_refunded"),
                None,
                "Refund amount is greater than the unrefunded amount of the charge.",
            ),
        );
    }
    let id = state.id("re");
    let refund = json!({
        "id": id, "object": "refund", "amount": take, "created": 1_700_000_000, "currency": intent["currency"],
        "payment_intent": intent_id, "charge": intent["latest_charge"], "metadata": metadata(params, "metadata"),
        "status": "succeeded",
    });
    state.refunds.insert(id, refund.clone());
    (200, refund)
}
