//! AMI actions on the PBX state, with Asterisk 20's reply texts (`j2_errors_unknown_action`,
//! `j3_coreshowchannels_active_call`, `k3_queue_member_mgmt` and the call-control captures).
//! Session-level actions (Login, Challenge, Logoff, Ping, Events) are the server's.

use std::time::Duration;

use super::flows::Target;
use super::{
    ChanId, DialLeg, DialPurpose, Ev, HangupHow, OriginateInfo, Pbx, PhoneBehaviour, Tech, Timer,
    clean, phone_cid,
};

/// An action as received: headers in order (duplicates kept), values as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    headers: Vec<(String, String)>,
}

impl Request {
    /// From headers in order.
    pub fn new(headers: Vec<(String, String)>) -> Self {
        Request { headers }
    }

    /// From `(key, value)` pairs (tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Request {
            headers: pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    /// First value of `key` (case-insensitive), leading/trailing blanks removed.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
    }

    /// First non-empty value of `key`.
    pub fn get_nonempty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.trim())
    }

    /// The `Action` header.
    pub fn action(&self) -> Option<&str> {
        self.get_nonempty("Action")
    }

    /// The `ActionID` to echo: only if it fits an AMI line.
    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID").filter(|v| v.len() <= 900)
    }
}

/// What an action answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionReply {
    /// Encoded reply messages (the response, then list items), to write now.
    Reply(Vec<u8>),
    /// The reply comes later as [`super::Output::Reply`] with this action's token (synchronous
    /// `Originate`): the session waits, and gets no events meanwhile, as with Asterisk.
    Deferred,
}

fn bytes(evs: Vec<Ev>) -> Vec<u8> {
    let mut out = Vec::new();
    for ev in evs {
        if let Ok(o) = ev.0 {
            o.encode(&mut out);
        }
    }
    out
}

fn error(req: &Request, msg: &str) -> ActionReply {
    ActionReply::Reply(bytes(vec![
        Ev::response("Error", req.action_id()).h("Message", msg),
    ]))
}

fn ack(req: &Request, msg: &str) -> ActionReply {
    ActionReply::Reply(bytes(vec![
        Ev::response("Success", req.action_id()).h("Message", msg),
    ]))
}

fn bare_success(req: &Request) -> ActionReply {
    ActionReply::Reply(bytes(vec![Ev::response("Success", req.action_id())]))
}

/// `Response: Success`/`EventList: start`, the items (`ActionID` first or last, as Asterisk
/// puts it for each list), then the `…Complete` event.
fn list(
    req: &Request,
    message: &str,
    items: Vec<Ev>,
    complete: &str,
    extra: &[(&str, String)],
) -> ActionReply {
    let id = req.action_id();
    let n = items.len();
    let mut evs = vec![
        Ev::response("Success", id)
            .h("EventList", "start")
            .h("Message", message),
    ];
    evs.extend(items);
    let mut done = Ev::plain(complete)
        .opt("ActionID", id)
        .h("EventList", "Complete")
        .h("ListItems", &n.to_string());
    for (k, v) in extra {
        done = done.h(k, v);
    }
    evs.push(done);
    ActionReply::Reply(bytes(evs))
}

fn is_true(v: &str) -> bool {
    matches!(
        v.to_ascii_lowercase().as_str(),
        "yes" | "true" | "y" | "t" | "1" | "on"
    )
}

/// `"Name" <number>`, `Name <number>` or a bare number.
pub(crate) fn parse_callerid(v: &str) -> (String, String) {
    let v = clean(v);
    if let (Some(lt), Some(gt)) = (v.find('<'), v.rfind('>'))
        && lt < gt
    {
        let num = v[lt + 1..gt].trim().to_owned();
        let name = v[..lt].trim().trim_matches('"').trim().to_owned();
        return (num, name);
    }
    let t = v.trim().trim_matches('"').to_owned();
    if t.chars()
        .all(|c| c.is_ascii_digit() || c == '+' || c == '*' || c == '#')
    {
        (t, String::new())
    } else {
        (String::new(), t)
    }
}

