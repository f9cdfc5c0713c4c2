//! Asterisk tracker: AMI events → domain [`CallEvent`]s. Pure: no IO, time is an input.
//!
//! ## Model
//! - A **channel** is keyed by `Uniqueid`. A **group** is every channel sharing a `Linkedid`; a
//!   new call's Linkedid is its first channel's Uniqueid, and Dial, Queue, Local and Originate
//!   channels inherit it. When a bridge joins an older call (park retrieval, transfers), Asterisk
//!   changes the channel's Linkedid on its next event: the tracker then **moves** the channel to
//!   that group (re-keying). A group left empty by moves ends without a record of its own.
//! - A group is a customer-facing **call** (announced with `Started`), **pending** (not known yet
//!   what it is) or a **spy** session. A group whose first channel is a trunk (a channel whose peer
//!   is not an internal extension) is an inbound call at once, so the pop is immediate. A group
//!   started by an operator's phone or by `Originate` (`Local/`, `SIP/101` with exten `s`) waits:
//!   it becomes an outbound call when one of its channels dials a trunk, an internal call when the
//!   first channel dials another extension (or joins a queue), a failed click-to-call when the
//!   `OriginateResponse` says the operator's leg failed, and a spy session on `ChanSpyStart`. A
//!   pending group that ends as none of these leaves no record (spy legs, park retrievals, echo
//!   tests).
//! - The **customer channel** is the trunk leg (inbound: the first channel; outbound: the dialled
//!   trunk); for internal calls it is the caller's channel. An operator **answered** when their
//!   channel shares a bridge with the customer channel — following `Local/…;1`↔`;2` pairs across
//!   bridges — so queue losers, consultation legs and ringing phones do not count.
//! - **Transfers**: `BlindTransfer` and `AttendedTransfer` events; a `Redirect` has no event, so a
//!   customer channel that dials another operator after someone talked to it is a blind transfer
//!   from the last operator who talked.
//! - **Hold**: `Hold`/`Unhold` on an operator's channel, `ParkedCall`/`UnParkedCall` of the
//!   customer. Music on hold alone is not hold (callers hear it while they wait in a queue).
//! - **Recordings**: the `MIXMONITOR_FILENAME` variable (dialplan and AMI `MixMonitor` both set
//!   it; `MixMonitorStart` has no file name).
//! - **Statuses**: decided by the call book from what it was told; the tracker adds busy (a busy
//!   `DialEnd` outside a queue) and `failed` (click-to-call whose operator leg failed).
//! - `Cdr` and `CEL` events are ignored: they arrive out of order (often before `Hangup`) and
//!   spell their keys differently.
//!
//! After a (re)connect, [`AsteriskTracker::resync`] takes the `CoreShowChannel` list and brings
//! the model in line: channels that vanished meanwhile are hung up (their calls end), channels
//! that appeared are added, bridges are re-read.

use std::collections::{HashMap, HashSet, VecDeque};

use calldesk_ami_proto::Message;
use calldesk_calls::{
    CallEvent, CallEventKind, CallId, CallStatus, DeviceState, Direction, Extension, HangupCause,
    MonitorMode, NumberPlan, Party, PresenceEvent, Timestamp, TransferKind,
};

use crate::directory::ChannelDirectory;

/// What the tracker reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrackerEvent {
    Call(CallEvent),
    Presence(PresenceEvent),
}

/// How many pending originate groups are remembered after they end, for an `OriginateResponse`
/// that arrives after the operator's channel hung up.
const REMEMBERED_ORIGINATES: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A trunk leg.
    Trunk,
    /// An operator's phone.
    Operator,
    /// `Local/…;1` or `;2`.
    Local,
}

#[derive(Debug)]
struct Channel {
    name: String,
    group: String,
    kind: Kind,
    operator: Option<Extension>,
    /// The extension it was created for (`Exten` at `Newchannel`).
    exten: String,
    bridge: Option<String>,
    cause: Option<HangupCause>,
    /// Created by `Originate` (its dial had no calling channel).
    originated: bool,
}

#[derive(Debug, Default)]
struct CallState {
    customer: Option<String>,
    /// Operators connected to the customer now.
    connected: Vec<Extension>,
    /// The last operator who talked to the customer.
    last_talker: Option<Extension>,
    in_queue: bool,
    /// The target of the last transfer, so the dial that carries it out is not a second one.
    last_transfer_to: Option<String>,
    /// A transfer was reported since the last operator started talking: later dials (a queue,
    /// a ring group) are where the transfer leads, not new transfers.
    transferred_since_talk: bool,
    /// The operator channel (Uniqueid) that put the customer on hold, while on hold.
    held_by: Option<String>,
    /// The dials of the current attempt (destination Uniqueid → ended busy?), for "busy" only
    /// when every leg said busy.
    dials: Vec<(String, Option<bool>)>,
    failed: bool,
    customer_cause: Option<HangupCause>,
}

#[derive(Debug)]
enum Role {
    Pending,
    Call(Box<CallState>),
    Spy {
        target: Option<String>,
        supervisor: Option<Extension>,
    },
}

#[derive(Debug, Default)]
struct Originate {
    application: String,
    data: String,
    exten: String,
    failed: bool,
}

#[derive(Debug)]
struct Group {
    id: Option<CallId>,
    channels: Vec<String>,
    /// The first channel seen (by `Uniqueid`).
    origin: Option<String>,
    started_at: Timestamp,
    role: Role,
    originate: Option<Originate>,
    /// Recording files seen while pending.
    recordings: Vec<String>,
    origin_cause: Option<HangupCause>,
    /// The first operator's phone in the group (who a click-to-call belongs to).
    originator: Option<Extension>,
}

impl Group {
    fn new(linkedid: &str, now: Timestamp) -> Self {
        Self {
            id: CallId::new(linkedid).ok(),
            channels: Vec::new(),
            origin: None,
            started_at: now,
            role: Role::Pending,
            originate: None,
            recordings: Vec::new(),
            origin_cause: None,
            originator: None,
        }
    }

    fn call(&self) -> Option<&CallState> {
        match &self.role {
            Role::Call(c) => Some(c),
            _ => None,
        }
    }
}

/// A pending originate group that ended before its `OriginateResponse` arrived.
#[derive(Debug)]
struct EndedOriginate {
    id: CallId,
    origin_name: String,
    started_at: Timestamp,
    ended_at: Timestamp,
    cause: Option<HangupCause>,
}

/// An `OriginateResponse` belongs to an originate group that ended at most this long before it.
const ORIGINATE_RESPONSE_WINDOW_MS: i64 = 5_000;

/// Folds AMI events into call and presence events.
#[derive(Debug)]
pub struct AsteriskTracker {
    plan: NumberPlan,
    channels: HashMap<String, Channel>,
    groups: HashMap<String, Group>,
    bridges: HashMap<String, Vec<String>>,
    /// Holding bridges (parking lots, `holding_bridge`): their members do not hear each other.
    holding_bridges: HashSet<String>,
    /// `Local/x@ctx-0000001` (without `;1`/`;2`) → Uniqueids of its two halves.
    locals: HashMap<String, [Option<String>; 2]>,
    ended_originates: VecDeque<EndedOriginate>,
}

