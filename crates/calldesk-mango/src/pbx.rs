//! [`MangoPbx`]: the domain's call controls carried out with VPBX commands, on the legs the
//! tracker knows.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};

use calldesk_calls::{
    CallId, Capabilities, Control, ControlError, ControlOutcome, Destination, Extension, Pbx,
    RecordAction, TransferKind,
};
use calldesk_mango_proto::command::TransferMethod;
use calldesk_mango_proto::tracker::{LegDirectory, LiveLeg};
use calldesk_mango_proto::webhook::LegState;

use crate::{MangoClient, MangoError};

/// What Mango can do through its API: no unhold, no recording stop, no spying, no touch tones,
/// no queue pause.
pub const CAPABILITIES: Capabilities = Capabilities {
    monitor: false,
    dtmf: false,
    queue_pause: false,
    ..Capabilities::all()
};

/// The Mango call-control backend. The directory is shared with whoever owns the tracker;
/// `execute` reads it briefly before anything is sent, never across an await.
pub struct MangoPbx<D> {
    client: MangoClient,
    directory: Arc<RwLock<D>>,
}

impl<D> Clone for MangoPbx<D> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            directory: self.directory.clone(),
        }
    }
}

impl<D> fmt::Debug for MangoPbx<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MangoPbx")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// One VPBX command, addressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Callback {
        extension: String,
        to: String,
    },
    Hangup {
        call_id: String,
    },
    Transfer {
        call_id: String,
        method: TransferMethod,
        to: String,
        initiator: String,
    },
    HoldOn {
        call_id: String,
        initiator: String,
    },
    RecordingStart {
        call_id: String,
        call_party_number: String,
    },
}

impl<D: LegDirectory> MangoPbx<D> {
    pub fn new(client: MangoClient, directory: Arc<RwLock<D>>) -> Self {
        Self { client, directory }
    }

    pub fn client(&self) -> &MangoClient {
        &self.client
    }

    /// The command `control` would send now (for logs and tests); nothing is sent.
    pub fn plan(&self, control: &Control) -> Result<Step, ControlError> {
        let legs_of = |call: &CallId| -> Result<Vec<LiveLeg>, ControlError> {
            // A panic elsewhere while the lock was held leaves the directory readable as it was.
            let dir = self
                .directory
                .read()
                .unwrap_or_else(PoisonError::into_inner);
            dir.live_legs(call)
                .filter(|legs| !legs.is_empty())
                .ok_or_else(|| ControlError::NoSuchCall(call.clone()))
        };
        match control {
            Control::Originate { operator, to } => Ok(Step::Callback {
                extension: operator.as_str().to_owned(),
                to: dial(to),
            }),
            Control::Hangup { call, operator } => {
                let legs = legs_of(call)?;
                let leg = match operator {
                    Some(op) => legs
                        .iter()
                        .rev()
                        .find(|l| l.has_extension(op.as_str()))
                        .ok_or_else(|| not_in_call(call, op))?,
                    None => legs
                        .last()
                        .ok_or_else(|| ControlError::NoSuchCall(call.clone()))?,
                };
                Ok(Step::Hangup {
                    call_id: leg.call_id.clone(),
                })
            }
            Control::Transfer {
                call,
                operator,
                to,
                kind,
            } => {
                let legs = legs_of(call)?;
                let leg = connected_leg_of(&legs, call, operator, control.name())?;
                Ok(Step::Transfer {
                    call_id: leg.call_id.clone(),
                    method: match kind {
                        TransferKind::Blind => TransferMethod::Blind,
                        TransferKind::Attended => TransferMethod::Hold,
                    },
                    to: dial(to),
                    initiator: operator.as_str().to_owned(),
                })
            }
            Control::Hold { on: false, .. } => Err(ControlError::NotSupported(
                "take a call off hold (Mango has no API command for it; use the phone)",
            )),
            Control::Hold { call, operator, .. } => {
                let legs = legs_of(call)?;
                let leg = connected_leg_of(&legs, call, operator, control.name())?;
                Ok(Step::HoldOn {
                    call_id: leg.call_id.clone(),
                    initiator: operator.as_str().to_owned(),
                })
            }
            Control::Record {
                call,
                action: RecordAction::Start,
            } => {
                let legs = legs_of(call)?;
                let leg = legs
                    .iter()
                    .rev()
                    .find(|l| l.state == LegState::Connected)
                    .ok_or_else(|| ControlError::Refused {
                        action: control.name(),
                        message:
                            "the call has no connected leg yet; start recording once it is answered"
                                .to_owned(),
                    })?;
                let party = leg
                    .to
                    .extension
                    .as_deref()
                    .or(leg.from.extension.as_deref())
                    .ok_or_else(|| ControlError::Refused {
                        action: control.name(),
                        message:
                            "no employee is on the connected leg; Mango records only its employees"
                                .to_owned(),
                    })?;
                Ok(Step::RecordingStart {
                    call_id: leg.call_id.clone(),
                    call_party_number: party.to_owned(),
                })
            }
            Control::Record { .. } => Err(ControlError::NotSupported(
                "stop, mute or unmute a recording (Mango has no API command for it)",
            )),
            Control::Monitor { .. } => Err(ControlError::NotSupported(
                "listen in, whisper or barge (Mango has no API command for it)",
            )),
            Control::Dtmf { .. } => Err(ControlError::NotSupported(
                "send touch tones into a call (Mango has no API command for it; use the phone's keypad)",
            )),
            Control::QueuePause { .. } => Err(ControlError::NotSupported(
                "pause an operator in a queue (Mango has no API command for it)",
            )),
        }
    }
}

