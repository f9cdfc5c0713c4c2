//! calldesk wire types (layer 0: pure serde DTOs, no IO).
//!
//! The domain types in `calldesk-calls` stay plain; these are their serialisable views at the
//! boundaries: Tauri events and commands (the UI's `CallView`), and later the hub ↔ desktop
//! WebSocket protocol. Field names are camelCase and enum values snake_case, exactly as the UI's
//! `ui/src/lib/backend.ts` declares them — change both together.
//!
//! [`CallRecord`] is the finished-call record `calldesk ami replay` prints (snake_case).
//!
//! Invariant: a view is derived from a domain value by `From` (a hub call by
//! [`HubCall::view`], which reads its parties through the caller's `PartyMemo`); nothing here
//! holds state.
//! Tested by JSON round-trip tests below, which pin the JSON shape the UI relies on.

use calldesk_calls::{Call, CallStatus, Direction, Party};
use serde::{Deserialize, Serialize};

mod control;
mod dispositions;
mod hub;
mod record;
mod sync;
mod worklist;

pub use control::{ControlReply, ControlSpec, extension};
pub use dispositions::{
    DEFAULT_DISPOSITIONS, MAX_DISPOSITIONS, default_dispositions, disposition_code,
    disposition_list,
};
pub use hub::{
    CallerCard, CardRef, DispositionView, HUB_PROTOCOL, HubCall, HubMessage, NoteView,
    PresenceView, RecordingStatus, SnapshotReason,
};
pub use record::{CallRecord, HangupCauseRecord, MonitorRecord, TransferRecord};
pub use sync::{
    CallbackAction, ChangeKind, MAX_PULL, MAX_PUSH, SyncChange, SyncOutcome, SyncPage, SyncPush,
    SyncPushReply, SyncResult,
};
pub use worklist::{
    CallbackItem, CallbackOutcome, CallbackView, MAX_TAG_CHARS, MAX_TAGS, normalize_tags,
};

/// Version of the messages in this crate; bumped on an incompatible change.
pub const WIRE_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DirectionView {
    Inbound,
    Outbound,
    Internal,
}

impl DirectionView {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Internal => "internal",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStateView {
    Ringing,
    Talking,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatusView {
    Answered,
    Missed,
    NoAnswer,
    Busy,
    Failed,
    Cancelled,
}

impl CallStatusView {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Answered => "answered",
            Self::Missed => "missed",
            Self::NoAnswer => "no_answer",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartyView {
    pub raw: String,
    pub e164: Option<String>,
    pub display: String,
    pub name: Option<String>,
}

/// A call as the UI shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallView {
    pub id: String,
    pub direction: DirectionView,
    pub from: PartyView,
    pub to: PartyView,
    pub state: CallStateView,
    pub status: Option<CallStatusView>,
    /// The extension ringing or talking.
    pub operator: Option<String>,
    /// Unix milliseconds.
    pub started_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub ring_seconds: Option<i64>,
    pub talk_seconds: Option<i64>,
    pub hangup_cause: Option<String>,
    /// The caller's company, when the caller card found one (hub profile).
    #[serde(default)]
    pub company: Option<String>,
    /// The queue the call came through.
    #[serde(default)]
    pub queue: Option<String>,
    #[serde(default)]
    pub on_hold: bool,
    /// Every extension whose phone rang, in order (a pop is for these operators).
    #[serde(default)]
    pub rang: Vec<String>,
    /// Supervisors monitoring the call now.
    #[serde(default)]
    pub monitors: Vec<MonitorView>,
    /// When the PBX event behind this update reached the app (unix ms; the app's own PBX
    /// session only): the start of the pop latency the UI measures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_at: Option<i64>,
    /// The call's recordings and where they are (`stored` ones can be played; Hub
    /// profile only, the hub's recording store).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recordings: Vec<hub::RecordingStatus>,
}

/// A supervisor listening to, whispering to or barging into a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MonitorView {
    /// The supervisor's extension.
    pub by: String,
    /// `listen`, `whisper` or `barge`, when known.
    pub mode: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionState {
    Connecting,
    /// Logged in; reading the PBX's live channels before going live.
    Resyncing,
    Connected,
    /// Connected, but the live view may be incomplete for a moment (events were dropped or a
    /// resync list was refused); it heals by itself.
    Degraded,
    Reconnecting,
    Disconnected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    Demo,
    Direct,
    Hub,
}

/// The PBX/hub connection as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStatus {
    pub state: ConnectionState,
    pub profile: ProfileKind,
    /// Human-readable detail: the address, or what went wrong and what to do.
    pub detail: Option<String>,
}

/// The desk's sync with the hub as the status bar shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatusView {
    pub state: SyncState,
    /// Changes made on this desk that the hub does not have yet.
    pub pending: u64,
    /// Changes the hub refused for good (each with its reason in the outbox).
    pub refused: u64,
    /// Progress of the push under way: changes sent of `total`.
    pub done: u64,
    pub total: u64,
    /// When the last sync round finished (unix ms).
    pub last_synced_at: Option<i64>,
    /// What went wrong in the last round and what to do.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// This profile does not sync (Demo, Direct without a hub).
    #[default]
    Off,
    /// Everything is with the hub.
    Idle,
    /// Pushing or pulling now.
    Syncing,
    /// The hub cannot be reached; changes wait here and are sent when it is back.
    Offline,
}