/// The peer of a channel name: `SIP/101-00000007` → `101`, `PJSIP/alice-0000002a` → `alice`.
/// `None` for names that carry no peer (`Local/…`) or do not look like a channel.
pub fn extension_of_channel(channel: &str) -> Option<Extension> {
    let (tech, rest) = channel.split_once('/')?;
    if tech.eq_ignore_ascii_case("Local") {
        return None;
    }
    let peer = rest.rsplit_once('-').map_or(rest, |(peer, _)| peer);
    Extension::new(peer).ok()
}

/// `Local/102@from-internal-00000000;2` → (`Local/102@from-internal-00000000`, 1).
fn local_half(channel: &str) -> Option<(&str, usize)> {
    let (tech, _) = channel.split_once('/')?;
    if !tech.eq_ignore_ascii_case("Local") {
        return None;
    }
    let (base, half) = channel.rsplit_once(';')?;
    match half {
        "1" => Some((base, 0)),
        "2" => Some((base, 1)),
        _ => None,
    }
}

/// A header as text; empty when missing or not UTF-8.
fn field<'a>(msg: &'a Message, key: &str) -> &'a str {
    msg.get(key)
        .and_then(|v| std::str::from_utf8(v).ok())
        .unwrap_or("")
}

/// `<unknown>` and empty values mean "none".
fn known(value: &str) -> Option<&str> {
    (!value.is_empty() && value != "<unknown>").then_some(value)
}

fn cause_of(msg: &Message) -> Option<HangupCause> {
    let code = field(msg, "Cause").parse().ok()?;
    Some(HangupCause {
        code,
        text: field(msg, "Cause-txt").to_owned(),
    })
}

/// Device state names of `DeviceStateChange` (`INUSE`, `NOT_INUSE`, …).
fn device_state(name: &str) -> DeviceState {
    match name {
        "NOT_INUSE" => DeviceState::Idle,
        "INUSE" => DeviceState::InUse,
        "BUSY" => DeviceState::Busy,
        "RINGING" => DeviceState::Ringing,
        "RINGINUSE" => DeviceState::RingInUse,
        "ONHOLD" => DeviceState::OnHold,
        "UNAVAILABLE" | "INVALID" => DeviceState::Unavailable,
        _ => DeviceState::Unknown,
    }
}

/// ChanSpy options → mode: `B` barge, `w` whisper, else listen.
fn spy_mode(options: &str) -> MonitorMode {
    if options.contains('B') {
        MonitorMode::Barge
    } else if options.contains('w') {
        MonitorMode::Whisper
    } else {
        MonitorMode::Listen
    }
}

struct Out<'a> {
    out: &'a mut Vec<TrackerEvent>,
    now: Timestamp,
}

impl Out<'_> {
    fn call(&mut self, id: &Option<CallId>, kind: CallEventKind) {
        self.call_at(id, self.now, kind);
    }

    fn call_at(&mut self, id: &Option<CallId>, at: Timestamp, kind: CallEventKind) {
        if let Some(call) = id {
            self.out.push(TrackerEvent::Call(CallEvent {
                call: call.clone(),
                at,
                kind,
            }));
        }
    }
}

impl AsteriskTracker {
    pub fn new(plan: NumberPlan) -> Self {
        Self {
            plan,
            channels: HashMap::new(),
            groups: HashMap::new(),
            bridges: HashMap::new(),
            holding_bridges: HashSet::new(),
            locals: HashMap::new(),
            ended_originates: VecDeque::new(),
        }
    }

    /// Number of announced calls that are still live.
    pub fn live_calls(&self) -> usize {
        self.groups
            .values()
            .filter(|g| matches!(g.role, Role::Call(_)))
            .count()
    }

    /// Number of channels the tracker follows.
    pub fn live_channels(&self) -> usize {
        self.channels.len()
    }

    /// Ids of the announced calls that are still live.
    pub fn live_call_ids(&self) -> Vec<CallId> {
        self.groups
            .values()
            .filter(|g| matches!(g.role, Role::Call(_)))
            .filter_map(|g| g.id.clone())
            .collect()
    }

    /// Handles one AMI message received at `now`; appends what it implies to `out`.
    pub fn handle(&mut self, msg: &Message, now: Timestamp, out: &mut Vec<TrackerEvent>) {
        let event = field(msg, "Event");
        let mut out = Out { out, now };
        // Asterisk may change a channel's Linkedid on any event (it is a snapshot field), so
        // every event that names a channel is checked; `Cdr` and `CEL` spell the keys
        // differently, lag behind and are left out.
        if !matches!(
            event,
            "" | "Cdr" | "CEL" | "Newchannel" | "RTCPSent" | "RTCPReceived"
        ) {
            self.rekey(msg, &mut out);
        }
        match event {
            // Most of the stream, and of no use here: leave at once.
            ""
            | "Newexten"
            | "RTCPSent"
            | "RTCPReceived"
            | "Cdr"
            | "CEL"
            | "Newstate"
            | "DialState"
            | "NewConnectedLine"
            | "NewCallerid"
            | "SuccessfulAuth"
            | "ChallengeSent"
            | "DTMFBegin"
            | "DTMFEnd"
            | "HangupRequest"
            | "SoftHangupRequest"
            | "QueueMemberStatus"
            | "ExtensionStatus"
            | "PeerStatus"
            | "Registry"
            | "NewAccountCode"
            | "MixMonitorStart"
            | "MixMonitorStop"
            | "MixMonitorMute"
            | "AgentConnect"
            | "AgentComplete"
            | "AgentRingNoAnswer"
            | "LocalBridge"
            | "LocalOptimizationBegin"
            | "LocalOptimizationEnd"
            | "BridgeCreate"
            | "FullyBooted" => {}
            "VarSet" if field(msg, "Variable") == "MIXMONITOR_FILENAME" => {
                // VarSet values are C-escaped.
                let file = msg.unescaped("Value").unwrap_or_default();
                let file: String = file.chars().filter(|c| !c.is_control()).collect();
                self.recording(field(msg, "Uniqueid"), file, &mut out);
            }
            "Newchannel" => self.new_channel(msg, &mut out),
            "DialBegin" => self.dial_begin(msg, &mut out),
            "DialEnd" => self.dial_end(msg, &mut out),
            "BridgeEnter" => {
                let technology = field(msg, "BridgeTechnology");
                if technology == "holding_bridge" || field(msg, "BridgeType") == "parking" {
                    self.holding_bridges
                        .insert(field(msg, "BridgeUniqueid").to_owned());
                }
                self.bridge_enter(
                    field(msg, "Uniqueid"),
                    field(msg, "BridgeUniqueid"),
                    &mut out,
                );
            }
            "BridgeLeave" => self.bridge_leave(field(msg, "Uniqueid"), &mut out),
            "BridgeDestroy" => {
                let bridge = field(msg, "BridgeUniqueid");
                self.bridges.remove(bridge);
                self.holding_bridges.remove(bridge);
            }
            "Hangup" => self.hangup(field(msg, "Uniqueid"), cause_of(msg), &mut out),
            "Hold" | "Unhold" => {
                let uid = field(msg, "Uniqueid");
                self.hold(uid, event == "Hold", &mut out);
            }
            "MusicOnHoldStart" => {
                // The AMI hold (a dual Redirect into the hold helper) puts the customer of an
                // answered call on music on hold without any `Hold` event: that is hold by the
                // operator who talked to them. (A phone's own hold sends `Hold` first; queue
                // music before anyone answered is not hold.)
                let uid = field(msg, "Uniqueid");
                let holder = self.channels.get(uid).and_then(|ch| {
                    let call = self.call_of(uid)?;
                    if call.customer.as_deref() != Some(uid) || call.held_by.is_some() {
                        return None;
                    }
                    let talker = call.last_talker.as_ref()?;
                    self.channels
                        .iter()
                        .find(|(_, c)| {
                            c.group == ch.group
                                && c.kind == Kind::Operator
                                && c.operator.as_ref() == Some(talker)
                        })
                        .map(|(id, _)| id.clone())
                });
                if let Some(holder) = holder {
                    self.hold(&holder, true, &mut out);
                }
            }
            "MusicOnHoldStop" => {
                // A transfer took the customer off hold without an `Unhold` (capture e).
                let uid = field(msg, "Uniqueid");
                if let Some(call) = self.call_of_mut(uid)
                    && call.customer.as_deref() == Some(uid)
                    && let Some(holder) = call.held_by.clone()
                {
                    self.hold(&holder, false, &mut out);
                }
            }
            "ParkedCall" | "UnParkedCall" | "ParkedCallGiveUp" | "ParkedCallTimeOut" => {
                let uid = field(msg, "ParkeeUniqueid");
                if let Some(g) = self.group_of(uid)
                    && g.call().is_some()
                {
                    out.call(
                        &g.id,
                        CallEventKind::HoldChanged {
                            on: event == "ParkedCall",
                        },
                    );
                }
            }
            "QueueCallerJoin" => self.queue_join(msg, &mut out),
            "QueueCallerLeave" | "QueueCallerAbandon" => {
                if let Some(call) = self.call_of_mut(field(msg, "Uniqueid")) {
                    call.in_queue = false;
                }
            }
            "AgentCalled" => {
                let dest = field(msg, "DestUniqueid");
                if let Some(ch) = self.channels.get(dest)
                    && let Some(ext) = ch.operator.clone()
                    && let Some(g) = self.groups.get(&ch.group)
                    && g.call().is_some()
                {
                    out.call(&g.id, CallEventKind::OperatorRinging { extension: ext });
                }
            }
            "BlindTransfer" => self.blind_transfer(msg, &mut out),
            "AttendedTransfer" => self.attended_transfer(msg, &mut out),
            "ChanSpyStart" => self.spy_start(msg, &mut out),
            "ChanSpyStop" => self.spy_stop(msg, &mut out),
            "OriginateResponse" => self.originate_response(msg, &mut out),
            "BridgeMerge" => self.bridge_merge(msg),
            "DeviceStateChange" => {
                if let Some(ext) = self.device_extension(field(msg, "Device")) {
                    out.out.push(TrackerEvent::Presence(PresenceEvent::Device {
                        extension: ext,
                        state: device_state(field(msg, "State")),
                    }));
                }
            }
            "QueueMemberPause" | "QueueMember" => self.queue_member(msg, &mut out),
            "Shutdown" => self.end_everything(&mut out),
            _ => {}
        }
    }

