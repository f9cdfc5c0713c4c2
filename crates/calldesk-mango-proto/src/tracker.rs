//! The Mango call tracker (pure: time is an input, no IO).
//!
//! `entry_id` is the call; its legs are keyed by `call_id`. Mango posts webhooks in parallel and
//! without retries, so they arrive out of order, sometimes twice, sometimes not at all. The
//! tracker therefore keeps, per call, the **set** of leg snapshots it has seen (`(call_id, seq)`
//! is the idempotency key) plus the summary and the recordings, and derives the call's facts from
//! that set alone ([`derive`]): the same set gives the same call whatever the arrival order.
//!
//! - A leg's *current* state is its highest `seq`; an older (stale) snapshot never moves it back,
//!   but still counts as history (a `Connected` that arrives after its `Disconnected` still means
//!   the leg was answered).
//! - Answered: a leg was `Connected` between an employee and the customer (one side with an
//!   extension, the other without; both for internal calls), not in the IVR or queue, and not the
//!   operator's own leg of a click-to-call (`callback`); `/events/summary` wins: `talk_time > 0`
//!   is answered, `0` is not.
//! - The first event of a call announces it at once (the pop); facts learnt later in a way the
//!   incremental events cannot say are sent as one `Revised`.
//! - A call ends when its summary arrived and `settle` passed (late legs of the same burst still
//!   count), or, when the summary never comes, `no_summary` after every known leg disconnected,
//!   or `stale` after the last event. [`MangoTracker::tick`] applies these; [`MangoTracker::finish`]
//!   ends everything (end of a replay).
//! - Events for a call that already ended are counted and dropped (`late_events`).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use calldesk_calls::{
    CallEvent, CallEventKind, CallFacts, CallId, CallStatus, Direction, Extension, HangupCause,
    NumberPlan, PartyMemo, Timestamp, Transfer, TransferKind,
};

use crate::codes::{Code, Ending};
use crate::webhook::{
    CallLeg, LegParty, LegState, Location, Recording, RecordingState, Summary, TransferMark,
    Webhook,
};

/// A leg of a live call, as the command client needs it to address a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLeg {
    pub call_id: String,
    pub state: LegState,
    pub location: Option<Location>,
    pub from: LegParty,
    pub to: LegParty,
}

impl LiveLeg {
    /// Whether `extension` is one side of this leg.
    pub fn has_extension(&self, extension: &str) -> bool {
        self.from.extension.as_deref() == Some(extension)
            || self.to.extension.as_deref() == Some(extension)
    }
}

/// Who answers "which legs does this call have now" (the tracker; a test double in tests).
pub trait LegDirectory {
    /// The legs of a live call that have not disconnected, in order of appearance; `None` when
    /// the call is not live.
    fn live_legs(&self, call: &CallId) -> Option<Vec<LiveLeg>>;
}

/// When calls end (arrival times, milliseconds).
/// How many distinct party texts the tracker remembers parsed.
const PARTY_MEMO: usize = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// After the summary arrived, wait this long for legs of the same burst.
    pub settle_ms: i64,
    /// Without a summary: end this long after every known leg disconnected.
    pub no_summary_ms: i64,
    /// End a call with no event for this long, whatever its legs say.
    pub stale_ms: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            settle_ms: 2_000,
            no_summary_ms: 60_000,
            stale_ms: 4 * 3_600_000,
        }
    }
}

/// How many ended call ids are remembered to drop late events.
const REMEMBERED_ENDED: usize = 4096;

/// One leg as a webhook described it at one `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Snapshot {
    state: LegState,
    at: Timestamp,
    location: Option<Location>,
    from: LegParty,
    to: LegParty,
    reason: Option<Code>,
    transfer: Option<TransferMark>,
    /// Set by a command or a callback (`command_id`, `callback_initiator`).
    commanded: bool,
}

#[derive(Debug, Default)]
struct Leg {
    snapshots: BTreeMap<u64, Snapshot>,
}

impl Leg {
    fn current(&self) -> Option<&Snapshot> {
        self.snapshots.values().next_back()
    }

    fn first_at(&self) -> Timestamp {
        self.snapshots
            .values()
            .map(|s| s.at)
            .min()
            .unwrap_or(Timestamp::from_unix_millis(0))
    }

