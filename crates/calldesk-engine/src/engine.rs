//! The engine's tasks and its handle.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calldesk_ami::{
    AmiConnection, AmiCredentials, AmiError, AsteriskTracker, Backoff, BackoffConfig,
};
use calldesk_ami_proto::Outgoing;
use calldesk_asterisk::TrackerEvent;
use calldesk_calls::{
    CallBook, CallEvent, CallEventKind, CallId, NumberPlan, TenantId, Timestamp, UpdateKind,
};
use calldesk_sim::ami::{AmiSimConfig, AmiSimulator, Schedule};
use calldesk_store::LocalStore;
use calldesk_wire::{CallView, ConnectionState, ConnectionStatus, ProfileKind};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::EngineError;

/// How many ended calls a snapshot includes.
const RECENT_CALLS: u32 = 200;
/// Ping the PBX this often; a session that stays silent for two intervals is dead.
const KEEPALIVE: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(15);
/// A session must stay up this long before the backoff starts again from the minimum, so a PBX
/// that accepts the login and drops us at once is not hammered.
const STABLE_SESSION: Duration = Duration::from_secs(30);
/// How long shutdown waits for the tasks to finish their last writes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Which PBX the engine talks to.
#[derive(Debug, Clone)]
pub enum ProfileConfig {
    /// The built-in simulator; a new incoming call every `every`.
    Demo { every: Duration },
    /// An Asterisk AMI at `addr` (`host:port`).
    Direct {
        addr: String,
        credentials: AmiCredentials,
    },
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub profile: ProfileConfig,
    /// Where the local database lives (the app data dir).
    pub data_dir: PathBuf,
    /// Default region for numbers without a country code, e.g. `RU`.
    pub region: String,
}

/// What the engine tells the shell.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// Boxed: a broadcast slot is as large as the largest variant.
    CallUpdated(Box<CallView>),
    ConnectionChanged(ConnectionStatus),
}

enum Command {
    Snapshot(oneshot::Sender<Vec<CallView>>),
}

/// What the PBX session tells the call book.
// `LoggedIn` is rare and small; boxing `Event` would cost an allocation per call event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum SessionMessage {
    Event(CallEvent),
    /// A new session has logged in. Calls still live from an earlier session can no longer be
    /// followed (their channels are unknown to the new tracker), so the book ends them.
    /// The AMI issue replaces this with a `CoreShowChannels` resync.
    LoggedIn {
        at: Timestamp,
    },
}

/// The shell's handle on a running engine.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<EngineEvent>,
    status: watch::Receiver<ConnectionStatus>,
    shutdown: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command::Snapshot")
    }
}

/// Starts engines.
#[derive(Debug)]
pub struct Engine;

impl Engine {
    /// Opens the local store, starts the PBX session (and, for Demo, the simulator) and returns
    /// the handle. Must be called inside a tokio runtime.
    pub async fn start(config: EngineConfig) -> Result<EngineHandle, EngineError> {
        let plan = NumberPlan::new(&config.region)?;
        std::fs::create_dir_all(&config.data_dir).map_err(|source| EngineError::DataDir {
            path: config.data_dir.clone(),
            source,
        })?;
        let store = LocalStore::open(&config.data_dir.join("calldesk.sqlite3")).await?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (events, _) = broadcast::channel(1024);
        let (commands, commands_rx) = mpsc::channel(64);
        let (call_events, call_events_rx) = mpsc::channel(4096);

        // Built before anything is spawned, so a failure leaves nothing running.
        let book = BookTask {
            book: CallBook::new(TenantId::local()),
            store,
            events: events.clone(),
        };
        let mut tasks = Vec::new();
        let (kind, addr, credentials) = match config.profile {
            ProfileConfig::Demo { every } => {
                let sim_config = AmiSimConfig {
                    schedule: Schedule::Demo { every },
                    ..AmiSimConfig::default()
                };
                let credentials = AmiCredentials {
                    username: sim_config.username.clone(),
                    secret: sim_config.secret.clone(),
                };
                let sim = AmiSimulator::bind(([127, 0, 0, 1], 0).into(), sim_config)
                    .await
                    .map_err(EngineError::Simulator)?;
                let addr = sim.local_addr().to_string();
                let stop = wait_for_shutdown(shutdown_rx.clone());
                tasks.push(tokio::spawn(async move {
                    if let Err(e) = sim.run(stop).await {
                        tracing::error!(error = %e, "demo PBX stopped");
                    }
                }));
                (ProfileKind::Demo, addr, credentials)
            }
            ProfileConfig::Direct { addr, credentials } => (ProfileKind::Direct, addr, credentials),
        };
        let initial = ConnectionStatus {
            state: ConnectionState::Connecting,
            profile: kind,
            detail: Some(addr.clone()),
        };
        let (status_tx, status) = watch::channel(initial);

        let session = PbxSession {
            addr,
            credentials,
            plan: plan.clone(),
            status: status_tx,
            events: events.clone(),
            to_book: call_events,
            shutdown: shutdown_rx.clone(),
        };
        tasks.push(tokio::spawn(session.run()));
        tasks.push(tokio::spawn(book.run(
            call_events_rx,
            commands_rx,
            shutdown_rx,
        )));
        Ok(EngineHandle {
            commands,
            events,
            status,
            shutdown,
            tasks: Arc::new(Mutex::new(tasks)),
        })
    }
}

