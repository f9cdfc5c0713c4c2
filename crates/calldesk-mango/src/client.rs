//! [`MangoClient`]: signed requests to the VPBX API with local checks, rate limits, retries
//! that never repeat a command, and the key lock-out remembered.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use calldesk_mango_proto::codes::Family;
use calldesk_mango_proto::command::{
    self, Callback, CallbackFrom, CallbackGroup, CommandResponse, Hangup, HoldOn, InvalidValue,
    PlayStart, RateClass, RecordingAction, RecordingPost, RecordingStart, Request, Route, Sms,
    StatsKey, StatsParty, StatsRequest, StatsResult, Transfer, TransferMethod, User, UsersRequest,
    UsersResponse,
};
use calldesk_mango_proto::stats::{self, StatsRow};
use calldesk_mango_proto::{Code, Credentials, SignedForm};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use reqwest::header::{self, HeaderMap};
use reqwest::{Response, StatusCode, Url};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::config::is_loopback;
use crate::{MangoConfig, MangoError};

/// How long Mango locks the key after a 401 when it does not say (D26 §1.4.1: 2 minutes).
pub const LOCKOUT: Duration = Duration::from_secs(120);
/// The longest `stats/request` window Mango accepts (one month).
pub const MAX_STATS_WINDOW_SECS: i64 = 31 * 24 * 3600;
/// SMS length limits (4 segments): Latin-only text, and text with any other character
/// (Cyrillic: the SMS is sent as UCS-2).
pub const SMS_MAX_LATIN: usize = 612;
pub const SMS_MAX_UNICODE: usize = 268;
/// The largest text answer read (a month of stats CSV fits comfortably).
const MAX_TEXT: usize = 64 * 1024 * 1024;
/// Redirects followed by a recording download (Mango sends one).
const MAX_REDIRECTS: usize = 5;
const RECORDING_ACTION: &str = "queries/recording/post";

/// The client's spacing for a rate class: the documented spacing plus 5 %, so that network
/// jitter does not bring two requests closer together than Mango allows when they arrive.
pub fn rate_period(class: RateClass) -> Duration {
    Duration::from_millis(class.spacing_ms() * 21 / 20)
}

/// A downloaded recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    /// Bytes written to the writer.
    pub bytes: u64,
    /// The file's `Content-Type` (`audio/mpeg`), when sent.
    pub content_type: Option<String>,
}

/// Filters of a stats request: `from` and/or `to`, or `call_party` (either side) alone. Each
/// party is an extension and/or a number; empty strings match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsFilter {
    pub from: Option<StatsParty>,
    pub to: Option<StatsParty>,
    pub call_party: Option<StatsParty>,
}

/// The VPBX API client of one product (tenant). Cheap to clone; clones share the rate limiters
/// and the lock-out state.
#[derive(Clone)]
pub struct MangoClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base_url: Url,
    credentials: Credentials,
    request_timeout: Duration,
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    stats_poll: Duration,
    stats_deadline: Duration,
    limiters: Limiters,
    locked_until: Mutex<Option<Instant>>,
}

struct Limiters {
    default: DefaultDirectRateLimiter,
    call: DefaultDirectRateLimiter,
    recording: DefaultDirectRateLimiter,
    slow: DefaultDirectRateLimiter,
}

impl Limiters {
    fn new() -> Self {
        let limiter = |class| {
            let quota = Quota::with_period(rate_period(class))
                .unwrap_or_else(|| Quota::per_second(std::num::NonZeroU32::MIN));
            RateLimiter::direct(quota)
        };
        Self {
            default: limiter(RateClass::Default),
            call: limiter(RateClass::Call),
            recording: limiter(RateClass::Recording),
            slow: limiter(RateClass::Slow),
        }
    }

    fn get(&self, class: RateClass) -> &DefaultDirectRateLimiter {
        match class {
            RateClass::Default => &self.default,
            RateClass::Call => &self.call,
            RateClass::Recording => &self.recording,
            RateClass::Slow => &self.slow,
        }
    }
}

impl fmt::Debug for MangoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MangoClient")
            .field("base_url", &self.inner.base_url.as_str())
            .field("api_key", &self.inner.credentials.key())
            .finish_non_exhaustive()
    }
}

/// What one exchange should produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A JSON answer (commands, users, stats keys).
    Json,
    /// `stats/result`: 204 not ready, 404 unknown key, 200 CSV.
    Stats,
    /// A recording: a redirect or a body that is not JSON is handed back unread.
    Stream,
}

enum Answer {
    Text { status: StatusCode, text: String },
    Stream(Response),
}

