//! Call flows: scripted inbound calls, the generic `Dial`, hangups and teardown, and what an
//! originated channel does once it answers.

use std::time::Duration;

use super::{
    ChanId, DialLeg, DialPurpose, Ev, HangupHow, InboundInfo, OriginateInfo, Pbx, PhoneBehaviour,
    Tech, Timer, clean, phone_cid,
};
use crate::scenario::{ScenarioCall, ScenarioKind, cdr_time, civil, extension_name};

/// Who is dialled.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    /// `SIP/<ext>`.
    Phone(String),
    /// `SIP/trunk/<number>`.
    Trunk(String),
}

impl Pbx {
    /// Starts a scripted inbound call now; returns its Linkedid.
    ///
    /// Answered / missed / busy calls follow `a_inbound_answered`, `b_inbound_noanswer` and
    /// `c_inbound_busy` message by message (VarSet, Newexten, DeviceStateChange and Cdr
    /// included); queue calls follow `k1_queue_answered` (abandoned: the busy-hour capture).
    pub fn play(&mut self, now: Duration, call: &ScenarioCall) -> String {
        self.now = now.max(self.now);
        self.processed_calls += 1;
        match call.kind {
            ScenarioKind::QueueAnswered | ScenarioKind::QueueAbandoned => self.queue_call(call),
            _ => self.inbound_start(call),
        }
    }

    fn inbound_start(&mut self, call: &ScenarioCall) -> String {
        let caller = clean(&call.caller);
        let did = clean(&call.did);
        let ext = clean(&call.extension);
        let epoch = self.epoch();
        let (useq, cseq) = self.next_counters();
        let t = self.new_chan(Tech::Trunk, "trunk");
        let t_uid = self.c(t).uniqueid.clone();
        self.set(t, |c| {
            c.cid_num = caller.clone();
            c.cid_name = "<unknown>".to_owned();
            c.context = "from-trunk".to_owned();
            c.exten = did.clone();
            c.ext = did.clone();
            c.owner = true;
            c.direction = "inbound";
            c.sip_call_id = format!(
                "{}-{}@127.0.0.1",
                useq.wrapping_add(1),
                6000u32.wrapping_add(cseq)
            );
        });
        let a = self.new_chan(Tech::Phone, &ext);
        let ext_name = extension_name(&ext);
        self.set(a, |c| {
            c.cid_num = ext.clone();
            c.cid_name = ext_name.clone();
            c.linkedid = t_uid.clone();
            c.sip_call_id = format!("{epoch:016x}{useq:016x}@127.0.0.1:5060");
        });
        let t_key = self.c(t).linked_key;
        self.set(a, |c| c.linked_key = t_key);
        let (y, mo, d, h, mi, se) = civil(epoch);
        let kind = call.kind;
        let dev_trunk = "SIP/trunk";
        let dev_ext = format!("SIP/{ext}");
        let dial_app_data = format!("SIP/{ext},20,tTkK");

        // --- trunk channel appears (t = 0) ---
        if kind == ScenarioKind::InboundMissed {
            self.devstate(dev_trunk, "INUSE");
        }
        self.chan_ev("Newchannel", t);
        self.varset(t, "SIPURI", &format!("sip:{caller}@127.0.0.1:5080"));
        self.varset(t, "SIPDOMAIN", "127.0.0.1");
        let sip_call_id = self.c(t).sip_call_id.clone();
        self.varset(t, "SIPCALLID", &sip_call_id);
        if kind == ScenarioKind::InboundBusy {
            self.devstate(dev_trunk, "INUSE");
        }
        self.set_state(t, 4);
        self.newexten(
            t,
            "NoOp",
            &format!("Inbound call from {caller} to DID {did}"),
        );
        self.set(t, |c| c.priority = 2);
        self.newexten(t, "Set", &format!("CDR(userfield)=did:{did}"));
        if kind == ScenarioKind::InboundAnswered {
            self.devstate(dev_trunk, "INUSE");
        }
        self.set(t, |c| c.priority = 3);
        self.newexten(t, "Set", "CDR(CallType)=inbound");
        self.set(t, |c| c.priority = 4);
        self.newexten(t, "Set", "__CALLTYPE=inbound");
        self.varset(t, "__CALLTYPE", "inbound");
        self.set(t, |c| c.priority = 5);
        let rec = format!(
            "/srv/asterisk/var/recordings/in-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{se:02}-{t_uid}.wav"
        );
        self.newexten(t, "MixMonitor", &format!("{rec},b"));
        self.varset(t, "MIXMONITOR_FILENAME", &rec);
        self.set(t, |c| c.mixmon = true);
        self.chan_ev("MixMonitorStart", t);
        for (p, data) in [
            (6, "0?queue,support,1"),
            (7, "0?queue,sales,1"),
            (8, "0?echo"),
        ] {
            self.set(t, |c| c.priority = p);
            self.newexten(t, "GotoIf", data);
        }
        self.set(t, |c| c.priority = 9);
        self.newexten(t, "Dial", &dial_app_data);
        for var in DIAL_VARS {
            self.varset(t, var, "");
        }

        // --- callee channel ---
        self.chan_ev("Newchannel", a);
        let a_call_id = self.c(a).sip_call_id.clone();
        self.varset(a, "SIPCALLID", &a_call_id);
        self.set(a, |c| c.exten = String::new());
        self.varset(a, "DIALEDPEERNUMBER", &ext);
        self.varset(a, "__CALLTYPE", "inbound");
        let (t_cid_name,) = (self.c(t).cid_name.clone(),);
        self.set(a, |c| {
            c.exten = ext.clone();
            c.cl_num = caller.clone();
            c.cl_name = t_cid_name;
        });
        self.newexten(a, "AppDial", "(Outgoing Line)");
        self.chan_ev("NewConnectedLine", a);
        self.devstate(&dev_ext, "RINGING");
        if kind == ScenarioKind::InboundAnswered {
            self.devstate("Queue:support_avail", "NOT_INUSE");
        }
        self.dial_ev("DialBegin", Some(t), a, ("DialString", &ext));
        self.set(t, |c| {
            c.cl_num = ext.clone();
            c.cl_name = ext_name.clone();
        });
        match kind {
            ScenarioKind::InboundAnswered => {
                self.chan_ev("NewConnectedLine", t);
                self.set_state(a, 5);
                self.devstate(&dev_ext, "RINGING");
            }
            ScenarioKind::InboundMissed => {
                self.set_state(a, 5);
                self.devstate(&dev_ext, "RINGING");
                self.chan_ev("NewConnectedLine", t);
            }
            _ => {
                self.chan_ev("NewConnectedLine", t);
            }
        }
        if kind != ScenarioKind::InboundBusy {
            self.varset(t, "RINGTIME", "0");
            self.varset(t, "RINGTIME_MS", "0");
            self.dial_ev("DialState", Some(t), a, ("DialStatus", "RINGING"));
        }
        let cdr_chan = Box::new(self.c(t).clone());
        let agent_name = self.c(a).name.clone();
        let now = self.now;
        self.set(t, |c| {
            c.dialing.push(a);
            c.inbound = Some(Box::new(InboundInfo {
                did: did.clone(),
                dial_data: dial_app_data.clone(),
                agent: agent_name,
                start_epoch: epoch,
                answer_epoch: None,
                dial_started: now,
                answered_at: None,
                cdr_chan: Some(cdr_chan),
                kind,
                talk: call.talk,
            }));
        });
        self.set(a, |c| {
            c.dial = Some(DialLeg {
                caller: Some(t),
                purpose: DialPurpose::Bridge,
            });
        });
        self.schedule(call.ring, Timer::InboundOutcome { trunk: t, agent: a });
        t_uid
    }

