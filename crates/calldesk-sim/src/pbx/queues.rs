//! The lab's queues (`conf/queues.conf`): `support` (101, 102, ringall) and `sales` (201-248,
//! rrmemory); queue calls (`k1_queue_answered`, abandoned calls as in the busy hour) and the
//! member-management actions (`k3_queue_member_mgmt`).

use super::{Chan, ChanId, DialLeg, DialPurpose, Ev, Pbx, QueueCaller, Tech, Timer, clean};
use crate::scenario::{ScenarioCall, ScenarioKind, civil, extension_name};

#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub interface: String,
    pub name: String,
    pub dynamic: bool,
    pub penalty: u32,
    pub paused: bool,
    pub reason: String,
    pub last_pause: u64,
    pub login_time: u64,
    pub calls_taken: u32,
    pub last_call: u64,
    pub ringinuse: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Queue {
    pub name: String,
    pub strategy: &'static str,
    pub members: Vec<Member>,
    pub callers: Vec<ChanId>,
    pub completed: u32,
    pub abandoned: u32,
    pub holdtime_total: u64,
    pub talktime_total: u64,
    pub rr_next: usize,
}

fn member(ext: &str, epoch: u64) -> Member {
    Member {
        interface: format!("SIP/{ext}"),
        name: extension_name(ext),
        dynamic: false,
        penalty: 0,
        paused: false,
        reason: String::new(),
        last_pause: 0,
        login_time: epoch,
        calls_taken: 0,
        last_call: 0,
        ringinuse: false,
    }
}

pub(crate) fn lab_queues(epoch: u64) -> Vec<Queue> {
    let q = |name: &str, strategy, members: Vec<Member>| Queue {
        name: name.to_owned(),
        strategy,
        members,
        callers: Vec::new(),
        completed: 0,
        abandoned: 0,
        holdtime_total: 0,
        talktime_total: 0,
        rr_next: 0,
    };
    vec![
        q(
            "support",
            "ringall",
            vec![member("101", epoch), member("102", epoch)],
        ),
        q(
            "sales",
            "rrmemory",
            (201..=248).map(|e| member(&e.to_string(), epoch)).collect(),
        ),
    ]
}

/// The queue a DID leads to.
fn queue_for_did(did: &str) -> &'static str {
    match did {
        "5001" => "sales",
        _ => "support",
    }
}

impl Pbx {
    fn queue_idx(&self, name: &str) -> Option<usize> {
        self.queues.iter().position(|q| q.name == name)
    }

    /// Device state of an interface as a `QueueMemberStatus` number: 1 free, 2 in use, 6 ringing.
    fn device_status(&self, interface: &str) -> u8 {
        let ext = interface.strip_prefix("SIP/").unwrap_or(interface);
        let mut status = 1;
        for c in self.channels.values() {
            if c.tech == Tech::Phone && c.ext == ext {
                if c.state == 6 {
                    return 2;
                }
                status = 6;
            }
        }
        status
    }

    pub(crate) fn member_ev(&self, event: &str, q: usize, m: usize, list_item: bool) -> Ev {
        let (Some(queue), Some(mem)) = (
            self.queues.get(q),
            self.queues.get(q).and_then(|q| q.members.get(m)),
        ) else {
            return Ev::plain(event);
        };
        let in_call = self.channels.values().any(|c| {
            c.member_of
                .as_ref()
                .is_some_and(|(qn, i)| *qn == queue.name && *i == mem.interface)
                && c.state == 6
        });
        let status = self.device_status(&mem.interface).to_string();
        let membership = if mem.dynamic { "dynamic" } else { "static" };
        if list_item {
            return Ev::plain(event)
                .h("Queue", &queue.name)
                .h("Name", &mem.name)
                .h("Location", &mem.interface)
                .h("StateInterface", &mem.interface)
                .h("Membership", membership)
                .h("Penalty", &mem.penalty.to_string())
                .h("CallsTaken", &mem.calls_taken.to_string())
                .h("LastCall", &mem.last_call.to_string())
                .h("LastPause", &mem.last_pause.to_string())
                .h("LoginTime", &mem.login_time.to_string())
                .h("InCall", if in_call { "1" } else { "0" })
                .h("Status", &status)
                .h("Paused", if mem.paused { "1" } else { "0" })
                .h("PausedReason", &mem.reason)
                .h("Wrapuptime", "0");
        }
        Ev::event(event, "agent,all")
            .h("Queue", &queue.name)
            .h("MemberName", &mem.name)
            .h("Interface", &mem.interface)
            .h("StateInterface", &mem.interface)
            .h("Membership", membership)
            .h("Penalty", &mem.penalty.to_string())
            .h("CallsTaken", &mem.calls_taken.to_string())
            .h("LastCall", &mem.last_call.to_string())
            .h("LastPause", &mem.last_pause.to_string())
            .h("LoginTime", &mem.login_time.to_string())
            .h("InCall", if in_call { "1" } else { "0" })
            .h("Status", &status)
            .h("Paused", if mem.paused { "1" } else { "0" })
            .h("PausedReason", &mem.reason)
            .h("Ringinuse", if mem.ringinuse { "1" } else { "0" })
            .h("Wrapuptime", "0")
    }

