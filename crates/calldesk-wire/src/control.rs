//! Call controls as text: [`ControlSpec`], what the hub's REST routes, the replicas' forwarded
//! controls and the desktop's UI send, validated into a domain [`Control`] by
//! [`ControlSpec::to_control`] (extensions and numbers strictly, text single-line); and
//! [`ControlReply`], its outcome.

use calldesk_calls::{
    CallId, Control, ControlError, ControlOutcome, Destination, DtmfDigits, Extension, MonitorMode,
    NumberPlan, RecordAction, TransferKind,
};
use serde::{Deserialize, Serialize};

/// A call control as it travels (also between replicas): values still unvalidated text; the
/// holder validates them with the tenant's number plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum ControlSpec {
    Originate {
        region: String,
        operator: String,
        to: String,
    },
    Hangup {
        call: String,
        operator: Option<String>,
    },
    Transfer {
        region: String,
        call: String,
        operator: String,
        to: String,
        kind: String,
    },
    Hold {
        call: String,
        operator: String,
        on: bool,
    },
    Record {
        call: String,
        action: String,
    },
    Monitor {
        call: String,
        operator: String,
        supervisor: String,
        mode: String,
    },
    Dtmf {
        call: String,
        operator: String,
        digits: String,
    },
    QueuePause {
        operator: String,
        queue: Option<String>,
        paused: bool,
        reason: Option<String>,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ControlReply {
    pub ok: bool,
    pub call: Option<String>,
    pub code: Option<String>,
    pub message: Option<String>,
}

/// `v` as an extension (letters, digits, `_`, `-`; at most 32); `what` names it in the error.
pub fn extension(v: &str, what: &str) -> Result<Extension, ControlError> {
    if v.is_empty()
        || v.len() > 32
        || !v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(ControlError::Invalid(format!(
            "{what} {v:?} is not an extension"
        )));
    }
    Extension::new(v).map_err(|e| ControlError::Invalid(format!("{what} {v:?}: {e}")))
}

fn call_id(v: &str) -> Result<CallId, ControlError> {
    CallId::new(v).map_err(|e| ControlError::Invalid(format!("call {v:?}: {e}")))
}

fn destination(region: &str, to: &str) -> Result<Destination, ControlError> {
    if !to.is_empty() && to.len() <= 6 && to.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(Destination::Extension(extension(to, "destination")?));
    }
    let plan = NumberPlan::new(region).map_err(|e| ControlError::Invalid(e.to_string()))?;
    plan.parse(to).map(Destination::Number).map_err(|e| {
        ControlError::Invalid(format!(
            "{to:?} is neither an extension nor a phone number: {e}"
        ))
    })
}

impl ControlSpec {
    pub fn to_control(&self) -> Result<Control, ControlError> {
        Ok(match self {
            Self::Originate {
                region,
                operator,
                to,
            } => Control::Originate {
                operator: extension(operator, "operator")?,
                to: destination(region, to)?,
            },
            Self::Hangup { call, operator } => Control::Hangup {
                call: call_id(call)?,
                operator: operator
                    .as_deref()
                    .map(|o| extension(o, "operator"))
                    .transpose()?,
            },
            Self::Transfer {
                region,
                call,
                operator,
                to,
                kind,
            } => Control::Transfer {
                call: call_id(call)?,
                operator: extension(operator, "operator")?,
                to: destination(region, to)?,
                kind: match kind.as_str() {
                    "blind" => TransferKind::Blind,
                    "attended" => TransferKind::Attended,
                    k => {
                        return Err(ControlError::Invalid(format!(
                            "transfer kind {k:?}: expected blind or attended"
                        )));
                    }
                },
            },
            Self::Hold { call, operator, on } => Control::Hold {
                call: call_id(call)?,
                operator: extension(operator, "operator")?,
                on: *on,
            },
            Self::Record { call, action } => Control::Record {
                call: call_id(call)?,
                action: match action.as_str() {
                    "start" => RecordAction::Start,
                    "stop" => RecordAction::Stop,
                    "mute" => RecordAction::Mute,
                    "unmute" => RecordAction::Unmute,
                    a => {
                        return Err(ControlError::Invalid(format!(
                            "record action {a:?}: expected start, stop, mute or unmute"
                        )));
                    }
                },
            },
            Self::Monitor {
                call,
                operator,
                supervisor,
                mode,
            } => Control::Monitor {
                call: call_id(call)?,
                operator: extension(operator, "operator")?,
                supervisor: extension(supervisor, "supervisor")?,
                mode: match mode.as_str() {
                    "listen" => MonitorMode::Listen,
                    "whisper" => MonitorMode::Whisper,
                    "barge" => MonitorMode::Barge,
                    m => {
                        return Err(ControlError::Invalid(format!(
                            "monitor mode {m:?}: expected listen, whisper or barge"
                        )));
                    }
                },
            },
            Self::Dtmf {
                call,
                operator,
                digits,
            } => Control::Dtmf {
                call: call_id(call)?,
                operator: extension(operator, "operator")?,
                digits: DtmfDigits::new(digits)?,
            },
            Self::QueuePause {
                operator,
                queue,
                paused,
                reason,
            } => {
                if reason
                    .as_deref()
                    .is_some_and(|r| r.len() > 128 || r.chars().any(char::is_control))
                    || queue
                        .as_deref()
                        .is_some_and(|q| q.len() > 64 || q.chars().any(char::is_control))
                {
                    return Err(ControlError::Invalid(
                        "queue and reason must be short single-line text".to_owned(),
                    ));
                }
                Control::QueuePause {
                    operator: extension(operator, "operator")?,
                    queue: queue.clone(),
                    paused: *paused,
                    reason: reason.clone(),
                }
            }
        })
    }
}