    fn next_counters(&self) -> (u64, u32) {
        (self.next_uid_peek(), self.next_chan_peek())
    }

    /// The ring time of a scripted inbound call is over.
    pub(crate) fn inbound_outcome(&mut self, t: ChanId, a: ChanId) {
        if !self.alive(t) || !self.alive(a) || self.c(a).dial.is_none() {
            return;
        }
        let Some(info) = self.c(t).inbound.clone() else {
            return;
        };
        let ext = self.c(a).ext.clone();
        let dev_trunk = "SIP/trunk";
        let dev_ext = format!("SIP/{ext}");
        let epoch = info.start_epoch;
        let ring_s = self.now.saturating_sub(info.dial_started).as_secs();
        match info.kind {
            ScenarioKind::InboundAnswered => {
                let answer_epoch = epoch + ring_s;
                let now = self.now;
                self.set(t, |c| {
                    c.dialing.retain(|d| *d != a);
                    if let Some(i) = c.inbound.as_mut() {
                        i.answer_epoch = Some(answer_epoch);
                        i.answered_at = Some(now);
                    }
                });
                self.set(a, |c| c.dial = None);
                self.set_state(a, 6);
                self.varset(t, "DIALSTATUS", "ANSWER");
                let a_name = self.c(a).name.clone();
                self.varset(t, "DIALEDPEERNAME", &a_name);
                self.varset(t, "DIALEDPEERNUMBER", &ext);
                self.devstate(&dev_ext, "INUSE");
                self.set(a, |c| c.exten = String::new());
                self.dial_ev("DialEnd", Some(t), a, ("DialStatus", "ANSWER"));
                self.set_state(t, 6);
                let b = self.basic_bridge();
                self.newexten(a, "AppDial", "(Outgoing Line)");
                self.enter(b, a);
                self.enter(b, t);
                self.bridge_peer_vars(a, t);
                self.schedule(info.talk, Timer::Bye { chan: t });
            }
            ScenarioKind::InboundMissed => {
                let end_epoch = epoch + ring_s;
                self.dial_ev("DialEnd", Some(t), a, ("DialStatus", "NOANSWER"));
                self.hangup_ev("Hangup", a, Some(16), true);
                self.remove(a);
                self.varset(t, "DIALSTATUS", "NOANSWER");
                self.dialplan_steps(
                    t,
                    &[
                        (10, "NoOp", "DIALSTATUS=NOANSWER HANGUPCAUSE=0"),
                        (11, "GotoIf", "0?busy"),
                        (12, "GotoIf", "0?unavail"),
                        (13, "Hangup", "19"),
                    ],
                );
                self.hangup_ev("SoftHangupRequest", t, Some(16), false);
                self.devstate(&dev_ext, "NOT_INUSE");
                self.inbound_cdr(t, (epoch, None, end_epoch), "NO ANSWER", false);
                self.inbound_cdr(t, (end_epoch, None, end_epoch), "NO ANSWER", true);
                self.devstate(dev_trunk, "NOT_INUSE");
                self.hangup_ev("Hangup", t, Some(19), true);
                self.remove(t);
            }
            _ => {
                let end_epoch = epoch + ring_s;
                self.dial_ev("DialEnd", Some(t), a, ("DialStatus", "BUSY"));
                self.hangup_ev("Hangup", a, Some(17), true);
                self.remove(a);
                self.varset(t, "DIALSTATUS", "BUSY");
                self.devstate(&dev_ext, "NOT_INUSE");
                self.dialplan_steps(
                    t,
                    &[
                        (10, "NoOp", "DIALSTATUS=BUSY HANGUPCAUSE=17"),
                        (11, "GotoIf", "1?busy"),
                        (14, "Hangup", "17"),
                    ],
                );
                self.hangup_ev("SoftHangupRequest", t, Some(16), false);
                self.inbound_cdr(t, (epoch, None, end_epoch), "BUSY", false);
                self.devstate(dev_trunk, "NOT_INUSE");
                self.hangup_ev("Hangup", t, Some(17), true);
                self.inbound_cdr(t, (end_epoch, None, end_epoch), "BUSY", true);
                self.remove(t);
            }
        }
    }

