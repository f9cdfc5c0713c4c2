//! Call features: Redirect, BlindTransfer, attended transfer, parking, ChanSpy, MixMonitor.

use std::time::Duration;

use super::flows::Target;
use super::{Atxfer, Chan, ChanId, DialLeg, DialPurpose, Ev, HangupHow, Pbx, Tech, Timer};

impl Pbx {
    /// Sends `x` to `context`/`exten` (Redirect, BlindTransfer): leaves its bridge (the old peer
    /// is hung up, `d1_blind_transfer_redirect`) and runs the lab dialplan there.
    pub(crate) fn redirect(&mut self, x: ChanId, context: &str, exten: &str, priority: u32) {
        let (context, exten) = (context.to_owned(), exten.to_owned());
        self.set(x, |c| {
            c.context = context.clone();
            c.exten = exten.clone();
            c.priority = priority;
        });
        self.detach_from_bridge(x);
        self.set(x, |c| c.owner = true);
        self.goto(x, &context, &exten);
    }

    /// A dual Redirect: `x` and `y` leave their bridge together (neither is hung up) and each
    /// runs the dialplan at its own place.
    pub(crate) fn dual_redirect(&mut self, x: (ChanId, &str, &str), y: (ChanId, &str, &str)) {
        let bridge = self.bridge_of(x.0);
        for (id, context, exten) in [x, y] {
            self.set(id, |c| {
                c.context = context.to_owned();
                c.exten = exten.to_owned();
                c.priority = 1;
                c.owner = true;
            });
            self.leave(id);
        }
        if let Some(b) = bridge
            && self.bridges.get(&b).is_some_and(|b| b.members.is_empty())
        {
            self.destroy(b);
        }
        for (id, context, exten) in [x, y] {
            self.goto(id, context, exten);
        }
    }

    /// AMI `Bridge`: both channels leave what they run (music on hold stops) and meet in a new
    /// basic bridge.
    pub(crate) fn bridge_two(&mut self, one: ChanId, two: ChanId) {
        for id in [one, two] {
            self.moh_stop(id);
            self.detach_from_bridge(id);
        }
        let b = self.basic_bridge();
        self.enter(b, one);
        self.enter(b, two);
    }

    /// `x` leaves its two-party bridge; the peer it leaves behind is hung up (or, if it runs
    /// its own dialplan, goes on with it).
    fn detach_from_bridge(&mut self, x: ChanId) {
        let Some(b) = self.bridge_of(x) else {
            return;
        };
        let peers = self.peers(x);
        self.leave(x);
        for p in peers {
            self.leave(p);
            let partner = self.local_partner(p);
            if self.c(p).owner {
                self.end_dialplan(p, 16);
            } else {
                self.hangup_final(p, 16);
            }
            if let Some(pp) = partner {
                self.hangup(pp, 16, HangupHow::Remote);
            }
        }
        if self.bridges.get(&b).is_some_and(|b| b.members.is_empty()) {
            self.destroy(b);
        }
    }

