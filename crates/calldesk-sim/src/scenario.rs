//! The pure call model: a scenario plus identifiers and a start time in, timed AMI events out.
//!
//! Modelled message by message on the real Asterisk 20 captures `a_inbound_answered`,
//! `b_inbound_noanswer` and `c_inbound_busy` (chan_sip, `[from-trunk]` dialplan of the lab:
//! `NoOp`, `Set(CDR(userfield)=did:…)`, `Set(CDR(CallType)=inbound)`, `Set(__CALLTYPE=inbound)`,
//! `MixMonitor`, three `GotoIf`s, `Dial(SIP/<ext>,20,tTkK)`, then `Hangup(17|19)` on failure).
//! CEL events and the `RTPAUDIOQOS*` `VarSet`s are left out; everything else (including the
//! ordering quirks: `DialBegin` before the callee's `Newstate Ringing`, `Cdr` before the trunk
//! leg's `Hangup` for missed and busy calls but after it for answered calls, and the
//! `DeviceStateChange` positions) follows the captures.

use std::time::Duration;

use calldesk_ami_proto::{EncodeError, Outgoing};

/// What happens to an inbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScenarioKind {
    /// The extension rings for `ring`, answers, talks for `talk`, then the caller hangs up.
    InboundAnswered,
    /// The extension rings for `ring` and the Dial times out (`NOANSWER`, trunk cause 19).
    InboundMissed,
    /// The extension answers `486 Busy` after `ring` (`BUSY`, cause 17 on both legs).
    InboundBusy,
}

/// One scripted inbound call from the trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioCall {
    /// What happens.
    pub kind: ScenarioKind,
    /// Caller number (E.164, e.g. `+74951234567`).
    pub caller: String,
    /// Dialled number (the DID; `Exten` of the trunk channel).
    pub did: String,
    /// Extension that is dialled (`SIP/<extension>`).
    pub extension: String,
    /// Time from the start until the callee answers / rejects / the Dial times out.
    pub ring: Duration,
    /// Talk time (answered calls only).
    pub talk: Duration,
}

/// Identifiers and wall-clock start of one call (allocated by the server, input to [`render`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallIds {
    /// Unix time (seconds) when the call starts; the `<epoch>` of the Uniqueids and CDR times.
    pub start_epoch: u64,
    /// Uniqueid sequence number of the trunk channel; the callee gets `uniqueid_seq + 1`.
    pub uniqueid_seq: u64,
    /// Channel-name counter of the trunk channel; the callee gets `channel_seq + 1`.
    pub channel_seq: u32,
}

impl CallIds {
    /// How many Uniqueid sequence numbers and channel counters one call uses.
    pub const PER_CALL: u64 = 2;
}

/// Allocates [`CallIds`] for consecutive calls (counters continue across calls, like Asterisk's).
#[derive(Debug, Clone, Default)]
pub struct IdAllocator {
    next_uid: u64,
    next_chan: u32,
}

impl IdAllocator {
    /// Starts at the given counters.
    pub fn new(next_uid: u64, next_chan: u32) -> Self {
        Self {
            next_uid,
            next_chan,
        }
    }

    /// Ids for the next call starting at `start_epoch`.
    pub fn next(&mut self, start_epoch: u64) -> CallIds {
        let ids = CallIds {
            start_epoch,
            uniqueid_seq: self.next_uid,
            channel_seq: self.next_chan,
        };
        self.next_uid = self.next_uid.wrapping_add(CallIds::PER_CALL);
        self.next_chan = self.next_chan.wrapping_add(2);
        ids
    }
}

/// Display name of a lab extension (`CallerIDName` of its SIP peer).
pub fn extension_name(ext: &str) -> String {
    match ext {
        "101" => "Alice Agent".to_owned(),
        "102" => "Bob Agent".to_owned(),
        "103" => "Carol Supervisor".to_owned(),
        other => format!("Agent {other}"),
    }
}

#[derive(Debug, Clone)]
struct Chan {
    name: String,
    state: u8,
    cid_num: String,
    cid_name: String,
    cl_num: String,
    cl_name: String,
    context: String,
    exten: String,
    priority: u32,
    uniqueid: String,
    linkedid: String,
    sip_call_id: String,
}

