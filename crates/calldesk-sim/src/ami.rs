//! The AMI server: greeting, login (plain and MD5 challenge), session actions, and a PBX task
//! that owns the [`Pbx`] state machine, runs its timed steps and fans its events out to every
//! logged-in session. Also the levers for reconnect tests: drop every session, refuse
//! connections for a while, restart the PBX.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use calldesk_ami_proto::{AmiDecoder, EncodeError, Frame, Message, Outgoing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::pbx::{ActionReply, Output, Pbx, PbxConfig, PbxError, PhoneBehaviour, Request, SimCall};
pub use crate::scenario::{ScenarioCall, ScenarioKind};

/// The greeting Asterisk 20 sends on accept.
pub const BANNER: &[u8] = b"Asterisk Call Manager/9.0.0\r\n";

/// When the simulator plays calls on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Only calls queued with [`AmiSimHandle::play`].
    Manual,
    /// A new inbound call every `every`, cycling answered, missed, busy, answered, …, with
    /// callers from [`crate::demo::demo_caller`]. The first call starts about 0.3 s after the first
    /// successful login.
    Demo {
        /// Interval between call starts (calls may overlap).
        every: Duration,
    },
}

/// Simulator configuration. Build with `AmiSimConfig { .., ..Default::default() }`.
#[derive(Debug, Clone)]
pub struct AmiSimConfig {
    /// AMI user name.
    pub username: String,
    /// AMI secret.
    pub secret: String,
    /// Delay before `Authentication failed` (Asterisk sleeps 1 s).
    pub auth_failure_delay: Duration,
    /// Call schedule.
    pub schedule: Schedule,
    /// Extensions demo calls ring, in turn (e.g. `["101","102","103"]`).
    pub extension_pool: Vec<String>,
    /// Demo ring time range (inclusive bounds; the value varies deterministically per call).
    pub demo_ring: (Duration, Duration),
    /// Demo talk time range.
    pub demo_talk: (Duration, Duration),
    /// Events a session may have queued before it is disconnected as too slow.
    pub event_queue_len: usize,
    /// A socket write that takes longer than this disconnects the session (Asterisk's
    /// `writetimeout`, 100 ms there).
    pub write_timeout: Duration,
    /// How phones not listed in `phones` react when dialled by Originate, Redirect,
    /// transfers or queues (default: answer after 300 ms and stay up).
    pub default_phone: PhoneBehaviour,
    /// Per-extension behaviour; added to the lab's (104 busy, 105 never answers).
    pub phones: BTreeMap<String, PhoneBehaviour>,
    /// The far end of outbound calls through the trunk (click-to-call's second leg; default:
    /// answers after 500 ms and stays up).
    pub far_end: PhoneBehaviour,
    /// After [`AmiSimHandle::restart`], new connections are reset before the greeting for this
    /// long (as a restarting Asterisk does, `j6_restart_reconnect.conn2`).
    pub restart_downtime: Duration,
}

impl Default for AmiSimConfig {
    fn default() -> Self {
        let pbx = PbxConfig::default();
        Self {
            username: "calldesk".to_owned(),
            secret: "demo".to_owned(),
            auth_failure_delay: Duration::from_secs(1),
            schedule: Schedule::Manual,
            extension_pool: vec!["101".to_owned(), "102".to_owned(), "103".to_owned()],
            demo_ring: (Duration::from_secs(2), Duration::from_secs(4)),
            demo_talk: (Duration::from_secs(3), Duration::from_secs(6)),
            event_queue_len: 4096,
            write_timeout: Duration::from_secs(1),
            default_phone: pbx.default_phone,
            phones: BTreeMap::new(),
            far_end: pbx.far_end,
            restart_downtime: Duration::from_millis(500),
        }
    }
}

impl AmiSimConfig {
    fn pbx_config(&self) -> PbxConfig {
        let mut pbx = PbxConfig {
            default_phone: self.default_phone,
            far_end: self.far_end,
            ..PbxConfig::default()
        };
        pbx.phones
            .extend(self.phones.iter().map(|(k, v)| (k.clone(), *v)));
        pbx
    }
}

/// Errors of [`AmiSimHandle`] requests.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The simulator is not running (not started yet, or stopped).
    #[error("the simulator is not running")]
    Stopped,
    /// The PBX refused the request.
    #[error(transparent)]
    Pbx(#[from] PbxError),
}