/// The outcome of one failed attempt.
enum Step {
    Fail(MangoError),
    Retry {
        error: MangoError,
        after: Option<Duration>,
    },
}

impl MangoClient {
    /// Builds the HTTP client (rustls with the ring provider, system roots plus the extra PEM
    /// roots, no automatic redirects).
    pub fn new(config: MangoConfig) -> Result<Self, MangoError> {
        let mut base_url = config.base_url.clone();
        if !matches!(base_url.scheme(), "http" | "https") || base_url.cannot_be_a_base() {
            return Err(MangoError::Config(format!(
                "the base URL {base_url} is not an http(s) URL"
            )));
        }
        if !base_url.path().ends_with('/') {
            let path = format!("{}/", base_url.path());
            base_url.set_path(&path);
        }
        base_url.set_query(None);
        base_url.set_fragment(None);
        if base_url.scheme() == "http" && !is_loopback(&base_url) {
            tracing::warn!(
                base_url = base_url.as_str(),
                "the Mango API base is plain http: requests travel unencrypted"
            );
        }
        let tls = calldesk_tls::client_config(
            config.extra_root_certs_pem.as_deref(),
            base_url.scheme() == "https",
            &calldesk_tls::HTTP_ALPN,
        )
        .map_err(|e| MangoError::Config(e.to_string()))?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(config.request_timeout * 2 / 3)
            .user_agent(concat!("calldesk-mango/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| MangoError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                stats_poll: config.effective_stats_poll(),
                base_url,
                credentials: config.credentials,
                request_timeout: config.request_timeout,
                max_retries: config.max_retries,
                backoff_base: config.backoff_base,
                backoff_max: config.backoff_max,
                stats_deadline: config.stats_deadline,
                limiters: Limiters::new(),
                locked_until: Mutex::new(None),
            }),
        })
    }

    /// The API base requests are joined to (always ends with `/`).
    pub fn base_url(&self) -> &Url {
        &self.inner.base_url
    }

    /// How long the key stays locked out after a 401, if it is.
    pub fn locked_out_for(&self) -> Option<Duration> {
        let mut locked = self
            .inner
            .locked_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match *locked {
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    *locked = None;
                    None
                } else {
                    Some(left)
                }
            }
            None => None,
        }
    }

    // ---- commands -------------------------------------------------------------------------

    /// `commands/callback`: ring `extension`, then `to_number` (an external number without
    /// `+`, an extension or a group). Returns the `command_id`.
    pub async fn callback(
        &self,
        extension: &str,
        to_number: &str,
        line_number: Option<&str>,
    ) -> Result<String, MangoError> {
        command::check_extension("from.extension", extension)?;
        let body = Callback {
            command_id: new_command_id(),
            from: CallbackFrom {
                extension: extension.to_owned(),
                number: None,
            },
            to_number: number("to_number", to_number)?,
            line_number: line_number.map(|l| line("line_number", l)).transpose()?,
            sip_headers: None,
        };
        self.send(&body).await?;
        Ok(body.command_id)
    }

    /// `commands/callback_group`: connect `from` and `to`, one of them a group's short number.
    pub async fn callback_group(
        &self,
        from: &str,
        to: &str,
        line_number: &str,
    ) -> Result<String, MangoError> {
        let body = CallbackGroup {
            command_id: new_command_id(),
            from: number("from", from)?,
            to: number("to", to)?,
            line_number: line("line_number", line_number)?,
        };
        self.send(&body).await?;
        Ok(body.command_id)
    }

    /// `commands/call/hangup` of one leg.
    pub async fn hangup(&self, call_id: &str) -> Result<String, MangoError> {
        command::check_id("call_id", call_id)?;
        let body = Hangup {
            command_id: new_command_id(),
            call_id: call_id.to_owned(),
        };
        self.send(&body).await?;
        Ok(body.command_id)
    }

    /// `commands/route`: send a leg waiting in the IVR or queue, or ringing, to `to_number`.
    pub async fn route(&self, call_id: &str, to_number: &str) -> Result<String, MangoError> {
        command::check_id("call_id", call_id)?;
        let body = Route {
            command_id: new_command_id(),
            call_id: call_id.to_owned(),
            to_number: number("to_number", to_number)?,
            sip_headers: None,
        };
        self.send(&body).await?;
        Ok(body.command_id)
    }

    /// `commands/transfer` of a connected leg on behalf of `initiator` (an employee on it).
    pub async fn transfer(
        &self,
        call_id: &str,
        method: TransferMethod,
        to_number: &str,
        initiator: &str,
    ) -> Result<String, MangoError> {
        command::check_id("call_id", call_id)?;
        let body = Transfer {
            command_id: new_command_id(),
            call_id: call_id.to_owned(),
            method,
            to_number: number("to_number", to_number)?,
            initiator: number("initiator", initiator)?,
        };
        self.send(&body).await?;
        Ok(body.command_id)
    }

    /// `commands/call/hold/on`: `initiator` puts the other side of the leg on hold.
    pub async fn hold_on(&self, call_id: &str, initiator: &str) -> Result<String, MangoError> {
        command::check_id("call_id", call_id)?;
        let body = HoldOn {
            command_id: new_command_id(),
            call_id: call_id.to_owned(),
            initiator: number("initiator", initiator)?,
        };
        self.send(&body).await?;
        Ok(body.command_id)
    }

    /// `commands/recording/start` of `call_party_number` (an employee's extension or number)
    /// on a leg.
    pub async fn recording_start(
        &self,
        call_id: &str,
        call_party_number: &str,
    ) -> Result<String, MangoError> {
        command::check_id("call_id", call_id)?;
        let body = RecordingStart {
            command_id: new_command_id(),
            call_id: call_id.to_owned(),
            call_party_number: number("call_party_number", call_party_number)?,
        };
        self.send(&body).await?;
        Ok(body.command_id)
    }

    /// `commands/play/start`: play uploaded audio file `internal_id` to a leg in the IVR or
    /// queue, then wait `after_play_time` seconds.
    pub async fn play_start(
        &self,
        call_id: &str,
        internal_id: i64,
        after_play_time: Option<u32>,
    ) -> Result<String, MangoError> {
        command::check_id("call_id", call_id)?;
        if internal_id <= 0 {
            return Err(InvalidValue::Bad {
                field: "internal_id",
                value: internal_id.to_string(),
                why: "an audio file id is a positive number",
            }
            .into());
        }
        let body = PlayStart {
            command_id: new_command_id(),
            call_id: call_id.to_owned(),
            internal_id,
            after_play_time,
        };
        self.send(&body).await?;
        Ok(body.command_id)
    }

    /// `commands/sms` from an employee (who is billed). `sender`: a sender name allowed in the
    /// personal account (the account's default when `None`).
    pub async fn sms(
        &self,
        text: &str,
        from_extension: &str,
        to_number: &str,
        sender: Option<&str>,
    ) -> Result<String, MangoError> {
        check_sms_text(text)?;
        command::check_extension("from_extension", from_extension)?;
        if let Some(sender) = sender {
            check_sms_sender(sender)?;
        }
        let body = Sms {
            command_id: new_command_id(),
            text: text.to_owned(),
            from_extension: from_extension.to_owned(),
            to_number: number("to_number", to_number)?,
            sms_sender: sender.map(str::to_owned),
        };
        self.send(&body).await?;
        Ok(body.command_id)
    }

    // ---- queries --------------------------------------------------------------------------

    /// `config/users/request`: every employee, or the one with `extension`.
    pub async fn users(&self, extension: Option<&str>) -> Result<Vec<User>, MangoError> {
        if let Some(e) = extension {
            command::check_extension("extension", e)?;
        }
        let body = UsersRequest {
            extension: extension.map(str::to_owned),
            ext_fields: None,
        };
        let text = self.send(&body).await?;
        serde_json::from_str::<UsersResponse>(&text)
            .map(|r| r.users)
            .map_err(|e| {
                MangoError::BadResponse(format!(
                    "{} answered with JSON that is not a users list: {e}",
                    UsersRequest::PATH
                ))
            })
    }

    /// `stats/request` for the calls between two instants (Unix seconds, at most 31 days
    /// apart); `fields` is a comma-separated column list (see
    /// [`calldesk_mango_proto::stats::DEFAULT_FIELDS`]). Returns the key to poll with.
    pub async fn stats_request(
        &self,
        from_unix: i64,
        to_unix: i64,
        fields: &str,
        filter: &StatsFilter,
    ) -> Result<String, MangoError> {
        let body = stats_body(from_unix, to_unix, fields, filter)?;
        let text = self.send(&body).await?;
        serde_json::from_str::<StatsKey>(&text)
            .ok()
            .and_then(|k| k.key)
            .ok_or_else(|| {
                MangoError::BadResponse(format!(
                    "{} answered without a key: {}",
                    StatsRequest::PATH,
                    excerpt(&text)
                ))
            })
    }

    /// `stats/result`: `None` while the report is not ready (204), the CSV when it is (200);
    /// [`MangoError::UnknownStatsKey`] for an unknown or expired key (404).
    pub async fn stats_result(&self, key: &str) -> Result<Option<String>, MangoError> {
        check_stats_key(key)?;
        let body = StatsResult {
            key: key.to_owned(),
        };
        match self.exchange(&body, Expect::Stats).await? {
            Answer::Text { status, .. } if status == StatusCode::NO_CONTENT => Ok(None),
            Answer::Text { text, .. } => Ok(Some(text)),
            Answer::Stream(_) => Err(unexpected_stream(StatsResult::PATH)),
        }
    }

    /// A stats report: `stats/request`, then `stats/result` every
    /// [`MangoConfig::effective_stats_poll`] until it is ready (or
    /// [`MangoConfig::stats_deadline`] passes), parsed.
    pub async fn stats(
        &self,
        from_unix: i64,
        to_unix: i64,
        fields: &str,
        filter: &StatsFilter,
    ) -> Result<Vec<StatsRow>, MangoError> {
        let key = self
            .stats_request(from_unix, to_unix, fields, filter)
            .await?;
        let started = Instant::now();
        let poll = self.inner.stats_poll;
        loop {
            tokio::time::sleep(poll).await;
            if let Some(csv) = self.stats_result(&key).await? {
                return Ok(stats::parse(&csv, fields)?);
            }
            if started.elapsed() + poll > self.inner.stats_deadline {
                return Err(MangoError::StatsNotReady {
                    waited: started.elapsed(),
                });
            }
        }
    }

    /// Downloads a recording into `writer`, chunk by chunk: `queries/recording/post` answers
    /// with a redirect to a one-shot link, which is fetched once (never retried: the link dies
    /// on first use). On an error the writer may hold a partial file; discard it and call
    /// again (each call gets a new link).
    pub async fn download_recording<W>(
        &self,
        recording_id: &str,
        writer: &mut W,
    ) -> Result<Download, MangoError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        command::check_id("recording_id", recording_id)?;
        let body = RecordingPost {
            recording_id: recording_id.to_owned(),
            action: RecordingAction::Download,
        };
        let mut response = match self.exchange(&body, Expect::Stream).await? {
            Answer::Stream(r) => r,
            Answer::Text { status, text } => {
                return Err(MangoError::BadResponse(format!(
                    "{RECORDING_ACTION} answered HTTP {status} with {} instead of the recording",
                    excerpt(&text)
                )));
            }
        };
        let mut hops = 0;
        while response.status().is_redirection() {
            hops += 1;
            if hops > MAX_REDIRECTS {
                return Err(MangoError::BadResponse(format!(
                    "{RECORDING_ACTION}: more than {MAX_REDIRECTS} redirects"
                )));
            }
            let url = redirect_target(&response)?;
            response = self.fetch_once(url).await?;
        }
        let status = response.status();
        if !status.is_success() || is_json(response.headers()) {
            return Err(self.file_error(response).await);
        }
        self.stream_into(response, writer).await
    }

    // ---- the exchange ---------------------------------------------------------------------

    /// A request whose answer is JSON; returns its text.
    async fn send<R: Request + Sync>(&self, body: &R) -> Result<String, MangoError> {
        match self.exchange(body, Expect::Json).await? {
            Answer::Text { text, .. } => Ok(text),
            Answer::Stream(_) => Err(unexpected_stream(R::PATH)),
        }
    }

    /// Serialises `body` once, signs that string, and POSTs it (rate-limited, retried where
    /// safe, refused locally while the key is locked out).
    async fn exchange<R: Request + Sync>(
        &self,
        body: &R,
        expect: Expect,
    ) -> Result<Answer, MangoError> {
        let json = serde_json::to_string(body).map_err(|e| {
            MangoError::Config(format!("cannot serialise a {} request: {e}", R::PATH))
        })?;
        let form = SignedForm::encode(&self.inner.credentials, &json);
        let url =
            self.inner.base_url.join(R::PATH).map_err(|e| {
                MangoError::Config(format!("cannot build the {} URL: {e}", R::PATH))
            })?;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            self.check_lock()?;
            self.inner.limiters.get(R::RATE).until_ready().await;
            // The lock may have been taken by another request while this one waited.
            self.check_lock()?;
            tracing::debug!(path = R::PATH, attempt, "sending a Mango request");
            let step = match self.attempt::<R>(&url, &form, expect, attempt).await {
                Ok(answer) => return Ok(answer),
                Err(step) => step,
            };
            match step {
                Step::Fail(error) => return Err(error),
                Step::Retry { error, after } => {
                    if attempt > self.inner.max_retries {
                        return Err(error);
                    }
                    let delay = self.backoff(attempt).max(
                        after
                            .unwrap_or_default()
                            .min(self.inner.backoff_max.max(self.inner.backoff_base)),
                    );
                    tracing::debug!(
                        path = R::PATH,
                        attempt,
                        delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                        error = %error,
                        "retrying a Mango request"
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn attempt<R: Request>(
        &self,
        url: &Url,
        form: &str,
        expect: Expect,
        attempt: u32,
    ) -> Result<Answer, Step> {
        let timeout = self.inner.request_timeout;
        let request = self
            .inner
            .http
            .post(url.clone())
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_owned());
        let sent = if expect == Expect::Stream {
            // The body may be a large file: only the answer's head is under the timeout here.
            match tokio::time::timeout(timeout, request.send()).await {
                Ok(sent) => sent,
                Err(_) => {
                    return Err(resend_if_safe::<R>(
                        MangoError::Timeout {
                            action: R::PATH,
                            maybe_sent: true,
                            after: timeout,
                        },
                        true,
                    ));
                }
            }
        } else {
            request.timeout(timeout).send().await
        };
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                let (error, maybe_sent) = transport_error(R::PATH, &e, timeout);
                return Err(resend_if_safe::<R>(error, maybe_sent));
            }
        };
        let status = response.status();
        tracing::debug!(path = R::PATH, status = status.as_u16(), "Mango answered");
        if status == StatusCode::UNAUTHORIZED {
            let retry_after = retry_after(response.headers()).unwrap_or(LOCKOUT);
            self.lock(retry_after);
            tracing::warn!(
                path = R::PATH,
                seconds = retry_after.as_secs(),
                "Mango locked the API key out (HTTP 401); refusing requests locally until it passes"
            );
            return Err(Step::Fail(MangoError::LockedOut { retry_after }));
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Step::Retry {
                after: retry_after(response.headers()),
                error: MangoError::RateLimited {
                    action: R::PATH,
                    attempts: attempt,
                },
            });
        }
        if expect == Expect::Stats {
            if status == StatusCode::NO_CONTENT {
                return Ok(Answer::Text {
                    status,
                    text: String::new(),
                });
            }
            if status == StatusCode::NOT_FOUND {
                return Err(Step::Fail(MangoError::UnknownStatsKey));
            }
        }
        if expect == Expect::Stream
            && (status.is_redirection() || (status.is_success() && !is_json(response.headers())))
        {
            return Ok(Answer::Stream(response));
        }
        let text = match read_text(&mut response, R::PATH).await {
            Ok(text) => text,
            Err(ReadError::Transport(e)) => {
                let (error, _) = transport_error(R::PATH, &e, timeout);
                return Err(resend_if_safe::<R>(error, true));
            }
            Err(ReadError::Bad(error)) => return Err(Step::Fail(error)),
        };
        let parsed = parse_object(&text);
        match parsed.as_ref().and_then(CommandResponse::code) {
            Some(code) if code.is_success() => Ok(Answer::Text { status, text }),
            Some(Code(4290)) => Err(Step::Retry {
                error: MangoError::RateLimited {
                    action: R::PATH,
                    attempts: attempt,
                },
                after: None,
            }),
            Some(code) if code.family() == Family::Server => Err(resend_if_safe::<R>(
                MangoError::Server {
                    action: R::PATH,
                    code: Some(code),
                    status: status.as_u16(),
                },
                true,
            )),
            Some(code) => Err(Step::Fail(code_error(R::PATH, code, parsed.as_ref()))),
            None if status.is_server_error() => Err(resend_if_safe::<R>(
                MangoError::Server {
                    action: R::PATH,
                    code: None,
                    status: status.as_u16(),
                },
                true,
            )),
            None if status.is_success() => {
                if expect == Expect::Json && parsed.is_none() && !text.trim().is_empty() {
                    return Err(Step::Fail(MangoError::BadResponse(format!(
                        "{} answered HTTP {status} with something that is not JSON: {}",
                        R::PATH,
                        excerpt(&text)
                    ))));
                }
                Ok(Answer::Text { status, text })
            }
            None => Err(Step::Fail(MangoError::BadResponse(format!(
                "{} answered HTTP {status}: {}{}",
                R::PATH,
                excerpt(&text),
                if status == StatusCode::NOT_FOUND {
                    " (check base_url: Mango's API lives under /vpbx/)"
                } else {
                    ""
                }
            )))),
        }
    }

    fn backoff(&self, retry: u32) -> Duration {
        let factor = 2u32.saturating_pow(retry.saturating_sub(1).min(20));
        let cap = self
            .inner
            .backoff_base
            .saturating_mul(factor)
            .min(self.inner.backoff_max.max(self.inner.backoff_base));
        let ms = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rand::random_range(ms / 2..=ms))
    }

    fn check_lock(&self) -> Result<(), MangoError> {
        match self.locked_out_for() {
            Some(retry_after) => Err(MangoError::LockedOut { retry_after }),
            None => Ok(()),
        }
    }

    fn lock(&self, duration: Duration) {
        let until = Instant::now() + duration;
        let mut locked = self
            .inner
            .locked_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if locked.is_none_or(|current| current < until) {
            *locked = Some(until);
        }
    }

    /// GETs a one-shot recording link, exactly once.
    async fn fetch_once(&self, url: Url) -> Result<Response, MangoError> {
        let timeout = self.inner.request_timeout;
        match tokio::time::timeout(timeout, self.inner.http.get(url).send()).await {
            Err(_) => Err(MangoError::Timeout {
                action: RECORDING_ACTION,
                maybe_sent: true,
                after: timeout,
            }),
            Ok(Err(e)) => Err(transport_error(RECORDING_ACTION, &e, timeout).0),
            Ok(Ok(r)) => Ok(r),
        }
    }

    /// The error for a recording file answer that is not audio.
    async fn file_error(&self, mut response: Response) -> MangoError {
        let status = response.status();
        let text = match read_text(&mut response, RECORDING_ACTION).await {
            Ok(text) => text,
            Err(ReadError::Bad(e)) => return e,
            Err(ReadError::Transport(e)) => {
                return transport_error(RECORDING_ACTION, &e, self.inner.request_timeout).0;
            }
        };
        let parsed = parse_object(&text);
        match parsed.as_ref().and_then(CommandResponse::code) {
            Some(code) if !code.is_success() => code_error(RECORDING_ACTION, code, parsed.as_ref()),
            _ if status.is_server_error() => MangoError::Server {
                action: RECORDING_ACTION,
                code: None,
                status: status.as_u16(),
            },
            _ => MangoError::BadResponse(format!(
                "the recording link answered HTTP {status} with {} instead of audio (links work once: request the recording again)",
                excerpt(&text)
            )),
        }
    }

    async fn stream_into<W>(
        &self,
        mut response: Response,
        writer: &mut W,
    ) -> Result<Download, MangoError>
    where
        W: AsyncWrite + Unpin + ?Sized,
    {
        let timeout = self.inner.request_timeout;
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let expected = response.content_length();
        let mut bytes: u64 = 0;
        loop {
            let chunk = match tokio::time::timeout(timeout, response.chunk()).await {
                Err(_) => {
                    return Err(MangoError::Timeout {
                        action: RECORDING_ACTION,
                        maybe_sent: true,
                        after: timeout,
                    });
                }
                Ok(Err(e)) => return Err(transport_error(RECORDING_ACTION, &e, timeout).0),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => chunk,
            };
            writer.write_all(&chunk).await.map_err(MangoError::Write)?;
            bytes += chunk.len() as u64;
        }
        writer.flush().await.map_err(MangoError::Write)?;
        if let Some(expected) = expected
            && expected != bytes
        {
            return Err(MangoError::BadResponse(format!(
                "the recording was cut short: {bytes} of {expected} bytes"
            )));
        }
        tracing::debug!(bytes, "recording downloaded");
        Ok(Download {
            bytes,
            content_type,
        })
    }
}