fn state_desc(state: u8) -> &'static str {
    match state {
        0 => "Down",
        4 => "Ring",
        5 => "Ringing",
        6 => "Up",
        _ => "Unknown",
    }
}

/// Builder that carries the first encoding error along.
struct Ev(Result<Outgoing, EncodeError>);

impl Ev {
    fn event(name: &str, privilege: &str) -> Self {
        Ev(Outgoing::event(name)).h("Privilege", privilege)
    }
    fn h(self, k: &str, v: &str) -> Self {
        Ev(self.0.and_then(|o| o.header(k, v)))
    }
    fn snap(self, c: &Chan, prefix: &str) -> Self {
        let p = |k: &str| format!("{prefix}{k}");
        self.h(&p("Channel"), &c.name)
            .h(&p("ChannelState"), &c.state.to_string())
            .h(&p("ChannelStateDesc"), state_desc(c.state))
            .h(&p("CallerIDNum"), &c.cid_num)
            .h(&p("CallerIDName"), &c.cid_name)
            .h(&p("ConnectedLineNum"), &c.cl_num)
            .h(&p("ConnectedLineName"), &c.cl_name)
            .h(&p("Language"), "en")
            .h(&p("AccountCode"), "")
            .h(&p("Context"), &c.context)
            .h(&p("Exten"), &c.exten)
            .h(&p("Priority"), &c.priority.to_string())
            .h(&p("Uniqueid"), &c.uniqueid)
            .h(&p("Linkedid"), &c.linkedid)
    }
}

/// Collects timed events.
struct Script {
    at: Duration,
    out: Vec<(Duration, Outgoing)>,
}

impl Script {
    fn push(&mut self, ev: Ev) -> Result<(), EncodeError> {
        self.out.push((self.at, ev.0?));
        Ok(())
    }
    fn chan(&mut self, name: &str, c: &Chan) -> Result<(), EncodeError> {
        self.push(Ev::event(name, "call,all").snap(c, ""))
    }
    fn varset(&mut self, c: &Chan, var: &str, val: &str) -> Result<(), EncodeError> {
        self.push(
            Ev::event("VarSet", "dialplan,all")
                .snap(c, "")
                .h("Variable", var)
                .h("Value", val),
        )
    }
    fn newexten(&mut self, c: &Chan, app: &str, data: &str) -> Result<(), EncodeError> {
        self.push(
            Ev::event("Newexten", "dialplan,all")
                .snap(c, "")
                .h("Extension", &c.exten)
                .h("Application", app)
                .h("AppData", data),
        )
    }
    fn devstate(&mut self, device: &str, state: &str) -> Result<(), EncodeError> {
        self.push(
            Ev::event("DeviceStateChange", "call,all")
                .h("Device", device)
                .h("State", state),
        )
    }
    fn dial(
        &mut self,
        name: &str,
        t: &Chan,
        a: &Chan,
        last: (&str, &str),
    ) -> Result<(), EncodeError> {
        self.push(
            Ev::event(name, "call,all")
                .snap(t, "")
                .snap(a, "Dest")
                .h(last.0, last.1),
        )
    }
    fn hangup_ev(
        &mut self,
        name: &str,
        c: &Chan,
        cause: &str,
        txt: Option<&str>,
    ) -> Result<(), EncodeError> {
        let mut ev = Ev::event(name, "call,all").snap(c, "").h("Cause", cause);
        if let Some(txt) = txt {
            ev = ev.h("Cause-txt", txt);
        }
        self.push(ev)
    }
    fn bridge(
        &mut self,
        name: &str,
        b: &Bridge,
        n: u32,
        chan: Option<&Chan>,
    ) -> Result<(), EncodeError> {
        let mut ev = Ev::event(name, "call,all")
            .h("BridgeUniqueid", &b.id)
            .h("BridgeType", "basic")
            .h("BridgeTechnology", "simple_bridge")
            .h("BridgeCreator", "<unknown>")
            .h("BridgeName", "<unknown>")
            .h("BridgeNumChannels", &n.to_string())
            .h("BridgeVideoSourceMode", "none");
        if let Some(c) = chan {
            ev = ev.snap(c, "");
        }
        self.push(ev)
    }
}

struct Bridge {
    id: String,
}

struct Cdr<'a> {
    t: &'a Chan,
    dest_channel: &'a str,
    last_app: &'a str,
    last_data: &'a str,
    start: u64,
    answer: Option<u64>,
    end: u64,
    disposition: &'a str,
    did: &'a str,
}

