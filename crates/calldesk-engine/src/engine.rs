//! The engine's tasks and its handle.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use calldesk_ami::{
    AmiClient, AmiClientConfig, AmiCredentials, AmiPbx, AsteriskTracker, BackoffConfig,
    SessionOutput, connection_view, run_session,
};
use calldesk_asterisk::actions::DialplanConfig;
use calldesk_calls::{
    CallBook, CallEvent, CallEventKind, CallId, Capabilities, Control, ControlError,
    ControlOutcome, NumberPlan, Pbx, TenantId, Timestamp, UpdateKind,
};
use calldesk_sim::ami::{AmiSimConfig, AmiSimulator, Schedule};
use calldesk_store::LocalStore;
use calldesk_wire::{CallView, ConnectionState, ConnectionStatus, ProfileKind};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::EngineError;

/// How many ended calls a snapshot includes.
const RECENT_CALLS: u32 = 200;
/// Ping the PBX this often; a Ping unanswered within the same time means a dead session.
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
    /// How call controls map onto the PBX's dialplan (contexts, hold helper, recordings).
    pub dialplan: DialplanConfig,
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
    pbx: AmiPbx<AsteriskTracker>,
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
        let mut dialplan = config.dialplan;
        let (kind, addr, credentials) = match config.profile {
            ProfileConfig::Demo { every } => {
                // The built-in PBX is the lab's Asterisk: chan_sip phones, external numbers
                // dialled with the `00` international prefix.
                dialplan.tech = calldesk_asterisk::actions::ChannelTech::Sip;
                dialplan.international_prefix = Some("00".to_owned());
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

        let mut client_config = AmiClientConfig::new(addr.clone(), credentials);
        client_config.connect_timeout = CONNECT_TIMEOUT;
        client_config.ping_interval = KEEPALIVE;
        client_config.ping_timeout = KEEPALIVE;
        client_config.backoff = BackoffConfig {
            min: BACKOFF_MIN,
            max: BACKOFF_MAX,
            stable: STABLE_SESSION,
        };
        let (client, client_events) =
            AmiClient::start(client_config, wait_for_shutdown(shutdown_rx.clone()));
        let tracker = Arc::new(RwLock::new(AsteriskTracker::new(plan.clone())));
        let pbx = AmiPbx::new(client.clone(), tracker.clone(), dialplan);
        let (session_tx, session_rx) = mpsc::channel(4096);
        tasks.push(tokio::spawn(run_session(
            client,
            tracker,
            client_events,
            session_tx,
            addr.clone(),
        )));
        tasks.push(tokio::spawn(forward_session(
            session_rx,
            call_events,
            status_tx,
            events.clone(),
            addr,
        )));
        tasks.push(tokio::spawn(book.run(
            call_events_rx,
            commands_rx,
            shutdown_rx,
        )));
        Ok(EngineHandle {
            pbx,
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

    /// What the PBX connection can do (the UI disables the rest).
    pub fn capabilities(&self) -> Capabilities {
        self.pbx.capabilities()
    }

    /// Carries out a call control (click-to-call, transfer, hold, record, monitor, …).
    /// Non-idempotent controls are never re-sent after a lost connection: the error says
    /// whether the command may have taken effect.
    pub async fn execute(&self, control: Control) -> Result<ControlOutcome, ControlError> {
        let name = control.name();
        let result = self.pbx.execute(control).await;
        if let Err(e) = &result {
            tracing::warn!(control = name, code = e.code(), error = %e, "call control refused");
        }
        result
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

/// Reports the AMI session's connection state (status bar) and forwards its call events to
/// the book; presence reaches the UI with the supervisor board (desktop issue).
async fn forward_session(
    mut from_session: mpsc::Receiver<SessionOutput>,
    to_book: mpsc::Sender<SessionOutput>,
    status: watch::Sender<ConnectionStatus>,
    events: broadcast::Sender<EngineEvent>,
    addr: String,
) {
    while let Some(message) = from_session.recv().await {
        match message {
            SessionOutput::State(state) => {
                let (state, detail) = connection_view(&state, &addr);
                let next = ConnectionStatus {
                    state,
                    profile: status.borrow().profile,
                    detail,
                };
                if *status.borrow() != next {
                    status.send_replace(next.clone());
                    let _ = events.send(EngineEvent::ConnectionChanged(next));
                }
            }
            SessionOutput::Presence(_) => {}
            other => {
                if to_book.send(other).await.is_err() {
                    return;
                }
            }
        }
    }
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
        mut from_session: mpsc::Receiver<SessionOutput>,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                // Session news first: a snapshot then reflects everything the session reported
                // before it was asked for (e.g. stale calls closed on a new login).
                biased;
                Some(message) = from_session.recv() => match message {
                    SessionOutput::Call(event) => self.apply(event).await,
                    SessionOutput::Resynced { live, at } => self.end_calls_not_in(&live, at).await,
                    SessionOutput::Presence(_) | SessionOutput::State(_) => {}
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

    /// Ends every live call the PBX no longer has (after a resync).
    async fn end_calls_not_in(&mut self, live: &[CallId], at: Timestamp) {
        let stale: Vec<CallId> = self
            .book
            .live()
            .map(|c| c.id.clone())
            .filter(|id| !live.contains(id))
            .collect();
        if !stale.is_empty() {
            tracing::warn!(
                calls = stale.len(),
                "closing calls the PBX no longer lists after a resync"
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