fn new_command_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A dialable number: checked, then without a leading `+` (Mango wants E.164 digits only).
fn number(field: &'static str, value: &str) -> Result<String, InvalidValue> {
    command::check_number(field, value)?;
    Ok(value.strip_prefix('+').unwrap_or(value).to_owned())
}

/// A line: a number, or a SIP line's name from the personal account (no spaces).
fn line(field: &'static str, value: &str) -> Result<String, InvalidValue> {
    if let Ok(n) = number(field, value) {
        return Ok(n);
    }
    command::check_id(field, value)?;
    Ok(value.to_owned())
}

fn bad(field: &'static str, value: &str, why: &'static str) -> InvalidValue {
    InvalidValue::Bad {
        field,
        value: value.chars().take(64).collect(),
        why,
    }
}

fn check_sms_text(text: &str) -> Result<(), InvalidValue> {
    if text.trim().is_empty() {
        return Err(InvalidValue::Empty { field: "text" });
    }
    if text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(bad(
            "text",
            text,
            "it contains control characters other than line breaks",
        ));
    }
    let chars = text.chars().count();
    if text.is_ascii() {
        if chars > SMS_MAX_LATIN {
            return Err(bad(
                "text",
                text,
                "an SMS holds at most 612 Latin characters (4 segments)",
            ));
        }
    } else if chars > SMS_MAX_UNICODE {
        return Err(bad(
            "text",
            text,
            "an SMS with Cyrillic (or any non-Latin) characters holds at most 268 of them (4 segments)",
        ));
    }
    Ok(())
}