/// Errors inside a session (logged; they end that session only).
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("write timed out after {0:?}; client too slow")]
    WriteTimeout(Duration),
    #[error("client fell {0} events behind; disconnected")]
    Lagged(u64),
    #[error("encoding a reply failed: {0}")]
    Encode(#[from] EncodeError),
}

/// One event on its way to the sessions.
#[derive(Debug, Clone)]
struct SimEvent {
    bytes: Bytes,
    /// Event classes (`Privilege`) as a bit set.
    class: u32,
    /// `Event: Shutdown`: write it, then close.
    shutdown: bool,
}

/// Requests for the PBX task.
enum Cmd {
    Play(ScenarioCall, Option<oneshot::Sender<String>>),
    Action(Request, oneshot::Sender<Vec<u8>>),
    LiveCalls(oneshot::Sender<Vec<SimCall>>),
    HangupCall(String, oneshot::Sender<Result<(), PbxError>>),
    Hold(String, bool, oneshot::Sender<Result<(), PbxError>>),
    PhoneHangup(String, oneshot::Sender<Result<(), PbxError>>),
    SetPhone(String, PhoneBehaviour),
    Restart(oneshot::Sender<()>),
}

/// Levers that work without the PBX task.
#[derive(Debug)]
struct Control {
    /// Bumped to close every session at once.
    drop_gen: watch::Sender<u64>,
    /// Bumped after a restart's `Shutdown`: sessions that did not get it close too.
    restart_gen: watch::Sender<u64>,
    user_paused: AtomicBool,
    restarting: AtomicBool,
}

/// Handle to drive the simulator; cheap to clone. Requests that answer (`async` methods) need
/// [`AmiSimulator::run`] to be running and fail with [`SimError::Stopped`] once it stopped.
#[derive(Debug, Clone)]
pub struct AmiSimHandle {
    cmds: mpsc::UnboundedSender<Cmd>,
    control: Arc<Control>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

impl AmiSimHandle {
    /// Queues a call to start now (or when [`AmiSimulator::run`] starts, if it has not yet).
    pub fn play(&self, call: ScenarioCall) {
        if self.cmds.send(Cmd::Play(call, None)).is_err() {
            tracing::debug!("simulator stopped; call dropped");
        }
    }

    /// Starts a call now and returns its Linkedid (the Uniqueid of its first channel). A call
    /// with a long `talk` stays up until [`AmiSimHandle::hangup_call`].
    pub async fn start_call(&self, call: ScenarioCall) -> Result<String, SimError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Play(call, Some(tx)))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// The live calls as the PBX sees them (the truth a client's call book is compared with).
    pub async fn live_calls(&self) -> Result<Vec<SimCall>, SimError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::LiveCalls(tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }

    /// The customer of the call with this Linkedid hangs up (works while no client is
    /// connected).
    pub async fn hangup_call(&self, linkedid: &str) -> Result<(), SimError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::HangupCall(linkedid.to_owned(), tx))
            .map_err(|_| SimError::Stopped)?;
        Ok(rx.await.map_err(|_| SimError::Stopped)??)
    }

    /// The phone of `ext` puts its call on hold (`on`) or resumes it (`f_hold_moh`).
    pub async fn hold(&self, ext: &str, on: bool) -> Result<(), SimError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Hold(ext.to_owned(), on, tx))
            .map_err(|_| SimError::Stopped)?;
        Ok(rx.await.map_err(|_| SimError::Stopped)??)
    }

    /// The phone of `ext` hangs up (BYE) its newest call: ends it, or completes the attended
    /// transfer it started.
    pub async fn phone_hangup(&self, ext: &str) -> Result<(), SimError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::PhoneHangup(ext.to_owned(), tx))
            .map_err(|_| SimError::Stopped)?;
        Ok(rx.await.map_err(|_| SimError::Stopped)??)
    }

    /// Changes how extension `ext` reacts when dialled from now on.
    pub fn set_phone(&self, ext: &str, behaviour: PhoneBehaviour) {
        let _ = self.cmds.send(Cmd::SetPhone(ext.to_owned(), behaviour));
    }

    /// Closes every AMI session at once, without `Shutdown` or `Goodbye`; calls go on.
    pub fn drop_connections(&self) {
        self.control.drop_gen.send_modify(|g| *g += 1);
    }

    /// While `true`, new connections are accepted and reset before the greeting (what a
    /// client sees while Asterisk restarts); existing sessions are not touched.
    pub fn pause_accepting(&self, paused: bool) {
        self.control.user_paused.store(paused, Ordering::SeqCst);
    }

    /// `core restart now`: every call is torn down, sessions get `Event: Shutdown` and are
    /// closed, connections are refused for [`AmiSimConfig::restart_downtime`], then the PBX
    /// is back with `Uptime: 0` and fresh counters (under a new Uniqueid epoch).
    pub async fn restart(&self) -> Result<(), SimError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Restart(tx))
            .map_err(|_| SimError::Stopped)?;
        rx.await.map_err(|_| SimError::Stopped)
    }
}

