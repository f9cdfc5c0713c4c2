//! The Hub profile: the hub's REST API for login and call controls ([`HubClient`], [`HubPbx`]),
//! and its `/ws` feed of calls and presence ([`run_feed`]).
//!
//! The feed reconnects by itself with backoff and jitter. Every (re)connect starts with the
//! hub's snapshot, which replaces the live calls; a call that was live before the gap and is
//! not in the snapshot ended while we were away, so its final state is read over REST and
//! stored before the snapshot is applied — nothing is lost across a hub restart.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use calldesk_ami::{Backoff, BackoffConfig};
use calldesk_calls::{
    Capabilities, Control, ControlError, ControlOutcome, Destination, NumberPlan, PartyMemo, Pbx,
    RecordAction,
};
use calldesk_wire::{
    CallStateView, CallView, CallbackItem, CallbackView, CapabilitiesView, ConnectionState,
    HUB_PROTOCOL, HubCall, HubMessage, Identity, ProfileKind,
};
use futures_util::{SinkExt, StreamExt};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::book::BookInput;
use crate::engine::{EngineEvent, StatusReporter};
use crate::{EngineError, Secret};

/// How long one REST request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Ping the hub this often; nothing heard for twice as long means a dead connection.
const KEEPALIVE: Duration = Duration::from_secs(10);
/// Parties of hub calls, parsed once each (a busy board repeats the same numbers).
const PARTY_MEMO: usize = 4096;

/// Where and as whom the desktop talks to the hub.
#[derive(Debug, Clone)]
pub struct HubProfile {
    /// `http(s)://host[:port]` of the hub.
    pub url: String,
    pub tenant: String,
    pub login: String,
    pub password: Secret,
    /// Extra trusted root certificates (PEM), e.g. a company CA.
    pub extra_root_certs_pem: Option<Vec<u8>>,
}

/// Why a hub request failed; the message says what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub(crate) enum HubError {
    #[error("the hub at {url} cannot be reached: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the hub refused the login: wrong tenant, login or password; fix them in the profile")]
    LoginRefused,
    #[error("the hub says: {0}")]
    Status(String),
    /// 400: the request's values were refused (the message says which and why).
    #[error("{0}")]
    Invalid(String),
    #[error("the hub speaks protocol {0}, this app protocol {HUB_PROTOCOL}; update calldesk")]
    Protocol(u32),
    #[error("the hub stopped answering")]
    Silent,
    #[error("the hub sent something this app cannot read: {0}")]
    Garbled(String),
}

/// The hub's REST API as one operator: logs in (again when the token expires) and sends
/// authorised requests.
#[derive(Debug, Clone)]
pub(crate) struct HubClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// Recording downloads: no total time-out (a long recording takes long), a read one.
    download: reqwest::Client,
    /// Ends with `/`.
    base: Url,
    ws: Url,
    tls: Option<Arc<calldesk_tls::ClientConfig>>,
    profile: HubProfile,
    token: Mutex<Option<String>>,
    identity: watch::Sender<Identity>,
    capabilities: watch::Sender<Capabilities>,
}

#[derive(Debug, Deserialize)]
struct LoginReply {
    token: String,
    operator: LoginOperator,
}

#[derive(Debug, Deserialize)]
struct LoginOperator {
    login: String,
    name: Option<String>,
    role: String,
    extension: String,
    tenant: String,
}

/// `GET /api/calls/{id}/recording`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct RecordingLink {
    pub url: String,
    pub name: String,
    #[serde(default)]
    pub size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct MeReply {
    capabilities: Option<CapabilitiesView>,
}

#[derive(Debug, Deserialize)]
struct Page {
    items: Vec<HubCall>,
    #[serde(default)]
    next: Option<String>,
}

/// An operator of the tenant as the hub lists them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct OperatorView {
    pub extension: String,
    pub name: Option<String>,
    pub login: String,
    pub role: String,
}

