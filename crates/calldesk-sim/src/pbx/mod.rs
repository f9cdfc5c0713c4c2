//! The **pure** PBX: channels, bridges, queues, parking, id allocation and every call flow, as a
//! state machine with time as an input. No tokio, no sockets, no clock.
//!
//! * [`Pbx::play`] starts a scripted inbound call, [`Pbx::action`] executes an AMI action,
//!   [`Pbx::advance`] fires the timed steps that are due (a phone answering after its ring time, a
//!   caller hanging up after its talk time), and [`Pbx::drain`] hands out what happened:
//!   events for every session and deferred replies (synchronous `Originate`).
//! * Every event is built from the live channel table, so a snapshot always shows the channel as
//!   it is (state, caller id, connected line, context/exten, Linkedid).
//! * The flows follow the real Asterisk 20 captures in `shared/fixtures/ami` (named at each flow).

mod actions;
mod features;
mod flows;
mod queues;

use std::collections::BTreeMap;
use std::time::Duration;

use calldesk_ami_proto::{EncodeError, Outgoing};

use crate::scenario::extension_name;

pub use actions::{ActionReply, Request};

/// How a lab phone (`SIP/<ext>`) reacts when it is dialled by `Originate`, `Redirect`,
/// `BlindTransfer`, `Atxfer` or a queue (scripted inbound calls follow their [`ScenarioKind`]).
///
/// [`ScenarioKind`]: crate::scenario::ScenarioKind
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneBehaviour {
    /// Rings for `after`, answers; hangs up by itself after `hangup_after` if given, else stays
    /// up until the other side ends the call.
    Answer {
        /// Ring time.
        after: Duration,
        /// Talk time after which the phone sends BYE.
        hangup_after: Option<Duration>,
    },
    /// Answers `486 Busy Here` after `after` (Asterisk: `BUSY`, cause 17).
    Busy {
        /// Time before the 486.
        after: Duration,
    },
    /// Rings until the dialler gives up (`NOANSWER`, Originate `Reason: 3`).
    NoAnswer,
}

impl PhoneBehaviour {
    /// Answers after `ms` milliseconds and stays up.
    pub const fn answers_after_ms(ms: u64) -> Self {
        PhoneBehaviour::Answer {
            after: Duration::from_millis(ms),
            hangup_after: None,
        }
    }
}

/// What the pure PBX needs to know about the lab.
#[derive(Debug, Clone)]
pub struct PbxConfig {
    /// Behaviour of extensions not listed in `phones`.
    pub default_phone: PhoneBehaviour,
    /// Per-extension behaviour (`"104"` → busy, …).
    pub phones: BTreeMap<String, PhoneBehaviour>,
    /// The carrier's far end for outbound calls (`Dial(SIP/trunk/<number>)`, click-to-call).
    pub far_end: PhoneBehaviour,
}

impl Default for PbxConfig {
    fn default() -> Self {
        let mut phones = BTreeMap::new();
        // The lab's 104 always answers busy and 105 never answers (README "Lab topology").
        phones.insert(
            "104".to_owned(),
            PhoneBehaviour::Busy {
                after: Duration::from_millis(100),
            },
        );
        phones.insert("105".to_owned(), PhoneBehaviour::NoAnswer);
        Self {
            default_phone: PhoneBehaviour::answers_after_ms(300),
            phones,
            far_end: PhoneBehaviour::answers_after_ms(500),
        }
    }
}

/// One thing the PBX produced.
#[derive(Debug, Clone)]
pub enum Output {
    /// An event for every session (filtered there by `Events`).
    Event(Outgoing),
    /// The reply to an action that was answered later ([`ActionReply::Deferred`]), as raw bytes.
    Reply {
        /// The token the action was submitted with.
        token: u64,
        /// Encoded messages, in order.
        bytes: Vec<u8>,
    },
    /// `Event: Shutdown`: the PBX is restarting; sessions write it and close.
    Shutdown(Outgoing),
}

/// A live call as the PBX sees it (channels grouped by Linkedid): the truth for reconnect tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCall {
    /// Linkedid (Uniqueid of the call's first channel).
    pub linkedid: String,
    /// `inbound` (from the trunk), `outbound` (to the trunk) or `internal`.
    pub direction: &'static str,
    /// The customer's number for inbound/outbound calls, the calling extension for internal ones.
    pub caller: String,
    /// The DID (inbound), the external number (outbound) or the extension dialled (internal).
    pub dialled: String,
    /// Extensions whose phone is up in this call (not spies), oldest first.
    pub operators: Vec<String>,
    /// Extensions ringing for this call.
    pub ringing: Vec<String>,
    /// `ringing`, `queued`, `talking`, `held`, `parked` or `dialing`.
    pub state: &'static str,
    /// Channel names, oldest first.
    pub channels: Vec<String>,
    /// Phones spying on a channel of this call (ChanSpy): `<extension>:<ChanSpy options>`,
    /// e.g. `201:bqESu` (listen), `201:bqwESu` (whisper), `201:BbqESu` (barge).
    pub spies: Vec<String>,
    /// Touch tones the PBX was asked to send (`PlayDTMF`): `<channel>:<tones>` for each channel
    /// of the call that sent any, e.g. `SIP/trunk-00000001:12#`.
    pub dtmf: Vec<String>,
}

