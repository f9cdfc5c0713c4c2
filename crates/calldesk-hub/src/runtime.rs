//! One runtime per tenant whose PBX this replica holds, and the batched writer.
//!
//! The runtime owns the tenant's `CallBook` and feeds it from the tenant's tracker — Mango
//! webhooks (from the inbox) through a `MangoTracker`, or the AMI session through an
//! `AsteriskTracker`. Each call update becomes a [`HubCall`]: the caller card is looked up
//! (once per call, before the first message goes out), operators are resolved by extension,
//! the message is published to the fan-out (and to other replicas) and the state is queued for
//! the writer, which upserts calls and appends their history in batches (one round trip per
//! batch) and then marks the webhooks behind them processed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use calldesk_ami::{
    AmiClient, AmiClientConfig, AmiCredentials, AmiPbx, AsteriskTracker, SessionOutput,
    connection_view, run_session,
};
use calldesk_asterisk::actions::DialplanConfig;
use calldesk_calls::{
    CallBook, CallEvent, CallEventKind, CallId, Capabilities, Control, ControlError,
    ControlOutcome, NumberPlan, Pbx, TenantId, Timestamp, UpdateKind,
};
use calldesk_central::{CallEventRow, PbxConfig, TenantConfig};
use calldesk_mango::{Credentials, MangoClient, MangoConfig, MangoPbx};
use calldesk_mango_proto::tracker::{MangoTracker, Timing};
use calldesk_mango_proto::webhook::Webhook;
use calldesk_wire::{CallerCard, ConnectionState, HubCall, HubMessage, PresenceView};
use tokio::sync::{mpsc, watch};

use crate::Hub;
use crate::fanout::{Room, rooms_of};

/// What a tenant runtime is fed.
#[derive(Debug)]
pub enum Input {
    /// A verified webhook, already in the inbox as `id`.
    Webhook {
        id: i64,
        webhook: Box<Webhook>,
        received: Instant,
    },
    Session(Box<SessionOutput>),
}

/// The tenant's PBX for call controls.
#[derive(Debug, Clone)]
pub enum TenantPbx {
    Ami(Box<AmiPbx<AsteriskTracker>>),
    Mango(Box<MangoPbx<MangoTracker>>),
    /// No PBX configured (demo tenants): every control is refused as unsupported.
    None,
}

impl TenantPbx {
    pub fn capabilities(&self) -> Capabilities {
        match self {
            Self::Ami(p) => p.capabilities(),
            Self::Mango(p) => p.capabilities(),
            Self::None => Capabilities::default(),
        }
    }

    pub async fn execute(&self, control: Control) -> Result<ControlOutcome, ControlError> {
        match self {
            Self::Ami(p) => p.execute(control).await,
            Self::Mango(p) => p.execute(control).await,
            Self::None => Err(ControlError::NotSupported(control.name())),
        }
    }
}

/// The PBX connection as `/api/status` and the `pbx-status` message show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PbxState {
    pub state: ConnectionState,
    pub detail: Option<String>,
}

/// A running tenant runtime.
#[derive(Debug, Clone)]
pub struct TenantHandle {
    pub inputs: mpsc::Sender<Input>,
    pub pbx: TenantPbx,
    pub status: watch::Receiver<PbxState>,
    /// The highest inbox id handed to the runtime (inbox notices from other replicas resume
    /// after it).
    pub last_inbox: Arc<std::sync::atomic::AtomicI64>,
    stop: Arc<watch::Sender<bool>>,
}

