//! [`AmiPbx`]: call controls carried out over an [`AmiClient`].

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use calldesk_asterisk::ChannelDirectory;
use calldesk_asterisk::actions::{self, DialplanConfig, OriginateStep, Plan};
use calldesk_calls::{CallId, Capabilities, Control, ControlError, ControlOutcome, Pbx};

use crate::client::{ActionError, AmiClient, Reply};

/// Makes `ChannelId`s for Originates: unique per process run and per call.
#[derive(Debug)]
struct ChannelIds {
    prefix: String,
    next: AtomicU64,
}

impl ChannelIds {
    fn new() -> Self {
        Self {
            prefix: format!("calldesk-{:08x}", rand::random::<u32>()),
            next: AtomicU64::new(0),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        format!("{}-{n}", self.prefix)
    }
}

/// The AMI call-control backend: plans each [`Control`] with
/// [`calldesk_asterisk::actions::plan`] against the live channels the tracker knows, and
/// sends the steps over the client.
///
/// The directory is shared with whoever owns the tracker (it updates it under the write lock;
/// `execute` only reads it, briefly, before anything is sent — never across an await).
pub struct AmiPbx<D> {
    client: AmiClient,
    directory: Arc<RwLock<D>>,
    config: DialplanConfig,
    ids: Arc<ChannelIds>,
}

impl<D> Clone for AmiPbx<D> {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            directory: self.directory.clone(),
            config: self.config.clone(),
            ids: self.ids.clone(),
        }
    }
}

impl<D> fmt::Debug for AmiPbx<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmiPbx")
            .field("client", &self.client)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<D: ChannelDirectory> AmiPbx<D> {
    pub fn new(client: AmiClient, directory: Arc<RwLock<D>>, config: DialplanConfig) -> Self {
        Self {
            client,
            directory,
            config,
            ids: Arc::new(ChannelIds::new()),
        }
    }

    /// The client the controls are sent over.
    pub fn client(&self) -> &AmiClient {
        &self.client
    }

    /// The plan `control` would run now (for logs and tests).
    pub fn plan(&self, control: &Control) -> Result<Plan, ControlError> {
        // A panic elsewhere while the lock was held leaves the directory readable as it was.
        let dir = self
            .directory
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        actions::plan(control, &*dir, &self.config, &mut || self.ids.next())
    }
}

impl<D: ChannelDirectory + Send + Sync> Pbx for AmiPbx<D> {
    fn capabilities(&self) -> Capabilities {
        actions::capabilities(&self.config)
    }

    fn execute(
        &self,
        control: Control,
    ) -> impl Future<Output = Result<ControlOutcome, ControlError>> + Send {
        // Planned now, so no lock guard lives in the future.
        let planned = self.plan(&control);
        let client = self.client.clone();
        async move { run_plan(&client, control.name(), planned?).await }
    }
}

async fn run_plan(
    client: &AmiClient,
    name: &'static str,
    plan: Plan,
) -> Result<ControlOutcome, ControlError> {
    let mut done_any = false;
    let mut first_refusal = None;
    let mut outcome = ControlOutcome::Done;
    for step in plan.steps {
        match client
            .send(step.action, step.completion, step.timeout)
            .await
        {
            Ok(reply) => {
                done_any = true;
                if let Some(originate) = &step.originate {
                    outcome = originate_outcome(originate, &reply)?;
                }
            }
            Err(ActionError::Rejected { message, .. }) if step.best_effort => {
                first_refusal.get_or_insert(message);
            }
            Err(e) => return Err(control_error(e, name, done_any)),
        }
    }
    match first_refusal {
        Some(message) if !done_any => Err(ControlError::Refused {
            action: name,
            message,
        }),
        _ => Ok(outcome),
    }
}

/// `done_any`: an earlier step of the same control already took effect.
fn control_error(e: ActionError, name: &'static str, done_any: bool) -> ControlError {
    match e {
        ActionError::Invalid(m) => ControlError::Invalid(m),
        ActionError::Rejected { message, .. } => ControlError::Refused {
            action: name,
            message,
        },
        ActionError::TimedOut {
            after,
            maybe_executed,
            ..
        } => ControlError::TimedOut {
            seconds: seconds(after),
            maybe_executed: maybe_executed || done_any,
        },
        ActionError::Disconnected { maybe_executed, .. } => ControlError::Disconnected {
            maybe_executed: maybe_executed || done_any,
        },
        ActionError::NotConnected { .. } | ActionError::Stopped => ControlError::Disconnected {
            maybe_executed: done_any,
        },
    }
}

fn seconds(d: Duration) -> u64 {
    u64::try_from(d.as_millis().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// Reads `OriginateResponse`: `Response: Success` placed the call; `Failure` means the first
/// phone did not answer (`Reason` says why).
fn originate_outcome(step: &OriginateStep, reply: &Reply) -> Result<ControlOutcome, ControlError> {
    let Some(event) = &reply.event else {
        // The client completes AsyncEvent actions only with their event.
        return Ok(ControlOutcome::Originated { call: None });
    };
    let success = event
        .get_str("Response")
        .is_some_and(|r| r.eq_ignore_ascii_case("Success"));
    if !success {
        return Err(ControlError::NotAnswered {
            extension: step.ringing.clone(),
            reason: actions::originate_failure(event.get_str("Reason").as_deref()),
        });
    }
    if !step.new_call {
        return Ok(ControlOutcome::Done);
    }
    // The operator leg is the call's first channel: its Uniqueid is the call's Linkedid.
    let call = event
        .get_str("Uniqueid")
        .filter(|u| u.as_ref() != "<unknown>")
        .and_then(|u| CallId::new(u.as_ref()).ok())
        .or_else(|| CallId::new(step.channel_id.as_str()).ok());
    Ok(ControlOutcome::Originated { call })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_errors_become_control_errors_and_earlier_steps_count() {
        let to = |e| control_error(e, "hangup", false);
        assert_eq!(
            to(ActionError::Rejected {
                action: "Hangup".into(),
                message: "No such channel".into()
            }),
            ControlError::Refused {
                action: "hangup",
                message: "No such channel".into()
            }
        );
        assert_eq!(
            to(ActionError::TimedOut {
                action: "Hangup".into(),
                after: Duration::from_millis(1500),
                maybe_executed: false
            }),
            ControlError::TimedOut {
                seconds: 2,
                maybe_executed: false
            }
        );
        assert_eq!(
            to(ActionError::NotConnected { reason: "x".into() }),
            ControlError::Disconnected {
                maybe_executed: false
            }
        );
        // A second step lost after the first one took effect: something happened.
        assert_eq!(
            control_error(
                ActionError::Disconnected {
                    action: "Hangup".into(),
                    maybe_executed: false
                },
                "hangup",
                true
            ),
            ControlError::Disconnected {
                maybe_executed: true
            }
        );
        assert_eq!(to(ActionError::Stopped).code(), "disconnected");
    }

    #[test]
    fn channel_ids_are_unique_and_usable() {
        let ids = ChannelIds::new();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        assert!(a.starts_with("calldesk-") && a.len() <= 64, "{a}");
        assert!(
            a.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "{a}"
        );
    }
}