/// Errors of handle-driven operations.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PbxError {
    /// No live (for hold: bridged) channel of that extension.
    #[error("extension {0} has no call")]
    NotInCall(String),
    /// No live call with that Linkedid.
    #[error("no live call with Linkedid {0}")]
    NoSuchCall(String),
}

pub(crate) type ChanId = u64;
pub(crate) type BridgeId = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tech {
    /// `SIP/trunk-…`, the carrier.
    Trunk,
    /// `SIP/<ext>-…`, a lab phone.
    Phone,
    /// `Local/…;1`, with its `;2` partner.
    LocalOne(ChanId),
    /// `Local/…;2`, with its `;1` partner.
    LocalTwo(ChanId),
}

/// Data for the trunk leg's `Cdr` of a scripted inbound call.
#[derive(Debug, Clone)]
pub(crate) struct InboundInfo {
    pub kind: crate::scenario::ScenarioKind,
    pub talk: Duration,
    pub did: String,
    pub dial_data: String,
    pub agent: String,
    pub start_epoch: u64,
    pub answer_epoch: Option<u64>,
    pub dial_started: Duration,
    pub answered_at: Option<Duration>,
    /// Cdr snapshot of the trunk (caller id, name, ids), as it was when the call came in.
    pub cdr_chan: Option<Box<Chan>>,
}

/// A pending originate (the `OriginateResponse` and the dialplan to run on answer).
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginateInfo {
    pub action_id: Option<String>,
    pub dial_string: String,
    pub context: String,
    pub exten: String,
    pub application: Option<(String, String)>,
    pub cid_num: String,
    pub cid_name: String,
    /// `Some(token)` for a synchronous originate waiting for its reply.
    pub sync_token: Option<u64>,
    pub is_async: bool,
    pub timeout: Duration,
}

/// Why a channel was dialled, i.e. what happens when it answers.
#[derive(Debug, Clone)]
pub(crate) enum DialPurpose {
    /// Bridge the dialler with the answered callee.
    Bridge,
    /// An originated leg (no dialler): run its originate continuation.
    Originate(Box<OriginateInfo>),
    /// A queue member: first answer wins (ringall).
    Queue,
    /// The consultation leg of an attended transfer (`Local;2` → target).
    Consult,
}

#[derive(Debug, Clone)]
pub(crate) struct DialLeg {
    pub caller: Option<ChanId>,
    pub purpose: DialPurpose,
}

#[derive(Debug, Clone)]
pub(crate) struct Chan {
    pub id: ChanId,
    pub name: String,
    pub tech: Tech,
    /// The lab extension of a phone channel (`101`), or the trunk's number.
    pub ext: String,
    pub state: u8,
    pub cid_num: String,
    pub cid_name: String,
    pub cl_num: String,
    pub cl_name: String,
    pub context: String,
    pub exten: String,
    pub priority: u32,
    pub uniqueid: String,
    /// `(epoch, seq)` of the Uniqueid, to find the oldest Linkedid.
    pub uid_key: (u64, u64),
    pub linkedid: String,
    pub linked_key: (u64, u64),
    pub sip_call_id: String,
    pub account: String,
    pub created: Duration,
    pub app: String,
    pub app_data: String,
    pub bridge: Option<BridgeId>,
    /// Runs a dialplan application that goes on after its bridge ends (the Dial caller, a queue
    /// caller, a parked-call retriever): it hangs up by itself when its peer leaves.
    pub owner: bool,
    /// Set on a dialled channel until it answers or gives up.
    pub dial: Option<DialLeg>,
    /// Channels this one is dialling (ringing).
    pub dialing: Vec<ChanId>,
    pub held: bool,
    pub moh: bool,
    pub mixmon: bool,
    pub queue: Option<QueueCaller>,
    pub inbound: Option<Box<InboundInfo>>,
    /// The channel this one spies on.
    pub spying: Option<ChanId>,
    /// Where this call came from, for [`SimCall`].
    pub direction: &'static str,
    /// Parked in this space.
    pub parked: Option<u32>,
    /// An attended transfer started by this channel (it is the transferer).
    pub atxfer: Option<Atxfer>,
    /// The queue member this channel is (agent leg): (queue, interface).
    pub member_of: Option<(String, String)>,
    /// Touch tones sent out on this channel (`PlayDTMF`), in order.
    pub dtmf_sent: String,
}