    /// Any snapshot's value (the earliest that has it): parties are stable across a leg's life
    /// except where Mango replaces the caller (a consultation joined to the held party).
    fn any<T>(&self, f: impl Fn(&Snapshot) -> Option<T>) -> Option<T> {
        self.snapshots.values().find_map(f)
    }

    fn taken_from(&self) -> Option<&str> {
        self.snapshots
            .values()
            .find_map(|s| s.from.taken_from_call_id.as_deref())
    }

    fn commanded(&self) -> bool {
        self.snapshots.values().any(|s| s.commanded)
    }

    fn transfer(&self) -> Option<TransferMark> {
        self.any(|s| s.transfer)
    }

    fn disconnected(&self) -> Option<&Snapshot> {
        self.snapshots
            .values()
            .find(|s| s.state == LegState::Disconnected)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rec {
    first_at: Timestamp,
    /// Completed with 4002: too short, not saved.
    discarded: bool,
}

#[derive(Debug)]
struct Entry {
    id: CallId,
    legs: HashMap<String, Leg>,
    summary: Option<Summary>,
    recordings: HashMap<String, Rec>,
    /// Arrival of the last event, and of the summary.
    last_arrival: Timestamp,
    summary_arrival: Option<Timestamp>,
    /// What the call book was told so far (`None` before the start was announced).
    told: Option<View>,
}

/// The derived account of a call.
#[derive(Debug, Clone, PartialEq, Eq)]
struct View {
    facts: CallFacts,
    on_hold: bool,
    /// Set once the call's outcome is known (summary, or every leg disconnected).
    ending: Option<(Timestamp, CallStatus, Option<HangupCause>)>,
}

/// Counters for logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    /// Snapshots already seen (same `call_id` and `seq`, or the same recording event).
    pub duplicates: u64,
    /// Snapshots older than the leg's current state (kept as history only).
    pub stale: u64,
    /// Events for calls that had already ended.
    pub late_events: u64,
    /// Events with an id the domain refuses (control characters).
    pub rejected: u64,
}

/// Folds Mango webhooks into domain [`CallEvent`]s. See the module docs.
#[derive(Debug)]
pub struct MangoTracker {
    /// Parties parsed once per text (derivation reads them on every webhook).
    parties: PartyMemo,
    timing: Timing,
    entries: HashMap<String, Entry>,
    ended: HashSet<String>,
    ended_order: VecDeque<String>,
    stats: TrackerStats,
    /// Employee addresses (SIP, numbers; with and without `sip:`) → extension.
    employees: HashMap<String, String>,
}

impl MangoTracker {
    pub fn new(plan: NumberPlan, timing: Timing) -> Self {
        Self {
            parties: PartyMemo::new(plan, PARTY_MEMO),
            timing,
            entries: HashMap::new(),
            ended: HashSet::new(),
            ended_order: VecDeque::new(),
            stats: TrackerStats::default(),
            employees: HashMap::new(),
        }
    }

    /// Teaches the tracker whose addresses these are (`(address, extension)`, e.g. from
    /// `config/users/request`): a leg side that names only an employee's SIP address or number
    /// then counts as that employee's extension. Applies to events handled from now on.
    pub fn set_employees(&mut self, employees: impl IntoIterator<Item = (String, String)>) {
        self.employees.clear();
        for (address, extension) in employees {
            let bare = address.strip_prefix("sip:").unwrap_or(&address).to_owned();
            self.employees
                .insert(format!("sip:{bare}"), extension.clone());
            self.employees.insert(bare, extension);
        }
    }

    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// Ids of the calls not ended yet.
    pub fn live_call_ids(&self) -> Vec<CallId> {
        let mut ids: Vec<CallId> = self.entries.values().map(|e| e.id.clone()).collect();
        ids.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        ids
    }

    /// Whether the call of this `entry_id` is being tracked (seen and not ended yet).
    pub fn is_live(&self, entry_id: &str) -> bool {
        self.entries.contains_key(entry_id)
    }

