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
    CallBook, Capabilities, Control, ControlError, ControlOutcome, NumberPlan, PartyMemo, Pbx,
    TenantId,
};
use calldesk_sim::ami::{AmiSimConfig, AmiSimulator, Schedule};
use calldesk_store::LocalStore;
use calldesk_wire::{
    AfterCall, CallNote, CallView, CallbackOutcome, CallbackView, ConnectionState,
    ConnectionStatus, Identity, PresenceView, ProfileKind, SyncState, SyncStatusView,
};
use tokio::sync::{Mutex, broadcast, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::EngineError;
use crate::book::{BookInput, BookTask, Command};
use crate::figures::OperatorFigures;
use crate::hub::{FeedOutputs, HubClient, HubPbx, HubProfile, OperatorView};
use crate::latency::{LatencySamples, PopLatency};
use crate::sync::{SyncControl, SyncWorker, Wake};

/// How many calls with a number the pop's "last calls" shows.
const CALLER_HISTORY: u32 = 5;
/// The desk's own worklist looks back this many days (the hub's default is the same).
const WORKLIST_DAYS: i64 = 7;
/// Ping the PBX this often; a Ping unanswered within the same time means a dead session.
const KEEPALIVE: Duration = Duration::from_secs(15);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnect delays of every profile: from 0.5 s doubling to 15 s, with jitter; a session must
/// stay up 30 s before the delay starts again from the minimum, so a server that accepts us
/// and drops us at once is not hammered.
const BACKOFF: BackoffConfig = BackoffConfig {
    min: Duration::from_millis(500),
    max: Duration::from_secs(15),
    stable: Duration::from_secs(30),
};
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
        /// A hub this desk reports to: the calls it hears and their after-call work go there
        /// through the sync (the hub keeps a reported call only if it has no such call).
        report_to: Option<HubProfile>,
    },
    /// The calldesk hub: its `/ws` feed and REST controls.
    Hub(HubProfile),
}

/// The operator at this desk in the Direct and Demo profiles (the Hub profile learns it from
/// the hub's login).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seat {
    /// The operator's extension: calls ringing here pop; controls act as it.
    pub extension: Option<String>,
    /// Shows the supervisor view (live board, listen / whisper / barge).
    pub supervisor: bool,
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
    /// Who sits here (Direct, Demo).
    pub seat: Seat,
}

/// What the engine tells the shell.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// Boxed: a broadcast slot is as large as the largest variant.
    CallUpdated(Box<CallView>),
    ConnectionChanged(ConnectionStatus),
    /// An operator's phone or queue membership changed (the entry as now known).
    Presence(PresenceView),
    /// Who the app acts as changed (the Hub profile's login).
    IdentityChanged(Identity),
    /// A colleague claimed, gave back or closed a worklist item (Hub profile): the worklist
    /// should be read again.
    CallbacksChanged,
    /// The sync with the hub moved on (pending count, progress, offline, an error).
    SyncChanged(SyncStatusView),
    /// A pull brought calls or after-call work into the local history: views of it should be
    /// read again.
    HistoryChanged,
}

/// Reports the connection state: the handle reads the latest, and the shell gets every
/// transition as an event (a watch alone would fold a quick Reconnecting → Connecting).
#[derive(Debug)]
pub(crate) struct StatusReporter {
    status: watch::Sender<ConnectionStatus>,
    events: broadcast::Sender<EngineEvent>,
}

impl StatusReporter {
    pub(crate) fn set(&self, state: ConnectionState, detail: Option<String>) {
        let mut next = None;
        self.status.send_if_modified(|now| {
            if now.state == state && now.detail == detail {
                return false;
            }
            now.state = state;
            now.detail = detail;
            next = Some(now.clone());
            true
        });
        if let Some(next) = next {
            let _ = self.events.send(EngineEvent::ConnectionChanged(next));
        }
    }
}

/// The PBX behind the call controls.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Ami(Box<AmiPbx<AsteriskTracker>>),
    Hub(HubPbx),
}