async fn wait_for_shutdown(mut rx: watch::Receiver<bool>) {
    stopped(&mut rx).await;
}

/// Resolves once shutdown is asked for (or the handle is gone). Holds no borrow of the value
/// across later awaits, so it can sit in a `select!` of a `Send` task.
async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl EngineHandle {
    /// Live calls (newest first) followed by recent ended calls from the history.
    pub async fn calls_snapshot(&self) -> Result<Vec<CallView>, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Snapshot(tx))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    pub fn connection_status(&self) -> ConnectionStatus {
        self.status.borrow().clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// Stops every task and waits (a few seconds at most) until they have finished their last
    /// writes — a call that ended just before exit is still stored.
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        let all = join_tasks(tasks);
        if tokio::time::timeout(SHUTDOWN_GRACE, all).await.is_err() {
            tracing::warn!("engine tasks did not stop within {SHUTDOWN_GRACE:?}");
        }
    }
}

async fn join_tasks(tasks: Vec<JoinHandle<()>>) {
    for task in tasks {
        if let Err(e) = task.await {
            tracing::error!(error = %e, "an engine task failed");
        }
    }
}

fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    Timestamp::from_unix_millis(ms)
}

/// The AMI session: connect, log in, read, keep alive, reconnect.
struct PbxSession {
    addr: String,
    credentials: AmiCredentials,
    plan: NumberPlan,
    status: watch::Sender<ConnectionStatus>,
    events: broadcast::Sender<EngineEvent>,
    to_book: mpsc::Sender<SessionMessage>,
    shutdown: watch::Receiver<bool>,
}

impl PbxSession {
    fn report(&self, state: ConnectionState, detail: Option<String>) {
        let status = ConnectionStatus {
            state,
            profile: self.status.borrow().profile,
            detail,
        };
        if *self.status.borrow() != status {
            self.status.send_replace(status.clone());
            let _ = self.events.send(EngineEvent::ConnectionChanged(status));
        }
    }