impl TenantHandle {
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

/// What the writer stores.
#[derive(Debug)]
pub enum WriteOp {
    Call {
        call: Box<HubCall>,
        kind: &'static str,
        at_ms: i64,
    },
    /// These webhooks of the tenant are applied and their calls are over; mark them once the
    /// calls before this op are stored.
    Processed { tenant: TenantId, ids: Vec<i64> },
    /// Answer once everything before is stored.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Starts the runtime of `tenant` (this replica just took its lease).
pub async fn start(hub: &Hub, tenant: &TenantConfig) -> Result<TenantHandle, String> {
    let (inputs, inputs_rx) = mpsc::channel(16_384);
    let (stop, stop_rx) = watch::channel(false);
    let plan = NumberPlan::new(&tenant.region).map_err(|e| {
        format!(
            "tenant {} has region {:?}, which is not a region code ({e}); fix it in the database",
            tenant.id, tenant.region
        )
    })?;
    let initial = PbxState {
        state: ConnectionState::Connecting,
        detail: None,
    };
    let (status_tx, status) = watch::channel(initial);
    let operators = load_operators(hub, &tenant.id).await;
    let mut mango = None;
    let pbx = match &tenant.pbx {
        PbxConfig::Asterisk {
            host,
            port,
            user,
            secret_env,
            tls,
            dialplan,
        } => match hub.config().secrets.get(secret_env) {
            Some(secret) => {
                let addr = format!("{host}:{port}");
                let mut config = AmiClientConfig::new(
                    addr.clone(),
                    AmiCredentials {
                        username: user.clone(),
                        secret,
                    },
                );
                if *tls {
                    config.tls = Some(calldesk_ami::TlsConfig::system());
                }
                let mut client_stop = stop_rx.clone();
                let (client, client_events) = AmiClient::start(config, async move {
                    crate::stopped(&mut client_stop).await;
                });
                let tracker = Arc::new(RwLock::new(AsteriskTracker::new(plan.clone())));
                let pbx = AmiPbx::new(client.clone(), tracker.clone(), dialplan_config(dialplan));
                let (session_tx, mut session_rx) = mpsc::channel(4096);
                tokio::spawn(run_session(
                    client,
                    tracker,
                    client_events,
                    session_tx,
                    addr,
                ));
                let inputs = inputs.clone();
                tokio::spawn(async move {
                    while let Some(out) = session_rx.recv().await {
                        if inputs.send(Input::Session(Box::new(out))).await.is_err() {
                            return;
                        }
                    }
                });
                TenantPbx::Ami(Box::new(pbx))
            }
            None => {
                let detail = format!(
                    "the AMI secret of tenant {} is not set: put it in the environment variable {secret_env} of every hub replica",
                    tenant.id
                );
                tracing::error!(tenant = %tenant.id, "{detail}");
                status_tx.send_replace(PbxState {
                    state: ConnectionState::Disconnected,
                    detail: Some(detail),
                });
                TenantPbx::None
            }
        },
        PbxConfig::Mango {
            api_url,
            key,
            salt_env,
        } => {
            let mut tracker = MangoTracker::new(plan.clone(), Timing::default());
            tracker.set_employees(
                operators
                    .values()
                    .filter_map(|o| Some((o.sip.clone()?, o.extension.to_string()))),
            );
            let tracker = Arc::new(RwLock::new(tracker));
            mango = Some(tracker.clone());
            let salt = hub.config().secrets.get(salt_env).unwrap_or_default();
            let url = api_url
                .clone()
                .or_else(|| hub.config().mango_api_url.clone());
            let config = match url.as_deref().map(reqwest_url) {
                Some(Ok(url)) => Ok(MangoConfig::with_base_url(
                    url,
                    Credentials::new(key.clone(), salt.clone()),
                )),
                Some(Err(e)) => Err(e),
                None => Ok(MangoConfig::new(Credentials::new(
                    key.clone(),
                    salt.clone(),
                ))),
            };
            let state = if salt.is_empty() {
                PbxState {
                    state: ConnectionState::Disconnected,
                    detail: Some(format!(
                        "the Mango salt of tenant {} is not set: put it in the environment variable {salt_env}; webhooks are refused until then",
                        tenant.id
                    )),
                }
            } else {
                PbxState {
                    state: ConnectionState::Connected,
                    detail: Some("Mango Office webhooks".to_owned()),
                }
            };
            status_tx.send_replace(state);
            match config.and_then(|c| MangoClient::new(c).map_err(|e| e.to_string())) {
                Ok(client) => TenantPbx::Mango(Box::new(MangoPbx::new(client, tracker))),
                Err(e) => {
                    tracing::error!(tenant = %tenant.id, error = %e, "Mango command client not available");
                    TenantPbx::None
                }
            }
        }
        PbxConfig::Demo => {
            status_tx.send_replace(PbxState {
                state: ConnectionState::Connected,
                detail: Some("demo tenant: no PBX".to_owned()),
            });
            TenantPbx::None
        }
    };
    let handle = TenantHandle {
        inputs,
        pbx,
        status,
        last_inbox: Arc::new(std::sync::atomic::AtomicI64::new(0)),
        stop: Arc::new(stop),
    };
    let runtime = Runtime {
        hub: hub.clone(),
        tenant: tenant.id.clone(),
        book: CallBook::new(tenant.id.clone()),
        mango,
        operators,
        unknown_logged: HashSet::new(),
        cards: HashMap::new(),
        rooms: HashMap::new(),
        status: status_tx,
        events: Vec::new(),
        inbox_ids: HashMap::new(),
        done: Vec::new(),
        resynced_once: false,
    };
    tokio::spawn(runtime.run(inputs_rx, stop_rx));
    Ok(handle)
}

/// The control planner's settings from the tenant's stored dialplan.
pub fn dialplan_config(d: &calldesk_central::AmiDialplan) -> DialplanConfig {
    DialplanConfig {
        tech: if d.tech == "sip" {
            calldesk_asterisk::actions::ChannelTech::Sip
        } else {
            calldesk_asterisk::actions::ChannelTech::Pjsip
        },
        context: d.context.clone(),
        international_prefix: d.international_prefix.clone(),
        hold: d
            .hold_context
            .as_ref()
            .map(|context| calldesk_asterisk::actions::HoldConfig {
                context: context.clone(),
                ..calldesk_asterisk::actions::HoldConfig::default()
            }),
        ..DialplanConfig::default()
    }
}

fn reqwest_url(s: &str) -> Result<calldesk_mango::Url, String> {
    calldesk_mango::Url::parse(s).map_err(|e| format!("bad Mango API URL {s:?}: {e}"))
}

async fn load_operators(
    hub: &Hub,
    tenant: &TenantId,
) -> HashMap<String, calldesk_central::Operator> {
    match hub.store().operators(tenant).await {
        Ok(list) => {
            let mut map = HashMap::new();
            for op in list.into_iter().filter(|o| o.active) {
                if let Some(sip) = &op.sip {
                    map.insert(sip.clone(), op.clone());
                }
                map.insert(op.extension.to_string(), op);
            }
            map
        }
        Err(e) => {
            tracing::error!(%tenant, error = %e, "cannot read the operators");
            HashMap::new()
        }
    }
}

struct Runtime {
    hub: Hub,
    tenant: TenantId,
    book: CallBook,
    mango: Option<Arc<RwLock<MangoTracker>>>,
    /// By extension and by SIP address.
    operators: HashMap<String, calldesk_central::Operator>,
    unknown_logged: HashSet<String>,
    /// The caller card of each live call, looked up once.
    cards: HashMap<CallId, Option<CallerCard>>,
    /// The rooms each live call has been sent to.
    rooms: HashMap<CallId, Vec<Room>>,
    status: watch::Sender<PbxState>,
    events: Vec<CallEvent>,
    /// The inbox ids of each live Mango call (by `entry_id`). They are marked processed once
    /// the call is over and stored, so a replica that takes over replays exactly the webhooks
    /// of the calls still going on.
    inbox_ids: HashMap<String, Vec<i64>>,
    /// Inbox ids to mark processed: their calls are over, or they carry no call state.
    done: Vec<i64>,
    resynced_once: bool,
}

impl Runtime {
    /// Marks the webhooks of the calls that are over as processed (after their final states,
    /// which the writer stores first).
    async fn mark_processed(&mut self) {
        if let Some(tracker) = &self.mango
            && let Ok(t) = tracker.read()
        {
            let done = &mut self.done;
            self.inbox_ids.retain(|entry, ids| {
                let live = t.is_live(entry);
                if !live {
                    done.append(ids);
                }
                live
            });
        }
        if self.done.is_empty() {
            return;
        }
        let ids = std::mem::take(&mut self.done);
        let _ = self
            .hub
            .inner
            .writes
            .send(WriteOp::Processed {
                tenant: self.tenant.clone(),
                ids,
            })
            .await;
    }