fn cdr(s: &mut Script, c: Cdr<'_>) -> Result<(), EncodeError> {
    let caller_id = if c.t.cid_name == "<unknown>" {
        format!("\"\" <{}>", c.t.cid_num)
    } else {
        format!("\"{}\" <{}>", c.t.cid_name, c.t.cid_num)
    };
    let billable = match c.answer {
        Some(a) => c.end.saturating_sub(a),
        None => 0,
    };
    s.push(
        Ev::event("Cdr", "cdr,all")
            .h("AccountCode", "")
            .h("Source", &c.t.cid_num)
            .h("Destination", c.did)
            .h("DestinationContext", "from-trunk")
            .h("CallerID", &caller_id)
            .h("Channel", &c.t.name)
            .h("DestinationChannel", c.dest_channel)
            .h("LastApplication", c.last_app)
            .h("LastData", c.last_data)
            .h("StartTime", &cdr_time(c.start))
            .h("AnswerTime", &c.answer.map(cdr_time).unwrap_or_default())
            .h("EndTime", &cdr_time(c.end))
            .h("Duration", &c.end.saturating_sub(c.start).to_string())
            .h("BillableSeconds", &billable.to_string())
            .h("Disposition", c.disposition)
            .h("AMAFlags", "DOCUMENTATION")
            .h("UniqueID", &c.t.uniqueid)
            .h("UserField", &format!("did:{}", c.did))
            .h("CallType", "inbound"),
    )
}

/// The two kinds of Cdr a trunk leg gets: one for its `Dial` to the agent, and one for its own
/// `Hangup(cause)` after a failed Dial.
struct TrunkCdrs<'a> {
    /// The trunk channel as the Cdrs show it: caller id, name and ids, which do not change
    /// while the script goes on mutating the live channel's priority.
    t: Chan,
    agent: String,
    dial_data: &'a str,
    did: &'a str,
}

impl TrunkCdrs<'_> {
    fn dial(
        &self,
        s: &mut Script,
        (start, answer, end): (u64, Option<u64>, u64),
        disposition: &str,
    ) -> Result<(), EncodeError> {
        let c = Cdr {
            t: &self.t,
            dest_channel: &self.agent,
            last_app: "Dial",
            last_data: self.dial_data,
            start,
            answer,
            end,
            disposition,
            did: self.did,
        };
        cdr(s, c)
    }

    fn hangup(
        &self,
        s: &mut Script,
        cause: &str,
        at: u64,
        disposition: &str,
    ) -> Result<(), EncodeError> {
        let c = Cdr {
            t: &self.t,
            dest_channel: "",
            last_app: "Hangup",
            last_data: cause,
            start: at,
            answer: None,
            end: at,
            disposition,
            did: self.did,
        };
        cdr(s, c)
    }
}

/// Civil date/time (UTC) of a Unix timestamp: (year, month, day, hour, minute, second).
pub fn civil(epoch: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    // Howard Hinnant's days_from_civil inverse.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        m,
        d,
        (secs / 3600) as u32,
        ((secs % 3600) / 60) as u32,
        (secs % 60) as u32,
    )
}

