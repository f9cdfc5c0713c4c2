//! Realtime fan-out per tenant: the live calls and the presence board (for snapshots) and a
//! broadcast of pre-serialised messages with their rooms. A WebSocket client reads the
//! broadcast and keeps what its rooms allow; a client that falls behind the broadcast's buffer
//! gets a fresh snapshot instead of the messages it missed (nothing is buffered per client).
//!
//! Rooms (per tenant): `supervisors` (every message), `operator:{id}` (calls that rang, were
//! answered, transferred or monitored by that operator's extension) and `operators` (inbound
//! calls still waiting for an operator: IVR, queue — the pop everyone may take; presence).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use calldesk_calls::TenantId;
use calldesk_wire::{CallStateView, HubCall, HubMessage, PresenceView};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Where a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Room {
    Operators,
    Operator(i64),
    Supervisors,
}

impl std::fmt::Display for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Operators => f.write_str("operators"),
            Self::Operator(id) => write!(f, "operator:{id}"),
            Self::Supervisors => f.write_str("supervisors"),
        }
    }
}

/// A message, serialised once, with its rooms.
#[derive(Debug)]
pub struct Outbound {
    pub rooms: Vec<Room>,
    pub json: String,
}

impl Outbound {
    pub fn visible_to(&self, rooms: &[Room]) -> bool {
        self.rooms.iter().any(|r| rooms.contains(r))
    }
}

/// The rooms of a call message: supervisors always; each operator the call concerns; all
/// operators while an inbound call waits for someone.
pub fn rooms_of(call: &HubCall, operator_of: impl Fn(&str) -> Option<i64>) -> Vec<Room> {
    let mut rooms = vec![Room::Supervisors];
    for ext in call.extensions() {
        if let Some(id) = operator_of(ext) {
            let room = Room::Operator(id);
            if !rooms.contains(&room) {
                rooms.push(room);
            }
        }
    }
    let waiting = call.record.direction == "inbound"
        && call.state == CallStateView::Ringing
        && call.record.answered_by.is_empty();
    if waiting {
        rooms.push(Room::Operators);
    }
    rooms
}

#[derive(Debug, Clone)]
struct LiveEntry {
    call: HubCall,
    rooms: Vec<Room>,
}

/// One tenant's realtime state.
#[derive(Debug)]
pub struct TenantChannel {
    tx: broadcast::Sender<Arc<Outbound>>,
    live: RwLock<HashMap<String, LiveEntry>>,
    presence: RwLock<BTreeMap<String, PresenceView>>,
    seeded: std::sync::atomic::AtomicBool,
}

impl TenantChannel {
    fn new(buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(buffer.max(16));
        Self {
            tx,
            live: RwLock::new(HashMap::new()),
            presence: RwLock::new(BTreeMap::new()),
            seeded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Outbound>> {
        self.tx.subscribe()
    }

    pub fn receivers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Publishes a message (keeping the live calls and presence up to date for snapshots).
    /// Returns the serialised form (for other replicas).
    pub fn publish(&self, message: &HubMessage, rooms: Vec<Room>) -> Option<Arc<Outbound>> {
        let json = match serde_json::to_string(message) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "a hub message did not serialise");
                return None;
            }
        };
        Some(self.publish_raw(message, rooms, json))
    }

    /// Publishes a message whose JSON is `json` (serialised here or by another replica).
    pub fn publish_raw(
        &self,
        message: &HubMessage,
        rooms: Vec<Room>,
        json: String,
    ) -> Arc<Outbound> {
        if self.bookkeep(message, &rooms).is_none() {
            tracing::error!("the live-call table was poisoned by a panic");
        }
        let out = Arc::new(Outbound { rooms, json });
        // No receiver is fine: nobody of this tenant is connected here.
        let _ = self.tx.send(out.clone());
        out
    }

    fn bookkeep(&self, message: &HubMessage, rooms: &[Room]) -> Option<()> {
        match message {
            HubMessage::CallNew { call } | HubMessage::CallUpdated { call } => {
                self.live.write().ok()?.insert(
                    call.record.id.clone(),
                    LiveEntry {
                        call: call.clone(),
                        rooms: rooms.to_vec(),
                    },
                );
            }
            HubMessage::CallEnded { call } => {
                self.live.write().ok()?.remove(&call.record.id);
            }
            HubMessage::Presence { presence } => {
                let key = match &presence.queue {
                    Some(q) => format!("{}@{q}", presence.extension),
                    None => presence.extension.clone(),
                };
                self.presence.write().ok()?.insert(key, presence.clone());
            }
            _ => {}
        }
        Some(())
    }

    /// The live calls a client in `rooms` may see (newest first) and the presence board.
    pub fn snapshot(&self, rooms: &[Room]) -> (Vec<HubCall>, Vec<PresenceView>) {
        let mut calls: Vec<HubCall> = self
            .live
            .read()
            .map(|live| {
                live.values()
                    .filter(|e| e.rooms.iter().any(|r| rooms.contains(r)))
                    .map(|e| e.call.clone())
                    .collect()
            })
            .unwrap_or_default();
        calls.sort_by(|a, b| b.record.started_at.cmp(&a.record.started_at));
        let presence = self
            .presence
            .read()
            .map(|p| p.values().cloned().collect())
            .unwrap_or_default();
        (calls, presence)
    }

    /// The live call with this id, if this replica knows it.
    pub fn live_call(&self, id: &str) -> Option<HubCall> {
        self.live.read().ok()?.get(id).map(|e| e.call.clone())
    }

    /// The live call an extension is in (talking, else ringing), for the machine API's monitor.
    pub fn call_of_extension(&self, ext: &str) -> Option<HubCall> {
        let live = self.live.read().ok()?;
        let mut best: Option<&HubCall> = None;
        for e in live.values() {
            let c = &e.call;
            if c.operator.as_deref() == Some(ext) {
                let talking = c.state == CallStateView::Talking;
                if talking || best.is_none() {
                    best = Some(c);
                }
            }
        }
        best.cloned()
    }

    /// Whether the live-call table still has to be read from the database (first use on a
    /// replica that does not hold the tenant). True once.
    pub fn needs_seed(&self) -> bool {
        !self.seeded.swap(true, std::sync::atomic::Ordering::AcqRel)
    }

    /// Replaces the live calls (read from the database).
    pub fn replace_live(&self, calls: Vec<(HubCall, Vec<Room>)>) {
        if let Ok(mut live) = self.live.write() {
            *live = calls
                .into_iter()
                .map(|(call, rooms)| (call.record.id.clone(), LiveEntry { call, rooms }))
                .collect();
        }
    }
}

