//! The pure VPBX: calls (`entry_id`), legs (`call_id`), recordings and timed steps. Time is an
//! input (simulated milliseconds since the start): [`Vpbx::advance`] runs the steps that are due,
//! commands act at the current time, and [`Vpbx::drain`] hands out the webhooks produced so far.
//! No IO, no clock; the renderer and the HTTP server both drive it.

use std::collections::{BTreeMap, HashMap};

use calldesk_mango_proto::command::{
    Callback, CallbackGroup, Hangup, HoldOn, RecordingStart, Sms, Transfer, TransferMethod,
};
use calldesk_mango_proto::webhook::{LegParty, LegState, Location};
use serde::Serialize;

use super::ids::{Ids, LegIdKind};
use super::model::{
    ACD_GROUP, Delivery, Employee, EngineConfig, PRODUCT_ID, PhoneBehaviour, Timings,
};
use super::scenario::MangoScenario;

// Result and disconnect codes used here (reference §4).
pub(crate) const OK: u32 = 1000;
const NORMAL: u32 = 1100;
const BY_CALLER: u32 = 1110;
const NO_ANSWER: u32 = 1111;
const BY_CALLED: u32 = 1120;
const BUSY: u32 = 1121;
const BY_API: u32 = 1181;
pub(crate) const NUMBER_NOT_FOUND: u32 = 3330;
pub(crate) const FORBIDDEN: u32 = 4100;
pub(crate) const NO_SUCH_CALL: u32 = 4101;
pub(crate) const ALREADY_RECORDING: u32 = 4102;

/// One side of a leg as the webhooks show it (fields in Mango's order; absent ones left out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Party {
    #[serde(skip_serializing_if = "Option::is_none")]
    extension: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    taken_from_call_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    acd_group: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    was_transferred: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hold_initiator: Option<bool>,
}

impl Party {
    fn number(number: &str) -> Self {
        Self {
            number: Some(number.to_owned()),
            ..Self::default()
        }
    }

    fn employee(e: &Employee) -> Self {
        Self {
            extension: Some(e.extension.clone()),
            number: Some(e.sip_uri()),
            ..Self::default()
        }
    }

    fn with_line(mut self, line: Option<&str>) -> Self {
        self.line_number = line.map(str::to_owned);
        self
    }

    fn taken_from(mut self, call_id: &str) -> Self {
        self.taken_from_call_id = Some(call_id.to_owned());
        self
    }

    /// Only `extension` and `number` (the summary's parties, a transferred party).
    fn plain(&self) -> Self {
        Self {
            extension: self.extension.clone(),
            number: self.number.clone(),
            ..Self::default()
        }
    }

    /// Whether `who` is this party's extension or number (`sip:` optional).
    fn is(&self, who: &str) -> bool {
        let bare = |s: &str| s.strip_prefix("sip:").unwrap_or(s).to_owned();
        self.extension.as_deref() == Some(who)
            || self.number.as_deref().map(bare) == Some(bare(who))
    }

    fn to_leg_party(&self) -> LegParty {
        LegParty {
            extension: self.extension.clone(),
            number: self.number.clone(),
            line_number: self.line_number.clone(),
            taken_from_call_id: self.taken_from_call_id.clone(),
            acd_group: self.acd_group.clone(),
            was_transferred: self.was_transferred,
            hold_initiator: self.hold_initiator,
        }
    }
}

/// How a ringing leg goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ring {
    /// Answered after `after` s; then each `(delay, step)` after the answer.
    Answer { after: u32, then: Vec<(u32, Then)> },
    /// Ends unanswered after `after` s with `code` (1111 no answer, 1121 busy).
    Fail { after: u32, code: u32 },
    /// Rings until something else ends it.
    Forever,
}

/// What happens on a connected leg later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Then {
    /// The leg ends with `code` (1110 the caller, 1120 the called party hung up).
    HangUp(u32),
    /// The operator (`to`) puts the other party on hold for `resume_after` s.
    Hold { resume_after: u32 },
    /// The operator (`to`) transfers the caller blind to `to`, whose phone goes as `ring`.
    Transfer {
        to: String,
        command_id: String,
        ring: Box<Ring>,
    },
    /// A recording of the operator (`to`) starts (automatic, no `command_id`).
    Record,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum LegKind {
    Ivr,
    /// Rings an employee (routing, or an outbound call's only leg).
    Plain,
    /// Callback leg 1: rings the employee; on answer, leg 2 rings `customer`.
    CallbackOperator {
        customer: Party,
        customer_ring: Ring,
        line: Option<String>,
    },
    /// A blind-transfer leg: unanswered, the initiator is rung back (`return_blind`).
    Blind {
        initiator: Party,
        initiator_ring: Ring,
    },
    /// A consultation leg: when it ends, the held leg is resumed.
    Consult {
        held: usize,
    },
}

impl LegKind {
    /// Whether connecting this leg is a conversation (not an operator picking up a callback).
    fn talks(&self) -> bool {
        !matches!(self, Self::Ivr | Self::CallbackOperator { .. })
    }
}

#[derive(Debug, Clone)]
struct Leg {
    entry: usize,
    call_id: String,
    seq: u64,
    state: LegState,
    location: &'static str,
    from: Party,
    to: Party,
    transfer: Option<&'static str>,
    command_id: Option<String>,
    kind: LegKind,
    answered: bool,
    recording: Option<usize>,
}