    /// Runs the lab dialplan (`[from-internal]`, `[spy]`) for a channel that is already up.
    pub(crate) fn goto(&mut self, x: ChanId, context: &str, exten: &str) {
        let first = exten.chars().next().unwrap_or('x');
        let rest: String = exten.chars().skip(1).collect();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if matches!(first, 'L' | 'W' | 'B') && digits(&rest) {
            let opts = match first {
                'W' => "bqwE",
                'B' => "BbqE",
                _ => "bqE",
            };
            self.set(x, |c| c.priority = 2);
            self.chan_spy(x, &format!("SIP/{rest},{opts}"));
        } else if first == '0' && digits(exten) {
            self.newexten(x, "Dial", &format!("SIP/trunk/{exten},30,tT"));
            self.dial(
                Some(x),
                Target::Trunk(exten.to_owned()),
                DialPurpose::Bridge,
                Duration::from_secs(30),
            );
        } else if exten.len() == 3 && digits(exten) && (first == '1' || first == '2') {
            let tt = if context == "from-trunk" {
                "tTkK"
            } else {
                "tT"
            };
            self.newexten(x, "Dial", &format!("SIP/{exten},20,{tt}"));
            self.dial(
                Some(x),
                Target::Phone(exten.to_owned()),
                DialPurpose::Bridge,
                Duration::from_secs(20),
            );
        } else if let Ok(space @ 701..=720) = exten.parse::<u32>() {
            self.retrieve_parked(x, space);
        } else if context == "calldesk-hold" && (exten == "customer" || exten == "operator") {
            // The hold helper (calldesk-asterisk's `actions` docs): the customer hears music
            // on hold, the operator's leg waits.
            self.newexten(
                x,
                if exten == "customer" {
                    "MusicOnHold"
                } else {
                    "Wait"
                },
                "",
            );
            if exten == "customer" {
                self.moh_start(x);
            }
        } else if exten == "600" || exten == "800" {
            if exten == "800" {
                self.moh_start(x);
            }
        } else {
            self.end_dialplan(x, 16);
        }
    }

    /// AMI `BlindTransfer`: the bridge peer of `t` goes to `context`/`exten`, `t` is hung up.
    /// Returns false if `t` is not in a two-party bridge ("Transfer invalid").
    pub(crate) fn blind_transfer(&mut self, t: ChanId, context: &str, exten: &str) -> bool {
        let peers = self.peers(t);
        let (Some(b), [x]) = (self.bridge_of(t), peers.as_slice()) else {
            return false;
        };
        let x = *x;
        self.set(t, |c| c.held = false);
        self.chan_ev("Unhold", t);
        let Some(bridge) = self.bridges.get(&b) else {
            return false;
        };
        let ev = Ev::event("BlindTransfer", "call,all")
            .h("Result", "Success")
            .snap(self.c(t), "Transferer")
            .snap(self.c(x), "Transferee")
            .bridge(bridge, "")
            .h("IsExternal", "Yes")
            .h("Context", context)
            .h("Extension", exten);
        self.push(ev);
        self.leave(t);
        self.hangup_final(t, 16);
        self.leave(x);
        self.destroy(b);
        let (context, exten) = (context.to_owned(), exten.to_owned());
        self.set(x, |c| {
            c.context = context.clone();
            c.exten = exten.clone();
            c.priority = 1;
            c.owner = true;
        });
        self.goto(x, &context, &exten);
        true
    }

    /// AMI `Atxfer` on transferer `t` (`e_attended_transfer`): DTMF `*2` and the digits,
    /// `Hold`/MoH, a Local pair into a consultation bridge, the target dialled through it.
    /// Returns false if `t` is not in a two-party bridge.
    pub(crate) fn atxfer_start(&mut self, t: ChanId, context: &str, exten: &str) -> bool {
        let peers = self.peers(t);
        let (Some(orig), [x]) = (self.bridge_of(t), peers.as_slice()) else {
            return false;
        };
        let x = *x;
        self.dtmf(t, '*');
        self.dtmf(t, '2');
        self.set(t, |c| c.held = true);
        self.chan_ev("Hold", t);
        self.moh_start(x);
        for d in exten.chars() {
            self.dtmf(t, d);
        }
        let (one, two) = self.new_local_pair(exten, context);
        let (linkedid, key) = (self.c(t).linkedid.clone(), self.c(t).linked_key);
        for l in [one, two] {
            let linkedid = linkedid.clone();
            self.set(l, |c| {
                c.linkedid = linkedid;
                c.linked_key = key;
            });
        }
        self.chan_ev("Newchannel", one);
        self.chan_ev("Newchannel", two);
        let consult = self.basic_bridge();
        let (t_num, t_name) = (self.c(t).cid_num.clone(), self.c(t).cid_name.clone());
        self.set(two, |c| {
            c.cid_num = t_num.clone();
            c.cid_name = t_name.clone();
            c.owner = true;
        });
        self.local_bridge_ev(one, two, context, exten);
        self.set(one, |c| {
            c.cl_num = t_num;
            c.cl_name = t_name;
            c.dial = Some(DialLeg {
                caller: None,
                purpose: DialPurpose::Consult,
            });
        });
        self.enter(consult, one);
        self.leave(t);
        self.enter(consult, t);
        self.set(t, |c| {
            c.atxfer = Some(Atxfer {
                transferee: x,
                orig_bridge: orig,
                consult_bridge: consult,
                local_one: one,
                local_two: two,
            })
        });
        let ext = exten.to_owned();
        self.dial(
            Some(two),
            Target::Phone(ext),
            DialPurpose::Consult,
            Duration::from_secs(20),
        );
        true
    }