fn check_sms_sender(sender: &str) -> Result<(), InvalidValue> {
    if sender.trim().is_empty() {
        return Err(InvalidValue::Empty {
            field: "sms_sender",
        });
    }
    let chars = sender.chars().count();
    if chars > 11 {
        return Err(InvalidValue::TooLong {
            field: "sms_sender",
            len: chars,
            max: 11,
        });
    }
    if sender.chars().any(char::is_control) {
        return Err(bad("sms_sender", sender, "it contains control characters"));
    }
    Ok(())
}

fn check_stats_key(key: &str) -> Result<(), InvalidValue> {
    if key.is_empty() {
        return Err(InvalidValue::Empty { field: "key" });
    }
    if key.len() > 4096 {
        return Err(InvalidValue::TooLong {
            field: "key",
            len: key.len(),
            max: 4096,
        });
    }
    if key.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad(
            "key",
            key,
            "a stats key has no spaces or control characters",
        ));
    }
    Ok(())
}

fn stats_party(field: &'static str, party: &StatsParty) -> Result<StatsParty, InvalidValue> {
    let extension = if party.extension.is_empty() {
        String::new()
    } else {
        command::check_extension(field, &party.extension)?;
        party.extension.clone()
    };
    let number = if party.number.is_empty() {
        String::new()
    } else {
        number(field, &party.number)?
    };
    Ok(StatsParty { extension, number })
}