    /// Applies one webhook that arrived at `now`; the domain events it causes go to `out`.
    pub fn handle(&mut self, hook: &Webhook, now: Timestamp, out: &mut Vec<CallEvent>) {
        let Some(entry_id) = hook.entry_id() else {
            return; // command results, SMS, stats, ping: no call state
        };
        if self.ended.contains(entry_id) {
            self.stats.late_events += 1;
            return;
        }
        if !self.entries.contains_key(entry_id) {
            let Ok(id) = CallId::new(entry_id) else {
                self.stats.rejected += 1;
                return;
            };
            self.entries.insert(
                entry_id.to_owned(),
                Entry {
                    id,
                    legs: HashMap::new(),
                    summary: None,
                    recordings: HashMap::new(),
                    last_arrival: now,
                    summary_arrival: None,
                    told: None,
                },
            );
        }
        let Some(entry) = self.entries.get_mut(entry_id) else {
            return;
        };
        entry.last_arrival = entry.last_arrival.max(now);
        let changed = match hook {
            Webhook::Call(leg) => record_leg(entry, leg, &self.employees, &mut self.stats),
            Webhook::Summary(summary) => {
                if entry.summary.as_ref() == Some(summary) {
                    self.stats.duplicates += 1;
                    false
                } else {
                    // Mango sends one summary per call; a second, different one replaces it.
                    entry.summary = Some(summary.clone());
                    entry.summary_arrival.get_or_insert(now);
                    true
                }
            }
            Webhook::Recording(rec) => record_recording(entry, rec, &mut self.stats),
            Webhook::RecordAdded(added) | Webhook::RecordTagged(added) => {
                let at = added
                    .timestamp
                    .map_or(now, |t| Timestamp::from_unix_millis(t.saturating_mul(1000)));
                add_recording(entry, &added.recording_id, at, false, &mut self.stats)
            }
            _ => false,
        };
        if changed {
            tell(entry, &mut self.parties, out);
        }
    }

    /// Ends the calls whose time has come (see [`Timing`]); call it every second or so.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<CallEvent>) {
        let timing = self.timing;
        let mut due: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                let since = |t: Timestamp| now.unix_millis().saturating_sub(t.unix_millis());
                let settled = e
                    .summary_arrival
                    .is_some_and(|t| since(t) >= timing.settle_ms);
                let all_gone = !e.legs.is_empty()
                    && e.legs.values().all(|l| l.disconnected().is_some())
                    && since(e.last_arrival) >= timing.no_summary_ms;
                settled || all_gone || since(e.last_arrival) >= timing.stale_ms
            })
            .map(|(k, _)| k.clone())
            .collect();
        due.sort();
        for id in due {
            self.end(&id, out);
        }
    }

    /// Ends every call (the input is over, e.g. at the end of a replay).
    pub fn finish(&mut self, out: &mut Vec<CallEvent>) {
        let mut ids: Vec<String> = self.entries.keys().cloned().collect();
        ids.sort();
        for id in ids {
            self.end(&id, out);
        }
    }

    fn end(&mut self, entry_id: &str, out: &mut Vec<CallEvent>) {
        let Some(mut entry) = self.entries.remove(entry_id) else {
            return;
        };
        let view = tell(&mut entry, &mut self.parties, out);
        let (at, status, cause) = view.ending.unwrap_or_else(|| {
            // Forced end (stale, or the input ran out): decide from what is known.
            let at = latest_at(&entry).max(view.facts.started_at);
            let status = if view.facts.answered_at.is_some() {
                CallStatus::Answered
            } else if view.facts.direction == Direction::Inbound {
                CallStatus::Missed
            } else {
                CallStatus::NoAnswer
            };
            (at, status, None)
        });
        if entry.told.is_some() {
            out.push(CallEvent {
                call: entry.id.clone(),
                at,
                kind: CallEventKind::Ended {
                    cause,
                    status: Some(status),
                },
            });
        }
        if self.ended_order.len() == REMEMBERED_ENDED
            && let Some(old) = self.ended_order.pop_front()
        {
            self.ended.remove(&old);
        }
        self.ended.insert(entry_id.to_owned());
        self.ended_order.push_back(entry_id.to_owned());
    }
}

impl LegDirectory for MangoTracker {
    fn live_legs(&self, call: &CallId) -> Option<Vec<LiveLeg>> {
        let entry = self.entries.get(call.as_str())?;
        let mut legs: Vec<(&String, &Leg)> = entry.legs.iter().collect();
        legs.sort_by_key(|(id, l)| (l.first_at(), (*id).clone()));
        Some(
            legs.into_iter()
                .filter_map(|(id, leg)| {
                    let now = leg.current()?;
                    (now.state != LegState::Disconnected).then(|| LiveLeg {
                        call_id: id.clone(),
                        state: now.state,
                        location: now.location,
                        from: now.from.clone(),
                        to: now.to.clone(),
                    })
                })
                .collect(),
        )
    }
}

