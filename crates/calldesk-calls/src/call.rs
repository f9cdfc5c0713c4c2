//! Calls and the events that change them.

use crate::control::{MonitorMode, TransferKind};
use crate::ids::{CallId, Extension, TenantId};
use crate::phone::Party;

/// Milliseconds since the Unix epoch. Always supplied by the caller: this crate never reads a clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_unix_millis(ms: i64) -> Self {
        Self(ms)
    }

    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds from `self` to `later` (0 if `later` is earlier).
    pub fn seconds_until(self, later: Timestamp) -> i64 {
        later.0.saturating_sub(self.0).max(0) / 1000
    }

    /// The UTC calendar date and time of this instant.
    pub fn civil(self) -> CivilTime {
        let secs = self.0.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400);
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        CivilTime {
            year,
            month,
            day,
            hour: (rem / 3600) as u32,
            minute: (rem % 3600 / 60) as u32,
            second: (rem % 60) as u32,
            millis: self.0.rem_euclid(1000) as u32,
        }
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-21T11:16:27.617Z`.
    pub fn rfc3339(self) -> String {
        let c = self.civil();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
        )
    }
}

/// A UTC calendar date and time (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millis: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// A customer called us.
    Inbound,
    /// An operator called a customer (including click-to-call).
    Outbound,
    /// Between two extensions.
    Internal,
}

impl Direction {
    /// The stable snake_case name used on the wire and in the databases.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
            Self::Internal => "internal",
        }
    }

    /// Parses [`Direction::as_str`]'s names.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Inbound, Self::Outbound, Self::Internal]
            .into_iter()
            .find(|d| d.as_str() == name)
    }
}

/// The final word on a call, decided when it ends.
///
/// Rules (the same for every PBX): a call someone answered is `Answered`; otherwise `Busy` when
/// the called side said busy; otherwise an inbound call is `Missed` and any other is `NoAnswer`.
/// `Failed` (the PBX could not place it, e.g. the operator leg of a click-to-call never answered)
/// and `Cancelled` (withdrawn before it rang through) are given explicitly by the tracker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallStatus {
    Answered,
    Missed,
    NoAnswer,
    Busy,
    Failed,
    Cancelled,
}

impl CallStatus {
    /// The stable snake_case name used on the wire and in the databases.
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

    /// Parses [`CallStatus::as_str`]'s names.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Answered,
            Self::Missed,
            Self::NoAnswer,
            Self::Busy,
            Self::Failed,
            Self::Cancelled,
        ]
        .into_iter()
        .find(|s| s.as_str() == name)
    }
}

/// Where a live call is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallPhase {
    /// Known to the PBX, no operator rung yet (IVR, queue, dialling out).
    Setup,
    /// At least one operator's phone is ringing.
    Ringing,
    /// Someone answered.
    Talking,
    Ended,
}

/// Q.850 cause as reported by the PBX (`16 Normal Clearing`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HangupCause {
    pub code: u16,
    pub text: String,
}

/// A transfer of the customer from one operator to another destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Transfer {
    pub kind: TransferKind,
    /// The operator who transferred, when known.
    pub from: Option<Extension>,
    /// Where the customer was sent, when known.
    pub to: Option<Party>,
}

/// A supervisor's spy session on the call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Monitor {
    pub supervisor: Extension,
    /// Listen, whisper or barge, when the PBX told.
    pub mode: Option<MonitorMode>,
    /// Still listening.
    pub active: bool,
}

/// One customer interaction, as the PBXs fold into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub id: CallId,
    pub tenant: TenantId,
    pub direction: Direction,
    pub from: Party,
    pub to: Party,
    pub phase: CallPhase,
    /// Set when the call ends.
    pub status: Option<CallStatus>,
    /// Every operator whose phone rang, in order, without repeats.
    pub rang: Vec<Extension>,
    /// Every operator who talked, in order (more than one after a transfer).
    pub answered_by: Vec<Extension>,
    pub started_at: Timestamp,
    pub answered_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    pub hangup_cause: Option<HangupCause>,
    /// The called side reported busy at some point.
    pub busy_seen: bool,
    /// Blind and attended transfers, in order.
    pub transfers: Vec<Transfer>,
    /// Supervisor spy sessions, in order.
    pub monitors: Vec<Monitor>,
    /// The queue the customer waited in (the last one, when several).
    pub queue: Option<String>,
    /// Recording files (as the PBX names them), in order, without repeats.
    pub recordings: Vec<String>,
    /// The customer is on hold (hold, or parked) now.
    pub on_hold: bool,
}

impl Call {
    /// The operator to show: who talks now, else the last one rung.
    pub fn operator(&self) -> Option<&Extension> {
        self.answered_by.last().or(self.rang.last())
    }

    /// Seconds from start until answered (or until the end, when nobody answered).
    pub fn ring_seconds(&self) -> Option<i64> {
        let until = self.answered_at.or(self.ended_at)?;
        Some(self.started_at.seconds_until(until))
    }

    /// Seconds of conversation; only for answered calls that ended.
    pub fn talk_seconds(&self) -> Option<i64> {
        Some(self.answered_at?.seconds_until(self.ended_at?))
    }
}

/// What a PBX knows about a call apart from its live state (hold, monitors) and its end; carried
/// by [`CallEventKind::Revised`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallFacts {
    pub direction: Direction,
    pub from: Party,
    pub to: Party,
    pub started_at: Timestamp,
    pub rang: Vec<Extension>,
    pub answered_by: Vec<Extension>,
    pub answered_at: Option<Timestamp>,
    pub transfers: Vec<Transfer>,
    pub queue: Option<String>,
    pub recordings: Vec<String>,
}

/// Something that happened to a call, in the one vocabulary every PBX tracker speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    pub call: CallId,
    pub at: Timestamp,
    pub kind: CallEventKind,
}

// `Started` carries the call's two parties and is much larger than the other variants; boxing
// it would cost an allocation per call for no gain at call-centre event rates.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEventKind {
    Started {
        direction: Direction,
        from: Party,
        to: Party,
    },
    /// An operator's phone started ringing.
    OperatorRinging { extension: Extension },
    /// The call was answered (by an operator when known).
    Answered { extension: Option<Extension> },
    /// The called side (operator or customer) said busy.
    BusySignalled,
    /// The customer was transferred.
    Transferred {
        kind: TransferKind,
        from: Option<Extension>,
        to: Option<Party>,
    },
    /// The customer was put on hold (or parked), or taken back.
    HoldChanged { on: bool },
    /// A recording of the call started, written to `file`.
    RecordingStarted { file: String },
    /// A supervisor started listening to the call.
    MonitorStarted {
        supervisor: Extension,
        mode: Option<MonitorMode>,
    },
    /// A supervisor's spy session ended.
    MonitorStopped { supervisor: Extension },
    /// The customer entered a queue.
    QueueJoined { queue: String },
    /// The PBX's account of the call changed in a way the events above cannot say: a PBX that
    /// delivers out of order (Mango posts webhooks in parallel) learnt an earlier fact late, e.g.
    /// the IVR leg that started the call, or the summary's direction. Replaces these facts.
    Revised(Box<CallFacts>),
    /// The call is over. `status` overrides the derived status (see [`CallStatus`]).
    Ended {
        cause: Option<HangupCause>,
        status: Option<CallStatus>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_as_utc() {
        let t = Timestamp::from_unix_millis(1_795_259_787_617);
        assert_eq!(t.rfc3339(), "2026-11-21T11:16:27.617Z");
        assert_eq!(
            Timestamp::from_unix_millis(0).rfc3339(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(951_782_400_000).rfc3339(),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(-1).rfc3339(),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for d in [Direction::Inbound, Direction::Outbound, Direction::Internal] {
            assert_eq!(Direction::from_name(d.as_str()), Some(d));
        }
        let all = [
            CallStatus::Answered,
            CallStatus::Missed,
            CallStatus::NoAnswer,
            CallStatus::Busy,
            CallStatus::Failed,
            CallStatus::Cancelled,
        ];
        for s in all {
            assert_eq!(CallStatus::from_name(s.as_str()), Some(s));
        }
        assert_eq!(CallStatus::NoAnswer.as_str(), "no_answer");
        assert_eq!(CallStatus::from_name("Answered"), None);
        assert_eq!(Direction::from_name(""), None);
    }
}