#[derive(Debug, Deserialize)]
struct Operators {
    items: Vec<OperatorView>,
}

/// Pages read at most for one question (500 calls each).
const MAX_PAGES: usize = 40;

impl HubClient {
    pub(crate) fn new(
        profile: HubProfile,
        identity: watch::Sender<Identity>,
    ) -> Result<Self, EngineError> {
        let bad =
            |why: String| EngineError::Profile(format!("hub address `{}`: {why}", profile.url));
        let mut base = Url::parse(profile.url.trim())
            .map_err(|e| bad(format!("{e}; write it as https://hub.example.com")))?;
        let ws_scheme = match base.scheme() {
            "http" => "ws",
            "https" => "wss",
            other => return Err(bad(format!("`{other}` is not http or https"))),
        };
        if base.host_str().is_none() {
            return Err(bad("it names no host".to_owned()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        let mut ws = base.join("ws").map_err(|e| bad(e.to_string()))?;
        ws.set_scheme(ws_scheme)
            .map_err(|()| bad("no WebSocket address".to_owned()))?;
        let https = base.scheme() == "https";
        let http_tls = calldesk_tls::client_config(
            profile.extra_root_certs_pem.as_deref(),
            https,
            &calldesk_tls::HTTP_ALPN,
        )
        .map_err(|e| EngineError::Profile(e.to_string()))?;
        let tls = if https {
            let ws_tls =
                calldesk_tls::client_config(profile.extra_root_certs_pem.as_deref(), true, &[])
                    .map_err(|e| EngineError::Profile(e.to_string()))?;
            Some(Arc::new(ws_tls))
        } else {
            None
        };
        let download = reqwest::Client::builder()
            .tls_backend_preconfigured(http_tls.clone())
            .redirect(reqwest::redirect::Policy::limited(3))
            .connect_timeout(REQUEST_TIMEOUT)
            .read_timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("calldesk-desktop/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Profile(format!("cannot build the HTTP client: {e}")))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(http_tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(REQUEST_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("calldesk-desktop/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::Profile(format!("cannot build the HTTP client: {e}")))?;
        let (capabilities, _) = watch::channel(Capabilities::default());
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                download,
                base,
                ws,
                tls,
                profile,
                token: Mutex::new(None),
                identity,
                capabilities,
            }),
        })
    }

    /// Names this hub and tenant in cache keys (recordings of two hubs never mix).
    pub(crate) fn scope(&self) -> String {
        format!("{}#{}", self.inner.base, self.inner.profile.tenant)
    }

    /// Names this hub, tenant and login in the local store: the outbox and the pull cursor
    /// are one operator's (another login on the same desk sees other calls and writes as
    /// someone else).
    pub(crate) fn sync_scope(&self) -> String {
        format!("{}#{}", self.scope(), self.inner.profile.login)
    }

    /// What the hub's PBX can do for this operator (nothing until the first login).
    pub(crate) fn capabilities(&self) -> Capabilities {
        *self.inner.capabilities.borrow()
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.inner.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn unreachable(&self, e: &reqwest::Error) -> HubError {
        // Only the innermost cause: reqwest's own text repeats the URL.
        let mut reason = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            reason = s.to_string();
            source = s.source();
        }
        HubError::Unreachable {
            url: self.inner.base.to_string(),
            reason,
        }
    }

    /// Logs in (password from the profile) and learns who we are and what we may do.
    async fn login(&self) -> Result<String, HubError> {
        let p = &self.inner.profile;
        let response = self
            .inner
            .http
            .post(self.url(&["api", "auth", "login"]))
            .json(&json!({"tenant": p.tenant, "login": p.login, "password": p.password.expose()}))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let reply: LoginReply = match response.status() {
            StatusCode::OK => response
                .json()
                .await
                .map_err(|e| HubError::Garbled(e.to_string()))?,
            StatusCode::UNAUTHORIZED => return Err(HubError::LoginRefused),
            _ => return Err(HubError::Status(error_text(response).await)),
        };
        *lock(&self.inner.token) = Some(reply.token.clone());
        let op = reply.operator;
        self.inner.identity.send_replace(Identity {
            profile: ProfileKind::Hub,
            tenant: Some(op.tenant),
            login: Some(op.login),
            name: op.name,
            supervisor: op.role == "supervisor" || op.role == "admin",
            extension: Some(op.extension),
        });
        let me: MeReply = self
            .inner
            .http
            .get(self.url(&["api", "me"]))
            .bearer_auth(&reply.token)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?
            .json()
            .await
            .map_err(|e| HubError::Garbled(e.to_string()))?;
        self.inner
            .capabilities
            .send_replace(me.capabilities.unwrap_or_default().into());
        Ok(reply.token)
    }

    async fn token(&self) -> Result<String, HubError> {
        let cached = lock(&self.inner.token).clone();
        match cached {
            Some(token) => Ok(token),
            None => self.login().await,
        }
    }

    fn forget_token(&self, token: &str) {
        let mut held = lock(&self.inner.token);
        if held.as_deref() == Some(token) {
            *held = None;
        }
    }

    /// Sends an authorised request; an expired token is renewed once (a 401 means the request
    /// was not carried out, so sending it again is safe).
    async fn send(
        &self,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, HubError> {
        for _ in 0..2 {
            let token = self.token().await?;
            let response = request(&self.inner.http)
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|e| self.unreachable(&e))?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            self.forget_token(&token);
        }
        Err(HubError::LoginRefused)
    }

    /// An authorised GET whose 200 answer is JSON of type `T`.
    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: Url) -> Result<T, HubError> {
        self.fetch_json(|http| http.get(url.clone())).await
    }

    /// An authorised request whose 200 answer is JSON of type `T`; any other status is the
    /// hub's error message.
    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        request: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<T, HubError> {
        let response = self.send(request).await?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::BAD_REQUEST => return Err(HubError::Invalid(error_text(response).await)),
            _ => return Err(HubError::Status(error_text(response).await)),
        }
        response
            .json()
            .await
            .map_err(|e| HubError::Garbled(e.to_string()))
    }

    /// A call as the hub has it now (`None`: the hub does not know it, or not to us).
    async fn call(&self, id: &str) -> Result<Option<HubCall>, HubError> {
        let url = self.url(&["api", "calls", id]);
        let response = self.send(|http| http.get(url.clone())).await?;
        match response.status() {
            StatusCode::OK => Ok(Some(
                response
                    .json()
                    .await
                    .map_err(|e| HubError::Garbled(e.to_string()))?,
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(HubError::Status(error_text(response).await)),
        }
    }

    /// The calls that started at or after `since` (RFC 3339) this operator may see: all of
    /// them for a supervisor. At most [`MAX_PAGES`] pages.
    pub(crate) async fn calls_since(
        &self,
        since: &str,
        parties: &mut PartyMemo,
    ) -> Result<Vec<CallView>, HubError> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = self.url(&["api", "calls"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("since", since).append_pair("limit", "500");
                if let Some(a) = &after {
                    q.append_pair("after", a);
                }
            }
            let page: Page = self.get_json(url).await?;
            out.extend(page.items.iter().map(|c| c.view(parties)));
            match page.next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        Ok(out)
    }

    /// A short-lived link to a call's recording (the first, or the one named `name`).
    /// 404: the call has no such recording (or is not ours); 409: not stored yet.
    pub(crate) async fn recording_link(
        &self,
        id: &str,
        name: Option<&str>,
    ) -> Result<Result<RecordingLink, (StatusCode, String)>, HubError> {
        let mut url = self.url(&["api", "calls", id, "recording"]);
        if let Some(name) = name {
            url.query_pairs_mut().append_pair("name", name);
        }
        let response = self.send(|http| http.get(url.clone())).await?;
        match response.status() {
            StatusCode::OK => Ok(Ok(response
                .json()
                .await
                .map_err(|e| HubError::Garbled(e.to_string()))?)),
            status @ (StatusCode::NOT_FOUND | StatusCode::CONFLICT | StatusCode::FORBIDDEN) => {
                Ok(Err((status, error_text(response).await)))
            }
            _ => Err(HubError::Status(error_text(response).await)),
        }
    }

    /// Starts downloading a recording from its link. The link is signed, so no token is
    /// sent (it may point at S3); the client's TLS settings apply. Only connecting and
    /// each read are timed, not the whole (possibly long) download.
    pub(crate) async fn open_download(&self, url: &str) -> Result<reqwest::Response, String> {
        let url = Url::parse(url).map_err(|e| format!("the hub gave a bad recording link: {e}"))?;
        let response = self
            .inner
            .download
            .get(url)
            .send()
            .await
            .map_err(|e| format!("the recording store cannot be reached: {e}"))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = error_text(response).await;
            return Err(format!("the recording store answered {status}: {text}"));
        }
        Ok(response)
    }

    /// The tenant's disposition list.
    pub(crate) async fn dispositions(&self) -> Result<Vec<String>, HubError> {
        #[derive(serde::Deserialize)]
        struct Codes {
            codes: Vec<String>,
        }
        let list: Codes = self.get_json(self.url(&["api", "dispositions"])).await?;
        Ok(list.codes)
    }

    /// The tenant's missed-calls worklist.
    pub(crate) async fn callbacks(&self) -> Result<Vec<CallbackView>, HubError> {
        #[derive(serde::Deserialize)]
        struct Items {
            items: Vec<CallbackItem>,
        }
        let list: Items = self.get_json(self.url(&["api", "callbacks"])).await?;
        Ok(list.items.iter().map(CallbackView::from).collect())
    }

    /// Claims (`action` "claim"), gives back ("release") or closes ("close", with `outcome`)
    /// the worklist item of `number`; the item after a claim or release.
    pub(crate) async fn callback_action(
        &self,
        action: &str,
        number: &str,
        outcome: Option<&str>,
    ) -> Result<Option<CallbackView>, HubError> {
        let url = self.url(&["api", "callbacks", action]);
        let body = json!({ "number": number, "outcome": outcome });
        let reply: serde_json::Value = self
            .fetch_json(|http| http.post(url.clone()).json(&body))
            .await?;
        Ok(serde_json::from_value::<CallbackItem>(reply)
            .ok()
            .map(|item| CallbackView::from(&item)))
    }

    /// Pushes changes this desk made; the hub's answer per change, in order. A hub without
    /// sync (older than this app) says so.
    pub(crate) async fn push(
        &self,
        changes: &[calldesk_wire::SyncChange],
    ) -> Result<Vec<calldesk_wire::SyncResult>, HubError> {
        let url = self.url(&["api", "sync", "push"]);
        let body = calldesk_wire::SyncPush {
            changes: changes.to_vec(),
        };
        let response = self.send(|http| http.post(url.clone()).json(&body)).await?;
        let reply: calldesk_wire::SyncPushReply = read_sync(response).await?;
        Ok(reply.results)
    }

    /// The calls changed since `cursor` (see `calldesk_wire::SyncPage`).
    pub(crate) async fn pull(
        &self,
        cursor: &str,
        limit: usize,
    ) -> Result<calldesk_wire::SyncPage, HubError> {
        let mut url = self.url(&["api", "sync", "pull"]);
        url.query_pairs_mut()
            .append_pair("cursor", cursor)
            .append_pair("limit", &limit.to_string());
        let response = self.send(|http| http.get(url.clone())).await?;
        read_sync(response).await
    }

    /// One page of the tenant's contacts after id `after` (for the contacts cache), and the
    /// `after` of the next page.
    pub(crate) async fn contacts_page(
        &self,
        after: i64,
    ) -> Result<(Vec<calldesk_store::CachedContact>, Option<i64>), HubError> {
        #[derive(serde::Deserialize)]
        struct Page {
            items: Vec<calldesk_store::CachedContact>,
            next: Option<i64>,
        }
        let mut url = self.url(&["api", "sync", "contacts"]);
        url.query_pairs_mut()
            .append_pair("after", &after.to_string())
            .append_pair("limit", "500");
        let response = self.send(|http| http.get(url.clone())).await?;
        let page: Page = read_sync(response).await?;
        Ok((page.items, page.next))
    }

    /// The tenant's operators.
    pub(crate) async fn operators(&self) -> Result<Vec<OperatorView>, HubError> {
        let list: Operators = self.get_json(self.url(&["api", "operators"])).await?;
        Ok(list.items)
    }

    /// The latest calls with `phone` (every operator may read them: the pop shows them).
    pub(crate) async fn history(
        &self,
        phone: &str,
        limit: u32,
        parties: &mut PartyMemo,
    ) -> Result<Vec<CallView>, HubError> {
        let mut url = self.url(&["api", "history"]);
        url.query_pairs_mut()
            .append_pair("phone", phone)
            .append_pair("limit", &limit.to_string());
        let page: Page = self.get_json(url).await?;
        Ok(page.items.iter().map(|c| c.view(parties)).collect())
    }
}

