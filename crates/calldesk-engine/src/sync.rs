//! The sync worker: sends this desk's changes to the hub and brings the hub's back.
//!
//! Every after-call write lands in the local store first, with its outbox row in the same
//! transaction (`calldesk-store`'s `outbox.rs`), so the desk works the same with the hub away.
//! A round pushes the outbox in batches (each row once per round, in the order it was made),
//! settles each row by the hub's answer, then pulls the feed from the stored cursor until it is
//! drained, storing each page with its cursor in one transaction. Rounds run when something
//! wakes the worker (a local write, the hub's `sync-changed`, an ended call) and every
//! [`PULL_EVERY`]; while the hub cannot be reached they back off with jitter.
//!
//! Killed at any point, the next start repeats at most one batch (the hub applies each change
//! id once) or one page (pulled state is applied idempotently): nothing lost, nothing twice.

use std::sync::Arc;
use std::time::Duration;

use calldesk_ami::{Backoff, BackoffConfig};
use calldesk_calls::{NumberPlan, PartyMemo, Timestamp};
use calldesk_store::{LocalStore, PulledCall, StoreError};
use calldesk_wire::{CallNote, HubCall, SyncChange, SyncState, SyncStatusView};
use tokio::sync::{Notify, broadcast, watch};

use crate::EngineEvent;
use crate::engine::stopped;
use crate::hub::{HubClient, HubError};

/// Changes per push (the hub takes up to `calldesk_wire::MAX_PUSH`).
pub(crate) const PUSH_BATCH: u32 = 1000;
/// Calls per pull.
const PULL_PAGE: usize = 500;
/// A round runs at least this often while nothing wakes the worker.
pub(crate) const PULL_EVERY: Duration = Duration::from_secs(15);
/// The contacts cache and the disposition list are read again this often (and at the first
/// round).
const CONTACTS_EVERY: Duration = Duration::from_secs(600);

/// What wakes the worker: `news` (a local write; ignored while the worker backs off from an
/// unreachable hub, so typing offline does not hammer it) and `now` (the hub is back or has
/// news, or the operator asked: cuts a back-off short).
#[derive(Debug, Clone, Default)]
pub(crate) struct Wake {
    pub(crate) news: Arc<Notify>,
    pub(crate) now: Arc<Notify>,
}

/// What the engine holds of a running worker.
#[derive(Debug, Clone)]
pub(crate) struct SyncControl {
    pub(crate) wake: Wake,
    pub(crate) status: watch::Receiver<SyncStatusView>,
}