#[derive(Debug, Clone)]
pub(crate) struct QueueCaller {
    pub queue: String,
    pub answer_ext: String,
    pub joined: Duration,
    pub position: u32,
    pub connected: Option<(ChanId, Duration)>,
    pub ring_started: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct Atxfer {
    pub transferee: ChanId,
    pub orig_bridge: BridgeId,
    pub consult_bridge: BridgeId,
    pub local_one: ChanId,
    pub local_two: ChanId,
}

#[derive(Debug, Clone)]
pub(crate) struct Bridge {
    pub uuid: String,
    pub kind: &'static str,
    pub technology: &'static str,
    pub creator: &'static str,
    pub name: &'static str,
    pub members: Vec<ChanId>,
}

#[derive(Debug, Clone)]
pub(crate) enum Timer {
    /// The dialled extension of a scripted inbound call answers / rejects / the Dial times out.
    InboundOutcome { trunk: ChanId, agent: ChanId },
    /// A scripted queue call: the chosen member answers, or the caller gives up.
    QueueOutcome { caller: ChanId, answer: bool },
    /// The remote end of `chan` sends BYE.
    Bye { chan: ChanId },
    /// A dialled phone answers.
    Answer { chan: ChanId },
    /// A dialled phone answers busy.
    Busy { chan: ChanId },
    /// The dialler of `chan` gives up (Dial or Originate timeout).
    NoAnswer { chan: ChanId },
    /// A spy whose target hung up leaves (`ChanSpy` option `E`).
    SpyEnd { chan: ChanId },
}

/// Builder that carries the first encoding error along.
pub(crate) struct Ev(pub Result<Outgoing, EncodeError>);

impl Ev {
    pub fn event(name: &str, privilege: &str) -> Self {
        Ev(Outgoing::event(name)).h("Privilege", privilege)
    }
    pub fn plain(name: &str) -> Self {
        Ev(Outgoing::event(name))
    }
    pub fn response(kind: &str, action_id: Option<&str>) -> Self {
        let mut ev = Ev(Outgoing::response(kind));
        if let Some(id) = action_id {
            ev = ev.h("ActionID", id);
        }
        ev
    }
    pub fn h(self, k: &str, v: &str) -> Self {
        Ev(self.0.and_then(|o| o.header(k, v)))
    }
    pub fn opt(self, k: &str, v: Option<&str>) -> Self {
        match v {
            Some(v) => self.h(k, v),
            None => self,
        }
    }
    pub fn snap(self, c: &Chan, prefix: &str) -> Self {
        let p = |k: &str| format!("{prefix}{k}");
        self.h(&p("Channel"), &c.name)
            .h(&p("ChannelState"), &c.state.to_string())
            .h(&p("ChannelStateDesc"), state_desc(c.state))
            .h(&p("CallerIDNum"), &c.cid_num)
            .h(&p("CallerIDName"), &c.cid_name)
            .h(&p("ConnectedLineNum"), &c.cl_num)
            .h(&p("ConnectedLineName"), &c.cl_name)
            .h(&p("Language"), "en")
            .h(&p("AccountCode"), &c.account)
            .h(&p("Context"), &c.context)
            .h(&p("Exten"), &c.exten)
            .h(&p("Priority"), &c.priority.to_string())
            .h(&p("Uniqueid"), &c.uniqueid)
            .h(&p("Linkedid"), &c.linkedid)
    }
    pub fn bridge(self, b: &Bridge, prefix: &str) -> Self {
        let p = |k: &str| format!("{prefix}{k}");
        self.h(&p("BridgeUniqueid"), &b.uuid)
            .h(&p("BridgeType"), b.kind)
            .h(&p("BridgeTechnology"), b.technology)
            .h(&p("BridgeCreator"), b.creator)
            .h(&p("BridgeName"), b.name)
            .h(&p("BridgeNumChannels"), &b.members.len().to_string())
            .h(&p("BridgeVideoSourceMode"), "none")
    }
}

pub(crate) fn state_desc(state: u8) -> &'static str {
    match state {
        0 => "Down",
        1 => "Rsrvd",
        2 => "OffHook",
        3 => "Dialing",
        4 => "Ring",
        5 => "Ringing",
        6 => "Up",
        7 => "Busy",
        _ => "Unknown",
    }
}

/// `Cause-txt` of a Q.850 cause, as `ast_cause2str` prints it.
pub(crate) fn cause_txt(cause: u16) -> &'static str {
    match cause {
        0 => "Unknown",
        1 => "Unallocated (unassigned) number",
        16 => "Normal Clearing",
        17 => "User busy",
        18 => "No user responding",
        19 => "User alerting, no answer",
        20 => "Subscriber absent",
        21 => "Call Rejected",
        26 => "Answered elsewhere",
        34 => "Circuit/channel congestion",
        _ => "Unknown",
    }
}

/// Removes CR/LF and caps the length of text that came from a client.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect::<String>()
}

/// The fake PBX.
#[derive(Debug)]
pub struct Pbx {
    pub(crate) cfg: PbxConfig,
    pub(crate) now: Duration,
    boot_epoch: u64,
    boot_at: Duration,
    epoch_floor: u64,
    max_epoch_used: u64,
    next_uid: u64,
    next_chan: u32,
    next_local: u32,
    next_bridge: u64,
    next_id: u64,
    bridge_salt: u64,
    pub(crate) channels: BTreeMap<ChanId, Chan>,
    pub(crate) bridges: BTreeMap<BridgeId, Bridge>,
    timers: BTreeMap<(Duration, u64), Timer>,
    timer_seq: u64,
    out: Vec<(Duration, Output)>,
    pub(crate) queues: Vec<queues::Queue>,
    pub(crate) parking_bridge: Option<BridgeId>,
    pub(crate) parked: BTreeMap<u32, (ChanId, Duration, String)>,
    encode_error: Option<EncodeError>,
    dummy: Chan,
    pub(crate) processed_calls: u64,
    pub(crate) queue_talk: BTreeMap<ChanId, Duration>,
}