#[derive(Debug, Clone)]
struct Entry {
    entry_id: String,
    direction: u8,
    from: Party,
    /// The first link of the chain (the summary's `to` for an unanswered call).
    first: Option<Party>,
    /// Who answered last (the summary's `to` for an answered call).
    answered: Option<Party>,
    line: Option<String>,
    create: i64,
    forward: i64,
    talk: i64,
    end: i64,
    reason: u32,
    location: &'static str,
    legs: Vec<usize>,
    recs: Vec<usize>,
    finished: bool,
}

impl Entry {
    fn summary_to(&self) -> Party {
        self.answered
            .clone()
            .or_else(|| self.first.clone())
            .or_else(|| self.line.as_deref().map(Party::number))
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
struct Rec {
    recording_id: String,
    entry: usize,
    leg: usize,
    extension: String,
    user_id: i64,
    seq: u64,
    command_id: Option<String>,
    completed: bool,
    available: bool,
}

#[derive(Debug, Clone)]
enum Step {
    /// The IVR hands the caller to the operators, whose phones go as `ring`.
    Route {
        ivr: usize,
        operators: Vec<String>,
        ring: Ring,
    },
    Answer {
        leg: usize,
        then: Vec<(u32, Then)>,
    },
    Fail {
        leg: usize,
        code: u32,
    },
    Then {
        leg: usize,
        then: Then,
    },
    /// The caller hangs up: every live leg of the call ends with 1110.
    GiveUp {
        entry: usize,
    },
    Unhold {
        leg: usize,
    },
    RecordAdded {
        rec: usize,
    },
    SmsReport {
        command_id: String,
    },
}

/// Extra v2 flags on one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    None,
    /// `was_transferred` on `from` (true) or `to` (false).
    Transferred {
        from_side: bool,
    },
    /// `hold_initiator`: true on `to` when `to_initiates`, the other side false.
    Hold {
        to_initiates: bool,
    },
}

/// Why a leg ends (decides the follow-ups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Handed over (IVR to operators, callback leg 1 to leg 2, transfer): nothing follows.
    Handover,
    /// The caller left: nothing follows.
    CallerLeft,
    /// Anything else: a failed blind transfer rings the initiator back, a consultation resumes
    /// the held leg.
    Other,
}

#[derive(Serialize)]
struct Dct {
    #[serde(rename = "type")]
    kind: u8,
}

#[derive(Serialize)]
struct CallJson<'a> {
    entry_id: &'a str,
    call_id: &'a str,
    timestamp: i64,
    seq: u64,
    call_state: &'static str,
    location: &'static str,
    from: &'a Party,
    to: &'a Party,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnect_reason: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transfer: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_id: Option<&'a str>,
    dct: Dct,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    entry_id: &'a str,
    call_direction: u8,
    from: &'a Party,
    to: &'a Party,
    #[serde(skip_serializing_if = "Option::is_none")]
    line_number: Option<&'a str>,
    create_time: i64,
    forward_time: i64,
    talk_time: i64,
    end_time: i64,
    entry_result: u8,
    disconnect_reason: u32,
}

#[derive(Serialize)]
struct RecordingJson<'a> {
    recording_id: &'a str,
    recording_state: &'static str,
    seq: u64,
    entry_id: &'a str,
    call_id: &'a str,
    extension: &'a str,
    timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    completion_code: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recipient: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_id: Option<&'a str>,
}

#[derive(Serialize)]
struct RecordAddedJson<'a> {
    entry_id: &'a str,
    product_id: i64,
    user_id: i64,
    timestamp: i64,
    recording_id: &'a str,
}

#[derive(Serialize)]
struct ResultJson<'a> {
    command_id: &'a str,
    result: u32,
}

#[derive(Serialize)]
struct SmsJson<'a> {
    command_id: &'a str,
    timestamp: i64,
    reason: u32,
}

/// A live call as the fake VPBX sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCall {
    pub entry_id: String,
    /// Legs that have not disconnected, in order of appearance.
    pub legs: Vec<LiveLeg>,
}

/// A leg of a [`LiveCall`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLeg {
    pub call_id: String,
    pub state: LegState,
    pub location: Location,
    pub from: LegParty,
    pub to: LegParty,
    pub command_id: Option<String>,
}

/// A filter of a stats request (`from`, `to`, `call_party`): empty fields match anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatsFilter {
    pub from: Option<(String, String)>,
    pub to: Option<(String, String)>,
    pub call_party: Option<(String, String)>,
}

/// The fake VPBX.
#[derive(Debug)]
pub(crate) struct Vpbx {
    cfg: EngineConfig,
    ids: Ids,
    start_unix: i64,
    now_ms: u64,
    entries: Vec<Entry>,
    legs: Vec<Leg>,
    recs: Vec<Rec>,
    by_call_id: HashMap<String, usize>,
    by_recording_id: HashMap<String, usize>,
    steps: BTreeMap<(u64, u64), Step>,
    step_seq: u64,
    out: Vec<Delivery>,
}

impl Vpbx {
    pub(crate) fn new(cfg: EngineConfig, ids: Ids, start_unix: i64) -> Self {
        Self {
            cfg,
            ids,
            start_unix,
            now_ms: 0,
            entries: Vec::new(),
            legs: Vec::new(),
            recs: Vec::new(),
            by_call_id: HashMap::new(),
            by_recording_id: HashMap::new(),
            steps: BTreeMap::new(),
            step_seq: 0,
            out: Vec::new(),
        }
    }

    pub(crate) fn ids(&self) -> &Ids {
        &self.ids
    }