fn secs(t: i64) -> Timestamp {
    Timestamp::from_unix_millis(t.saturating_mul(1000))
}

fn record_leg(
    entry: &mut Entry,
    leg: &CallLeg,
    employees: &HashMap<String, String>,
    stats: &mut TrackerStats,
) -> bool {
    let known = |p: &LegParty| {
        let mut p = p.clone();
        if p.extension.is_none() {
            p.extension = p.number.as_ref().and_then(|n| employees.get(n)).cloned();
        }
        p
    };
    let snapshot = Snapshot {
        state: leg.state,
        at: secs(leg.timestamp),
        location: leg.location,
        from: known(&leg.from),
        to: known(&leg.to),
        reason: leg.disconnect_reason,
        transfer: leg.transfer,
        commanded: leg.command_id.is_some() || leg.callback_initiator.is_some(),
    };
    let slot = entry.legs.entry(leg.call_id.clone()).or_default();
    if slot.snapshots.contains_key(&leg.seq) {
        stats.duplicates += 1;
        return false;
    }
    if slot
        .snapshots
        .keys()
        .next_back()
        .is_some_and(|last| *last > leg.seq)
    {
        stats.stale += 1;
    }
    slot.snapshots.insert(leg.seq, snapshot);
    true
}

fn record_recording(entry: &mut Entry, rec: &Recording, stats: &mut TrackerStats) -> bool {
    let at = rec.timestamp.map_or(entry.last_arrival, secs);
    let discarded =
        rec.state == RecordingState::Completed && rec.completion_code.is_some_and(|c| c.0 == 4002);
    add_recording(entry, &rec.recording_id, at, discarded, stats)
}

fn add_recording(
    entry: &mut Entry,
    id: &str,
    at: Timestamp,
    discarded: bool,
    stats: &mut TrackerStats,
) -> bool {
    match entry.recordings.get_mut(id) {
        Some(r) => {
            let before = r.clone();
            r.first_at = r.first_at.min(at);
            r.discarded |= discarded;
            if *r == before {
                stats.duplicates += 1;
                false
            } else {
                true
            }
        }
        None => {
            entry.recordings.insert(
                id.to_owned(),
                Rec {
                    first_at: at,
                    discarded,
                },
            );
            true
        }
    }
}

fn latest_at(entry: &Entry) -> Timestamp {
    entry
        .legs
        .values()
        .flat_map(|l| l.snapshots.values().map(|s| s.at))
        .max()
        .unwrap_or(entry.last_arrival)
}

fn ext(value: Option<&str>) -> Option<Extension> {
    value.and_then(|v| Extension::new(v).ok())
}

/// The leg is an operator's own leg of a click-to-call: Mango rings the employee first (a
/// commanded leg taken from nothing, towards an extension); its answer is not the customer's.
fn callback_operator_leg(leg: &Leg) -> bool {
    leg.commanded()
        && leg.taken_from().is_none()
        && leg.any(|s| s.to.extension.clone()).is_some()
        && leg.any(|s| s.from.extension.clone()).is_none()
}

/// The number of a party that is not an employee.
fn customer_number(p: &LegParty) -> Option<String> {
    p.extension.is_none().then(|| p.number.clone()).flatten()
}