    async fn run(mut self) {
        // Equal jitter (half fixed, half random) keeps a room of desktops from reconnecting
        // in lockstep while still backing off; one implementation, shared with the AMI client.
        let mut backoff = Backoff::new(BackoffConfig {
            min: BACKOFF_MIN,
            max: BACKOFF_MAX,
            stable: STABLE_SESSION,
        });
        let mut stop = self.shutdown.clone();
        loop {
            let started = Instant::now();
            let outcome = tokio::select! {
                outcome = self.session() => outcome,
                _ = stopped(&mut stop) => return,
            };
            let reason = match outcome {
                Ok(()) => return,
                Err(SessionEnd::Connected(e)) => {
                    backoff.session_ended(started.elapsed());
                    e.to_string()
                }
                Err(SessionEnd::NeverConnected(e)) => e.to_string(),
            };
            let wait = backoff.next_delay();
            tracing::warn!(addr = %self.addr, %reason, ?wait, "AMI session lost; reconnecting");
            self.report(ConnectionState::Reconnecting, Some(reason));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return,
            }
        }
    }

    async fn session(&mut self) -> Result<(), SessionEnd> {
        let (mut conn, banner) =
            AmiConnection::connect(&self.addr, &self.credentials, CONNECT_TIMEOUT)
                .await
                .map_err(SessionEnd::NeverConnected)?;
        tracing::info!(addr = %self.addr, %banner, "AMI session logged in");
        if self
            .to_book
            .send(SessionMessage::LoggedIn { at: now() })
            .await
            .is_err()
        {
            return Ok(());
        }
        self.report(ConnectionState::Connected, Some(self.addr.clone()));
        let mut tracker = AsteriskTracker::new(self.plan.clone());
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        // A stalled loop must not fire a burst of overdue ticks when it resumes.
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.reset();
        let mut last_heard = Instant::now();
        let mut events = Vec::new();
        loop {
            tokio::select! {
                msg = conn.next_message() => {
                    let msg = msg.map_err(SessionEnd::Connected)?;
                    last_heard = Instant::now();
                    tracker.handle(&msg, now(), &mut events);
                    for event in events.drain(..) {
                        // Presence reaches the engine with the supervisor board (desktop issue).
                        let TrackerEvent::Call(event) = event else { continue };
                        if self.to_book.send(SessionMessage::Event(event)).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                _ = keepalive.tick() => {
                    // Every Ping is answered, so two silent intervals mean a dead session.
                    if last_heard.elapsed() >= 2 * KEEPALIVE {
                        return Err(SessionEnd::Connected(AmiError::Silent {
                            after: last_heard.elapsed(),
                        }));
                    }
                    let ping = Outgoing::action("Ping").map_err(|e| SessionEnd::Connected(e.into()))?;
                    conn.send(ping).await.map_err(SessionEnd::Connected)?;
                }
            }
        }
    }
}

enum SessionEnd {
    NeverConnected(AmiError),
    Connected(AmiError),
}

/// Owns the live calls and the history.
struct BookTask {
    book: CallBook,
    store: LocalStore,
    events: broadcast::Sender<EngineEvent>,
}

impl BookTask {
    async fn run(
        mut self,
        mut from_session: mpsc::Receiver<SessionMessage>,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                // Session news first: a snapshot then reflects everything the session reported
                // before it was asked for (e.g. stale calls closed on a new login).
                biased;
                Some(message) = from_session.recv() => match message {
                    SessionMessage::Event(event) => self.apply(event).await,
                    SessionMessage::LoggedIn { at } => self.end_stale_calls(at).await,
                },
                Some(command) = commands.recv() => match command {
                    Command::Snapshot(reply) => {
                        let _ = reply.send(self.snapshot().await);
                    }
                },
                _ = stopped(&mut shutdown) => break,
                else => break,
            }
        }
        self.store.close().await;
    }

    async fn apply(&mut self, event: CallEvent) {
        match self.book.apply(&event) {
            Ok(Some(update)) => {
                let _ = self
                    .events
                    .send(EngineEvent::CallUpdated(Box::new(CallView::from(
                        &update.call,
                    ))));
                if update.kind == UpdateKind::Ended
                    && let Err(e) = self.store.save_ended_call(&update.call).await
                {
                    tracing::error!(call = %update.call.id, error = %e, "could not store a finished call");
                }
            }
            Ok(None) => {}
            Err(anomaly) => tracing::debug!(%anomaly, "call event ignored"),
        }
    }

    /// Ends every live call: after a new login nothing more will be heard about them.
    async fn end_stale_calls(&mut self, at: Timestamp) {
        let stale: Vec<CallId> = self.book.live().map(|c| c.id.clone()).collect();
        if !stale.is_empty() {
            tracing::warn!(
                calls = stale.len(),
                "closing calls that were live when the PBX connection was lost"
            );
        }
        for call in stale {
            let kind = CallEventKind::Ended {
                cause: None,
                status: None,
            };
            self.apply(CallEvent { call, at, kind }).await;
        }
    }

    async fn snapshot(&self) -> Vec<CallView> {
        let mut live: Vec<CallView> = self.book.live().map(CallView::from).collect();
        live.sort_by_key(|c| std::cmp::Reverse(c.started_at));
        match self.store.recent_calls(RECENT_CALLS).await {
            Ok(recent) => live.extend(recent),
            Err(e) => tracing::error!(error = %e, "could not read the call history"),
        }
        live
    }
}
