//! The AMI client: a driver task that keeps one AMI session alive and a cheap handle to it.
//!
//! Tasks per session: a **reader** that only decodes and forwards (it never waits for anyone,
//! so Asterisk's `writetimeout` never fires because of us), a **writer** that serialises
//! actions, and the **driver** that owns everything else (pending actions, keepalive, resync,
//! state). The driver hands events to the consumer with `try_send` on a bounded queue and
//! never awaits the consumer; see [`ClientEvent`] for the overflow policy.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame, Message, Outgoing};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::Completion;
use crate::backoff::{Backoff, BackoffConfig};
use crate::connection::{self, AmiCredentials, AmiError, AuthMethod, EventMask, Framed};
use crate::text::{header_text, server_text};
use crate::transport::{AmiStream, TlsConfig, TlsConnector};

/// Everything the client needs. `Debug` never shows the secret.
#[derive(Debug, Clone)]
pub struct AmiClientConfig {
    /// `host:port`, e.g. `pbx.example.com:5038`.
    pub addr: String,
    pub credentials: AmiCredentials,
    pub auth: AuthMethod,
    /// `Some`: AMI over TLS (usually port 5039).
    pub tls: Option<TlsConfig>,
    /// The `Events:` mask sent with `Login`.
    pub events: EventMask,
    /// Bound on TCP connect + TLS + banner + login.
    pub connect_timeout: Duration,
    /// A `Ping` is sent this often...
    pub ping_interval: Duration,
    /// ...and must be answered within this, or the session is considered dead.
    pub ping_timeout: Duration,
    /// Also run `QueueStatus` in every resync (its items join the `Resync`).
    pub resync_queue_status: bool,
    /// Bound on each resync list; a list that takes longer ends the session.
    pub resync_timeout: Duration,
    pub backoff: BackoffConfig,
    /// Capacity of the event queue to the consumer (see [`ClientEvent`]).
    pub event_queue: usize,
}

impl AmiClientConfig {
    /// Defaults: MD5 login, all events, ping every 10 s with a 10 s deadline, CoreShowChannels
    /// resync, backoff 0.5 s → 10 s, 65 536 queued events.
    pub fn new(addr: impl Into<String>, credentials: AmiCredentials) -> Self {
        Self {
            addr: addr.into(),
            credentials,
            auth: AuthMethod::default(),
            tls: None,
            events: EventMask::default(),
            connect_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(10),
            ping_timeout: Duration::from_secs(10),
            resync_queue_status: false,
            resync_timeout: Duration::from_secs(15),
            backoff: BackoffConfig::default(),
            event_queue: 65_536,
        }
    }
}

/// What the consumer receives, in order.
///
/// After every login the first item is a [`ClientEvent::Resync`]: the live state as Asterisk
/// lists it. Events that arrived while the lists were collected follow it, in order, then live
/// events. The queue is bounded ([`AmiClientConfig::event_queue`]) and the client never waits
/// for the consumer: when the queue is full the client drops events (counting them), reports
/// [`ConnState::Degraded`], and once the consumer has drained half the queue it runs a new
/// resync on the same session — so a slow consumer gets a fresh snapshot instead of a silently
/// incomplete stream, and never stalls the socket.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// Every item of the resync lists (`CoreShowChannel`, and with `resync_queue_status`
    /// `QueueParams`/`QueueMember`/`QueueEntry`), without the `…Complete` events. Consumers
    /// rebuild their live state from it. `complete` is false when a list was refused (the state
    /// says why); the items then hold only what was listed.
    Resync {
        /// Counts resyncs over the client's life, from 1.
        epoch: u64,
        items: Vec<Message>,
        complete: bool,
        /// Unix milliseconds when the resync finished.
        at_ms: i64,
    },
    /// A message no pending action claimed: an event, or a late reply to an action that timed
    /// out (e.g. an `OriginateResponse` after the Originate's timeout). The `OriginateResponse`
    /// that completes an async Originate is delivered here too.
    Event {
        message: Message,
        /// Unix milliseconds when the bytes were read.
        received_at_ms: i64,
    },
}

