//! Between hub replicas, over PostgreSQL LISTEN/NOTIFY (no broker):
//! - `calldesk_events`: every call/presence/status message a runtime publishes, so each
//!   replica fans it out to its own WebSocket clients (a payload too large for NOTIFY's 8 kB
//!   becomes a `refresh` and the others re-read the tenant's live calls);
//! - `calldesk_inbox`: a webhook stored by a replica that does not hold the tenant;
//! - `calldesk_control` / `calldesk_control_reply`: a call control forwarded to the holder.
//!
//! Each payload names its replica; a replica ignores its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use calldesk_calls::TenantId;
use calldesk_wire::HubMessage;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::Hub;
use crate::api::{ControlReply, ControlSpec};
use crate::fanout::{Outbound, Room, TenantChannel, rooms_of};

const EVENTS: &str = "calldesk_events";
const INBOX: &str = "calldesk_inbox";
const CONTROL: &str = "calldesk_control";
const CONTROL_REPLY: &str = "calldesk_control_reply";
/// NOTIFY payloads must stay below 8000 bytes.
const MAX_PAYLOAD: usize = 7900;

#[derive(Debug)]
pub enum Notice {
    Payload { channel: &'static str, json: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct EventPayload<'a> {
    r: &'a str,
    t: &'a str,
    rooms: Vec<Room>,
    /// The message JSON, or absent for a refresh.
    #[serde(default)]
    m: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct InboxPayload {
    r: String,
    t: String,
    id: i64,
}

#[derive(Debug, Serialize, Deserialize)]
struct ControlPayload {
    r: String,
    req: String,
    t: String,
    spec: ControlSpec,
}

#[derive(Debug, Serialize, Deserialize)]
struct ControlReplyPayload {
    req: String,
    reply: ControlReply,
}

/// Controls this replica forwarded and waits for.
#[derive(Debug, Default)]
pub struct PendingControls(Mutex<HashMap<String, oneshot::Sender<ControlReply>>>);

fn push(hub: &Hub, channel: &'static str, json: String) {
    if hub
        .inner
        .notices
        .try_send(Notice::Payload { channel, json })
        .is_err()
    {
        tracing::warn!(
            channel,
            "replica notice queue full; other replicas may miss a message (their clients resync on the next snapshot)"
        );
    }
}

/// Shares a message a local runtime published with the other replicas (if there are any).
pub fn share(hub: &Hub, tenant: &TenantId, out: &Arc<Outbound>) {
    if hub.inner.others.load(std::sync::atomic::Ordering::Acquire) == 0 {
        return;
    }
    let raw = if out.json.len() + 200 < MAX_PAYLOAD {
        serde_json::value::RawValue::from_string(out.json.clone()).ok()
    } else {
        None
    };
    let payload = EventPayload {
        r: &hub.config().replica,
        t: tenant.as_str(),
        rooms: out.rooms.clone(),
        m: raw,
    };
    if let Ok(json) = serde_json::to_string(&payload) {
        push(hub, EVENTS, json);
    }
}

/// Shares every live call of the tenants this replica holds (a replica just appeared).
pub fn share_all_live(hub: &Hub) {
    let held = hub.held_tenants();
    for tenant in held {
        let channel = hub.fanout().tenant(&tenant);
        for (call, rooms) in channel.live_entries() {
            let message = HubMessage::CallUpdated { call };
            if let Ok(json) = serde_json::to_string(&message) {
                share(hub, &tenant, &Arc::new(Outbound { rooms, json }));
            }
        }
    }
}

/// Tells the holder of `tenant` that webhook `id` is in the inbox.
pub fn inbox_notice(hub: &Hub, tenant: &TenantId, id: i64) {
    let payload = InboxPayload {
        r: hub.config().replica.clone(),
        t: tenant.to_string(),
        id,
    };
    if let Ok(json) = serde_json::to_string(&payload) {
        push(hub, INBOX, json);
    }
}

/// Sends a control to the replica holding the tenant's PBX and waits for its answer.
pub async fn forward_control(
    hub: &Hub,
    tenant: &TenantId,
    spec: ControlSpec,
) -> Option<ControlReply> {
    let req = uuid::Uuid::new_v4().to_string();
    let (tx, rx) = oneshot::channel();
    if let Ok(mut map) = hub.inner.controls.0.lock() {
        map.insert(req.clone(), tx);
    }
    let payload = ControlPayload {
        r: hub.config().replica.clone(),
        req: req.clone(),
        t: tenant.to_string(),
        spec,
    };
    let json = serde_json::to_string(&payload).ok()?;
    if let Err(e) = hub.store().notify(CONTROL, &[json]).await {
        tracing::error!(error = %e, "cannot forward a call control");
    }
    let reply = tokio::time::timeout(Duration::from_secs(40), rx)
        .await
        .ok()
        .and_then(Result::ok);
    if let Ok(mut map) = hub.inner.controls.0.lock() {
        map.remove(&req);
    }
    reply
}

/// Sends queued notices, many per round trip.
pub async fn notifier(hub: Hub, mut rx: mpsc::Receiver<Notice>) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 256).await > 0 {
        let mut by_channel: HashMap<&'static str, Vec<String>> = HashMap::new();
        for Notice::Payload { channel, json } in batch.drain(..) {
            by_channel.entry(channel).or_default().push(json);
        }
        for (channel, payloads) in by_channel {
            if let Err(e) = hub.store().notify(channel, &payloads).await {
                tracing::warn!(channel, error = %e, "cannot notify other replicas");
            }
        }
    }
}

/// Listens to the other replicas until shutdown; reconnects when the connection drops.
pub async fn listener(hub: Hub) {
    let mut stop = hub.stopping();
    loop {
        let mut listener = match hub
            .store()
            .listen(&[EVENTS, INBOX, CONTROL, CONTROL_REPLY])
            .await
        {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen to other replicas; retrying");
                tokio::select! {
                    _ = crate::stopped(&mut stop) => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        loop {
            tokio::select! {
                _ = crate::stopped(&mut stop) => return,
                n = listener.recv() => match n {
                    Ok(n) => handle(&hub, n.channel(), n.payload()).await,
                    Err(e) => {
                        tracing::warn!(error = %e, "replica listener lost; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}

async fn handle(hub: &Hub, channel: &str, payload: &str) {
    match channel {
        EVENTS => {
            let Ok(p) = serde_json::from_str::<EventPayload<'_>>(payload) else {
                return;
            };
            if p.r == hub.config().replica {
                return;
            }
            let Ok(tenant) = TenantId::new(p.t) else {
                return;
            };
            let channel = hub.fanout().tenant(&tenant);
            match p.m {
                Some(raw) => {
                    if let Ok(message) = serde_json::from_str::<HubMessage>(raw.get()) {
                        channel.publish_raw(&message, p.rooms, raw.get().to_owned());
                    }
                }
                None => reseed(hub, &tenant, &channel).await,
            }
        }
        INBOX => {
            let Ok(p) = serde_json::from_str::<InboxPayload>(payload) else {
                return;
            };
            let Ok(tenant) = TenantId::new(p.t) else {
                return;
            };
            let Some(rt) = hub.runtime(&tenant) else {
                return;
            };
            let after = rt.last_inbox.load(std::sync::atomic::Ordering::Relaxed);
            if p.id <= after {
                return;
            }
            match hub.store().webhooks_after(&tenant, after, 1000).await {
                Ok(items) => crate::ingest::replay(hub, &tenant, items).await,
                Err(e) => tracing::error!(%tenant, error = %e, "cannot read the inbox"),
            }
        }
        CONTROL => {
            let Ok(p) = serde_json::from_str::<ControlPayload>(payload) else {
                return;
            };
            let Ok(tenant) = TenantId::new(p.t) else {
                return;
            };
            let Some(rt) = hub.runtime(&tenant) else {
                return;
            };
            let hub = hub.clone();
            tokio::spawn(async move {
                let reply = crate::api::run_control(&rt.pbx, p.spec).await;
                let payload = ControlReplyPayload { req: p.req, reply };
                if let Ok(json) = serde_json::to_string(&payload) {
                    let _ = hub.store().notify(CONTROL_REPLY, &[json]).await;
                }
            });
        }
        CONTROL_REPLY => {
            let Ok(p) = serde_json::from_str::<ControlReplyPayload>(payload) else {
                return;
            };
            let waiter = hub
                .inner
                .controls
                .0
                .lock()
                .ok()
                .and_then(|mut m| m.remove(&p.req));
            if let Some(tx) = waiter {
                let _ = tx.send(p.reply);
            }
        }
        _ => {}
    }
}

/// On a replica that does not hold the tenant's PBX, fills the live-call table from the
/// database once (the calls that started before this replica listened).
pub async fn seed(hub: &Hub, tenant: &TenantId, channel: &TenantChannel) {
    if hub.holds(tenant) || !channel.needs_seed() {
        return;
    }
    reseed(hub, tenant, channel).await;
}

async fn reseed(hub: &Hub, tenant: &TenantId, channel: &TenantChannel) {
    let (calls, operators) = match (
        hub.store().live_calls(tenant).await,
        hub.store().operators(tenant).await,
    ) {
        (Ok(c), Ok(o)) => (c, o),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(%tenant, error = %e, "cannot read the live calls");
            return;
        }
    };
    let ids = crate::fanout::operator_ids(&operators);
    channel.replace_live(
        calls
            .into_iter()
            .map(|c| {
                let rooms = rooms_of(&c, |e| ids.get(e).copied());
                (c, rooms)
            })
            .collect(),
    );
}