/// A sync answer: 200 with JSON, 404 from a hub without sync, else the hub's error.
async fn read_sync<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
) -> Result<T, HubError> {
    match response.status() {
        StatusCode::OK => response
            .json()
            .await
            .map_err(|e| HubError::Garbled(e.to_string())),
        StatusCode::NOT_FOUND => Err(HubError::Status(
            "this hub does not sync desks yet; update the hub (changes stay on this desk)"
                .to_owned(),
        )),
        StatusCode::BAD_REQUEST => Err(HubError::Invalid(error_text(response).await)),
        _ => Err(HubError::Status(error_text(response).await)),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The hub's error message (`{"error":{"message"}}`), else the status line.
async fn error_text(response: reqwest::Response) -> String {
    let status = response.status();
    let body: Option<Value> = response.json().await.ok();
    body.as_ref()
        .and_then(|b| b["error"]["message"].as_str().or(b["detail"].as_str()))
        .map_or_else(|| status.to_string(), str::to_owned)
}

/// Call controls through the hub's REST API; the hub carries them out on the PBX.
#[derive(Debug, Clone)]
pub(crate) struct HubPbx {
    client: HubClient,
}

impl HubPbx {
    pub(crate) fn new(client: HubClient) -> Self {
        Self { client }
    }

    pub(crate) fn client(&self) -> &HubClient {
        &self.client
    }
}

fn record_action(a: RecordAction) -> &'static str {
    match a {
        RecordAction::Start => "start",
        RecordAction::Stop => "stop",
        RecordAction::Mute => "mute",
        RecordAction::Unmute => "unmute",
    }
}

fn dial(to: &Destination) -> &str {
    to.dial_string()
}

impl Pbx for HubPbx {
    fn capabilities(&self) -> Capabilities {
        self.client.capabilities()
    }

    async fn execute(&self, control: Control) -> Result<ControlOutcome, ControlError> {
        let name = control.name();
        if !self.capabilities().allows(&control) {
            return Err(ControlError::NotSupported(name));
        }
        let c = &self.client;
        let (url, body) = match &control {
            Control::Originate { operator, to } => (
                c.url(&["api", "calls", "originate"]),
                json!({"to": dial(to), "from": operator.as_str()}),
            ),
            Control::Hangup { call, operator } => (
                c.url(&["api", "calls", call.as_str(), "hangup"]),
                json!({"operator": operator.as_ref().map(|e| e.as_str())}),
            ),
            Control::Transfer {
                call,
                operator,
                to,
                kind,
            } => (
                c.url(&["api", "calls", call.as_str(), "transfer"]),
                json!({"operator": operator.as_str(), "to": dial(to), "kind": kind.as_str()}),
            ),
            Control::Hold { call, operator, on } => (
                c.url(&["api", "calls", call.as_str(), "hold"]),
                json!({"operator": operator.as_str(), "on": on}),
            ),
            Control::Record { call, action } => (
                c.url(&["api", "calls", call.as_str(), "record"]),
                json!({"action": record_action(*action)}),
            ),
            Control::Monitor {
                call,
                operator,
                supervisor,
                mode,
            } => (
                c.url(&["api", "calls", call.as_str(), "monitor"]),
                json!({"operator": operator.as_str(), "supervisor": supervisor.as_str(), "mode": mode.as_str()}),
            ),
            Control::Dtmf {
                call,
                operator,
                digits,
            } => (
                c.url(&["api", "calls", call.as_str(), "dtmf"]),
                json!({"operator": operator.as_str(), "digits": digits.as_str()}),
            ),
            Control::QueuePause {
                operator,
                queue,
                paused,
                reason,
            } => (
                c.url(&["api", "queue", "pause"]),
                json!({"operator": operator.as_str(), "queue": queue, "paused": paused, "reason": reason}),
            ),
        };
        let response = c
            .send(|http| http.post(url.clone()).json(&body))
            .await
            .map_err(|e| match e {
                // Refused at login or before the request left: nothing happened.
                HubError::LoginRefused
                | HubError::Status(_)
                | HubError::Invalid(_)
                | HubError::Garbled(_) => ControlError::Refused {
                    action: name,
                    message: e.to_string(),
                },
                // The request may have reached the hub before the connection broke.
                _ => ControlError::Disconnected {
                    maybe_executed: !control.is_idempotent(),
                },
            })?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status == StatusCode::OK {
            let call = body["call"]
                .as_str()
                .and_then(|id| calldesk_calls::CallId::new(id).ok());
            return Ok(match control {
                Control::Originate { .. } => ControlOutcome::Originated { call },
                _ => ControlOutcome::Done,
            });
        }
        let message = body["error"]["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_owned);
        Err(match (body["error"]["code"].as_str(), &control) {
            (Some("invalid" | "bad_request"), _) => ControlError::Invalid(message),
            (Some("not_supported"), _) => ControlError::NotSupported(name),
            (
                Some("no_such_call" | "not_found"),
                Control::Hangup { call, .. }
                | Control::Transfer { call, .. }
                | Control::Hold { call, .. }
                | Control::Dtmf { call, .. }
                | Control::Record { call, .. }
                | Control::Monitor { call, .. },
            ) => ControlError::NoSuchCall(call.clone()),
            _ => ControlError::Refused {
                action: name,
                message,
            },
        })
    }
}

/// What the feed task reports besides calls.
#[derive(Debug)]
pub(crate) struct FeedOutputs {
    pub(crate) book: mpsc::Sender<BookInput>,
    pub(crate) status: StatusReporter,
    /// For what goes to the shell directly (worklist changes).
    pub(crate) events: broadcast::Sender<EngineEvent>,
    /// Wakes the sync worker: the hub has news for the local history.
    pub(crate) sync: Option<Arc<tokio::sync::Notify>>,
}

/// Keeps the `/ws` feed up until shutdown: connects, reads the snapshot and the messages that
/// follow, reconnects with backoff when the connection drops.
pub(crate) async fn run_feed(
    client: HubClient,
    region: NumberPlan,
    out: FeedOutputs,
    backoff: BackoffConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff_state = Backoff::new(backoff);
    let mut feed = Feed {
        client,
        parties: PartyMemo::new(region, PARTY_MEMO),
        live: HashSet::new(),
        out,
    };
    loop {
        let started = Instant::now();
        let result = tokio::select! {
            r = feed.session() => r,
            () = crate::engine::stopped(&mut shutdown) => return,
        };
        if started.elapsed() >= backoff.stable {
            backoff_state = Backoff::new(backoff);
        }
        let delay = backoff_state.next_delay();
        let (state, what) = match &result {
            Err(HubError::LoginRefused | HubError::Protocol(_)) => {
                (ConnectionState::Disconnected, result_text(&result))
            }
            _ => (ConnectionState::Reconnecting, result_text(&result)),
        };
        tracing::warn!(reason = %what, retry_in = ?delay, "hub connection lost");
        feed.set_status(
            state,
            Some(format!("{what}; retrying in {} s", delay.as_secs().max(1))),
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = crate::engine::stopped(&mut shutdown) => return,
        }
    }
}

fn result_text(r: &Result<(), HubError>) -> String {
    match r {
        Ok(()) => "the hub closed the connection".to_owned(),
        Err(e) => e.to_string(),
    }
}

struct Feed {
    client: HubClient,
    parties: PartyMemo,
    /// Calls reported live to the book (to settle the ones a new snapshot lacks).
    live: HashSet<String>,
    out: FeedOutputs,
}

impl Feed {
    fn set_status(&self, state: ConnectionState, detail: Option<String>) {
        self.out.status.set(state, detail);
    }

    async fn send_book(&mut self, input: BookInput) -> Result<(), HubError> {
        // The book only stops at shutdown, which ends this task first.
        self.out
            .book
            .send(input)
            .await
            .map_err(|_| HubError::Silent)
    }

    fn wake_sync(&self) {
        if let Some(sync) = &self.out.sync {
            sync.notify_one();
        }
    }

    async fn call_news(&mut self, call: &HubCall) -> Result<(), HubError> {
        let view = call.view(&mut self.parties);
        if view.state == calldesk_wire::CallStateView::Ended {
            self.live.remove(&view.id);
            // Its final record (and later its recordings' states) reach the history by pull too.
            self.wake_sync();
        } else {
            self.live.insert(view.id.clone());
        }
        self.send_book(BookInput::Call(Box::new(view))).await
    }

    /// One connection: login (if needed), upgrade, hello, snapshot, messages until it drops.
    async fn session(&mut self) -> Result<(), HubError> {
        let base = self.client.inner.base.to_string();
        self.set_status(ConnectionState::Connecting, Some(base.clone()));
        let token = self.client.token().await?;
        let mut request = self
            .client
            .inner
            .ws
            .as_str()
            .into_client_request()
            .map_err(|e| HubError::Garbled(e.to_string()))?;
        let bearer = format!("Bearer {token}")
            .parse()
            .map_err(|_| HubError::Garbled("the token is not a header value".to_owned()))?;
        request.headers_mut().insert("authorization", bearer);
        let connector = self
            .client
            .inner
            .tls
            .clone()
            .map(tokio_tungstenite::Connector::Rustls);
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(request, None, true, connector);
        let (mut ws, _) = match tokio::time::timeout(REQUEST_TIMEOUT, connect).await {
            Err(_) => {
                return Err(HubError::Unreachable {
                    url: base,
                    reason: "no answer in time".to_owned(),
                });
            }
            Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response)))
                if response.status() == StatusCode::UNAUTHORIZED.as_u16() =>
            {
                // The token expired: log in again on the next attempt.
                self.client.forget_token(&token);
                return Err(HubError::Status(
                    "the session expired; logging in again".to_owned(),
                ));
            }
            Ok(Err(e)) => {
                return Err(HubError::Unreachable {
                    url: base,
                    reason: e.to_string(),
                });
            }
            Ok(Ok(pair)) => pair,
        };
        self.set_status(ConnectionState::Resyncing, Some(base.clone()));
        let mut ping = tokio::time::interval(KEEPALIVE);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut heard = Instant::now();
        let mut greeted = false;
        loop {
            let frame = tokio::select! {
                frame = ws.next() => frame,
                _ = ping.tick() => {
                    if heard.elapsed() > KEEPALIVE * 2 {
                        return Err(HubError::Silent);
                    }
                    ws.send(Message::Ping(Vec::new().into())).await.map_err(|e| HubError::Unreachable { url: base.clone(), reason: e.to_string() })?;
                    continue;
                }
            };
            let text = match frame {
                None | Some(Ok(Message::Close(_))) => return Ok(()),
                Some(Err(e)) => {
                    return Err(HubError::Unreachable {
                        url: base,
                        reason: e.to_string(),
                    });
                }
                Some(Ok(Message::Text(text))) => {
                    heard = Instant::now();
                    text
                }
                Some(Ok(_)) => {
                    heard = Instant::now();
                    continue;
                }
            };
            let message: HubMessage = match serde_json::from_str(text.as_str()) {
                Ok(m) => m,
                Err(e) => {
                    // A newer hub's message type: skip it (additions are compatible).
                    tracing::debug!(error = %e, "hub message skipped");
                    continue;
                }
            };
            match message {
                HubMessage::Hello { protocol, .. } => {
                    if protocol != HUB_PROTOCOL {
                        return Err(HubError::Protocol(protocol));
                    }
                    greeted = true;
                }
                HubMessage::Snapshot {
                    calls, presence, ..
                } => {
                    if !greeted {
                        return Err(HubError::Garbled("a snapshot before hello".to_owned()));
                    }
                    self.snapshot(calls, presence).await?;
                    self.set_status(ConnectionState::Connected, Some(base.clone()));
                    // The hub is (back) up: what waited on this desk goes now.
                    self.wake_sync();
                }
                HubMessage::CallNew { call }
                | HubMessage::CallUpdated { call }
                | HubMessage::CallEnded { call } => self.call_news(&call).await?,
                HubMessage::Presence { presence } => {
                    self.send_book(BookInput::Presence(presence)).await?;
                }
                HubMessage::CallbacksChanged { .. } => {
                    // Nobody listening (no UI yet) is fine.
                    let _ = self.out.events.send(EngineEvent::CallbacksChanged);
                }
                HubMessage::SyncChanged {} => self.wake_sync(),
                HubMessage::PbxStatus { state, detail } => {
                    if state == ConnectionState::Connected {
                        self.set_status(ConnectionState::Connected, Some(base.clone()));
                    } else {
                        let why = detail.unwrap_or_else(|| format!("{state:?}").to_lowercase());
                        self.set_status(
                            ConnectionState::Degraded,
                            Some(format!("the hub has lost the PBX: {why}")),
                        );
                    }
                }
            }
        }
    }

    /// Applies a snapshot: first settles calls that ended while we were away (their final
    /// state from REST), then hands the book the hub's live calls. A call the snapshot lacks
    /// but the hub's record still has live (a hub that restarted and has not read its PBX
    /// again yet) stays live: the hub ends it, with its real end, once it knows.
    async fn snapshot(
        &mut self,
        mut calls: Vec<HubCall>,
        presence: Vec<calldesk_wire::PresenceView>,
    ) -> Result<(), HubError> {
        let mut now_live: HashSet<String> = calls.iter().map(|c| c.record.id.clone()).collect();
        let gone: Vec<String> = self.live.difference(&now_live).cloned().collect();
        for id in gone {
            match self.client.call(&id).await {
                Ok(Some(call)) if call.state != CallStateView::Ended => {
                    now_live.insert(id);
                    calls.push(call);
                }
                Ok(Some(call)) => self.call_news(&call).await?,
                Ok(None) => {
                    tracing::warn!(call = %id, "a call live before the reconnect is unknown to the hub now");
                }
                Err(e) => tracing::warn!(call = %id, error = %e, "cannot read how a call ended"),
            }
        }
        let views: Vec<CallView> = calls.iter().map(|c| c.view(&mut self.parties)).collect();
        self.live = now_live;
        self.send_book(BookInput::Snapshot {
            calls: views,
            presence,
        })
        .await
    }
}