/// The connection as the UI shows it. Texts from the server are sanitised (control characters
/// stripped, at most ~200 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// Connecting and logging in; `attempt` counts from 1 since the last good session.
    Connecting { attempt: u32 },
    /// Logged in; collecting the resync lists (events are held back until they are in).
    Resyncing { epoch: u64 },
    /// Logged in and live.
    Connected { banner: String },
    /// Logged in, but the consumer's view may be incomplete (events dropped, or a resync list
    /// refused). A dropped-events degradation heals by itself with a resync.
    Degraded { reason: String },
    /// The session ended (or never started); the next attempt is in `retry_in`.
    Disconnected { reason: String, retry_in: Duration },
    /// Asterisk refused the credentials. The client does not retry (repeated failures get the
    /// address banned by fail2ban-style guards); fix the configuration and start a new client.
    LoginRejected { message: String },
    /// The client's own settings cannot work (e.g. a TLS CA file that cannot be read). Like a
    /// refused login it is final: fix the configuration and start a new client.
    Misconfigured { message: String },
    /// Shut down.
    Stopped,
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connecting { attempt } => write!(f, "connecting (attempt {attempt})"),
            Self::Resyncing { .. } => f.write_str("logged in, reading the live channels"),
            Self::Connected { banner } => write!(f, "connected to {banner}"),
            Self::Degraded { reason } => write!(f, "degraded: {reason}"),
            Self::Disconnected { reason, retry_in } => {
                write!(f, "disconnected ({reason}); retrying in {retry_in:?}")
            }
            Self::LoginRejected { message } => write!(f, "login rejected: {message}"),
            Self::Misconfigured { message } => write!(f, "cannot connect as configured: {message}"),
            Self::Stopped => f.write_str("stopped"),
        }
    }
}

/// A completed action.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The `Response:` message.
    pub response: Message,
    /// [`Completion::EventList`]: the list items (not the completion event).
    pub items: Vec<Message>,
    /// [`Completion::EventList`]: the `…Complete` event; [`Completion::AsyncEvent`]: the event.
    pub event: Option<Message>,
}

/// Why an action did not complete. Messages say what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("refused to send an invalid AMI action: {0}")]
    Invalid(String),
    /// `Response: Error`; `message` is Asterisk's sanitised text.
    #[error("Asterisk refused {action}: {message}")]
    Rejected { action: String, message: String },
    #[error(
        "Asterisk did not complete {action} within {after:?}{}",
        if *maybe_executed { "; it was sent and may still take effect" } else { "; it was never sent" }
    )]
    TimedOut {
        action: String,
        after: Duration,
        maybe_executed: bool,
    },
    #[error(
        "the AMI connection was lost {}",
        if *maybe_executed { "after the action was sent; check whether it took effect before retrying" } else { "before the action was sent; nothing happened" }
    )]
    Disconnected {
        action: String,
        maybe_executed: bool,
    },
    #[error("not connected to Asterisk ({reason}); nothing was sent, try again once connected")]
    NotConnected { reason: String },
    #[error("the AMI client has stopped")]
    Stopped,
}

/// Read-only actions that the client re-sends on the next session when the connection drops
/// before they complete (within their timeout). Everything else — Originate, Redirect,
/// Atxfer, BlindTransfer, Park, MixMonitor, Hangup, QueuePause… — is never re-sent: it fails
/// with [`ActionError::Disconnected`] and the caller decides.
const SAFE_TO_RESEND: &[&str] = &[
    "Ping",
    "CoreShowChannels",
    "CoreShowChannelMap",
    "CoreStatus",
    "CoreSettings",
    "Status",
    "Getvar",
    "QueueStatus",
    "QueueSummary",
    "BridgeList",
    "BridgeInfo",
    "DeviceStateList",
    "ExtensionState",
    "ExtensionStateList",
    "ParkedCalls",
    "ListCommands",
    "MailboxCount",
    "MailboxStatus",
    "SIPpeers",
    "SIPshowpeer",
    "PJSIPShowEndpoints",
    "PJSIPShowEndpoint",
    "PJSIPShowContacts",
    "PJSIPShowRegistrationsInbound",
];

/// True for the read-only actions the client may re-send after a reconnect.
pub fn is_safe_to_resend(action: &str) -> bool {
    SAFE_TO_RESEND
        .iter()
        .any(|a| a.eq_ignore_ascii_case(action))
}

/// The handle: cheap to clone. The driver runs until `shutdown` resolves or every handle is
/// dropped.
#[derive(Debug, Clone)]
pub struct AmiClient {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<ConnState>,
}

