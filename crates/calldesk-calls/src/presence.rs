//! Presence: what operators' phones and queue memberships are doing, for the supervisor's board.

use crate::ids::Extension;

/// A phone's state, as the PBX reports it (Asterisk device state, Mango extension state).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceState {
    Idle,
    InUse,
    Busy,
    Ringing,
    /// In use and ringing with a second call.
    RingInUse,
    OnHold,
    /// Not registered, or switched off.
    Unavailable,
    Unknown,
}

impl DeviceState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::InUse => "in_use",
            Self::Busy => "busy",
            Self::Ringing => "ringing",
            Self::RingInUse => "ring_in_use",
            Self::OnHold => "on_hold",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
        }
    }
}

/// A change of an operator's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceEvent {
    /// The operator's phone changed state.
    Device {
        extension: Extension,
        state: DeviceState,
    },
    /// The operator's membership of a queue changed (paused with a reason, or resumed).
    QueueMember {
        extension: Extension,
        queue: String,
        paused: bool,
        reason: Option<String>,
    },
}