    /// After taking over an Asterisk tenant: calls the database still shows as live but the
    /// PBX no longer has (they ended while nobody held the tenant) are closed.
    async fn close_orphans(&mut self, live: &[CallId], at: Timestamp) {
        let stored = match self.hub.store().live_calls(&self.tenant).await {
            Ok(calls) => calls,
            Err(e) => {
                tracing::warn!(tenant = %self.tenant, error = %e, "cannot read the live calls to close orphans");
                return;
            }
        };
        for mut call in stored {
            if live.iter().any(|id| id.as_str() == call.record.id)
                || self.book.live().any(|c| c.id.as_str() == call.record.id)
            {
                continue;
            }
            tracing::warn!(tenant = %self.tenant, call = %call.record.id, "closing a call that ended while no replica held the PBX");
            call.state = calldesk_wire::CallStateView::Ended;
            call.record.ended_at = Some(at.rfc3339());
            call.record.status = Some(
                if !call.record.answered_by.is_empty() {
                    "answered"
                } else if call.record.direction == "inbound" {
                    "missed"
                } else {
                    "no_answer"
                }
                .to_owned(),
            );
            let rooms = rooms_of(&call, |ext| self.operator_id(ext));
            self.publish(&HubMessage::CallEnded { call: call.clone() }, rooms);
            let _ = self
                .hub
                .inner
                .writes
                .send(WriteOp::Call {
                    call: Box::new(call),
                    kind: "ended",
                    at_ms: at.unix_millis(),
                })
                .await;
        }
    }

