//! The fake VPBX over HTTP (axum on `127.0.0.1:0`): the command and query endpoints under
//! `/vpbx/`, one-shot recording files under `/files/`, a clock task that runs the PBX's timed
//! steps on a scaled timeline, and a delivery task that POSTs the signed webhooks to the target.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use calldesk_mango_proto::command::{
    Callback, CallbackGroup, Hangup, HoldOn, PlayStart, RecordingPost, RecordingStart, Route, Sms,
    StatsParty, StatsResult, Transfer, UsersRequest,
};
use calldesk_mango_proto::{Credentials, SignedForm, WebhookError};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::engine::{LiveCall, StatsFilter, Vpbx};
use super::ids::{Ids, Rng};
use super::model::{
    DEFAULT_LINE, Delivery, Employee, EngineConfig, PhoneBehaviour, Timings, demo_employees,
    recording_audio,
};
use super::scenario::MangoScenario;

/// The columns of `stats/result` when the request names none.
pub const STATS_DEFAULT_FIELDS: &str = "records,start,finish,answer,from_extension,from_number,to_extension,to_number,disconnect_reason,line_number,location";

/// The 429 body (reference §3.1).
pub const RATE_LIMIT_BODY: &str =
    r#"{"name":"Service Unavailable","message":"Rate limit exceeded.","code":0,"status":429}"#;

/// The 401 body during a lock-out (same style as the 429 one; Mango's text is not documented).
pub const LOCKED_BODY: &str = r#"{"name":"Unauthorized","message":"Too many invalid requests; the key is blocked.","code":0,"status":401}"#;

/// How webhooks reach the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    /// One at a time, in the order the PBX produced them.
    InOrder,
    /// Each sent on its own after a seeded random delay below
    /// [`FakeMangoConfig::shuffle_max_delay`], in parallel, as Mango does: they arrive out of
    /// order.
    Shuffled { seed: u64 },
    /// In order, each sent twice in a row.
    Duplicated,
}

/// Configuration of [`FakeMango`]. Build with `FakeMangoConfig { .., ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct FakeMangoConfig {
    /// Key and salt the fake checks commands with and signs webhooks with.
    pub credentials: Credentials,
    /// Wall time per simulated second (the time scale; default 20 ms: a 30 s call lasts 0.6 s).
    pub sim_second: Duration,
    pub delivery: DeliveryMode,
    /// Upper bound of the random delay in [`DeliveryMode::Shuffled`] (default 150 ms).
    pub shuffle_max_delay: Duration,
    /// `config/users/request` and the parties of calls (default: 101, 102, 103).
    pub employees: Vec<Employee>,
    /// Line used when none is given (outbound calls, callbacks).
    pub line_number: String,
    /// Per extension or external number: how the phone reacts when a command rings it.
    pub phones: BTreeMap<String, PhoneBehaviour>,
    /// Employees not in `phones` (default: answer after 3 s, hang up after 60 s).
    pub extension_phone: PhoneBehaviour,
    /// External numbers not in `phones` (default: answer after 5 s, hang up after 30 s).
    pub number_phone: PhoneBehaviour,
    pub timings: Timings,
    /// More than one 3xxx error within this window blocks the key (HTTP 401) until the window
    /// since the first error has passed (wall time; default 120 s).
    pub lockout_window: Duration,
    /// Enforce the per-method rates of §3.14 (HTTP 429; default on).
    pub rate_limits: bool,
    /// Bytes served per recording download (default 200 000).
    pub recording_size: usize,
    /// `stats/result` answers 204 this many times per key before the CSV (default 1).
    pub stats_not_ready_polls: u32,
    /// Seed of the ids.
    pub seed: u64,
    /// Unix seconds of simulated time zero (default: now). Simulated time then runs at
    /// `1 s / sim_second` times real time.
    pub start_unix: Option<i64>,
    /// Timeout of one webhook POST.
    pub webhook_timeout: Duration,
}

