//! The webhook stream of a busy call centre: `live_calls` calls at once, each rendered by the
//! fake Mango ([`calldesk_sim::mango::render`]) with fresh ids, their webhooks interleaved
//! round-robin (one webhook of each live call in turn; a call that has sent its last webhook is
//! replaced by a new one in its slot). So each call's webhooks keep their order, two webhooks of
//! one call are `live_calls` positions apart (`live_calls / rate` seconds — far more than the
//! latency being measured, so a WebSocket message is matched to the webhook that caused it), and
//! the mix of call kinds is seeded and reproducible. Render's simulated times are only used for
//! the order within a call.

use std::collections::VecDeque;
use std::sync::Arc;

use calldesk_mango_proto::webhook::{Route, Webhook as Parsed};
use calldesk_sim::mango::{Ids, MangoScenario, render};

/// The VPBX line inbound calls come in on.
pub const LINE: &str = "74951234567";

/// `Ids` tell seeds apart by `seed % 1000` and hand out a million numbers per seed; a call uses
/// fewer than ten, so the seed moves on after this many calls to keep every id fresh.
const CALLS_PER_SEED: u64 = 100_000;

/// One webhook to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// The call (`entry_id`) when the webhook names one (`result/*` webhooks do not).
    pub call: Option<Arc<str>>,
    /// Below `/mango/{tenant}/`, e.g. `events/call`.
    pub path: String,
    /// The exact `json` form field.
    pub json: String,
}

#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Calls in progress at once (≥ 1).
    pub live_calls: usize,
    /// Extensions the calls ring (≥ 1).
    pub operators: Vec<String>,
    pub seed: u64,
    /// Unix time of the start (webhook timestamps).
    pub start_unix: i64,
    /// Webhooks per second: a call rendered at webhook `k` starts at `start_unix + k / rate`.
    pub rate: f64,
}

#[derive(Debug)]
pub struct WebhookStream {
    cfg: StreamConfig,
    slots: Vec<VecDeque<Webhook>>,
    cursor: usize,
    emitted: u64,
    calls: u64,
    calls_per_seed: u64,
    ids: Ids,
}