/// Derives a call's facts from everything seen (order-independent).
fn derive(entry: &Entry, plan: &mut PartyMemo) -> View {
    let mut legs: Vec<(&String, &Leg)> = entry.legs.iter().collect();
    legs.sort_by_key(|(id, l)| (l.first_at(), (*id).clone()));
    let summary = entry.summary.as_ref();
    let root = legs
        .iter()
        .find(|(_, l)| l.taken_from().is_none())
        .or(legs.first())
        .map(|(_, l)| *l);
    let root_from = |f: fn(&LegParty) -> Option<String>| root.and_then(|r| r.any(|s| f(&s.from)));
    let root_to = |f: fn(&LegParty) -> Option<String>| root.and_then(|r| r.any(|s| f(&s.to)));
    let callback = root.is_some_and(callback_operator_leg);

    let direction = match summary.and_then(|s| s.call_direction) {
        Some(0) => Direction::Internal,
        Some(1) => Direction::Inbound,
        Some(2) => Direction::Outbound,
        _ => {
            let from_ext = root_from(|p| p.extension.clone()).is_some();
            let to_ext = root_to(|p| p.extension.clone()).is_some();
            if callback || (from_ext && !to_ext) {
                Direction::Outbound
            } else if from_ext && to_ext {
                Direction::Internal
            } else {
                Direction::Inbound
            }
        }
    };

    // The parties, as the Asterisk records show them: inbound from the customer to the line
    // (DID); outbound from the operator to the customer; internal between two extensions.
    let pick = |a: Option<String>, b: Option<String>| a.or(b).unwrap_or_default();
    let s_from = |f: fn(&LegParty) -> Option<String>| summary.and_then(|s| f(&s.from));
    let s_to = |f: fn(&LegParty) -> Option<String>| summary.and_then(|s| f(&s.to));
    let (from, to) = match direction {
        Direction::Inbound => (
            pick(
                s_from(|p| p.number.clone()),
                root_from(|p| p.number.clone()),
            ),
            pick(
                summary.and_then(|s| s.line_number.clone()),
                root_to(|p| p.line_number.clone())
                    .or_else(|| root_from(|p| p.line_number.clone()))
                    .or_else(|| root_to(|p| p.number.clone())),
            ),
        ),
        // The summary's `to` is whoever answered last: the customer, unless an employee took
        // the call over (a transfer); then the customer is the root leg's number.
        Direction::Outbound if callback => (
            pick(
                s_from(|p| p.extension.clone()),
                root_to(|p| p.extension.clone()),
            ),
            pick(s_to(customer_number), root_from(|p| p.number.clone())),
        ),
        Direction::Outbound => (
            pick(
                s_from(|p| p.extension.clone()),
                root_from(|p| p.extension.clone()),
            ),
            pick(s_to(customer_number), root_to(|p| p.number.clone())),
        ),
        Direction::Internal => (
            pick(
                s_from(|p| p.extension.clone()),
                root_from(|p| p.extension.clone()),
            ),
            pick(
                s_to(|p| p.extension.clone()),
                root_to(|p| p.extension.clone()),
            ),
        ),
    };

    let started_at = legs
        .iter()
        .map(|(_, l)| l.first_at())
        .chain(summary.and_then(|s| s.create_time).map(secs))
        .min()
        .unwrap_or(entry.last_arrival);

    // Operators rung: the employee each leg rings (not the caller of an outbound leg).
    let mut rang: Vec<Extension> = Vec::new();
    for (_, leg) in &legs {
        let Some(e) = ext(leg.any(|s| s.to.extension.clone()).as_deref()) else {
            continue;
        };
        let employee_caller = leg.any(|s| s.from.extension.clone()).is_some();
        if (direction == Direction::Internal || !employee_caller) && !rang.contains(&e) {
            rang.push(e);
        }
    }

    // Answers: Connected snapshots between an employee and the customer.
    let mut answers: Vec<(Timestamp, String, Extension)> = Vec::new();
    for (id, leg) in &legs {
        if callback_operator_leg(leg) && direction == Direction::Outbound {
            continue;
        }
        for s in leg.snapshots.values() {
            if s.state != LegState::Connected
                || matches!(s.location, Some(Location::Ivr | Location::Queue))
            {
                continue;
            }
            let (f, t) = (
                ext(s.from.extension.as_deref()),
                ext(s.to.extension.as_deref()),
            );
            let who = match (f, t) {
                (Some(_), Some(t)) if direction == Direction::Internal => Some(t),
                (Some(_), Some(_)) => None, // a consultation between two employees
                (None, Some(t)) => Some(t),
                (Some(f), None) => Some(f),
                (None, None) => None,
            };
            if let Some(who) = who {
                answers.push((s.at, (*id).clone(), who));
            }
        }
    }
    answers.sort();
    let mut answered_by: Vec<Extension> = Vec::new();
    for (_, _, who) in &answers {
        if answered_by.last() != Some(who) {
            answered_by.push(who.clone());
        }
    }
    let mut answered_at = answers.first().map(|(at, _, _)| *at);
    if let Some(s) = summary {
        match s.talk_time {
            Some(t) => {
                answered_at = Some(secs(t));
                if answered_by.is_empty() {
                    let who = match direction {
                        Direction::Outbound => s.from.extension.as_deref(),
                        _ => s.to.extension.as_deref(),
                    };
                    answered_by.extend(ext(who));
                }
            }
            None => {
                answered_at = None;
                answered_by.clear();
            }
        }
    }

    // Transfers: legs Mango marks as created by a transfer (API v2 `transfer`).
    let mut transfers: Vec<Transfer> = Vec::new();
    for (_, leg) in &legs {
        let kind = match leg.transfer() {
            Some(TransferMark::Blind) => TransferKind::Blind,
            Some(TransferMark::Consultative) => TransferKind::Attended,
            _ => continue,
        };
        let source = leg.taken_from().and_then(|id| entry.legs.get(id));
        let by = source
            .and_then(|src| {
                src.any(|s| match (&s.from.extension, &s.to.extension) {
                    (_, Some(t)) => Some(t.clone()),
                    (Some(f), None) => Some(f.clone()),
                    (None, None) => None,
                })
            })
            .or_else(|| leg.any(|s| s.from.extension.clone()));
        let target = leg
            .any(|s| s.to.extension.clone())
            .or_else(|| leg.any(|s| s.to.number.clone()));
        let transfer = Transfer {
            kind,
            from: ext(by.as_deref()),
            to: target.map(|t| plan.party(&t)),
        };
        if transfers.last() != Some(&transfer) {
            transfers.push(transfer);
        }
    }

    let queue = legs
        .iter()
        .rev()
        .find_map(|(_, l)| l.any(|s| s.to.acd_group.clone()));

    let mut recordings: Vec<(&Timestamp, &String)> = entry
        .recordings
        .iter()
        .filter(|(_, r)| !r.discarded)
        .map(|(id, r)| (&r.first_at, id))
        .collect();
    recordings.sort();

    let on_hold = legs
        .iter()
        .any(|(_, l)| l.current().is_some_and(|s| s.state == LegState::OnHold));

    // The book never puts a time before the start; neither do we.
    let answered_at = answered_at.map(|t| t.max(started_at));
    let answered = answered_at.is_some();
    let ending = ending(entry, &legs, summary, direction, answered, callback)
        .map(|(at, status, cause)| (at.max(started_at), status, cause));

    View {
        facts: CallFacts {
            direction,
            from: plan.party(&from),
            to: plan.party(&to),
            started_at,
            rang,
            answered_by,
            answered_at,
            transfers,
            queue,
            recordings: recordings.into_iter().map(|(_, id)| id.clone()).collect(),
        },
        on_hold,
        ending,
    }
}