impl Default for FakeMangoConfig {
    fn default() -> Self {
        let engine = EngineConfig::default();
        Self {
            credentials: Credentials::new(
                "fakevpbxkey4000000000000000000x",
                "fakevpbxsalt400000000000000000y",
            ),
            sim_second: Duration::from_millis(20),
            delivery: DeliveryMode::InOrder,
            shuffle_max_delay: Duration::from_millis(150),
            employees: demo_employees(),
            line_number: DEFAULT_LINE.to_owned(),
            phones: BTreeMap::new(),
            extension_phone: engine.extension_phone,
            number_phone: engine.number_phone,
            timings: Timings::default(),
            lockout_window: Duration::from_secs(120),
            rate_limits: true,
            recording_size: 200_000,
            stats_not_ready_polls: 1,
            seed: 0,
            start_unix: None,
            webhook_timeout: Duration::from_secs(5),
        }
    }
}

/// Errors of [`FakeMango::start`].
#[derive(Debug, thiserror::Error)]
pub enum FakeMangoError {
    #[error("binding the fake Mango listener: {0}")]
    Io(#[from] std::io::Error),
    #[error("building the HTTP client: {0}")]
    Client(String),
}

/// One request the fake received under `/vpbx/`, with what it answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedRequest {
    /// E.g. `commands/callback` (no leading slash).
    pub path: String,
    /// The `json` form field, when the form could be read.
    pub json: Option<String>,
    /// HTTP status answered (200, 204, 302, 401, 404, 420, 429).
    pub status: u16,
    /// `result` or `code` answered, if any.
    pub code: Option<u32>,
}

/// A webhook the target answered with 2xx.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveredWebhook {
    pub path: String,
    pub json: String,
}

/// A webhook that did not get a 2xx (no target, connection refused, timeout, other status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    pub path: String,
    pub json: String,
    pub reason: String,
}

/// A `reqwest` client builder for plain `http` on loopback: rustls with the ring provider
/// (reqwest's `rustls-no-provider` build needs one) and no trusted roots.
pub fn loopback_client_builder() -> Result<reqwest::ClientBuilder, FakeMangoError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FakeMangoError::Client(e.to_string()))?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct Logs {
    requests: Vec<ReceivedRequest>,
    delivered: Vec<DeliveredWebhook>,
    failed: Vec<FailedDelivery>,
}

/// Lock-out and rate-limit bookkeeping (wall time).
#[derive(Debug, Default)]
struct Guard {
    errors: VecDeque<Instant>,
    locked_until: Option<Instant>,
    windows: HashMap<String, VecDeque<Instant>>,
}

#[derive(Debug)]
struct StatsJob {
    csv: String,
    not_ready: u32,
}

#[derive(Debug)]
struct Shared {
    credentials: Credentials,
    sim_second: Duration,
    started: Instant,
    addr: SocketAddr,
    lockout_window: Duration,
    rate_limits: bool,
    recording_size: usize,
    stats_not_ready_polls: u32,
    engine: Mutex<Vpbx>,
    wake: Notify,
    out: mpsc::UnboundedSender<Delivery>,
    target: Mutex<Option<String>>,
    logs: Mutex<Logs>,
    guard: Mutex<Guard>,
    stats: Mutex<HashMap<String, StatsJob>>,
    files: Mutex<HashMap<String, String>>,
}

impl Shared {
    /// Simulated milliseconds since the start.
    fn sim_ms(&self) -> u64 {
        let per = self.sim_second.as_micros().max(1);
        u64::try_from(self.started.elapsed().as_micros() * 1000 / per).unwrap_or(u64::MAX / 4)
    }

