//! The call book task: owns the live calls, the presence board and the local history, whatever
//! the profile. The AMI session feeds it PBX events (tracked here by a [`CallBook`]); the hub
//! feed gives it calls already tracked by the hub. Either way the UI gets [`CallView`]s.

use std::collections::{BTreeMap, HashMap};

use calldesk_ami::SessionOutput;
use calldesk_calls::{CallBook, CallEvent, CallEventKind, CallId, Timestamp};
use calldesk_store::LocalStore;
use calldesk_wire::{CallStateView, CallView, PresenceView};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::EngineEvent;
use crate::engine::stopped;

/// How many ended calls a snapshot includes.
const RECENT_CALLS: u32 = 200;

/// What the book is fed.
#[derive(Debug)]
pub(crate) enum BookInput {
    /// From the app's own AMI session (Direct, Demo).
    Session(SessionOutput),
    /// A call as the hub tracks it (new, changed or ended).
    Call(Box<CallView>),
    /// The hub's live calls and presence after a (re)connect: replaces what the book had.
    Snapshot {
        calls: Vec<CallView>,
        presence: Vec<PresenceView>,
    },
    Presence(PresenceView),
}

pub(crate) enum Command {
    Snapshot(oneshot::Sender<Vec<CallView>>),
    Presence(oneshot::Sender<Vec<PresenceView>>),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Snapshot(_) => "Command::Snapshot",
            Self::Presence(_) => "Command::Presence",
        })
    }
}

/// A presence entry's key: the phone (`queue` none) or one queue membership.
type PresenceKey = (String, Option<String>);

/// Owns the live calls and the history.
pub(crate) struct BookTask {
    pub(crate) book: CallBook,
    pub(crate) store: LocalStore,
    pub(crate) events: broadcast::Sender<EngineEvent>,
    pub(crate) live: HashMap<String, CallView>,
    /// Who the contacts cache says the other party of each live call of this desk's own PBX
    /// session is (name, company), looked up once per call.
    cards: HashMap<String, Option<(String, Option<String>)>>,
    pub(crate) presence: BTreeMap<PresenceKey, PresenceView>,
}

impl BookTask {
    pub(crate) fn new(
        book: CallBook,
        store: LocalStore,
        events: broadcast::Sender<EngineEvent>,
    ) -> Self {
        Self {
            book,
            store,
            events,
            live: HashMap::new(),
            cards: HashMap::new(),
            presence: BTreeMap::new(),
        }
    }