#[derive(Debug, thiserror::Error)]
enum RoundError {
    #[error(transparent)]
    Hub(#[from] HubError),
    #[error("the local call history: {0}")]
    Store(#[from] StoreError),
}

pub(crate) struct SyncWorker {
    pub(crate) client: HubClient,
    pub(crate) store: LocalStore,
    pub(crate) plan: NumberPlan,
    pub(crate) wake: Wake,
    pub(crate) status: watch::Sender<SyncStatusView>,
    pub(crate) events: broadcast::Sender<EngineEvent>,
}

impl SyncWorker {
    /// Rounds until shutdown.
    pub(crate) async fn run(self, backoff: BackoffConfig, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = Backoff::new(backoff);
        let mut parties = PartyMemo::new(self.plan.clone(), 4096);
        let mut contacts_at: Option<tokio::time::Instant> = None;
        loop {
            let outcome = tokio::select! {
                r = self.round(&mut parties, &mut contacts_at) => r,
                () = stopped(&mut shutdown) => return,
            };
            let backing_off = outcome.is_err();
            let wait = match outcome {
                Ok(()) => {
                    backoff.reset();
                    PULL_EVERY
                }
                Err(e) => {
                    let offline = matches!(
                        e,
                        RoundError::Hub(HubError::Unreachable { .. } | HubError::Silent)
                    );
                    tracing::info!(error = %e, "sync round stopped; changes wait on this desk");
                    let counts = self.store.outbox_counts().await.unwrap_or_default();
                    self.report(|s| {
                        s.state = if offline {
                            SyncState::Offline
                        } else {
                            SyncState::Idle
                        };
                        s.pending = counts.pending;
                        s.refused = counts.refused;
                        s.error = Some(e.to_string());
                    });
                    backoff.next_delay()
                }
            };
            let until = tokio::time::Instant::now() + wait;
            loop {
                tokio::select! {
                    () = self.wake.news.notified() => {
                        if !backing_off {
                            break;
                        }
                        // Not a round, but the count the operator sees grows.
                        if let Ok(counts) = self.store.outbox_counts().await {
                            self.report(|s| {
                                s.pending = counts.pending;
                                s.refused = counts.refused;
                            });
                        }
                    }
                    () = self.wake.now.notified() => break,
                    () = tokio::time::sleep_until(until) => break,
                    () = stopped(&mut shutdown) => return,
                }
            }
        }
    }

    fn report(&self, change: impl FnOnce(&mut SyncStatusView)) {
        let mut next = None;
        self.status.send_if_modified(|s| {
            let before = s.clone();
            change(s);
            if *s == before {
                return false;
            }
            next = Some(s.clone());
            true
        });
        if let Some(next) = next {
            let _ = self.events.send(EngineEvent::SyncChanged(next));
        }
    }

    async fn round(
        &self,
        parties: &mut PartyMemo,
        contacts_at: &mut Option<tokio::time::Instant>,
    ) -> Result<(), RoundError> {
        let counts = self.store.outbox_counts().await?;
        let total = counts.pending;
        if total > 0 {
            self.report(|s| {
                // Still offline until a push gets through (no flicker on every retry).
                if s.state != SyncState::Offline {
                    s.state = SyncState::Syncing;
                }
                s.pending = counts.pending;
                s.refused = counts.refused;
                s.done = 0;
                s.total = total;
            });
        }
        // Push: every pending row once, oldest first (a row the hub asks to retry waits for
        // the next round instead of holding up the ones behind it).
        let mut after = 0;
        let mut done = 0;
        loop {
            let batch = self.store.pending_changes(after, PUSH_BATCH).await?;
            let Some((last, _)) = batch.last() else {
                break;
            };
            after = *last;
            let changes: Vec<SyncChange> = batch.into_iter().map(|(_, c)| c).collect();
            let results = self.client.push(&changes).await?;
            self.store.settle(&results).await?;
            done += changes.len() as u64;
            // Counted, not queried, between batches (the end of the round counts exactly).
            self.report(|s| {
                s.state = SyncState::Syncing;
                s.pending = total.saturating_sub(done);
                s.done = done;
                s.total = total.max(done);
            });
        }
        // The tenant's directory, at the first round and every 10 minutes (not every round:
        // the after-call panel reads the disposition list whenever it shows a call):
        // the disposition list, for checks while the hub is away, and the contacts cache — the
        // whole directory, page by page, then replaced at once.
        if contacts_at.is_none_or(|at| at.elapsed() >= CONTACTS_EVERY) {
            if let Ok(codes) = self.client.dispositions().await {
                self.store.remember_dispositions(&codes).await?;
            }
            let mut all = Vec::new();
            let mut after = 0;
            loop {
                let (page, next) = self.client.contacts_page(after).await?;
                all.extend(page);
                match next {
                    Some(next) if next > after => after = next,
                    _ => break,
                }
            }
            let phones = self.store.replace_contacts(&all).await?;
            tracing::debug!(contacts = all.len(), phones, "contacts cache refreshed");
            *contacts_at = Some(tokio::time::Instant::now());
        }
        // Pull until drained.
        let mut cursor = self.store.pull_cursor().await?;
        loop {
            let page = self.client.pull(&cursor, PULL_PAGE).await?;
            let calls: Vec<PulledCall> = page.calls.iter().map(|c| pulled(c, parties)).collect();
            self.store.apply_pulled(&calls, &page.cursor).await?;
            if !calls.is_empty() {
                let _ = self.events.send(EngineEvent::HistoryChanged);
            }
            cursor = page.cursor;
            if !page.more {
                break;
            }
        }
        let counts = self.store.outbox_counts().await?;
        let now = calldesk_store::wall_clock_millis();
        self.report(|s| {
            s.state = SyncState::Idle;
            s.pending = counts.pending;
            s.refused = counts.refused;
            s.done = 0;
            s.total = 0;
            s.last_synced_at = Some(now);
            s.error = None;
        });
        Ok(())
    }
}

/// A pulled hub call as the local store keeps it.
pub(crate) fn pulled(c: &HubCall, parties: &mut PartyMemo) -> PulledCall {
    PulledCall {
        view: c.view(parties),
        notes: c.notes.iter().map(CallNote::from).collect(),
        disposition: c.disposition.as_ref().map(|d| {
            let at = Timestamp::parse_rfc3339(&d.set_at).map_or(0, Timestamp::unix_millis);
            (d.code.clone(), at)
        }),
        tags: c.tags.clone(),
    }
}