impl AmiClient {
    /// Starts the driver (must be called inside a tokio runtime). Returns the handle and the
    /// consumer's event queue.
    pub fn start(
        config: AmiClientConfig,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> (Self, mpsc::Receiver<ClientEvent>) {
        let (commands, commands_rx) = mpsc::unbounded_channel();
        let (events, events_rx) = mpsc::channel(config.event_queue.max(1));
        let (state, state_rx) = watch::channel(ConnState::Connecting { attempt: 1 });
        let driver = Driver {
            backoff: Backoff::new(config.backoff),
            config: Arc::new(config),
            commands: commands_rx,
            commands_open: true,
            events,
            state,
            epoch: 0,
            conn_no: 0,
            deferred: Vec::new(),
            tls: None,
            banner: String::new(),
        };
        tokio::spawn(driver.run(Box::pin(shutdown)));
        (
            Self {
                commands,
                state: state_rx,
            },
            events_rx,
        )
    }

    /// Sends `action` (which must not carry an `ActionID`: the client assigns one) and waits
    /// until it completes per `completion`, fails, or `timeout` passes.
    pub async fn send(
        &self,
        action: Outgoing,
        completion: Completion,
        timeout: Duration,
    ) -> Result<Reply, ActionError> {
        let Some(name) = action.get("Action").map(str::to_owned) else {
            return Err(ActionError::Invalid(
                "the message has no `Action` header; build it with Outgoing::action".to_owned(),
            ));
        };
        if action.get("ActionID").is_some() {
            return Err(ActionError::Invalid(format!(
                "{name} already has an ActionID; leave it out, the client assigns one"
            )));
        }
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command {
                action,
                name,
                completion,
                timeout,
                reply,
            })
            .map_err(|_| ActionError::Stopped)?;
        rx.await.map_err(|_| ActionError::Stopped)?
    }

    /// The connection state, to watch for changes.
    pub fn state(&self) -> watch::Receiver<ConnState> {
        self.state.clone()
    }

    /// The connection state now.
    pub fn current_state(&self) -> ConnState {
        self.state.borrow().clone()
    }

    /// Resolves once the driver has stopped.
    pub async fn stopped(&self) {
        let mut state = self.state.clone();
        let _ = state.wait_for(|s| *s == ConnState::Stopped).await;
    }
}

struct Command {
    action: Outgoing,
    name: String,
    completion: Completion,
    timeout: Duration,
    reply: oneshot::Sender<Result<Reply, ActionError>>,
}

/// A write job's progress, shared by the driver and the writer: whether an action may have
/// reached Asterisk.
const QUEUED: u8 = 0;
const WRITTEN: u8 = 1;
const CANCELLED: u8 = 2;