    fn dialplan_steps(&mut self, id: ChanId, steps: &[(u32, &str, &str)]) {
        for (p, app, data) in steps {
            self.set(id, |c| c.priority = *p);
            self.newexten(id, app, data);
        }
    }

    /// `BRIDGEPEER`/`BRIDGEPVTCALLID` on both legs after a Dial bridge.
    pub(crate) fn bridge_peer_vars(&mut self, a: ChanId, t: ChanId) {
        let (t_name, t_call) = (self.c(t).name.clone(), self.c(t).sip_call_id.clone());
        let (a_name, a_call) = (self.c(a).name.clone(), self.c(a).sip_call_id.clone());
        self.varset(a, "BRIDGEPEER", &t_name);
        self.varset(a, "BRIDGEPVTCALLID", &t_call);
        self.varset(t, "BRIDGEPEER", &a_name);
        self.varset(t, "BRIDGEPVTCALLID", &a_call);
    }

    /// The trunk leg's `Cdr` (cdr_manager, with the lab's `CallType` mapping).
    pub(crate) fn inbound_cdr(
        &mut self,
        t: ChanId,
        (start, answer, end): (u64, Option<u64>, u64),
        disposition: &str,
        hangup_app: bool,
    ) {
        let Some(info) = self.c(t).inbound.clone() else {
            return;
        };
        let Some(ct) = info.cdr_chan.as_deref() else {
            return;
        };
        let caller_id = if ct.cid_name == "<unknown>" {
            format!("\"\" <{}>", ct.cid_num)
        } else {
            format!("\"{}\" <{}>", ct.cid_name, ct.cid_num)
        };
        let billable = answer.map(|a| end.saturating_sub(a)).unwrap_or(0);
        let cause = match info.kind {
            ScenarioKind::InboundBusy => "17",
            _ => "19",
        };
        let (dest_chan, app, data) = if hangup_app {
            ("", "Hangup", cause)
        } else {
            (info.agent.as_str(), "Dial", info.dial_data.as_str())
        };
        let ev = Ev::event("Cdr", "cdr,all")
            .h("AccountCode", "")
            .h("Source", &ct.cid_num)
            .h("Destination", &info.did)
            .h("DestinationContext", "from-trunk")
            .h("CallerID", &caller_id)
            .h("Channel", &ct.name)
            .h("DestinationChannel", dest_chan)
            .h("LastApplication", app)
            .h("LastData", data)
            .h("StartTime", &cdr_time(start))
            .h("AnswerTime", &answer.map(cdr_time).unwrap_or_default())
            .h("EndTime", &cdr_time(end))
            .h("Duration", &end.saturating_sub(start).to_string())
            .h("BillableSeconds", &billable.to_string())
            .h("Disposition", disposition)
            .h("AMAFlags", "DOCUMENTATION")
            .h("UniqueID", &ct.uniqueid)
            .h("UserField", &format!("did:{}", info.did))
            .h("CallType", "inbound");
        self.push(ev);
    }

