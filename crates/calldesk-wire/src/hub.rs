//! The hub's messages: the call as the hub's REST API and WebSocket show it ([`HubCall`]), and
//! the WebSocket protocol ([`HubMessage`], versioned by [`HUB_PROTOCOL`]). snake_case fields,
//! like the `calldesk ami replay` record this extends; message `type`s are kebab-case.

use calldesk_calls::{Call, CallPhase, CallStatus, Direction, PartyMemo, PresenceEvent, Timestamp};
use serde::{Deserialize, Serialize};

use crate::{
    CallRecord, CallStateView, CallView, ConnectionState, DirectionView, MonitorRecord,
    MonitorView, PartyView,
};

/// Version of the hub WebSocket protocol; the `hello` message carries it. Bumped on an
/// incompatible change; additions (new optional fields, new message types a client ignores) are
/// compatible.
pub const HUB_PROTOCOL: u32 = 1;

/// Who the caller is, found by the caller's number in the tenant's contacts and companies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallerCard {
    /// The number that was looked up (E.164).
    pub number: String,
    pub contact: Option<CardRef>,
    pub company: Option<CardRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardRef {
    pub id: i64,
    pub name: String,
}

/// A note an operator wrote on a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteView {
    /// Client-generated UUID: re-sending the same note changes nothing.
    pub id: String,
    pub call_id: String,
    /// The author's login.
    pub author: Option<String>,
    pub text: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// Where a recording of the call is: `stored` (a link can be had), `pending` (not stored yet;
/// `error` says why the last try failed) or `failed` (many tries failed; still retried).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStatus {
    /// As the PBX names it (the MixMonitor file, Mango's recording id).
    pub name: String,
    pub state: String,
    #[serde(default)]
    pub error: Option<String>,
}

/// How the call was closed (a code from the call centre's list, e.g. `sale`, `callback`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DispositionView {
    pub code: String,
    pub set_by: Option<String>,
    /// RFC 3339 UTC.
    pub set_at: String,
}

/// A call as the hub serves it: the replay record plus the live state, the tenant, the caller
/// card, notes and disposition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubCall {
    #[serde(flatten)]
    pub record: CallRecord,
    pub tenant: String,
    pub state: CallStateView,
    /// The extension ringing or talking now (the last one when ended).
    pub operator: Option<String>,
    /// Every extension whose phone rang, in order.
    pub rang: Vec<String>,
    pub on_hold: bool,
    /// Supervisors monitoring the call now (the record's `monitors` lists every one there was).
    #[serde(default)]
    pub monitoring: Vec<MonitorRecord>,
    pub caller: Option<CallerCard>,
    pub notes: Vec<NoteView>,
    pub disposition: Option<DispositionView>,
    /// The call's tags (normalised, sorted); absent from hubs before tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Where the call's recordings are (the hub's store); absent from hubs before recordings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recording_states: Vec<RecordingStatus>,
}

impl HubCall {
    /// The hub's view of `call` (no caller card, notes or disposition yet).
    pub fn new(call: &Call) -> Self {
        Self {
            record: CallRecord::new(call, true),
            tenant: call.tenant.to_string(),
            state: state_of(call.phase),
            operator: call.operator().map(|e| e.to_string()),
            rang: call.rang.iter().map(|e| e.to_string()).collect(),
            on_hold: call.on_hold,
            monitoring: call
                .monitors
                .iter()
                .filter(|m| m.active)
                .map(|m| MonitorRecord {
                    by: m.supervisor.to_string(),
                    mode: m.mode.map(|m| m.as_str().to_owned()),
                })
                .collect(),
            caller: None,
            notes: Vec::new(),
            disposition: None,
            tags: Vec::new(),
            recording_states: Vec::new(),
        }
    }