/// Marks a job cancelled if the writer has not started on it; true if it may have been sent.
fn cancel(progress: &AtomicU8) -> bool {
    progress
        .compare_exchange(QUEUED, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
        .is_err()
}

struct WriteJob {
    bytes: Vec<u8>,
    progress: Arc<AtomicU8>,
}

enum Inbox {
    Message(Message, i64),
    Closed(String),
}

enum Purpose {
    User(oneshot::Sender<Result<Reply, ActionError>>),
    Ping,
    Resync,
    Logoff,
}

struct Pending {
    name: String,
    completion: Completion,
    purpose: Purpose,
    progress: Arc<AtomicU8>,
    deadline: Instant,
    timeout: Duration,
    /// The action without ActionID, kept for read-only actions that may be re-sent.
    original: Option<Outgoing>,
    response: Option<Message>,
    items: Vec<Message>,
    event: Option<Message>,
}

/// An action waiting for a session.
struct Deferred {
    command: Command,
    deadline: Instant,
    maybe_executed: bool,
}

enum Absorb {
    /// Kept; more is expected.
    Kept,
    Done,
    Failed(String),
    /// Not part of this action's completion.
    Unrelated(Message),
}

fn is_error(msg: &Message) -> bool {
    msg.response()
        .is_some_and(|r| r.eq_ignore_ascii_case("Error") || r.eq_ignore_ascii_case("Failure"))
}

impl Pending {
    fn absorb(&mut self, msg: Message) -> Absorb {
        let is_response = msg.response().is_some();
        let rejected =
            |msg: &Message| Absorb::Failed(header_text(msg, "Message", "no reason given"));
        match self.completion {
            Completion::Response => {
                if !is_response {
                    return Absorb::Unrelated(msg);
                }
                if is_error(&msg) {
                    return rejected(&msg);
                }
                self.response = Some(msg);
                Absorb::Done
            }
            Completion::EventList => {
                if is_response {
                    if self.response.is_some() {
                        return Absorb::Unrelated(msg);
                    }
                    if is_error(&msg) {
                        return rejected(&msg);
                    }
                    let list = msg
                        .get("EventList")
                        .is_some_and(|v| v.eq_ignore_ascii_case(b"start"));
                    self.response = Some(msg);
                    // A reply without a list has nothing more to come.
                    return if list { Absorb::Kept } else { Absorb::Done };
                }
                if msg.event().is_none() {
                    return Absorb::Unrelated(msg);
                }
                match msg.get("EventList") {
                    Some(v) if v.eq_ignore_ascii_case(b"Complete") => {
                        self.event = Some(msg);
                        Absorb::Done
                    }
                    Some(v) if v.eq_ignore_ascii_case(b"cancelled") => {
                        Absorb::Failed("Asterisk cancelled the list".to_owned())
                    }
                    _ => {
                        self.items.push(msg);
                        Absorb::Kept
                    }
                }
            }
            Completion::AsyncEvent(name) => {
                if is_response && self.response.is_none() {
                    if is_error(&msg) {
                        return rejected(&msg);
                    }
                    self.response = Some(msg);
                } else if self.event.is_none()
                    && msg.event().is_some_and(|e| e.eq_ignore_ascii_case(name))
                {
                    self.event = Some(msg);
                } else {
                    return Absorb::Unrelated(msg);
                }
                if self.response.is_some() && self.event.is_some() {
                    Absorb::Done
                } else {
                    Absorb::Kept
                }
            }
        }
    }

    fn into_reply(self) -> (Purpose, Reply, String) {
        // Only odd servers end a list without a Response; the completion event stands in.
        let response = match (self.response, &self.event) {
            (Some(r), _) => r,
            (None, Some(e)) => e.clone(),
            (None, None) => Message::from_parts(bytes::Bytes::new(), Vec::new()),
        };
        (
            self.purpose,
            Reply {
                response,
                items: self.items,
                event: self.event,
            },
            self.name,
        )
    }
}

enum Mode {
    Resyncing {
        epoch: u64,
        outstanding: usize,
        items: Vec<Message>,
        buffered: Vec<(Message, i64)>,
        failures: Vec<String>,
    },
    Live,
    /// Events are being dropped until the consumer catches up.
    Overflowed,
}

/// One logged-in session's state.
struct Session {
    prefix: String,
    next: u64,
    pending: HashMap<String, Pending>,
    deadlines: BTreeSet<(Instant, String)>,
    writer: mpsc::UnboundedSender<WriteJob>,
    mode: Mode,
    ping: Option<String>,
    /// Why the server is about to close (from its `Shutdown` event).
    shutdown_note: Option<String>,
    dropped: u64,
}

impl Session {
    /// Queues `action` for writing and registers it. On failure the purpose comes back with the
    /// error.
    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        mut action: Outgoing,
        name: String,
        completion: Completion,
        timeout: Duration,
        deadline: Instant,
        purpose: Purpose,
    ) -> Result<String, (Purpose, ActionError)> {
        let original = is_safe_to_resend(&name).then(|| action.clone());
        self.next += 1;
        let id = format!("{}-{}", self.prefix, self.next);
        if let Err(e) = action.push("ActionID", &id) {
            return Err((purpose, ActionError::Invalid(e.to_string())));
        }
        let progress = Arc::new(AtomicU8::new(QUEUED));
        let job = WriteJob {
            bytes: action.to_bytes(),
            progress: progress.clone(),
        };
        if self.writer.send(job).is_err() {
            return Err((
                purpose,
                ActionError::Disconnected {
                    action: name,
                    maybe_executed: false,
                },
            ));
        }
        self.deadlines.insert((deadline, id.clone()));
        self.pending.insert(
            id.clone(),
            Pending {
                name,
                completion,
                purpose,
                progress,
                deadline,
                timeout,
                original,
                response: None,
                items: Vec::new(),
                event: None,
            },
        );
        Ok(id)
    }

    fn take(&mut self, id: &str) -> Option<Pending> {
        let p = self.pending.remove(id)?;
        self.deadlines.remove(&(p.deadline, id.to_owned()));
        Some(p)
    }
}

enum SessionEnd {
    /// Shut down (or every handle dropped).
    Stop,
    Lost(String),
}

type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

struct Driver {
    config: Arc<AmiClientConfig>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    events: mpsc::Sender<ClientEvent>,
    state: watch::Sender<ConnState>,
    backoff: Backoff,
    epoch: u64,
    conn_no: u64,
    deferred: Vec<Deferred>,
    tls: Option<TlsConnector>,
    banner: String,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Driver {
    fn set_state(&self, new: ConnState) {
        self.state.send_if_modified(|s| {
            if *s == new {
                return false;
            }
            tracing::info!(addr = %self.config.addr, state = %new, "AMI connection");
            *s = new;
            true
        });
    }

    async fn run(mut self, mut shutdown: Shutdown) {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.conn_no += 1;
            self.set_state(ConnState::Connecting { attempt });
            let connect = self.connect();
            let Some(opened) = self.offline(connect, &mut shutdown).await else {
                break;
            };
            let reason = match opened {
                Ok((framed, banner)) => {
                    attempt = 0;
                    self.banner = banner;
                    let started = Instant::now();
                    match self.session(framed, &mut shutdown).await {
                        SessionEnd::Stop => break,
                        SessionEnd::Lost(reason) => {
                            self.backoff.session_ended(started.elapsed());
                            reason
                        }
                    }
                }
                Err(e @ AmiError::TlsSetup { .. }) => {
                    self.set_state(ConnState::Misconfigured {
                        message: e.to_string(),
                    });
                    self.fail_deferred_all();
                    let _ = self
                        .offline(std::future::pending::<()>(), &mut shutdown)
                        .await;
                    break;
                }
                Err(AmiError::AuthRejected { message, .. }) => {
                    self.set_state(ConnState::LoginRejected { message });
                    self.fail_deferred_all();
                    let _ = self
                        .offline(std::future::pending::<()>(), &mut shutdown)
                        .await;
                    break;
                }
                Err(e) => e.to_string(),
            };
            let retry_in = self.backoff.next_delay();
            tracing::warn!(addr = %self.config.addr, %reason, ?retry_in, "AMI session lost; reconnecting");
            self.set_state(ConnState::Disconnected { reason, retry_in });
            if self
                .offline(tokio::time::sleep(retry_in), &mut shutdown)
                .await
                .is_none()
            {
                break;
            }
        }
        for d in self.deferred.drain(..) {
            let _ = d.command.reply.send(Err(ActionError::Stopped));
        }
        self.set_state(ConnState::Stopped);
    }