/// Every tenant's channel, created on first use.
#[derive(Debug)]
pub struct Fanout {
    buffer: usize,
    tenants: RwLock<HashMap<TenantId, Arc<TenantChannel>>>,
}

impl Fanout {
    pub fn new(buffer: usize) -> Self {
        Self {
            buffer,
            tenants: RwLock::new(HashMap::new()),
        }
    }

    pub fn tenant(&self, id: &TenantId) -> Arc<TenantChannel> {
        if let Ok(map) = self.tenants.read()
            && let Some(ch) = map.get(id)
        {
            return ch.clone();
        }
        match self.tenants.write() {
            Ok(mut map) => map
                .entry(id.clone())
                .or_insert_with(|| Arc::new(TenantChannel::new(self.buffer)))
                .clone(),
            Err(_) => Arc::new(TenantChannel::new(self.buffer)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calldesk_calls::{
        CallBook, CallEvent, CallEventKind, CallId, Direction, Extension, NumberPlan, Timestamp,
    };

    fn call(events: Vec<CallEventKind>) -> HubCall {
        let plan = NumberPlan::new("RU").unwrap();
        let mut book = CallBook::new(TenantId::new("acme").unwrap());
        let id = CallId::new("c1").unwrap();
        let mut last = None;
        let start = CallEventKind::Started {
            direction: Direction::Inbound,
            from: plan.party("+74951234567"),
            to: plan.party("0367"),
        };
        for (i, kind) in std::iter::once(start).chain(events).enumerate() {
            if let Some(u) = book
                .apply(&CallEvent {
                    call: id.clone(),
                    at: Timestamp::from_unix_millis(1000 * i as i64),
                    kind,
                })
                .unwrap()
            {
                last = Some(u.call);
            }
        }
        HubCall::new(&last.unwrap())
    }

    #[test]
    fn waiting_calls_go_to_all_operators_then_only_to_the_one_who_answered() {
        let ops = |ext: &str| match ext {
            "101" => Some(1),
            "102" => Some(2),
            _ => None,
        };
        let waiting = call(vec![]);
        assert_eq!(
            rooms_of(&waiting, ops),
            vec![Room::Supervisors, Room::Operators]
        );
        let ext = |e: &str| Extension::new(e).unwrap();
        let answered = call(vec![
            CallEventKind::OperatorRinging {
                extension: ext("101"),
            },
            CallEventKind::OperatorRinging {
                extension: ext("102"),
            },
            CallEventKind::Answered {
                extension: Some(ext("102")),
            },
        ]);
        assert_eq!(
            rooms_of(&answered, ops),
            vec![Room::Supervisors, Room::Operator(1), Room::Operator(2)]
        );

        let channel = TenantChannel::new(16);
        let mut rx = channel.subscribe();
        channel.publish(
            &HubMessage::CallNew {
                call: answered.clone(),
            },
            rooms_of(&answered, ops),
        );
        let got = rx.try_recv().unwrap();
        assert!(got.visible_to(&[Room::Operators, Room::Operator(2)]));
        assert!(!got.visible_to(&[Room::Operators, Room::Operator(3)]));
        assert_eq!(channel.snapshot(&[Room::Operator(3)]).0.len(), 0);
        assert_eq!(channel.snapshot(&[Room::Supervisors]).0.len(), 1);
        assert_eq!(
            channel.call_of_extension("102").map(|c| c.record.id),
            Some("c1".to_owned())
        );
        channel.publish(
            &HubMessage::CallEnded { call: answered },
            vec![Room::Supervisors],
        );
        assert_eq!(channel.snapshot(&[Room::Supervisors]).0.len(), 0);
    }
}