    /// How `who` (an extension or a number) reacts to calls from now on.
    pub(crate) fn set_phone(&mut self, who: &str, behaviour: PhoneBehaviour) {
        self.cfg.phones.insert(who.to_owned(), behaviour);
    }

    pub(crate) fn employees(&self) -> &[Employee] {
        &self.cfg.employees
    }

    pub(crate) fn line(&self) -> &str {
        &self.cfg.line
    }

    /// Simulated Unix seconds now.
    pub(crate) fn now_unix(&self) -> i64 {
        self.start_unix + i64::try_from(self.now_ms / 1000).unwrap_or(i64::MAX / 2)
    }

    fn timings(&self) -> &Timings {
        &self.cfg.timings
    }

    /// When the next step is due (simulated ms).
    pub(crate) fn next_due(&self) -> Option<u64> {
        self.steps.keys().next().map(|&(at, _)| at)
    }

    /// Runs every step due at or before `to_ms`, then sets the clock to `to_ms` (never back).
    pub(crate) fn advance(&mut self, to_ms: u64) {
        while let Some(entry) = self.steps.first_entry() {
            let at = entry.key().0;
            if at > to_ms {
                break;
            }
            let step = entry.remove();
            self.now_ms = self.now_ms.max(at);
            self.run(step);
        }
        self.now_ms = self.now_ms.max(to_ms);
    }

    /// Runs every step, however far ahead (at most `limit` steps: a guard against loops).
    pub(crate) fn run_to_end(&mut self, limit: usize) {
        for _ in 0..limit {
            let Some(at) = self.next_due() else { return };
            self.advance(at);
        }
    }

    /// The webhooks produced since the last drain, in order.
    pub(crate) fn drain(&mut self) -> Vec<Delivery> {
        std::mem::take(&mut self.out)
    }

    fn schedule(&mut self, after_s: u32, step: Step) {
        let at = self.now_ms + u64::from(after_s) * 1000;
        self.step_seq += 1;
        self.steps.insert((at, self.step_seq), step);
    }

    fn emit(&mut self, path: &str, body: &impl Serialize) {
        match serde_json::to_string(body) {
            Ok(json) => self.out.push(Delivery {
                path: path.to_owned(),
                json,
                at_ms: self.now_ms,
            }),
            Err(e) => tracing::error!(%e, path, "fake Mango: a webhook did not serialise"),
        }
    }

    fn emit_result(&mut self, command: &str, command_id: &str, result: u32) {
        self.emit(
            &format!("result/{command}"),
            &ResultJson { command_id, result },
        );
    }

    // ----- directory -----

    fn employee(&self, extension: &str) -> Option<&Employee> {
        self.cfg.employees.iter().find(|e| e.extension == extension)
    }

    fn employee_or_stand_in(&self, extension: &str) -> Employee {
        self.employee(extension)
            .cloned()
            .unwrap_or_else(|| Employee::stand_in(extension))
    }

    /// An employee's party when `who` is an extension, else a bare number.
    fn party_for(&self, who: &str) -> Party {
        match self.employee(who) {
            Some(e) => Party::employee(e),
            None => Party::number(who),
        }
    }

    fn behaviour(&self, who: &str) -> PhoneBehaviour {
        self.cfg.phones.get(who).copied().unwrap_or_else(|| {
            if self.employee(who).is_some() {
                self.cfg.extension_phone
            } else {
                self.cfg.number_phone
            }
        })
    }

    /// How `who`'s phone goes when rung by a command.
    fn ring_for(&self, who: &str) -> Ring {
        let t = self.timings();
        match self.behaviour(who) {
            PhoneBehaviour::Answers { after_s, talk_s } => Ring::Answer {
                after: after_s,
                then: talk_s
                    .map(|s| vec![(s, Then::HangUp(BY_CALLED))])
                    .unwrap_or_default(),
            },
            PhoneBehaviour::NeverAnswers => Ring::Fail {
                after: t.no_answer_s,
                code: NO_ANSWER,
            },
            PhoneBehaviour::Busy => Ring::Fail {
                after: t.busy_s,
                code: BUSY,
            },
        }
    }

    // ----- legs and calls -----

    fn new_entry(
        &mut self,
        direction: u8,
        from: Party,
        first: Option<Party>,
        line: Option<String>,
    ) -> usize {
        let now = self.now_unix();
        self.entries.push(Entry {
            entry_id: self.ids.entry_id(),
            direction,
            from,
            first,
            answered: None,
            line,
            create: now,
            forward: if direction == 1 { 0 } else { now },
            talk: 0,
            end: 0,
            reason: 0,
            location: "abonent",
            legs: Vec::new(),
            recs: Vec::new(),
            finished: false,
        });
        self.entries.len() - 1
    }

    fn appear(
        &mut self,
        entry: usize,
        kind: LegKind,
        from: Party,
        to: Party,
        transfer: Option<&'static str>,
        command_id: Option<String>,
    ) -> usize {
        let (id_kind, location) = match kind {
            LegKind::Ivr => (LegIdKind::Ivr, "ivr"),
            _ if to.extension.is_none() => (LegIdKind::Outbound, "abonent"),
            _ => (LegIdKind::Employee, "abonent"),
        };
        let call_id = self.ids.call_id(id_kind);
        self.legs.push(Leg {
            entry,
            call_id: call_id.clone(),
            seq: 0,
            state: LegState::Appeared,
            location,
            from,
            to,
            transfer,
            command_id,
            kind,
            answered: false,
            recording: None,
        });
        let leg = self.legs.len() - 1;
        self.by_call_id.insert(call_id, leg);
        self.entries[entry].legs.push(leg);
        self.entries[entry].location = location;
        self.emit_leg(leg, LegState::Appeared, None, Mark::None);
        leg
    }

