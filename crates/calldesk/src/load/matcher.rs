//! Matching WebSocket messages to the webhooks that caused them.
//!
//! [`SendLog`] keeps, per call (`entry_id`), when each of its webhooks left (microseconds since
//! the start of the run). A `call-new`/`call-updated`/`call-ended` for call `c` received at `t`
//! is matched to the latest webhook of `c` sent at or before `t`: its latency is `t − that send`.
//! A `call-new` also gives the pop latency, from the call's first webhook that names it (a
//! callback's `result/callback` names no call, so its first `events/call`). Messages about calls
//! this run never sent (calls of earlier runs in a snapshot, say) are counted as unmatched.
//! [`WatchStats::observe`] reads one text frame of the hub's WebSocket
//! ([`calldesk_wire::HubMessage`] JSON) and files it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Deserialize;

use super::histogram::Histogram;

#[derive(Debug, Default)]
pub struct SendLog {
    calls: Mutex<HashMap<Arc<str>, Vec<u64>>>,
}

/// What a call message of the hub was matched to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    /// Since the latest webhook of the call sent at or before the receipt.
    pub latency_us: u64,
    /// Since the call's first webhook (`call-new` only).
    pub pop_us: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    New,
    Updated,
    Ended,
}

impl SendLog {
    /// Webhook of `call` sent at `at_us`. Sends may be recorded slightly out of order by
    /// concurrent senders; each call's list stays sorted.
    pub fn record(&self, call: &Arc<str>, at_us: u64) {
        let mut calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let sends = calls.entry(call.clone()).or_default();
        let at = sends.partition_point(|&s| s <= at_us);
        sends.insert(at, at_us);
    }

    /// The message `kind` about `call`, received at `at_us`.
    pub fn matched(&self, call: &str, kind: CallKind, at_us: u64) -> Option<Matched> {
        let calls = self.calls.lock().unwrap_or_else(PoisonError::into_inner);
        let sends = calls.get(call)?;
        let before = sends.partition_point(|&s| s <= at_us);
        let latest = *sends.get(before.checked_sub(1)?)?;
        let first = *sends.first()?;
        Some(Matched {
            latency_us: at_us - latest,
            pop_us: (kind == CallKind::New).then(|| at_us - first),
        })
    }