/// A note on a call as the desktop shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallNote {
    /// Client-generated UUID: saving the same note twice keeps one.
    pub id: String,
    pub text: String,
    /// The author's login (hub), none on this desk's own notes.
    pub author: Option<String>,
    /// Unix ms.
    pub created_at: i64,
}

/// The after-call work on a call: its notes (oldest first), disposition code and tags
/// (normalised, sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AfterCall {
    pub notes: Vec<CallNote>,
    pub disposition: Option<String>,
    pub tags: Vec<String>,
}

impl From<&NoteView> for CallNote {
    fn from(n: &NoteView) -> Self {
        Self {
            id: n.id.clone(),
            text: n.text.clone(),
            author: n.author.clone(),
            created_at: calldesk_calls::Timestamp::parse_rfc3339(&n.created_at)
                .map_or(0, calldesk_calls::Timestamp::unix_millis),
        }
    }
}

/// Who the app acts as: the hub's operator (Hub profile) or the seat the profile names
/// (Direct, Demo). The UI pops calls ringing at `extension` and shows the supervisor view when
/// `supervisor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub profile: ProfileKind,
    pub tenant: Option<String>,
    pub login: Option<String>,
    pub name: Option<String>,
    pub extension: Option<String>,
    pub supervisor: bool,
}

/// What the current PBX connection can do; the UI disables the rest with a reason. Reads the
/// hub's `/api/me` (snake_case) too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CapabilitiesView {
    pub originate: bool,
    pub hangup: bool,
    #[serde(alias = "blind_transfer")]
    pub blind_transfer: bool,
    #[serde(alias = "attended_transfer")]
    pub attended_transfer: bool,
    pub hold: bool,
    pub record: bool,
    pub monitor: bool,
    /// Absent from hubs older than touch tones: off.
    #[serde(default)]
    pub dtmf: bool,
    #[serde(alias = "queue_pause")]
    pub queue_pause: bool,
}

impl From<calldesk_calls::Capabilities> for CapabilitiesView {
    fn from(c: calldesk_calls::Capabilities) -> Self {
        Self {
            originate: c.originate,
            hangup: c.hangup,
            blind_transfer: c.blind_transfer,
            attended_transfer: c.attended_transfer,
            hold: c.hold,
            record: c.record,
            monitor: c.monitor,
            dtmf: c.dtmf,
            queue_pause: c.queue_pause,
        }
    }
}

impl From<CapabilitiesView> for calldesk_calls::Capabilities {
    fn from(c: CapabilitiesView) -> Self {
        Self {
            originate: c.originate,
            hangup: c.hangup,
            blind_transfer: c.blind_transfer,
            attended_transfer: c.attended_transfer,
            hold: c.hold,
            record: c.record,
            monitor: c.monitor,
            dtmf: c.dtmf,
            queue_pause: c.queue_pause,
        }
    }
}

impl From<&Party> for PartyView {
    fn from(p: &Party) -> Self {
        Self {
            raw: p.raw.clone(),
            e164: p.number.as_ref().map(|n| n.e164().to_owned()),
            display: p.display(),
            name: p.name.clone(),
        }
    }
}

