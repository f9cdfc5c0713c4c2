//! Call controls: the one command vocabulary every PBX backend implements ([`Pbx`]).
//!
//! The UI asks for a [`Control`] in domain terms (a call, an operator's extension, a number);
//! each backend (the AMI session, the Mango command client, the hub client, the simulator)
//! turns it into its own protocol. What a backend cannot do is reported by [`Capabilities`] and
//! refused with [`ControlError::NotSupported`], never faked.

use std::future::Future;

use crate::ids::{CallId, Extension};
use crate::phone::PhoneNumber;

/// Where a call goes: an operator's extension or an external number (validated E.164).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    Extension(Extension),
    Number(PhoneNumber),
}

impl Destination {
    /// What the PBX dials: the extension, or the number in E.164 (`+74951234567`).
    pub fn dial_string(&self) -> &str {
        match self {
            Self::Extension(e) => e.as_str(),
            Self::Number(n) => n.e164(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferKind {
    /// The caller is sent on at once; the operator leaves.
    Blind,
    /// The operator talks to the target first, then hangs up to join the two.
    Attended,
}

impl TransferKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Blind => "blind",
            Self::Attended => "attended",
        }
    }
}

/// A supervisor's way of joining an operator's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MonitorMode {
    /// Hears both sides; nobody hears the supervisor.
    Listen,
    /// Hears both sides; only the operator hears the supervisor.
    Whisper,
    /// Hears both sides; both hear the supervisor.
    Barge,
}

impl MonitorMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Listen => "listen",
            Self::Whisper => "whisper",
            Self::Barge => "barge",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordAction {
    Start,
    Stop,
    /// Keep recording but write silence (e.g. while a card number is read out).
    Mute,
    Unmute,
}

/// Touch tones to play into a call: 1 to 32 of `0-9 * # A-D` (letters upper-cased).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DtmfDigits(String);

impl DtmfDigits {
    /// Longest run of tones sent at once (an IVR menu path or a PIN).
    pub const MAX: usize = 32;

    pub fn new(digits: &str) -> Result<Self, ControlError> {
        if digits.is_empty() || digits.len() > Self::MAX {
            return Err(ControlError::Invalid(format!(
                "tones must be 1 to {} characters, got {}",
                Self::MAX,
                digits.chars().count()
            )));
        }
        if let Some(bad) = digits
            .chars()
            .find(|c| !matches!(c, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d'))
        {
            return Err(ControlError::Invalid(format!(
                "{bad:?} is not a touch tone (0-9, *, #, A-D)"
            )));
        }
        Ok(Self(digits.to_ascii_uppercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Each tone in order.
    pub fn chars(&self) -> impl Iterator<Item = char> + '_ {
        self.0.chars()
    }
}

impl std::fmt::Display for DtmfDigits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One call control, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Click-to-call: ring `operator`'s phone; when it answers, dial `to`.
    Originate {
        operator: Extension,
        to: Destination,
    },
    /// Hang up `operator`'s leg of `call` (the whole call when `operator` is `None`).
    Hangup {
        call: CallId,
        operator: Option<Extension>,
    },
    /// `operator` transfers the customer of `call` to `to`.
    Transfer {
        call: CallId,
        operator: Extension,
        to: Destination,
        kind: TransferKind,
    },
    /// `operator` puts the customer of `call` on hold (music on hold) or takes them back.
    Hold {
        call: CallId,
        operator: Extension,
        on: bool,
    },
    Record {
        call: CallId,
        action: RecordAction,
    },
    /// Ring `supervisor`'s phone into a spy session on `operator`'s channel of `call`.
    Monitor {
        call: CallId,
        operator: Extension,
        supervisor: Extension,
        mode: MonitorMode,
    },
    /// `operator` plays touch tones to the other party of `call` (an IVR menu, a PIN): the
    /// tones go out on the customer's side, as if the operator's phone had sent them.
    Dtmf {
        call: CallId,
        operator: Extension,
        digits: DtmfDigits,
    },
    /// Pause or resume `operator` in `queue` (every queue when `None`).
    QueuePause {
        operator: Extension,
        queue: Option<String>,
        paused: bool,
        reason: Option<String>,
    },
}

impl Control {
    /// A stable name for logs and error messages.
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Originate { .. } => "originate",
            Self::Hangup { .. } => "hangup",
            Self::Transfer {
                kind: TransferKind::Blind,
                ..
            } => "blind_transfer",
            Self::Transfer {
                kind: TransferKind::Attended,
                ..
            } => "attended_transfer",
            Self::Hold { .. } => "hold",
            Self::Record { .. } => "record",
            Self::Monitor { .. } => "monitor",
            Self::Dtmf { .. } => "dtmf",
            Self::QueuePause { .. } => "queue_pause",
        }
    }

    /// Whether sending it twice could do it twice (a second call, a second transfer). Such
    /// controls are never re-sent automatically after a lost connection.
    pub const fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Self::Hangup { .. } | Self::Hold { .. } | Self::QueuePause { .. }
        )
    }
}

/// What a backend can do; the UI disables the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub originate: bool,
    pub hangup: bool,
    pub blind_transfer: bool,
    pub attended_transfer: bool,
    pub hold: bool,
    pub record: bool,
    pub monitor: bool,
    pub dtmf: bool,
    pub queue_pause: bool,
}

