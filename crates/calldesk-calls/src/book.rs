//! The live calls of one tenant.

use std::collections::{BTreeMap, HashSet, VecDeque};

use crate::call::{
    Call, CallEvent, CallEventKind, CallPhase, CallStatus, Direction, Monitor, Transfer,
};
use crate::ids::{CallId, TenantId};

/// How many ended call ids are remembered to drop late duplicates.
const REMEMBERED_ENDED: usize = 4096;

/// What an applied event did to a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateKind {
    New,
    Changed,
    Ended,
}

/// Emitted for every event that changed something; carries the call as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallUpdate {
    pub kind: UpdateKind,
    pub call: Call,
}

/// An event the book could not use. The book is unchanged; callers log it and go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Anomaly {
    #[error("event for call {0}, which was never started")]
    UnknownCall(CallId),
}

/// Live calls keyed by id; applies [`CallEvent`]s idempotently.
#[derive(Debug)]
pub struct CallBook {
    tenant: TenantId,
    live: BTreeMap<CallId, Call>,
    ended: HashSet<CallId>,
    ended_order: VecDeque<CallId>,
}

impl CallBook {
    pub fn new(tenant: TenantId) -> Self {
        Self {
            tenant,
            live: BTreeMap::new(),
            ended: HashSet::new(),
            ended_order: VecDeque::new(),
        }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn live(&self) -> impl Iterator<Item = &Call> {
        self.live.values()
    }

    /// The live calls whose ids `listed` lacks (after a PBX resync: calls the PBX no longer has).
    pub fn live_not_in(&self, listed: &[CallId]) -> Vec<CallId> {
        self.live
            .keys()
            .filter(|id| !listed.contains(id))
            .cloned()
            .collect()
    }

    pub fn get(&self, id: &CallId) -> Option<&Call> {
        self.live.get(id)
    }

    /// Applies one event. `Ok(None)` means it changed nothing (a duplicate, or late news about an
    /// ended call).
    pub fn apply(&mut self, event: &CallEvent) -> Result<Option<CallUpdate>, Anomaly> {
        if self.ended.contains(&event.call) {
            return Ok(None);
        }
        if let CallEventKind::Started {
            direction,
            from,
            to,
        } = &event.kind
        {
            if self.live.contains_key(&event.call) {
                return Ok(None);
            }
            let call = Call {
                id: event.call.clone(),
                tenant: self.tenant.clone(),
                direction: *direction,
                from: from.clone(),
                to: to.clone(),
                phase: CallPhase::Setup,
                status: None,
                rang: Vec::new(),
                answered_by: Vec::new(),
                started_at: event.at,
                answered_at: None,
                ended_at: None,
                hangup_cause: None,
                busy_seen: false,
                transfers: Vec::new(),
                monitors: Vec::new(),
                queue: None,
                recordings: Vec::new(),
                on_hold: false,
            };
            self.live.insert(event.call.clone(), call.clone());
            return Ok(Some(CallUpdate {
                kind: UpdateKind::New,
                call,
            }));
        }
        let call = self
            .live
            .get_mut(&event.call)
            .ok_or_else(|| Anomaly::UnknownCall(event.call.clone()))?;
        // Events may arrive slightly out of order; no time may lie before the start.
        let at = event.at.max(call.started_at);
        let changed = match &event.kind {
            CallEventKind::Started { .. } => false,
            CallEventKind::OperatorRinging { extension } => {
                let new = !call.rang.contains(extension);
                if new {
                    call.rang.push(extension.clone());
                }
                if call.phase == CallPhase::Setup {
                    call.phase = CallPhase::Ringing;
                    true
                } else {
                    new
                }
            }
            CallEventKind::Answered { extension } => {
                let mut changed = false;
                if call.answered_at.is_none() {
                    call.answered_at = Some(at);
                    call.phase = CallPhase::Talking;
                    changed = true;
                }
                if let Some(ext) = extension
                    && call.answered_by.last() != Some(ext)
                {
                    call.answered_by.push(ext.clone());
                    changed = true;
                }
                changed
            }
            CallEventKind::BusySignalled => !std::mem::replace(&mut call.busy_seen, true),
            CallEventKind::Transferred { kind, from, to } => {
                let transfer = Transfer {
                    kind: *kind,
                    from: from.clone(),
                    to: to.clone(),
                };
                let new = call.transfers.last() != Some(&transfer);
                if new {
                    call.transfers.push(transfer);
                }
                new
            }
            CallEventKind::HoldChanged { on } => std::mem::replace(&mut call.on_hold, *on) != *on,
            CallEventKind::RecordingStarted { file } => {
                let new = !call.recordings.contains(file);
                if new {
                    call.recordings.push(file.clone());
                }
                new
            }
            CallEventKind::MonitorStarted { supervisor, mode } => {
                let active = call
                    .monitors
                    .iter()
                    .any(|m| m.active && &m.supervisor == supervisor);
                if !active {
                    call.monitors.push(Monitor {
                        supervisor: supervisor.clone(),
                        mode: *mode,
                        active: true,
                    });
                }
                !active
            }
            CallEventKind::MonitorStopped { supervisor } => {
                match call
                    .monitors
                    .iter_mut()
                    .find(|m| m.active && &m.supervisor == supervisor)
                {
                    Some(m) => {
                        m.active = false;
                        true
                    }
                    None => false,
                }
            }
            CallEventKind::QueueJoined { queue } => {
                let new = call.queue.as_ref() != Some(queue);
                if new {
                    call.queue = Some(queue.clone());
                }
                new
            }
            CallEventKind::Revised(facts) => {
                let before = call.clone();
                call.direction = facts.direction;
                call.from = facts.from.clone();
                call.to = facts.to.clone();
                call.started_at = facts.started_at;
                call.rang = facts.rang.clone();
                call.answered_by = facts.answered_by.clone();
                call.answered_at = facts.answered_at;
                call.transfers = facts.transfers.clone();
                call.queue = facts.queue.clone();
                call.recordings = facts.recordings.clone();
                call.phase = if call.answered_at.is_some() {
                    CallPhase::Talking
                } else if call.rang.is_empty() {
                    CallPhase::Setup
                } else {
                    CallPhase::Ringing
                };
                *call != before
            }
            CallEventKind::Ended { cause, status } => {
                call.ended_at = Some(at);
                call.phase = CallPhase::Ended;
                call.hangup_cause = cause.clone();
                call.on_hold = false;
                for m in &mut call.monitors {
                    m.active = false;
                }
                call.status = Some(status.unwrap_or_else(|| derive_status(call)));
                return Ok(self.finish(&event.call));
            }
        };
        Ok(changed.then(|| CallUpdate {
            kind: UpdateKind::Changed,
            call: call.clone(),
        }))
    }

    fn finish(&mut self, id: &CallId) -> Option<CallUpdate> {
        let call = self.live.remove(id)?;
        if self.ended_order.len() == REMEMBERED_ENDED
            && let Some(old) = self.ended_order.pop_front()
        {
            self.ended.remove(&old);
        }
        self.ended.insert(id.clone());
        self.ended_order.push_back(id.clone());
        Some(CallUpdate {
            kind: UpdateKind::Ended,
            call,
        })
    }
}

fn derive_status(call: &Call) -> CallStatus {
    if call.answered_at.is_some() {
        CallStatus::Answered
    } else if call.busy_seen {
        CallStatus::Busy
    } else if call.direction == Direction::Inbound {
        CallStatus::Missed
    } else {
        CallStatus::NoAnswer
    }
}