    /// The wall instant simulated `sim_ms` is reached (rounded up).
    fn wall_at(&self, sim_ms: u64) -> Instant {
        let per = self.sim_second.as_micros().max(1);
        let us = (u128::from(sim_ms) * per).div_ceil(1000);
        let far = Duration::from_secs(86_400 * 365);
        let after = Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX)).min(far);
        self.started.checked_add(after).unwrap_or(self.started)
    }

    /// Runs `f` on the PBX at the current simulated time (at least `at_least`), then queues the
    /// webhooks it produced, in order, and wakes the clock task.
    fn with_engine<R>(&self, at_least: u64, f: impl FnOnce(&mut Vpbx) -> R) -> R {
        let mut engine = lock(&self.engine);
        engine.advance(self.sim_ms().max(at_least));
        let r = f(&mut engine);
        for d in engine.drain() {
            if self.out.send(d).is_err() {
                tracing::debug!("fake Mango stopped; webhook dropped");
            }
        }
        drop(engine);
        self.wake.notify_one();
        r
    }

    fn log_request(&self, path: &str, json: Option<String>, answer: &Answer) {
        lock(&self.logs).requests.push(ReceivedRequest {
            path: path.to_owned(),
            json,
            status: answer.status(),
            code: answer.code(),
        });
    }

    fn locked(&self, now: Instant) -> bool {
        lock(&self.guard)
            .locked_until
            .is_some_and(|until| now < until)
    }

    /// Counts a 3xxx error; true when it is one too many (the key is now blocked).
    fn count_error(&self, now: Instant) -> bool {
        let mut g = lock(&self.guard);
        let window = self.lockout_window;
        while g
            .errors
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            g.errors.pop_front();
        }
        g.errors.push_back(now);
        if g.errors.len() > 1 {
            let first = g.errors.front().copied().unwrap_or(now);
            g.locked_until = first.checked_add(window);
            true
        } else {
            false
        }
    }

    /// Whether one more request on `path` fits its rate (§3.14).
    fn admit(&self, path: &str, now: Instant) -> bool {
        let (limit, per) = rate(path);
        let mut g = lock(&self.guard);
        let window = g.windows.entry(path.to_owned()).or_default();
        while window
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= per)
        {
            window.pop_front();
        }
        if window.len() >= limit {
            return false;
        }
        window.push_back(now);
        true
    }
}

/// Requests per window for a method (reference §3.14, per product).
fn rate(path: &str) -> (usize, Duration) {
    let second = Duration::from_secs(1);
    match path {
        "commands/callback" | "commands/call/hangup" | "commands/recording/start" => (4, second),
        "config/users/request" | "commands/transfer" | "commands/route" | "stats/request" => {
            (1, Duration::from_secs(2))
        }
        "stats/result" => (50, second),
        _ => (10, second),
    }
}

const PATHS: &[&str] = &[
    "commands/callback",
    "commands/callback_group",
    "commands/call/hangup",
    "commands/route",
    "commands/transfer",
    "commands/call/hold/on",
    "commands/recording/start",
    "commands/play/start",
    "commands/sms",
    "config/users/request",
    "stats/request",
    "stats/result",
    "queries/recording/post",
];

/// What a request gets.
#[derive(Debug)]
enum Answer {
    /// 200 `{"result":N}` (success and refusals).
    Result(u32),
    /// 420 `{"code":N}`: the request is malformed (3xxx); counts towards the lock-out.
    Error(u32),
    /// 401: the key is blocked.
    Locked,
    /// 429.
    RateLimited,
    Json(Value),
    Csv(String),
    NoContent,
    NotFound,
    Redirect(String),
}

impl Answer {
    fn status(&self) -> u16 {
        match self {
            Self::Result(_) | Self::Json(_) | Self::Csv(_) => 200,
            Self::Error(_) => 420,
            Self::Locked => 401,
            Self::RateLimited => 429,
            Self::NoContent => 204,
            Self::NotFound => 404,
            Self::Redirect(_) => 302,
        }
    }