impl<D: LegDirectory + Send + Sync> Pbx for MangoPbx<D> {
    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    fn execute(
        &self,
        control: Control,
    ) -> impl Future<Output = Result<ControlOutcome, ControlError>> + Send {
        // Planned now, so no lock guard lives in the future.
        let planned = self.plan(&control);
        let client = self.client.clone();
        let name = control.name();
        async move { run(&client, name, planned?).await }
    }
}

async fn run(
    client: &MangoClient,
    name: &'static str,
    step: Step,
) -> Result<ControlOutcome, ControlError> {
    let sent = match &step {
        Step::Callback { extension, to } => client.callback(extension, to, None).await,
        Step::Hangup { call_id } => client.hangup(call_id).await,
        Step::Transfer {
            call_id,
            method,
            to,
            initiator,
        } => client.transfer(call_id, *method, to, initiator).await,
        Step::HoldOn { call_id, initiator } => client.hold_on(call_id, initiator).await,
        Step::RecordingStart {
            call_id,
            call_party_number,
        } => client.recording_start(call_id, call_party_number).await,
    };
    let command_id = sent.map_err(|e| control_error(e, name))?;
    tracing::info!(control = name, %command_id, "Mango accepted the command");
    Ok(match step {
        Step::Callback { .. } => ControlOutcome::Originated { call: None },
        _ => ControlOutcome::Done,
    })
}

/// What Mango dials: the extension, or the E.164 number's digits without `+`.
fn dial(to: &Destination) -> String {
    let s = to.dial_string();
    s.strip_prefix('+').unwrap_or(s).to_owned()
}

fn not_in_call(call: &CallId, operator: &Extension) -> ControlError {
    ControlError::NotInCall {
        call: call.clone(),
        extension: operator.clone(),
    }
}

/// The operator's newest connected leg; [`ControlError::NotInCall`] when the operator is on
/// no leg, [`ControlError::Refused`] when on one that is not connected (ringing, on hold).
fn connected_leg_of<'a>(
    legs: &'a [LiveLeg],
    call: &CallId,
    operator: &Extension,
    action: &'static str,
) -> Result<&'a LiveLeg, ControlError> {
    let mine: Vec<&LiveLeg> = legs
        .iter()
        .filter(|l| l.has_extension(operator.as_str()))
        .collect();
    if mine.is_empty() {
        return Err(not_in_call(call, operator));
    }
    mine.iter()
        .rev()
        .find(|l| l.state == LegState::Connected)
        .copied()
        .ok_or_else(|| ControlError::Refused {
            action,
            message: format!(
                "{operator}'s leg is not connected (ringing or on hold); Mango acts only on connected legs"
            ),
        })
}

/// A client error as a control error.
pub fn control_error(e: MangoError, action: &'static str) -> ControlError {
    match e {
        MangoError::Invalid(v) => ControlError::Invalid(v.to_string()),
        MangoError::Transport { maybe_sent, .. } => ControlError::Disconnected {
            maybe_executed: maybe_sent,
        },
        MangoError::Timeout {
            maybe_sent, after, ..
        } => ControlError::TimedOut {
            seconds: after
                .as_millis()
                .div_ceil(1000)
                .try_into()
                .unwrap_or(u64::MAX),
            maybe_executed: maybe_sent,
        },
        other => ControlError::Refused {
            action,
            message: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use calldesk_mango_proto::Code;

    use super::*;

    #[test]
    fn client_errors_become_control_errors() {
        assert_eq!(
            control_error(
                MangoError::Transport {
                    action: "commands/transfer",
                    maybe_sent: false,
                    reason: "refused".into()
                },
                "blind_transfer"
            ),
            ControlError::Disconnected {
                maybe_executed: false
            }
        );
        assert_eq!(
            control_error(
                MangoError::Timeout {
                    action: "commands/transfer",
                    maybe_sent: true,
                    after: Duration::from_millis(1500)
                },
                "blind_transfer"
            ),
            ControlError::TimedOut {
                seconds: 2,
                maybe_executed: true
            }
        );
        let refused = control_error(
            MangoError::Rejected {
                action: "commands/call/hangup",
                code: Code(4101),
            },
            "hangup",
        );
        assert_eq!(refused.code(), "refused");
        assert!(refused.to_string().contains("already ended"), "{refused}");
    }
}