/// The outcome, once known: the summary's, else when every leg has disconnected.
fn ending(
    entry: &Entry,
    legs: &[(&String, &Leg)],
    summary: Option<&Summary>,
    direction: Direction,
    answered: bool,
    callback: bool,
) -> Option<(Timestamp, CallStatus, Option<HangupCause>)> {
    let all_gone = !legs.is_empty() && legs.iter().all(|(_, l)| l.disconnected().is_some());
    if summary.is_none() && !all_gone {
        return None;
    }
    let ends: Vec<(Timestamp, &String, Option<Code>)> = legs
        .iter()
        .filter_map(|(id, l)| l.disconnected().map(|s| (s.at, *id, s.reason)))
        .collect();
    let at = summary
        .and_then(|s| s.end_time)
        .map(secs)
        .or_else(|| ends.iter().map(|(at, _, _)| *at).max())
        .unwrap_or(entry.last_arrival);
    // The reason: the summary's; else busy if any leg was busy; else the last leg's.
    let reason = summary.and_then(|s| s.disconnect_reason).or_else(|| {
        ends.iter()
            .find(|(_, _, r)| r.is_some_and(|r| r.ending() == Ending::Busy))
            .or_else(|| ends.iter().max())
            .and_then(|(_, _, r)| *r)
    });
    // A click-to-call whose operator never answered never reached the customer: failed.
    let customer_leg_seen = legs.iter().any(|(_, l)| !callback_operator_leg(l));
    let status = if answered {
        CallStatus::Answered
    } else if callback && direction == Direction::Outbound && !customer_leg_seen {
        CallStatus::Failed
    } else {
        reason.map_or(
            if direction == Direction::Inbound {
                CallStatus::Missed
            } else {
                CallStatus::NoAnswer
            },
            |r| r.unanswered_status(direction == Direction::Inbound),
        )
    };
    let cause = reason.map(|r| HangupCause {
        code: u16::try_from(r.0).unwrap_or(u16::MAX),
        text: r.describe().to_owned(),
    });
    Some((at, status, cause))
}