    fn emit_leg(&mut self, leg: usize, state: LegState, reason: Option<u32>, mark: Mark) {
        let timestamp = self.now_unix();
        let l = &mut self.legs[leg];
        l.seq += 1;
        l.state = state;
        let (mut from, mut to) = (l.from.clone(), l.to.clone());
        match mark {
            Mark::None => {}
            Mark::Transferred { from_side: true } => from.was_transferred = Some(true),
            Mark::Transferred { from_side: false } => to.was_transferred = Some(true),
            Mark::Hold { to_initiates } => {
                from.hold_initiator = Some(!to_initiates);
                to.hold_initiator = Some(to_initiates);
            }
        }
        let call_state = match state {
            LegState::Appeared => "Appeared",
            LegState::Connected => "Connected",
            LegState::OnHold => "OnHold",
            LegState::Disconnected | LegState::Unknown => "Disconnected",
        };
        let l = &self.legs[leg];
        let body = CallJson {
            entry_id: &self.entries[l.entry].entry_id,
            call_id: &l.call_id,
            timestamp,
            seq: l.seq,
            call_state,
            location: l.location,
            from: &from,
            to: &to,
            disconnect_reason: reason,
            transfer: l.transfer,
            command_id: l.command_id.as_deref(),
            dct: Dct { kind: 0 },
        };
        match serde_json::to_string(&body) {
            Ok(json) => self.out.push(Delivery {
                path: "events/call".to_owned(),
                json,
                at_ms: self.now_ms,
            }),
            Err(e) => tracing::error!(%e, "fake Mango: a call event did not serialise"),
        }
    }

    fn live(&self, leg: usize) -> bool {
        self.legs[leg].state != LegState::Disconnected
    }

    fn schedule_ring(&mut self, leg: usize, ring: Ring) {
        match ring {
            Ring::Answer { after, then } => self.schedule(after, Step::Answer { leg, then }),
            Ring::Fail { after, code } => self.schedule(after, Step::Fail { leg, code }),
            Ring::Forever => {}
        }
    }

    fn connect(&mut self, leg: usize) {
        self.emit_leg(leg, LegState::Connected, None, Mark::None);
        let now = self.now_unix();
        let l = &mut self.legs[leg];
        l.answered = true;
        if l.kind.talks() {
            let to = l.to.plain();
            let e = &mut self.entries[l.entry];
            if e.talk == 0 {
                e.talk = now;
            }
            e.answered = Some(to);
        }
    }

    fn end_leg(&mut self, leg: usize, code: u32, mark: Mark, cause: Cause) {
        if !self.live(leg) {
            return;
        }
        let was_answered = self.legs[leg].answered;
        self.emit_leg(leg, LegState::Disconnected, Some(code), mark);
        let entry = self.legs[leg].entry;
        self.entries[entry].reason = code;
        self.entries[entry].location = self.legs[leg].location;
        if let Some(rec) = self.legs[leg].recording {
            self.complete_recording(rec);
        }
        if cause != Cause::Other || self.entries[entry].finished {
            return;
        }
        match self.legs[leg].kind.clone() {
            LegKind::Blind {
                initiator,
                initiator_ring,
            } if !was_answered => {
                let l = &self.legs[leg];
                let from = l.from.plain().taken_from(&l.call_id);
                let command_id = l.command_id.clone();
                let back = self.appear(
                    entry,
                    LegKind::Plain,
                    from,
                    initiator,
                    Some("return_blind"),
                    command_id,
                );
                self.schedule_ring(back, initiator_ring);
            }
            LegKind::Consult { held } if self.legs[held].state == LegState::OnHold => {
                self.emit_leg(held, LegState::Connected, None, Mark::None);
            }
            _ => {}
        }
    }

    /// Ends the call when none of its legs is live: the summary, then `record/added` later.
    fn settle(&mut self, entry: usize) {
        let e = &self.entries[entry];
        if e.finished || e.legs.iter().any(|&l| self.live(l)) {
            return;
        }
        let now = self.now_unix();
        let e = &mut self.entries[entry];
        e.finished = true;
        e.end = now;
        let e = &self.entries[entry];
        let to = e.summary_to();
        let body = SummaryJson {
            entry_id: &e.entry_id,
            call_direction: e.direction,
            from: &e.from,
            to: &to,
            line_number: e.line.as_deref(),
            create_time: e.create,
            forward_time: e.forward,
            talk_time: e.talk,
            end_time: e.end,
            entry_result: u8::from(e.talk > 0),
            disconnect_reason: e.reason,
        };
        match serde_json::to_string(&body) {
            Ok(json) => self.out.push(Delivery {
                path: "events/summary".to_owned(),
                json,
                at_ms: self.now_ms,
            }),
            Err(err) => tracing::error!(%err, "fake Mango: a summary did not serialise"),
        }
        let delay = self.timings().record_added_s;
        for rec in self.entries[entry].recs.clone() {
            if self.recs[rec].completed {
                self.schedule(delay, Step::RecordAdded { rec });
            }
        }
    }