impl Capabilities {
    /// Everything.
    pub const fn all() -> Self {
        Self {
            originate: true,
            hangup: true,
            blind_transfer: true,
            attended_transfer: true,
            hold: true,
            record: true,
            monitor: true,
            dtmf: true,
            queue_pause: true,
        }
    }

    pub const fn allows(&self, control: &Control) -> bool {
        match control {
            Control::Originate { .. } => self.originate,
            Control::Hangup { .. } => self.hangup,
            Control::Transfer {
                kind: TransferKind::Blind,
                ..
            } => self.blind_transfer,
            Control::Transfer {
                kind: TransferKind::Attended,
                ..
            } => self.attended_transfer,
            Control::Hold { .. } => self.hold,
            Control::Record { .. } => self.record,
            Control::Monitor { .. } => self.monitor,
            Control::Dtmf { .. } => self.dtmf,
            Control::QueuePause { .. } => self.queue_pause,
        }
    }
}

/// What a control did, when the PBX accepted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlOutcome {
    Done,
    /// A call was placed; `call` is its id when the PBX told it (the tracker will report it).
    Originated {
        call: Option<CallId>,
    },
}

/// Why a control was not carried out. Messages say what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("{0}")]
    Invalid(String),
    #[error("this PBX connection cannot {0}")]
    NotSupported(&'static str),
    #[error("call {0} is not live any more")]
    NoSuchCall(CallId),
    #[error("extension {extension} has no live leg in call {call}")]
    NotInCall { call: CallId, extension: Extension },
    /// The PBX answered with an error; `message` is its (sanitised) text.
    #[error("the PBX refused {action}: {message}")]
    Refused {
        action: &'static str,
        message: String,
    },
    /// The PBX placed the call but the operator's phone did not answer (busy, no answer).
    #[error("{extension} did not answer ({reason})")]
    NotAnswered {
        extension: Extension,
        reason: String,
    },
    #[error(
        "the connection to the PBX was lost {}",
        if *maybe_executed { "after the command was sent; check whether it took effect before retrying" } else { "before the command was sent; nothing happened" }
    )]
    Disconnected { maybe_executed: bool },
    #[error(
        "the PBX did not answer within {seconds} s{}",
        if *maybe_executed { "; the command may still take effect" } else { "" }
    )]
    TimedOut { seconds: u64, maybe_executed: bool },
}

impl ControlError {
    /// A stable code the UI branches on.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "invalid",
            Self::NotSupported(_) => "not_supported",
            Self::NoSuchCall(_) => "no_such_call",
            Self::NotInCall { .. } => "not_in_call",
            Self::Refused { .. } => "refused",
            Self::NotAnswered { .. } => "not_answered",
            Self::Disconnected { .. } => "disconnected",
            Self::TimedOut { .. } => "timed_out",
        }
    }
}

/// A PBX backend that carries out call controls.
pub trait Pbx: Send + Sync {
    fn capabilities(&self) -> Capabilities;

    /// Carries out `control`. Backends validate first and refuse what [`Pbx::capabilities`]
    /// does not allow with [`ControlError::NotSupported`].
    fn execute(
        &self,
        control: Control,
    ) -> impl Future<Output = Result<ControlOutcome, ControlError>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_gate_each_control_and_errors_have_codes() {
        let call = CallId::new("1.1").unwrap();
        let ext = Extension::new("101").unwrap();
        let hold = Control::Hold {
            call: call.clone(),
            operator: ext.clone(),
            on: true,
        };
        assert!(!Capabilities::default().allows(&hold));
        assert!(Capabilities::all().allows(&hold));
        let blind = Control::Transfer {
            call,
            operator: ext.clone(),
            to: Destination::Extension(ext),
            kind: TransferKind::Blind,
        };
        let only_attended = Capabilities {
            attended_transfer: true,
            ..Capabilities::default()
        };
        assert!(!only_attended.allows(&blind));
        assert_eq!(blind.name(), "blind_transfer");
        assert!(!blind.is_idempotent());
        let err = ControlError::Disconnected {
            maybe_executed: true,
        };
        assert_eq!(err.code(), "disconnected");
        assert!(err.to_string().contains("check whether it took effect"));
    }

    #[test]
    fn touch_tones_are_strict() {
        assert_eq!(DtmfDigits::new("12*#abD").unwrap().as_str(), "12*#ABD");
        for bad in [
            "",
            "1 2",
            "12\r\nAction: Hangup",
            "E",
            "+7",
            &"1".repeat(33),
        ] {
            let err = DtmfDigits::new(bad).unwrap_err();
            assert_eq!(err.code(), "invalid", "{bad:?}");
        }
        assert!(
            DtmfDigits::new("9w")
                .unwrap_err()
                .to_string()
                .contains("'w' is not a touch tone")
        );
        let dtmf = Control::Dtmf {
            call: CallId::new("1.1").unwrap(),
            operator: Extension::new("101").unwrap(),
            digits: DtmfDigits::new("1").unwrap(),
        };
        assert_eq!(dtmf.name(), "dtmf");
        assert!(!dtmf.is_idempotent());
        assert!(!Capabilities::default().allows(&dtmf));
        assert!(Capabilities::all().allows(&dtmf));
    }
}