/// SplitMix64: a deterministic mixer for the choice of each call.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl WebhookStream {
    pub fn new(mut cfg: StreamConfig) -> Self {
        cfg.live_calls = cfg.live_calls.max(1);
        if cfg.operators.is_empty() {
            cfg.operators.push(String::from("101"));
        }
        if !(cfg.rate.is_finite() && cfg.rate > 0.0) {
            cfg.rate = 1.0;
        }
        let ids = Ids::new(cfg.seed);
        Self {
            slots: vec![VecDeque::new(); cfg.live_calls],
            cursor: 0,
            emitted: 0,
            calls: 0,
            calls_per_seed: CALLS_PER_SEED,
            ids,
            cfg,
        }
    }

    /// How many calls were started so far.
    #[cfg(test)]
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The scenario of call number `n` (seeded; the mix of a call centre's day).
    fn scenario(&self, n: u64) -> MangoScenario {
        let r = mix(self.cfg.seed.rotate_left(32) ^ n);
        let ops = &self.cfg.operators;
        let pick = |salt: u64| {
            let i = (mix(r ^ salt) % ops.len() as u64) as usize;
            ops.get(i).cloned().unwrap_or_default()
        };
        let caller = format!("7916{:07}", n % 10_000_000);
        let line = LINE.to_owned();
        let operator = pick(1);
        // A second operator other than the first, when there is one.
        let other = || {
            let first = ops.iter().position(|o| *o == operator).unwrap_or(0);
            let step = 1 + (mix(r ^ 2) % (ops.len() as u64 - 1).max(1)) as usize;
            ops.get((first + step) % ops.len()).cloned()
        };
        match r % 100 {
            0..35 => MangoScenario::InboundAnswered {
                caller,
                line,
                operator,
            },
            35..50 => {
                let mut operators = vec![operator.clone()];
                if let Some(o) = other().filter(|o| *o != operator) {
                    operators.push(o);
                }
                MangoScenario::InboundMissed {
                    caller,
                    line,
                    operators,
                }
            }
            50..60 => MangoScenario::Hold {
                caller,
                line,
                operator,
            },
            60..70 => MangoScenario::Recorded {
                caller,
                line,
                operator,
            },
            70..80 => match other().filter(|o| *o != operator) {
                Some(to_op) => MangoScenario::BlindTransfer {
                    caller,
                    line,
                    from_op: operator,
                    to_op,
                },
                None => MangoScenario::InboundAnswered {
                    caller,
                    line,
                    operator,
                },
            },
            80..90 => MangoScenario::OutboundBusy {
                operator,
                number: caller,
            },
            x => MangoScenario::Callback {
                operator,
                number: caller,
                customer_answers: x < 95,
            },
        }
    }

    /// Renders the next call into `slot`.
    fn refill(&mut self, slot: usize) {
        let n = self.calls;
        self.calls += 1;
        if n > 0 && n.is_multiple_of(self.calls_per_seed) {
            let generation = n / self.calls_per_seed;
            self.ids = Ids::new(self.cfg.seed.wrapping_add(generation));
        }
        let scenario = self.scenario(n);
        let offset = (self.emitted as f64 / self.cfg.rate) as i64;
        let deliveries = render(&scenario, &self.ids, self.cfg.start_unix + offset);
        let mut call: Option<Arc<str>> = None;
        let queue = deliveries
            .into_iter()
            .map(|d| {
                let entry = entry_id(&d.path, &d.json).map(|id| match &call {
                    Some(c) if **c == *id => c.clone(),
                    _ => {
                        let c: Arc<str> = Arc::from(id.as_str());
                        call.get_or_insert_with(|| c.clone());
                        c
                    }
                });
                Webhook {
                    call: entry,
                    path: d.path,
                    json: d.json,
                }
            })
            .collect();
        if let Some(q) = self.slots.get_mut(slot) {
            *q = queue;
        }
    }
}

/// The call a webhook belongs to, as the hub reads it.
fn entry_id(path: &str, json: &str) -> Option<String> {
    let route = Route::from_path(path).ok()?;
    Parsed::parse(&route, json)
        .ok()?
        .entry_id()
        .map(str::to_owned)
}

impl Iterator for WebhookStream {
    type Item = Webhook;