    // ----- the generic Dial ------------------------------------------------------------------

    /// `caller` (or nobody, for an originated leg) dials `target`; the phone's configured
    /// behaviour decides what happens; the dialler gives up after `timeout`.
    pub(crate) fn dial(
        &mut self,
        caller: Option<ChanId>,
        target: Target,
        purpose: DialPurpose,
        timeout: Duration,
    ) -> ChanId {
        let (tech, ext, dial_string) = match &target {
            Target::Phone(e) => (Tech::Phone, e.clone(), e.clone()),
            Target::Trunk(n) => (Tech::Trunk, n.clone(), format!("trunk/{n}")),
        };
        let s = self.new_chan(tech, &ext);
        let (caller_link, caller_cid) = match caller {
            Some(c) => (
                Some((self.c(c).linkedid.clone(), self.c(c).linked_key)),
                Some((self.c(c).cid_num.clone(), self.c(c).cid_name.clone())),
            ),
            None => (None, None),
        };
        self.set(s, |c| {
            if let Some((l, k)) = caller_link {
                c.linkedid = l;
                c.linked_key = k;
            }
            match tech {
                Tech::Trunk => {
                    c.cid_num = "<unknown>".to_owned();
                    c.cid_name = "<unknown>".to_owned();
                    c.context = "from-trunk".to_owned();
                }
                _ => {
                    let (n, name) = phone_cid(&ext);
                    c.cid_num = n;
                    c.cid_name = name;
                }
            }
        });
        self.chan_ev("Newchannel", s);
        let call_id = self.c(s).sip_call_id.clone();
        self.varset(s, "SIPCALLID", &call_id);
        let account = caller
            .map(|c| self.c(c).account.clone())
            .unwrap_or_default();
        self.set(s, |c| {
            c.exten = ext.clone();
            c.account = account;
        });
        if let (Tech::Trunk, Some((n, name))) = (tech, caller_cid.clone()) {
            // The outbound leg presents the caller's id (h1_click_to_call).
            self.set(s, |c| {
                c.cid_num = n;
                c.cid_name = name;
            });
            let ev = Ev::event("NewCallerid", "call,all")
                .snap(self.c(s), "")
                .h("CID-CallingPres", "0 (Presentation Allowed, Not Screened)");
            self.push(ev);
        }
        if let Some((n, name)) = caller_cid {
            self.set(s, |c| {
                c.cl_num = n;
                c.cl_name = name;
            });
            self.chan_ev("NewConnectedLine", s);
        }
        let behaviour = match tech {
            Tech::Trunk => self.cfg.far_end,
            _ => self.phone_behaviour(&ext),
        };
        // The atxfer's Local leg: the target already rings at DialBegin (e_attended_transfer).
        let ring_first = matches!(purpose, DialPurpose::Consult)
            && matches!(
                behaviour,
                PhoneBehaviour::Answer { .. } | PhoneBehaviour::NoAnswer
            );
        if ring_first {
            self.set_state(s, 5);
        }
        self.dial_ev("DialBegin", caller, s, ("DialString", &dial_string));
        if let Some(c) = caller {
            let (n, name) = (self.c(s).cid_num.clone(), self.c(s).cid_name.clone());
            if tech == Tech::Phone {
                self.set(c, |ch| {
                    ch.cl_num = n;
                    ch.cl_name = name;
                });
                self.chan_ev("NewConnectedLine", c);
            }
            self.set(c, |ch| ch.dialing.push(s));
        }
        self.set(s, |c| c.dial = Some(DialLeg { caller, purpose }));
        match behaviour {
            PhoneBehaviour::Answer { after, .. } => {
                self.ringing(s, caller, ring_first);
                self.schedule(after, Timer::Answer { chan: s });
            }
            PhoneBehaviour::Busy { after } => self.schedule(after, Timer::Busy { chan: s }),
            PhoneBehaviour::NoAnswer => self.ringing(s, caller, ring_first),
        }
        self.schedule(timeout, Timer::NoAnswer { chan: s });
        s
    }

