//! A fake Mango VPBX API on a real loopback socket: it checks every request's signed form with
//! the test's credentials, records it (path, json, arrival time on the server's clock) and
//! answers as the test says. It also serves one-shot recording files under `/files/`.

#![allow(dead_code)] // each test binary uses a part

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use calldesk_mango::{Credentials, MangoClient, MangoConfig};
use calldesk_mango_proto::SignedForm;
use reqwest::Url;

pub const KEY: &str = "8h2kq7m1x0v9c3zq5t6y4w2e1r0u9i8o";
pub const SALT: &str = "p0o9i8u7y6t5r4e3w2q1a2s3d4f5g6h7";
pub const RATE_LIMIT_BODY: &str =
    r#"{"name":"Service Unavailable","message":"Rate limit exceeded.","code":0,"status":429}"#;
pub const OK: &str = r#"{"result":1000}"#;

pub fn credentials() -> Credentials {
    Credentials::new(KEY, SALT)
}

/// One API request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// Below `/vpbx/`, e.g. `commands/callback`.
    pub path: String,
    /// The signed `json` field, exactly as received.
    pub json: String,
    /// Arrival time, on the server's clock.
    pub at: Instant,
    /// 1-based: how many requests to this path arrived so far, this one included.
    pub nth_on_path: usize,
}

/// What the fake answers, possibly after a delay.
pub struct Reply {
    pub delay: Duration,
    pub response: Response,
}

impl From<Response> for Reply {
    fn from(response: Response) -> Self {
        Self {
            delay: Duration::ZERO,
            response,
        }
    }
}

pub fn json(status: u16, body: &str) -> Reply {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_owned(),
    )
        .into_response()
        .into()
}

pub fn ok() -> Reply {
    json(200, OK)
}

type Responder = dyn Fn(&Recorded) -> Reply + Send + Sync;

struct Shared {
    credentials: Credentials,
    responder: Box<Responder>,
    requests: Mutex<Vec<Recorded>>,
    bad_requests: Mutex<Vec<String>>,
    files: Mutex<HashMap<String, Vec<u8>>>,
    file_gets: AtomicUsize,
}

pub struct FakeMango {
    /// The API base, `http://127.0.0.1:<port>/vpbx/`.
    pub base_url: Url,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMango {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeMango {
    pub async fn start(
        responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let shared = Arc::new(Shared {
            credentials: credentials(),
            responder: Box::new(responder),
            requests: Mutex::new(Vec::new()),
            bad_requests: Mutex::new(Vec::new()),
            files: Mutex::new(HashMap::new()),
            file_gets: AtomicUsize::new(0),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            base_url: Url::parse(&format!("http://{addr}/vpbx/"))?,
            shared,
            task,
        })
    }

    /// The defaults a test client uses: short backoff and stats polling, 3 retries.
    pub fn config(&self) -> MangoConfig {
        let mut c = MangoConfig::with_base_url(self.base_url.clone(), credentials());
        c.request_timeout = Duration::from_secs(5);
        c.max_retries = 3;
        c.backoff_base = Duration::from_millis(10);
        c.backoff_max = Duration::from_millis(40);
        c.stats_poll_interval = Duration::from_millis(50);
        c.stats_deadline = Duration::from_secs(5);
        c
    }

    pub fn client(&self) -> anyhow::Result<MangoClient> {
        Ok(MangoClient::new(self.config())?)
    }

    /// Every API request so far; fails if any was not correctly signed or not a signed form.
    pub fn requests(&self) -> anyhow::Result<Vec<Recorded>> {
        let bad = lock(&self.shared.bad_requests).clone();
        if !bad.is_empty() {
            bail!("the fake Mango received badly signed or malformed requests: {bad:?}");
        }
        Ok(lock(&self.shared.requests).clone())
    }

    /// Requests that failed the signature check (for the test that sends them on purpose).
    pub fn bad_requests(&self) -> Vec<String> {
        lock(&self.shared.bad_requests).clone()
    }

    /// Serves `body` once at `/files/<token>`; returns the absolute URL.
    pub fn add_file(&self, token: &str, body: Vec<u8>) -> String {
        lock(&self.shared.files).insert(token.to_owned(), body);
        format!(
            "http://{}:{}/files/{token}",
            self.base_url.host_str().unwrap_or("127.0.0.1"),
            self.base_url.port().unwrap_or(80)
        )
    }

    pub fn file_gets(&self) -> usize {
        self.shared.file_gets.load(Ordering::SeqCst)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    if let Some(token) = uri.path().strip_prefix("/files/") {
        shared.file_gets.fetch_add(1, Ordering::SeqCst);
        return serve_file(&shared, &method, token);
    }
    match check(&shared, &method, &uri, &headers, &body) {
        Ok((path, json)) => {
            let recorded = {
                let mut requests = lock(&shared.requests);
                let nth_on_path = requests.iter().filter(|r| r.path == path).count() + 1;
                let r = Recorded {
                    path,
                    json,
                    at,
                    nth_on_path,
                };
                requests.push(r.clone());
                r
            };
            let reply = (shared.responder)(&recorded);
            if !reply.delay.is_zero() {
                tokio::time::sleep(reply.delay).await;
            }
            reply.response
        }
        Err(e) => {
            lock(&shared.bad_requests).push(format!("{} {uri}: {e:#}", method));
            // What Mango answers to a wrong signature.
            json(200, r#"{"result":3102}"#).response
        }
    }
}

/// Checks what every VPBX request must be: a POST below /vpbx/ with an urlencoded form whose
/// sign matches its json under the test's credentials.
fn check(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &axum::http::HeaderMap,
    body: &[u8],
) -> anyhow::Result<(String, String)> {
    if method != Method::POST {
        bail!("not a POST");
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/x-www-form-urlencoded" {
        bail!("content type {content_type:?}");
    }
    let path = uri
        .path()
        .strip_prefix("/vpbx/")
        .context("the path is not below /vpbx/")?;
    let form = SignedForm::parse(body)?;
    let json = form.verify(&shared.credentials)?.to_owned();
    // Compact JSON: re-serialised (keys may come back in another order) it is as long.
    let value: serde_json::Value = serde_json::from_str(&json)?;
    if serde_json::to_string(&value)?.len() != json.len() {
        bail!("the json field is not compact: {json}");
    }
    Ok((path.to_owned(), json))
}

/// A one-shot file, streamed in 64 KiB chunks with its Content-Length.
fn serve_file(shared: &Shared, method: &Method, token: &str) -> Response {
    if method != Method::GET {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let Some(data) = lock(&shared.files).remove(token) else {
        return (StatusCode::GONE, "this link was used already").into_response();
    };
    let len = data.len();
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let mut response = Body::from_stream(futures_util::stream::iter(chunks)).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/mpeg"));
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    response
}

/// A redirect to `location`.
pub fn redirect(location: &str) -> Reply {
    let mut response = StatusCode::FOUND.into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response.into()
}