    fn start_recording(
        &mut self,
        leg: usize,
        extension: Option<String>,
        command_id: Option<String>,
    ) {
        let entry = self.legs[leg].entry;
        let extension = extension.unwrap_or_default();
        let user_id = self.employee(&extension).map_or(-1, |e| e.user_id);
        let recording_id = self.ids.recording_id();
        self.recs.push(Rec {
            recording_id: recording_id.clone(),
            entry,
            leg,
            extension,
            user_id,
            seq: 0,
            command_id,
            completed: false,
            available: false,
        });
        let rec = self.recs.len() - 1;
        self.by_recording_id.insert(recording_id, rec);
        self.legs[leg].recording = Some(rec);
        self.entries[entry].recs.push(rec);
        self.emit_recording(rec, "Started");
    }

    fn complete_recording(&mut self, rec: usize) {
        if !self.recs[rec].completed {
            self.recs[rec].completed = true;
            self.emit_recording(rec, "Completed");
        }
    }

    fn emit_recording(&mut self, rec: usize, state: &'static str) {
        let timestamp = self.now_unix();
        self.recs[rec].seq += 1;
        let r = &self.recs[rec];
        let completed = state == "Completed";
        let body = RecordingJson {
            recording_id: &r.recording_id,
            recording_state: state,
            seq: r.seq,
            entry_id: &self.entries[r.entry].entry_id,
            call_id: &self.legs[r.leg].call_id,
            extension: &r.extension,
            timestamp,
            completion_code: completed.then_some(OK),
            recipient: completed.then_some("Cloud"),
            command_id: r.command_id.as_deref(),
        };
        match serde_json::to_string(&body) {
            Ok(json) => self.out.push(Delivery {
                path: "events/recording".to_owned(),
                json,
                at_ms: self.now_ms,
            }),
            Err(e) => tracing::error!(%e, "fake Mango: a recording event did not serialise"),
        }
    }

    fn has_live_consult(&self, held: usize) -> bool {
        let entry = self.legs[held].entry;
        self.entries[entry].legs.iter().any(|&l| {
            self.live(l) && matches!(self.legs[l].kind, LegKind::Consult { held: h } if h == held)
        })
    }

    // ----- steps -----

    fn run(&mut self, step: Step) {
        match step {
            Step::Route {
                ivr,
                operators,
                ring,
            } => {
                if !self.live(ivr) {
                    return;
                }
                let entry = self.legs[ivr].entry;
                self.end_leg(ivr, NORMAL, Mark::None, Cause::Handover);
                self.entries[entry].forward = self.now_unix();
                let line = self.entries[entry].line.clone();
                let caller = self.legs[ivr].from.number.clone();
                let ivr_id = self.legs[ivr].call_id.clone();
                for op in operators {
                    let mut to =
                        Party::employee(&self.employee_or_stand_in(&op)).with_line(line.as_deref());
                    to.acd_group = Some(ACD_GROUP.to_owned());
                    let from = Party {
                        number: caller.clone(),
                        ..Party::default()
                    }
                    .taken_from(&ivr_id)
                    .with_line(line.as_deref());
                    if self.entries[entry].first.is_none() {
                        self.entries[entry].first = Some(to.plain());
                    }
                    let leg = self.appear(entry, LegKind::Plain, from, to, None, None);
                    self.schedule_ring(leg, ring.clone());
                }
                self.settle(entry);
            }
            Step::Answer { leg, then } => {
                let entry = self.legs[leg].entry;
                if self.legs[leg].state != LegState::Appeared || self.entries[entry].finished {
                    return;
                }
                self.connect(leg);
                if let LegKind::CallbackOperator {
                    customer,
                    customer_ring,
                    line,
                } = self.legs[leg].kind.clone()
                {
                    self.end_leg(leg, NORMAL, Mark::None, Cause::Handover);
                    let l = &self.legs[leg];
                    let from =
                        l.to.plain()
                            .taken_from(&l.call_id)
                            .with_line(line.as_deref());
                    let command_id = l.command_id.clone();
                    let second =
                        self.appear(entry, LegKind::Plain, from, customer, None, command_id);
                    self.schedule_ring(second, customer_ring);
                } else {
                    for (delay, then) in then {
                        self.schedule(delay, Step::Then { leg, then });
                    }
                }
                self.settle(entry);
            }
            Step::Fail { leg, code } => {
                if self.legs[leg].state == LegState::Appeared {
                    self.end_leg(leg, code, Mark::None, Cause::Other);
                    self.settle(self.legs[leg].entry);
                }
            }
            Step::Then { leg, then } => self.then(leg, then),
            Step::GiveUp { entry } => {
                if self.entries[entry].finished {
                    return;
                }
                for leg in self.entries[entry].legs.clone() {
                    self.end_leg(leg, BY_CALLER, Mark::None, Cause::CallerLeft);
                }
                self.settle(entry);
            }
            Step::Unhold { leg } => {
                if self.legs[leg].state == LegState::OnHold && !self.has_live_consult(leg) {
                    self.emit_leg(leg, LegState::Connected, None, Mark::None);
                }
            }
            Step::RecordAdded { rec } => {
                self.recs[rec].available = true;
                let timestamp = self.now_unix();
                let r = &self.recs[rec];
                let body = RecordAddedJson {
                    entry_id: &self.entries[r.entry].entry_id,
                    product_id: PRODUCT_ID,
                    user_id: r.user_id,
                    timestamp,
                    recording_id: &r.recording_id,
                };
                let json = serde_json::to_string(&body);
                match json {
                    Ok(json) => self.out.push(Delivery {
                        path: "events/record/added".to_owned(),
                        json,
                        at_ms: self.now_ms,
                    }),
                    Err(e) => tracing::error!(%e, "fake Mango: record/added did not serialise"),
                }
            }
            Step::SmsReport { command_id } => {
                let timestamp = self.now_unix();
                self.emit(
                    "events/sms",
                    &SmsJson {
                        command_id: &command_id,
                        timestamp,
                        reason: OK,
                    },
                );
            }
        }
    }