    fn ringing(&mut self, s: ChanId, caller: Option<ChanId>, already: bool) {
        if !already {
            self.set_state(s, 5);
        }
        if let Some(c) = caller
            && let Tech::LocalTwo(one) = self.c(c).tech
            && self.c(one).state < 5
        {
            {
                // The ;1 half rings too and shows who it rings (connected line of ;2).
                let (n, name) = (self.c(s).cid_num.clone(), self.c(s).cid_name.clone());
                self.set(one, |o| {
                    o.cid_num = n;
                    o.cid_name = name;
                });
                self.set_state(one, 5);
            }
        }
        self.dial_ev("DialState", caller, s, ("DialStatus", "RINGING"));
    }

    /// A dialled phone (or the far end) answers.
    pub(crate) fn dialled_answers(&mut self, s: ChanId) {
        if !self.alive(s) || self.c(s).state == 6 {
            return;
        }
        let Some(leg) = self.c(s).dial.clone() else {
            return;
        };
        if matches!(leg.purpose, DialPurpose::Queue) {
            self.queue_member_answers(s);
            return;
        }
        self.set_state(s, 6);
        if self.c(s).tech == Tech::Phone {
            let dev = format!("SIP/{}", self.c(s).ext);
            self.devstate(&dev, "INUSE");
        }
        self.set(s, |c| {
            c.dial = None;
            if matches!(c.tech, Tech::Phone | Tech::Trunk) {
                c.exten = String::new();
            }
        });
        if let Some(caller) = leg.caller {
            self.set(caller, |c| c.dialing.retain(|d| *d != s));
        }
        self.dial_ev("DialEnd", leg.caller, s, ("DialStatus", "ANSWER"));
        match leg.purpose {
            DialPurpose::Originate(info) => self.originate_answered(s, *info),
            DialPurpose::Bridge | DialPurpose::Consult => {
                if let Some(caller) = leg.caller {
                    if self.c(caller).state != 6 {
                        self.set_state(caller, 6);
                    }
                    let b = self.basic_bridge();
                    self.enter(b, s);
                    self.enter(b, caller);
                    if self.c(s).tech != Tech::Phone || self.c(caller).tech != Tech::Phone {
                        self.bridge_peer_vars(s, caller);
                    }
                    if let Tech::LocalTwo(one) = self.c(caller).tech {
                        self.local_one_answers(one);
                    }
                }
            }
            DialPurpose::Queue => {}
        }
        let behaviour = match self.c(s).tech {
            Tech::Trunk => self.cfg.far_end,
            _ => self.phone_behaviour(&self.c(s).ext),
        };
        if let PhoneBehaviour::Answer {
            hangup_after: Some(talk),
            ..
        } = behaviour
        {
            self.schedule(talk, Timer::Bye { chan: s });
        }
    }

    /// The `;1` half of a Local pair answers when its `;2` half is bridged.
    fn local_one_answers(&mut self, one: ChanId) {
        if !self.alive(one) || self.c(one).state == 6 {
            return;
        }
        self.set_state(one, 6);
        let Some(leg) = self.c(one).dial.clone() else {
            return;
        };
        self.set(one, |c| c.dial = None);
        self.dial_ev("DialEnd", leg.caller, one, ("DialStatus", "ANSWER"));
        match leg.purpose {
            DialPurpose::Originate(info) => self.originate_answered(one, *info),
            DialPurpose::Consult => self.consult_answered(one),
            _ => {}
        }
    }

    /// A dialled phone answers `486 Busy`.
    pub(crate) fn dialled_busy(&mut self, s: ChanId) {
        self.dial_failed(s, "BUSY", 17, 5);
    }

    /// The dialler gives up on a ringing channel.
    pub(crate) fn dial_timeout(&mut self, s: ChanId) {
        self.dial_failed(s, "NOANSWER", 19, 3);
    }

