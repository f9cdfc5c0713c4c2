//! Realtime fan-out per tenant: the live calls and the presence board (for snapshots) and one
//! broadcast of pre-serialised messages per room, so a client wakes only for messages meant
//! for it (2,000 idle operators cost nothing per call). A client that falls behind a room's
//! buffer gets a fresh snapshot instead of the messages it missed (nothing is buffered per
//! client).
//!
//! Rooms (per tenant): `supervisors` (every message), `operator:{id}` (the calls that rang,
//! were answered, transferred or monitored by that operator's extension — the pop reaches an
//! operator when their phone rings) and `operators` (what every operator's board shows:
//! presence and the PBX status). Operators listen to `operators` and their own room;
//! supervisors and admins to `supervisors`. A message is put on each of its rooms' channels,
//! except that one for `operators` is not put on `operator:{id}` as well (no duplicates).

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

/// Operator ids by the names a call gives them: extension, and SIP address where it differs.
pub fn operator_ids(operators: &[calldesk_central::Operator]) -> HashMap<String, i64> {
    let mut ids = HashMap::with_capacity(operators.len());
    for o in operators {
        ids.insert(o.extension.to_string(), o.id);
        if let Some(sip) = &o.sip {
            ids.insert(sip.clone(), o.id);
        }
    }
    ids
}

/// The rooms of a call message: supervisors always, and each operator the call concerns.
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
    buffer: usize,
    supervisors: broadcast::Sender<Arc<Outbound>>,
    operators: broadcast::Sender<Arc<Outbound>>,
    per_operator: RwLock<HashMap<i64, broadcast::Sender<Arc<Outbound>>>>,
    live: RwLock<HashMap<String, LiveEntry>>,
    presence: RwLock<BTreeMap<String, PresenceView>>,
    seeded: std::sync::atomic::AtomicBool,
}

impl TenantChannel {
    fn new(buffer: usize) -> Self {
        let buffer = buffer.max(16);
        Self {
            buffer,
            supervisors: broadcast::channel(buffer).0,
            operators: broadcast::channel(buffer).0,
            per_operator: RwLock::new(HashMap::new()),
            live: RwLock::new(HashMap::new()),
            presence: RwLock::new(BTreeMap::new()),
            seeded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The channels a client in `rooms` listens to.
    pub fn subscribe(&self, rooms: &[Room]) -> Vec<broadcast::Receiver<Arc<Outbound>>> {
        if rooms.contains(&Room::Supervisors) {
            return vec![self.supervisors.subscribe()];
        }
        let mut out = Vec::new();
        for room in rooms {
            match room {
                Room::Operators => out.push(self.operators.subscribe()),
                Room::Operator(id) => out.push(self.operator_channel(*id).subscribe()),
                Room::Supervisors => {}
            }
        }
        out
    }

    fn operator_channel(&self, id: i64) -> broadcast::Sender<Arc<Outbound>> {
        if let Ok(map) = self.per_operator.read()
            && let Some(tx) = map.get(&id)
        {
            return tx.clone();
        }
        match self.per_operator.write() {
            Ok(mut map) => map
                .entry(id)
                .or_insert_with(|| broadcast::channel(self.buffer).0)
                .clone(),
            Err(_) => broadcast::channel(self.buffer).0,
        }
    }

    fn send(&self, out: &Arc<Outbound>) {
        // No receiver is fine: nobody in that room is connected here.
        if out.rooms.contains(&Room::Supervisors) {
            let _ = self.supervisors.send(out.clone());
        }
        let to_all_operators = out.rooms.contains(&Room::Operators);
        if to_all_operators {
            let _ = self.operators.send(out.clone());
        }
        for room in &out.rooms {
            if let Room::Operator(id) = room
                && !to_all_operators
                && let Ok(map) = self.per_operator.read()
                && let Some(tx) = map.get(id)
            {
                let _ = tx.send(out.clone());
            }
        }
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
        self.send(&out);
        out
    }

    fn bookkeep(&self, message: &HubMessage, rooms: &[Room]) -> Option<()> {
        match message {
            HubMessage::CallNew { call } | HubMessage::CallUpdated { call }
                if call.state == CallStateView::Ended =>
            {
                // An ended call changed afterwards (its recording was stored): never live again.
                self.live.write().ok()?.remove(&call.record.id);
            }
            HubMessage::CallNew { call } | HubMessage::CallUpdated { call } => {
                // One update may go out as `call-new` to the rooms that just joined and
                // `call-updated` to the others: the snapshot keeps the union.
                let mut live = self.live.write().ok()?;
                let entry = live
                    .entry(call.record.id.clone())
                    .or_insert_with(|| LiveEntry {
                        call: call.clone(),
                        rooms: Vec::new(),
                    });
                entry.call = call.clone();
                for room in rooms {
                    if !entry.rooms.contains(room) {
                        entry.rooms.push(*room);
                    }
                }
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

    /// Every live call with its rooms.
    pub fn live_entries(&self) -> Vec<(HubCall, Vec<Room>)> {
        self.live
            .read()
            .map(|live| {
                live.values()
                    .map(|e| (e.call.clone(), e.rooms.clone()))
                    .collect()
            })
            .unwrap_or_default()
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
    fn an_ended_call_sent_again_reaches_its_rooms_but_is_not_live() {
        let channel = TenantChannel::new(16);
        let mut sup = channel.subscribe(&[Room::Supervisors]);
        let live = call(vec![]);
        channel.publish(&HubMessage::CallNew { call: live }, vec![Room::Supervisors]);
        assert_eq!(channel.snapshot(&[Room::Supervisors]).0.len(), 1);
        let ended = call(vec![CallEventKind::Ended {
            cause: None,
            status: None,
        }]);
        assert_eq!(ended.state, CallStateView::Ended);
        // E.g. its recording was stored after the end.
        channel.publish(
            &HubMessage::CallUpdated { call: ended },
            vec![Room::Supervisors],
        );
        assert_eq!(channel.snapshot(&[Room::Supervisors]).0.len(), 0);
        assert!(sup[0].try_recv().is_ok());
        assert!(sup[0].try_recv().unwrap().json.contains("call-updated"));
    }

    #[test]
    fn calls_go_to_supervisors_and_the_operators_they_concern_and_nobody_else_wakes() {
        let ops = |ext: &str| match ext {
            "101" => Some(1),
            "102" => Some(2),
            _ => None,
        };
        let waiting = call(vec![]);
        assert_eq!(rooms_of(&waiting, ops), vec![Room::Supervisors]);
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
        let mut sup = channel.subscribe(&[Room::Supervisors]);
        let mut op2 = channel.subscribe(&[Room::Operators, Room::Operator(2)]);
        let mut op3 = channel.subscribe(&[Room::Operators, Room::Operator(3)]);
        channel.publish(
            &HubMessage::CallNew {
                call: answered.clone(),
            },
            rooms_of(&answered, ops),
        );
        let got = sup[0].try_recv().unwrap();
        assert!(got.visible_to(&[Room::Operators, Room::Operator(2)]));
        assert!(!got.visible_to(&[Room::Operators, Room::Operator(3)]));
        // Operator 2 gets it once, on their own room; operator 3 is not woken at all.
        assert!(op2[0].try_recv().is_err());
        assert_eq!(op2[1].try_recv().unwrap().json, got.json);
        assert!(op3.iter_mut().all(|rx| rx.try_recv().is_err()));
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