    /// The call as the desktop UI shows it (the desktop's Hub profile). The parties are read
    /// from the record as presented (E.164 where a number) with `parties`; the caller card's
    /// contact (else company) names the party whose number it is. Times the record lacks or
    /// that do not parse read as 0 / none.
    pub fn view(&self, parties: &mut PartyMemo) -> CallView {
        let r = &self.record;
        let card_name = self.caller.as_ref().and_then(|card| {
            let name = card.contact.as_ref().or(card.company.as_ref())?;
            Some((card.number.as_str(), name.name.clone()))
        });
        let mut party = |raw: &str| {
            let mut view = PartyView::from(&parties.party(raw));
            if let Some((number, name)) = &card_name
                && view.e164.as_deref() == Some(*number)
            {
                view.name = Some(name.clone());
            }
            view
        };
        let time = |t: &Option<String>| {
            t.as_deref()
                .and_then(Timestamp::parse_rfc3339)
                .map(Timestamp::unix_millis)
        };
        CallView {
            id: r.id.clone(),
            direction: Direction::from_name(&r.direction)
                .map_or(DirectionView::Internal, Into::into),
            from: party(&r.from),
            to: party(&r.to),
            state: self.state,
            status: r
                .status
                .as_deref()
                .and_then(CallStatus::from_name)
                .map(Into::into),
            operator: self.operator.clone(),
            started_at: time(&r.started_at).unwrap_or(0),
            answered_at: time(&r.answered_at),
            ended_at: time(&r.ended_at),
            ring_seconds: r.ring_secs,
            talk_seconds: r.talk_secs,
            hangup_cause: r
                .hangup_cause
                .as_ref()
                .map(|h| crate::cause_text(h.code, &h.text)),
            company: self
                .caller
                .as_ref()
                .and_then(|card| card.company.as_ref())
                .map(|c| c.name.clone()),
            queue: r.queue.clone(),
            on_hold: self.on_hold,
            rang: self.rang.clone(),
            monitors: self
                .monitoring
                .iter()
                .map(|m| MonitorView {
                    by: m.by.clone(),
                    mode: m.mode.clone(),
                })
                .collect(),
            event_at: None,
            recordings: self.recording_states.clone(),
        }
    }

    /// Every extension this call concerns (rang, answered, transferred from, monitoring).
    pub fn extensions(&self) -> impl Iterator<Item = &str> {
        self.rang
            .iter()
            .chain(&self.record.answered_by)
            .chain(self.operator.iter())
            .chain(self.record.transfers.iter().filter_map(|t| t.from.as_ref()))
            .chain(self.record.monitors.iter().map(|m| &m.by))
            .map(String::as_str)
    }
}

pub(crate) fn state_of(phase: CallPhase) -> CallStateView {
    // A call still in setup (IVR, queue) is shown as ringing: the customer is waiting.
    match phase {
        CallPhase::Setup | CallPhase::Ringing => CallStateView::Ringing,
        CallPhase::Talking => CallStateView::Talking,
        CallPhase::Ended => CallStateView::Ended,
    }
}

/// An operator's phone or queue membership, for the supervisor board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceView {
    pub extension: String,
    /// `idle`, `in_use`, `busy`, `ringing`, `ring_in_use`, `on_hold`, `unavailable`,
    /// `unknown`; `null` for a queue-membership change.
    pub device: Option<String>,
    pub queue: Option<String>,
    pub paused: Option<bool>,
    pub reason: Option<String>,
}

impl From<&PresenceEvent> for PresenceView {
    fn from(p: &PresenceEvent) -> Self {
        match p {
            PresenceEvent::Device { extension, state } => Self {
                extension: extension.to_string(),
                device: Some(state.as_str().to_owned()),
                queue: None,
                paused: None,
                reason: None,
            },
            PresenceEvent::QueueMember {
                extension,
                queue,
                paused,
                reason,
            } => Self {
                extension: extension.to_string(),
                device: None,
                queue: Some(queue.clone()),
                paused: Some(*paused),
                reason: reason.clone(),
            },
        }
    }
}

/// Why a snapshot was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotReason {
    /// The first message after `hello`.
    Connect,
    /// The client read too slowly and missed messages: this replaces everything it had.
    Lagged,
}