    /// A dialled leg did not connect: `status` for DialEnd, `cause` for its Hangup,
    /// `reason` for an OriginateResponse.
    pub(crate) fn dial_failed(&mut self, s: ChanId, status: &str, cause: u16, reason: u8) {
        if !self.alive(s) || self.c(s).state == 6 {
            return;
        }
        let Some(leg) = self.c(s).dial.clone() else {
            return;
        };
        match leg.purpose {
            DialPurpose::Originate(info) => {
                if status == "BUSY" {
                    self.dial_ev("DialEnd", None, s, ("DialStatus", status));
                }
                self.originate_failed(&info, reason);
                self.hangup_final(s, cause);
            }
            DialPurpose::Queue => {
                self.dial_ev("DialEnd", leg.caller, s, ("DialStatus", status));
                self.hangup_final(s, cause);
            }
            DialPurpose::Bridge | DialPurpose::Consult => {
                self.dial_ev("DialEnd", leg.caller, s, ("DialStatus", status));
                let cause = if status == "NOANSWER" { 16 } else { cause };
                self.hangup_final(s, cause);
                if let Some(caller) = leg.caller {
                    self.set(caller, |c| c.dialing.retain(|d| *d != s));
                    if matches!(leg.purpose, DialPurpose::Consult) {
                        self.consult_failed(caller);
                    } else {
                        // The dialplan after Dial ends the call (`Hangup()` keeps the cause).
                        let caller_cause = if status == "BUSY" { 17 } else { 19 };
                        self.end_dialplan(caller, caller_cause);
                    }
                }
            }
        }
    }

    /// A channel's dialplan runs out: `SoftHangupRequest`, `Hangup`.
    pub(crate) fn end_dialplan(&mut self, id: ChanId, cause: u16) {
        if !self.alive(id) {
            return;
        }
        self.hangup_ev("SoftHangupRequest", id, Some(16), false);
        let partner = self.local_partner(id);
        self.hangup_final(id, cause);
        if let Some(p) = partner {
            self.hangup(p, 16, HangupHow::Remote);
        }
    }

    pub(crate) fn local_partner(&self, id: ChanId) -> Option<ChanId> {
        match self.c(id).tech {
            Tech::LocalOne(p) | Tech::LocalTwo(p) if self.alive(p) => Some(p),
            _ => None,
        }
    }

    // ----- originate -----------------------------------------------------------------------

    pub(crate) fn originate_failed(&mut self, info: &OriginateInfo, reason: u8) {
        if info.is_async {
            let ev = Ev::event("OriginateResponse", "call,all")
                .opt("ActionID", info.action_id.as_deref())
                .h("Response", "Failure")
                .h("Channel", &info.dial_string);
            let ev = match &info.application {
                Some((app, data)) => ev.h("Application", app).h("Data", data),
                None => ev.h("Context", &info.context).h("Exten", &info.exten),
            };
            let ev = ev
                .h("Reason", &reason.to_string())
                .h("Uniqueid", "<unknown>")
                .h("CallerIDNum", &info.cid_num)
                .h("CallerIDName", &info.cid_name);
            self.push(ev);
        }
        if let Some(token) = info.sync_token {
            let bytes = Ev::response("Error", info.action_id.as_deref())
                .h("Message", "Originate failed")
                .0
                .map(|o| o.to_bytes())
                .unwrap_or_default();
            self.push_reply(token, bytes);
        }
    }

    fn originate_answered(&mut self, o: ChanId, info: OriginateInfo) {
        if info.is_async {
            let c = self.c(o);
            let ev = Ev::event("OriginateResponse", "call,all")
                .opt("ActionID", info.action_id.as_deref())
                .h("Response", "Success")
                .h("Channel", &c.name);
            let ev = match &info.application {
                Some((app, data)) => ev.h("Application", app).h("Data", data),
                None => ev.h("Context", &info.context).h("Exten", &info.exten),
            };
            let ev = ev
                .h("Reason", "4")
                .h("Uniqueid", &c.uniqueid)
                .h("CallerIDNum", &info.cid_num)
                .h("CallerIDName", &info.cid_name);
            self.push(ev);
        }
        if let Some(token) = info.sync_token {
            let bytes = Ev::response("Success", info.action_id.as_deref())
                .h("Message", "Originate successfully queued")
                .0
                .map(|o| o.to_bytes())
                .unwrap_or_default();
            self.push_reply(token, bytes);
        }
        self.run_exten(o, &info);
    }