/// Does the lab dialplan have `exten` in `context`?
fn exten_exists(context: &str, exten: &str) -> bool {
    let first = exten.chars().next().unwrap_or(' ');
    let rest = &exten[first.len_utf8().min(exten.len())..];
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let spy = matches!(first, 'L' | 'W' | 'B') && !rest.is_empty();
    match context {
        "from-internal" => {
            spy || (exten.len() == 3 && digits(exten) && (first == '1' || first == '2'))
                || (first == '0' && digits(exten) && exten.len() >= 2)
                || matches!(exten, "600" | "700" | "800")
                || exten.parse::<u32>().is_ok_and(|n| (701..=729).contains(&n))
        }
        "spy" => spy,
        "from-trunk" => digits(exten),
        "queue" => exten.chars().all(|c| c.is_ascii_lowercase()) && exten.len() > 1,
        _ => false,
    }
}

impl Pbx {
    /// Executes one AMI action now. `token` names a deferred reply.
    pub fn action(&mut self, now: Duration, req: &Request, token: u64) -> ActionReply {
        self.now = now.max(self.now);
        let Some(action) = req.action() else {
            return error(req, "Missing action in request");
        };
        match action.to_ascii_lowercase().as_str() {
            "originate" => self.originate(req, token),
            "hangup" => self.act_hangup(req),
            "redirect" => self.act_redirect(req),
            "bridge" => self.act_bridge(req),
            "blindtransfer" => self.act_blind_transfer(req),
            "atxfer" => self.act_atxfer(req),
            "park" => self.act_park(req),
            "parkedcalls" => self.act_parked_calls(req),
            "mixmonitor" => self.act_mixmonitor(req),
            "mixmonitormute" => self.act_mixmonitor_mute(req),
            "stopmixmonitor" => self.act_stop_mixmonitor(req),
            "playdtmf" => self.act_play_dtmf(req),
            "queuepause" => self.act_queue_pause(req),
            "queueadd" => self.act_queue_add(req),
            "queueremove" => self.act_queue_remove(req),
            "queuestatus" => {
                let items = self.queue_status_items(req.get_nonempty("Queue"));
                let id = req.action_id();
                let items = items.into_iter().map(|e| e.opt("ActionID", id)).collect();
                list(
                    req,
                    "Queue status will follow",
                    items,
                    "QueueStatusComplete",
                    &[],
                )
            }
            "queuesummary" => {
                let items = self.queue_summary_items(req.get_nonempty("Queue"));
                let id = req.action_id();
                let items = items.into_iter().map(|e| e.opt("ActionID", id)).collect();
                list(
                    req,
                    "Queue summary will follow",
                    items,
                    "QueueSummaryComplete",
                    &[],
                )
            }
            "coreshowchannels" => self.act_core_show_channels(req),
            "status" => self.act_status(req),
            "bridgelist" => self.act_bridge_list(req),
            "corestatus" => self.act_core_status(req),
            "getvar" => self.act_getvar(req),
            "setvar" => ack(req, "Variable Set"),
            _ => {
                let shown = clean(action);
                error(
                    req,
                    &format!(
                        "Invalid/unknown command: {shown}. Use Action: ListCommands to show available commands."
                    ),
                )
            }
        }
    }

    fn find(&self, req: &Request, key: &str) -> Option<ChanId> {
        req.get_nonempty(key).and_then(|n| self.by_name(n))
    }

    // ----- Originate -------------------------------------------------------------------------

