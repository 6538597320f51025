//! The HTTP side of the load generator: one hyper HTTP/1.1 keep-alive connection per virtual client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep, timeout, timeout_at};

/// How long one set-up request (login, the deep offset page) may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause after a failed connection attempt, so a dead server is not hammered in a tight loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);

/// The server under test: a loopback address and the `Host` header to send.
#[derive(Debug, Clone)]
pub struct Target {
    addr: SocketAddr,
    host: HeaderValue,
    base_url: String,
}

impl Target {
    /// Resolves `base_url` (`http://host:port`) and makes sure it is a loopback address: the load generator
    /// must never be pointed at someone else's server.
    ///
    /// # Errors
    /// When the URL is not plain `http://`, does not resolve, or is not on loopback.
    pub async fn resolve(base_url: &str) -> anyhow::Result<Self> {
        let uri: Uri = base_url.parse().with_context(|| format!("bad base URL `{base_url}`"))?;
        if uri.scheme_str() != Some("http") {
            bail!("the base URL must start with http:// (got `{base_url}`)");
        }
        let authority = uri.authority().with_context(|| format!("the base URL `{base_url}` has no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((authority.host(), port))
            .await
            .with_context(|| format!("cannot resolve {}", authority.host()))?
            .collect();
        let Some(addr) = addrs.iter().copied().find(|a| a.ip().is_loopback()) else {
            bail!("the load generator only targets loopback addresses; {base_url} resolves to {addrs:?}");
        };
        let host = HeaderValue::from_str(authority.as_str()).context("bad host in the base URL")?;
        Ok(Self { addr, host, base_url: base_url.trim_end_matches('/').to_owned() })
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// A GET of `path_and_query`.
    ///
    /// # Errors
    /// When the path is not a valid request target.
    pub fn get(&self, path_and_query: &str) -> anyhow::Result<RequestSpec> {
        RequestSpec::new(self, Method::GET, path_and_query, Bytes::new())
    }

    /// A POST of `body` as JSON to `path`.
    ///
    /// # Errors
    /// When the path is not a valid request target.
    pub fn post_json(&self, path: &str, body: &serde_json::Value) -> anyhow::Result<RequestSpec> {
        let mut spec = RequestSpec::new(self, Method::POST, path, Bytes::from(body.to_string()))?;
        spec.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(spec)
    }
}

/// A request a client sends over and over, prepared once so that each repetition only clones it.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

impl RequestSpec {
    fn new(target: &Target, method: Method, path_and_query: &str, body: Bytes) -> anyhow::Result<Self> {
        let uri: Uri = path_and_query.parse().with_context(|| format!("bad request path `{path_and_query}`"))?;
        let mut headers = HeaderMap::new();
        headers.insert(HOST, target.host.clone());
        Ok(Self { method, uri, headers, body })
    }

    /// The same request with `Authorization: Bearer <token>`.
    ///
    /// # Errors
    /// When the token holds characters a header cannot carry.
    pub fn with_bearer(mut self, token: &str) -> anyhow::Result<Self> {
        let value = HeaderValue::from_str(&format!("Bearer {token}")).context("the access token is not header-safe")?;
        self.headers.insert(AUTHORIZATION, value);
        Ok(self)
    }

    /// A fresh `hyper` request.
    fn build(&self) -> Request<Full<Bytes>> {
        let mut request = Request::new(Full::new(self.body.clone()));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// What one virtual client saw.
#[derive(Debug, Default)]
pub struct ClientStats {
    /// Duration of every completed request, in microseconds.
    pub latencies_us: Vec<u64>,
    /// Completed requests whose status was not 2xx.
    pub non_2xx: u64,
    /// Connections that could not be opened and requests that failed without a response.
    pub errors: u64,
}

type Sender = SendRequest<Full<Bytes>>;

/// Opens a keep-alive HTTP/1.1 connection; its driver runs on its own task until the sender is dropped.
async fn connect(target: &Target) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(target.addr).await.with_context(|| format!("cannot connect to {}", target.addr))?;
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    let (sender, connection) = http1::handshake(TokioIo::new(stream)).await.context("HTTP handshake failed")?;
    tokio::spawn(async move {
        // A connection that breaks shows up as an error of the next request on its sender.
        let _ = connection.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole response body, so the connection can carry the next one.
async fn send(sender: &mut Sender, spec: &RequestSpec) -> anyhow::Result<(StatusCode, Bytes)> {
    let response = sender.send_request(spec.build()).await.context("request failed")?;
    let status = response.status();
    let body = response.into_body().collect().await.context("reading the response body failed")?.to_bytes();
    Ok((status, body))
}

/// Sends one request on a fresh connection, for set-up steps such as logging in.
///
/// # Errors
/// When the server cannot be reached or does not answer within two minutes.
pub async fn fetch(target: &Target, spec: &RequestSpec) -> anyhow::Result<(StatusCode, Bytes)> {
    let exchange = async {
        let mut sender = connect(target).await?;
        send(&mut sender, spec).await
    };
    timeout(SETUP_TIMEOUT, exchange).await.with_context(|| format!("{} {} timed out", spec.method, spec.uri))?
}

/// Where a client takes its requests from: the same one every time, or a new one per request (each
/// reservation of a load test books something else).
#[derive(Clone)]
pub enum Specs {
    /// The same request again and again.
    Same(Arc<RequestSpec>),
    /// A fresh request each time.
    Each(Arc<dyn Fn() -> anyhow::Result<RequestSpec> + Send + Sync>),
}

impl Specs {
    fn next(&self) -> anyhow::Result<Arc<RequestSpec>> {
        match self {
            Specs::Same(spec) => Ok(Arc::clone(spec)),
            Specs::Each(make) => make().map(Arc::new),
        }
    }
}

/// How long a client waits, after the deadline, for the answer to its last request.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// One virtual client: sends `spec` back to back on one keep-alive connection until `deadline`, reconnecting
/// when the server closes the connection. A request still running at the deadline is not counted, but its
/// answer is awaited (up to a minute): the server keeps working on it after a disconnect, and that backlog
/// would otherwise slow down the next run. Connect time is not part of any latency.
pub async fn hammer(target: Arc<Target>, specs: Specs, deadline: Instant) -> ClientStats {
    let mut stats = ClientStats::default();
    let mut connection: Option<Sender> = None;
    while Instant::now() < deadline {
        // A server may close an idle keep-alive connection between two requests; that is no error.
        let reusable = match connection.take() {
            Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
            None => None,
        };
        let mut sender = match reusable {
            Some(sender) => sender,
            None => match timeout_at(deadline, connect(&target)).await {
                Err(_) => break,
                Ok(Ok(sender)) => sender,
                Ok(Err(_)) => {
                    stats.errors += 1;
                    sleep(RECONNECT_PAUSE).await;
                    continue;
                }
            },
        };
        let spec = match specs.next() {
            Ok(spec) => spec,
            Err(_) => {
                stats.errors += 1;
                connection = Some(sender);
                continue;
            }
        };
        let started = Instant::now();
        let outcome = {
            let exchange = send(&mut sender, &spec);
            tokio::pin!(exchange);
            match timeout_at(deadline, &mut exchange).await {
                Err(_) => {
                    let _ = timeout(DRAIN_TIMEOUT, exchange).await;
                    None
                }
                Ok(result) => Some(result),
            }
        };
        let Some(outcome) = outcome else { break };
        match outcome {
            Err(_) => stats.errors += 1,
            Ok((status, _)) => {
                stats.latencies_us.push(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX));
                if !status.is_success() {
                    stats.non_2xx += 1;
                }
                connection = Some(sender);
            }
        }
    }
    stats
}