    pub(crate) async fn run(
        mut self,
        mut inputs: mpsc::Receiver<BookInput>,
        mut commands: mpsc::Receiver<Command>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            tokio::select! {
                // News first: a snapshot then reflects everything reported before it was asked
                // for (e.g. stale calls closed on a new login).
                biased;
                Some(input) = inputs.recv() => self.input(input).await,
                Some(command) = commands.recv() => match command {
                    Command::Snapshot(reply) => {
                        let _ = reply.send(self.snapshot().await);
                    }
                    Command::Presence(reply) => {
                        let _ = reply.send(self.presence.values().cloned().collect());
                    }
                },
                () = stopped(&mut shutdown) => break,
                else => break,
            }
        }
        // What arrived before shutdown still counts (a call that just ended is stored).
        while let Ok(input) = inputs.try_recv() {
            self.input(input).await;
        }
        self.store.close().await;
    }

    async fn input(&mut self, input: BookInput) {
        match input {
            BookInput::Session(SessionOutput::Call(event)) => self.apply(event).await,
            BookInput::Session(SessionOutput::Resynced { live, at }) => {
                self.end_calls_not_in(&live, at).await;
            }
            BookInput::Session(SessionOutput::Presence(p)) => {
                self.presence_changed(PresenceView::from(&p));
            }
            BookInput::Session(SessionOutput::State(_)) => {}
            BookInput::Call(view) => self.upsert(*view).await,
            BookInput::Snapshot { calls, presence } => {
                self.replace(calls).await;
                self.presence.clear();
                for p in presence {
                    self.presence_changed(p);
                }
            }
            BookInput::Presence(p) => self.presence_changed(p),
        }
    }

    fn presence_changed(&mut self, p: PresenceView) {
        let key = (p.extension.clone(), p.queue.clone());
        let merged = match self.presence.get(&key) {
            // A device update keeps what the entry knew about pauses and vice versa.
            Some(old) => PresenceView {
                device: p.device.clone().or_else(|| old.device.clone()),
                paused: p.paused.or(old.paused),
                reason: if p.paused.is_some() {
                    p.reason.clone()
                } else {
                    old.reason.clone()
                },
                ..p
            },
            None => p,
        };
        self.presence.insert(key, merged.clone());
        let _ = self.events.send(EngineEvent::Presence(merged));
    }

    /// Shows and (once ended) stores a call.
    async fn upsert(&mut self, view: CallView) {
        self.upsert_reported(view, None).await;
    }

    /// [`Self::upsert`]; an ended call heard from this desk's own PBX session (`call`) is
    /// also queued for the hub when the store syncs with one (Direct profile with a hub).
    async fn upsert_reported(&mut self, mut view: CallView, call: Option<&calldesk_calls::Call>) {
        if view.state == CallStateView::Ended {
            // An ended call is held by nobody and monitored by nobody, and pops nowhere (as
            // the history reads it).
            view.on_hold = false;
            view.monitors.clear();
            view.event_at = None;
            self.live.remove(&view.id);
            if view.status.is_some() {
                let saved = match call {
                    Some(call) if self.store.sync_target().is_some() => {
                        let reported = calldesk_wire::HubCall::new(call);
                        self.store.save_ended_reported(&view, &reported).await
                    }
                    _ => self.store.save_ended(&view).await,
                };
                if let Err(e) = saved {
                    tracing::error!(call = %view.id, error = %e, "could not store a finished call");
                }
            }
        } else {
            self.live.insert(view.id.clone(), view.clone());
        }
        let _ = self.events.send(EngineEvent::CallUpdated(Box::new(view)));
    }

    /// The hub's live calls replace ours. A call we had that the hub no longer lists (and
    /// whose end the feed could not read) is shown as ended, not kept ringing forever.
    async fn replace(&mut self, calls: Vec<CallView>) {
        let listed: std::collections::HashSet<&str> = calls.iter().map(|c| c.id.as_str()).collect();
        let vanished: Vec<CallView> = self
            .live
            .values()
            .filter(|c| !listed.contains(c.id.as_str()))
            .cloned()
            .collect();
        for mut call in vanished {
            call.state = CallStateView::Ended;
            call.ended_at = Some(wall_clock_millis());
            self.upsert(call).await;
        }
        for call in calls {
            if self.live.get(&call.id) != Some(&call) {
                self.upsert(call).await;
            }
        }
    }

    async fn apply(&mut self, event: CallEvent) {
        match self.book.apply(&event) {
            Ok(Some(update)) => {
                let mut view = CallView::from(&update.call);
                view.event_at = Some(event.at.unix_millis());
                self.name_from_contacts(&mut view).await;
                self.upsert_reported(view, Some(&update.call)).await;
            }
            Ok(None) => {}
            Err(anomaly) => tracing::debug!(%anomaly, "call event ignored"),
        }
    }

    /// Names the other party of a call from this desk's own PBX session from the contacts
    /// cache (filled from the hub's directory), when the PBX did not name them.
    async fn name_from_contacts(&mut self, view: &mut CallView) {
        let card = match self.cards.get(&view.id) {
            Some(card) => card.clone(),
            None => {
                let party = if view.direction == calldesk_wire::DirectionView::Outbound {
                    &view.to
                } else {
                    &view.from
                };
                match &party.e164 {
                    Some(e164) => {
                        let card = self.store.contact_for(e164).await.unwrap_or_else(|e| {
                            tracing::warn!(error = %e, "cannot read the contacts cache");
                            None
                        });
                        self.cards.insert(view.id.clone(), card.clone());
                        card
                    }
                    // Not a number yet (the first leg of a call the operator places): asked
                    // again on the call's next event.
                    None => None,
                }
            }
        };
        if view.state == CallStateView::Ended {
            self.cards.remove(&view.id);
        }
        if let Some((name, company)) = card {
            let party = if view.direction == calldesk_wire::DirectionView::Outbound {
                &mut view.to
            } else {
                &mut view.from
            };
            if party.name.is_none() {
                party.name = Some(name);
            }
            if view.company.is_none() {
                view.company = company;
            }
        }
    }

    /// Ends every live call the PBX no longer has (after a resync).
    async fn end_calls_not_in(&mut self, live: &[CallId], at: Timestamp) {
        let stale = self.book.live_not_in(live);
        if !stale.is_empty() {
            tracing::warn!(
                calls = stale.len(),
                "closing calls the PBX no longer lists after a resync"
            );
        }
        for call in stale {
            let kind = CallEventKind::Ended {
                cause: None,
                status: None,
            };
            self.apply(CallEvent { call, at, kind }).await;
        }
    }

    async fn snapshot(&self) -> Vec<CallView> {
        let mut live: Vec<CallView> = self.live.values().cloned().collect();
        live.sort_by_key(|c| std::cmp::Reverse(c.started_at));
        match self.store.recent_calls(RECENT_CALLS).await {
            Ok(recent) => live.extend(recent),
            Err(e) => tracing::error!(error = %e, "could not read the call history"),
        }
        live
    }
}

pub(crate) use calldesk_store::wall_clock_millis;