impl ControlReply {
    pub fn from_result(result: Result<ControlOutcome, ControlError>) -> Self {
        match result {
            Ok(ControlOutcome::Done) => Self {
                ok: true,
                call: None,
                code: None,
                message: None,
            },
            Ok(ControlOutcome::Originated { call }) => Self {
                ok: true,
                call: call.map(|c| c.to_string()),
                code: None,
                message: None,
            },
            Err(e) => Self {
                ok: false,
                call: None,
                code: Some(e.code().to_owned()),
                message: Some(e.to_string()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(to: &str) -> ControlSpec {
        ControlSpec::Transfer {
            region: "RU".into(),
            call: "1795259787.0".into(),
            operator: "101".into(),
            to: to.into(),
            kind: "attended".into(),
        }
    }

    #[test]
    fn specs_are_validated_strictly_into_controls() {
        let Ok(Control::Transfer { to, kind, .. }) = transfer("102").to_control() else {
            panic!("a transfer to 102");
        };
        assert_eq!((to.dial_string(), kind), ("102", TransferKind::Attended));
        let Ok(Control::Transfer { to, .. }) = transfer("8 (495) 123-45-67").to_control() else {
            panic!("a transfer to a number");
        };
        assert_eq!(to.dial_string(), "+74951234567");
        for bad in ["", "102\r\nAction: Originate", "abc", "+7 495"] {
            let e = transfer(bad).to_control().err();
            assert!(
                matches!(e, Some(ControlError::Invalid(_))),
                "{bad:?}: {e:?}"
            );
        }
        let pause = ControlSpec::QueuePause {
            operator: "101".into(),
            queue: None,
            paused: true,
            reason: Some("lunch\nAction: Hangup".into()),
        };
        assert!(matches!(pause.to_control(), Err(ControlError::Invalid(_))));
        let tones = |digits: &str| ControlSpec::Dtmf {
            call: "1.1".into(),
            operator: "101".into(),
            digits: digits.into(),
        };
        let Ok(Control::Dtmf { digits, .. }) = tones("1*#a").to_control() else {
            panic!("tones");
        };
        assert_eq!(digits.as_str(), "1*#A");
        let json = serde_json::to_value(tones("5")).unwrap();
        assert_eq!(json["control"], "dtmf");
        for bad in ["", "1\r\nAction: Hangup", "12 34"] {
            assert!(matches!(
                tones(bad).to_control(),
                Err(ControlError::Invalid(_))
            ));
        }
        let reply = ControlReply::from_result(Err(ControlError::NotSupported("hold")));
        assert_eq!(
            (reply.ok, reply.code.as_deref()),
            (false, Some("not_supported"))
        );
    }
}
