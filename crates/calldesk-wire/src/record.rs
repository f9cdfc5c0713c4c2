//! `CallRecord`: one finished call as the `calldesk ami replay` command prints it (one JSON
//! object per line), snake_case as the issue specifies. Fields that do not apply are `null` or
//! empty; times are RFC 3339 UTC strings, `null` when the clock was not known.

use calldesk_calls::{Call, Party};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRecord {
    /// `blind` or `attended`.
    pub kind: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorRecord {
    /// The supervisor's extension.
    pub by: String,
    /// `listen`, `whisper` or `barge`, when known.
    pub mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HangupCauseRecord {
    pub code: u16,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    pub id: String,
    pub direction: String,
    /// As presented by the caller: E.164 when it is a phone number, else as sent (an extension).
    pub from: String,
    /// What was dialled, as dialled (the DID, the extension or the external number).
    pub to: String,
    pub status: Option<String>,
    pub answered_by: Vec<String>,
    pub transfers: Vec<TransferRecord>,
    pub monitors: Vec<MonitorRecord>,
    pub queue: Option<String>,
    pub ring_secs: Option<i64>,
    pub talk_secs: Option<i64>,
    pub hangup_cause: Option<HangupCauseRecord>,
    pub recordings: Vec<String>,
    pub started_at: Option<String>,
    pub answered_at: Option<String>,
    pub ended_at: Option<String>,
}

fn presented(p: &Party) -> String {
    p.number
        .as_ref()
        .map_or_else(|| p.raw.clone(), |n| n.e164().to_owned())
}

impl CallRecord {
    /// The record of `call`; `clock_known` false prints no times (the input had none).
    pub fn new(call: &Call, clock_known: bool) -> Self {
        let time =
            |t: Option<calldesk_calls::Timestamp>| t.filter(|_| clock_known).map(|t| t.rfc3339());
        Self {
            id: call.id.to_string(),
            direction: call.direction.as_str().to_owned(),
            from: presented(&call.from),
            to: call.to.raw.clone(),
            status: call.status.map(|s| s.as_str().to_owned()),
            answered_by: call.answered_by.iter().map(|e| e.to_string()).collect(),
            transfers: call
                .transfers
                .iter()
                .map(|t| TransferRecord {
                    kind: t.kind.as_str().to_owned(),
                    from: t.from.as_ref().map(|e| e.to_string()),
                    to: t.to.as_ref().map(|p| p.raw.clone()),
                })
                .collect(),
            monitors: call
                .monitors
                .iter()
                .map(|m| MonitorRecord {
                    by: m.supervisor.to_string(),
                    mode: m.mode.map(|m| m.as_str().to_owned()),
                })
                .collect(),
            queue: call.queue.clone(),
            ring_secs: call.ring_seconds().filter(|_| clock_known),
            talk_secs: call.talk_seconds().filter(|_| clock_known),
            hangup_cause: call.hangup_cause.as_ref().map(|h| HangupCauseRecord {
                code: h.code,
                text: h.text.clone(),
            }),
            recordings: call.recordings.clone(),
            started_at: time(Some(call.started_at)),
            answered_at: time(call.answered_at),
            ended_at: time(call.ended_at),
        }
    }
}