    fn dtmf(&mut self, id: ChanId, digit: char) {
        let ev = Ev::event("DTMFEnd", "dtmf,all")
            .snap(self.c(id), "")
            .h("Digit", &digit.to_string())
            .h("DurationMs", "0")
            .h("Direction", "Received");
        self.push(ev);
    }

    pub(crate) fn local_bridge_ev(&mut self, one: ChanId, two: ChanId, context: &str, exten: &str) {
        let ev = Ev::event("LocalBridge", "call,all")
            .snap(self.c(one), "LocalOne")
            .snap(self.c(two), "LocalTwo")
            .h("Context", context)
            .h("Exten", exten)
            .h("LocalOptimization", "Yes");
        self.push(ev);
    }

    /// The target answered the consultation: the transferer now talks to it.
    pub(crate) fn consult_answered(&mut self, one: ChanId) {
        let Some(t) = self
            .channels
            .values()
            .find(|c| c.atxfer.as_ref().is_some_and(|a| a.local_one == one))
            .map(|c| c.id)
        else {
            return;
        };
        let (n, name) = (self.c(one).cid_num.clone(), self.c(one).cid_name.clone());
        self.set(t, |c| {
            c.cl_num = n;
            c.cl_name = name;
        });
    }

    /// The consultation leg did not connect: the transferer goes back to the transferee.
    pub(crate) fn consult_failed(&mut self, two: ChanId) {
        let Some(t) = self
            .channels
            .values()
            .find(|c| c.atxfer.as_ref().is_some_and(|a| a.local_two == two))
            .map(|c| c.id)
        else {
            self.end_dialplan(two, 16);
            return;
        };
        let Some(a) = self.c(t).atxfer.clone() else {
            return;
        };
        self.hangup_ev("SoftHangupRequest", two, Some(16), false);
        self.hangup_final(two, 16);
        self.leave(a.local_one);
        self.hangup_final(a.local_one, 16);
        self.leave(t);
        self.destroy(a.consult_bridge);
        self.set(t, |c| {
            c.atxfer = None;
            c.held = false;
        });
        if self.bridges.contains_key(&a.orig_bridge) {
            self.enter(a.orig_bridge, t);
        }
        self.chan_ev("Unhold", t);
        self.moh_stop(a.transferee);
    }

