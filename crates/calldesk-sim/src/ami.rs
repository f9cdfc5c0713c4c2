//! The AMI server: greeting, login, a few actions, and scripted calls broadcast to every
//! logged-in session.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use calldesk_ami_proto::{AmiDecoder, EncodeError, Frame, Message, Outgoing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;

use crate::scenario::{IdAllocator, render};
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
}

impl Default for AmiSimConfig {
    fn default() -> Self {
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
        }
    }
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

struct Shared {
    config: AmiSimConfig,
    events: broadcast::Sender<Bytes>,
    logged_in_once: watch::Sender<bool>,
    started: Instant,
}

/// Handle to queue calls; cheap to clone.
#[derive(Debug, Clone)]
pub struct AmiSimHandle {
    calls: mpsc::UnboundedSender<ScenarioCall>,
}

impl AmiSimHandle {
    /// Queues a call to start now (or when [`AmiSimulator::run`] starts, if it has not yet).
    pub fn play(&self, call: ScenarioCall) {
        if self.calls.send(call).is_err() {
            tracing::debug!("simulator stopped; call dropped");
        }
    }
}

/// The fake PBX: owns a bound listener.
#[derive(Debug)]
pub struct AmiSimulator {
    listener: TcpListener,
    config: AmiSimConfig,
    handle: AmiSimHandle,
    calls_rx: mpsc::UnboundedReceiver<ScenarioCall>,
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
        Ok(AmiSimulator {
            listener,
            config,
            handle: AmiSimHandle { calls: tx },
            calls_rx: rx,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        match self.listener.local_addr() {
            Ok(a) => a,
            Err(_) => SocketAddr::from(([127, 0, 0, 1], 0)),
        }
    }

    /// A handle to queue calls.
    pub fn handle(&self) -> AmiSimHandle {
        self.handle.clone()
    }

    /// Serves until `shutdown` completes; then closes every session.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> std::io::Result<()> {
        let (events, _) = broadcast::channel(self.config.event_queue_len.max(1));
        let (logged_in_once, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            config: self.config,
            events,
            logged_in_once,
            started: Instant::now(),
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let scheduler = tokio::spawn(scheduler(shared.clone(), self.calls_rx, stop_rx.clone()));
        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                () = &mut shutdown => break Ok(()),
                acc = self.listener.accept() => match acc {
                    Ok((stream, peer)) => {
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
        scheduler.abort();
        result
    }
}

/// Numbers the sessions (for `SessionID`).
static SESSION_IDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

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

async fn scheduler(
    shared: Arc<Shared>,
    mut calls: mpsc::UnboundedReceiver<ScenarioCall>,
    mut stop: watch::Receiver<bool>,
) {
    let mut ids = IdAllocator::new(0, 0);
    let demo_every = match &shared.config.schedule {
        Schedule::Demo { every } => Some(*every),
        Schedule::Manual => None,
    };
    let mut logged = shared.logged_in_once.subscribe();
    let mut next_demo: Option<Instant> = None;
    let mut demo_n: u64 = 0;
    let mut calls_open = true;
    loop {
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
            call = calls.recv(), if calls_open => match call {
                Some(call) => start_call(&shared, &mut ids, call, &stop),
                None => {
                    calls_open = false;
                    if demo_every.is_none() { return; }
                }
            },
            () = demo_wait => {
                match (demo_every, next_demo) {
                    (Some(every), Some(at)) => {
                        let call = demo_call(&shared.config, demo_n);
                        demo_n += 1;
                        start_call(&shared, &mut ids, call, &stop);
                        next_demo = Some(at + every.max(Duration::from_millis(10)));
                    }
                    (Some(_), None) => {
                        next_demo = Some(Instant::now() + Duration::from_millis(300));
                    }
                    _ => {}
                }
            }
        }
    }
}

fn start_call(
    shared: &Arc<Shared>,
    ids: &mut IdAllocator,
    call: ScenarioCall,
    stop: &watch::Receiver<bool>,
) {
    let (epoch, _) = now_epoch();
    let call_ids = ids.next(epoch);
    let events = match render(&call, &call_ids) {
        Ok(e) => e,
        Err(e) => {
            tracing::warn!(error = %e, "scenario cannot be encoded; skipped");
            return;
        }
    };
    let start = Instant::now();
    let shared = shared.clone();
    let mut stop = stop.clone();
    tokio::spawn(async move {
        for (offset, ev) in events {
            // A call in progress ends with the server (as calls do when Asterisk stops).
            tokio::select! {
                () = tokio::time::sleep_until(start + offset) => {}
                _ = stop.changed() => return,
            }
            // No receivers is fine (nobody logged in).
            let _ = shared.events.send(Bytes::from(ev.to_bytes()));
        }
    });
}

struct Session {
    /// `IPV4/TCP/<ip>/<port>` of both ends, as Asterisk's security events spell them.
    local: String,
    remote: String,
    id: u64,
    wr: OwnedWriteHalf,
    write_timeout: Duration,
    authenticated: bool,
    events_on: bool,
    events: Option<broadcast::Receiver<Bytes>>,
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
    rx: &mut Option<broadcast::Receiver<Bytes>>,
) -> Result<Bytes, broadcast::error::RecvError> {
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
    let mut s = Session {
        local,
        remote,
        id: SESSION_IDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        wr,
        write_timeout: shared.config.write_timeout,
        authenticated: false,
        events_on: true,
        events: None,
    };
    s.write(BANNER).await?;
    let mut buf = BytesMut::with_capacity(4096);
    let mut dec = AmiDecoder::without_banner().with_max_message_len(64 * 1024);
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(()),
            n = rd.read_buf(&mut buf) => {
                if n? == 0 {
                    return Ok(());
                }
                while let Some(frame) = dec.decode(&mut buf) {
                    let Frame::Message(req) = frame else { continue };
                    if let Next::Close = handle_action(&mut s, &shared, &req).await? {
                        let _ = s.wr.shutdown().await;
                        return Ok(());
                    }
                }
            }
            ev = recv_event(&mut s.events) => match ev {
                Ok(bytes) => {
                    if s.events_on {
                        s.write(&bytes).await?;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    let _ = s.wr.shutdown().await;
                    return Err(SessionError::Lagged(n));
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
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
        "login" => {
            if s.authenticated {
                let o = reply("Success", req)?.header("Message", "Already authenticated")?;
                s.send(&o).await?;
                return Ok(Next::Continue);
            }
            let user = req.get("Username").unwrap_or_default();
            let secret = req.get("Secret").unwrap_or_default();
            if user != shared.config.username.as_bytes()
                || secret != shared.config.secret.as_bytes()
            {
                tokio::time::sleep(shared.config.auth_failure_delay).await;
                let o = reply("Error", req)?.header("Message", "Authentication failed")?;
                s.send(&o).await?;
                return Ok(Next::Close);
            }
            s.authenticated = true;
            s.events_on = !req
                .get("Events")
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"off"));
            // Subscribe before anything else so no event of a call in progress is lost.
            s.events = Some(shared.events.subscribe());
            let o = reply("Success", req)?.header("Message", "Authentication accepted")?;
            s.send(&o).await?;
            if s.events_on {
                let up = shared.started.elapsed().as_secs().to_string();
                let fb = Outgoing::event("FullyBooted")?
                    .header("Privilege", "system,all")?
                    .header("Uptime", &up)?
                    .header("LastReload", &up)?
                    .header("Status", "Fully Booted")?;
                s.send(&fb).await?;
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
            let mask = req.get("EventMask").unwrap_or_default().trim_ascii();
            s.events_on = !mask.eq_ignore_ascii_case(b"off");
            let o =
                reply("Success", req)?.header("Events", if s.events_on { "On" } else { "Off" })?;
            s.send(&o).await?;
        }
        _ => {
            let shown: String = action.chars().take(200).collect();
            let o = reply("Error", req)?.header(
                "Message",
                &format!("Invalid/unknown command: {shown}. Use Action: ListCommands to show available commands."),
            )?;
            s.send(&o).await?;
        }
    }
    Ok(Next::Continue)
}
