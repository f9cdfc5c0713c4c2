//! The engine's tasks and its handle.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use calldesk_ami::{AmiConnection, AmiCredentials, AmiError, AsteriskTracker};
use calldesk_ami_proto::Outgoing;
use calldesk_calls::{CallBook, CallEvent, NumberPlan, TenantId, Timestamp, UpdateKind};
use calldesk_sim::ami::{AmiSimConfig, AmiSimulator, Schedule};
use calldesk_store::LocalStore;
use calldesk_wire::{CallView, ConnectionState, ConnectionStatus, ProfileKind};
use rand::Rng;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::EngineError;

/// How many ended calls a snapshot includes.
const RECENT_CALLS: u32 = 200;
/// Ping the PBX this often; a session that stays silent for two intervals is dead.
const KEEPALIVE: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(15);

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

/// The shell's handle on a running engine.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<EngineEvent>,
    status: watch::Receiver<ConnectionStatus>,
    shutdown: watch::Sender<bool>,
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
                tokio::spawn(async move {
                    if let Err(e) = sim.run(stop).await {
                        tracing::error!(error = %e, "demo PBX stopped");
                    }
                });
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
            call_events,
            shutdown: shutdown_rx.clone(),
        };
        tokio::spawn(session.run());
        let book = BookTask {
            book: CallBook::new(TenantId::new("local").map_err(|_| EngineError::Stopped)?),
            store,
            events: events.clone(),
        };
        tokio::spawn(book.run(call_events_rx, commands_rx, shutdown_rx));
        Ok(EngineHandle {
            commands,
            events,
            status,
            shutdown,
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

    /// Asks every task to stop; returns at once.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
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
    call_events: mpsc::Sender<CallEvent>,
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
        let mut backoff = BACKOFF_MIN;
        let mut stop = self.shutdown.clone();
        loop {
            let outcome = tokio::select! {
                outcome = self.session() => outcome,
                _ = stopped(&mut stop) => return,
            };
            let reason = match outcome {
                Ok(()) => return,
                Err(SessionEnd::Connected(e)) => {
                    backoff = BACKOFF_MIN;
                    e.to_string()
                }
                Err(SessionEnd::NeverConnected(e)) => e.to_string(),
            };
            // Full jitter keeps a room of desktops from reconnecting in lockstep.
            let wait = rand::rng().random_range(backoff / 2..=backoff);
            tracing::warn!(addr = %self.addr, %reason, ?wait, "AMI session lost; reconnecting");
            self.report(ConnectionState::Reconnecting, Some(reason));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped(&mut stop) => return,
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn session(&mut self) -> Result<(), SessionEnd> {
        let (mut conn, banner) =
            AmiConnection::connect(&self.addr, &self.credentials, CONNECT_TIMEOUT)
                .await
                .map_err(SessionEnd::NeverConnected)?;
        tracing::info!(addr = %self.addr, %banner, "AMI session logged in");
        self.report(ConnectionState::Connected, Some(self.addr.clone()));
        // A fresh tracker per session: the next issue adds resync of calls live across reconnects.
        let mut tracker = AsteriskTracker::new(self.plan.clone());
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.reset();
        let mut silent_ticks = 0u8;
        loop {
            tokio::select! {
                msg = conn.next_message() => {
                    let msg = msg.map_err(SessionEnd::Connected)?;
                    silent_ticks = 0;
                    for event in tracker.handle(&msg, now()) {
                        if self.call_events.send(event).await.is_err() {
                            return Ok(());
                        }
                    }
                }
                _ = keepalive.tick() => {
                    silent_ticks += 1;
                    if silent_ticks > 2 {
                        return Err(SessionEnd::Connected(AmiError::Disconnected));
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
        mut call_events: mpsc::Receiver<CallEvent>,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                Some(event) = call_events.recv() => self.apply(event).await,
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