    /// The transferer hangs up during the consultation: the bridges merge, `AttendedTransfer`,
    /// and the Local pair optimizes itself away (`e_attended_transfer`).
    pub(crate) fn atxfer_complete(&mut self, t: ChanId) {
        let Some(a) = self.c(t).atxfer.clone() else {
            return;
        };
        let x = a.transferee;
        let (one, two) = (a.local_one, a.local_two);
        let target_bridge = self.bridge_of(two);
        let Some(target_bridge) = target_bridge else {
            // Not answered yet: the consultation is abandoned and the call ends.
            self.set(t, |c| c.atxfer = None);
            self.hangup(two, 16, HangupHow::Soft);
            self.leave(t);
            if self.bridges.contains_key(&a.consult_bridge) {
                self.destroy(a.consult_bridge);
            }
            self.hangup_final(t, 16);
            self.moh_stop(x);
            self.hangup(x, 16, HangupHow::Soft);
            return;
        };
        let target = self.peers(two).first().copied();
        self.leave(t);
        if let (Some(to), Some(from)) = (
            self.bridges.get(&a.orig_bridge),
            self.bridges.get(&a.consult_bridge),
        ) {
            let ev = Ev::event("BridgeMerge", "call,all")
                .bridge(to, "To")
                .bridge(from, "From");
            self.push(ev);
        }
        self.leave(one);
        self.moh_stop(x);
        let (x_num, x_name) = (self.c(x).cid_num.clone(), self.c(x).cid_name.clone());
        self.enter(a.orig_bridge, one);
        self.set(one, |c| {
            c.cl_num = x_num.clone();
            c.cl_name = x_name.clone();
        });
        if let (Some(orig), Some(second)) = (
            self.bridges.get(&a.orig_bridge),
            self.bridges.get(&a.consult_bridge),
        ) {
            let ev = Ev::event("AttendedTransfer", "call,all")
                .h("Result", "Success")
                .snap(self.c(t), "OrigTransferer")
                .bridge(orig, "Orig")
                .snap(self.c(t), "SecondTransferer")
                .bridge(second, "Second")
                .snap(self.c(x), "Transferee")
                .h("IsExternal", "No")
                .h("DestType", "Bridge")
                .h("DestBridgeUniqueid", &orig.uuid);
            self.push(ev);
        }
        self.destroy(a.consult_bridge);
        self.set(t, |c| c.atxfer = None);
        self.hangup_final(t, 16);
        // Local channel optimization: the transferee takes the ;2 half's place.
        let ev = Ev::event("LocalOptimizationBegin", "call,all")
            .snap(self.c(one), "LocalOne")
            .snap(self.c(two), "LocalTwo")
            .snap(self.c(x), "Source")
            .h("DestUniqueId", &self.c(two).uniqueid)
            .h("Id", "0");
        self.push(ev);
        if let Some(tg) = target {
            let (n, name) = (self.c(tg).cid_num.clone(), self.c(tg).cid_name.clone());
            self.set(x, |c| {
                c.cl_num = n;
                c.cl_name = name;
            });
            self.set(tg, |c| {
                c.cl_num = x_num.clone();
                c.cl_name = x_name.clone();
            });
        }
        self.leave(x);
        self.set(two, |c| {
            c.cid_num = x_num.clone();
            c.cid_name = x_name.clone();
        });
        self.leave(two);
        let swap = self.c(two).uniqueid.clone();
        self.enter_swap(target_bridge, x, Some(&swap));
        let ev = Ev::event("LocalOptimizationEnd", "call,all")
            .snap(self.c(one), "LocalOne")
            .snap(self.c(two), "LocalTwo")
            .h("Success", "No")
            .h("Id", "0");
        self.push(ev);
        self.hangup_ev("SoftHangupRequest", two, Some(16), false);
        self.hangup_ev("HangupRequest", one, Some(16), false);
        self.hangup_final(two, 16);
        self.leave(one);
        if self
            .bridges
            .get(&a.orig_bridge)
            .is_some_and(|b| b.members.is_empty())
        {
            self.destroy(a.orig_bridge);
        }
        self.hangup_final(one, 16);
    }

    // ----- parking ---------------------------------------------------------------------------