impl Pbx {
    /// A PBX booted at Unix time `boot_epoch` (the `<epoch>` of its first Uniqueids), with the
    /// Uniqueid and channel counters at zero.
    pub fn new(cfg: PbxConfig, boot_epoch: u64) -> Self {
        let dummy = Chan::blank(0, "", Tech::Phone, (0, 0), Duration::ZERO);
        let mut pbx = Pbx {
            cfg,
            now: Duration::ZERO,
            boot_epoch,
            boot_at: Duration::ZERO,
            epoch_floor: boot_epoch,
            max_epoch_used: 0,
            next_uid: 0,
            next_chan: 0,
            next_local: 0,
            next_bridge: 0,
            next_id: 1,
            bridge_salt: boot_epoch,
            channels: BTreeMap::new(),
            bridges: BTreeMap::new(),
            timers: BTreeMap::new(),
            timer_seq: 0,
            out: Vec::new(),
            queues: queues::lab_queues(boot_epoch),
            parking_bridge: None,
            parked: BTreeMap::new(),
            encode_error: None,
            dummy,
            processed_calls: 0,
            queue_talk: BTreeMap::new(),
        };
        pbx.max_epoch_used = boot_epoch;
        pbx
    }

    /// Starts the counters elsewhere (Asterisk's counters continue across calls; tests replay
    /// captures from the middle of a run).
    pub fn with_counters(mut self, next_uid: u64, next_chan: u32, next_local: u32) -> Self {
        self.next_uid = next_uid;
        self.next_chan = next_chan;
        self.next_local = next_local;
        self
    }

    /// Replaces the phone behaviour of one extension.
    pub fn set_phone(&mut self, ext: &str, behaviour: PhoneBehaviour) {
        self.cfg.phones.insert(ext.to_owned(), behaviour);
    }

    /// Seconds since the (last) boot, for `FullyBooted`'s `Uptime`.
    pub fn uptime(&self, now: Duration) -> u64 {
        now.saturating_sub(self.boot_at).as_secs()
    }

    /// The earliest pending timed step.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Fires every timed step due at `now` (in time order; each sees the clock at its deadline).
    pub fn advance(&mut self, now: Duration) {
        while let Some((&(at, seq), _)) = self.timers.iter().next() {
            if at > now {
                break;
            }
            let Some(timer) = self.timers.remove(&(at, seq)) else {
                break;
            };
            self.now = at.max(self.now);
            self.fire(timer);
        }
        self.now = now.max(self.now);
    }

    /// Takes what happened since the last call, with the time of each item.
    pub fn drain(&mut self) -> Vec<(Duration, Output)> {
        std::mem::take(&mut self.out)
    }

    /// The first encoding error (a value too long for an AMI line); such events were dropped.
    pub fn take_encode_error(&mut self) -> Option<EncodeError> {
        self.encode_error.take()
    }

    // ----- ids -----------------------------------------------------------------------------

    pub(crate) fn next_uid_peek(&self) -> u64 {
        self.next_uid
    }

    pub(crate) fn next_chan_peek(&self) -> u32 {
        self.next_chan
    }

    pub(crate) fn epoch(&self) -> u64 {
        (self.boot_epoch + self.now.saturating_sub(self.boot_at).as_secs()).max(self.epoch_floor)
    }

    fn alloc_uid(&mut self) -> (String, (u64, u64)) {
        let epoch = self.epoch();
        self.max_epoch_used = self.max_epoch_used.max(epoch);
        let seq = self.next_uid;
        self.next_uid += 1;
        (format!("{epoch}.{seq}"), (epoch, seq))
    }

    pub(crate) fn new_chan(&mut self, tech: Tech, ext: &str) -> ChanId {
        let (uid, key) = self.alloc_uid();
        let id = self.next_id;
        self.next_id += 1;
        let name = match tech {
            Tech::Trunk => format!("SIP/trunk-{:08x}", self.next_chan),
            _ => format!("SIP/{ext}-{:08x}", self.next_chan),
        };
        self.next_chan = self.next_chan.wrapping_add(1);
        let mut c = Chan::blank(id, &name, tech, key, self.now);
        c.uniqueid = uid.clone();
        c.linkedid = uid;
        c.ext = ext.to_owned();
        c.sip_call_id = format!(
            "{:016x}{:016x}@127.0.0.1:5060",
            key.0,
            key.1.wrapping_mul(0x9E37_79B9)
        );
        self.channels.insert(id, c);
        id
    }