    fn code(&self) -> Option<u32> {
        match self {
            Self::Result(c) | Self::Error(c) => Some(*c),
            _ => None,
        }
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let json_body = |body: String| {
            (
                status,
                [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
                body,
            )
                .into_response()
        };
        match self {
            Self::Result(c) => json_body(json!({ "result": c }).to_string()),
            Self::Error(c) => json_body(json!({ "code": c }).to_string()),
            Self::Locked => json_body(LOCKED_BODY.to_owned()),
            Self::RateLimited => json_body(RATE_LIMIT_BODY.to_owned()),
            Self::Json(v) => json_body(v.to_string()),
            Self::Csv(csv) => (
                status,
                [(header::CONTENT_TYPE, "text/csv; charset=UTF-8")],
                csv,
            )
                .into_response(),
            Self::NoContent | Self::NotFound => status.into_response(),
            Self::Redirect(location) => (status, [(header::LOCATION, location)]).into_response(),
        }
    }
}

/// Reads a command's JSON: 3103 when a required field is missing, 3400 when it is not JSON or
/// does not fit the command (a value of the wrong type).
fn body<T: DeserializeOwned>(json: &str) -> Result<T, Answer> {
    let value: Value = serde_json::from_str(json).map_err(|_| Answer::Error(3400))?;
    serde_json::from_value(value).map_err(|e| {
        if e.to_string().contains("missing field") {
            Answer::Error(3103)
        } else {
            Answer::Error(3400)
        }
    })
}

/// `stats/request` as sent by every client (dates as strings or numbers, `fields` a string or,
/// as in D17, an array).
#[derive(Debug, Deserialize)]
struct StatsAsk {
    date_from: Value,
    date_to: Value,
    #[serde(default)]
    fields: Option<Value>,
    #[serde(default)]
    from: Option<StatsParty>,
    #[serde(default)]
    to: Option<StatsParty>,
    #[serde(default)]
    call_party: Option<StatsParty>,
}

fn unix(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn user_json(e: &Employee, line: &str) -> Value {
    let login = e
        .sip_bare()
        .split('@')
        .next()
        .unwrap_or_default()
        .to_owned();
    json!({
        "general": {
            "name": e.name,
            "email": format!("{login}@example.ru"),
            "department": "Продажи",
            "position": "Оператор",
            "user_id": e.user_id,
            "access_role_id": 10451,
            "mobile": null,
            "login": null,
            "use_status": 0,
            "use_cc_numbers": 0,
            "sips": [{ "number": e.sip_bare() }]
        },
        "telephony": {
            "extension": e.extension,
            "outgoingline": line,
            "numbers": [{
                "number": e.sip_uri(),
                "protocol": "sip",
                "order": 0,
                "wait_sec": 120,
                "status": "on",
                "schedule": []
            }],
            "dial_alg": 1,
            "line_id": 300_049_195,
            "trunk_number_id": null
        },
        "groups": [10_048_964]
    })
}

impl Shared {
    /// Everything after the lock-out and rate checks: the form, the signature, the command.
    fn handle(&self, method: &Method, path: &str, raw: &[u8]) -> (Answer, Option<String>) {
        if method != Method::POST {
            return (Answer::Error(3101), None);
        }
        let form = match SignedForm::parse(raw) {
            Ok(form) => form,
            Err(WebhookError::MissingField(_)) => return (Answer::Error(3103), None),
            Err(_) => return (Answer::Error(3100), None),
        };
        let json = form.json.to_string();
        match form.verify(&self.credentials) {
            Ok(_) => {}
            Err(WebhookError::WrongKey) => return (Answer::Error(3105), Some(json)),
            Err(_) => return (Answer::Error(3102), Some(json)),
        }
        let answer = self.dispatch(path, &json).unwrap_or_else(|refusal| refusal);
        (answer, Some(json))
    }

    fn dispatch(&self, path: &str, json: &str) -> Result<Answer, Answer> {
        let result = |code| Ok(Answer::Result(code));
        match path {
            "commands/callback" => {
                let c: Callback = body(json)?;
                result(self.with_engine(0, |e| e.cmd_callback(&c)))
            }
            "commands/callback_group" => {
                let c: CallbackGroup = body(json)?;
                result(self.with_engine(0, |e| e.cmd_callback_group(&c)))
            }
            "commands/call/hangup" => {
                let c: Hangup = body(json)?;
                result(self.with_engine(0, |e| e.cmd_hangup(&c)))
            }
            "commands/route" => {
                let c: Route = body(json)?;
                result(self.with_engine(0, |e| e.cmd_ack("route", &c.command_id, &c.call_id)))
            }
            "commands/transfer" => {
                let c: Transfer = body(json)?;
                result(self.with_engine(0, |e| e.cmd_transfer(&c)))
            }
            "commands/call/hold/on" => {
                let c: HoldOn = body(json)?;
                result(self.with_engine(0, |e| e.cmd_hold(&c)))
            }
            "commands/recording/start" => {
                let c: RecordingStart = body(json)?;
                result(self.with_engine(0, |e| e.cmd_recording(&c)))
            }
            "commands/play/start" => {
                let c: PlayStart = body(json)?;
                result(self.with_engine(0, |e| e.cmd_ack("play/start", &c.command_id, &c.call_id)))
            }
            "commands/sms" => {
                let c: Sms = body(json)?;
                result(self.with_engine(0, |e| e.cmd_sms(&c)))
            }
            "config/users/request" => {
                let q: UsersRequest = body(json)?;
                let engine = lock(&self.engine);
                let users: Vec<Value> = engine
                    .employees()
                    .iter()
                    .filter(|e| q.extension.as_ref().is_none_or(|x| *x == e.extension))
                    .map(|e| user_json(e, engine.line()))
                    .collect();
                Ok(Answer::Json(json!({ "users": users })))
            }
            "stats/request" => self.stats_request(json),
            "stats/result" => {
                let q: StatsResult = body(json)?;
                let mut jobs = lock(&self.stats);
                Ok(match jobs.get_mut(&q.key) {
                    None => Answer::NotFound,
                    Some(job) if job.not_ready > 0 => {
                        job.not_ready -= 1;
                        Answer::NoContent
                    }
                    Some(job) => Answer::Csv(job.csv.clone()),
                })
            }
            "queries/recording/post" => {
                let q: RecordingPost = body(json)?;
                let (available, token) = self.with_engine(0, |e| {
                    (e.recording_available(&q.recording_id), e.ids().file_token())
                });
                if !available {
                    return result(3320);
                }
                lock(&self.files).insert(token.clone(), q.recording_id);
                Ok(Answer::Redirect(format!(
                    "http://{}/files/{token}",
                    self.addr
                )))
            }
            _ => Ok(Answer::NotFound),
        }
    }

    fn stats_request(&self, json: &str) -> Result<Answer, Answer> {
        let q: StatsAsk = body(json)?;
        let (Some(from), Some(to)) = (unix(&q.date_from), unix(&q.date_to)) else {
            return Err(Answer::Error(3104));
        };
        if to < from || to - from > 31 * 86_400 {
            return Err(Answer::Error(3111));
        }
        if q.call_party.is_some() && (q.from.is_some() || q.to.is_some()) {
            return Err(Answer::Error(3100));
        }
        let fields: Vec<String> = match &q.fields {
            None | Some(Value::Null) => {
                STATS_DEFAULT_FIELDS.split(',').map(str::to_owned).collect()
            }
            Some(Value::String(s)) => s.split(',').map(|f| f.trim().to_owned()).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .map(|f| f.as_str().map(str::to_owned).ok_or(Answer::Error(3104)))
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(Answer::Error(3104)),
        };
        let pair =
            |p: &Option<StatsParty>| p.as_ref().map(|p| (p.extension.clone(), p.number.clone()));
        let filter = StatsFilter {
            from: pair(&q.from),
            to: pair(&q.to),
            call_party: pair(&q.call_party),
        };
        let (csv, key) = self.with_engine(0, |e| {
            (e.stats_csv(from, to, &fields, &filter), e.ids().stats_key())
        });
        lock(&self.stats).insert(
            key.clone(),
            StatsJob {
                csv,
                not_ready: self.stats_not_ready_polls,
            },
        );
        Ok(Answer::Json(json!({ "key": key })))
    }
}

async fn vpbx(
    State(shared): State<Arc<Shared>>,
    method: Method,
    Path(path): Path<String>,
    raw: Bytes,
) -> Response {
    let path = path.trim_matches('/').to_owned();
    let now = Instant::now();
    if !PATHS.contains(&path.as_str()) {
        let answer = Answer::NotFound;
        shared.log_request(&path, None, &answer);
        return answer.into_response();
    }
    if shared.locked(now) {
        shared.log_request(&path, None, &Answer::Locked);
        return Answer::Locked.into_response();
    }
    if shared.rate_limits && !shared.admit(&path, now) {
        shared.log_request(&path, None, &Answer::RateLimited);
        return Answer::RateLimited.into_response();
    }
    let (mut answer, json) = shared.handle(&method, &path, &raw);
    if matches!(answer, Answer::Error(_)) && shared.count_error(now) {
        answer = Answer::Locked;
    }
    shared.log_request(&path, json, &answer);
    answer.into_response()
}

/// A one-shot recording link: the bytes once, then 404.
async fn file(State(shared): State<Arc<Shared>>, Path(token): Path<String>) -> Response {
    let Some(recording_id) = lock(&shared.files).remove(&token) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let data = Bytes::from(recording_audio(&recording_id, shared.recording_size));
    let len = data.len();
    let chunks: Vec<Result<Bytes, std::io::Error>> = (0..len)
        .step_by(16 * 1024)
        .map(|i| Ok(data.slice(i..(i + 16 * 1024).min(len))))
        .collect();
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "audio/mpeg".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}

/// Runs the PBX's timed steps when they are due (scaled).
async fn clock(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let due = lock(&shared.engine).next_due();
        let timer = async {
            match due {
                Some(at) => tokio::time::sleep_until(shared.wall_at(at)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = timer => shared.with_engine(due.unwrap_or(0), |_| ()),
            () = shared.wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

async fn post(shared: &Shared, client: &reqwest::Client, d: &Delivery, timeout: Duration) {
    let target = lock(&shared.target).clone();
    let outcome = match target {
        None => Err("no target set".to_owned()),
        Some(base) => {
            let url = format!("{}/{}", base.trim_end_matches('/'), d.path);
            let body = SignedForm::encode(&shared.credentials, &d.json);
            let sent = client
                .post(&url)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(body)
                .timeout(timeout)
                .send()
                .await;
            match sent {
                Ok(resp) if resp.status().is_success() => Ok(()),
                Ok(resp) => Err(format!("HTTP {} from {url}", resp.status().as_u16())),
                Err(e) => Err(format!("{url}: {e}")),
            }
        }
    };
    let mut logs = lock(&shared.logs);
    match outcome {
        Ok(()) => logs.delivered.push(DeliveredWebhook {
            path: d.path.clone(),
            json: d.json.clone(),
        }),
        Err(reason) => {
            tracing::warn!(path = %d.path, %reason, "fake Mango: webhook not delivered");
            logs.failed.push(FailedDelivery {
                path: d.path.clone(),
                json: d.json.clone(),
                reason,
            });
        }
    }
}

struct Deliverer {
    shared: Arc<Shared>,
    client: reqwest::Client,
    mode: DeliveryMode,
    max_delay: Duration,
    timeout: Duration,
}

impl Deliverer {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Delivery>, mut stop: watch::Receiver<bool>) {
        let mut rng = Rng::new(match self.mode {
            DeliveryMode::Shuffled { seed } => seed,
            _ => 0,
        });
        loop {
            let next = tokio::select! {
                d = rx.recv() => d,
                _ = stop.changed() => None,
            };
            let Some(d) = next else { return };
            match self.mode {
                DeliveryMode::InOrder => post(&self.shared, &self.client, &d, self.timeout).await,
                DeliveryMode::Duplicated => {
                    post(&self.shared, &self.client, &d, self.timeout).await;
                    post(&self.shared, &self.client, &d, self.timeout).await;
                }
                DeliveryMode::Shuffled { .. } => {
                    let max = u64::try_from(self.max_delay.as_micros()).unwrap_or(u64::MAX);
                    let delay = Duration::from_micros(rng.below(max));
                    let (shared, client, timeout) =
                        (self.shared.clone(), self.client.clone(), self.timeout);
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        post(&shared, &client, &d, timeout).await;
                    });
                }
            }
        }
    }
}

/// The fake Mango Office VPBX API on loopback. Dropping it stops it too (without waiting).
#[derive(Debug)]
pub struct FakeMango {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeMango {
    /// Binds `127.0.0.1:0` and starts serving; webhooks wait for [`FakeMango::set_target`].
    pub async fn start(config: FakeMangoConfig) -> Result<Self, FakeMangoError> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let client = loopback_client_builder()?
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FakeMangoError::Client(e.to_string()))?;
        let start_unix = config.start_unix.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
        });
        let engine = Vpbx::new(
            EngineConfig {
                timings: config.timings.clone(),
                employees: config.employees.clone(),
                line: config.line_number.clone(),
                phones: config.phones.clone(),
                extension_phone: config.extension_phone,
                number_phone: config.number_phone,
            },
            Ids::new(config.seed),
            start_unix,
        );
        let (out, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            credentials: config.credentials.clone(),
            sim_second: config.sim_second,
            started: Instant::now(),
            addr,
            lockout_window: config.lockout_window,
            rate_limits: config.rate_limits,
            recording_size: config.recording_size,
            stats_not_ready_polls: config.stats_not_ready_polls,
            engine: Mutex::new(engine),
            wake: Notify::new(),
            out,
            target: Mutex::new(None),
            logs: Mutex::new(Logs::default()),
            guard: Mutex::new(Guard::default()),
            stats: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let app = Router::new()
            .route("/vpbx/{*path}", any(vpbx))
            .route("/files/{token}", get(file))
            .with_state(shared.clone());
        let mut server_stop = stop_rx.clone();
        let server = tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = server_stop.changed().await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(%e, "fake Mango server stopped");
            }
        });
        let clock = tokio::spawn(clock(shared.clone(), stop_rx.clone()));
        let deliverer = Deliverer {
            shared: shared.clone(),
            client,
            mode: config.delivery,
            max_delay: config.shuffle_max_delay,
            timeout: config.webhook_timeout,
        };
        let delivery = tokio::spawn(deliverer.run(rx, stop_rx));
        tracing::info!(%addr, "fake Mango VPBX listening");
        Ok(Self {
            shared,
            stop,
            tasks: vec![server, clock, delivery],
        })
    }

    /// `http://127.0.0.1:PORT/vpbx/`: the API base to give the client.
    pub fn base_url(&self) -> String {
        format!("http://{}/vpbx/", self.shared.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn credentials(&self) -> &Credentials {
        &self.shared.credentials
    }

    /// Where webhooks go: `target + path`, e.g. `http://127.0.0.1:X/mango/acme/` +
    /// `events/call`. Webhooks produced before a target is set fail (see
    /// [`FakeMango::failed_deliveries`]).
    pub fn set_target(&self, webhook_base_url: impl Into<String>) {
        *lock(&self.shared.target) = Some(webhook_base_url.into());
    }

    /// How `who` (an extension or an external number) reacts when a command rings it from now on.
    pub fn set_phone(&self, who: &str, behaviour: PhoneBehaviour) {
        self.shared.with_engine(0, |e| e.set_phone(who, behaviour));
    }

    /// Starts a scripted call now on the server's timeline; returns its `entry_id`.
    pub fn play(&self, scenario: &MangoScenario) -> String {
        self.shared.with_engine(0, |e| e.play(scenario))
    }

    /// Simulated Unix seconds now (the clock of the webhooks' timestamps).
    pub fn now_unix(&self) -> i64 {
        self.shared.with_engine(0, |e| e.now_unix())
    }

    /// The calls in progress and their live legs.
    pub fn live_calls(&self) -> Vec<LiveCall> {
        self.shared.with_engine(0, |e| e.live_calls())
    }

    /// Every request received under `/vpbx/`, in order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.logs).requests.clone()
    }

    /// Webhooks the target acknowledged with 2xx, in order of acknowledgement.
    pub fn delivered(&self) -> Vec<DeliveredWebhook> {
        lock(&self.shared.logs).delivered.clone()
    }

    pub fn failed_deliveries(&self) -> Vec<FailedDelivery> {
        lock(&self.shared.logs).failed.clone()
    }

    /// Stops serving and delivering, and waits (at most 2 s) for the tasks.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in self.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}