    /// Convenience for tests and tools: [`AsteriskTracker::handle`] into a new `Vec`.
    pub fn handle_to_vec(&mut self, msg: &Message, now: Timestamp) -> Vec<TrackerEvent> {
        let mut out = Vec::new();
        self.handle(msg, now, &mut out);
        out
    }

    /// Brings the model in line with a fresh `CoreShowChannels` list (and, optionally,
    /// `QueueMember` items of `QueueStatus`) taken at `now` after a (re)connect. Channels that are
    /// gone end their calls; new ones are added as if just created; bridges are re-read.
    pub fn resync(&mut self, items: &[Message], now: Timestamp, out: &mut Vec<TrackerEvent>) {
        let listed: Vec<&Message> = items
            .iter()
            .filter(|m| field(m, "Event") == "CoreShowChannel")
            .collect();
        let alive: std::collections::HashSet<&str> =
            listed.iter().map(|m| field(m, "Uniqueid")).collect();
        let gone: Vec<String> = self
            .channels
            .keys()
            .filter(|uid| !alive.contains(uid.as_str()))
            .cloned()
            .collect();
        let mut o = Out { out, now };
        // Hang up Local halves and operator legs before customer legs, so a call ends with the
        // customer's cause (unknown here) and not half-way.
        for uid in gone {
            self.hangup(&uid, None, &mut o);
        }
        // Each call's first channel (Uniqueid = Linkedid) first, then the oldest, so a group's
        // first channel is its origin.
        let mut listed = listed;
        listed.sort_by_key(|m| {
            (
                field(m, "Uniqueid") != field(m, "Linkedid"),
                std::cmp::Reverse(duration_secs(field(m, "Duration"))),
            )
        });
        for m in &listed {
            let uid = field(m, "Uniqueid");
            let started = Timestamp::from_unix_millis(
                now.unix_millis() - duration_secs(field(m, "Duration")) * 1000,
            );
            if !self.channels.contains_key(uid) {
                let mut early = Out {
                    out: o.out,
                    now: started,
                };
                self.add_channel(
                    uid,
                    field(m, "Linkedid"),
                    field(m, "Channel"),
                    field(m, "Exten"),
                    field(m, "CallerIDNum"),
                    m.unescaped("CallerIDName"),
                    &mut early,
                );
            } else {
                self.rekey_to(uid, field(m, "Linkedid"), &mut o);
            }
        }
        // Then the bridges, rebuilt from the list (bridges that vanished meanwhile go), and
        // with them who talks to whom — once per call, so nobody is announced twice.
        for ch in self.channels.values_mut() {
            ch.bridge = None;
        }
        self.bridges.clear();
        for m in &listed {
            let uid = field(m, "Uniqueid");
            if let Some(bridge) = known(field(m, "BridgeId"))
                && let Some(ch) = self.channels.get_mut(uid)
            {
                ch.bridge = Some(bridge.to_owned());
                self.bridges
                    .entry(bridge.to_owned())
                    .or_default()
                    .push(uid.to_owned());
            }
        }
        let bridges = &self.bridges;
        self.holding_bridges.retain(|b| bridges.contains_key(b));
        let keys: Vec<String> = self.groups.keys().cloned().collect();
        for key in &keys {
            self.refresh_talkers(key, &mut o);
        }
        // Customers waiting in a queue.
        for m in &listed {
            if field(m, "Application") != "Queue" {
                continue;
            }
            let uid = field(m, "Uniqueid");
            let queue = field(m, "ApplicationData")
                .split(',')
                .next()
                .unwrap_or_default()
                .to_owned();
            if let Some(key) = self.channels.get(uid).map(|c| c.group.clone())
                && let Some(g) = self.groups.get_mut(&key)
                && let Role::Call(call) = &mut g.role
                && call.customer.as_deref() == Some(uid)
                && !queue.is_empty()
            {
                call.in_queue = true;
                let id = g.id.clone();
                o.call(&id, CallEventKind::QueueJoined { queue });
            }
        }
        // A pending group whose operator leg is dialling a trunk is an outbound call.
        for m in &listed {
            if field(m, "Application") == "AppDial" {
                continue;
            }
            let uid = field(m, "Uniqueid");
            if let Some(ch) = self.channels.get(uid)
                && ch.kind == Kind::Operator
                && let Some(g) = self.groups.get(&ch.group)
                && matches!(g.role, Role::Pending)
            {
                let dialled = field(m, "Exten").to_owned();
                let group = ch.group.clone();
                if self.is_dialable(&dialled) {
                    let direction = if self.plan.extension(&dialled).is_some() {
                        Direction::Internal
                    } else {
                        Direction::Outbound
                    };
                    self.announce(&group, direction, uid, &dialled, &mut o);
                }
            }
        }
        for m in items.iter().filter(|m| field(m, "Event") == "QueueMember") {
            self.queue_member(m, &mut o);
        }
    }