    async fn run(mut self, mut inputs: mpsc::Receiver<Input>, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut refresh = tokio::time::interval(Duration::from_secs(30));
        refresh.tick().await;
        self.publish_status();
        loop {
            tokio::select! {
                biased;
                _ = crate::stopped(&mut stop) => break,
                input = inputs.recv() => match input {
                    Some(input) => self.handle(input).await,
                    None => break,
                },
                _ = tick.tick() => self.tick().await,
                _ = refresh.tick() => {
                    self.operators = load_operators(&self.hub, &self.tenant).await;
                }
            }
        }
        tracing::info!(tenant = %self.tenant, "tenant runtime stopped");
    }

    async fn handle(&mut self, input: Input) {
        match input {
            Input::Webhook {
                id,
                webhook,
                received,
            } => {
                match webhook.entry_id() {
                    Some(entry) => self.inbox_ids.entry(entry.to_owned()).or_default().push(id),
                    None => self.done.push(id),
                }
                if let Some(tracker) = &self.mango {
                    let now = Timestamp::from_unix_millis(crate::now_ms());
                    if let Ok(mut t) = tracker.write() {
                        t.handle(&webhook, now, &mut self.events);
                    }
                }
                self.apply_events(Some(received)).await;
            }
            Input::Session(output) => self.session(*output).await,
        }
    }

    async fn session(&mut self, output: SessionOutput) {
        match output {
            SessionOutput::Call(event) => {
                self.events.push(event);
                self.apply_events(None).await;
            }
            SessionOutput::Presence(p) => {
                let presence = PresenceView::from(&p);
                self.publish(
                    &HubMessage::Presence { presence },
                    vec![Room::Supervisors, Room::Operators],
                );
            }
            SessionOutput::Resynced { live, at } => {
                if !self.resynced_once {
                    self.resynced_once = true;
                    self.close_orphans(&live, at).await;
                }
                let stale = self.book.live_not_in(&live);
                for call in stale {
                    self.events.push(CallEvent {
                        call,
                        at,
                        kind: CallEventKind::Ended {
                            cause: None,
                            status: None,
                        },
                    });
                }
                self.apply_events(None).await;
            }
            SessionOutput::State(state) => {
                let (state, detail) = connection_view(&state, "");
                self.status.send_replace(PbxState { state, detail });
                self.publish_status();
            }
        }
    }