    fn then(&mut self, leg: usize, then: Then) {
        let entry = self.legs[leg].entry;
        let state = self.legs[leg].state;
        match then {
            Then::HangUp(code) => {
                if matches!(state, LegState::Connected | LegState::OnHold) {
                    self.end_leg(leg, code, Mark::None, Cause::Other);
                    self.settle(entry);
                }
            }
            Then::Hold { resume_after } => {
                if state == LegState::Connected {
                    self.emit_leg(
                        leg,
                        LegState::OnHold,
                        None,
                        Mark::Hold { to_initiates: true },
                    );
                    self.schedule(resume_after, Step::Unhold { leg });
                }
            }
            Then::Transfer {
                to,
                command_id,
                ring,
            } => {
                if state == LegState::Connected {
                    self.transfer_leg(leg, TransferMethod::Blind, &to, &command_id, false, *ring);
                    self.settle(entry);
                }
            }
            Then::Record => {
                if self.live(leg) && self.legs[leg].recording.is_none() {
                    let ext = self.legs[leg].to.extension.clone();
                    self.start_recording(leg, ext, None);
                }
            }
        }
    }

    /// A transfer of connected `leg` on behalf of its `from` side (`initiator_from`) or its `to`
    /// side, to `target` whose phone goes as `ring`; posts `/result/transfer` first.
    fn transfer_leg(
        &mut self,
        leg: usize,
        method: TransferMethod,
        target: &str,
        command_id: &str,
        initiator_from: bool,
        ring: Ring,
    ) {
        self.emit_result("transfer", command_id, OK);
        let entry = self.legs[leg].entry;
        let line = self.entries[entry].line.clone();
        let mut to = self.party_for(target);
        if to.extension.is_some() {
            to = to.with_line(line.as_deref());
        }
        let l = &self.legs[leg];
        let (initiator, other) = if initiator_from {
            (l.from.plain(), l.to.plain())
        } else {
            (l.to.plain(), l.from.plain())
        };
        let call_id = l.call_id.clone();
        let command_id = Some(command_id.to_owned());
        match method {
            TransferMethod::Blind => {
                let code = if initiator_from { BY_CALLER } else { BY_CALLED };
                self.end_leg(
                    leg,
                    code,
                    Mark::Transferred {
                        from_side: !initiator_from,
                    },
                    Cause::Handover,
                );
                let initiator_ring = match initiator.extension.as_deref() {
                    Some(ext) => self.ring_for(ext),
                    None => self.ring_for(initiator.number.as_deref().unwrap_or_default()),
                };
                let mut back_to = initiator.clone();
                if back_to.extension.is_some() {
                    back_to = back_to.with_line(line.as_deref());
                }
                let new = self.appear(
                    entry,
                    LegKind::Blind {
                        initiator: back_to,
                        initiator_ring,
                    },
                    other.taken_from(&call_id),
                    to,
                    Some("blind"),
                    command_id,
                );
                self.schedule_ring(new, ring);
            }
            TransferMethod::Hold => {
                self.emit_leg(
                    leg,
                    LegState::OnHold,
                    None,
                    Mark::Hold {
                        to_initiates: !initiator_from,
                    },
                );
                let from = initiator.taken_from(&call_id).with_line(line.as_deref());
                let new = self.appear(
                    entry,
                    LegKind::Consult { held: leg },
                    from,
                    to,
                    Some("consultative"),
                    command_id,
                );
                self.schedule_ring(new, ring);
            }
        }
    }

    // ----- scripted scenarios -----

    /// Starts a scripted call now; returns its `entry_id`.
    pub(crate) fn play(&mut self, scenario: &MangoScenario) -> String {
        let t = self.timings().clone();
        let talk = |code| vec![(t.talk_s, Then::HangUp(code))];
        let answered = |then| Ring::Answer {
            after: t.ring_s,
            then,
        };
        let entry = match scenario {
            MangoScenario::InboundAnswered {
                caller,
                line,
                operator,
            } => self.inbound(
                caller,
                line,
                vec![operator.clone()],
                answered(talk(BY_CALLER)),
                None,
            ),
            MangoScenario::InboundMissed {
                caller,
                line,
                operators,
            } => self.inbound(
                caller,
                line,
                operators.clone(),
                Ring::Forever,
                Some(t.give_up_s),
            ),
            MangoScenario::BlindTransfer {
                caller,
                line,
                from_op,
                to_op,
            } => {
                let transfer = Then::Transfer {
                    to: to_op.clone(),
                    command_id: self.ids.command_id("tr"),
                    ring: Box::new(answered(talk(BY_CALLER))),
                };
                let ring = answered(vec![(t.transfer_after_s, transfer)]);
                self.inbound(caller, line, vec![from_op.clone()], ring, None)
            }
            MangoScenario::Hold {
                caller,
                line,
                operator,
            } => {
                let ring = answered(vec![
                    (
                        t.hold_after_s,
                        Then::Hold {
                            resume_after: t.hold_s,
                        },
                    ),
                    (
                        t.hold_after_s + t.hold_s + t.talk_s,
                        Then::HangUp(BY_CALLER),
                    ),
                ]);
                self.inbound(caller, line, vec![operator.clone()], ring, None)
            }
            MangoScenario::Recorded {
                caller,
                line,
                operator,
            } => {
                let ring = answered(vec![(0, Then::Record), (t.talk_s, Then::HangUp(BY_CALLER))]);
                self.inbound(caller, line, vec![operator.clone()], ring, None)
            }
            MangoScenario::OutboundBusy { operator, number } => {
                let line = self.cfg.line.clone();
                let op = Party::employee(&self.employee_or_stand_in(operator));
                let entry = self.new_entry(
                    2,
                    op.clone(),
                    Some(Party::number(number)),
                    Some(line.clone()),
                );
                let leg = self.appear(
                    entry,
                    LegKind::Plain,
                    op.with_line(Some(&line)),
                    Party::number(number),
                    None,
                    None,
                );
                self.schedule_ring(
                    leg,
                    Ring::Fail {
                        after: t.busy_s,
                        code: BUSY,
                    },
                );
                entry
            }
            MangoScenario::Callback {
                operator,
                number,
                customer_answers,
            } => {
                let command_id = self.ids.command_id("cb");
                let customer_ring = if *customer_answers {
                    answered(talk(BY_CALLER))
                } else {
                    Ring::Fail {
                        after: t.no_answer_s,
                        code: NO_ANSWER,
                    }
                };
                let op_ring = Ring::Answer {
                    after: t.ring_s,
                    then: Vec::new(),
                };
                self.callback_flow(operator, number, None, &command_id, op_ring, customer_ring)
            }
        };
        self.entries[entry].entry_id.clone()
    }