    /// What an answered originated channel does: the application, or the dialplan of
    /// `context`/`exten` (the lab's `[from-internal]` and `[spy]`).
    fn run_exten(&mut self, o: ChanId, info: &OriginateInfo) {
        if let Some((app, data)) = &info.application {
            if app.eq_ignore_ascii_case("ChanSpy") {
                self.set(o, |c| c.owner = true);
                self.chan_spy(o, data);
            } else {
                self.set(o, |c| {
                    c.owner = true;
                    c.app = app.clone();
                    c.app_data = data.clone();
                });
            }
            return;
        }
        let exten = info.exten.clone();
        let context = info.context.clone();
        self.set(o, |c| {
            c.context = context.clone();
            c.exten = exten.clone();
            c.owner = true;
        });
        let first = exten.chars().next().unwrap_or('x');
        let rest: String = exten.chars().skip(1).collect();
        let is_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if matches!(first, 'L' | 'W' | 'B') && is_digits(&rest) {
            let opts = match first {
                'W' => "bqwE",
                'B' => "BbqE",
                _ => "bqE",
            };
            self.set(o, |c| c.priority = 2);
            self.chan_spy(o, &format!("SIP/{rest},{opts}"));
        } else if first == '0' && is_digits(&exten) {
            // [from-internal] _0X.: outbound via the trunk, recorded.
            self.set(o, |c| c.direction = "outbound");
            self.set(o, |c| c.priority = 4);
            let (y, mo, d, h, mi, se) = civil(self.epoch());
            let uid = self.c(o).uniqueid.clone();
            let rec = format!(
                "/srv/asterisk/var/recordings/out-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{se:02}-{uid}.wav"
            );
            self.newexten(o, "MixMonitor", &format!("{rec},b"));
            self.varset(o, "MIXMONITOR_FILENAME", &rec);
            self.set(o, |c| c.mixmon = true);
            self.chan_ev("MixMonitorStart", o);
            self.set(o, |c| c.priority = 5);
            self.newexten(o, "Dial", &format!("SIP/trunk/{exten},30,tT"));
            self.dial(
                Some(o),
                Target::Trunk(exten),
                DialPurpose::Bridge,
                Duration::from_secs(30),
            );
        } else if exten.len() == 3 && is_digits(&exten) && (first == '1' || first == '2') {
            self.set(o, |c| c.priority = 2);
            self.newexten(o, "Dial", &format!("SIP/{exten},20,tT"));
            self.dial(
                Some(o),
                Target::Phone(exten),
                DialPurpose::Bridge,
                Duration::from_secs(20),
            );
        } else if let Ok(space @ 701..=720) = exten.parse::<u32>() {
            self.retrieve_parked(o, space);
        } else if exten == "600" || exten == "800" {
            if exten == "800" {
                self.moh_start(o);
            }
        } else {
            // No such extension: the channel is hung up.
            self.end_dialplan(o, 16);
        }
    }

    // ----- hangup ----------------------------------------------------------------------------

    /// `id` goes away: the far end sent BYE (`Remote`) or AMI/dialplan hung it up (`Soft`), and
    /// everything that depends on it follows (its bridge peer, ringing callees, its Local
    /// partner, a transfer it started).
    pub(crate) fn hangup(&mut self, x: ChanId, cause: u16, how: HangupHow) {
        if !self.alive(x) {
            return;
        }
        let in_queue = self.c(x).queue.is_some();
        match how {
            HangupHow::Remote => {
                let cause_hdr = if in_queue { None } else { Some(cause) };
                self.hangup_ev("HangupRequest", x, cause_hdr, false);
            }
            HangupHow::Soft => self.hangup_ev("SoftHangupRequest", x, Some(cause), false),
        }
        if self.c(x).atxfer.is_some() {
            self.atxfer_complete(x);
            return;
        }
        if self.c(x).parked.is_some() {
            self.parked_gives_up(x);
            return;
        }
        let partner = self.local_partner(x);
        let peers = self.peers(x);
        if self.c(x).bridge.is_some() {
            if peers.len() == 1 {
                self.teardown_pair(x, peers[0], cause);
            } else {
                let b = self.bridge_of(x);
                self.leave(x);
                if let Some(b) = b
                    && self.bridges.get(&b).is_some_and(|b| b.members.is_empty())
                    && self.parking_bridge != Some(b)
                {
                    self.destroy(b);
                }
                self.hangup_final(x, cause);
            }
        } else if !self.c(x).dialing.is_empty() {
            self.cancel_dials(x, cause);
        } else if self.c(x).dial.is_some() {
            // A ringing leg that goes away counts as declined for its dialler.
            self.dial_failed(x, "BUSY", cause, 1);
        } else if in_queue {
            self.queue_abandon(x);
        } else {
            self.hangup_final(x, cause);
        }
        if let Some(p) = partner {
            self.hangup(p, 16, HangupHow::Remote);
        }
    }