    fn member_status(&mut self, queue: &str, interface: &str) {
        if let Some(q) = self.queue_idx(queue)
            && let Some(m) = self.queues[q]
                .members
                .iter()
                .position(|m| m.interface == interface)
        {
            let ev = self.member_ev("QueueMemberStatus", q, m, false);
            self.push(ev);
        }
    }

    /// `QueueMemberStatus` for the member a channel belongs to (after its state changed).
    pub(crate) fn member_status_of_chan(&mut self, id: ChanId, _gone: bool) {
        if let Some((q, i)) = self.c(id).member_of.clone() {
            self.member_status(&q, &i);
        }
    }

    /// A scripted call to a queue DID (`k1_queue_answered`).
    pub(crate) fn queue_call(&mut self, call: &ScenarioCall) -> String {
        let caller = clean(&call.caller);
        let did = clean(&call.did);
        let queue = queue_for_did(&did).to_owned();
        let t = self.new_chan(Tech::Trunk, "trunk");
        let uid = self.c(t).uniqueid.clone();
        self.set(t, |c| {
            c.cid_num = caller.clone();
            c.cid_name = "<unknown>".to_owned();
            c.context = "from-trunk".to_owned();
            c.exten = did.clone();
            c.ext = did.clone();
            c.owner = true;
            c.direction = "inbound";
        });
        self.chan_ev("Newchannel", t);
        self.set_state(t, 4);
        self.newexten(
            t,
            "NoOp",
            &format!("Inbound call from {caller} to DID {did}"),
        );
        let (y, mo, d, h, mi, se) = civil(self.epoch());
        let rec = format!(
            "/srv/asterisk/var/recordings/in-{y:04}{mo:02}{d:02}-{h:02}{mi:02}{se:02}-{uid}.wav"
        );
        self.set(t, |c| c.priority = 5);
        self.newexten(t, "MixMonitor", &format!("{rec},b"));
        self.mixmonitor_start(t, &rec);
        let goto = if queue == "sales" {
            "1?queue,sales,1"
        } else {
            "1?queue,support,1"
        };
        self.set(t, |c| c.priority = if queue == "sales" { 7 } else { 6 });
        self.newexten(t, "GotoIf", goto);
        let q = queue.clone();
        self.set(t, |c| {
            c.context = "queue".to_owned();
            c.exten = q;
            c.priority = 2;
        });
        self.newexten(t, "Answer", "");
        self.set_state(t, 6);
        self.set(t, |c| c.priority = 4);
        self.newexten(t, "Queue", &format!("{queue},tTkK,,,90"));
        let Some(qi) = self.queue_idx(&queue) else {
            return uid;
        };
        self.queues[qi].callers.push(t);
        let position = self.queues[qi].callers.len() as u32;
        let now = self.now;
        self.set(t, |c| {
            c.queue = Some(QueueCaller {
                queue: queue.clone(),
                joined: now,
                position,
                connected: None,
                ring_started: now,
                answer_ext: clean(&call.extension),
            })
        });
        let ev = Ev::event("QueueCallerJoin", "agent,all")
            .snap(self.c(t), "")
            .h("Queue", &queue)
            .h("Position", &position.to_string())
            .h("Count", &position.to_string());
        self.push(ev);
        self.moh_start(t);
        // Members to ring: every free, unpaused member (ringall), or one (rrmemory).
        let free: Vec<(usize, String)> = self.queues[qi]
            .members
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.paused && self.device_status(&m.interface) == 1)
            .map(|(i, m)| (i, m.interface.clone()))
            .collect();
        let ring: Vec<(usize, String)> = if self.queues[qi].strategy == "ringall" {
            free
        } else {
            let wanted = format!("SIP/{}", clean(&call.extension));
            let pick = free
                .iter()
                .find(|(_, i)| *i == wanted)
                .or_else(|| {
                    let next = self.queues[qi].rr_next;
                    free.iter().find(|(i, _)| *i >= next).or(free.first())
                })
                .cloned();
            if let Some((i, _)) = &pick {
                self.queues[qi].rr_next = i + 1;
            }
            pick.into_iter().collect()
        };
        for (mi, interface) in ring {
            self.ring_member(t, qi, mi, &interface);
        }
        let answer = call.kind == ScenarioKind::QueueAnswered;
        self.schedule(call.ring, Timer::QueueOutcome { caller: t, answer });
        self.queue_talk.insert(t, call.talk);
        uid
    }

    fn ring_member(&mut self, t: ChanId, qi: usize, mi: usize, interface: &str) {
        let ext = interface
            .strip_prefix("SIP/")
            .unwrap_or(interface)
            .to_owned();
        let queue = self.queues[qi].name.clone();
        let m = self.new_chan(Tech::Phone, &ext);
        let (link, key) = (self.c(t).linkedid.clone(), self.c(t).linked_key);
        let (n, name) = (ext.clone(), extension_name(&ext));
        self.set(m, |c| {
            c.linkedid = link;
            c.linked_key = key;
            c.cid_num = n;
            c.cid_name = name;
        });
        self.chan_ev("Newchannel", m);
        let (tn, tname) = (self.c(t).cid_num.clone(), self.c(t).cid_name.clone());
        let q2 = queue.clone();
        let iface = interface.to_owned();
        self.set(m, |c| {
            c.exten = q2.clone();
            c.cl_num = tn;
            c.cl_name = tname;
            c.app = "AppQueue".to_owned();
            c.app_data = "(Outgoing Line)".to_owned();
            c.member_of = Some((q2, iface));
            c.dial = Some(DialLeg {
                caller: Some(t),
                purpose: DialPurpose::Queue,
            });
        });
        self.set(t, |c| c.dialing.push(m));
        let member_name = self.queues[qi]
            .members
            .get(mi)
            .map(|m| m.name.clone())
            .unwrap_or_default();
        self.set_state_silent(m, 5);
        self.member_status(&queue, interface);
        self.set_state_silent(m, 0);
        let ev = Ev::event("AgentCalled", "agent,all")
            .snap(self.c(t), "")
            .snap(self.c(m), "Dest")
            .h("Queue", &queue)
            .h("Interface", interface)
            .h("MemberName", &member_name);
        self.push(ev);
        self.dial_ev("DialBegin", Some(t), m, ("DialString", interface));
        self.set_state(m, 5);
    }

    fn set_state_silent(&mut self, id: ChanId, state: u8) {
        self.set(id, |c| c.state = state);
    }

    /// The ring time of a scripted queue call is over.
    pub(crate) fn queue_outcome(&mut self, caller: ChanId, answer: bool) {
        let Some(qc) = self.c(caller).queue.clone() else {
            return;
        };
        if qc.connected.is_some() {
            return;
        }
        let ringing = self.c(caller).dialing.clone();
        if answer && !ringing.is_empty() {
            let pick = ringing
                .iter()
                .copied()
                .find(|m| self.c(*m).ext == qc.answer_ext)
                .or(ringing.first().copied());
            if let Some(m) = pick {
                self.queue_member_answers(m);
                return;
            }
        }
        self.hangup(caller, 0, super::HangupHow::Remote);
    }

    /// First member to answer gets the caller; the others are cancelled (cause 26).
    pub(crate) fn queue_member_answers(&mut self, m: ChanId) {
        let Some(caller) = self.c(m).dial.as_ref().and_then(|d| d.caller) else {
            return;
        };
        let Some(qc) = self.c(caller).queue.clone() else {
            return;
        };
        let Some((queue, interface)) = self.c(m).member_of.clone() else {
            return;
        };
        self.set(m, |c| c.dial = None);
        self.set(caller, |c| c.dialing.retain(|d| *d != m));
        self.set_state(m, 6);
        self.member_status(&queue, &interface);
        self.dial_ev("DialEnd", Some(caller), m, ("DialStatus", "ANSWER"));
        let others = self.c(caller).dialing.clone();
        let (mn, mname) = (self.c(m).cid_num.clone(), self.c(m).cid_name.clone());
        for (i, o) in others.into_iter().enumerate() {
            self.dial_ev("DialEnd", Some(caller), o, ("DialStatus", "CANCEL"));
            if i == 0 {
                self.set(caller, |c| {
                    c.cl_num = mn.clone();
                    c.cl_name = mname.clone();
                });
            }
            self.dial_ev("DialEnd", Some(caller), o, ("DialStatus", "CANCEL"));
            self.set(o, |c| c.dial = None);
            self.hangup_final(o, 26);
        }
        self.set(caller, |c| {
            c.dialing.clear();
            c.cl_num = mn;
            c.cl_name = mname;
        });
        self.moh_stop(caller);
        let (cn, cname) = (
            self.c(caller).cid_num.clone(),
            self.c(caller).cid_name.clone(),
        );
        self.set(m, |c| {
            c.cl_num = cn;
            c.cl_name = cname;
        });
        let qi = self.queue_idx(&queue);
        if let Some(qi) = qi {
            self.queues[qi].callers.retain(|c| *c != caller);
        }
        let count = qi.map(|q| self.queues[q].callers.len()).unwrap_or(0);
        let ev = Ev::event("QueueCallerLeave", "agent,all")
            .snap(self.c(caller), "")
            .h("Queue", &queue)
            .h("Position", &qc.position.to_string())
            .h("Count", &count.to_string());
        self.push(ev);
        let hold = self.now.saturating_sub(qc.joined).as_secs();
        let ring = self.now.saturating_sub(qc.ring_started).as_secs();
        let now = self.now;
        self.set(caller, |c| {
            if let Some(q) = c.queue.as_mut() {
                q.connected = Some((m, now));
            }
        });
        let member_name = self.member_name(&queue, &interface);
        let ev = Ev::event("AgentConnect", "agent,all")
            .snap(self.c(caller), "")
            .snap(self.c(m), "Dest")
            .h("Queue", &queue)
            .h("Interface", &interface)
            .h("MemberName", &member_name)
            .h("HoldTime", &hold.to_string())
            .h("RingTime", &ring.to_string());
        self.push(ev);
        let b = self.basic_bridge();
        self.enter(b, m);
        self.enter(b, caller);
        let epoch = self.epoch();
        if let Some(qi) = qi {
            self.queues[qi].holdtime_total += hold;
            if let Some(mem) = self.queues[qi]
                .members
                .iter_mut()
                .find(|x| x.interface == interface)
            {
                mem.calls_taken += 1;
                mem.last_call = epoch;
            }
        }
        let talk = self.queue_talk.get(&caller).copied();
        if let Some(talk) = talk {
            self.schedule(talk, Timer::Bye { chan: caller });
        }
    }

    fn member_name(&self, queue: &str, interface: &str) -> String {
        self.queue_idx(queue)
            .and_then(|q| {
                self.queues[q]
                    .members
                    .iter()
                    .find(|m| m.interface == interface)
            })
            .map(|m| m.name.clone())
            .unwrap_or_default()
    }

    /// `AgentComplete` for a queue caller whose call with `agent` (snapshot) ended.
    pub(crate) fn agent_complete(&mut self, caller: ChanId, agent: &Chan, reason: &str) {
        let Some(qc) = self.c(caller).queue.clone() else {
            return;
        };
        let Some((_, connected_at)) = qc.connected else {
            return;
        };
        let interface = agent
            .member_of
            .as_ref()
            .map(|(_, i)| i.clone())
            .unwrap_or_default();
        let hold = connected_at.saturating_sub(qc.joined).as_secs();
        let talk = self.now.saturating_sub(connected_at).as_secs();
        let member_name = self.member_name(&qc.queue, &interface);
        let ev = Ev::event("AgentComplete", "agent,all")
            .snap(self.c(caller), "")
            .snap(agent, "Dest")
            .h("Queue", &qc.queue)
            .h("Interface", &interface)
            .h("MemberName", &member_name)
            .h("HoldTime", &hold.to_string())
            .h("TalkTime", &talk.to_string())
            .h("Reason", reason);
        self.push(ev);
        if let Some(qi) = self.queue_idx(&qc.queue) {
            self.queues[qi].completed += 1;
            self.queues[qi].talktime_total += talk;
        }
        self.set(caller, |c| c.queue = None);
    }

    /// A queue caller gives up (`QueueCallerAbandon`, cause 0).
    pub(crate) fn queue_abandon(&mut self, x: ChanId) {
        let Some(qc) = self.c(x).queue.clone() else {
            self.end_dialplan(x, 0);
            return;
        };
        self.moh_stop(x);
        let hold = self.now.saturating_sub(qc.joined).as_secs();
        let qi = self.queue_idx(&qc.queue);
        let position = qi
            .and_then(|q| self.queues[q].callers.iter().position(|c| *c == x))
            .map(|p| p as u32 + 1)
            .unwrap_or(qc.position);
        let ev = Ev::event("QueueCallerAbandon", "agent,all")
            .snap(self.c(x), "")
            .h("Queue", &qc.queue)
            .h("Position", &position.to_string())
            .h("OriginalPosition", &qc.position.to_string())
            .h("HoldTime", &hold.to_string());
        self.push(ev);
        if let Some(qi) = qi {
            self.queues[qi].callers.retain(|c| *c != x);
            self.queues[qi].abandoned += 1;
        }
        let count = qi.map(|q| self.queues[q].callers.len()).unwrap_or(0);
        let ev = Ev::event("QueueCallerLeave", "agent,all")
            .snap(self.c(x), "")
            .h("Queue", &qc.queue)
            .h("Position", &position.to_string())
            .h("Count", &count.to_string());
        self.push(ev);
        self.set(x, |c| c.queue = None);
        self.end_dialplan(x, 0);
    }

    // ----- member management actions -------------------------------------------------------------

    /// `QueuePause`: Ok(paused?) or the error text.
    pub(crate) fn queue_pause(
        &mut self,
        interface: &str,
        queue: Option<&str>,
        paused: bool,
        reason: &str,
    ) -> bool {
        let epoch = self.epoch();
        let mut hits = Vec::new();
        for (qi, q) in self.queues.iter_mut().enumerate() {
            if queue.is_some_and(|n| n != q.name) {
                continue;
            }
            if let Some(mi) = q.members.iter().position(|m| m.interface == interface) {
                let m = &mut q.members[mi];
                m.paused = paused;
                m.reason = if paused { clean(reason) } else { String::new() };
                if paused {
                    m.last_pause = epoch;
                }
                hits.push((qi, mi, q.name.clone()));
            }
        }
        for (qi, mi, name) in &hits {
            self.devstate(
                &format!("Queue:{name}_pause_{interface}"),
                if paused { "INUSE" } else { "NOT_INUSE" },
            );
            let ev = self.member_ev("QueueMemberPause", *qi, *mi, false);
            self.push(ev);
        }
        !hits.is_empty()
    }

    /// `QueueAdd`: Err(message) on failure.
    pub(crate) fn queue_add(
        &mut self,
        queue: &str,
        interface: &str,
        penalty: u32,
        paused: bool,
        name: Option<&str>,
    ) -> Result<(), &'static str> {
        let Some(qi) = self.queue_idx(queue) else {
            return Err("Unable to add interface to queue: No such queue");
        };
        if self.queues[qi]
            .members
            .iter()
            .any(|m| m.interface == interface)
        {
            return Err("Unable to add interface: Already there");
        }
        let epoch = self.epoch();
        let ext = interface.strip_prefix("SIP/").unwrap_or(interface);
        let mut m = member(ext, epoch);
        m.interface = clean(interface);
        m.name = name.map(clean).unwrap_or_else(|| m.interface.clone());
        m.dynamic = true;
        m.penalty = penalty;
        m.paused = paused;
        self.queues[qi].members.push(m);
        let mi = self.queues[qi].members.len() - 1;
        self.devstate(
            &format!("Queue:{queue}_pause_{interface}"),
            if paused { "INUSE" } else { "NOT_INUSE" },
        );
        let ev = self.member_ev("QueueMemberAdded", qi, mi, false);
        self.push(ev);
        Ok(())
    }

    /// `QueueRemove`: Err(message) on failure.
    pub(crate) fn queue_remove(
        &mut self,
        queue: &str,
        interface: &str,
    ) -> Result<(), &'static str> {
        let Some(qi) = self.queue_idx(queue) else {
            return Err("Unable to remove interface from queue: No such queue");
        };
        let Some(mi) = self.queues[qi]
            .members
            .iter()
            .position(|m| m.interface == interface)
        else {
            return Err("Unable to remove interface: Not there");
        };
        if !self.queues[qi].members[mi].dynamic {
            return Err("Unable to remove interface: Not dynamic");
        }
        let ev = self.member_ev("QueueMemberRemoved", qi, mi, false);
        self.push(ev);
        self.queues[qi].members.remove(mi);
        Ok(())
    }

    /// `QueueStatus` items.
    pub(crate) fn queue_status_items(&self, queue: Option<&str>) -> Vec<Ev> {
        let mut items = Vec::new();
        for (qi, q) in self.queues.iter().enumerate() {
            if queue.is_some_and(|n| n != q.name) {
                continue;
            }
            let hold = q
                .holdtime_total
                .checked_div(u64::from(q.completed))
                .unwrap_or(0);
            let talk = q
                .talktime_total
                .checked_div(u64::from(q.completed))
                .unwrap_or(0);
            items.push(
                Ev::plain("QueueParams")
                    .h("Queue", &q.name)
                    .h("Max", "0")
                    .h("Strategy", q.strategy)
                    .h("Calls", &q.callers.len().to_string())
                    .h("Holdtime", &hold.to_string())
                    .h("TalkTime", &talk.to_string())
                    .h("Completed", &q.completed.to_string())
                    .h("Abandoned", &q.abandoned.to_string())
                    .h("ServiceLevel", "0")
                    .h("ServicelevelPerf", "0.0")
                    .h("ServicelevelPerf2", "0.0")
                    .h("Weight", "0"),
            );
            for mi in (0..q.members.len()).rev() {
                items.push(self.member_ev("QueueMember", qi, mi, true));
            }
            for (pos, c) in q.callers.iter().enumerate() {
                let ch = self.c(*c);
                let wait = ch
                    .queue
                    .as_ref()
                    .map(|x| self.now.saturating_sub(x.joined).as_secs())
                    .unwrap_or(0);
                items.push(
                    Ev::plain("QueueEntry")
                        .h("Queue", &q.name)
                        .h("Position", &(pos + 1).to_string())
                        .h("Channel", &ch.name)
                        .h("Uniqueid", &ch.uniqueid)
                        .h("CallerIDNum", &ch.cid_num)
                        .h("CallerIDName", &ch.cid_name)
                        .h("ConnectedLineNum", &ch.cl_num)
                        .h("ConnectedLineName", &ch.cl_name)
                        .h("Wait", &wait.to_string())
                        .h("Priority", "0"),
                );
            }
        }
        items
    }

    /// `QueueSummary` items.
    pub(crate) fn queue_summary_items(&self, queue: Option<&str>) -> Vec<Ev> {
        self.queues
            .iter()
            .filter(|q| queue.is_none_or(|n| n == q.name))
            .map(|q| {
                let logged = q.members.len();
                let available = q
                    .members
                    .iter()
                    .filter(|m| !m.paused && self.device_status(&m.interface) == 1)
                    .count();
                let hold = q
                    .holdtime_total
                    .checked_div(u64::from(q.completed))
                    .unwrap_or(0);
                let talk = q
                    .talktime_total
                    .checked_div(u64::from(q.completed))
                    .unwrap_or(0);
                Ev::plain("QueueSummary")
                    .h("Queue", &q.name)
                    .h("LoggedIn", &logged.to_string())
                    .h("Available", &available.to_string())
                    .h("Callers", &q.callers.len().to_string())
                    .h("HoldTime", &hold.to_string())
                    .h("TalkTime", &talk.to_string())
                    .h("LongestHoldTime", "0")
            })
            .collect()
    }
}
