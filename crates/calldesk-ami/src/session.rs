//! The AMI session as call events: feeds what an [`AmiClient`] hears to an [`AsteriskTracker`]
//! and hands the tracker's call events, presence, resync notices and the connection state to
//! one consumer, in order. Shared by the desktop engine and the hub (one per Asterisk tenant).

use std::sync::{Arc, RwLock};

use calldesk_asterisk::TrackerEvent;
use calldesk_calls::{CallEvent, CallId, PresenceEvent, Timestamp};
use tokio::sync::mpsc;

use crate::{AmiClient, AsteriskTracker, ClientEvent, ConnState};

/// What the session tells its consumer.
// `Resynced` is rare; boxing `Call` would cost an allocation per call event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SessionOutput {
    Call(CallEvent),
    Presence(PresenceEvent),
    /// A resync after a (re)connect has been applied: `live` are the calls the tracker follows
    /// now. A call the consumer still shows but the PBX no longer has must be ended (the tracker
    /// has already ended every call whose channels vanished; this keeps the consumer honest).
    Resynced {
        live: Vec<CallId>,
        at: Timestamp,
    },
    /// The client's connection state changed (already logged by the session).
    State(ConnState),
}

/// Runs until the client's event stream ends or the consumer is gone. `addr` only labels logs.
pub async fn run_session(
    client: AmiClient,
    tracker: Arc<RwLock<AsteriskTracker>>,
    mut from_client: mpsc::Receiver<ClientEvent>,
    to: mpsc::Sender<SessionOutput>,
    addr: String,
) {
    let mut state = client.state();
    let mut out = Vec::new();
    // The current state first, so the consumer never starts blind.
    let current = state.borrow_and_update().clone();
    if to.send(SessionOutput::State(current)).await.is_err() {
        return;
    }
    loop {
        tokio::select! {
            // Client news first, so a state change never overtakes the events before it.
            biased;
            event = from_client.recv() => {
                let Some(event) = event else { return };
                let resynced = fold(&tracker, event, &mut out);
                for event in out.drain(..) {
                    let message = match event {
                        TrackerEvent::Call(e) => SessionOutput::Call(e),
                        TrackerEvent::Presence(p) => SessionOutput::Presence(p),
                    };
                    if to.send(message).await.is_err() {
                        return;
                    }
                }
                if let Some(message) = resynced
                    && to.send(message).await.is_err()
                {
                    return;
                }
            }
            changed = state.changed() => {
                if changed.is_err() {
                    return;
                }
                let current = state.borrow_and_update().clone();
                match &current {
                    ConnState::Disconnected { reason, retry_in } => tracing::warn!(
                        %addr, %reason, ?retry_in, "AMI session lost; reconnecting"
                    ),
                    other => tracing::info!(%addr, state = %other, "AMI connection"),
                }
                if to.send(SessionOutput::State(current)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Applies one client event to the tracker (the lock is held only here, never across an
/// await); returns the resync notice after a resync.
fn fold(
    tracker: &RwLock<AsteriskTracker>,
    event: ClientEvent,
    out: &mut Vec<TrackerEvent>,
) -> Option<SessionOutput> {
    let Ok(mut tracker) = tracker.write() else {
        tracing::error!("the call tracker was poisoned by a panic; events are dropped");
        return None;
    };
    match event {
        ClientEvent::Event {
            message,
            received_at_ms,
        } => {
            tracker.handle(&message, Timestamp::from_unix_millis(received_at_ms), out);
            None
        }
        ClientEvent::Resync {
            items,
            at_ms,
            complete,
            epoch,
        } => {
            let at = Timestamp::from_unix_millis(at_ms);
            if !complete {
                // A partial list would end calls that are still up: keep what we know.
                tracing::warn!(
                    epoch,
                    "resync list incomplete; live calls kept as they were"
                );
                return None;
            }
            tracker.resync(&items, at, out);
            tracing::info!(
                epoch,
                channels = items.len(),
                calls = tracker.live_calls(),
                "resynced with the PBX"
            );
            Some(SessionOutput::Resynced {
                live: tracker.live_call_ids(),
                at,
            })
        }
    }
}

/// The connection state as a status bar shows it: the state and a human detail (what to fix
/// when the session cannot work). `addr` is the PBX's address.
pub fn connection_view(
    state: &ConnState,
    addr: &str,
) -> (calldesk_wire::ConnectionState, Option<String>) {
    use calldesk_wire::ConnectionState as S;
    match state {
        ConnState::Connecting { attempt } if *attempt <= 1 => {
            (S::Connecting, Some(addr.to_owned()))
        }
        ConnState::Connecting { .. } => (S::Reconnecting, Some(format!("reconnecting to {addr}"))),
        ConnState::Resyncing { .. } => (S::Resyncing, Some(addr.to_owned())),
        ConnState::Connected { .. } => (S::Connected, Some(addr.to_owned())),
        ConnState::Degraded { reason } => (S::Degraded, Some(reason.clone())),
        ConnState::Disconnected { reason, .. } => (S::Reconnecting, Some(reason.clone())),
        ConnState::LoginRejected { message } => (
            S::Disconnected,
            Some(format!(
                "Asterisk rejected the login: {message}. Check the AMI user and secret."
            )),
        ),
        ConnState::Misconfigured { message } => (S::Disconnected, Some(message.clone())),
        ConnState::Stopped => (S::Disconnected, None),
    }
}