    // ----- channels and groups ---------------------------------------------------------------

    fn operator_of(&self, channel: &str) -> Option<Extension> {
        let ext = extension_of_channel(channel)?;
        self.plan.extension(ext.as_str())
    }

    /// The extension behind a device or queue interface: `SIP/101`, `PJSIP/101`,
    /// `Local/101@from-queue/n` (FreePBX queue members), `hint:101@ext-local`.
    fn device_extension(&self, device: &str) -> Option<Extension> {
        let rest = match device.strip_prefix("hint:") {
            Some(hint) => hint,
            None => device.split_once('/')?.1,
        };
        let peer = rest.split(['@', '/']).next()?;
        self.plan.extension(peer)
    }

    /// A dial string that names a phone or an extension: digits with an optional leading `+`
    /// (`004930123456`, `+74951234567`, `101`), or a peer name the plan reads as an extension.
    fn is_dialable(&self, text: &str) -> bool {
        let digits = text.strip_prefix('+').unwrap_or(text);
        (!digits.is_empty() && digits.len() <= 20 && digits.bytes().all(|b| b.is_ascii_digit()))
            || self.plan.extension(text).is_some()
    }

    fn group_of(&self, uid: &str) -> Option<&Group> {
        self.groups.get(&self.channels.get(uid)?.group)
    }

    fn call_of(&self, uid: &str) -> Option<&CallState> {
        let key = &self.channels.get(uid)?.group;
        match &self.groups.get(key)?.role {
            Role::Call(c) => Some(c),
            _ => None,
        }
    }

    fn call_of_mut(&mut self, uid: &str) -> Option<&mut CallState> {
        let key = &self.channels.get(uid)?.group;
        match &mut self.groups.get_mut(key)?.role {
            Role::Call(c) => Some(c),
            _ => None,
        }
    }