fn stats_body(
    from_unix: i64,
    to_unix: i64,
    fields: &str,
    filter: &StatsFilter,
) -> Result<StatsRequest, InvalidValue> {
    if from_unix < 0 {
        return Err(bad(
            "date_from",
            &from_unix.to_string(),
            "a time is Unix seconds",
        ));
    }
    if to_unix <= from_unix {
        return Err(bad(
            "date_to",
            &to_unix.to_string(),
            "date_to must be after date_from",
        ));
    }
    if to_unix - from_unix > MAX_STATS_WINDOW_SECS {
        return Err(bad(
            "date_to",
            &to_unix.to_string(),
            "Mango reports at most 31 days at once; split the period",
        ));
    }
    if fields.is_empty() {
        return Err(InvalidValue::Empty { field: "fields" });
    }
    if !fields
        .split(',')
        .all(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        return Err(bad(
            "fields",
            fields,
            "fields are column names (a-z, _) separated by commas, without spaces",
        ));
    }
    if filter.call_party.is_some() && (filter.from.is_some() || filter.to.is_some()) {
        return Err(bad(
            "call_party",
            "",
            "call_party cannot be combined with from or to",
        ));
    }
    Ok(StatsRequest {
        date_from: from_unix.to_string(),
        date_to: to_unix.to_string(),
        fields: fields.to_owned(),
        request_id: None,
        from: filter
            .from
            .as_ref()
            .map(|p| stats_party("from", p))
            .transpose()?,
        to: filter
            .to
            .as_ref()
            .map(|p| stats_party("to", p))
            .transpose()?,
        call_party: filter
            .call_party
            .as_ref()
            .map(|p| stats_party("call_party", p))
            .transpose()?,
    })
}