    /// A `Local/<exten>@<context>-XXXXXXXX;1/;2` pair.
    pub(crate) fn new_local_pair(&mut self, exten: &str, context: &str) -> (ChanId, ChanId) {
        let n = self.next_local;
        self.next_local = self.next_local.wrapping_add(1);
        let base = format!("Local/{exten}@{context}-{n:08x}");
        let mut ids = [0; 2];
        for (i, suffix) in [";1", ";2"].iter().enumerate() {
            let (uid, key) = self.alloc_uid();
            let id = self.next_id;
            self.next_id += 1;
            let mut c = Chan::blank(id, &format!("{base}{suffix}"), Tech::Phone, key, self.now);
            c.uniqueid = uid.clone();
            c.linkedid = uid;
            c.context = context.to_owned();
            c.exten = exten.to_owned();
            c.cid_num = "<unknown>".to_owned();
            c.cid_name = "<unknown>".to_owned();
            self.channels.insert(id, c);
            ids[i] = id;
        }
        let (one, two) = (ids[0], ids[1]);
        if let Some(c) = self.channels.get_mut(&one) {
            c.tech = Tech::LocalOne(two);
        }
        let (one_link, one_key) = (self.c(one).linkedid.clone(), self.c(one).linked_key);
        self.set(two, |c| {
            c.tech = Tech::LocalTwo(one);
            c.state = 4;
            c.linkedid = one_link;
            c.linked_key = one_key;
        });
        (one, two)
    }

    pub(crate) fn new_bridge(
        &mut self,
        kind: &'static str,
        technology: &'static str,
        creator: &'static str,
        name: &'static str,
    ) -> BridgeId {
        let id = self.next_bridge;
        self.next_bridge += 1;
        let uuid = uuid_like(self.bridge_salt, id);
        self.bridges.insert(
            id,
            Bridge {
                uuid,
                kind,
                technology,
                creator,
                name,
                members: Vec::new(),
            },
        );
        id
    }

    // ----- channel access ------------------------------------------------------------------

    pub(crate) fn c(&self, id: ChanId) -> &Chan {
        self.channels.get(&id).unwrap_or(&self.dummy)
    }

    pub(crate) fn alive(&self, id: ChanId) -> bool {
        self.channels.contains_key(&id)
    }

    pub(crate) fn set(&mut self, id: ChanId, f: impl FnOnce(&mut Chan)) {
        if let Some(c) = self.channels.get_mut(&id) {
            f(c);
        }
    }

    pub(crate) fn by_name(&self, name: &str) -> Option<ChanId> {
        self.channels
            .values()
            .find(|c| c.name.eq_ignore_ascii_case(name))
            .map(|c| c.id)
    }

    pub(crate) fn bridge_of(&self, id: ChanId) -> Option<BridgeId> {
        self.c(id).bridge
    }

    /// The other members of `id`'s bridge.
    pub(crate) fn peers(&self, id: ChanId) -> Vec<ChanId> {
        match self.bridge_of(id).and_then(|b| self.bridges.get(&b)) {
            Some(b) => b.members.iter().copied().filter(|m| *m != id).collect(),
            None => Vec::new(),
        }
    }

    pub(crate) fn phone_behaviour(&self, ext: &str) -> PhoneBehaviour {
        self.cfg
            .phones
            .get(ext)
            .copied()
            .unwrap_or(self.cfg.default_phone)
    }

    // ----- timers --------------------------------------------------------------------------

    pub(crate) fn schedule(&mut self, after: Duration, timer: Timer) {
        let at = self.now.saturating_add(after);
        self.timer_seq += 1;
        self.timers.insert((at, self.timer_seq), timer);
    }

    fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::InboundOutcome { trunk, agent } => self.inbound_outcome(trunk, agent),
            Timer::QueueOutcome { caller, answer } => self.queue_outcome(caller, answer),
            Timer::Bye { chan } => {
                if self.alive(chan) {
                    self.hangup(chan, 16, HangupHow::Remote);
                }
            }
            Timer::Answer { chan } => self.dialled_answers(chan),
            Timer::Busy { chan } => self.dialled_busy(chan),
            Timer::NoAnswer { chan } => self.dial_timeout(chan),
            Timer::SpyEnd { chan } => self.end_dialplan(chan, 16),
        }
    }

    // ----- emission ------------------------------------------------------------------------

    pub(crate) fn push(&mut self, ev: Ev) {
        match ev.0 {
            Ok(o) => self.out.push((self.now, Output::Event(o))),
            Err(e) => {
                if self.encode_error.is_none() {
                    self.encode_error = Some(e);
                }
            }
        }
    }

    pub(crate) fn push_reply(&mut self, token: u64, bytes: Vec<u8>) {
        self.out.push((self.now, Output::Reply { token, bytes }));
    }

    pub(crate) fn chan_ev(&mut self, name: &str, id: ChanId) {
        let ev = Ev::event(name, "call,all").snap(self.c(id), "");
        self.push(ev);
    }

    pub(crate) fn varset(&mut self, id: ChanId, var: &str, val: &str) {
        let ev = Ev::event("VarSet", "dialplan,all")
            .snap(self.c(id), "")
            .h("Variable", var)
            .h("Value", val);
        self.push(ev);
    }

    pub(crate) fn newexten(&mut self, id: ChanId, app: &str, data: &str) {
        let c = self.c(id);
        let ev = Ev::event("Newexten", "dialplan,all")
            .snap(c, "")
            .h("Extension", &c.exten)
            .h("Application", app)
            .h("AppData", data);
        self.push(ev);
        let data = data.to_owned();
        self.set(id, |c| {
            c.app = app.to_owned();
            c.app_data = data;
        });
    }

    pub(crate) fn devstate(&mut self, device: &str, state: &str) {
        self.push(
            Ev::event("DeviceStateChange", "call,all")
                .h("Device", device)
                .h("State", state),
        );
    }

    pub(crate) fn dial_ev(
        &mut self,
        name: &str,
        caller: Option<ChanId>,
        dest: ChanId,
        last: (&str, &str),
    ) {
        let mut ev = Ev::event(name, "call,all");
        if let Some(caller) = caller {
            ev = ev.snap(self.c(caller), "");
        }
        let ev = ev.snap(self.c(dest), "Dest").h(last.0, last.1);
        self.push(ev);
    }

    pub(crate) fn hangup_ev(&mut self, name: &str, id: ChanId, cause: Option<u16>, txt: bool) {
        let mut ev = Ev::event(name, "call,all").snap(self.c(id), "");
        if let Some(cause) = cause {
            ev = ev.h("Cause", &cause.to_string());
            if txt {
                ev = ev.h("Cause-txt", cause_txt(cause));
            }
        }
        self.push(ev);
    }

    pub(crate) fn bridge_ev(&mut self, name: &str, b: BridgeId, chan: Option<ChanId>) {
        let Some(bridge) = self.bridges.get(&b) else {
            return;
        };
        let mut ev = Ev::event(name, "call,all").bridge(bridge, "");
        if let Some(c) = chan {
            ev = ev.snap(self.c(c), "");
        }
        self.push(ev);
    }

    pub(crate) fn set_state(&mut self, id: ChanId, state: u8) {
        self.set(id, |c| c.state = state);
        self.chan_ev("Newstate", id);
    }

    // ----- bridges -------------------------------------------------------------------------

    /// `BridgeCreate` of a basic bridge.
    pub(crate) fn basic_bridge(&mut self) -> BridgeId {
        let b = self.new_bridge("basic", "simple_bridge", "<unknown>", "<unknown>");
        self.bridge_ev("BridgeCreate", b, None);
        b
    }

    /// `BridgeEnter`; the entering channel takes the oldest Linkedid of the bridge.
    pub(crate) fn enter(&mut self, b: BridgeId, id: ChanId) {
        self.enter_swap(b, id, None);
    }

    /// `BridgeEnter` taking the place of the channel with Uniqueid `swap` (`SwapUniqueid`).
    pub(crate) fn enter_swap(&mut self, b: BridgeId, id: ChanId, swap: Option<&str>) {
        let Some(bridge) = self.bridges.get_mut(&b) else {
            return;
        };
        if !bridge.members.contains(&id) {
            bridge.members.push(id);
        }
        let members = bridge.members.clone();
        let oldest = members
            .iter()
            .filter_map(|m| self.channels.get(m))
            .map(|c| (c.linked_key, c.linkedid.clone()))
            .min();
        if let Some((key, linkedid)) = oldest {
            for m in &members {
                self.set(*m, |c| {
                    c.linked_key = key;
                    c.linkedid = linkedid.clone();
                });
            }
        }
        self.set(id, |c| c.bridge = Some(b));
        let Some(bridge) = self.bridges.get(&b) else {
            return;
        };
        let ev = Ev::event("BridgeEnter", "call,all")
            .bridge(bridge, "")
            .snap(self.c(id), "")
            .opt("SwapUniqueid", swap);
        self.push(ev);
    }

    /// `BridgeLeave`.
    pub(crate) fn leave(&mut self, id: ChanId) {
        let Some(b) = self.bridge_of(id) else {
            return;
        };
        if let Some(bridge) = self.bridges.get_mut(&b) {
            bridge.members.retain(|m| *m != id);
        }
        self.set(id, |c| c.bridge = None);
        self.bridge_ev("BridgeLeave", b, Some(id));
    }

    /// `BridgeDestroy` (the bridge must be empty).
    pub(crate) fn destroy(&mut self, b: BridgeId) {
        self.bridge_ev("BridgeDestroy", b, None);
        self.bridges.remove(&b);
        if self.parking_bridge == Some(b) {
            self.parking_bridge = None;
        }
    }

    /// Removes a channel that has sent its `Hangup` event.
    pub(crate) fn remove(&mut self, id: ChanId) {
        self.queue_talk.remove(&id);
        if let Some(c) = self.channels.remove(&id) {
            if let Some(b) = c.bridge
                && let Some(bridge) = self.bridges.get_mut(&b)
            {
                bridge.members.retain(|m| *m != id);
            }
            for other in self.channels.values_mut() {
                other.dialing.retain(|d| *d != id);
            }
            self.parked.retain(|_, (ch, _, _)| *ch != id);
        }
    }

    /// `Hangup` with cause and text, then forget the channel.
    pub(crate) fn hangup_final(&mut self, id: ChanId, cause: u16) {
        if !self.alive(id) {
            return;
        }
        self.spy_stops_for(id);
        self.hangup_ev("Hangup", id, Some(cause), true);
        if self.c(id).member_of.is_some() {
            self.member_status_of_chan(id, false);
        }
        self.remove(id);
    }

    // ----- restart -------------------------------------------------------------------------

    /// `core restart now`: every channel gets `SoftHangupRequest Cause: 4`, then the normal
    /// teardown, then `Event: Shutdown`; the counters start again under a new epoch, so no
    /// Uniqueid of this run is ever given out twice (`j6_restart_reconnect.conn1`).
    pub fn restart(&mut self, now: Duration) {
        self.now = now.max(self.now);
        let mut ids: Vec<ChanId> = self.channels.keys().copied().collect();
        ids.reverse();
        for id in &ids {
            self.hangup_ev("SoftHangupRequest", *id, Some(4), false);
        }
        let bridges: Vec<BridgeId> = self.bridges.keys().copied().collect();
        for b in bridges {
            let members = self
                .bridges
                .get(&b)
                .map(|b| b.members.clone())
                .unwrap_or_default();
            for m in members.iter().rev() {
                self.leave(*m);
            }
            if members.is_empty() && self.parking_bridge == Some(b) {
                self.bridges.remove(&b);
                self.parking_bridge = None;
                continue;
            }
            self.destroy(b);
        }
        for id in ids.iter().rev() {
            if self.c(*id).owner {
                self.hangup_ev("SoftHangupRequest", *id, Some(16), false);
            }
            self.hangup_final(*id, 16);
        }
        let ev = Ev::event("Shutdown", "system,all")
            .h("Shutdown", "Cleanly")
            .h("Restart", "True");
        if let Ok(o) = ev.0 {
            self.out.push((self.now, Output::Shutdown(o)));
        }
        // A new boot: counters from zero under an epoch no earlier Uniqueid used.
        self.timers.clear();
        self.channels.clear();
        self.bridges.clear();
        self.parked.clear();
        self.parking_bridge = None;
        let wall = self.epoch();
        self.boot_epoch = wall.max(self.max_epoch_used + 1);
        self.epoch_floor = self.boot_epoch;
        self.boot_at = self.now;
        self.next_uid = 0;
        self.next_chan = 0;
        self.next_local = 0;
        self.bridge_salt = self.bridge_salt.wrapping_add(0x5851_F42D_4C95_7F2D);
        self.queues = queues::lab_queues(self.boot_epoch);
        self.processed_calls = 0;
    }

    // ----- truth for tests -----------------------------------------------------------------

    /// The live calls: channels grouped by Linkedid (spy sessions left out).
    pub fn live_calls(&self) -> Vec<SimCall> {
        let mut groups: BTreeMap<(u64, u64), Vec<&Chan>> = BTreeMap::new();
        for c in self.channels.values() {
            groups.entry(c.linked_key).or_default().push(c);
        }
        let mut out = Vec::new();
        for (_, mut chans) in groups {
            chans.sort_by_key(|c| c.uid_key);
            if chans.iter().any(|c| c.spying.is_some()) {
                continue;
            }
            let Some(first) = chans.first() else {
                continue;
            };
            let trunk = chans.iter().find(|c| c.tech == Tech::Trunk);
            let direction = first.direction;
            let (caller, dialled) = match (direction, trunk) {
                ("inbound", Some(t)) => (
                    t.cid_num.clone(),
                    t.inbound
                        .as_ref()
                        .map(|i| i.did.clone())
                        .unwrap_or_else(|| t.exten.clone()),
                ),
                ("outbound", Some(t)) => (first.ext.clone(), t.ext.clone()),
                _ => (first.ext.clone(), first.exten.clone()),
            };
            let phones = chans.iter().filter(|c| c.tech == Tech::Phone);
            let operators: Vec<String> = phones
                .clone()
                .filter(|c| c.state == 6 && c.dial.is_none())
                .map(|c| c.ext.clone())
                .collect();
            let ringing: Vec<String> = phones
                .filter(|c| c.state != 6 && c.dial.is_some())
                .map(|c| c.ext.clone())
                .collect();
            let state = if chans.iter().any(|c| c.parked.is_some()) {
                "parked"
            } else if chans.iter().any(|c| c.held || c.moh) && !operators.is_empty() {
                "held"
            } else if !operators.is_empty() && chans.iter().any(|c| c.bridge.is_some()) {
                "talking"
            } else if chans.iter().any(|c| c.queue.is_some()) {
                "queued"
            } else if !ringing.is_empty() {
                "ringing"
            } else {
                "dialing"
            };
            out.push(SimCall {
                linkedid: first.linkedid.clone(),
                direction,
                caller,
                dialled,
                operators,
                ringing,
                state,
                channels: chans.iter().map(|c| c.name.clone()).collect(),
                spies: self
                    .channels
                    .values()
                    .filter(|s| s.spying.is_some_and(|id| chans.iter().any(|c| c.id == id)))
                    .map(|s| {
                        let opts = s.app_data.split_once(',').map_or("", |(_, o)| o);
                        format!("{}:{opts}", s.ext)
                    })
                    .collect(),
                dtmf: chans
                    .iter()
                    .filter(|c| !c.dtmf_sent.is_empty())
                    .map(|c| format!("{}:{}", c.name, c.dtmf_sent))
                    .collect(),
            });
        }
        out
    }

    /// Number of live channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The customer (or first) channel of the call with this Linkedid hangs up (sends BYE).
    pub fn hangup_call(&mut self, now: Duration, linkedid: &str) -> Result<(), PbxError> {
        self.now = now.max(self.now);
        let mut chans: Vec<&Chan> = self
            .channels
            .values()
            .filter(|c| c.linkedid == linkedid)
            .collect();
        chans.sort_by_key(|c| c.uid_key);
        let target = chans
            .iter()
            .find(|c| c.tech == Tech::Trunk)
            .or(chans.first())
            .map(|c| c.id);
        match target {
            Some(id) => {
                self.hangup(id, 16, HangupHow::Remote);
                Ok(())
            }
            None => Err(PbxError::NoSuchCall(linkedid.to_owned())),
        }
    }

    /// The phone of `ext` hangs up (sends BYE) on its newest live channel: ends its call, or
    /// completes an attended transfer it started (`e_attended_transfer`).
    pub fn phone_hangup(&mut self, now: Duration, ext: &str) -> Result<(), PbxError> {
        self.now = now.max(self.now);
        let chan = self
            .channels
            .values()
            .rev()
            .find(|c| c.tech == Tech::Phone && c.ext == ext)
            .map(|c| c.id)
            .ok_or_else(|| PbxError::NotInCall(ext.to_owned()))?;
        self.hangup(chan, 16, HangupHow::Remote);
        Ok(())
    }

    /// Hold (`on`) or resume the call of extension `ext` as its phone would with a re-INVITE:
    /// `Hold`/`Unhold` on the phone's channel, `MusicOnHoldStart`/`Stop` on its peer
    /// (`f_hold_moh`).
    pub fn hold(&mut self, now: Duration, ext: &str, on: bool) -> Result<(), PbxError> {
        self.now = now.max(self.now);
        let chan = self
            .channels
            .values()
            .filter(|c| c.tech == Tech::Phone && c.ext == ext && c.bridge.is_some())
            .map(|c| c.id)
            .next()
            .ok_or_else(|| PbxError::NotInCall(ext.to_owned()))?;
        let peers = self.peers(chan);
        if on {
            self.set(chan, |c| c.held = true);
            self.chan_ev("Hold", chan);
            for p in peers {
                self.moh_start(p);
            }
        } else {
            self.set(chan, |c| c.held = false);
            self.chan_ev("Unhold", chan);
            for p in peers {
                self.moh_stop(p);
            }
        }
        Ok(())
    }

    pub(crate) fn moh_start(&mut self, id: ChanId) {
        if self.c(id).moh {
            return;
        }
        self.set(id, |c| c.moh = true);
        let ev = Ev::event("MusicOnHoldStart", "call,all")
            .snap(self.c(id), "")
            .h("Class", "default");
        self.push(ev);
    }

    pub(crate) fn moh_stop(&mut self, id: ChanId) {
        if !self.c(id).moh {
            return;
        }
        self.set(id, |c| c.moh = false);
        self.chan_ev("MusicOnHoldStop", id);
    }
}