    /// AMI `Park` (`f2_park_retrieve`): `x` into the parking lot's holding bridge with MoH, its
    /// peer hung up. Returns the space.
    pub(crate) fn park(&mut self, x: ChanId, parker: Option<ChanId>) -> u32 {
        let space = (701..=720)
            .find(|s| !self.parked.contains_key(s))
            .unwrap_or(720);
        let lot = match self.parking_bridge {
            Some(b) if self.bridges.contains_key(&b) => b,
            _ => {
                let b = self.new_bridge("parking", "holding_bridge", "Parking", "default");
                self.bridge_ev("BridgeCreate", b, None);
                self.parking_bridge = Some(b);
                b
            }
        };
        let peers = self.peers(x);
        let orig = self.bridge_of(x);
        let parker = parker.or(peers.first().copied());
        let parker_dial = parker
            .map(|p| match self.c(p).tech {
                Tech::Trunk => "SIP/trunk".to_owned(),
                _ => format!("SIP/{}", self.c(p).ext),
            })
            .unwrap_or_default();
        self.leave(x);
        self.enter(lot, x);
        self.set(x, |c| c.parked = Some(space));
        self.parked.insert(space, (x, self.now, parker_dial));
        self.parked_ev("ParkedCall", x, None, true);
        self.moh_start(x);
        for p in peers {
            self.leave(p);
            let partner = self.local_partner(p);
            self.hangup_final(p, 16);
            if let Some(pp) = partner {
                self.hangup(pp, 16, HangupHow::Remote);
            }
        }
        if let Some(b) = orig
            && self.bridges.get(&b).is_some_and(|b| b.members.is_empty())
        {
            self.destroy(b);
        }
        space
    }

    /// `ParkedCall`/`UnParkedCall`/`ParkedCallGiveUp` (with `Privilege` when `broadcast`,
    /// as a list item without it).
    pub(crate) fn parked_ev(
        &mut self,
        name: &str,
        x: ChanId,
        retriever: Option<ChanId>,
        broadcast: bool,
    ) {
        let ev = self.parked_item(name, x, retriever, broadcast);
        self.push(ev);
    }

    pub(crate) fn parked_item(
        &self,
        name: &str,
        x: ChanId,
        retriever: Option<ChanId>,
        broadcast: bool,
    ) -> Ev {
        let space = self.c(x).parked.unwrap_or(701);
        let (at, dial) = self
            .parked
            .get(&space)
            .map(|(_, at, d)| (*at, d.clone()))
            .unwrap_or((self.now, String::new()));
        let dur = self.now.saturating_sub(at).as_secs();
        let mut ev = if broadcast {
            Ev::event(name, "call,all")
        } else {
            Ev::plain(name)
        };
        ev = ev.snap(self.c(x), "Parkee");
        if let Some(r) = retriever {
            ev = ev.snap(self.c(r), "Retriever");
        }
        ev.h("ParkerDialString", &dial)
            .h("Parkinglot", "default")
            .h("ParkingSpace", &space.to_string())
            .h("ParkingTimeout", &45u64.saturating_sub(dur).to_string())
            .h("ParkingDuration", &dur.to_string())
    }

    /// `o` dialled a parking space (701-720): it gets the parked call.
    pub(crate) fn retrieve_parked(&mut self, o: ChanId, space: u32) {
        self.set(o, |c| c.owner = true);
        let Some(&(x, _, _)) = self.parked.get(&space) else {
            self.end_dialplan(o, 16);
            return;
        };
        let b = self.basic_bridge();
        self.moh_stop(x);
        self.parked_ev("UnParkedCall", x, Some(o), true);
        self.parked.remove(&space);
        self.set(x, |c| c.parked = None);
        self.leave(x);
        self.enter(b, x);
        self.enter(b, o);
        let (x_num, x_name) = (self.c(x).cid_num.clone(), self.c(x).cid_name.clone());
        let (o_num, o_name) = (self.c(o).cid_num.clone(), self.c(o).cid_name.clone());
        self.set(x, |c| {
            c.cl_num = o_num;
            c.cl_name = o_name;
        });
        self.set(o, |c| {
            c.cl_num = x_num;
            c.cl_name = x_name;
        });
    }