    async fn tick(&mut self) {
        if let Some(tracker) = &self.mango {
            let now = Timestamp::from_unix_millis(crate::now_ms());
            if let Ok(mut t) = tracker.write() {
                t.tick(now, &mut self.events);
            }
            if !self.events.is_empty() {
                self.apply_events(None).await;
            }
            // A few times a second, not per webhook: the mark is one UPDATE in the writer.
            self.mark_processed().await;
        }
    }

    fn publish_status(&self) {
        let s = self.status.borrow().clone();
        self.publish(
            &HubMessage::PbxStatus {
                state: s.state,
                detail: s.detail,
            },
            vec![Room::Supervisors, Room::Operators],
        );
    }

    fn publish(&self, message: &HubMessage, rooms: Vec<Room>) {
        let channel = self.hub.fanout().tenant(&self.tenant);
        if let Some(out) = channel.publish(message, rooms) {
            crate::replicas::share(&self.hub, &self.tenant, &out);
        }
    }

    async fn apply_events(&mut self, received: Option<Instant>) {
        let events = std::mem::take(&mut self.events);
        for event in &events {
            let update = match self.book.apply(event) {
                Ok(Some(update)) => update,
                Ok(None) => continue,
                Err(anomaly) => {
                    tracing::debug!(tenant = %self.tenant, %anomaly, "call event ignored");
                    continue;
                }
            };
            let mut call = HubCall::new(&update.call);
            let card = match self.cards.get(&update.call.id) {
                Some(card) => card.clone(),
                None => {
                    let card = self.identify(&call).await;
                    self.cards.insert(update.call.id.clone(), card.clone());
                    card
                }
            };
            call.caller = card;
            // A call's rooms only grow (who rang, answered, transferred, monitored). A room that
            // joins gets `call-new` (its pop), the others `call-updated`.
            let rooms = rooms_of(&call, |ext| self.operator_id(ext));
            let joined: Vec<Room> = match self.rooms.get(&update.call.id) {
                Some(before) => rooms
                    .iter()
                    .filter(|r| !before.contains(r))
                    .copied()
                    .collect(),
                None => rooms.clone(),
            };
            let kind = match update.kind {
                UpdateKind::New => "new",
                UpdateKind::Ended => "ended",
                _ => "updated",
            };
            if update.kind == UpdateKind::Ended {
                self.rooms.remove(&update.call.id);
                self.cards.remove(&update.call.id);
                self.publish(&HubMessage::CallEnded { call: call.clone() }, rooms);
            } else {
                self.rooms.insert(update.call.id.clone(), rooms.clone());
                let stayed: Vec<Room> = rooms.into_iter().filter(|r| !joined.contains(r)).collect();
                if !joined.is_empty() {
                    self.publish(&HubMessage::CallNew { call: call.clone() }, joined);
                }
                if !stayed.is_empty() {
                    self.publish(&HubMessage::CallUpdated { call: call.clone() }, stayed);
                }
            }
            let metrics = self.hub.metrics();
            metrics.call_updates.inc();
            if let Some(t) = received {
                metrics
                    .event_publish_seconds
                    .observe(t.elapsed().as_secs_f64());
            }
            let _ = self
                .hub
                .inner
                .writes
                .send(WriteOp::Call {
                    call: Box::new(call),
                    kind,
                    at_ms: event.at.unix_millis(),
                })
                .await;
        }
        // Keep the buffer's capacity.
        self.events = events;
        self.events.clear();
    }

    /// The operator id of an extension or SIP address; an unknown one is logged once.
    fn operator_id(&self, ext: &str) -> Option<i64> {
        self.operators.get(ext).map(|o| o.id)
    }