/// Tells the call book what changed since it was last told; returns the call as derived now.
fn tell(entry: &mut Entry, plan: &mut PartyMemo, out: &mut Vec<CallEvent>) -> View {
    let new = derive(entry, plan);
    let id = entry.id.clone();
    let push = |out: &mut Vec<CallEvent>, at: Timestamp, kind: CallEventKind| {
        out.push(CallEvent {
            call: id.clone(),
            at,
            kind,
        });
    };
    let f = &new.facts;
    let Some(old) = entry.told.as_ref() else {
        push(
            out,
            f.started_at,
            CallEventKind::Started {
                direction: f.direction,
                from: f.from.clone(),
                to: f.to.clone(),
            },
        );
        let blank = View {
            facts: CallFacts {
                direction: f.direction,
                from: f.from.clone(),
                to: f.to.clone(),
                started_at: f.started_at,
                rang: Vec::new(),
                answered_by: Vec::new(),
                answered_at: None,
                transfers: Vec::new(),
                queue: None,
                recordings: Vec::new(),
            },
            on_hold: false,
            ending: None,
        };
        tell_changes(&blank, &new, &mut |at, kind| push(out, at, kind));
        entry.told = Some(new.clone());
        return new;
    };
    tell_changes(old, &new, &mut |at, kind| push(out, at, kind));
    entry.told = Some(new.clone());
    new
}

/// `new` is `old` with zero or more items appended.
fn appended<T: PartialEq>(old: &[T], new: &[T]) -> bool {
    new.len() >= old.len() && new[..old.len()] == *old
}

/// The events that turn `old` into `new`: appends as the incremental events, anything else as
/// one `Revised`.
fn tell_changes(old: &View, new: &View, emit: &mut dyn FnMut(Timestamp, CallEventKind)) {
    let (o, n) = (&old.facts, &new.facts);
    let at = n.started_at;
    let incremental = o.direction == n.direction
        && o.from == n.from
        && o.to == n.to
        && o.started_at == n.started_at
        && appended(&o.rang, &n.rang)
        && appended(&o.answered_by, &n.answered_by)
        && appended(&o.transfers, &n.transfers)
        && appended(&o.recordings, &n.recordings)
        && (o.answered_at.is_none() || o.answered_at == n.answered_at)
        && (n.queue.is_some() || o.queue.is_none());
    if !incremental {
        if o != n {
            emit(at, CallEventKind::Revised(Box::new(n.clone())));
        }
    } else {
        for e in &n.rang[o.rang.len()..] {
            emit(
                at,
                CallEventKind::OperatorRinging {
                    extension: e.clone(),
                },
            );
        }
        if o.answered_at.is_none()
            && let Some(answered_at) = n.answered_at
        {
            // The book takes the first answer's time and operator from this event.
            emit(
                answered_at,
                CallEventKind::Answered {
                    extension: n.answered_by.get(o.answered_by.len()).cloned(),
                },
            );
            for e in n.answered_by.iter().skip(o.answered_by.len() + 1) {
                emit(
                    answered_at,
                    CallEventKind::Answered {
                        extension: Some(e.clone()),
                    },
                );
            }
        } else {
            for e in &n.answered_by[o.answered_by.len()..] {
                emit(
                    at,
                    CallEventKind::Answered {
                        extension: Some(e.clone()),
                    },
                );
            }
        }
        for t in &n.transfers[o.transfers.len()..] {
            emit(
                at,
                CallEventKind::Transferred {
                    kind: t.kind,
                    from: t.from.clone(),
                    to: t.to.clone(),
                },
            );
        }
        if let Some(q) = &n.queue
            && o.queue.as_ref() != Some(q)
        {
            emit(at, CallEventKind::QueueJoined { queue: q.clone() });
        }
        for r in &n.recordings[o.recordings.len()..] {
            emit(at, CallEventKind::RecordingStarted { file: r.clone() });
        }
    }
    if old.on_hold != new.on_hold {
        emit(at, CallEventKind::HoldChanged { on: new.on_hold });
    }
}