/// The fake PBX: owns a bound listener.
#[derive(Debug)]
pub struct AmiSimulator {
    listener: TcpListener,
    config: AmiSimConfig,
    handle: AmiSimHandle,
    cmds_rx: mpsc::UnboundedReceiver<Cmd>,
}

/// What sessions share.
struct Shared {
    config: AmiSimConfig,
    events: broadcast::Sender<SimEvent>,
    cmds: mpsc::UnboundedSender<Cmd>,
    logged_in_once: watch::Sender<bool>,
    booted: watch::Sender<Instant>,
    control: Arc<Control>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl AmiSimulator {
    /// Binds the listener (use `127.0.0.1:0` in tests).
    pub async fn bind(addr: SocketAddr, config: AmiSimConfig) -> std::io::Result<AmiSimulator> {
        let listener = TcpListener::bind(addr).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        let control = Arc::new(Control {
            drop_gen: watch::channel(0).0,
            restart_gen: watch::channel(0).0,
            user_paused: AtomicBool::new(false),
            restarting: AtomicBool::new(false),
        });
        Ok(AmiSimulator {
            listener,
            config,
            handle: AmiSimHandle { cmds: tx, control },
            cmds_rx: rx,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        match self.listener.local_addr() {
            Ok(a) => a,
            Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// A handle to drive the simulator.
    pub fn handle(&self) -> AmiSimHandle {
        self.handle.clone()
    }

    /// Serves until `shutdown` completes; then closes every session.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let (events, _) = broadcast::channel(self.config.event_queue_len.max(1));
        let shared = Arc::new(Shared {
            config: self.config,
            events,
            cmds: self.handle.cmds.clone(),
            logged_in_once: watch::channel(false).0,
            booted: watch::channel(Instant::now()).0,
            control: self.handle.control.clone(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let pbx_task = tokio::spawn(pbx_task(shared.clone(), self.cmds_rx, stop_rx.clone()));
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                acc = self.listener.accept() => match acc {
                    Ok((stream, peer)) => {
                        let c = &shared.control;
                        if c.user_paused.load(Ordering::SeqCst) || c.restarting.load(Ordering::SeqCst) {
                            // Reset before the greeting, like a restarting Asterisk (j6 conn2).
                            let _ = stream.set_zero_linger();
                            drop(stream);
                            continue;
                        }
                        tracing::debug!(%peer, "AMI client connected");
                        let shared = shared.clone();
                        let stop = stop_rx.clone();
                        tokio::spawn(async move {
                            if let Err(e) = session(stream, shared, stop).await {
                                tracing::info!(%peer, error = %e, "AMI session ended");
                            }
                        });
                    }
                    Err(e) => {
                        // Transient accept errors (EMFILE, aborted handshakes) must not kill the server.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                },
            }
        };
        let _ = stop_tx.send(true);
        pbx_task.abort();
        result
    }
}

/// Numbers the sessions (for `SessionID`).
static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

/// Now as Asterisk's security events print it: `2026-11-21T11:16:26.901+0000`.
fn event_tv() -> String {
    let (secs, micros) = now_epoch();
    let (y, mo, d, h, mi, s) = crate::scenario::civil(secs);
    let ms = micros / 1000;
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}+0000")
}

fn now_epoch() -> (u64, u32) {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs(), d.subsec_micros()),
        Err(_) => (0, 0),
    }
}

fn pick(range: (Duration, Duration), n: u64, salt: u64) -> Duration {
    let (lo, hi) = if range.0 <= range.1 {
        range
    } else {
        (range.1, range.0)
    };
    let span = (hi - lo).as_millis() as u64;
    if span == 0 {
        return lo;
    }
    let x = n.wrapping_mul(0x9E37_79B9).wrapping_add(salt) % (span + 1);
    lo + Duration::from_millis(x)
}

/// The `n`-th demo call (pure).
pub fn demo_call(config: &AmiSimConfig, n: u64) -> ScenarioCall {
    let kind = match n % 3 {
        0 => ScenarioKind::InboundAnswered,
        1 => ScenarioKind::InboundMissed,
        _ => ScenarioKind::InboundBusy,
    };
    let extension = if config.extension_pool.is_empty() {
        "101".to_owned()
    } else {
        config.extension_pool[(n % config.extension_pool.len() as u64) as usize].clone()
    };
    let ring = match kind {
        ScenarioKind::InboundBusy => Duration::from_millis(500).min(config.demo_ring.0),
        _ => pick(config.demo_ring, n, 17),
    };
    ScenarioCall {
        kind,
        caller: crate::demo::demo_caller(n),
        did: extension.clone(),
        extension,
        ring,
        talk: pick(config.demo_talk, n, 91),
    }
}

// ----- event classes --------------------------------------------------------------------------

use calldesk_ami_proto::EVENT_CLASSES as CLASSES;
const ALL: u32 = (1 << CLASSES.len()) - 1;

fn class_bit(name: &str) -> u32 {
    CLASSES
        .iter()
        .position(|c| c.eq_ignore_ascii_case(name.trim()))
        .map(|i| 1 << i)
        .unwrap_or(0)
}

/// An `Events`/`EventMask` value as a class set: `on`/`all` → every class, `off` → none.
fn parse_mask(v: &str) -> u32 {
    let v = v.trim();
    if v.eq_ignore_ascii_case("on")
        || v.eq_ignore_ascii_case("all")
        || v.eq_ignore_ascii_case("yes")
    {
        return ALL;
    }
    if v.eq_ignore_ascii_case("off") || v.eq_ignore_ascii_case("no") {
        return 0;
    }
    v.split(',').map(class_bit).fold(0, |a, b| a | b)
}

fn event_class(o: &Outgoing) -> u32 {
    match o.get("Privilege") {
        Some(p) => {
            let c = p.split(',').map(class_bit).fold(0, |a, b| a | b);
            if c == 0 { ALL } else { c }
        }
        None => ALL,
    }
}

// ----- the PBX task ---------------------------------------------------------------------------

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

async fn pbx_task(
    shared: Arc<Shared>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    mut stop: watch::Receiver<bool>,
) {
    // The PBX clock starts on a whole wall-clock second, so `<epoch>` in Uniqueids is the
    // wall-clock second a channel was made in (as in Asterisk), not the boot second plus whole
    // seconds since: a simulator started twice within one second must not repeat ids.
    let (boot_secs, boot_micros) = now_epoch();
    let t0 = Instant::now()
        .checked_sub(Duration::from_micros(u64::from(boot_micros)))
        .unwrap_or_else(Instant::now);
    let mut pbx = Pbx::new(shared.config.pbx_config(), boot_secs);
    let mut pending: HashMap<u64, oneshot::Sender<Vec<u8>>> = HashMap::new();
    let mut next_token: u64 = 1;
    let demo_every = match &shared.config.schedule {
        Schedule::Demo { every } => Some(*every),
        Schedule::Manual => None,
    };
    let mut logged = shared.logged_in_once.subscribe();
    let mut next_demo: Option<Instant> = None;
    let mut demo_n: u64 = 0;
    loop {
        let deadline = pbx
            .next_deadline()
            .and_then(|d| t0.checked_add(d))
            .unwrap_or_else(far_future);
        let demo_wait = async {
            match (demo_every, next_demo) {
                (Some(_), Some(at)) => tokio::time::sleep_until(at).await,
                (Some(_), None) => {
                    let _ = logged.wait_for(|v| *v).await;
                }
                _ => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = stop.changed() => return,
            cmd = cmds.recv() => {
                let Some(cmd) = cmd else { return };
                let now = t0.elapsed();
                pbx.advance(now);
                match cmd {
                    Cmd::Play(call, reply) => {
                        let linkedid = pbx.play(now, &call);
                        if let Some(r) = reply {
                            let _ = r.send(linkedid);
                        }
                    }
                    Cmd::Action(req, reply) => {
                        let token = next_token;
                        next_token += 1;
                        match pbx.action(now, &req, token) {
                            ActionReply::Reply(bytes) => {
                                let _ = reply.send(bytes);
                            }
                            ActionReply::Deferred => {
                                pending.insert(token, reply);
                            }
                        }
                    }
                    Cmd::LiveCalls(reply) => {
                        let _ = reply.send(pbx.live_calls());
                    }
                    Cmd::HangupCall(linkedid, reply) => {
                        let _ = reply.send(pbx.hangup_call(now, &linkedid));
                    }
                    Cmd::Hold(ext, on, reply) => {
                        let _ = reply.send(pbx.hold(now, &ext, on));
                    }
                    Cmd::PhoneHangup(ext, reply) => {
                        let _ = reply.send(pbx.phone_hangup(now, &ext));
                    }
                    Cmd::SetPhone(ext, b) => pbx.set_phone(&ext, b),
                    Cmd::Restart(reply) => {
                        shared.control.restarting.store(true, Ordering::SeqCst);
                        pbx.restart(now);
                        flush(&shared, &mut pbx, &mut pending);
                        shared.control.restart_gen.send_modify(|g| *g += 1);
                        shared.booted.send_replace(Instant::now());
                        let control = shared.control.clone();
                        let downtime = shared.config.restart_downtime;
                        tokio::spawn(async move {
                            tokio::time::sleep(downtime).await;
                            control.restarting.store(false, Ordering::SeqCst);
                        });
                        let _ = reply.send(());
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                pbx.advance(t0.elapsed());
            }
            () = demo_wait => {
                match (demo_every, next_demo) {
                    (Some(every), Some(at)) => {
                        let call = demo_call(&shared.config, demo_n);
                        demo_n += 1;
                        pbx.play(t0.elapsed(), &call);
                        next_demo = Some(at + every.max(Duration::from_millis(10)));
                    }
                    (Some(_), None) => {
                        next_demo = Some(Instant::now() + Duration::from_millis(300));
                    }
                    _ => {}
                }
            }
        }
        flush(&shared, &mut pbx, &mut pending);
    }
}

/// Sends what the PBX produced: events to every session, deferred replies to their session.
fn flush(shared: &Shared, pbx: &mut Pbx, pending: &mut HashMap<u64, oneshot::Sender<Vec<u8>>>) {
    if let Some(e) = pbx.take_encode_error() {
        tracing::warn!(error = %e, "an event could not be encoded; dropped");
    }
    for (_, out) in pbx.drain() {
        match out {
            Output::Event(o) => {
                let class = event_class(&o);
                // No receivers is fine (nobody logged in).
                let _ = shared.events.send(SimEvent {
                    bytes: Bytes::from(o.to_bytes()),
                    class,
                    shutdown: false,
                });
            }
            Output::Shutdown(o) => {
                let _ = shared.events.send(SimEvent {
                    bytes: Bytes::from(o.to_bytes()),
                    class: event_class(&o),
                    shutdown: true,
                });
            }
            Output::Reply { token, bytes } => {
                if let Some(tx) = pending.remove(&token) {
                    let _ = tx.send(bytes);
                }
            }
        }
    }
}

// ----- sessions -------------------------------------------------------------------------------

struct Session {
    /// `IPV4/TCP/<ip>/<port>` of both ends, as Asterisk's security events spell them.
    local: String,
    remote: String,
    id: u64,
    wr: OwnedWriteHalf,
    write_timeout: Duration,
    authenticated: bool,
    /// Event classes this session wants (`Events`).
    mask: u32,
    events: Option<broadcast::Receiver<SimEvent>>,
    challenge: Option<String>,
}

impl Session {
    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        match tokio::time::timeout(self.write_timeout, self.wr.write_all(bytes)).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(SessionError::WriteTimeout(self.write_timeout)),
        }
    }

    async fn send(&mut self, o: &Outgoing) -> Result<(), SessionError> {
        self.write(&o.to_bytes()).await
    }
}

async fn recv_event(
    rx: &mut Option<broadcast::Receiver<SimEvent>>,
) -> Result<SimEvent, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// `Response: <kind>` + echoed ActionID.
fn reply(kind: &str, req: &Message) -> Result<Outgoing, EncodeError> {
    let mut o = Outgoing::response(kind)?;
    if let Some(id) = req.get("ActionID") {
        // An over-long ActionID is not echoed rather than failing the reply.
        let _ = o.push("ActionID", &String::from_utf8_lossy(id));
    }
    Ok(o)
}

enum Next {
    Continue,
    Close,
}

async fn session(
    stream: TcpStream,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let _ = stream.set_nodelay(true);
    let spell = |a: std::io::Result<SocketAddr>| match a {
        Ok(SocketAddr::V4(a)) => format!("IPV4/TCP/{}/{}", a.ip(), a.port()),
        Ok(SocketAddr::V6(a)) => format!("IPV6/TCP/{}/{}", a.ip(), a.port()),
        Err(_) => "IPV4/TCP/0.0.0.0/0".to_owned(),
    };
    let (local, remote) = (spell(stream.local_addr()), spell(stream.peer_addr()));
    let (mut rd, wr) = stream.into_split();
    let mut drop_gen = shared.control.drop_gen.subscribe();
    let mut restart_gen = shared.control.restart_gen.subscribe();
    let mut s = Session {
        local,
        remote,
        id: SESSION_IDS.fetch_add(1, Ordering::Relaxed),
        wr,
        write_timeout: shared.config.write_timeout,
        authenticated: false,
        mask: ALL,
        events: None,
        challenge: None,
    };
    s.write(BANNER).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut dec = AmiDecoder::without_banner().with_max_message_len(64 * 1024);
    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => return Ok(()),
            _ = drop_gen.changed() => return Ok(()),
            ev = recv_event(&mut s.events) => match ev {
                Ok(ev) => {
                    if ev.class & s.mask != 0 {
                        s.write(&ev.bytes).await?;
                    }
                    if ev.shutdown {
                        let _ = s.wr.shutdown().await;
                        return Ok(());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let _ = s.wr.shutdown().await;
                    return Err(SessionError::Lagged(n));
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = restart_gen.changed() => {
                let _ = s.wr.shutdown().await;
                return Ok(());
            }
            n = rd.read_buf(&mut buf) => {
                if n? == 0 {
                    return Ok(());
                }
                while let Some(frame) = dec.decode(&mut buf) {
                    let Frame::Message(req) = frame else { continue };
                    let next = tokio::select! {
                        biased;
                        _ = drop_gen.changed() => return Ok(()),
                        r = handle_action(&mut s, &shared, &req) => r?,
                    };
                    if let Next::Close = next {
                        let _ = s.wr.shutdown().await;
                        return Ok(());
                    }
                }
            }
        }
    }
}

fn to_request(m: &Message) -> Request {
    Request::new(
        m.fields()
            .map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect(),
    )
}

/// A 9-digit challenge, different per session and call.
fn challenge_for(session: u64) -> String {
    let (secs, micros) = now_epoch();
    let mut z = secs
        .wrapping_mul(1_000_003)
        .wrapping_add(u64::from(micros))
        .wrapping_add(session.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (100_000_000 + (z ^ (z >> 31)) % 900_000_000).to_string()
}

async fn handle_action(
    s: &mut Session,
    shared: &Shared,
    req: &Message,
) -> Result<Next, SessionError> {
    let action = req
        .action()
        .map(|a| a.trim().to_owned())
        .unwrap_or_default();
    if action.is_empty() {
        let o = reply("Error", req)?.header("Message", "Missing action in request")?;
        s.send(&o).await?;
        return Ok(Next::Continue);
    }
    let lower = action.to_ascii_lowercase();
    if !s.authenticated && !matches!(lower.as_str(), "login" | "logoff" | "challenge") {
        let o = reply("Error", req)?.header("Message", "Permission denied")?;
        s.send(&o).await?;
        return Ok(Next::Continue);
    }
    match lower.as_str() {
        "challenge" => {
            let md5 = req
                .get("AuthType")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"md5"));
            if !md5 {
                let o = reply("Error", req)?.header("Message", "Must specify AuthType")?;
                s.send(&o).await?;
                return Ok(Next::Continue);
            }
            let challenge = challenge_for(s.id);
            let o = reply("Success", req)?.header("Challenge", &challenge)?;
            s.challenge = Some(challenge);
            s.send(&o).await?;
        }
        "login" => {
            if s.authenticated {
                let o = reply("Success", req)?.header("Message", "Already authenticated")?;
                s.send(&o).await?;
                return Ok(Next::Continue);
            }
            let user = req.get("Username").unwrap_or_default();
            let md5 = req
                .get("AuthType")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"md5"));
            let ok = user == shared.config.username.as_bytes()
                && if md5 {
                    match (&s.challenge, req.get("Key")) {
                        (Some(ch), Some(key)) => {
                            let want = calldesk_ami_proto::md5_login_key(ch, &shared.config.secret);
                            key.trim_ascii().eq_ignore_ascii_case(want.as_bytes())
                        }
                        _ => false,
                    }
                } else {
                    req.get("Secret").unwrap_or_default() == shared.config.secret.as_bytes()
                };
            if !ok {
                tokio::time::sleep(shared.config.auth_failure_delay).await;
                let o = reply("Error", req)?.header("Message", "Authentication failed")?;
                s.send(&o).await?;
                return Ok(Next::Close);
            }
            s.authenticated = true;
            s.mask = req.get_str("Events").map(|v| parse_mask(&v)).unwrap_or(ALL);
            // Subscribe before anything else so no event of a call in progress is lost.
            s.events = Some(shared.events.subscribe());
            let o = reply("Success", req)?.header("Message", "Authentication accepted")?;
            s.send(&o).await?;
            if s.mask & class_bit("system") != 0 {
                let up = shared.booted.borrow().elapsed().as_secs().to_string();
                let fb = Outgoing::event("FullyBooted")?
                    .header("Privilege", "system,all")?
                    .header("Uptime", &up)?
                    .header("LastReload", &up)?
                    .header("Status", "Fully Booted")?;
                s.send(&fb).await?;
            }
            if s.mask & class_bit("security") != 0 {
                // The security event every login produces (class `security`), as captured.
                let tv = event_tv();
                let user = req.get_str("Username").unwrap_or_default();
                let auth = Outgoing::event("SuccessfulAuth")?
                    .header("Privilege", "security,all")?
                    .header("EventTV", &tv)?
                    .header("Severity", "Informational")?
                    .header("Service", "AMI")?
                    .header("EventVersion", "1")?
                    .header("AccountID", &user)?
                    .header("SessionID", &format!("0x{:012x}", 0x7ff4_fc00_0000 + s.id))?
                    .header("LocalAddress", &s.local)?
                    .header("RemoteAddress", &s.remote)?
                    .header("UsingPassword", "0")?
                    .header("SessionTV", &tv)?;
                s.send(&auth).await?;
            }
            shared.logged_in_once.send_replace(true);
        }
        "logoff" => {
            let o = reply("Goodbye", req)?.header("Message", "Thanks for all the fish.")?;
            s.send(&o).await?;
            return Ok(Next::Close);
        }
        "ping" => {
            let (secs, micros) = now_epoch();
            let o = reply("Success", req)?
                .header("Ping", "Pong")?
                .header("Timestamp", &format!("{secs}.{micros:06}"))?;
            s.send(&o).await?;
        }
        "events" => {
            let mask = req.get_str("EventMask").unwrap_or_default();
            s.mask = parse_mask(&mask);
            let o =
                reply("Success", req)?.header("Events", if s.mask != 0 { "On" } else { "Off" })?;
            s.send(&o).await?;
        }
        _ => {
            // Everything else acts on the PBX; a synchronous Originate answers only once
            // decided, and this session gets no events meanwhile (as with Asterisk).
            let (tx, rx) = oneshot::channel();
            if shared.cmds.send(Cmd::Action(to_request(req), tx)).is_err() {
                return Ok(Next::Close);
            }
            match rx.await {
                Ok(bytes) => s.write(&bytes).await?,
                Err(_) => return Ok(Next::Close),
            }
        }
    }
    Ok(Next::Continue)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_masks() {
        assert_eq!(parse_mask("on"), ALL);
        assert_eq!(parse_mask("off"), 0);
        let m = parse_mask("call,agent");
        assert_ne!(m & class_bit("call"), 0);
        assert_ne!(m & class_bit("agent"), 0);
        assert_eq!(m & class_bit("system"), 0);
        let ev = Outgoing::event("Newchannel")
            .unwrap()
            .header("Privilege", "call,all")
            .unwrap();
        assert_eq!(event_class(&ev), class_bit("call"));
    }

    #[test]
    fn challenges_are_nine_digits() {
        let c = challenge_for(7);
        assert_eq!(c.len(), 9);
        assert!(c.bytes().all(|b| b.is_ascii_digit()));
    }
}