    /// The caller card: the customer's number looked up in contacts and companies.
    async fn identify(&mut self, call: &HubCall) -> Option<CallerCard> {
        for ext in call.extensions() {
            if !self.operators.contains_key(ext) && self.unknown_logged.insert(ext.to_owned()) {
                tracing::warn!(
                    tenant = %self.tenant,
                    "no operator for SIP {ext} in tenant {}; the call is recorded without one (add it with `calldesk admin operator add`)",
                    self.tenant
                );
            }
        }
        let number = match call.record.direction.as_str() {
            "outbound" => call.record.to.as_str(),
            _ => call.record.from.as_str(),
        };
        if !number.starts_with('+') {
            return None;
        }
        self.hub
            .inner
            .cards
            .lookup(&self.hub, &self.tenant, number)
            .await
    }
}

/// The most operations one write batch carries.
const WRITE_BATCH: usize = 8_192;
/// How long a write batch gathers operations (unless a flush is waiting).
const WRITE_PACE: Duration = Duration::from_millis(100);

/// The writer: batches call states and history rows, one round trip each per batch.
pub async fn writer(
    hub: Hub,
    store: calldesk_central::CentralStore,
    mut rx: mpsc::Receiver<WriteOp>,
) {
    let mut ops = Vec::with_capacity(WRITE_BATCH);
    let mut last = Instant::now();
    while rx.recv_many(&mut ops, WRITE_BATCH).await > 0 {
        // Derived state may wait: what gathers for WRITE_PACE goes in one batch, where the
        // states of one call merge into one row (a flush does not wait).
        let deadline = tokio::time::Instant::from_std(last + WRITE_PACE);
        while ops.len() < WRITE_BATCH && !ops.iter().any(|op| matches!(op, WriteOp::Flush(_))) {
            let room = WRITE_BATCH - ops.len();
            match tokio::time::timeout_at(deadline, rx.recv_many(&mut ops, room)).await {
                Ok(n) if n > 0 => {}
                _ => break,
            }
        }
        let started = Instant::now();
        last = started;
        let mut calls = Vec::new();
        let mut rows = Vec::new();
        let mut processed: HashMap<TenantId, Vec<i64>> = HashMap::new();
        let mut flushes = Vec::new();
        for op in ops.drain(..) {
            match op {
                WriteOp::Call { call, kind, at_ms } => {
                    if let Ok(tenant) = TenantId::new(call.tenant.clone()) {
                        rows.push(CallEventRow {
                            tenant,
                            call_id: call.record.id.clone(),
                            kind: kind.to_owned(),
                            at_ms,
                            data: serde_json::to_value(&*call).unwrap_or_default(),
                        });
                    }
                    calls.push(*call);
                }
                WriteOp::Processed { tenant, mut ids } => {
                    processed.entry(tenant).or_default().append(&mut ids);
                }
                WriteOp::Flush(done) => flushes.push(done),
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            let result = async {
                if !calls.is_empty() {
                    store.upsert_calls(&calls).await?;
                    store.append_call_events(&rows).await?;
                    // Before anything is acknowledged: a recording is never forgotten.
                    store
                        .add_recordings(&crate::recordings::to_store(&hub, &calls))
                        .await?;
                }
                for (tenant, ids) in &processed {
                    store.mark_webhooks_processed(tenant, ids).await?;
                }
                Ok::<(), calldesk_central::CentralError>(())
            }
            .await;
            match result {
                Ok(()) => break,
                Err(e) => {
                    // Keep the batch: the database may be restarting. Nothing is acknowledged
                    // to anyone until it is stored.
                    tracing::error!(error = %e, calls = calls.len(), retry_in = ?delay, "cannot store call states; retrying");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        hub.metrics()
            .db_batch_seconds
            .observe(started.elapsed().as_secs_f64());
        for done in flushes {
            let _ = done.send(());
        }
    }
}

/// Waits until everything queued for the writer so far is stored.
pub async fn flush(hub: &Hub) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if hub.inner.writes.send(WriteOp::Flush(tx)).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(10), rx).await;
    }
}