    /// `x` leaves a two-party bridge by hanging up; `p` follows.
    fn teardown_pair(&mut self, x: ChanId, p: ChanId, cause: u16) {
        let b = self.bridge_of(x);
        let p_partner = self.local_partner(p);
        if self.c(x).owner {
            if self
                .c(x)
                .queue
                .as_ref()
                .is_some_and(|q| q.connected.is_some())
            {
                // k1_queue_answered: the agent leg goes first, then AgentComplete.
                self.leave(x);
                self.hangup_ev("SoftHangupRequest", x, Some(16), false);
                self.leave(p);
                if let Some(b) = b {
                    self.destroy(b);
                }
                let agent = self.c(p).clone();
                self.hangup_final(p, 16);
                self.agent_complete(x, &agent, "caller");
                self.hangup_final(x, cause);
            } else {
                // a_inbound_answered.
                self.clear_bridge_vars(x, p);
                self.leave(x);
                self.dial_time_vars(x);
                self.hangup_ev("SoftHangupRequest", x, Some(16), false);
                let dev = self.device(x);
                if let Some(d) = &dev {
                    self.devstate(d, "NOT_INUSE");
                }
                self.leave(p);
                if let Some(b) = b {
                    self.destroy(b);
                }
                let answered = self.c(x).inbound.as_ref().and_then(|i| i.answer_epoch);
                let start = self.c(x).inbound.as_ref().map(|i| i.start_epoch);
                self.hangup_final_keep(x, cause);
                if let (Some(start), Some(answer)) = (start, answered) {
                    let end = self.epoch();
                    self.inbound_cdr(x, (start, Some(answer), end), "ANSWERED", false);
                }
                self.remove(x);
                if let Some(d) = self.device(p) {
                    self.devstate(&d, "NOT_INUSE");
                }
                if self.c(p).owner {
                    self.end_dialplan(p, 16);
                } else {
                    self.hangup_final(p, 16);
                }
            }
        } else {
            // h1_click_to_call: the dialled side hangs up, the dialplan side goes on and ends.
            self.clear_bridge_vars(x, p);
            self.leave(x);
            let agent = self.c(x).clone();
            self.hangup_final(x, cause);
            self.leave(p);
            if let Some(b) = b {
                self.destroy(b);
            }
            if self
                .c(p)
                .queue
                .as_ref()
                .is_some_and(|q| q.connected.is_some())
            {
                self.agent_complete(p, &agent, "agent");
            }
            if self.c(p).owner {
                self.end_dialplan(p, 16);
            } else {
                self.hangup_final(p, 16);
            }
        }
        if let Some(pp) = p_partner {
            self.hangup(pp, 16, HangupHow::Remote);
        }
    }

    /// `Hangup` event without forgetting the channel yet (its Cdr follows).
    fn hangup_final_keep(&mut self, id: ChanId, cause: u16) {
        self.spy_stops_for(id);
        self.hangup_ev("Hangup", id, Some(cause), true);
    }

    fn device(&self, id: ChanId) -> Option<String> {
        match self.c(id).tech {
            Tech::Trunk => Some("SIP/trunk".to_owned()),
            Tech::Phone if !self.c(id).ext.is_empty() => Some(format!("SIP/{}", self.c(id).ext)),
            _ => None,
        }
    }

    fn clear_bridge_vars(&mut self, x: ChanId, p: ChanId) {
        for id in [x, p] {
            self.varset(id, "BRIDGEPEER", "");
            self.varset(id, "BRIDGEPVTCALLID", "");
        }
    }

    /// Dial's timing variables on the caller when its bridge ends.
    fn dial_time_vars(&mut self, x: ChanId) {
        let Some(info) = self.c(x).inbound.clone() else {
            return;
        };
        let Some(answered) = info.answered_at else {
            return;
        };
        let talk_ms = self.now.saturating_sub(answered).as_millis();
        let dialed_ms = self.now.saturating_sub(info.dial_started).as_millis();
        self.varset(x, "ANSWEREDTIME", &(talk_ms / 1000).to_string());
        self.varset(x, "ANSWEREDTIME_MS", &talk_ms.to_string());
        self.varset(x, "DIALEDTIME", &(dialed_ms / 1000).to_string());
        self.varset(x, "DIALEDTIME_MS", &dialed_ms.to_string());
        self.varset(x, "DIALSTATUS", "ANSWER");
    }

    /// A dialler hangs up while its callees ring: `DialEnd CANCEL`, callees hung up.
    fn cancel_dials(&mut self, x: ChanId, cause: u16) {
        let callees = self.c(x).dialing.clone();
        let queue = self.c(x).queue.is_some();
        if queue {
            self.moh_stop(x);
        }
        for s in callees {
            if !self.alive(s) {
                continue;
            }
            self.dial_ev("DialEnd", Some(x), s, ("DialStatus", "CANCEL"));
            if queue {
                self.dial_ev("DialEnd", Some(x), s, ("DialStatus", "CANCEL"));
            }
            self.set(s, |c| c.dial = None);
            self.hangup_final(s, 16);
        }
        self.set(x, |c| c.dialing.clear());
        if queue {
            self.queue_abandon(x);
        } else {
            self.end_dialplan(x, cause);
        }
    }
}

/// The Dial variables cleared before each Dial (`a_inbound_answered`).
const DIAL_VARS: [&str; 11] = [
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
];