/// `YYYY-MM-DD HH:MM:SS` as in CDR events.
pub fn cdr_time(epoch: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(epoch);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

fn bridge_uuid(ids: &CallIds) -> String {
    // Deterministic UUIDv4-shaped id from the call ids (splitmix64).
    let mut x = ids.start_epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ ids.uniqueid_seq.wrapping_add(0x2545_F491_4F6C_DD1D);
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

fn clean(s: &str) -> String {
    s.chars().filter(|c| *c != '\r' && *c != '\n').collect()
}

/// Renders one call into `(offset from call start, event)` pairs, in emission order.
///
/// Pure: the wall clock enters only through `ids.start_epoch`. CR/LF in the call's strings are
/// removed; an error is returned only if a value is too long for one AMI line.
pub fn render(
    call: &ScenarioCall,
    ids: &CallIds,
) -> Result<Vec<(Duration, Outgoing)>, EncodeError> {
    let caller = clean(&call.caller);
    let did = clean(&call.did);
    let ext = clean(&call.extension);
    let epoch = ids.start_epoch;
    let t_uid = format!("{epoch}.{}", ids.uniqueid_seq);
    let a_uid = format!("{epoch}.{}", ids.uniqueid_seq.wrapping_add(1));
    let (y, mo, d, h, mi, se) = civil(epoch);
    let mut t = Chan {
        name: format!("SIP/trunk-{:08x}", ids.channel_seq),
        state: 0,
        cid_num: caller.clone(),
        cid_name: "<unknown>".to_owned(),
        cl_num: "<unknown>".to_owned(),
        cl_name: "<unknown>".to_owned(),
        context: "from-trunk".to_owned(),
        exten: did.clone(),
        priority: 1,
        uniqueid: t_uid.clone(),
        linkedid: t_uid.clone(),
        sip_call_id: format!(
            "{}-{}@127.0.0.1",
            ids.uniqueid_seq.wrapping_add(1),
            6000u32.wrapping_add(ids.channel_seq)
        ),
    };
    let ext_name = extension_name(&ext);
    let mut a = Chan {
        name: format!("SIP/{ext}-{:08x}", ids.channel_seq.wrapping_add(1)),
        state: 0,
        cid_num: ext.clone(),
        cid_name: ext_name.clone(),
        cl_num: "<unknown>".to_owned(),
        cl_name: "<unknown>".to_owned(),
        context: "from-internal".to_owned(),
        exten: "s".to_owned(),
        priority: 1,
        uniqueid: a_uid,
        linkedid: t_uid.clone(),
        sip_call_id: format!("{:016x}{:016x}@127.0.0.1:5060", epoch, ids.uniqueid_seq),
    };
    let kind = call.kind;
    let mut s = Script {
        at: Duration::ZERO,
        out: Vec::with_capacity(96),
    };
    let dev_trunk = "SIP/trunk";
    let dev_ext = format!("SIP/{ext}");
    let dial_app_data = format!("SIP/{ext},20,tTkK");

    // --- trunk channel appears (t = 0) ---
    if kind == ScenarioKind::InboundMissed {
        s.devstate(dev_trunk, "INUSE")?;
    }
    s.chan("Newchannel", &t)?;
    s.varset(&t, "SIPURI", &format!("sip:{caller}@127.0.0.1:5080"))?;
    s.varset(&t, "SIPDOMAIN", "127.0.0.1")?;
    let sip_call_id = t.sip_call_id.clone();
    s.varset(&t, "SIPCALLID", &sip_call_id)?;
    if kind == ScenarioKind::InboundBusy {
        s.devstate(dev_trunk, "INUSE")?;
    }
    t.state = 4;
    s.chan("Newstate", &t)?;
    s.newexten(
        &t,
        "NoOp",
        &format!("Inbound call from {caller} to DID {did}"),
    )?;
    t.priority = 2;
    s.newexten(&t, "Set", &format!("CDR(userfield)=did:{did}"))?;
    if kind == ScenarioKind::InboundAnswered {
        s.devstate(dev_trunk, "INUSE")?;
    }
    t.priority = 3;
    s.newexten(&t, "Set", "CDR(CallType)=inbound")?;
    t.priority = 4;
    s.newexten(&t, "Set", "__CALLTYPE=inbound")?;
    s.varset(&t, "__CALLTYPE", "inbound")?;
    t.priority = 5;
    let rec = format!(
        "/srv/asterisk/var/recordings/in-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{se:02}-{t_uid}.wav"
    );
    s.newexten(&t, "MixMonitor", &format!("{rec},b"))?;
    s.varset(&t, "MIXMONITOR_FILENAME", &rec)?;
    for (p, data) in [
        (6, "0?queue,support,1"),
        (7, "0?queue,sales,1"),
        (8, "0?echo"),
    ] {
        t.priority = p;
        s.newexten(&t, "GotoIf", data)?;
    }
    t.priority = 9;
    s.newexten(&t, "Dial", &dial_app_data)?;
    for var in [
        "DIALSTATUS",
        "DIALEDPEERNUMBER",
        "DIALEDPEERNAME",
        "ANSWEREDTIME",
        "ANSWEREDTIME_MS",
        "DIALEDTIME",
        "DIALEDTIME_MS",
        "RINGTIME",
        "RINGTIME_MS",
        "PROGRESSTIME",
        "PROGRESSTIME_MS",
    ] {
        s.varset(&t, var, "")?;
    }

    // --- callee channel ---
    s.chan("Newchannel", &a)?;
    let a_call_id = a.sip_call_id.clone();
    s.varset(&a, "SIPCALLID", &a_call_id)?;
    a.exten = String::new();
    s.varset(&a, "DIALEDPEERNUMBER", &ext)?;
    s.varset(&a, "__CALLTYPE", "inbound")?;
    a.exten = ext.clone();
    a.cl_num = caller.clone();
    a.cl_name = t.cid_name.clone();
    s.newexten(&a, "AppDial", "(Outgoing Line)")?;
    s.chan("NewConnectedLine", &a)?;
    s.devstate(&dev_ext, "RINGING")?;
    if kind == ScenarioKind::InboundAnswered {
        s.devstate("Queue:support_avail", "NOT_INUSE")?;
    }
    s.dial("DialBegin", &t, &a, ("DialString", &ext))?;
    t.cl_num = ext.clone();
    t.cl_name = ext_name.clone();
    match kind {
        ScenarioKind::InboundAnswered => {
            s.chan("NewConnectedLine", &t)?;
            a.state = 5;
            s.chan("Newstate", &a)?;
            s.devstate(&dev_ext, "RINGING")?;
        }
        ScenarioKind::InboundMissed => {
            a.state = 5;
            s.chan("Newstate", &a)?;
            s.devstate(&dev_ext, "RINGING")?;
            s.chan("NewConnectedLine", &t)?;
        }
        ScenarioKind::InboundBusy => {
            s.chan("NewConnectedLine", &t)?;
        }
    }
    if kind != ScenarioKind::InboundBusy {
        s.varset(&t, "RINGTIME", "0")?;
        s.varset(&t, "RINGTIME_MS", "0")?;
        s.dial("DialState", &t, &a, ("DialStatus", "RINGING"))?;
    }

    s.at = call.ring;
    let ring_s = call.ring.as_secs();
    let cdrs = TrunkCdrs {
        t: t.clone(),
        agent: a.name.clone(),
        dial_data: &dial_app_data,
        did: &did,
    };
    match kind {
        ScenarioKind::InboundAnswered => {
            let answer_epoch = epoch + ring_s;
            let end_epoch = answer_epoch + call.talk.as_secs();
            a.state = 6;
            s.chan("Newstate", &a)?;
            s.varset(&t, "DIALSTATUS", "ANSWER")?;
            let a_name = a.name.clone();
            s.varset(&t, "DIALEDPEERNAME", &a_name)?;
            s.varset(&t, "DIALEDPEERNUMBER", &ext)?;
            s.devstate(&dev_ext, "INUSE")?;
            a.exten = String::new();
            s.dial("DialEnd", &t, &a, ("DialStatus", "ANSWER"))?;
            t.state = 6;
            s.chan("Newstate", &t)?;
            let b = Bridge {
                id: bridge_uuid(ids),
            };
            s.bridge("BridgeCreate", &b, 0, None)?;
            s.newexten(&a, "AppDial", "(Outgoing Line)")?;
            s.bridge("BridgeEnter", &b, 1, Some(&a))?;
            s.bridge("BridgeEnter", &b, 2, Some(&t))?;
            let t_name = t.name.clone();
            s.varset(&a, "BRIDGEPEER", &t_name)?;
            s.varset(&a, "BRIDGEPVTCALLID", &sip_call_id)?;
            s.varset(&t, "BRIDGEPEER", &a_name)?;
            s.varset(&t, "BRIDGEPVTCALLID", &a_call_id)?;

            // --- the caller hangs up ---
            s.at = call.ring + call.talk;
            s.hangup_ev("HangupRequest", &t, "16", None)?;
            s.varset(&t, "BRIDGEPEER", "")?;
            s.varset(&t, "BRIDGEPVTCALLID", "")?;
            s.varset(&a, "BRIDGEPEER", "")?;
            s.varset(&a, "BRIDGEPVTCALLID", "")?;
            s.bridge("BridgeLeave", &b, 1, Some(&t))?;
            let talk_ms = call.talk.as_millis();
            let dialed_ms = (call.ring + call.talk).as_millis();
            s.varset(&t, "ANSWEREDTIME", &(talk_ms / 1000).to_string())?;
            s.varset(&t, "ANSWEREDTIME_MS", &talk_ms.to_string())?;
            s.varset(&t, "DIALEDTIME", &(dialed_ms / 1000).to_string())?;
            s.varset(&t, "DIALEDTIME_MS", &dialed_ms.to_string())?;
            s.varset(&t, "DIALSTATUS", "ANSWER")?;
            s.hangup_ev("SoftHangupRequest", &t, "16", None)?;
            s.devstate(dev_trunk, "NOT_INUSE")?;
            s.bridge("BridgeLeave", &b, 0, Some(&a))?;
            s.bridge("BridgeDestroy", &b, 0, None)?;
            s.hangup_ev("Hangup", &t, "16", Some("Normal Clearing"))?;
            cdrs.dial(&mut s, (epoch, Some(answer_epoch), end_epoch), "ANSWERED")?;
            s.devstate(&dev_ext, "NOT_INUSE")?;
            s.hangup_ev("Hangup", &a, "16", Some("Normal Clearing"))?;
        }
        ScenarioKind::InboundMissed => {
            let end_epoch = epoch + ring_s;
            s.dial("DialEnd", &t, &a, ("DialStatus", "NOANSWER"))?;
            s.hangup_ev("Hangup", &a, "16", Some("Normal Clearing"))?;
            s.varset(&t, "DIALSTATUS", "NOANSWER")?;
            t.priority = 10;
            s.newexten(&t, "NoOp", "DIALSTATUS=NOANSWER HANGUPCAUSE=0")?;
            t.priority = 11;
            s.newexten(&t, "GotoIf", "0?busy")?;
            t.priority = 12;
            s.newexten(&t, "GotoIf", "0?unavail")?;
            t.priority = 13;
            s.newexten(&t, "Hangup", "19")?;
            s.hangup_ev("SoftHangupRequest", &t, "16", None)?;
            s.devstate(&dev_ext, "NOT_INUSE")?;
            cdrs.dial(&mut s, (epoch, None, end_epoch), "NO ANSWER")?;
            cdrs.hangup(&mut s, "19", end_epoch, "NO ANSWER")?;
            s.devstate(dev_trunk, "NOT_INUSE")?;
            s.hangup_ev("Hangup", &t, "19", Some("User alerting, no answer"))?;
        }
        ScenarioKind::InboundBusy => {
            let end_epoch = epoch + ring_s;
            s.dial("DialEnd", &t, &a, ("DialStatus", "BUSY"))?;
            s.hangup_ev("Hangup", &a, "17", Some("User busy"))?;
            s.varset(&t, "DIALSTATUS", "BUSY")?;
            s.devstate(&dev_ext, "NOT_INUSE")?;
            t.priority = 10;
            s.newexten(&t, "NoOp", "DIALSTATUS=BUSY HANGUPCAUSE=17")?;
            t.priority = 11;
            s.newexten(&t, "GotoIf", "1?busy")?;
            t.priority = 14;
            s.newexten(&t, "Hangup", "17")?;
            s.hangup_ev("SoftHangupRequest", &t, "16", None)?;
            cdrs.dial(&mut s, (epoch, None, end_epoch), "BUSY")?;
            s.devstate(dev_trunk, "NOT_INUSE")?;
            s.hangup_ev("Hangup", &t, "17", Some("User busy"))?;
            cdrs.hangup(&mut s, "17", end_epoch, "BUSY")?;
        }
    }
    Ok(s.out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        // 1795259787 = 2026-11-21 11:16:27 UTC (the lab's clock in a_inbound_answered).
        assert_eq!(cdr_time(1_795_259_787), "2026-11-21 11:16:27");
        assert_eq!(cdr_time(0), "1970-01-01 00:00:00");
        assert_eq!(cdr_time(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn offsets_are_monotonic() {
        for kind in [
            ScenarioKind::InboundAnswered,
            ScenarioKind::InboundMissed,
            ScenarioKind::InboundBusy,
        ] {
            let call = ScenarioCall {
                kind,
                caller: "+74951234567".into(),
                did: "101".into(),
                extension: "101".into(),
                ring: Duration::from_secs(2),
                talk: Duration::from_secs(3),
            };
            let evs = render(&call, &IdAllocator::default().next(1_795_259_787)).unwrap();
            assert!(evs.windows(2).all(|w| w[0].0 <= w[1].0));
        }
    }
}