/// The shell's handle on a running engine.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    pub(crate) backend: Backend,
    store: LocalStore,
    data_dir: PathBuf,
    plan: NumberPlan,
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<EngineEvent>,
    status: watch::Receiver<ConnectionStatus>,
    identity: watch::Receiver<Identity>,
    shutdown: watch::Sender<bool>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    pops: Arc<LatencySamples>,
    /// The sync worker (Hub profile).
    sync: Option<SyncControl>,
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
        let (book_tx, book_rx) = mpsc::channel(4096);
        let kind = match &config.profile {
            ProfileConfig::Demo { .. } => ProfileKind::Demo,
            ProfileConfig::Direct { .. } => ProfileKind::Direct,
            ProfileConfig::Hub(_) => ProfileKind::Hub,
        };
        let (identity_tx, identity) = watch::channel(Identity {
            profile: kind,
            tenant: None,
            login: None,
            name: None,
            extension: config.seat.extension.clone(),
            supervisor: config.seat.supervisor,
        });
        let (status_tx, status) = watch::channel(ConnectionStatus {
            state: ConnectionState::Connecting,
            profile: kind,
            detail: None,
        });

        // Built before anything is spawned, so a failure leaves nothing running.
        let hub_client = match &config.profile {
            ProfileConfig::Hub(profile) => Some(HubClient::new(profile.clone(), identity_tx)?),
            // The seat stays who this desk is; the hub's login only authorises the reports.
            ProfileConfig::Direct {
                report_to: Some(profile),
                ..
            } => Some(HubClient::new(
                profile.clone(),
                watch::channel(identity.borrow().clone()).0,
            )?),
            _ => None,
        };
        // With the hub, every after-call write is queued for it (the outbox).
        let store = store.with_sync_target(hub_client.as_ref().map(HubClient::sync_scope));
        let book = BookTask::new(
            CallBook::new(TenantId::local()),
            store.clone(),
            events.clone(),
        );
        let mut tasks = Vec::new();
        let reporter = StatusReporter {
            status: status_tx,
            events: events.clone(),
        };
        // The sync worker, for whichever hub the store queues for.
        let sync = hub_client.as_ref().map(|client| {
            let (status_tx, status_rx) = watch::channel(SyncStatusView {
                state: SyncState::Syncing,
                ..SyncStatusView::default()
            });
            let control = SyncControl {
                wake: Wake::default(),
                status: status_rx,
            };
            let worker = SyncWorker {
                client: client.clone(),
                store: store.clone(),
                plan: plan.clone(),
                wake: control.wake.clone(),
                status: status_tx,
                events: events.clone(),
            };
            tasks.push(tokio::spawn(worker.run(BACKOFF, shutdown_rx.clone())));
            control
        });
        let backend = match (config.profile, hub_client) {
            (ProfileConfig::Hub(_), Some(client)) => {
                let feed = crate::hub::run_feed(
                    client.clone(),
                    plan.clone(),
                    FeedOutputs {
                        book: book_tx,
                        status: reporter,
                        events: events.clone(),
                        sync: sync.as_ref().map(|c| c.wake.now.clone()),
                    },
                    BACKOFF,
                    shutdown_rx.clone(),
                );
                tasks.push(tokio::spawn(feed));
                Backend::Hub(HubPbx::new(client))
            }
            (ProfileConfig::Hub(_), None) => {
                return Err(EngineError::Profile(
                    "the hub profile has no client".to_owned(),
                ));
            }
            (ProfileConfig::Demo { every }, _) => {
                // The built-in PBX is the lab's Asterisk: chan_sip phones, external numbers
                // dialled with the `00` international prefix.
                let mut dialplan = config.dialplan;
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
                let ami = AmiParts {
                    addr,
                    credentials,
                    dialplan,
                    plan: plan.clone(),
                };
                ami.start(book_tx, reporter, &shutdown_rx, &mut tasks)
            }
            (
                ProfileConfig::Direct {
                    addr, credentials, ..
                },
                _,
            ) => {
                let ami = AmiParts {
                    addr,
                    credentials,
                    dialplan: config.dialplan,
                    plan: plan.clone(),
                };
                ami.start(book_tx, reporter, &shutdown_rx, &mut tasks)
            }
        };
        tasks.push(tokio::spawn(book.run(
            book_rx,
            commands_rx,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(relay_identity(
            identity.clone(),
            events.clone(),
            shutdown_rx,
        )));
        Ok(EngineHandle {
            backend,
            store,
            data_dir: config.data_dir,
            plan,
            commands,
            events,
            status,
            identity,
            shutdown,
            tasks: Arc::new(Mutex::new(tasks)),
            pops: Arc::default(),
            sync,
        })
    }
}