    fn inbound(
        &mut self,
        caller: &str,
        line: &str,
        operators: Vec<String>,
        ring: Ring,
        give_up: Option<u32>,
    ) -> usize {
        let entry = self.new_entry(1, Party::number(caller), None, Some(line.to_owned()));
        let ivr = self.appear(
            entry,
            LegKind::Ivr,
            Party::number(caller).with_line(Some(line)),
            Party::number(line).with_line(Some(line)),
            None,
            None,
        );
        let ivr_s = self.timings().ivr_s;
        self.schedule(
            ivr_s,
            Step::Route {
                ivr,
                operators,
                ring,
            },
        );
        if let Some(after) = give_up {
            self.schedule(ivr_s + after, Step::GiveUp { entry });
        }
        entry
    }

    /// Callback (§3.2): `/result/callback`, leg 1 rings the employee, on answer leg 2 rings the
    /// number. An extension as `to_number` makes it an internal call (direction 0, no line).
    fn callback_flow(
        &mut self,
        operator: &str,
        to_number: &str,
        line: Option<&str>,
        command_id: &str,
        op_ring: Ring,
        customer_ring: Ring,
    ) -> usize {
        self.emit_result("callback", command_id, OK);
        let op = Party::employee(&self.employee_or_stand_in(operator));
        let customer = self.party_for(to_number);
        let internal = customer.extension.is_some();
        let line = (!internal).then(|| line.map_or_else(|| self.cfg.line.clone(), str::to_owned));
        let entry = self.new_entry(
            if internal { 0 } else { 2 },
            op.clone(),
            Some(customer.plain()),
            line.clone(),
        );
        let leg = self.appear(
            entry,
            LegKind::CallbackOperator {
                customer: customer.clone(),
                customer_ring,
                line,
            },
            customer.plain(),
            op,
            None,
            Some(command_id.to_owned()),
        );
        self.schedule_ring(leg, op_ring);
        entry
    }

    // ----- commands -----

    fn live_leg(&self, call_id: &str) -> Option<usize> {
        self.by_call_id
            .get(call_id)
            .copied()
            .filter(|&l| self.live(l) && !self.entries[self.legs[l].entry].finished)
    }

    pub(crate) fn cmd_callback(&mut self, c: &Callback) -> u32 {
        if self.employee(&c.from.extension).is_none() {
            return NUMBER_NOT_FOUND;
        }
        let op_ring = match self.ring_for(&c.from.extension) {
            Ring::Answer { after, .. } => Ring::Answer {
                after,
                then: Vec::new(),
            },
            other => other,
        };
        let customer_ring = self.ring_for(&c.to_number);
        self.callback_flow(
            &c.from.extension,
            &c.to_number,
            c.line_number.as_deref(),
            &c.command_id,
            op_ring,
            customer_ring,
        );
        OK
    }

    pub(crate) fn cmd_callback_group(&mut self, c: &CallbackGroup) -> u32 {
        self.emit_result("callback_group", &c.command_id, OK);
        OK
    }

    pub(crate) fn cmd_hangup(&mut self, c: &Hangup) -> u32 {
        let Some(leg) = self.live_leg(&c.call_id) else {
            return NO_SUCH_CALL;
        };
        self.emit_result("call/hangup", &c.command_id, OK);
        self.end_leg(leg, BY_API, Mark::None, Cause::Other);
        self.settle(self.legs[leg].entry);
        OK
    }

    pub(crate) fn cmd_transfer(&mut self, c: &Transfer) -> u32 {
        let Some(leg) = self.live_leg(&c.call_id) else {
            return NO_SUCH_CALL;
        };
        if self.legs[leg].state != LegState::Connected {
            return FORBIDDEN;
        }
        let l = &self.legs[leg];
        let initiator_from = if l.to.is(&c.initiator) {
            false
        } else if l.from.is(&c.initiator) {
            true
        } else {
            return FORBIDDEN;
        };
        let ring = self.ring_for(&c.to_number);
        self.transfer_leg(
            leg,
            c.method,
            &c.to_number,
            &c.command_id,
            initiator_from,
            ring,
        );
        self.settle(self.legs[leg].entry);
        OK
    }