    fn new_channel(&mut self, msg: &Message, out: &mut Out<'_>) {
        self.add_channel(
            field(msg, "Uniqueid"),
            field(msg, "Linkedid"),
            field(msg, "Channel"),
            field(msg, "Exten"),
            field(msg, "CallerIDNum"),
            msg.unescaped("CallerIDName"),
            out,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn add_channel(
        &mut self,
        uid: &str,
        linkedid: &str,
        name: &str,
        exten: &str,
        caller_num: &str,
        caller_name: Option<String>,
        out: &mut Out<'_>,
    ) {
        if uid.is_empty() || self.channels.contains_key(uid) {
            return;
        }
        let linkedid = if linkedid.is_empty() { uid } else { linkedid };
        let operator = self.operator_of(name);
        let local = local_half(name);
        let kind = match (&operator, local) {
            (_, Some(_)) => Kind::Local,
            (Some(_), None) => Kind::Operator,
            (None, None) => Kind::Trunk,
        };
        if let Some((base, half)) = local {
            self.locals.entry(base.to_owned()).or_default()[half] = Some(uid.to_owned());
        }
        self.channels.insert(
            uid.to_owned(),
            Channel {
                name: name.to_owned(),
                group: linkedid.to_owned(),
                kind,
                operator,
                exten: exten.to_owned(),
                bridge: None,
                cause: None,
                originated: false,
            },
        );
        let operator = self.channels.get(uid).and_then(|c| c.operator.clone());
        let group = self
            .groups
            .entry(linkedid.to_owned())
            .or_insert_with(|| Group::new(linkedid, out.now));
        group.channels.push(uid.to_owned());
        if group.originator.is_none() {
            group.originator = operator;
        }
        if group.origin.is_some() {
            // A later channel of a known group: an outbound call's trunk leg is its customer.
            if kind == Kind::Trunk
                && let Role::Call(call) = &mut group.role
                && call.customer.is_none()
            {
                call.customer = Some(uid.to_owned());
            }
            return;
        }
        group.origin = Some(uid.to_owned());
        group.started_at = out.now;
        if kind == Kind::Trunk {
            // A customer called in: announce at once, this is the pop.
            let name = caller_name.filter(|n| known(n).is_some());
            let from = self.plan.party(caller_num).with_name(name);
            let to = self.plan.party(exten);
            group.role = Role::Call(Box::new(CallState {
                customer: Some(uid.to_owned()),
                ..CallState::default()
            }));
            let id = group.id.clone();
            out.call(
                &id,
                CallEventKind::Started {
                    direction: Direction::Inbound,
                    from,
                    to,
                },
            );
        }
    }

    /// Moves the event's channel to the group its `Linkedid` names now, if that changed.
    fn rekey(&mut self, msg: &Message, out: &mut Out<'_>) {
        let uid = field(msg, "Uniqueid");
        let linkedid = field(msg, "Linkedid");
        self.rekey_to(uid, linkedid, out);
        let dest = field(msg, "DestUniqueid");
        if !dest.is_empty() {
            self.rekey_to(dest, field(msg, "DestLinkedid"), out);
        }
    }

    fn rekey_to(&mut self, uid: &str, linkedid: &str, out: &mut Out<'_>) {
        if linkedid.is_empty() {
            return;
        }
        let Some(ch) = self.channels.get_mut(uid) else {
            return;
        };
        if ch.group == linkedid {
            return;
        }
        let old = std::mem::replace(&mut ch.group, linkedid.to_owned());
        let target = self
            .groups
            .entry(linkedid.to_owned())
            .or_insert_with(|| Group::new(linkedid, out.now));
        target.channels.push(uid.to_owned());
        if target.origin.is_none() {
            target.origin = Some(uid.to_owned());
        }
        if let Some(g) = self.groups.get_mut(&old) {
            g.channels.retain(|c| c != uid);
            if g.channels.is_empty() {
                // Merged into another call: whatever this group was, it is over.
                self.end_group(&old, true, out);
            }
        }
    }

    fn hangup(&mut self, uid: &str, cause: Option<HangupCause>, out: &mut Out<'_>) {
        let Some(mut ch) = self.channels.remove(uid) else {
            return;
        };
        ch.cause = cause;
        if let Some(bridge) = ch.bridge.take()
            && let Some(members) = self.bridges.get_mut(&bridge)
        {
            members.retain(|m| m != uid);
        }
        if let Some((base, half)) = local_half(&ch.name)
            && let Some(pair) = self.locals.get_mut(base)
        {
            pair[half] = None;
            if pair.iter().all(Option::is_none) {
                self.locals.remove(base);
            }
        }
        let Some(group) = self.groups.get_mut(&ch.group) else {
            return;
        };
        group.channels.retain(|c| c != uid);
        if group.origin.as_deref() == Some(uid) {
            group.origin_cause = ch.cause.clone();
        }
        if let Role::Call(call) = &mut group.role {
            if call.customer.as_deref() == Some(uid) {
                call.customer_cause = ch.cause.clone();
            }
            if let Some(ext) = &ch.operator {
                call.connected.retain(|e| e != ext);
            }
            if call.held_by.as_deref() == Some(uid) {
                // The operator who held the customer is gone (a transfer): not on hold now.
                call.held_by = None;
                if !group.channels.is_empty() {
                    let id = group.id.clone();
                    out.call(&id, CallEventKind::HoldChanged { on: false });
                }
            }
        }
        if group.channels.is_empty() {
            let key = ch.group.clone();
            // Its OriginateResponse may still come (it is sent after the channel is gone).
            if ch.originated
                && matches!(group.role, Role::Pending)
                && group.originate.is_none()
                && let Some(id) = group.id.clone()
            {
                if self.ended_originates.len() == REMEMBERED_ORIGINATES {
                    self.ended_originates.pop_front();
                }
                self.ended_originates.push_back(EndedOriginate {
                    id,
                    origin_name: ch.name.clone(),
                    started_at: group.started_at,
                    ended_at: out.now,
                    cause: ch.cause.clone(),
                });
            }
            self.end_group(&key, false, out);
        }
    }

    /// The group has no channels left: end its call (or forget it). `merged`: its last channel
    /// moved to another call.
    fn end_group(&mut self, key: &str, merged: bool, out: &mut Out<'_>) {
        let Some(group) = self.groups.remove(key) else {
            return;
        };
        match group.role {
            Role::Call(call) => {
                let cause = if call.customer_cause.is_some() {
                    call.customer_cause
                } else {
                    group.origin_cause
                };
                let status = call.failed.then_some(CallStatus::Failed);
                out.call(&group.id, CallEventKind::Ended { cause, status });
            }
            Role::Spy {
                target: Some(target),
                supervisor: Some(supervisor),
            } => {
                let id = self
                    .groups
                    .get(&target)
                    .filter(|g| g.call().is_some())
                    .and_then(|g| g.id.clone());
                out.call(&id, CallEventKind::MonitorStopped { supervisor });
            }
            Role::Spy { .. } => {}
            Role::Pending => {
                // A click-to-call that the PBX accepted but that never dialled anywhere we
                // could see (an IVR, voicemail): still the operator's call.
                if let Some(orig) = &group.originate
                    && !merged
                    && !orig.failed
                    && orig.application.is_empty()
                    && self.is_dialable(&orig.exten)
                    && let Some(op) = group.originator.clone()
                {
                    let to = self.plan.party(&orig.exten);
                    out.call_at(
                        &group.id,
                        group.started_at,
                        CallEventKind::Started {
                            direction: Direction::Outbound,
                            from: self.plan.party(op.as_str()),
                            to,
                        },
                    );
                    out.call(
                        &group.id,
                        CallEventKind::Ended {
                            cause: group.origin_cause,
                            status: None,
                        },
                    );
                }
            }
        }
    }

    /// Announces a pending group as a call.
    fn announce(
        &mut self,
        key: &str,
        direction: Direction,
        from_channel: &str,
        dialled: &str,
        out: &mut Out<'_>,
    ) {
        let from_ext = self
            .channels
            .get(from_channel)
            .and_then(|c| c.operator.clone());
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        if !matches!(group.role, Role::Pending) {
            return;
        }
        let operator = from_ext.or_else(|| {
            group
                .channels
                .iter()
                .filter_map(|c| self.channels.get(c))
                .find_map(|c| c.operator.clone())
        });
        let from = operator.map_or_else(|| self.plan.party(""), |op| self.plan.party(op.as_str()));
        let customer = match direction {
            Direction::Internal => Some(from_channel.to_owned()),
            _ => group
                .channels
                .iter()
                .find(|c| {
                    self.channels
                        .get(*c)
                        .is_some_and(|ch| ch.kind == Kind::Trunk)
                })
                .cloned(),
        };
        group.role = Role::Call(Box::new(CallState {
            customer,
            ..CallState::default()
        }));
        let (id, at, recordings) = (
            group.id.clone(),
            group.started_at,
            std::mem::take(&mut group.recordings),
        );
        out.call_at(
            &id,
            at,
            CallEventKind::Started {
                direction,
                from,
                to: self.plan.party(dialled),
            },
        );
        for file in recordings {
            out.call(&id, CallEventKind::RecordingStarted { file });
        }
        // Already bridged (a resync, or events seen before it was known what the group is).
        self.refresh_talkers(key, out);
    }

    /// `uid` (an operator's channel) put its call's customer on hold, or took them back.
    fn hold(&mut self, uid: &str, on: bool, out: &mut Out<'_>) {
        let Some(ch) = self.channels.get(uid) else {
            return;
        };
        if ch.kind != Kind::Operator {
            return;
        }
        let Some(g) = self.groups.get_mut(&ch.group) else {
            return;
        };
        let Role::Call(call) = &mut g.role else {
            return;
        };
        if on {
            call.held_by = Some(uid.to_owned());
        } else if call.held_by.is_some() && call.held_by.as_deref() != Some(uid) {
            // Another operator's Unhold: the customer is still held by the first one.
            return;
        } else {
            call.held_by = None;
        }
        let id = g.id.clone();
        out.call(&id, CallEventKind::HoldChanged { on });
    }

    // ----- dialling --------------------------------------------------------------------------

    fn ensure_dest(&mut self, msg: &Message, out: &mut Out<'_>) {
        let dest = field(msg, "DestUniqueid");
        if !dest.is_empty() && !self.channels.contains_key(dest) {
            // Joined mid-call: learn the channel from the Dest snapshot.
            self.add_channel(
                dest,
                field(msg, "DestLinkedid"),
                field(msg, "DestChannel"),
                field(msg, "DestExten"),
                field(msg, "DestCallerIDNum"),
                msg.unescaped("DestCallerIDName"),
                out,
            );
        }
    }

    fn dial_begin(&mut self, msg: &Message, out: &mut Out<'_>) {
        self.ensure_dest(msg, out);
        let dest_uid = field(msg, "DestUniqueid");
        let caller_uid = field(msg, "Uniqueid");
        let Some(dest) = self.channels.get_mut(dest_uid) else {
            return;
        };
        if caller_uid.is_empty() {
            // Originate: the PBX dials the first leg itself.
            dest.originated = true;
            return;
        }
        let (dest_kind, dest_op, key) = (dest.kind, dest.operator.clone(), dest.group.clone());
        let Some(group) = self.groups.get(&key) else {
            return;
        };
        if matches!(group.role, Role::Pending) {
            let Some(caller) = self.channels.get(caller_uid) else {
                return;
            };
            let dialled = match known(&caller.exten) {
                Some(e) if e != "s" => caller.exten.clone(),
                _ => field(msg, "Exten").to_owned(),
            };
            let origin = group.origin.as_ref().and_then(|o| self.channels.get(o));
            if dest_kind == Kind::Trunk {
                self.announce(&key, Direction::Outbound, caller_uid, &dialled, out);
            } else if dest_kind == Kind::Operator
                && caller.kind == Kind::Operator
                && group.origin.as_deref() == Some(caller_uid)
            {
                let to = dest_op.clone().map_or(dialled, |e| e.as_str().to_owned());
                self.announce(&key, Direction::Internal, caller_uid, &to, out);
            } else if dest_kind == Kind::Operator
                && caller.kind == Kind::Local
                && let Some(origin) = origin
                && origin.kind == Kind::Operator
                && let Some(dialled) = known(&origin.exten).filter(|e| *e != "s")
                && self.is_dialable(dialled)
            {
                // A phone dialled a ring group or follow-me: Local channels ring the members.
                let (from, to) = (group.origin.clone().unwrap_or_default(), dialled.to_owned());
                self.announce(&key, Direction::Internal, &from, &to, out);
            } else {
                return;
            }
        }
        let Some(group) = self.groups.get_mut(&key) else {
            return;
        };
        let id = group.id.clone();
        let Role::Call(call) = &mut group.role else {
            return;
        };
        if call.customer.as_deref() == Some(dest_uid) {
            return;
        }
        if !call.in_queue {
            // A new attempt starts when every leg of the previous one has ended.
            if call.dials.iter().all(|(_, ended)| ended.is_some()) {
                call.dials.clear();
            }
            if !call.dials.iter().any(|(d, _)| d == dest_uid) {
                call.dials.push((dest_uid.to_owned(), None));
            }
        }
        let Some(ext) = dest_op else {
            return;
        };
        // A Redirect has no transfer event: the customer, after talking to an operator and
        // with nobody on the line now, dials another operator. Not in a queue or after a
        // transfer already reported (those dials are where the transfer leads).
        let redirect = call.customer.as_deref() == Some(caller_uid)
            && !call.in_queue
            && call.connected.is_empty()
            && !call.transferred_since_talk
            && call.last_talker.as_ref().is_some_and(|t| t != &ext)
            && call.last_transfer_to.as_deref() != Some(ext.as_str());
        let from = call.last_talker.clone();
        if redirect {
            call.transferred_since_talk = true;
            call.last_transfer_to = Some(ext.as_str().to_owned());
        }
        out.call(
            &id,
            CallEventKind::OperatorRinging {
                extension: ext.clone(),
            },
        );
        if redirect {
            out.call(
                &id,
                CallEventKind::Transferred {
                    kind: TransferKind::Blind,
                    from,
                    to: Some(self.plan.party(ext.as_str())),
                },
            );
        }
    }

    /// Busy only when every leg of a dial said busy (`Dial(A&B)`: A busy, B unanswered is a
    /// missed call, not a busy one); never for queue members.
    fn dial_end(&mut self, msg: &Message, out: &mut Out<'_>) {
        if field(msg, "Uniqueid").is_empty() {
            return;
        }
        let dest = field(msg, "DestUniqueid");
        let busy = field(msg, "DialStatus") == "BUSY";
        let Some(key) = self.channels.get(dest).map(|c| c.group.clone()) else {
            return;
        };
        let Some(group) = self.groups.get_mut(&key) else {
            return;
        };
        let id = group.id.clone();
        let Role::Call(call) = &mut group.role else {
            return;
        };
        let Some(leg) = call.dials.iter_mut().find(|(d, _)| d == dest) else {
            return;
        };
        if leg.1.is_some() {
            return; // a queue's second DialEnd (CANCEL after NOANSWER), or a duplicate
        }
        leg.1 = Some(busy);
        let all_ended = call.dials.iter().all(|(_, e)| e.is_some());
        let all_busy = call.dials.iter().all(|(_, e)| *e == Some(true));
        if all_ended && all_busy && !call.in_queue {
            out.call(&id, CallEventKind::BusySignalled);
        }
    }

    fn queue_join(&mut self, msg: &Message, out: &mut Out<'_>) {
        let uid = field(msg, "Uniqueid");
        let queue = field(msg, "Queue").to_owned();
        let Some(ch) = self.channels.get(uid) else {
            return;
        };
        let key = ch.group.clone();
        if ch.kind == Kind::Operator
            && let Some(g) = self.groups.get(&key)
            && matches!(g.role, Role::Pending)
        {
            // An operator's phone called a queue: an internal call to what it dialled.
            let dialled = known(&ch.exten).unwrap_or(&queue).to_owned();
            self.announce(&key, Direction::Internal, uid, &dialled, out);
        }
        if let Some(g) = self.groups.get_mut(&key)
            && let Role::Call(call) = &mut g.role
        {
            call.in_queue = true;
            let id = g.id.clone();
            out.call(&id, CallEventKind::QueueJoined { queue });
        }
    }

    // ----- bridges ---------------------------------------------------------------------------

    fn bridge_enter(&mut self, uid: &str, bridge: &str, out: &mut Out<'_>) {
        if bridge.is_empty() {
            return;
        }
        let Some(ch) = self.channels.get_mut(uid) else {
            return;
        };
        if ch.bridge.as_deref() == Some(bridge) {
            return;
        }
        if let Some(old) = ch.bridge.replace(bridge.to_owned())
            && let Some(members) = self.bridges.get_mut(&old)
        {
            members.retain(|m| m != uid);
        }
        let key = ch.group.clone();
        let members = self.bridges.entry(bridge.to_owned()).or_default();
        if !members.iter().any(|m| m == uid) {
            members.push(uid.to_owned());
        }
        // Everyone in the bridge's reach may now talk to a different customer.
        let mut keys = vec![key];
        for m in self.reach(bridge) {
            if let Some(c) = self.channels.get(&m)
                && !keys.contains(&c.group)
            {
                keys.push(c.group.clone());
            }
        }
        for key in keys {
            self.refresh_talkers(&key, out);
        }
    }

    fn bridge_leave(&mut self, uid: &str, out: &mut Out<'_>) {
        let Some(ch) = self.channels.get_mut(uid) else {
            return;
        };
        let Some(bridge) = ch.bridge.take() else {
            return;
        };
        let key = ch.group.clone();
        if let Some(members) = self.bridges.get_mut(&bridge) {
            members.retain(|m| m != uid);
        }
        self.refresh_talkers(&key, out);
    }

    fn bridge_merge(&mut self, msg: &Message) {
        let from = field(msg, "FromBridgeUniqueid");
        let to = field(msg, "ToBridgeUniqueid");
        if from.is_empty() || to.is_empty() || from == to {
            return;
        }
        let moved = self.bridges.remove(from).unwrap_or_default();
        for uid in &moved {
            if let Some(ch) = self.channels.get_mut(uid) {
                ch.bridge = Some(to.to_owned());
            }
        }
        self.bridges.entry(to.to_owned()).or_default().extend(moved);
    }

    /// Every channel that can hear a channel in `bridge`, following Local pairs across bridges.
    fn reach(&self, bridge: &str) -> Vec<String> {
        // A holding bridge (a parking lot) joins nobody: its members hear music, not each other.
        if self.holding_bridges.contains(bridge) {
            return self.bridges.get(bridge).cloned().unwrap_or_default();
        }
        let mut seen_bridges: HashSet<&str> = HashSet::from([bridge]);
        let mut queue: Vec<&str> = vec![bridge];
        let mut seen: HashSet<&str> = HashSet::new();
        let mut found: Vec<String> = Vec::new();
        while let Some(b) = queue.pop() {
            for m in self.bridges.get(b).map(Vec::as_slice).unwrap_or_default() {
                if !seen.insert(m.as_str()) {
                    continue;
                }
                found.push(m.clone());
                let Some(ch) = self.channels.get(m) else {
                    continue;
                };
                let Some((base, half)) = local_half(&ch.name) else {
                    continue;
                };
                let Some(Some(other)) = self.locals.get(base).map(|p| &p[1 - half]) else {
                    continue;
                };
                if seen.insert(other.as_str()) {
                    found.push(other.clone());
                }
                if let Some(other_bridge) =
                    self.channels.get(other).and_then(|c| c.bridge.as_deref())
                    && !self.holding_bridges.contains(other_bridge)
                    && seen_bridges.insert(other_bridge)
                {
                    queue.push(other_bridge);
                }
            }
        }
        found
    }

    /// Recomputes which operators talk to the group's customer; announces new ones.
    fn refresh_talkers(&mut self, key: &str, out: &mut Out<'_>) {
        let Some(group) = self.groups.get(key) else {
            return;
        };
        let Some(call) = group.call() else {
            return;
        };
        let Some(customer) = call.customer.as_ref() else {
            return;
        };
        let now_talking: Vec<Extension> =
            match self.channels.get(customer).and_then(|c| c.bridge.as_ref()) {
                // Parked: hears music, talks to nobody.
                Some(bridge) if !self.holding_bridges.contains(bridge) => {
                    let mut exts = Vec::new();
                    for m in self.reach(bridge) {
                        if &m != customer
                            && let Some(ext) =
                                self.channels.get(&m).and_then(|c| c.operator.clone())
                            && !exts.contains(&ext)
                        {
                            exts.push(ext);
                        }
                    }
                    exts
                }
                _ => Vec::new(),
            };
        let id = group.id.clone();
        let Some(group) = self.groups.get_mut(key) else {
            return;
        };
        let Role::Call(call) = &mut group.role else {
            return;
        };
        for ext in &now_talking {
            if !call.connected.contains(ext) {
                call.last_talker = Some(ext.clone());
                call.last_transfer_to = None;
                call.transferred_since_talk = false;
                out.call(
                    &id,
                    CallEventKind::Answered {
                        extension: Some(ext.clone()),
                    },
                );
            }
        }
        call.connected = now_talking;
    }

    // ----- transfers, spying, recordings, originate ------------------------------------------

    fn blind_transfer(&mut self, msg: &Message, out: &mut Out<'_>) {
        if field(msg, "Result") != "Success" {
            return;
        }
        let from = self.operator_of(field(msg, "TransfererChannel"));
        let to = field(msg, "Extension").to_owned();
        let uid = field(msg, "TransfereeUniqueid");
        let Some(g) = self.group_of(uid) else {
            return;
        };
        let id = g.id.clone();
        if let Some(call) = self.call_of_mut(uid) {
            call.last_transfer_to = Some(to.clone());
            call.transferred_since_talk = true;
            out.call(
                &id,
                CallEventKind::Transferred {
                    kind: TransferKind::Blind,
                    from,
                    to: known(&to).map(|t| self.plan.party(t)),
                },
            );
        }
    }

    fn attended_transfer(&mut self, msg: &Message, out: &mut Out<'_>) {
        if field(msg, "Result") != "Success" {
            return;
        }
        let transferer = field(msg, "OrigTransfererUniqueid");
        let second = field(msg, "SecondTransfererUniqueid");
        let transferee = field(msg, "TransfereeUniqueid");
        let from = self.operator_of(field(msg, "OrigTransfererChannel"));
        // The target: an operator within reach of the destination bridge, other than the
        // transferers; else whom the transferer was talking to.
        let mut to: Option<Party> = None;
        for bridge in [
            field(msg, "DestBridgeUniqueid"),
            field(msg, "SecondBridgeUniqueid"),
        ] {
            if to.is_some() || bridge.is_empty() {
                continue;
            }
            to = self
                .reach(bridge)
                .iter()
                .filter(|m| m.as_str() != transferer && m.as_str() != second)
                .filter_map(|m| self.channels.get(m))
                .find_map(|c| c.operator.as_ref())
                .filter(|ext| Some(*ext) != from.as_ref())
                .map(|ext| self.plan.party(ext.as_str()));
        }
        if to.is_none() {
            to = known(field(msg, "SecondTransfererConnectedLineNum"))
                .or_else(|| known(field(msg, "TransferTargetCallerIDNum")))
                .map(|n| self.plan.party(n));
        }
        let uid = if self.channels.contains_key(transferee) {
            transferee
        } else {
            transferer
        };
        let Some(g) = self.group_of(uid) else {
            return;
        };
        let id = g.id.clone();
        if let Some(call) = self.call_of_mut(uid) {
            call.last_transfer_to = to.as_ref().map(|p| p.raw.clone());
            call.transferred_since_talk = true;
            out.call(
                &id,
                CallEventKind::Transferred {
                    kind: TransferKind::Attended,
                    from,
                    to,
                },
            );
        }
    }

    fn spy_start(&mut self, msg: &Message, out: &mut Out<'_>) {
        let spyer = field(msg, "SpyerUniqueid");
        let spyee = field(msg, "SpyeeUniqueid");
        let (Some(spyer_ch), Some(spyee_ch)) = (self.channels.get(spyer), self.channels.get(spyee))
        else {
            return;
        };
        let (spyer_key, target_key) = (spyer_ch.group.clone(), spyee_ch.group.clone());
        if spyer_key == target_key {
            return;
        }
        let supervisor = spyer_ch.operator.clone().or_else(|| {
            let g = self.groups.get(&spyer_key)?;
            g.channels
                .iter()
                .filter_map(|c| self.channels.get(c))
                .find_map(|c| c.operator.clone())
                .or_else(|| {
                    // `Local/103@from-internal-…`: the extension the Local channel rings.
                    let (_, rest) = spyer_ch.name.split_once('/')?;
                    let (exten, _) = rest.split_once('@')?;
                    self.plan.extension(exten)
                })
        });
        let mode = self
            .groups
            .get(&spyer_key)
            .and_then(|g| g.originate.as_ref())
            .filter(|o| o.application.eq_ignore_ascii_case("ChanSpy"))
            .map(|o| spy_mode(o.data.split_once(',').map_or("", |(_, opts)| opts)));
        let target_id = self
            .groups
            .get(&target_key)
            .filter(|g| g.call().is_some())
            .and_then(|g| g.id.clone());
        if let Some(g) = self.groups.get_mut(&spyer_key) {
            if let Role::Call(_) = g.role {
                // A call of its own that became a spy session: leave it a call.
                return;
            }
            g.role = Role::Spy {
                target: Some(target_key),
                supervisor: supervisor.clone(),
            };
        }
        if let Some(supervisor) = supervisor {
            out.call(
                &target_id,
                CallEventKind::MonitorStarted { supervisor, mode },
            );
        }
    }

    fn spy_stop(&mut self, msg: &Message, out: &mut Out<'_>) {
        let spyer = field(msg, "SpyerUniqueid");
        let Some(key) = self.channels.get(spyer).map(|c| c.group.clone()) else {
            return;
        };
        let Some(g) = self.groups.get_mut(&key) else {
            return;
        };
        if let Role::Spy { target, supervisor } = &mut g.role
            && let (Some(target), Some(supervisor)) = (target.take(), supervisor.clone())
        {
            let id = self
                .groups
                .get(&target)
                .filter(|t| t.call().is_some())
                .and_then(|t| t.id.clone());
            out.call(&id, CallEventKind::MonitorStopped { supervisor });
        }
    }

    fn recording(&mut self, uid: &str, file: String, out: &mut Out<'_>) {
        if file.is_empty() {
            return;
        }
        let Some(key) = self.channels.get(uid).map(|c| c.group.clone()) else {
            return;
        };
        let Some(g) = self.groups.get_mut(&key) else {
            return;
        };
        match g.role {
            Role::Call(_) => {
                let id = g.id.clone();
                out.call(&id, CallEventKind::RecordingStarted { file });
            }
            Role::Pending => {
                if !g.recordings.contains(&file) {
                    g.recordings.push(file);
                }
            }
            Role::Spy { .. } => {}
        }
    }

    fn originate_response(&mut self, msg: &Message, out: &mut Out<'_>) {
        let failed = field(msg, "Response") != "Success";
        let info = Originate {
            application: field(msg, "Application").to_owned(),
            data: field(msg, "Data").to_owned(),
            exten: field(msg, "Exten").to_owned(),
            failed,
        };
        let dial_string = field(msg, "Channel");
        // Find the group: by Uniqueid, else the newest pending group started by that dial string.
        let key = match known(field(msg, "Uniqueid")).and_then(|u| self.channels.get(u)) {
            Some(ch) => Some(ch.group.clone()),
            None => {
                let prefix = format!("{dial_string}-");
                self.groups
                    .iter()
                    .filter(|(_, g)| matches!(g.role, Role::Pending) && g.originate.is_none())
                    .filter(|(_, g)| {
                        g.origin
                            .as_ref()
                            .and_then(|o| self.channels.get(o))
                            .is_some_and(|c| c.originated && c.name.starts_with(&prefix))
                    })
                    .max_by_key(|(_, g)| g.started_at)
                    .map(|(k, _)| k.clone())
            }
        };
        let dialled_ok = self.is_dialable(&info.exten);
        let operator = self.operator_of(dial_string);
        match key {
            Some(key) => {
                let is_pending = self
                    .groups
                    .get(&key)
                    .is_some_and(|g| matches!(g.role, Role::Pending));
                if is_pending && failed && info.application.is_empty() && dialled_ok {
                    let origin = self
                        .groups
                        .get(&key)
                        .and_then(|g| g.origin.clone())
                        .unwrap_or_default();
                    let direction = if self.plan.extension(&info.exten).is_some() {
                        Direction::Internal
                    } else {
                        Direction::Outbound
                    };
                    let exten = info.exten.clone();
                    self.announce(&key, direction, &origin, &exten, out);
                    if let Some(call) = self.groups.get_mut(&key).and_then(|g| match &mut g.role {
                        Role::Call(c) => Some(c),
                        _ => None,
                    }) {
                        call.failed = true;
                    }
                }
                if let Some(g) = self.groups.get_mut(&key) {
                    g.originate = Some(info);
                }
            }
            None if failed && info.application.is_empty() && dialled_ok => {
                // The operator's channel already hung up: record the failed click-to-call now.
                let prefix = format!("{dial_string}-");
                let now = out.now.unix_millis();
                let found = self.ended_originates.iter().rposition(|e| {
                    e.origin_name.starts_with(&prefix)
                        && now - e.ended_at.unix_millis() <= ORIGINATE_RESPONSE_WINDOW_MS
                });
                if let Some(pos) = found
                    && let Some(ended) = self.ended_originates.remove(pos)
                    && let Some(op) = operator
                {
                    let direction = if self.plan.extension(&info.exten).is_some() {
                        Direction::Internal
                    } else {
                        Direction::Outbound
                    };
                    let id = Some(ended.id);
                    out.call_at(
                        &id,
                        ended.started_at,
                        CallEventKind::Started {
                            direction,
                            from: self.plan.party(op.as_str()),
                            to: self.plan.party(&info.exten),
                        },
                    );
                    out.call(
                        &id,
                        CallEventKind::Ended {
                            cause: ended.cause,
                            status: Some(CallStatus::Failed),
                        },
                    );
                }
            }
            None => {}
        }
    }

    // ----- presence and shutdown -------------------------------------------------------------

    fn queue_member(&mut self, msg: &Message, out: &mut Out<'_>) {
        let Some(ext) = ["Interface", "StateInterface", "Location"]
            .iter()
            .find_map(|k| self.device_extension(field(msg, k)))
        else {
            return;
        };
        let queue = field(msg, "Queue");
        if queue.is_empty() {
            return;
        }
        let paused = matches!(field(msg, "Paused"), "1" | "true" | "yes");
        let reason = known(field(msg, "PausedReason"))
            .or_else(|| known(field(msg, "Reason")))
            .filter(|_| paused)
            .map(str::to_owned);
        out.out
            .push(TrackerEvent::Presence(PresenceEvent::QueueMember {
                extension: ext,
                queue: queue.to_owned(),
                paused,
                reason,
            }));
    }

    /// Asterisk is shutting down: every call ends.
    fn end_everything(&mut self, out: &mut Out<'_>) {
        let uids: Vec<String> = self.channels.keys().cloned().collect();
        for uid in uids {
            self.hangup(&uid, None, out);
        }
        self.bridges.clear();
        self.locals.clear();
    }
}

/// `HH:MM:SS` (as in `CoreShowChannel`'s `Duration`) → seconds; 0 when unreadable.
fn duration_secs(text: &str) -> i64 {
    text.split(':')
        .try_fold(0i64, |acc, part| {
            part.trim().parse::<i64>().ok().map(|v| acc * 60 + v)
        })
        .unwrap_or(0)
}

impl ChannelDirectory for AsteriskTracker {
    fn operator_channel(&self, call: &CallId, extension: &Extension) -> Option<String> {
        let group = self.groups.get(call.as_str())?;
        group
            .channels
            .iter()
            .filter_map(|c| self.channels.get(c))
            .filter(|c| c.operator.as_ref() == Some(extension))
            // The leg that talks (is bridged) first, then any.
            .max_by_key(|c| c.bridge.is_some())
            .map(|c| c.name.clone())
    }

    fn customer_channel(&self, call: &CallId) -> Option<String> {
        let group = self.groups.get(call.as_str())?;
        let uid = group.call()?.customer.as_ref()?;
        self.channels.get(uid).map(|c| c.name.clone())
    }

    fn call_channels(&self, call: &CallId) -> Vec<String> {
        let Some(group) = self.groups.get(call.as_str()) else {
            return Vec::new();
        };
        group
            .channels
            .iter()
            .filter_map(|c| self.channels.get(c))
            .filter(|c| c.kind != Kind::Local)
            .map(|c| c.name.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_from_channel_names() {
        let ext = |c| extension_of_channel(c).map(|e| e.to_string());
        assert_eq!(ext("SIP/101-00000007").as_deref(), Some("101"));
        assert_eq!(ext("PJSIP/alice-0000002a").as_deref(), Some("alice"));
        assert_eq!(ext("SIP/trunk-00000006").as_deref(), Some("trunk"));
        assert_eq!(ext("Local/102@from-internal-00000001;1"), None);
        assert_eq!(ext("garbage"), None);
    }

    #[test]
    fn local_halves_and_durations() {
        assert_eq!(
            local_half("Local/102@from-internal-00000000;2"),
            Some(("Local/102@from-internal-00000000", 1))
        );
        assert_eq!(local_half("SIP/101-0000000f"), None);
        assert_eq!(local_half("Local/102@x;3"), None);
        assert_eq!(duration_secs("01:02:03"), 3723);
        assert_eq!(duration_secs("garbage"), 0);
        assert_eq!(spy_mode("bqwE"), MonitorMode::Whisper);
        assert_eq!(spy_mode("BbqE"), MonitorMode::Barge);
        assert_eq!(spy_mode("bqE"), MonitorMode::Listen);
    }
}