    fn originate(&mut self, req: &Request, token: u64) -> ActionReply {
        let Some(channel) = req.get_nonempty("Channel") else {
            return error(req, "Channel not specified");
        };
        let channel = clean(channel);
        let context = req.get_nonempty("Context").map(clean);
        let exten = req.get_nonempty("Exten").map(clean);
        if let Some(p) = req.get_nonempty("Priority")
            && p.parse::<u32>().is_err()
        {
            return error(req, "Invalid priority");
        }
        let timeout = match req.get_nonempty("Timeout") {
            None => Duration::from_millis(30_000),
            Some(t) => match t.parse::<u64>() {
                Ok(ms) => Duration::from_millis(ms),
                Err(_) => return error(req, "Invalid timeout"),
            },
        };
        let Some((tech, resource)) = channel.split_once('/') else {
            return error(req, "Invalid channel");
        };
        for key in ["ChannelId", "OtherChannelId"] {
            if req.get(key).is_some_and(|v| v.len() > 150) {
                return error(req, "Uniqueid length exceeds maximum of 150");
            }
        }
        let application = req
            .get_nonempty("Application")
            .map(|a| (clean(a), req.get("Data").map(clean).unwrap_or_default()));
        if application.is_none() {
            match (&context, &exten) {
                (Some(c), Some(e)) => {
                    if !exten_exists(c, e) {
                        return error(req, "Extension does not exist.");
                    }
                }
                _ => {
                    return error(
                        req,
                        "Originate with 'Exten' requires 'Context' and 'Priority'",
                    );
                }
            }
        }
        let is_async = req.get("Async").is_some_and(is_true);
        let (cid_num, cid_name) = req
            .get_nonempty("CallerID")
            .map(parse_callerid)
            .unwrap_or_default();
        let info = OriginateInfo {
            action_id: req.action_id().map(str::to_owned),
            dial_string: channel.clone(),
            context: context.unwrap_or_default(),
            exten: exten.unwrap_or_default(),
            application,
            cid_num,
            cid_name,
            sync_token: (!is_async).then_some(token),
            is_async,
            timeout,
        };
        let vars: Vec<String> = req.get_all("Variable").map(clean).collect();
        let account = req.get("Account").map(clean).unwrap_or_default();
        let ids = (
            req.get_nonempty("ChannelId").map(clean),
            req.get_nonempty("OtherChannelId").map(clean),
        );
        let reply = if is_async {
            ack(req, "Originate successfully queued")
        } else {
            ActionReply::Deferred
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if tech.eq_ignore_ascii_case("SIP") && digits(resource) {
            self.originate_sip(resource, info, &vars, &account, ids);
        } else if tech.eq_ignore_ascii_case("Local") {
            let res = resource.split('/').next().unwrap_or(resource);
            let (lexten, lctx) = res.split_once('@').unwrap_or((res, "default"));
            self.originate_local(lexten, lctx, info, &vars, ids);
        } else {
            // An unknown peer or technology: the originate fails at once.
            self.originate_failed(&info, 0);
        }
        reply
    }

    fn originate_sip(
        &mut self,
        ext: &str,
        info: OriginateInfo,
        vars: &[String],
        account: &str,
        ids: (Option<String>, Option<String>),
    ) {
        let o = self.new_chan(Tech::Phone, ext);
        let (n, name) = phone_cid(ext);
        self.set(o, |c| {
            c.cid_num = n;
            c.cid_name = name;
            if let Some(id) = ids.0 {
                c.uniqueid = id.clone();
                c.linkedid = id;
            }
        });
        self.chan_ev("Newchannel", o);
        let call_id = self.c(o).sip_call_id.clone();
        self.varset(o, "SIPCALLID", &call_id);
        self.set(o, |c| c.exten = String::new());
        self.newexten(o, "AppDial2", "(Outgoing Line)");
        for v in vars.iter().rev() {
            let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
            self.varset(o, k, val);
        }
        if !account.is_empty() {
            let old = self.c(o).account.clone();
            self.set(o, |c| c.account = account.to_owned());
            let ev = Ev::event("NewAccountCode", "call,all")
                .snap(self.c(o), "")
                .h("OldAccountCode", &old);
            self.push(ev);
        }
        if !info.cid_num.is_empty() || !info.cid_name.is_empty() {
            let (n, name) = (info.cid_num.clone(), info.cid_name.clone());
            self.set(o, |c| {
                c.cid_num = n.clone();
                c.cid_name = name.clone();
            });
            let ev = Ev::event("NewCallerid", "call,all")
                .snap(self.c(o), "")
                .h("CID-CallingPres", "0 (Presentation Allowed, Not Screened)");
            self.push(ev);
            self.set(o, |c| {
                c.cl_num = n;
                c.cl_name = name;
            });
            self.chan_ev("NewConnectedLine", o);
        }
        self.devstate(&format!("SIP/{ext}"), "RINGING");
        self.dial_ev("DialBegin", None, o, ("DialString", ext));
        let timeout = info.timeout;
        self.set(o, |c| {
            c.app = "AppDial2".to_owned();
            c.app_data = "(Outgoing Line)".to_owned();
            c.dial = Some(DialLeg {
                caller: None,
                purpose: DialPurpose::Originate(Box::new(info)),
            });
        });
        match self.phone_behaviour(ext) {
            PhoneBehaviour::Answer { after, .. } => {
                self.set_state(o, 5);
                self.dial_ev("DialState", None, o, ("DialStatus", "RINGING"));
                self.schedule(after, Timer::Answer { chan: o });
            }
            PhoneBehaviour::Busy { after } => self.schedule(after, Timer::Busy { chan: o }),
            PhoneBehaviour::NoAnswer => {
                self.set_state(o, 5);
                self.dial_ev("DialState", None, o, ("DialStatus", "RINGING"));
            }
        }
        self.schedule(timeout, Timer::NoAnswer { chan: o });
    }

    fn originate_local(
        &mut self,
        exten: &str,
        context: &str,
        info: OriginateInfo,
        vars: &[String],
        ids: (Option<String>, Option<String>),
    ) {
        let (exten, context) = (clean(exten), clean(context));
        let (one, two) = self.new_local_pair(&exten, &context);
        if let Some(id) = ids.0 {
            self.set(one, |c| {
                c.uniqueid = id.clone();
                c.linkedid = id.clone();
            });
            self.set(two, |c| c.linkedid = id);
        }
        if let Some(id) = ids.1 {
            self.set(two, |c| c.uniqueid = id);
        }
        self.chan_ev("Newchannel", one);
        self.chan_ev("Newchannel", two);
        for v in vars.iter().rev() {
            let (k, val) = v.split_once('=').unwrap_or((v.as_str(), ""));
            self.varset(one, k, val);
        }
        if !info.cid_num.is_empty() || !info.cid_name.is_empty() {
            let (n, name) = (info.cid_num.clone(), info.cid_name.clone());
            for l in [one, two] {
                let (n, name) = (n.clone(), name.clone());
                self.set(l, |c| {
                    c.cid_num = n.clone();
                    c.cid_name = name.clone();
                    c.cl_num = n;
                    c.cl_name = name;
                });
            }
        }
        self.local_bridge_ev(one, two, &context, &exten);
        self.dial_ev(
            "DialBegin",
            None,
            one,
            ("DialString", &format!("{exten}@{context}")),
        );
        let timeout = info.timeout;
        self.set(one, |c| {
            c.dial = Some(DialLeg {
                caller: None,
                purpose: DialPurpose::Originate(Box::new(info)),
            })
        });
        self.set(two, |c| c.owner = true);
        self.schedule(timeout, Timer::NoAnswer { chan: one });
        if exten.len() == 3 && exten.bytes().all(|b| b.is_ascii_digit()) {
            self.newexten(two, "Dial", &format!("SIP/{exten},20,tT"));
            self.dial(
                Some(two),
                Target::Phone(exten),
                DialPurpose::Bridge,
                Duration::from_secs(20),
            );
        } else {
            self.goto(two, &context, &exten);
        }
    }

    // ----- channel actions ---------------------------------------------------------------------

    fn act_hangup(&mut self, req: &Request) -> ActionReply {
        if req.get_nonempty("Channel").is_none() {
            return error(req, "No channel specified");
        }
        let Some(x) = self.find(req, "Channel") else {
            return error(req, "No such channel");
        };
        let cause = req
            .get_nonempty("Cause")
            .and_then(|c| c.parse::<u16>().ok())
            .unwrap_or(16);
        let reply = ack(req, "Channel Hungup");
        self.hangup(x, cause, HangupHow::Soft);
        reply
    }

    fn act_redirect(&mut self, req: &Request) -> ActionReply {
        let Some(name) = req.get_nonempty("Channel") else {
            return error(req, "Channel not specified");
        };
        let Some(context) = req.get_nonempty("Context").map(clean) else {
            return error(req, "Context not specified");
        };
        let Some(exten) = req.get_nonempty("Exten").map(clean) else {
            return error(req, "Exten not specified");
        };
        let Some(priority) = req.get_nonempty("Priority") else {
            return error(req, "Priority not specified");
        };
        let Ok(priority) = priority.parse::<u32>() else {
            return error(req, "Priority is invalid");
        };
        let Some(x) = self.by_name(name) else {
            return error(req, &format!("Channel does not exist: {}", clean(name)));
        };
        // A dual redirect: both legs leave their bridge together (neither is hung up).
        if let Some(extra) = req.get_nonempty("ExtraChannel") {
            let Some(y) = self.by_name(extra) else {
                return error(req, &format!("Channel does not exist: {}", clean(extra)));
            };
            let (Some(y_context), Some(y_exten)) = (
                req.get_nonempty("ExtraContext").map(clean),
                req.get_nonempty("ExtraExten").map(clean),
            ) else {
                return error(
                    req,
                    "ExtraContext and ExtraExten must be given with ExtraChannel",
                );
            };
            let reply = ack(req, "Dual Redirect successful");
            self.dual_redirect((x, &context, &exten), (y, &y_context, &y_exten));
            return reply;
        }
        let reply = ack(req, "Redirect successful");
        self.redirect(x, &context, &exten, priority);
        reply
    }

    /// AMI `Bridge`: joins two up channels in a new basic bridge (how a hold ends).
    fn act_bridge(&mut self, req: &Request) -> ActionReply {
        let (Some(one), Some(two)) = (
            req.get_nonempty("Channel1").and_then(|n| self.by_name(n)),
            req.get_nonempty("Channel2").and_then(|n| self.by_name(n)),
        ) else {
            return error(req, "Channel1 and Channel2 must name existing channels");
        };
        let reply = ack(req, "Channels have been bridged");
        self.bridge_two(one, two);
        reply
    }

    fn act_blind_transfer(&mut self, req: &Request) -> ActionReply {
        if req.get_nonempty("Channel").is_none() {
            return error(req, "No channel specified");
        }
        let Some(exten) = req.get_nonempty("Exten").map(clean) else {
            return error(req, "No extension specified");
        };
        let Some(t) = self.find(req, "Channel") else {
            return error(req, "Channel specified does not exist");
        };
        let context = req
            .get_nonempty("Context")
            .map(clean)
            .unwrap_or_else(|| self.c(t).context.clone());
        if self.peers(t).len() != 1 {
            return error(req, "Transfer invalid");
        }
        let reply = ack(req, "Transfer succeeded");
        self.blind_transfer(t, &context, &exten);
        reply
    }

    fn act_atxfer(&mut self, req: &Request) -> ActionReply {
        if req.get_nonempty("Channel").is_none() {
            return error(req, "No channel specified");
        }
        let Some(exten) = req.get_nonempty("Exten").map(clean) else {
            return error(req, "No extension specified");
        };
        let Some(t) = self.find(req, "Channel") else {
            return error(req, "Channel specified does not exist");
        };
        let context = req
            .get_nonempty("Context")
            .map(clean)
            .unwrap_or_else(|| "from-internal".to_owned());
        if self.peers(t).len() != 1 || self.c(t).atxfer.is_some() {
            // The DTMF would go to a channel without transfer rights.
            return error(req, "No attended transfer feature code found");
        }
        let reply = ack(req, "Atxfer successfully queued");
        self.atxfer_start(t, &context, &exten);
        reply
    }

    fn act_park(&mut self, req: &Request) -> ActionReply {
        let Some(name) = req.get_nonempty("Channel") else {
            return error(req, "Channel not specified");
        };
        let Some(x) = self.by_name(name) else {
            return error(req, &format!("Channel does not exist: {}", clean(name)));
        };
        if self.c(x).parked.is_some() {
            return error(req, "Park action failed");
        }
        let parker = self.find(req, "TimeoutChannel");
        // The real response carries a bare LF inside the value (f2_park_retrieve).
        let mut out = Ev::response("Success", req.action_id())
            .0
            .map(|o| o.to_bytes())
            .unwrap_or_default();
        out.truncate(out.len().saturating_sub(2));
        out.extend_from_slice(b"Message: Park successful\n\r\n\r\n");
        self.park(x, parker);
        ActionReply::Reply(out)
    }

    fn act_parked_calls(&mut self, req: &Request) -> ActionReply {
        let id = req.action_id();
        let spaces: Vec<ChanId> = self.parked.values().map(|(c, _, _)| *c).collect();
        let items: Vec<Ev> = spaces
            .into_iter()
            .map(|x| {
                self.parked_item("ParkedCall", x, None, false)
                    .opt("ActionID", id)
            })
            .collect();
        let total = items.len().to_string();
        list(
            req,
            "Parked calls will follow",
            items,
            "ParkedCallsComplete",
            &[("Total", total)],
        )
    }

    fn act_mixmonitor(&mut self, req: &Request) -> ActionReply {
        if req.get_nonempty("Channel").is_none() {
            return error(req, "No channel specified");
        }
        let Some(x) = self.find(req, "Channel") else {
            return error(req, "No such channel");
        };
        let file = match req.get_nonempty("File") {
            Some(f) => clean(f),
            None => format!("/srv/asterisk/var/recordings/{}.wav", self.c(x).uniqueid),
        };
        let reply = bare_success(req);
        self.mixmonitor_start(x, &file);
        reply
    }

    fn act_mixmonitor_mute(&mut self, req: &Request) -> ActionReply {
        if req.get_nonempty("Channel").is_none() {
            return error(req, "No channel specified");
        }
        let Some(direction) = req
            .get_nonempty("Direction")
            .map(|d| d.to_ascii_lowercase())
        else {
            return error(req, "No direction specified");
        };
        let Some(state) = req.get_nonempty("State") else {
            return error(req, "No state specified");
        };
        if !matches!(direction.as_str(), "read" | "write" | "both") {
            return error(
                req,
                "Invalid direction specified. Must be read, write or both",
            );
        }
        let Some(x) = self.find(req, "Channel") else {
            return error(req, "No such channel");
        };
        let state = if is_true(state) { "1" } else { "0" };
        let reply = bare_success(req);
        self.mixmonitor_mute(x, &direction, state);
        reply
    }

    fn act_stop_mixmonitor(&mut self, req: &Request) -> ActionReply {
        if req.get_nonempty("Channel").is_none() {
            return error(req, "No channel specified");
        }
        let Some(x) = self.find(req, "Channel") else {
            return error(req, "No such channel");
        };
        if !self.c(x).mixmon {
            return error(req, "Could not stop monitoring channel");
        }
        let reply = bare_success(req);
        self.mixmonitor_stop(x);
        reply
    }

    /// AMI `PlayDTMF` (app_senddtmf): sends the first character of `Digit` out on the channel.
    /// Asterisk raises no event for it (the digit goes straight to the channel driver); the
    /// simulator remembers it per channel for [`SimCall::dtmf`](super::SimCall::dtmf).
    fn act_play_dtmf(&mut self, req: &Request) -> ActionReply {
        let Some(x) = self.find(req, "Channel") else {
            return error(req, "Channel not found");
        };
        let Some(digit) = req.get_nonempty("Digit").and_then(|d| d.chars().next()) else {
            return error(req, "No digit specified");
        };
        if req
            .get_nonempty("Duration")
            .is_some_and(|d| d.parse::<u32>().is_err())
        {
            return error(req, "Could not convert Duration parameter");
        }
        let reply = ack(req, "DTMF successfully queued");
        self.set(x, |c| c.dtmf_sent.push(digit));
        reply
    }

    // ----- queues ------------------------------------------------------------------------------

    fn act_queue_pause(&mut self, req: &Request) -> ActionReply {
        let (Some(interface), Some(paused)) =
            (req.get_nonempty("Interface"), req.get_nonempty("Paused"))
        else {
            return error(req, "Need 'Interface' and 'Paused' parameters.");
        };
        let paused = is_true(paused);
        let interface = clean(interface);
        let queue = req.get_nonempty("Queue").map(clean);
        let reason = req.get("Reason").unwrap_or_default().to_owned();
        // The reply precedes the member events on the wire (k3).
        let found = self.queues.iter().any(|q| {
            queue.as_deref().is_none_or(|n| n == q.name)
                && q.members.iter().any(|m| m.interface == interface)
        });
        if !found {
            return error(req, "Interface not found");
        }
        let reply = ack(
            req,
            if paused {
                "Interface paused successfully"
            } else {
                "Interface unpaused successfully"
            },
        );
        self.queue_pause(&interface, queue.as_deref(), paused, &reason);
        reply
    }

    fn act_queue_add(&mut self, req: &Request) -> ActionReply {
        let (Some(queue), Some(interface)) =
            (req.get_nonempty("Queue"), req.get_nonempty("Interface"))
        else {
            return error(req, "'Queue' or 'Interface' not set.");
        };
        let (queue, interface) = (clean(queue), clean(interface));
        let penalty = req
            .get_nonempty("Penalty")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        let paused = req.get("Paused").is_some_and(is_true);
        let name = req.get_nonempty("MemberName").map(str::to_owned);
        if self.queues.iter().all(|q| q.name != queue) {
            return error(req, "Unable to add interface to queue: No such queue");
        }
        if self
            .queues
            .iter()
            .any(|q| q.name == queue && q.members.iter().any(|m| m.interface == interface))
        {
            return error(req, "Unable to add interface: Already there");
        }
        let reply = ack(req, "Added interface to queue");
        let _ = self.queue_add(&queue, &interface, penalty, paused, name.as_deref());
        reply
    }

    fn act_queue_remove(&mut self, req: &Request) -> ActionReply {
        let (Some(queue), Some(interface)) =
            (req.get_nonempty("Queue"), req.get_nonempty("Interface"))
        else {
            return error(req, "Need 'Queue' and 'Interface' parameters.");
        };
        let (queue, interface) = (clean(queue), clean(interface));
        let mut probe = self.queues.clone();
        let check = probe.iter_mut().find(|q| q.name == queue).map(|q| {
            q.members
                .iter()
                .find(|m| m.interface == interface)
                .map(|m| m.dynamic)
        });
        match check {
            None => error(req, "Unable to remove interface from queue: No such queue"),
            Some(None) => error(req, "Unable to remove interface: Not there"),
            Some(Some(false)) => error(req, "Unable to remove interface: Not dynamic"),
            Some(Some(true)) => {
                let reply = ack(req, "Removed interface from queue");
                let _ = self.queue_remove(&queue, &interface);
                reply
            }
        }
    }

    // ----- lists -------------------------------------------------------------------------------

    /// Live channels, newest first (the order Asterisk's container gave in j3).
    fn listed(&self) -> Vec<ChanId> {
        let mut ids: Vec<ChanId> = self.channels.keys().copied().collect();
        ids.reverse();
        ids
    }

    fn duration_hms(&self, id: ChanId) -> String {
        let s = self.now.saturating_sub(self.c(id).created).as_secs();
        format!("{:02}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    }

    fn bridge_uuid(&self, id: ChanId) -> String {
        self.c(id)
            .bridge
            .and_then(|b| self.bridges.get(&b))
            .map(|b| b.uuid.clone())
            .unwrap_or_default()
    }

    fn act_core_show_channels(&mut self, req: &Request) -> ActionReply {
        let id = req.action_id();
        let items = self
            .listed()
            .into_iter()
            .map(|c| {
                let ch = self.c(c);
                Ev::plain("CoreShowChannel")
                    .opt("ActionID", id)
                    .snap(ch, "")
                    .h("Application", &ch.app)
                    .h("ApplicationData", &ch.app_data)
                    .h("Duration", &self.duration_hms(c))
                    .h("BridgeId", &self.bridge_uuid(c))
            })
            .collect();
        list(
            req,
            "Channels will follow",
            items,
            "CoreShowChannelsComplete",
            &[],
        )
    }

    fn act_status(&mut self, req: &Request) -> ActionReply {
        let id = req.action_id();
        let chans = match req.get_nonempty("Channel") {
            Some(name) => match self.by_name(name) {
                Some(c) => vec![c],
                None => return error(req, "No such channel"),
            },
            None => self.listed(),
        };
        let items: Vec<Ev> = chans
            .into_iter()
            .map(|c| {
                let ch = self.c(c);
                let dnid = ch
                    .inbound
                    .as_ref()
                    .map(|i| i.did.clone())
                    .unwrap_or_default();
                Ev::event("Status", "Call")
                    .snap(ch, "")
                    .h("Type", ch.tech_name())
                    .h("DNID", &dnid)
                    .h("EffectiveConnectedLineNum", &ch.cl_num)
                    .h("EffectiveConnectedLineName", &ch.cl_name)
                    .h("TimeToHangup", "0")
                    .h("BridgeID", &self.bridge_uuid(c))
                    .h("Application", &ch.app)
                    .h("Data", &ch.app_data)
                    .h("Nativeformats", "(alaw)")
                    .h("Readformat", "alaw")
                    .h("Readtrans", "")
                    .h("Writeformat", "alaw")
                    .h("Writetrans", "")
                    .h("Callgroup", "0")
                    .h("Pickupgroup", "0")
                    .h(
                        "Seconds",
                        &self.now.saturating_sub(ch.created).as_secs().to_string(),
                    )
                    .opt("ActionID", id)
            })
            .collect();
        let n = items.len().to_string();
        list(
            req,
            "Channel status will follow",
            items,
            "StatusComplete",
            &[("Items", n)],
        )
    }

    fn act_bridge_list(&mut self, req: &Request) -> ActionReply {
        let id = req.action_id();
        let items = self
            .bridges
            .values()
            .map(|b| {
                Ev::plain("BridgeListItem")
                    .opt("ActionID", id)
                    .bridge(b, "")
            })
            .collect();
        list(
            req,
            "Bridge listing will follow",
            items,
            "BridgeListComplete",
            &[],
        )
    }

    fn act_core_status(&mut self, req: &Request) -> ActionReply {
        let boot = self.epoch().saturating_sub(self.uptime(self.now));
        let (y, mo, d, h, mi, s) = crate::scenario::civil(boot);
        let date = format!("{y:04}-{mo:02}-{d:02}");
        let time = format!("{h:02}:{mi:02}:{s:02}");
        let calls = self.live_calls().len();
        ActionReply::Reply(bytes(vec![
            Ev::response("Success", req.action_id())
                .h("CoreStartupDate", &date)
                .h("CoreStartupTime", &time)
                .h("CoreReloadDate", &date)
                .h("CoreReloadTime", &time)
                .h("CoreCurrentCalls", &calls.to_string())
                .h("CoreProcessedCalls", &self.processed_calls.to_string()),
        ]))
    }

    fn act_getvar(&mut self, req: &Request) -> ActionReply {
        let Some(var) = req.get_nonempty("Variable").map(clean) else {
            return error(req, "No variable specified");
        };
        let value = match req.get_nonempty("Channel") {
            Some(name) => {
                let Some(c) = self.by_name(name) else {
                    return error(req, "No such channel");
                };
                let ch = self.c(c);
                match var.as_str() {
                    "CALLERID(num)" => ch.cid_num.clone(),
                    "CALLERID(name)" => ch.cid_name.clone(),
                    "UNIQUEID" => ch.uniqueid.clone(),
                    "CHANNEL" => ch.name.clone(),
                    _ => String::new(),
                }
            }
            None if var == "EPOCH" => self.epoch().to_string(),
            None => String::new(),
        };
        ActionReply::Reply(bytes(vec![
            Ev::response("Success", req.action_id())
                .h("Variable", &var)
                .h("Value", &value),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::parse_callerid;

    #[test]
    fn caller_ids() {
        assert_eq!(
            parse_callerid("\"CRM: Acme GmbH\" <004930123456>"),
            ("004930123456".into(), "CRM: Acme GmbH".into())
        );
        assert_eq!(
            parse_callerid("Parking <701>"),
            ("701".into(), "Parking".into())
        );
        assert_eq!(
            parse_callerid("+4930123"),
            ("+4930123".into(), String::new())
        );
        assert_eq!(parse_callerid("Bob"), (String::new(), "Bob".into()));
    }
}