    /// A parked caller hangs up.
    pub(crate) fn parked_gives_up(&mut self, x: ChanId) {
        self.leave(x);
        self.parked_ev("ParkedCallGiveUp", x, None, true);
        if let Some(space) = self.c(x).parked {
            self.parked.remove(&space);
        }
        self.set(x, |c| c.moh = false);
        self.hangup_final(x, 16);
    }

    // ----- ChanSpy ----------------------------------------------------------------------------

    /// `ChanSpy(<prefix>,<options>)` on channel `o` (`g_spy_listen_whisper_barge`).
    pub(crate) fn chan_spy(&mut self, o: ChanId, data: &str) {
        let (prefix, opts) = data.split_once(',').unwrap_or((data, ""));
        let prefix = prefix.trim();
        let bridged_only = opts.contains('b');
        let by_uid = opts.contains('u');
        let spyee = self
            .channels
            .values()
            .filter(|c| c.id != o && c.spying.is_none())
            .filter(|c| !bridged_only || c.bridge.is_some())
            .find(|c| {
                if by_uid {
                    c.uniqueid == prefix || c.name.eq_ignore_ascii_case(prefix)
                } else if prefix.contains('-') {
                    c.name.starts_with(prefix)
                } else {
                    c.name.starts_with(&format!("{prefix}-"))
                }
            })
            .map(|c| c.id);
        self.set(o, |c| {
            c.app = "ChanSpy".to_owned();
            c.app_data = data.to_owned();
        });
        let Some(spyee) = spyee else {
            self.end_dialplan(o, 16);
            return;
        };
        self.set(o, |c| c.spying = Some(spyee));
        let ev = Ev::event("ChanSpyStart", "call,all")
            .snap(self.c(o), "Spyer")
            .snap(self.c(spyee), "Spyee");
        self.push(ev);
    }

    /// Called before `id`'s Hangup: its spy sessions stop.
    pub(crate) fn spy_stops_for(&mut self, id: ChanId) {
        if let Some(spyee) = self.c(id).spying {
            let ev = Ev::event("ChanSpyStop", "call,all")
                .snap(self.c(id), "Spyer")
                .snap(self.c(spyee), "Spyee");
            self.push(ev);
            self.set(id, |c| c.spying = None);
        }
        let spyers: Vec<ChanId> = self
            .channels
            .values()
            .filter(|c| c.spying == Some(id))
            .map(|c| c.id)
            .collect();
        for s in spyers {
            let ev = Ev::event("ChanSpyStop", "call,all")
                .snap(self.c(s), "Spyer")
                .snap(self.c(id), "Spyee");
            self.push(ev);
            self.set(s, |c| c.spying = None);
            // Option E: the spy leaves when its target is gone.
            self.schedule(Duration::ZERO, Timer::SpyEnd { chan: s });
        }
    }

    // ----- MixMonitor ---------------------------------------------------------------------------

    pub(crate) fn mixmonitor_start(&mut self, id: ChanId, file: &str) {
        self.varset(id, "MIXMONITOR_FILENAME", file);
        self.set(id, |c| c.mixmon = true);
        self.chan_ev("MixMonitorStart", id);
    }

    pub(crate) fn mixmonitor_mute(&mut self, id: ChanId, direction: &str, state: &str) {
        let ev = Ev::event("MixMonitorMute", "call,all")
            .snap(self.c(id), "")
            .h("Direction", direction)
            .h("State", state);
        self.push(ev);
    }

    pub(crate) fn mixmonitor_stop(&mut self, id: ChanId) -> bool {
        if !self.c(id).mixmon {
            return false;
        }
        self.set(id, |c| c.mixmon = false);
        self.chan_ev("MixMonitorStop", id);
        true
    }
}

impl Chan {
    /// `SIP`/`Local`, as `Status` shows it.
    pub(crate) fn tech_name(&self) -> &'static str {
        match self.tech {
            Tech::LocalOne(_) | Tech::LocalTwo(_) => "Local",
            _ => "SIP",
        }
    }
}