impl From<CallStatus> for CallStatusView {
    fn from(s: CallStatus) -> Self {
        match s {
            CallStatus::Answered => Self::Answered,
            CallStatus::Missed => Self::Missed,
            CallStatus::NoAnswer => Self::NoAnswer,
            CallStatus::Busy => Self::Busy,
            CallStatus::Failed => Self::Failed,
            CallStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<Direction> for DirectionView {
    fn from(d: Direction) -> Self {
        match d {
            Direction::Inbound => Self::Inbound,
            Direction::Outbound => Self::Outbound,
            Direction::Internal => Self::Internal,
        }
    }
}

impl From<&Call> for CallView {
    fn from(c: &Call) -> Self {
        Self {
            id: c.id.to_string(),
            direction: c.direction.into(),
            from: (&c.from).into(),
            to: (&c.to).into(),
            state: hub::state_of(c.phase),
            status: c.status.map(Into::into),
            operator: c.operator().map(|e| e.to_string()),
            started_at: c.started_at.unix_millis(),
            answered_at: c.answered_at.map(|t| t.unix_millis()),
            ended_at: c.ended_at.map(|t| t.unix_millis()),
            ring_seconds: c.ring_seconds(),
            talk_seconds: c.talk_seconds(),
            hangup_cause: c.hangup_cause.as_ref().map(|h| cause_text(h.code, &h.text)),
            company: None,
            queue: c.queue.clone(),
            on_hold: c.on_hold,
            rang: c.rang.iter().map(ToString::to_string).collect(),
            monitors: c
                .monitors
                .iter()
                .filter(|m| m.active)
                .map(|m| MonitorView {
                    by: m.supervisor.to_string(),
                    mode: m.mode.map(|m| m.as_str().to_owned()),
                })
                .collect(),
            event_at: None,
            recordings: Vec::new(),
        }
    }
}

/// A hangup cause as the UI shows it: `16 Normal Clearing` (just the code without a text).
pub(crate) fn cause_text(code: u16, text: &str) -> String {
    format!("{code} {text}").trim_end().to_owned()
}

/// Calls for the tests of this crate.
#[cfg(test)]
pub(crate) mod test_calls {
    use calldesk_calls::{
        Call, CallBook, CallEvent, CallEventKind, CallId, Direction, NumberPlan, TenantId,
        Timestamp,
    };

    /// Call `1795259787.0` of `tenant`: inbound from +74951234567 to `to` at 1 s, then each of
    /// `then` at its millisecond; the call as the last event left it.
    pub fn inbound(tenant: &str, to: &str, then: Vec<(i64, CallEventKind)>) -> Call {
        let plan = NumberPlan::new("RU").unwrap();
        let mut book = CallBook::new(TenantId::new(tenant).unwrap());
        let call = CallId::new("1795259787.0").unwrap();
        let start = CallEventKind::Started {
            direction: Direction::Inbound,
            from: plan.party("+74951234567"),
            to: plan.party(to),
        };
        let mut last = None;
        for (ms, kind) in std::iter::once((1_000, start)).chain(then) {
            let event = CallEvent {
                call: call.clone(),
                at: Timestamp::from_unix_millis(ms),
                kind,
            };
            if let Some(update) = book.apply(&event).unwrap() {
                last = Some(update.call);
            }
        }
        last.unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calldesk_calls::{CallEventKind, Extension, HangupCause};

    #[test]
    fn the_sync_status_is_the_json_backend_ts_declares() {
        let status = SyncStatusView {
            state: SyncState::Offline,
            pending: 12,
            refused: 1,
            done: 0,
            total: 0,
            last_synced_at: Some(1_700_000_000_000),
            error: Some("the hub cannot be reached".into()),
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            serde_json::json!({
                "state": "offline", "pending": 12, "refused": 1, "done": 0, "total": 0,
                "lastSyncedAt": 1_700_000_000_000_i64, "error": "the hub cannot be reached"
            })
        );
        assert_eq!(
            serde_json::to_value(SyncStatusView::default()).unwrap()["state"],
            "off"
        );
    }

    #[test]
    fn call_view_json_shape_matches_the_ui_contract() {
        let ended = test_calls::inbound(
            "demo",
            "101",
            vec![
                (
                    3_000,
                    CallEventKind::Answered {
                        extension: Some(Extension::new("101").unwrap()),
                    },
                ),
                (
                    9_000,
                    CallEventKind::Ended {
                        cause: Some(HangupCause {
                            code: 16,
                            text: "Normal Clearing".into(),
                        }),
                        status: None,
                    },
                ),
            ],
        );
        let json = serde_json::to_value(CallView::from(&ended)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "1795259787.0", "direction": "inbound",
                "from": {"raw": "+74951234567", "e164": "+74951234567", "display": "+7 495 123-45-67", "name": null},
                "to": {"raw": "101", "e164": null, "display": "101", "name": null},
                "state": "ended", "status": "answered", "operator": "101",
                "startedAt": 1000, "answeredAt": 3000, "endedAt": 9000,
                "ringSeconds": 2, "talkSeconds": 6, "hangupCause": "16 Normal Clearing",
                "company": null, "queue": null, "onHold": false, "rang": [], "monitors": []
            })
        );
        let status = ConnectionStatus {
            state: ConnectionState::Reconnecting,
            profile: ProfileKind::Demo,
            detail: None,
        };
        assert_eq!(
            serde_json::to_string(&status).unwrap(),
            r#"{"state":"reconnecting","profile":"demo","detail":null}"#
        );
    }
}