    pub(crate) fn cmd_hold(&mut self, c: &HoldOn) -> u32 {
        let Some(leg) = self.live_leg(&c.call_id) else {
            return NO_SUCH_CALL;
        };
        let l = &self.legs[leg];
        if l.state != LegState::Connected {
            return FORBIDDEN;
        }
        let to_initiates = if l.to.is(&c.initiator) {
            true
        } else if l.from.is(&c.initiator) {
            false
        } else {
            return FORBIDDEN;
        };
        self.emit_result("call/hold/on", &c.command_id, OK);
        self.emit_leg(leg, LegState::OnHold, None, Mark::Hold { to_initiates });
        let resume = self.timings().hold_s;
        self.schedule(resume, Step::Unhold { leg });
        OK
    }

    pub(crate) fn cmd_recording(&mut self, c: &RecordingStart) -> u32 {
        let Some(leg) = self.live_leg(&c.call_id) else {
            return NO_SUCH_CALL;
        };
        let l = &self.legs[leg];
        if l.recording.is_some_and(|r| !self.recs[r].completed) {
            return ALREADY_RECORDING;
        }
        let party = if l.to.is(&c.call_party_number) {
            &l.to
        } else if l.from.is(&c.call_party_number) {
            &l.from
        } else {
            return NUMBER_NOT_FOUND;
        };
        let extension = party.extension.clone();
        self.emit_result("recording/start", &c.command_id, OK);
        self.start_recording(leg, extension, Some(c.command_id.clone()));
        OK
    }

    /// `route` and `play/start`: accepted for a live leg, nothing changes in the call.
    pub(crate) fn cmd_ack(&mut self, command: &str, command_id: &str, call_id: &str) -> u32 {
        if self.live_leg(call_id).is_none() {
            return NO_SUCH_CALL;
        }
        self.emit_result(command, command_id, OK);
        OK
    }

    pub(crate) fn cmd_sms(&mut self, c: &Sms) -> u32 {
        self.emit_result("sms", &c.command_id, OK);
        let after = self.timings().sms_report_s;
        self.schedule(
            after,
            Step::SmsReport {
                command_id: c.command_id.clone(),
            },
        );
        OK
    }

    // ----- queries -----

    pub(crate) fn live_calls(&self) -> Vec<LiveCall> {
        self.entries
            .iter()
            .filter(|e| !e.finished)
            .map(|e| LiveCall {
                entry_id: e.entry_id.clone(),
                legs: e
                    .legs
                    .iter()
                    .filter(|&&l| self.live(l))
                    .map(|&l| {
                        let l = &self.legs[l];
                        LiveLeg {
                            call_id: l.call_id.clone(),
                            state: l.state,
                            location: if l.location == "ivr" {
                                Location::Ivr
                            } else {
                                Location::Abonent
                            },
                            from: l.from.to_leg_party(),
                            to: l.to.to_leg_party(),
                            command_id: l.command_id.clone(),
                        }
                    })
                    .collect(),
            })
            .collect()
    }

    /// Whether a recording exists and is in the cloud (`record/added` was sent).
    pub(crate) fn recording_available(&self, recording_id: &str) -> bool {
        self.by_recording_id
            .get(recording_id)
            .is_some_and(|&r| self.recs[r].available)
    }

    /// The `stats/result` CSV of the finished calls created in `from..=to`: one row per call,
    /// `fields` in order, `;`-separated, rows ended by `\r\n`.
    pub(crate) fn stats_csv(
        &self,
        from: i64,
        to: i64,
        fields: &[String],
        filter: &StatsFilter,
    ) -> String {
        let mut csv = String::new();
        for e in self.entries.iter().filter(|e| e.finished) {
            if e.create < from || e.create > to {
                continue;
            }
            let sto = e.summary_to();
            let side = |p: &Party| {
                (
                    p.extension.clone().unwrap_or_default(),
                    p.number.clone().unwrap_or_default(),
                )
            };
            let (fe, fnum) = side(&e.from);
            let (te, tnum) = side(&sto);
            let matches = |want: &Option<(String, String)>, ext: &str, num: &str| {
                want.as_ref().is_none_or(|(we, wn)| {
                    (we.is_empty() || we == ext) && (wn.is_empty() || wn == num)
                })
            };
            let party_ok = filter.call_party.is_none()
                || matches(&filter.call_party, &fe, &fnum)
                || matches(&filter.call_party, &te, &tnum);
            if !matches(&filter.from, &fe, &fnum) || !matches(&filter.to, &te, &tnum) || !party_ok {
                continue;
            }
            let records: Vec<&str> = e
                .recs
                .iter()
                .filter(|&&r| self.recs[r].completed)
                .map(|&r| self.recs[r].recording_id.as_str())
                .collect();
            let row: Vec<String> = fields
                .iter()
                .map(|f| match f.trim() {
                    "records" => format!("[{}]", records.join(",")),
                    "start" | "create" => e.create.to_string(),
                    "finish" => e.end.to_string(),
                    "answer" => e.talk.to_string(),
                    "from_extension" => fe.clone(),
                    "from_number" => fnum.clone(),
                    "to_extension" => te.clone(),
                    "to_number" => tnum.clone(),
                    "disconnect_reason" => e.reason.to_string(),
                    "line_number" => e.line.clone().unwrap_or_default(),
                    "location" => e.location.to_owned(),
                    "entry_id" => e.entry_id.clone(),
                    _ => String::new(),
                })
                .collect();
            csv.push_str(&row.join(";"));
            csv.push_str("\r\n");
        }
        csv
    }
}