/// Retry a failed attempt unless it is a command that may have reached Mango.
fn resend_if_safe<R: Request>(error: MangoError, maybe_sent: bool) -> Step {
    if maybe_sent && R::COMMAND {
        Step::Fail(error)
    } else {
        Step::Retry { error, after: None }
    }
}

/// A reqwest error as a [`MangoError`], and whether the request may have left.
fn transport_error(
    action: &'static str,
    e: &reqwest::Error,
    after: Duration,
) -> (MangoError, bool) {
    // A connect error (refused, DNS, connect timeout): nothing was sent.
    let maybe_sent = !e.is_connect();
    let error = if e.is_timeout() {
        MangoError::Timeout {
            action,
            maybe_sent,
            after,
        }
    } else {
        MangoError::Transport {
            action,
            maybe_sent,
            reason: error_chain(e),
        }
    };
    (error, maybe_sent)
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn code_error(action: &'static str, code: Code, response: Option<&CommandResponse>) -> MangoError {
    if code.family() == Family::BadRequest {
        let detail = response.and_then(|r| {
            let mut parts = Vec::new();
            if let Some(d) = r.description.as_deref().or(r.message.as_deref()) {
                parts.push(excerpt(d));
            }
            if let Some(fields) = &r.fields {
                parts.push(format!("fields: {}", excerpt(&fields.to_string())));
            }
            (!parts.is_empty()).then(|| parts.join("; "))
        });
        MangoError::BadRequest {
            action,
            code,
            detail,
        }
    } else {
        MangoError::Rejected { action, code }
    }
}

fn unexpected_stream(action: &'static str) -> MangoError {
    MangoError::BadResponse(format!("{action} answered with a redirect or a file"))
}

fn redirect_target(response: &Response) -> Result<Url, MangoError> {
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            MangoError::BadResponse(format!(
                "{RECORDING_ACTION} answered HTTP {} without a Location",
                response.status()
            ))
        })?;
    let url = response.url().join(location).map_err(|e| {
        MangoError::BadResponse(format!("{RECORDING_ACTION} redirected to a bad URL: {e}"))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(MangoError::BadResponse(format!(
            "{RECORDING_ACTION} redirected to a {} URL",
            url.scheme()
        )));
    }
    Ok(url)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("json"))
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// The answer as a JSON object carrying a code, when it is one.
fn parse_object(text: &str) -> Option<CommandResponse> {
    let text = text.trim();
    if !text.starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// At most 200 characters of an answer, control characters blanked (for messages).
fn excerpt(text: &str) -> String {
    let mut out: String = text
        .trim()
        .chars()
        .take(200)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().count() > 200 {
        out.push('…');
    }
    if out.is_empty() {
        out.push_str("an empty body");
    }
    out
}

enum ReadError {
    Transport(reqwest::Error),
    Bad(MangoError),
}

async fn read_text(response: &mut Response, action: &'static str) -> Result<String, ReadError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(ReadError::Transport)? {
        if body.len() + chunk.len() > MAX_TEXT {
            return Err(ReadError::Bad(MangoError::BadResponse(format!(
                "{action} answered with more than {MAX_TEXT} bytes"
            ))));
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| {
        ReadError::Bad(MangoError::BadResponse(format!(
            "{action} answered with text that is not UTF-8"
        )))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_limits_depend_on_the_alphabet() {
        assert!(check_sms_text(&"a".repeat(612)).is_ok());
        assert!(check_sms_text(&"a".repeat(613)).is_err());
        assert!(check_sms_text(&"я".repeat(268)).is_ok());
        assert!(check_sms_text(&format!("{}я", "a".repeat(268))).is_err());
        assert!(check_sms_text("line one\nline two").is_ok());
        assert!(check_sms_text("nul\0").is_err());
        assert!(check_sms_text("  ").is_err());
        assert!(check_sms_sender("PRO-TAXI").is_ok());
        assert!(check_sms_sender("TWELVE-CHARS").is_err());
    }

    #[test]
    fn stats_windows_fields_and_filters_are_checked() {
        let none = StatsFilter::default();
        let ok = stats_body(
            1_700_000_000,
            1_700_000_000 + MAX_STATS_WINDOW_SECS,
            "records,start",
            &none,
        );
        assert!(ok.is_ok());
        assert!(
            stats_body(
                1_700_000_000,
                1_700_000_001 + MAX_STATS_WINDOW_SECS,
                "start",
                &none
            )
            .is_err()
        );
        assert!(stats_body(10, 10, "start", &none).is_err());
        assert!(stats_body(10, 20, "start, finish", &none).is_err());
        assert!(stats_body(10, 20, "", &none).is_err());
        let party = StatsParty {
            extension: "101".into(),
            number: "+79161234567".into(),
        };
        let both = StatsFilter {
            from: Some(party.clone()),
            call_party: Some(party.clone()),
            ..StatsFilter::default()
        };
        assert!(stats_body(10, 20, "start", &both).is_err());
        let from = StatsFilter {
            from: Some(party),
            ..StatsFilter::default()
        };
        let body = stats_body(10, 20, "start", &from).ok().and_then(|b| b.from);
        assert_eq!(body.map(|p| p.number), Some("79161234567".to_owned()));
    }

    #[test]
    fn numbers_lose_the_plus_and_lines_may_be_names() {
        assert_eq!(
            number("to", "+79161234567").ok().as_deref(),
            Some("79161234567")
        );
        assert_eq!(line("line", "trunk-1").ok().as_deref(), Some("trunk-1"));
        assert!(line("line", "trunk 1").is_err());
        assert!(number("to", "7916\r\n").is_err());
        assert!(number("to", "seven").is_err());
    }

    #[test]
    fn error_chains_and_excerpts() {
        assert_eq!(excerpt("  "), "an empty body");
        assert_eq!(excerpt("a\nb"), "a b");
        assert_eq!(excerpt(&"x".repeat(300)).chars().count(), 201);
        assert_eq!(rate_period(RateClass::Slow), Duration::from_millis(2100));
    }
}