    /// Calls with at least one webhook sent.
    pub fn calls(&self) -> usize {
        self.calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The part of a [`calldesk_wire::HubMessage`] the load tool reads.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    call: Option<CallRef<'a>>,
    #[serde(default, borrow)]
    reason: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CallRef<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

/// What the supervisor clients saw.
#[derive(Debug, Default, Clone)]
pub struct WatchStats {
    /// Text frames received.
    pub messages: u64,
    pub call_new: u64,
    pub call_updated: u64,
    pub call_ended: u64,
    /// Snapshots with reason `lagged` (the client fell behind; the hub replaced everything).
    pub lagged: u64,
    pub snapshots: u64,
    /// `presence`, `pbx-status`, `hello` and anything newer.
    pub other: u64,
    /// Call messages about calls this run did not send (or before their first webhook).
    pub unmatched: u64,
    /// Frames that were not JSON messages of the hub's protocol.
    pub unreadable: u64,
    /// `call-new` and `call-updated`: receipt − latest webhook of the call (µs).
    pub latency: Histogram,
    /// `call-new`: receipt − the call's first webhook (µs).
    pub pop: Histogram,
    /// `call-ended`: receipt − latest webhook (µs); includes the tracker's wait for the summary
    /// to settle, so it is reported apart.
    pub ended: Histogram,
    /// Messages answering webhooks sent before this time (µs since the run's epoch) are the
    /// warm-up: filed in `warmup` (and pops in `warmup_pop`), not in `latency` and `pop`.
    pub warmup_until_us: u64,
    pub warmup: Histogram,
    pub warmup_pop: Histogram,
}

impl WatchStats {
    /// Files one text frame received at `at_us`.
    pub fn observe(&mut self, log: &SendLog, frame: &str, at_us: u64) {
        self.messages += 1;
        let Ok(msg) = serde_json::from_str::<Envelope<'_>>(frame) else {
            self.unreadable += 1;
            return;
        };
        let kind = match msg.kind.as_ref() {
            "call-new" => CallKind::New,
            "call-updated" => CallKind::Updated,
            "call-ended" => CallKind::Ended,
            "snapshot" => {
                self.snapshots += 1;
                if msg.reason.as_deref() == Some("lagged") {
                    self.lagged += 1;
                }
                return;
            }
            _ => {
                self.other += 1;
                return;
            }
        };
        match kind {
            CallKind::New => self.call_new += 1,
            CallKind::Updated => self.call_updated += 1,
            CallKind::Ended => self.call_ended += 1,
        }
        let Some(call) = msg.call else {
            self.unreadable += 1;
            return;
        };
        let Some(m) = log.matched(&call.id, kind, at_us) else {
            self.unmatched += 1;
            return;
        };
        let warm = |since: u64| at_us.saturating_sub(since) < self.warmup_until_us;
        match kind {
            CallKind::Ended => self.ended.record(m.latency_us),
            CallKind::New | CallKind::Updated if warm(m.latency_us) => {
                self.warmup.record(m.latency_us);
            }
            CallKind::New | CallKind::Updated => self.latency.record(m.latency_us),
        }
        if let Some(pop) = m.pop_us {
            if warm(pop) {
                self.warmup_pop.record(pop);
            } else {
                self.pop.record(pop);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use calldesk_calls::{
        CallBook, CallEvent, CallEventKind, CallId, Direction, Extension, NumberPlan, TenantId,
        Timestamp,
    };
    use calldesk_wire::{ConnectionState, HubCall, HubMessage, SnapshotReason};

    use super::*;

    fn arc(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn a_message_matches_the_latest_webhook_sent_before_it() {
        let log = SendLog::default();
        let a = arc("A");
        log.record(&a, 1_000);
        log.record(&a, 5_000);
        log.record(&a, 3_000); // recorded late by another sender: kept sorted
        log.record(&arc("B"), 4_000);
        assert_eq!(
            log.matched("A", CallKind::New, 1_700),
            Some(Matched {
                latency_us: 700,
                pop_us: Some(700)
            })
        );
        // Between the 2nd and the 3rd webhook: the 2nd caused it.
        assert_eq!(
            log.matched("A", CallKind::Updated, 3_250),
            Some(Matched {
                latency_us: 250,
                pop_us: None
            })
        );
        assert_eq!(
            log.matched("A", CallKind::New, 5_100),
            Some(Matched {
                latency_us: 100,
                pop_us: Some(4_100)
            })
        );
        // At the very send time: zero.
        assert_eq!(
            log.matched("B", CallKind::Ended, 4_000)
                .map(|m| m.latency_us),
            Some(0)
        );
        // Before any webhook of the call, or an unknown call: no match.
        assert_eq!(log.matched("A", CallKind::Updated, 999), None);
        assert_eq!(log.matched("C", CallKind::New, 9_999), None);
        assert_eq!(log.calls(), 2);
    }

    fn hub_call(id: &str) -> HubCall {
        let plan = NumberPlan::new("RU").unwrap();
        let mut book = CallBook::new(TenantId::new("acme").unwrap());
        let id = CallId::new(id).unwrap();
        let ev = |ms, kind| CallEvent {
            call: id.clone(),
            at: Timestamp::from_unix_millis(ms),
            kind,
        };
        book.apply(&ev(
            1_000,
            CallEventKind::Started {
                direction: Direction::Inbound,
                from: plan.party("+74951234567"),
                to: plan.party("0367"),
            },
        ))
        .unwrap();
        let update = book
            .apply(&ev(
                1_500,
                CallEventKind::OperatorRinging {
                    extension: Extension::new("101").unwrap(),
                },
            ))
            .unwrap()
            .unwrap();
        HubCall::new(&update.call)
    }

    fn frame(m: &HubMessage) -> String {
        serde_json::to_string(m).unwrap()
    }

    #[test]
    fn hub_messages_are_filed_by_kind() {
        let log = SendLog::default();
        log.record(&arc("MjYwMDAwMDAwMDA="), 10_000);
        log.record(&arc("MjYwMDAwMDAwMDA="), 20_000);
        let call = hub_call("MjYwMDAwMDAwMDA=");
        let mut w = WatchStats::default();
        let hello = r#"{"type":"hello","protocol":1,"tenant":"acme","operator_id":1,"role":"supervisor","extension":null}"#;
        w.observe(&log, hello, 0);
        let snap = |reason| HubMessage::Snapshot {
            reason,
            calls: vec![],
            presence: vec![],
        };
        w.observe(&log, &frame(&snap(SnapshotReason::Connect)), 1);
        w.observe(
            &log,
            &frame(&HubMessage::CallNew { call: call.clone() }),
            12_000,
        );
        w.observe(
            &log,
            &frame(&HubMessage::CallUpdated { call: call.clone() }),
            23_000,
        );
        w.observe(
            &log,
            &frame(&HubMessage::CallEnded { call: call.clone() }),
            2_020_000,
        );
        w.observe(
            &log,
            &frame(&HubMessage::CallNew {
                call: hub_call("1795259787.0"),
            }),
            30_000,
        );
        w.observe(
            &log,
            &frame(&HubMessage::PbxStatus {
                state: ConnectionState::Connected,
                detail: None,
            }),
            40_000,
        );
        w.observe(&log, &frame(&snap(SnapshotReason::Lagged)), 50_000);
        w.observe(&log, "not json", 60_000);
        assert_eq!(w.messages, 9);
        assert_eq!((w.call_new, w.call_updated, w.call_ended), (2, 1, 1));
        assert_eq!((w.snapshots, w.lagged, w.other), (2, 1, 2));
        assert_eq!((w.unmatched, w.unreadable), (1, 1));
        assert_eq!(w.latency.count(), 2);
        assert_eq!((w.latency.min(), w.latency.max()), (2_000, 3_000));
        assert_eq!((w.pop.count(), w.pop.max()), (1, 2_000));
        assert_eq!((w.ended.count(), w.ended.max()), (1, 2_000_000));
        assert_eq!((w.warmup.count(), w.warmup_pop.count()), (0, 0));
    }

    #[test]
    fn answers_to_webhooks_sent_during_the_warm_up_are_filed_apart() {
        let log = SendLog::default();
        let (a, b) = ("MjYwMDAwMDAwMDA=", "MjYwMDAwMDAwMDE=");
        log.record(&arc(a), 1_000); // warm-up
        log.record(&arc(a), 6_000);
        log.record(&arc(b), 7_000);
        let mut w = WatchStats {
            warmup_until_us: 5_000,
            ..WatchStats::default()
        };
        let new = |id| frame(&HubMessage::CallNew { call: hub_call(id) });
        let updated = |id| frame(&HubMessage::CallUpdated { call: hub_call(id) });
        w.observe(&log, &new(a), 1_500); // webhook at 1 000: warm-up, pop too
        w.observe(&log, &updated(a), 6_400); // webhook at 6 000: measured
        w.observe(&log, &new(b), 7_900); // measured, pop measured
        assert_eq!((w.warmup.count(), w.warmup.max()), (1, 500));
        assert_eq!((w.warmup_pop.count(), w.warmup_pop.max()), (1, 500));
        assert_eq!(
            (w.latency.count(), w.latency.min(), w.latency.max()),
            (2, 400, 900)
        );
        assert_eq!((w.pop.count(), w.pop.max()), (1, 900));
    }
}