    /// The connect + login future; owns what it needs so commands can be served meanwhile.
    fn connect(
        &mut self,
    ) -> impl Future<Output = Result<(Framed, String), AmiError>> + Send + 'static {
        let config = self.config.clone();
        let tls = match (&config.tls, &self.tls) {
            (None, _) => Ok(None),
            (Some(_), Some(ready)) => Ok(Some(ready.clone())),
            (Some(tls), None) => TlsConnector::new(tls).map(|c| {
                self.tls = Some(c.clone());
                Some(c)
            }),
        };
        let prefix = format!("cd{}", self.conn_no);
        async move {
            let tls = tls?;
            let req = connection::LoginRequest {
                addr: &config.addr,
                credentials: &config.credentials,
                auth: config.auth,
                events: Some(&config.events),
                id_prefix: &prefix,
            };
            tokio::time::timeout(config.connect_timeout, connection::open(&req, tls.as_ref()))
                .await
                .map_err(|_| AmiError::TimedOut {
                    addr: config.addr.clone(),
                    after: config.connect_timeout,
                })?
        }
    }

    /// Runs `fut` while there is no session: serves commands (read-only ones wait for the next
    /// session, others fail at once) and expires waiting ones. `None`: stop.
    async fn offline<F: Future>(&mut self, fut: F, shutdown: &mut Shutdown) -> Option<F::Output> {
        let mut fut = std::pin::pin!(fut);
        loop {
            let next_deadline = self.deferred.iter().map(|d| d.deadline).min();
            tokio::select! {
                out = &mut fut => return Some(out),
                () = shutdown.as_mut() => return None,
                cmd = self.commands.recv(), if self.commands_open => match cmd {
                    Some(cmd) => self.defer_or_refuse(cmd),
                    None => {
                        self.commands_open = false;
                        return None;
                    }
                },
                () = sleep_until_opt(next_deadline) => self.expire_deferred(),
            }
        }
    }

    fn defer_or_refuse(&mut self, cmd: Command) {
        if is_safe_to_resend(&cmd.name)
            && !matches!(
                &*self.state.borrow(),
                ConnState::LoginRejected { .. } | ConnState::Misconfigured { .. }
            )
        {
            let deadline = Instant::now() + cmd.timeout;
            self.deferred.push(Deferred {
                command: cmd,
                deadline,
                maybe_executed: false,
            });
        } else {
            let reason = self.state.borrow().to_string();
            let _ = cmd.reply.send(Err(ActionError::NotConnected { reason }));
        }
    }

    fn expire_deferred(&mut self) {
        let now = Instant::now();
        let (expired, keep): (Vec<_>, Vec<_>) =
            self.deferred.drain(..).partition(|d| d.deadline <= now);
        self.deferred = keep;
        for d in expired {
            let err = if d.maybe_executed {
                ActionError::TimedOut {
                    action: d.command.name,
                    after: d.command.timeout,
                    maybe_executed: true,
                }
            } else {
                ActionError::NotConnected {
                    reason: format!(
                        "no session within {:?}; {}",
                        d.command.timeout,
                        *self.state.borrow()
                    ),
                }
            };
            let _ = d.command.reply.send(Err(err));
        }
    }

    fn fail_deferred_all(&mut self) {
        let reason = self.state.borrow().to_string();
        for d in self.deferred.drain(..) {
            let _ = d.command.reply.send(Err(ActionError::NotConnected {
                reason: reason.clone(),
            }));
        }
    }

    async fn session(&mut self, framed: Framed, shutdown: &mut Shutdown) -> SessionEnd {
        let Framed {
            stream,
            decoder,
            buf,
        } = framed;
        let (rd, wr) = tokio::io::split(stream);
        let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_loop(rd, decoder, buf, inbox_tx.clone()));
        let writer = tokio::spawn(write_loop(wr, jobs_rx, inbox_tx));
        let mut s = Session {
            prefix: format!("cd{}", self.conn_no),
            next: 0,
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            writer: jobs_tx,
            mode: Mode::Live,
            ping: None,
            shutdown_note: None,
            dropped: 0,
        };
        self.start_resync(&mut s);
        for d in std::mem::take(&mut self.deferred) {
            self.submit_user(&mut s, d.command, d.deadline);
        }
        let interval = self.config.ping_interval.max(Duration::from_millis(1));
        let mut ping = tokio::time::interval_at(Instant::now() + interval, interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut drain_check = tokio::time::interval(Duration::from_millis(20));
        drain_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);

        let end = loop {
            let next_deadline = s.deadlines.first().map(|(t, _)| *t);
            let overflowed = matches!(s.mode, Mode::Overflowed);
            tokio::select! {
                () = shutdown.as_mut() => {
                    self.logoff(&mut s, &mut inbox).await;
                    break SessionEnd::Stop;
                }
                msg = inbox.recv() => match msg {
                    Some(Inbox::Message(m, at)) => {
                        self.on_message(&mut s, m, at);
                        if matches!(s.mode, Mode::Overflowed) {
                            self.maybe_resync_after_overflow(&mut s);
                        }
                    }
                    Some(Inbox::Closed(reason)) => {
                        break SessionEnd::Lost(s.shutdown_note.take().unwrap_or(reason));
                    }
                    None => break SessionEnd::Lost("the AMI reader stopped".to_owned()),
                },
                cmd = self.commands.recv(), if self.commands_open => match cmd {
                    Some(cmd) => {
                        let deadline = Instant::now() + cmd.timeout;
                        self.submit_user(&mut s, cmd, deadline);
                    }
                    None => {
                        self.commands_open = false;
                        self.logoff(&mut s, &mut inbox).await;
                        break SessionEnd::Stop;
                    }
                },
                _ = ping.tick() => {
                    if s.ping.is_none() {
                        self.send_ping(&mut s);
                    }
                }
                () = sleep_until_opt(next_deadline) => {
                    if let Some(end) = self.expire(&mut s) {
                        break end;
                    }
                }
                _ = drain_check.tick(), if overflowed => self.maybe_resync_after_overflow(&mut s),
            }
        };
        reader.abort();
        writer.abort();
        self.end_session(&mut s, matches!(end, SessionEnd::Lost(_)));
        end
    }

    fn submit_user(&mut self, s: &mut Session, cmd: Command, deadline: Instant) {
        let Command {
            action,
            name,
            completion,
            timeout,
            reply,
        } = cmd;
        if let Err((purpose, err)) = s.submit(
            action,
            name,
            completion,
            timeout,
            deadline,
            Purpose::User(reply),
        ) && let Purpose::User(reply) = purpose
        {
            let _ = reply.send(Err(err));
        }
    }

    fn send_ping(&mut self, s: &mut Session) {
        let Ok(ping) = Outgoing::action("Ping") else {
            return;
        };
        let timeout = self.config.ping_timeout;
        if let Ok(id) = s.submit(
            ping,
            "Ping".to_owned(),
            Completion::Response,
            timeout,
            Instant::now() + timeout,
            Purpose::Ping,
        ) {
            s.ping = Some(id);
        }
    }

    fn start_resync(&mut self, s: &mut Session) {
        self.epoch += 1;
        let mut lists = vec!["CoreShowChannels"];
        if self.config.resync_queue_status {
            lists.push("QueueStatus");
        }
        s.mode = Mode::Resyncing {
            epoch: self.epoch,
            outstanding: lists.len(),
            items: Vec::new(),
            buffered: Vec::new(),
            failures: Vec::new(),
        };
        self.set_state(ConnState::Resyncing { epoch: self.epoch });
        let timeout = self.config.resync_timeout;
        for list in lists {
            let submitted = Outgoing::action(list)
                .map_err(|e| e.to_string())
                .and_then(|action| {
                    s.submit(
                        action,
                        list.to_owned(),
                        Completion::EventList,
                        timeout,
                        Instant::now() + timeout,
                        Purpose::Resync,
                    )
                    .map_err(|(_, e)| e.to_string())
                });
            if let Err(e) = submitted {
                self.resync_part_done(s, Err(format!("{list} could not be sent: {e}")));
            }
        }
    }

    fn resync_part_done(&mut self, s: &mut Session, part: Result<Vec<Message>, String>) {
        let Mode::Resyncing {
            outstanding,
            items,
            failures,
            ..
        } = &mut s.mode
        else {
            return;
        };
        *outstanding = outstanding.saturating_sub(1);
        match part {
            Ok(mut list) => items.append(&mut list),
            Err(why) => failures.push(why),
        }
        if *outstanding > 0 {
            return;
        }
        let Mode::Resyncing {
            epoch,
            items,
            buffered,
            failures,
            ..
        } = std::mem::replace(&mut s.mode, Mode::Live)
        else {
            return;
        };
        let complete = failures.is_empty();
        self.emit(
            s,
            ClientEvent::Resync {
                epoch,
                items,
                complete,
                at_ms: now_ms(),
            },
        );
        for (message, received_at_ms) in buffered {
            self.forward(s, message, received_at_ms);
        }
        if !matches!(s.mode, Mode::Live) {
            return;
        }
        if complete {
            self.set_state(ConnState::Connected {
                banner: self.banner.clone(),
            });
        } else {
            self.set_state(ConnState::Degraded {
                reason: format!("the resync is incomplete: {}", failures.join("; ")),
            });
        }
    }

    /// A message no pending action claimed.
    fn forward(&mut self, s: &mut Session, message: Message, received_at_ms: i64) {
        match &mut s.mode {
            Mode::Resyncing { buffered, .. } => buffered.push((message, received_at_ms)),
            Mode::Live => self.emit(
                s,
                ClientEvent::Event {
                    message,
                    received_at_ms,
                },
            ),
            Mode::Overflowed => s.dropped += 1,
        }
    }

    /// Hands an event to the consumer without ever waiting for it.
    fn emit(&mut self, s: &mut Session, event: ClientEvent) {
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                s.dropped += 1;
                s.mode = Mode::Overflowed;
                tracing::warn!(
                    capacity = self.events.max_capacity(),
                    "the AMI event consumer fell behind; dropping events until it catches up, then resyncing"
                );
                self.set_state(ConnState::Degraded {
                    reason: format!(
                        "the event consumer fell behind ({} queued events); events are dropped until it catches up, then the live state is read again",
                        self.events.max_capacity()
                    ),
                });
            }
            // Nobody listens any more; actions may still be in use.
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }

    fn maybe_resync_after_overflow(&mut self, s: &mut Session) {
        if self.events.capacity() * 2 >= self.events.max_capacity() {
            tracing::info!(
                dropped = s.dropped,
                "the AMI event consumer caught up; resyncing"
            );
            s.dropped = 0;
            self.start_resync(s);
        }
    }

    fn on_message(&mut self, s: &mut Session, msg: Message, at: i64) {
        if msg
            .event()
            .is_some_and(|e| e.eq_ignore_ascii_case("Shutdown"))
        {
            s.shutdown_note = Some(format!(
                "Asterisk is shutting down (Shutdown: {}, Restart: {})",
                header_text(&msg, "Shutdown", "?"),
                header_text(&msg, "Restart", "?")
            ));
        }
        let Some(id) = msg.action_id().map(|id| id.into_owned()) else {
            return self.forward(s, msg, at);
        };
        let Some(pending) = s.pending.get(&id) else {
            return self.forward(s, msg, at);
        };
        // An async completion event (`OriginateResponse`) is news for everyone, not only for
        // the action that waits for it: the tracker learns from it how a click-to-call ended.
        if let Completion::AsyncEvent(name) = pending.completion
            && msg.event().is_some_and(|e| e.eq_ignore_ascii_case(name))
        {
            self.forward(s, msg.clone(), at);
        }
        let Some(pending) = s.pending.get_mut(&id) else {
            return self.forward(s, msg, at);
        };
        match pending.absorb(msg) {
            Absorb::Kept => {}
            Absorb::Unrelated(msg) => self.forward(s, msg, at),
            Absorb::Done => {
                if let Some(p) = s.take(&id) {
                    self.complete(s, p);
                }
            }
            Absorb::Failed(message) => {
                if let Some(p) = s.take(&id) {
                    self.fail(s, p, message);
                }
            }
        }
    }

    fn complete(&mut self, s: &mut Session, p: Pending) {
        let (purpose, reply, _name) = p.into_reply();
        match purpose {
            Purpose::User(tx) => {
                let _ = tx.send(Ok(reply));
            }
            Purpose::Ping => s.ping = None,
            Purpose::Resync => self.resync_part_done(s, Ok(reply.items)),
            Purpose::Logoff => {}
        }
    }

    fn fail(&mut self, s: &mut Session, p: Pending, message: String) {
        match p.purpose {
            Purpose::User(tx) => {
                let _ = tx.send(Err(ActionError::Rejected {
                    action: p.name,
                    message,
                }));
            }
            // Asterisk answered, so the session is alive.
            Purpose::Ping => s.ping = None,
            Purpose::Resync => {
                let why = format!("{} was refused: {message}", p.name);
                self.resync_part_done(s, Err(why));
            }
            Purpose::Logoff => {}
        }
    }

    /// Handles every pending action whose deadline has passed. `Some`: the session is dead.
    fn expire(&mut self, s: &mut Session) -> Option<SessionEnd> {
        let now = Instant::now();
        while let Some((deadline, id)) = s.deadlines.first().cloned() {
            if deadline > now {
                break;
            }
            s.deadlines.pop_first();
            let Some(p) = s.pending.remove(&id) else {
                continue;
            };
            let maybe_executed = cancel(&p.progress);
            match p.purpose {
                Purpose::User(tx) => {
                    let _ = tx.send(Err(ActionError::TimedOut {
                        action: p.name,
                        after: p.timeout,
                        maybe_executed,
                    }));
                }
                Purpose::Ping => {
                    return Some(SessionEnd::Lost(format!(
                        "Asterisk did not answer Ping within {:?}; the connection is dead",
                        p.timeout
                    )));
                }
                Purpose::Resync => {
                    return Some(SessionEnd::Lost(format!(
                        "Asterisk did not finish {} within {:?} while reading the live state",
                        p.name, p.timeout
                    )));
                }
                Purpose::Logoff => {}
            }
        }
        None
    }

    /// Sends `Logoff` and waits briefly for the goodbye (or the close).
    async fn logoff(&mut self, s: &mut Session, inbox: &mut mpsc::UnboundedReceiver<Inbox>) {
        let Ok(logoff) = Outgoing::action("Logoff") else {
            return;
        };
        let grace = Duration::from_millis(500);
        let Ok(id) = s.submit(
            logoff,
            "Logoff".to_owned(),
            Completion::Response,
            grace,
            Instant::now() + grace,
            Purpose::Logoff,
        ) else {
            return;
        };
        let _ = tokio::time::timeout(grace, async {
            while let Some(Inbox::Message(m, _)) = inbox.recv().await {
                if m.action_id().as_deref() == Some(id.as_str()) {
                    break;
                }
            }
        })
        .await;
    }

    /// Fails or defers what is pending when a session ends.
    fn end_session(&mut self, s: &mut Session, may_defer: bool) {
        let now = Instant::now();
        for (_, p) in s.pending.drain() {
            let maybe_executed = cancel(&p.progress);
            let Purpose::User(reply) = p.purpose else {
                continue;
            };
            match p.original {
                Some(action) if may_defer && p.deadline > now => self.deferred.push(Deferred {
                    command: Command {
                        action,
                        name: p.name,
                        completion: p.completion,
                        timeout: p.timeout,
                        reply,
                    },
                    deadline: p.deadline,
                    maybe_executed,
                }),
                _ => {
                    let _ = reply.send(Err(ActionError::Disconnected {
                        action: p.name,
                        maybe_executed,
                    }));
                }
            }
        }
        s.deadlines.clear();
    }
}