/// The hub → desktop WebSocket messages, one JSON text frame each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum HubMessage {
    Hello {
        protocol: u32,
        tenant: String,
        operator_id: i64,
        role: String,
        extension: Option<String>,
    },
    /// The live calls this client may see and the presence board; replaces all earlier state.
    Snapshot {
        reason: SnapshotReason,
        calls: Vec<HubCall>,
        presence: Vec<PresenceView>,
    },
    CallNew {
        call: HubCall,
    },
    CallUpdated {
        call: HubCall,
    },
    CallEnded {
        call: HubCall,
    },
    Presence {
        presence: PresenceView,
    },
    /// The tenant's PBX connection changed state.
    PbxStatus {
        state: ConnectionState,
        detail: Option<String>,
    },
    /// Someone claimed, gave back or closed the worklist item of `number`: read
    /// `/api/callbacks` again. Desks older than this message skip it (and poll).
    CallbacksChanged {
        number: String,
    },
    /// A desk's changes (notes, dispositions, tags, reported calls) reached the hub: pull
    /// `/api/sync/pull`. Desks older than this message skip it (and pull on their timer).
    SyncChanged {},
}

#[cfg(test)]
mod tests {
    use super::*;
    use calldesk_calls::{CallEventKind, Extension};

    #[test]
    fn hub_call_extends_the_replay_record_and_messages_are_tagged() {
        let ringing = crate::test_calls::inbound(
            "acme",
            "0367",
            vec![(
                1_500,
                CallEventKind::OperatorRinging {
                    extension: Extension::new("101").unwrap(),
                },
            )],
        );
        let mut call = HubCall::new(&ringing);
        call.caller = Some(CallerCard {
            number: "+74951234567".into(),
            contact: Some(CardRef {
                id: 7,
                name: "Ivan Petrov".into(),
            }),
            company: Some(CardRef {
                id: 3,
                name: "Horns and Hooves".into(),
            }),
        });
        let json = serde_json::to_value(HubMessage::CallNew { call: call.clone() }).unwrap();
        assert_eq!(json["type"], "call-new");
        assert_eq!(json["call"]["id"], "1795259787.0");
        assert_eq!(json["call"]["tenant"], "acme");
        assert_eq!(json["call"]["from"], "+74951234567");
        assert_eq!(json["call"]["state"], "ringing");
        assert_eq!(json["call"]["status"], serde_json::Value::Null);
        assert_eq!(json["call"]["rang"], serde_json::json!(["101"]));
        assert_eq!(json["call"]["started_at"], "1970-01-01T00:00:01.000Z");
        assert_eq!(json["call"]["caller"]["contact"]["name"], "Ivan Petrov");
        assert_eq!(call.extensions().collect::<Vec<_>>(), ["101", "101"]);
        // The desktop's view of the hub's call is the view of the call itself, plus the name.
        let mut parties = PartyMemo::new(calldesk_calls::NumberPlan::new("RU").unwrap(), 16);
        let mut expected = CallView::from(&ringing);
        expected.from.name = Some("Ivan Petrov".into());
        expected.company = Some("Horns and Hooves".into());
        assert_eq!(expected.rang, ["101"]);
        assert_eq!(call.view(&mut parties), expected);

        let ended = crate::test_calls::inbound(
            "acme",
            "0367",
            vec![
                (
                    3_000,
                    CallEventKind::Answered {
                        extension: Some(Extension::new("101").unwrap()),
                    },
                ),
                (
                    9_500,
                    CallEventKind::Ended {
                        cause: Some(calldesk_calls::HangupCause {
                            code: 16,
                            text: "Normal Clearing".into(),
                        }),
                        status: None,
                    },
                ),
            ],
        );
        let view = HubCall::new(&ended).view(&mut parties);
        assert_eq!(view, CallView::from(&ended), "no card: no name");
        assert_eq!(
            (view.status, view.answered_at, view.ended_at),
            (
                Some(crate::CallStatusView::Answered),
                Some(3_000),
                Some(9_500)
            )
        );
        let back: HubMessage = serde_json::from_value(json).unwrap();
        assert_eq!(back, HubMessage::CallNew { call });
        let snap = serde_json::to_string(&HubMessage::Snapshot {
            reason: SnapshotReason::Lagged,
            calls: vec![],
            presence: vec![],
        })
        .unwrap();
        assert_eq!(
            snap,
            r#"{"type":"snapshot","reason":"lagged","calls":[],"presence":[]}"#
        );
    }
}