    fn next(&mut self) -> Option<Webhook> {
        let slot = self.cursor;
        self.cursor = (self.cursor + 1) % self.slots.len();
        if self.slots.get(slot).is_none_or(VecDeque::is_empty) {
            self.refill(slot);
        }
        let w = self.slots.get_mut(slot)?.pop_front()?;
        self.emitted += 1;
        Some(w)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn cfg(live: usize, seed: u64) -> StreamConfig {
        StreamConfig {
            live_calls: live,
            operators: vec!["101".into(), "102".into(), "103".into()],
            seed,
            start_unix: 1_716_800_000,
            rate: 1_000.0,
        }
    }

    #[test]
    fn calls_are_interleaved_and_keep_their_order() {
        let live = 50;
        let stream = WebhookStream::new(cfg(live, 7));
        let all: Vec<Webhook> = stream.take(20_000).collect();
        // Positions of each call's webhooks.
        let mut by_call: HashMap<Arc<str>, Vec<usize>> = HashMap::new();
        for (i, w) in all.iter().enumerate() {
            if let Some(c) = &w.call {
                by_call.entry(c.clone()).or_default().push(i);
            }
        }
        assert!(by_call.len() > 1_000, "{} calls", by_call.len());
        for positions in by_call.values() {
            for pair in positions.windows(2) {
                assert!(pair[1] - pair[0] >= live, "{pair:?}");
            }
        }
        // Every window of `live` webhooks has that many different calls (round robin).
        for window in all[5_000..5_000 + live].chunks(live) {
            let calls: HashSet<_> = window.iter().filter_map(|w| w.call.clone()).collect();
            assert!(calls.len() >= live - 5, "{}", calls.len());
        }
        // Within each call, leg snapshots keep their order (`seq` grows per leg) and the
        // summary comes after every leg event.
        let mut last_seq: HashMap<String, u64> = HashMap::new();
        let mut summarised: HashSet<Arc<str>> = HashSet::new();
        for w in &all {
            let route = Route::from_path(&w.path).unwrap();
            match Parsed::parse(&route, &w.json).unwrap() {
                Parsed::Call(leg) => {
                    let call = w.call.clone().unwrap();
                    assert!(!summarised.contains(&call), "leg event after the summary");
                    let seq = leg.seq;
                    let prev = last_seq.insert(leg.call_id.clone(), seq);
                    assert!(prev.is_none_or(|p| p < seq), "{prev:?} then {seq}");
                }
                Parsed::Summary(_) => {
                    summarised.insert(w.call.clone().unwrap());
                }
                _ => {}
            }
        }
    }

    #[test]
    fn the_mix_has_every_kind_and_ids_are_unique() {
        let mut stream = WebhookStream::new(cfg(20, 3));
        stream.calls_per_seed = 40; // move seeds on within the test
        let all: Vec<Webhook> = stream.by_ref().take(4_000).collect();
        assert!(stream.calls() > 120);
        let paths: HashSet<&str> = all.iter().map(|w| w.path.as_str()).collect();
        for p in [
            "events/call",
            "events/summary",
            "events/recording",
            "events/record/added",
            "result/callback",
            "result/transfer",
        ] {
            assert!(paths.contains(p), "no {p} in {paths:?}");
        }
        // One entry id per call: the number of summaries equals the number of distinct calls
        // that finished, and no entry id has two summaries.
        let mut summaries: HashMap<Arc<str>, u32> = HashMap::new();
        for w in all.iter().filter(|w| w.path == "events/summary") {
            *summaries.entry(w.call.clone().unwrap()).or_default() += 1;
        }
        assert!(summaries.len() > 100);
        assert!(
            summaries.values().all(|&n| n == 1),
            "an entry id was reused"
        );
        // `result/*` webhooks have no call; every `events/*` one has.
        for w in &all {
            assert_eq!(
                w.call.is_some(),
                w.path.starts_with("events/"),
                "{}",
                w.path
            );
        }
    }

    #[test]
    fn only_the_given_operators_are_rung_and_the_stream_is_seeded() {
        let all: Vec<Webhook> = WebhookStream::new(cfg(10, 5)).take(2_000).collect();
        for w in &all {
            let v: serde_json::Value = serde_json::from_str(&w.json).unwrap();
            for side in ["from", "to"] {
                if let Some(ext) = v[side]["extension"].as_str() {
                    assert!(["101", "102", "103"].contains(&ext), "{ext}");
                }
            }
        }
        let again: Vec<Webhook> = WebhookStream::new(cfg(10, 5)).take(2_000).collect();
        assert_eq!(all, again);
        let other: Vec<Webhook> = WebhookStream::new(cfg(10, 6)).take(10).collect();
        assert_ne!(all[0].call, other[0].call);
    }

    #[test]
    fn one_operator_and_one_slot_still_work() {
        let mut c = cfg(0, 1);
        c.operators = vec!["205".into()];
        let all: Vec<Webhook> = WebhookStream::new(c).take(300).collect();
        assert_eq!(all.len(), 300);
        // One slot: calls follow each other, each one whole.
        let mut seen: Vec<Arc<str>> = Vec::new();
        for c in all.iter().filter_map(|w| w.call.clone()) {
            if seen.last() != Some(&c) {
                assert!(!seen.contains(&c), "a call came back");
                seen.push(c);
            }
        }
    }
}