/// Decodes and forwards; never waits for anyone but the socket.
async fn read_loop(
    mut rd: ReadHalf<AmiStream>,
    mut decoder: AmiDecoder,
    mut buf: BytesMut,
    inbox: mpsc::UnboundedSender<Inbox>,
) {
    let mut at = now_ms();
    loop {
        while let Some(frame) = decoder.decode(&mut buf) {
            match frame {
                Frame::Message(m) => {
                    if inbox.send(Inbox::Message(m, at)).is_err() {
                        return;
                    }
                }
                Frame::Banner(_) => {}
                Frame::Skipped { bytes, reason } => {
                    tracing::warn!(bytes, ?reason, "skipped an oversized AMI message");
                }
            }
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        let closed = match rd.read_buf(&mut buf).await {
            Ok(0) => "Asterisk closed the connection".to_owned(),
            Ok(_) => {
                at = now_ms();
                continue;
            }
            Err(e) => format!(
                "reading from Asterisk failed: {}",
                server_text(&e.to_string())
            ),
        };
        let _ = inbox.send(Inbox::Closed(closed));
        return;
    }
}

/// Writes queued actions in order; marks each as written before it touches the socket.
async fn write_loop(
    mut wr: WriteHalf<AmiStream>,
    mut jobs: mpsc::UnboundedReceiver<WriteJob>,
    inbox: mpsc::UnboundedSender<Inbox>,
) {
    while let Some(job) = jobs.recv().await {
        if job
            .progress
            .compare_exchange(QUEUED, WRITTEN, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            continue;
        }
        let written = match wr.write_all(&job.bytes).await {
            Ok(()) => wr.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            let _ = inbox.send(Inbox::Closed(format!(
                "writing to Asterisk failed: {}",
                server_text(&e.to_string())
            )));
            return;
        }
    }
}