/// The app's own AMI session (Direct, Demo).
struct AmiParts {
    addr: String,
    credentials: AmiCredentials,
    dialplan: DialplanConfig,
    plan: NumberPlan,
}

impl AmiParts {
    fn start(
        self,
        book: mpsc::Sender<BookInput>,
        status: StatusReporter,
        shutdown: &watch::Receiver<bool>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Backend {
        status
            .status
            .send_modify(|s| s.detail = Some(self.addr.clone()));
        let mut client_config = AmiClientConfig::new(self.addr.clone(), self.credentials);
        client_config.connect_timeout = CONNECT_TIMEOUT;
        client_config.ping_interval = KEEPALIVE;
        client_config.ping_timeout = KEEPALIVE;
        client_config.backoff = BACKOFF;
        let (client, client_events) =
            AmiClient::start(client_config, wait_for_shutdown(shutdown.clone()));
        let tracker = Arc::new(RwLock::new(AsteriskTracker::new(self.plan)));
        let pbx = AmiPbx::new(client.clone(), tracker.clone(), self.dialplan);
        let (session_tx, session_rx) = mpsc::channel(4096);
        tasks.push(tokio::spawn(run_session(
            client,
            tracker,
            client_events,
            session_tx,
            self.addr.clone(),
        )));
        tasks.push(tokio::spawn(forward_session(
            session_rx, book, status, self.addr,
        )));
        Backend::Ami(Box::new(pbx))
    }
}

async fn wait_for_shutdown(mut rx: watch::Receiver<bool>) {
    stopped(&mut rx).await;
}

/// Resolves once shutdown is asked for (or the handle is gone). Holds no borrow of the value
/// across later awaits, so it can sit in a `select!` of a `Send` task.
pub(crate) async fn stopped(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

impl EngineHandle {
    /// Live calls (newest first) followed by recent ended calls from the history.
    pub async fn calls_snapshot(&self) -> Result<Vec<CallView>, EngineError> {
        self.ask(Command::Snapshot).await
    }

    /// The presence board: every operator's phone and queue memberships as last reported.
    pub async fn presence(&self) -> Result<Vec<PresenceView>, EngineError> {
        self.ask(Command::Presence).await
    }

    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(command(tx))
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// The latest calls with `number` (the pop's "last calls"): from the hub, which has every
    /// operator's, else from the local history.
    pub async fn caller_history(&self, number: &str) -> Result<Vec<CallView>, EngineError> {
        let party = self.plan.party(number);
        let Some(e164) = party.number.as_ref().map(|n| n.e164().to_owned()) else {
            return Ok(Vec::new());
        };
        match &self.backend {
            Backend::Hub(pbx) => {
                let mut parties = PartyMemo::new(self.plan.clone(), 64);
                pbx.client()
                    .history(&e164, CALLER_HISTORY, &mut parties)
                    .await
                    .map_err(hub_error)
            }
            Backend::Ami(_) => Ok(self.store.calls_with(&e164, CALLER_HISTORY).await?),
        }
    }

    /// The UI painted a pop `ms` after the PBX event that made the call ring here.
    pub fn record_pop_latency(&self, ms: u32) {
        self.pops.record(ms);
        tracing::debug!(ms, "pop painted");
    }

    /// Percentiles of the pop latencies recorded so far.
    pub fn pop_latency(&self) -> PopLatency {
        self.pops.summary()
    }

    /// Figures per operator for the calls since `since` (unix ms; the start of today): from the
    /// hub (every call of the tenant a supervisor may see), else from the local history.
    pub async fn figures_since(&self, since: i64) -> Result<Vec<OperatorFigures>, EngineError> {
        let calls = match &self.backend {
            Backend::Hub(pbx) => {
                let mut parties = PartyMemo::new(self.plan.clone(), 4096);
                let since = calldesk_calls::Timestamp::from_unix_millis(since).rfc3339();
                pbx.client()
                    .calls_since(&since, &mut parties)
                    .await
                    .map_err(hub_error)?
            }
            Backend::Ami(_) => self.store.calls_since(since, 100_000).await?,
        };
        Ok(crate::figures(&calls))
    }

    /// The notes, disposition and tags of a call, from the local store: this desk's own
    /// changes at once, the hub's as the sync worker brings them — the same with the hub away.
    pub async fn after_call(&self, call: &str) -> Result<AfterCall, EngineError> {
        Ok(self.store.after_call(call).await?)
    }

    /// Searches the local history (works the same with the hub away): numbers by any three
    /// or more digits, names, companies, queues; period, status, direction and operator
    /// filters; newest first, a page at a time.
    pub async fn history_search(
        &self,
        query: &calldesk_store::HistoryQuery,
    ) -> Result<calldesk_store::HistoryPage, EngineError> {
        Ok(self.store.search_calls(query).await?)
    }

    /// Where the sync with the hub stands (`off` for profiles without a hub).
    pub fn sync_status(&self) -> SyncStatusView {
        self.sync
            .as_ref()
            .map(|s| s.status.borrow().clone())
            .unwrap_or_default()
    }

    /// Runs a sync round now (after the current one, if one is under way), even while the
    /// worker backs off from an unreachable hub.
    pub fn sync_now(&self) {
        if let Some(sync) = &self.sync {
            sync.wake.now.notify_one();
        }
    }

    /// A local change waits in the outbox: push it soon (not while backing off).
    fn changed(&self) {
        if let Some(sync) = &self.sync {
            sync.wake.news.notify_one();
        }
    }

    /// The changes the hub refused for good, newest first, with its reasons.
    pub async fn refused_changes(&self) -> Result<Vec<calldesk_store::RefusedChange>, EngineError> {
        Ok(self.store.refused_changes(200).await?)
    }

    /// Adds a note to a call (one line or several; at most 4000 characters).
    pub async fn add_note(&self, call: &str, text: &str) -> Result<CallNote, EngineError> {
        let text = text.trim();
        if text.is_empty() || text.chars().count() > 4000 {
            return Err(EngineError::Invalid(
                "a note is 1 to 4000 characters".to_owned(),
            ));
        }
        let note = CallNote {
            id: uuid::Uuid::new_v4().to_string(),
            text: text.to_owned(),
            // With the hub, notes carry their author's login (as the hub keeps them).
            author: self.identity.borrow().login.clone(),
            created_at: crate::book::wall_clock_millis(),
        };
        self.store.add_note(call, &note).await?;
        self.changed();
        Ok(note)
    }

    /// Sets the disposition of a call to one of [`EngineHandle::disposition_codes`]: with the
    /// hub, its list as last read (the hub checks again when the change arrives).
    pub async fn set_disposition(&self, call: &str, code: &str) -> Result<(), EngineError> {
        let list = match &self.backend {
            Backend::Hub(_) => self
                .store
                .remembered_dispositions()
                .await?
                .unwrap_or_else(calldesk_wire::default_dispositions),
            Backend::Ami(_) => crate::dispositions::disposition_codes(&self.data_dir),
        };
        if !list.iter().any(|c| c == code) {
            return Err(EngineError::Invalid(format!(
                "`{}` is not in the disposition list ({})",
                code.escape_debug(),
                list.join(", ")
            )));
        }
        self.store
            .set_disposition(call, code, crate::book::wall_clock_millis())
            .await?;
        self.changed();
        Ok(())
    }

    /// Replaces the tags of a call (normalised: lowercase letters, digits, `-`, `_`; at most
    /// 10); returns them as stored.
    pub async fn set_tags(&self, call: &str, tags: &[String]) -> Result<Vec<String>, EngineError> {
        let tags = calldesk_wire::normalize_tags(tags).map_err(EngineError::Invalid)?;
        let tags = self.store.set_tags(call, &tags).await?;
        self.changed();
        Ok(tags)
    }

    /// The missed-calls worklist (the tenant's with the hub, else this desk's), newest first,
    /// over the last [`WORKLIST_DAYS`] days.
    pub async fn callbacks(&self) -> Result<Vec<CallbackView>, EngineError> {
        let list = match &self.backend {
            Backend::Hub(pbx) => match pbx.client().callbacks().await {
                Ok(list) => {
                    self.store.remember_callbacks(&list).await?;
                    Ok(list)
                }
                // Away from the hub: the list as last read, with this desk's waiting changes.
                Err(e) if offline(&e) => {
                    let me = self.identity.borrow().login.clone();
                    match self.store.offline_callbacks(me.as_deref()).await? {
                        Some(list) => Ok(list),
                        None => Err(hub_error(e)),
                    }
                }
                Err(e) => Err(hub_error(e)),
            },
            Backend::Ami(_) => {
                let since = crate::book::wall_clock_millis() - WORKLIST_DAYS * 86_400_000;
                Ok(self.store.callbacks(since).await?)
            }
        }?;
        Ok(list.into_iter().map(|c| self.shown(c)).collect())
    }

    /// The item with its number as people read it.
    fn shown(&self, mut item: CallbackView) -> CallbackView {
        item.display = calldesk_wire::PartyView::from(&self.plan.party(&item.number)).display;
        item
    }

    /// Takes (`claim`) or gives back the worklist item of `number`.
    pub async fn claim_callback(
        &self,
        number: &str,
        claim: bool,
    ) -> Result<Option<CallbackView>, EngineError> {
        let action = if claim { "claim" } else { "release" };
        let item = match &self.backend {
            Backend::Hub(pbx) => match pbx.client().callback_action(action, number, None).await {
                // Away from the hub: queued; the hub's compare-and-set decides when it arrives.
                Err(e) if offline(&e) => {
                    let action = if claim {
                        calldesk_wire::CallbackAction::Claim
                    } else {
                        calldesk_wire::CallbackAction::Release
                    };
                    self.store
                        .queue_callback(number, action, None, crate::book::wall_clock_millis())
                        .await?;
                    self.changed();
                    let me = self.identity.borrow().login.clone();
                    Ok(self
                        .store
                        .offline_callbacks(me.as_deref())
                        .await?
                        .and_then(|list| list.into_iter().find(|i| i.number == number)))
                }
                Ok(item) => {
                    // Done online: what this desk queued for the item while away is stale.
                    self.store.drop_queued_callbacks(number).await?;
                    Ok(item)
                }
                Err(e) => Err(hub_error(e)),
            },
            Backend::Ami(_) => Ok(Some(
                self.store
                    .claim_callback(number, claim, crate::book::wall_clock_millis())
                    .await?,
            )),
        }?;
        Ok(item.map(|c| self.shown(c)))
    }

    /// Closes the worklist item of `number` with `outcome` (`reached`, `unreachable`,
    /// `not_needed`).
    pub async fn close_callback(&self, number: &str, outcome: &str) -> Result<(), EngineError> {
        let outcome = CallbackOutcome::from_name(outcome).ok_or_else(|| {
            EngineError::Invalid(format!(
                "`{}` is not one of reached, unreachable, not_needed",
                outcome.escape_debug()
            ))
        })?;
        match &self.backend {
            Backend::Hub(pbx) => match pbx
                .client()
                .callback_action("close", number, Some(outcome.as_str()))
                .await
            {
                Ok(_) => {
                    self.store.drop_queued_callbacks(number).await?;
                    Ok(())
                }
                Err(e) if offline(&e) => {
                    self.store
                        .queue_callback(
                            number,
                            calldesk_wire::CallbackAction::Close,
                            Some(outcome),
                            crate::book::wall_clock_millis(),
                        )
                        .await?;
                    self.changed();
                    Ok(())
                }
                Err(e) => Err(hub_error(e)),
            },
            Backend::Ami(_) => Ok(self
                .store
                .close_callback(number, outcome, crate::book::wall_clock_millis())
                .await?),
        }
    }

    /// The call centre's disposition codes: the tenant's list on the hub (Hub profile; the
    /// list as last read while the hub is away), else `dispositions.json` in the data folder
    /// (a JSON array of codes), else the defaults.
    pub async fn disposition_codes(&self) -> Result<Vec<String>, EngineError> {
        match &self.backend {
            Backend::Hub(pbx) => match pbx.client().dispositions().await {
                Ok(codes) => {
                    self.store.remember_dispositions(&codes).await?;
                    Ok(codes)
                }
                Err(e) => match self.store.remembered_dispositions().await? {
                    Some(codes) => Ok(codes),
                    None => Err(hub_error(e)),
                },
            },
            Backend::Ami(_) => Ok(crate::dispositions::disposition_codes(&self.data_dir)),
        }
    }

    /// The operators of the tenant (Hub profile; the other profiles know extensions only from
    /// presence, and answer an empty list).
    pub async fn operators(&self) -> Result<Vec<OperatorView>, EngineError> {
        match &self.backend {
            Backend::Hub(pbx) => pbx.client().operators().await.map_err(hub_error),
            Backend::Ami(_) => Ok(Vec::new()),
        }
    }

    pub fn connection_status(&self) -> ConnectionStatus {
        self.status.borrow().clone()
    }

    /// Who the app acts as (for the Hub profile, known after the first login).
    pub fn identity(&self) -> Identity {
        self.identity.borrow().clone()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }

    /// What the PBX connection can do (the UI disables the rest).
    pub fn capabilities(&self) -> Capabilities {
        match &self.backend {
            Backend::Ami(pbx) => pbx.capabilities(),
            Backend::Hub(pbx) => pbx.capabilities(),
        }
    }

    /// Carries out a call control (click-to-call, transfer, hold, record, monitor, …).
    /// Non-idempotent controls are never re-sent after a lost connection: the error says
    /// whether the command may have taken effect.
    pub async fn execute(&self, control: Control) -> Result<ControlOutcome, ControlError> {
        let name = control.name();
        let result = match &self.backend {
            Backend::Ami(pbx) => pbx.execute(control).await,
            Backend::Hub(pbx) => pbx.execute(control).await,
        };
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

/// Tells the shell who the app acts as when that changes (the Hub profile's login; the other
/// profiles drop the sender at once).
async fn relay_identity(
    mut identity: watch::Receiver<Identity>,
    events: broadcast::Sender<EngineEvent>,
    mut shutdown: watch::Receiver<bool>,
) {
    identity.mark_unchanged();
    loop {
        tokio::select! {
            changed = identity.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = identity.borrow_and_update().clone();
                let _ = events.send(EngineEvent::IdentityChanged(now));
            }
            () = stopped(&mut shutdown) => return,
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

/// Reports the AMI session's connection state (status bar) and forwards its call and presence
/// events to the book.
async fn forward_session(
    mut from_session: mpsc::Receiver<SessionOutput>,
    to_book: mpsc::Sender<BookInput>,
    status: StatusReporter,
    addr: String,
) {
    while let Some(message) = from_session.recv().await {
        match message {
            SessionOutput::State(state) => {
                let (state, detail) = connection_view(&state, &addr);
                status.set(state, detail);
            }
            other => {
                if to_book.send(BookInput::Session(other)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The hub could not be reached (as opposed to answering no).
fn offline(e: &crate::hub::HubError) -> bool {
    matches!(
        e,
        crate::hub::HubError::Unreachable { .. } | crate::hub::HubError::Silent
    )
}

/// A hub request that failed, as the UI sees it (`hub_unavailable` with the hub's reason).
pub(crate) fn hub_error(e: crate::hub::HubError) -> EngineError {
    match e {
        crate::hub::HubError::Invalid(message) => EngineError::Invalid(message),
        e => EngineError::Hub(e.to_string()),
    }
}