/// How a channel goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HangupHow {
    /// The far end sent BYE (`HangupRequest`).
    Remote,
    /// AMI `Hangup` or the dialplan (`SoftHangupRequest`).
    Soft,
}

impl Chan {
    pub(crate) fn blank(
        id: ChanId,
        name: &str,
        tech: Tech,
        key: (u64, u64),
        now: Duration,
    ) -> Chan {
        Chan {
            id,
            name: name.to_owned(),
            tech,
            ext: String::new(),
            state: 0,
            cid_num: String::new(),
            cid_name: String::new(),
            cl_num: "<unknown>".to_owned(),
            cl_name: "<unknown>".to_owned(),
            context: "from-internal".to_owned(),
            exten: "s".to_owned(),
            priority: 1,
            uniqueid: String::new(),
            uid_key: key,
            linkedid: String::new(),
            linked_key: key,
            sip_call_id: String::new(),
            account: String::new(),
            created: now,
            app: String::new(),
            app_data: String::new(),
            bridge: None,
            owner: false,
            dial: None,
            dialing: Vec::new(),
            held: false,
            moh: false,
            mixmon: false,
            queue: None,
            inbound: None,
            spying: None,
            direction: "internal",
            parked: None,
            atxfer: None,
            member_of: None,
            dtmf_sent: String::new(),
        }
    }
}

/// A lab phone channel's caller id (`101` / `Alice Agent`).
pub(crate) fn phone_cid(ext: &str) -> (String, String) {
    (ext.to_owned(), extension_name(ext))
}

/// Deterministic UUIDv4-shaped id (splitmix64 of a salt and a counter).
fn uuid_like(salt: u64, n: u64) -> String {
    let mut x = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ n.wrapping_add(0x2545_F491_4F6C_DD1D);
    let mut next = || {
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let a = next();
    let b = next();
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}
