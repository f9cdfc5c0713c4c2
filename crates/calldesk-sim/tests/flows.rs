//! The stateful PBX against the real Asterisk 20 captures, driven through the pure [`Pbx`] with
//! the capture's counters, callers and timings.
//!
//! Compared on the call-relevant events (the `KEEP` list): the multiset of event names, and for
//! every channel and every bridge the sequence of its events with their header names (in order)
//! and key values. Channel names, Uniqueids, Linkedids and bridge ids are matched through a
//! consistent one-to-one mapping built in order of appearance, so the check is structural (which
//! channel is linked to which call, who is bridged with whom) and does not depend on wall-clock
//! epochs. Where Asterisk's cross-channel order is deterministic enough, the global order of
//! event names is compared too (`strict`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame};
use calldesk_sim::pbx::{ActionReply, Output, Pbx, PbxConfig, PhoneBehaviour, Request};
use calldesk_sim::{ScenarioCall, ScenarioKind};

const KEEP: &[&str] = &[
    "Newchannel",
    "Newstate",
    "DialBegin",
    "DialEnd",
    "BridgeCreate",
    "BridgeEnter",
    "BridgeLeave",
    "BridgeDestroy",
    "BridgeMerge",
    "Hangup",
    "Hold",
    "Unhold",
    "MusicOnHoldStart",
    "MusicOnHoldStop",
    "BlindTransfer",
    "AttendedTransfer",
    "ParkedCall",
    "UnParkedCall",
    "MixMonitorStart",
    "MixMonitorStop",
    "MixMonitorMute",
    "ChanSpyStart",
    "ChanSpyStop",
    "OriginateResponse",
    "QueueCallerJoin",
    "QueueCallerLeave",
    "QueueCallerAbandon",
    "AgentCalled",
    "AgentConnect",
    "AgentComplete",
    "QueueMemberPause",
    "LocalBridge",
    "LocalOptimizationBegin",
    "LocalOptimizationEnd",
    "Shutdown",
];

/// Values compared exactly.
const EXACT: &[&str] = &[
    "ChannelState",
    "DestChannelState",
    "CallerIDNum",
    "ConnectedLineNum",
    "DestCallerIDNum",
    "Context",
    "Exten",
    "DialStatus",
    "DialString",
    "Cause",
    "BridgeNumChannels",
    "BridgeType",
    "Reason",
    "Response",
    "Queue",
    "Interface",
    "Class",
    "Direction",
    "State",
    "Result",
    "DestType",
    "IsExternal",
    "ParkingSpace",
    "Position",
    "Count",
    "Shutdown",
    "Restart",
];

/// Values compared through the identity mapping.
const IDENT: &[&str] = &[
    "Channel",
    "DestChannel",
    "Uniqueid",
    "Linkedid",
    "DestUniqueid",
    "DestLinkedid",
    "BridgeUniqueid",
    "SpyerChannel",
    "SpyeeChannel",
    "ParkeeChannel",
    "RetrieverChannel",
    "TransfereeChannel",
    "OrigTransfererChannel",
    "LocalOneChannel",
    "LocalTwoChannel",
    "ToBridgeUniqueid",
    "FromBridgeUniqueid",
    "DestBridgeUniqueid",
];

/// Headers naming the channels an event is about.
const CHANNEL_KEYS: &[&str] = &[
    "Channel",
    "DestChannel",
    "SpyerChannel",
    "SpyeeChannel",
    "ParkeeChannel",
    "RetrieverChannel",
    "TransfereeChannel",
    "OrigTransfererChannel",
    "LocalOneChannel",
    "LocalTwoChannel",
];

const BRIDGE_KEYS: &[&str] = &["BridgeUniqueid", "ToBridgeUniqueid", "FromBridgeUniqueid"];

type Ev = Vec<(String, String)>;

fn get<'a>(ev: &'a Ev, k: &str) -> Option<&'a str> {
    ev.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str())
}

fn name(ev: &Ev) -> &str {
    &ev[0].1
}

fn decode(bytes: &[u8], banner: bool) -> Vec<Ev> {
    let mut buf = BytesMut::from(bytes);
    let mut dec = if banner {
        AmiDecoder::new()
    } else {
        AmiDecoder::without_banner()
    };
    let mut out = Vec::new();
    while let Some(f) = dec.decode(&mut buf) {
        if let Frame::Message(m) = f {
            out.push(
                m.fields()
                    .map(|(k, v)| {
                        (
                            String::from_utf8_lossy(k).into_owned(),
                            String::from_utf8_lossy(v).into_owned(),
                        )
                    })
                    .collect(),
            );
        }
    }
    out
}

fn keep(evs: Vec<Ev>) -> Vec<Ev> {
    evs.into_iter()
        .filter(|e| e[0].0 == "Event" && KEEP.contains(&name(e)))
        .collect()
}

fn capture(name: &str) -> Vec<Ev> {
    keep(decode(&calldesk_fixtures::ami_rx(name), true))
}

/// Drives a pure PBX and records everything it emits.
struct Drive {
    pbx: Pbx,
    events: Vec<Ev>,
    replies: Vec<Ev>,
    now: Duration,
}

impl Drive {
    fn new(epoch: u64, uid: u64, chan: u32, local: u32) -> Drive {
        Drive::with(PbxConfig::default(), epoch, uid, chan, local)
    }

    fn with(cfg: PbxConfig, epoch: u64, uid: u64, chan: u32, local: u32) -> Drive {
        Drive {
            pbx: Pbx::new(cfg, epoch).with_counters(uid, chan, local),
            events: Vec::new(),
            replies: Vec::new(),
            now: Duration::ZERO,
        }
    }

    fn phone(&mut self, ext: &str, b: PhoneBehaviour) {
        self.pbx.set_phone(ext, b);
    }

    fn collect(&mut self) {
        for (_, out) in self.pbx.drain() {
            match out {
                Output::Event(o) | Output::Shutdown(o) => self.events.push(
                    o.headers()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                ),
                Output::Reply { bytes, .. } => self.replies.extend(decode(&bytes, false)),
            }
        }
    }

    /// Advances the clock to `ms` (firing due steps).
    fn at(&mut self, ms: u64) -> &mut Self {
        let t = Duration::from_millis(ms);
        while let Some(d) = self.pbx.next_deadline() {
            if d > t {
                break;
            }
            self.pbx.advance(d);
        }
        self.pbx.advance(t);
        self.now = t;
        self.collect();
        self
    }

    fn play(&mut self, call: ScenarioCall) -> String {
        let l = self.pbx.play(self.now, &call);
        self.collect();
        l
    }

    /// Executes an action; list items are part of the event stream, as on the wire.
    fn action(&mut self, pairs: &[(&str, &str)]) -> Vec<Ev> {
        let reply = self.pbx.action(self.now, &Request::from_pairs(pairs), 1);
        let out = match reply {
            ActionReply::Reply(b) => decode(&b, false),
            ActionReply::Deferred => Vec::new(),
        };
        self.events
            .extend(out.iter().filter(|e| e[0].0 == "Event").cloned());
        self.collect();
        out
    }

    /// Runs until nothing is scheduled.
    fn finish(&mut self) -> Vec<Ev> {
        while let Some(d) = self.pbx.next_deadline() {
            self.pbx.advance(d);
            self.collect();
        }
        keep(std::mem::take(&mut self.events))
    }
}

fn inbound(
    kind: ScenarioKind,
    caller: &str,
    did: &str,
    ext: &str,
    ring: u64,
    talk: u64,
) -> ScenarioCall {
    ScenarioCall {
        kind,
        caller: caller.to_owned(),
        did: did.to_owned(),
        extension: ext.to_owned(),
        ring: Duration::from_millis(ring),
        talk: Duration::from_millis(talk),
    }
}

/// A one-to-one mapping of capture identities to simulator identities.
#[derive(Default)]
struct Ids {
    fwd: HashMap<String, String>,
    back: HashMap<String, String>,
}

impl Ids {
    fn same(&mut self, real: &str, sim: &str) -> bool {
        if real.is_empty() || real == "<unknown>" || sim.is_empty() || sim == "<unknown>" {
            return real == sim;
        }
        match (self.fwd.get(real), self.back.get(sim)) {
            (Some(s), _) => s == sim,
            (None, Some(_)) => false,
            (None, None) => {
                self.fwd.insert(real.to_owned(), sim.to_owned());
                self.back.insert(sim.to_owned(), real.to_owned());
                true
            }
        }
    }
}

fn label(ev: &Ev) -> String {
    let ch = CHANNEL_KEYS
        .iter()
        .filter_map(|k| get(ev, k))
        .collect::<Vec<_>>()
        .join(",");
    format!("{} {}", name(ev), ch)
}

/// Compares two events: names, header names, values. Mismatches are appended to `problems`.
fn compare_event(ctx: &str, r: &Ev, s: &Ev, ids: &mut Ids, problems: &mut Vec<String>) {
    if name(r) != name(s) {
        problems.push(format!("{ctx}: capture {} sim {}", label(r), label(s)));
        return;
    }
    let rk: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
    let sk: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
    if rk != sk {
        problems.push(format!(
            "{ctx} {}: header names differ\n   capture: {rk:?}\n   sim:     {sk:?}",
            label(r)
        ));
    }
    for k in EXACT {
        // Prefixed snapshots repeat keys such as `CallerIDNum`: compare each occurrence.
        let rv: Vec<&str> = r
            .iter()
            .filter(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
            .collect();
        let sv: Vec<&str> = s
            .iter()
            .filter(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
            .collect();
        if rv != sv {
            problems.push(format!(
                "{ctx} {}: {k}: capture {rv:?} sim {sv:?}",
                label(r)
            ));
        }
    }
    for k in IDENT {
        if let (Some(rv), Some(sv)) = (get(r, k), get(s, k))
            && !ids.same(rv, sv)
        {
            problems.push(format!(
                "{ctx} {}: {k}: capture {rv} ↔ sim {sv} breaks the identity mapping",
                label(r)
            ));
        }
    }
}

/// Per-entity projections: channel name (or bridge id) → its events.
fn projections(evs: &[Ev]) -> (Vec<String>, BTreeMap<String, Vec<Ev>>) {
    let mut order = Vec::new();
    let mut map: BTreeMap<String, Vec<Ev>> = BTreeMap::new();
    for e in evs {
        let mut keys: Vec<String> = CHANNEL_KEYS
            .iter()
            .filter_map(|k| get(e, k))
            .filter(|v| v.contains('/'))
            .map(|v| format!("chan {v}"))
            .collect();
        if !keys.iter().any(|k| k.starts_with("chan")) {
            keys.extend(
                BRIDGE_KEYS
                    .iter()
                    .filter_map(|k| get(e, k))
                    .map(|v| format!("bridge {v}")),
            );
        }
        keys.dedup();
        for k in keys {
            if !map.contains_key(&k) {
                order.push(k.clone());
            }
            map.entry(k).or_default().push(e.clone());
        }
    }
    for seq in map.values_mut() {
        settle_races(seq);
    }
    (order, map)
}

/// `OriginateResponse` is raised by the originating thread and races with the channel's own
/// `Newstate`/`DialEnd` (h1, f2 and the three g sessions each show a different order): both
/// sides are put in one canonical order before comparing.
fn settle_races(seq: &mut [Ev]) {
    let mut moved = true;
    while moved {
        moved = false;
        for i in 0..seq.len().saturating_sub(1) {
            if name(&seq[i]) == "OriginateResponse"
                && matches!(name(&seq[i + 1]), "DialEnd" | "Newstate")
            {
                seq.swap(i, i + 1);
                moved = true;
            }
        }
    }
}

fn compare(capture_name: &str, real: &[Ev], sim: &[Ev], strict: bool) {
    let mut problems = Vec::new();
    assert!(!real.is_empty(), "{capture_name}: no events decoded");
    // 1. The same events, by name.
    let count = |evs: &[Ev]| {
        let mut m: BTreeMap<String, usize> = BTreeMap::new();
        for e in evs {
            *m.entry(name(e).to_owned()).or_default() += 1;
        }
        m
    };
    let (rc, sc) = (count(real), count(sim));
    if rc != sc {
        problems.push(format!(
            "event counts differ:\n   capture {rc:?}\n   sim     {sc:?}"
        ));
    }
    // 2. Global order of names.
    let rn: Vec<&str> = real.iter().map(name).collect();
    let sn: Vec<&str> = sim.iter().map(name).collect();
    if strict && rn != sn {
        let mut diff = String::new();
        for i in 0..real.len().max(sim.len()) {
            let r = real.get(i).map(label).unwrap_or_default();
            let s = sim.get(i).map(label).unwrap_or_default();
            let mark = if rn.get(i) == sn.get(i) { "  " } else { "!!" };
            diff.push_str(&format!("{mark} {i:3} {r:70} {s}\n"));
        }
        problems.push(format!("global order differs:\n{diff}"));
    }
    // 3. Per channel and per bridge, in order of appearance.
    let (ro, rmap) = projections(real);
    let (so, smap) = projections(sim);
    let mut ids = Ids::default();
    if ro.len() != so.len() {
        problems.push(format!(
            "entities differ:\n   capture {ro:?}\n   sim     {so:?}"
        ));
    }
    for (rk, sk) in ro.iter().zip(&so) {
        let (rv, sv) = (&rmap[rk], &smap[sk]);
        let (rl, sl): (Vec<String>, Vec<String>) = (
            rv.iter().map(label).collect(),
            sv.iter().map(label).collect(),
        );
        if rv.len() != sv.len() || rv.iter().zip(sv).any(|(a, b)| name(a) != name(b)) {
            problems.push(format!(
                "{rk} ↔ {sk}: sequences differ\n   capture {rl:#?}\n   sim     {sl:#?}"
            ));
            continue;
        }
        for (i, (r, s)) in rv.iter().zip(sv).enumerate() {
            compare_event(&format!("{rk} #{i}"), r, s, &mut ids, &mut problems);
        }
    }
    problems.dedup();
    assert!(
        problems.is_empty(),
        "{capture_name}: {} problems\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn msg(evs: &[Ev]) -> Option<String> {
    evs.first()
        .and_then(|e| get(e, "Message"))
        .map(str::to_owned)
}

// ----- the captures ------------------------------------------------------------------------------

#[test]
fn redirect_matches_d1_blind_transfer_redirect() {
    let mut d = Drive::new(1_795_259_835, 14, 8, 0);
    d.phone("102", PhoneBehaviour::answers_after_ms(2500));
    d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+33142685300",
        "101",
        "101",
        1000,
        19_000,
    ));
    d.at(4000);
    let r = d.action(&[
        ("Action", "Redirect"),
        ("ActionID", "d1-002"),
        ("Channel", "SIP/trunk-00000008"),
        ("Context", "from-internal"),
        ("Exten", "102"),
        ("Priority", "1"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Redirect successful"));
    let sim = d.finish();
    compare(
        "d1_blind_transfer_redirect",
        &capture("d1_blind_transfer_redirect"),
        &sim,
        false,
    );
}

#[test]
fn atxfer_matches_e_attended_transfer() {
    let mut d = Drive::new(1_795_259_886, 24, 0x0e, 0);
    d.phone("102", PhoneBehaviour::answers_after_ms(2000));
    d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4940123123",
        "101",
        "101",
        1000,
        30_000,
    ));
    d.at(5000);
    let r = d.action(&[
        ("Action", "Atxfer"),
        ("ActionID", "e-002"),
        ("Channel", "SIP/101-0000000f"),
        ("Exten", "102"),
        ("Context", "from-internal"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Atxfer successfully queued"));
    d.at(13_000);
    d.pbx.phone_hangup(d.now, "101").unwrap();
    d.collect();
    let sim = d.finish();
    compare(
        "e_attended_transfer",
        &capture("e_attended_transfer"),
        &sim,
        false,
    );
}

#[test]
fn hold_matches_f_hold_moh() {
    let mut d = Drive::new(1_795_259_917, 35, 0x11, 0);
    d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4921199887",
        "101",
        "101",
        2000,
        15_000,
    ));
    d.at(5000);
    d.pbx.hold(d.now, "101", true).unwrap();
    d.at(10_000);
    d.pbx.hold(d.now, "101", false).unwrap();
    d.collect();
    let sim = d.finish();
    compare("f_hold_moh", &capture("f_hold_moh"), &sim, true);
}

#[test]
fn park_and_retrieve_match_f2_park_retrieve() {
    let mut d = Drive::new(1_795_259_937, 38, 0x13, 0);
    d.phone("102", PhoneBehaviour::answers_after_ms(1000));
    d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4969777888",
        "101",
        "101",
        1000,
        20_000,
    ));
    d.at(4000);
    let park = d.pbx.action(
        d.now,
        &Request::from_pairs(&[
            ("Action", "Park"),
            ("ActionID", "f2-002"),
            ("Channel", "SIP/trunk-00000013"),
            ("TimeoutChannel", "SIP/101-00000014"),
            ("Parkinglot", "default"),
        ]),
        1,
    );
    assert_eq!(
        park,
        ActionReply::Reply(
            b"Response: Success\r\nActionID: f2-002\r\nMessage: Park successful\n\r\n\r\n".to_vec()
        ),
        "the Park response has the bare LF of the capture"
    );
    d.collect();
    d.at(8000);
    let list = d.action(&[("Action", "ParkedCalls"), ("ActionID", "f2-003")]);
    let real_list: Vec<Ev> = decode(&calldesk_fixtures::ami_rx("f2_park_retrieve"), true)
        .into_iter()
        .filter(|e| get(e, "ActionID") == Some("f2-003"))
        .collect();
    assert_eq!(list.len(), real_list.len());
    for (s, r) in list.iter().zip(&real_list) {
        let sk: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
        let rk: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(sk, rk);
    }
    assert_eq!(get(&list[1], "ParkingSpace"), Some("701"));
    assert_eq!(get(&list[1], "ParkingDuration"), Some("4"));
    let r = d.action(&[
        ("Action", "Originate"),
        ("ActionID", "f2-004"),
        ("Channel", "SIP/102"),
        ("Context", "from-internal"),
        ("Exten", "701"),
        ("Priority", "1"),
        ("CallerID", "\"Parking\" <701>"),
        ("Timeout", "20000"),
        ("Async", "true"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Originate successfully queued"));
    let sim = d.finish();
    compare(
        "f2_park_retrieve",
        &capture("f2_park_retrieve"),
        &sim,
        false,
    );
}

fn spy_originate(d: &mut Drive, id: &str, exten: &str) {
    let r = d.action(&[
        ("Action", "Originate"),
        ("ActionID", id),
        ("Channel", "Local/103@from-internal"),
        ("Context", "spy"),
        ("Exten", exten),
        ("Priority", "1"),
        ("CallerID", "\"Supervisor\" <103>"),
        ("Timeout", "20000"),
        ("Async", "true"),
        ("Variable", &format!("SPYMODE={}", &exten[..1])),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Originate successfully queued"));
}

#[test]
fn spying_matches_g_spy_listen_whisper_barge() {
    let mut d = Drive::new(1_795_259_964, 45, 0x16, 1);
    d.phone(
        "103",
        PhoneBehaviour::Answer {
            after: Duration::from_millis(1500),
            hangup_after: Some(Duration::from_secs(5)),
        },
    );
    d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4930999000",
        "101",
        "101",
        2000,
        43_000,
    ));
    d.at(4000);
    spy_originate(&mut d, "g-002", "L101");
    d.at(12_000);
    spy_originate(&mut d, "g-003", "W101");
    d.at(19_000);
    spy_originate(&mut d, "g-004", "B101");
    let sim = d.finish();
    let modes: Vec<String> = sim
        .iter()
        .filter(|e| name(e) == "ChanSpyStart")
        .map(|e| get(e, "SpyerExten").unwrap().to_owned())
        .collect();
    assert_eq!(modes, ["L101", "W101", "B101"]);
    compare(
        "g_spy_listen_whisper_barge",
        &capture("g_spy_listen_whisper_barge"),
        &sim,
        false,
    );
}

fn click_to_call(d: &mut Drive, id: &str, timeout: &str, extra: &[(&str, &str)]) {
    let mut pairs = vec![
        ("Action", "Originate"),
        ("ActionID", id),
        ("Channel", "SIP/101"),
        ("Context", "from-internal"),
        ("Exten", "004930123456"),
        ("Priority", "1"),
        ("CallerID", "\"CRM: Acme GmbH\" <004930123456>"),
        ("Timeout", timeout),
        ("Async", "true"),
    ];
    pairs.extend_from_slice(extra);
    let r = d.action(&pairs);
    assert_eq!(msg(&r).as_deref(), Some("Originate successfully queued"));
    assert_eq!(get(&r[0], "ActionID"), Some(id));
}

#[test]
fn click_to_call_matches_h1_click_to_call() {
    let cfg = PbxConfig {
        far_end: PhoneBehaviour::Answer {
            after: Duration::from_millis(1500),
            hangup_after: Some(Duration::from_secs(6)),
        },
        ..PbxConfig::default()
    };
    let mut d = Drive::with(cfg, 1_795_260_035, 68, 0x1e, 0);
    d.phone("101", PhoneBehaviour::answers_after_ms(2000));
    click_to_call(
        &mut d,
        "h1-002",
        "30000",
        &[
            ("Variable", "CRM_TICKET=4711"),
            ("Variable", "CRM_USER=alice"),
            ("Account", "crm-c2c"),
        ],
    );
    let sim = d.finish();
    let resp = sim.iter().find(|e| name(e) == "OriginateResponse").unwrap();
    assert_eq!(get(resp, "ActionID"), Some("h1-002"));
    compare(
        "h1_click_to_call",
        &capture("h1_click_to_call"),
        &sim,
        false,
    );
}

#[test]
fn busy_operator_matches_h2_click_to_call_agent_busy() {
    let mut d = Drive::new(1_795_260_050, 71, 0x20, 0);
    d.phone(
        "101",
        PhoneBehaviour::Busy {
            after: Duration::from_millis(200),
        },
    );
    click_to_call(&mut d, "h2-002", "30000", &[]);
    let sim = d.finish();
    compare(
        "h2_click_to_call_agent_busy",
        &capture("h2_click_to_call_agent_busy"),
        &sim,
        true,
    );
}

#[test]
fn unanswered_operator_matches_h3_click_to_call_agent_noanswer() {
    let mut d = Drive::new(1_795_260_054, 73, 0x21, 0);
    d.phone("101", PhoneBehaviour::NoAnswer);
    click_to_call(&mut d, "h3-002", "8000", &[]);
    let sim = d.finish();
    compare(
        "h3_click_to_call_agent_noanswer",
        &capture("h3_click_to_call_agent_noanswer"),
        &sim,
        true,
    );
}

#[test]
fn mixmonitor_matches_i_mixmonitor_ami() {
    let mut d = Drive::new(1_795_260_079, 81, 0x24, 0);
    d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4971155544",
        "102",
        "102",
        2000,
        12_000,
    ));
    d.at(3000);
    let file = "/srv/asterisk/var/recordings/ami-mixmon-1795260081.wav";
    let r = d.action(&[
        ("Action", "MixMonitor"),
        ("ActionID", "i-002"),
        ("Channel", "SIP/102-00000025"),
        ("File", file),
        ("Options", "b"),
    ]);
    assert_eq!(
        r,
        vec![vec![
            ("Response".to_owned(), "Success".to_owned()),
            ("ActionID".to_owned(), "i-002".to_owned())
        ]]
    );
    let var = d
        .events
        .iter()
        .rev()
        .find(|e| name(e) == "VarSet")
        .unwrap()
        .clone();
    assert_eq!(get(&var, "Variable"), Some("MIXMONITOR_FILENAME"));
    assert_eq!(get(&var, "Value"), Some(file));
    d.at(5000);
    for (id, state) in [("i-003", "1"), ("i-004", "0")] {
        let r = d.action(&[
            ("Action", "MixMonitorMute"),
            ("ActionID", id),
            ("Channel", "SIP/102-00000025"),
            ("Direction", "both"),
            ("State", state),
        ]);
        assert_eq!(get(&r[0], "Response"), Some("Success"));
    }
    let r = d.action(&[
        ("Action", "StopMixMonitor"),
        ("ActionID", "i-005"),
        ("Channel", "SIP/102-00000025"),
    ]);
    assert_eq!(get(&r[0], "Response"), Some("Success"));
    let sim = d.finish();
    compare(
        "i_mixmonitor_ami",
        &capture("i_mixmonitor_ami"),
        &sim,
        false,
    );
}

#[test]
fn queue_call_matches_k1_queue_answered() {
    let mut d = Drive::new(1_795_260_127, 87, 0x28, 0);
    d.play(inbound(
        ScenarioKind::QueueAnswered,
        "+4930555123",
        "5000",
        "102",
        2000,
        13_000,
    ));
    let sim = d.finish();
    compare(
        "k1_queue_answered",
        &capture("k1_queue_answered"),
        &sim,
        false,
    );
}

#[test]
fn restart_matches_j6_restart_reconnect() {
    let mut d = Drive::new(1_795_260_174, 101, 0x30, 0);
    d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4930666777",
        "101",
        "101",
        2000,
        60_000,
    ));
    d.at(5000);
    d.pbx.restart(d.now);
    d.collect();
    let sim = keep(std::mem::take(&mut d.events));
    compare(
        "j6_restart_reconnect.conn1",
        &capture("j6_restart_reconnect.conn1"),
        &sim,
        false,
    );
    assert_eq!(name(sim.last().unwrap()), "Shutdown");
    assert_eq!(d.pbx.live_calls(), vec![]);
    // A new call after the restart starts the counters again, under a later epoch.
    d.at(5100);
    let linkedid = d.play(inbound(
        ScenarioKind::InboundMissed,
        "+4930666778",
        "101",
        "101",
        100,
        0,
    ));
    let (epoch, seq) = linkedid.split_once('.').unwrap();
    assert_eq!(seq, "0");
    assert!(epoch.parse::<u64>().unwrap() >= 1_795_260_179, "{linkedid}");
    assert!(
        d.events
            .iter()
            .any(|e| get(e, "Channel") == Some("SIP/trunk-00000000"))
    );
}

#[test]
fn a_restart_within_the_same_second_never_reuses_a_uniqueid() {
    let mut d = Drive::new(1_795_260_174, 0, 0, 0);
    let first = d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4930666777",
        "101",
        "101",
        100,
        60_000,
    ));
    assert_eq!(first, "1795260174.0");
    d.at(200);
    d.pbx.restart(d.now);
    d.collect();
    let again = d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4930666777",
        "101",
        "101",
        100,
        60_000,
    ));
    assert_eq!(again, "1795260175.0");
}

#[test]
fn error_texts_match_j2_errors_unknown_action() {
    let mut d = Drive::new(1_795_260_100, 0, 0, 0);
    let real = decode(&calldesk_fixtures::ami_rx("j2_errors_unknown_action"), true);
    let want = |id: &str| {
        real.iter()
            .find(|e| get(e, "ActionID") == Some(id))
            .and_then(|e| get(e, "Message"))
            .unwrap()
            .to_owned()
    };
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("j2-002", &[("Action", "FooBarBaz")]),
        ("no-action-header", &[("Channel", "SIP/101")]),
        (
            "j2-003",
            &[
                ("Action", "Originate"),
                ("Context", "from-internal"),
                ("Exten", "101"),
                ("Priority", "1"),
            ],
        ),
        (
            "j2-004",
            &[("Action", "Hangup"), ("Channel", "SIP/999-00000000")],
        ),
        (
            "j2-005",
            &[
                ("Action", "Redirect"),
                ("Channel", "SIP/999-00000000"),
                ("Context", "x"),
                ("Exten", "1"),
                ("Priority", "1"),
            ],
        ),
        (
            "j2-007",
            &[
                ("Action", "Getvar"),
                ("Channel", "SIP/nonexistent-1"),
                ("Variable", "CALLERID(num)"),
            ],
        ),
        (
            "j2-008",
            &[
                ("Action", "QueueAdd"),
                ("Queue", "no-such-queue"),
                ("Interface", "SIP/101"),
            ],
        ),
    ];
    for (id, pairs) in cases {
        let mut pairs = pairs.to_vec();
        pairs.push(("ActionID", id));
        let r = d.action(&pairs);
        assert_eq!(get(&r[0], "Response"), Some("Error"), "{id}");
        assert_eq!(get(&r[0], "ActionID"), Some(*id));
        assert_eq!(msg(&r), Some(want(id)), "{id}");
    }
    let r = d.action(&[
        ("Action", "Getvar"),
        ("ActionID", "j2-006"),
        ("Variable", "EPOCH"),
    ]);
    assert_eq!(get(&r[0], "Value"), Some("1795260100"));
    // Garbage never panics and always gets an answer.
    for junk in [
        "",
        " ",
        "\u{0}",
        "Originate",
        "Park",
        "Atxfer",
        "BlindTransfer",
        "MixMonitorMute",
        "QueuePause",
        "Status",
    ] {
        let r = d.action(&[
            ("Action", junk),
            ("Channel", "\u{1}x/"),
            ("Exten", "%%"),
            ("Priority", "x"),
        ]);
        assert!(!r.is_empty(), "{junk}");
    }
}

#[test]
fn list_shapes_match_j3_coreshowchannels_active_call() {
    let mut d = Drive::new(1_795_260_104, 84, 0x26, 0);
    d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4930123000",
        "101",
        "101",
        1000,
        20_000,
    ));
    d.at(4000);
    let real = decode(
        &calldesk_fixtures::ami_rx("j3_coreshowchannels_active_call"),
        true,
    );
    for (action, id) in [("CoreShowChannels", "j3-002"), ("Status", "j3-003")] {
        let sim = d.action(&[("Action", action), ("ActionID", id)]);
        let want: Vec<&Ev> = real
            .iter()
            .filter(|e| get(e, "ActionID") == Some(id))
            .collect();
        assert_eq!(sim.len(), want.len(), "{action}");
        for (s, r) in sim.iter().zip(want) {
            let sk: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
            let rk: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(sk, rk, "{action}");
            for k in [
                "Channel",
                "ChannelState",
                "Context",
                "Exten",
                "Application",
                "ApplicationData",
                "Data",
                "ListItems",
                "Items",
                "EventList",
                "Message",
                "DNID",
            ] {
                let map = |v: Option<&str>| {
                    v.map(|v| {
                        v.replace("-00000027", "-X")
                            .replace("-00000026", "-X")
                            .replace("SIP/101-X", "101")
                            .replace("SIP/trunk-X", "trunk")
                    })
                };
                let (sv, rv) = (map(get(s, k)), map(get(r, k)));
                assert_eq!(sv, rv, "{action} {k}");
            }
        }
        // Every item names the same bridge.
        let bridges: Vec<&str> = sim
            .iter()
            .filter_map(|e| get(e, "BridgeId").or(get(e, "BridgeID")))
            .collect();
        assert!(bridges.len() == 2 && bridges[0] == bridges[1] && !bridges[0].is_empty());
    }
}

#[test]
fn queue_pause_matches_k3_queue_member_mgmt() {
    let mut d = Drive::new(1_795_260_172, 0, 0, 0);
    let real = decode(&calldesk_fixtures::ami_rx("k3_queue_member_mgmt"), true);
    let r = d.action(&[
        ("Action", "QueueAdd"),
        ("ActionID", "k3-002"),
        ("Queue", "support"),
        ("Interface", "SIP/103"),
        ("Penalty", "1"),
        ("MemberName", "Carol Supervisor"),
        ("StateInterface", "SIP/103"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Added interface to queue"));
    let r = d.action(&[
        ("Action", "QueuePause"),
        ("ActionID", "k3-003"),
        ("Queue", "support"),
        ("Interface", "SIP/103"),
        ("Paused", "true"),
        ("Reason", "Lunch"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Interface paused successfully"));
    let r = d.action(&[
        ("Action", "QueuePause"),
        ("ActionID", "k3-005"),
        ("Interface", "SIP/103"),
        ("Paused", "false"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Interface unpaused successfully"));
    let sim: Vec<Ev> = std::mem::take(&mut d.events)
        .into_iter()
        .filter(|e| matches!(name(e), "QueueMemberPause" | "QueueMemberAdded"))
        .collect();
    let want: Vec<&Ev> = real
        .iter()
        .filter(|e| e[0].0 == "Event" && matches!(name(e), "QueueMemberPause" | "QueueMemberAdded"))
        .collect();
    assert_eq!(sim.len(), want.len());
    for (s, r) in sim.iter().zip(want) {
        let sk: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
        let rk: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(sk, rk);
        for k in [
            "Event",
            "Queue",
            "MemberName",
            "Interface",
            "Membership",
            "Penalty",
            "Paused",
            "PausedReason",
            "LastPause",
            "Status",
        ] {
            assert_eq!(get(s, k), get(r, k), "{} {k}", name(r));
        }
    }
    let r = d.action(&[
        ("Action", "QueuePause"),
        ("Interface", "SIP/999"),
        ("Paused", "true"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Interface not found"));
    let r = d.action(&[
        ("Action", "QueueRemove"),
        ("ActionID", "k3-010"),
        ("Queue", "support"),
        ("Interface", "SIP/103"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Removed interface from queue"));
    let r = d.action(&[
        ("Action", "QueueRemove"),
        ("ActionID", "k3-011"),
        ("Queue", "support"),
        ("Interface", "SIP/103"),
    ]);
    assert_eq!(
        msg(&r).as_deref(),
        Some("Unable to remove interface: Not there")
    );
    let r = d.action(&[("Action", "Queues"), ("ActionID", "k3-012")]);
    assert_eq!(
        msg(&r).as_deref(),
        Some(
            "Invalid/unknown command: Queues. Use Action: ListCommands to show available commands."
        )
    );
}

#[test]
fn abandoned_queue_call_has_the_busy_hour_sequence() {
    // z_busy_hour, SIP/trunk-000001b9: HangupRequest, MusicOnHoldStop, DialEnd CANCEL (twice
    // per member), the member's Hangup, QueueCallerAbandon, QueueCallerLeave, Hangup cause 0.
    let mut d = Drive::new(1_795_260_330, 666, 0x1b9, 0);
    d.play(inbound(
        ScenarioKind::QueueAbandoned,
        "+49391317395",
        "5001",
        "221",
        3000,
        0,
    ));
    let sim = d.finish();
    let names: Vec<&str> = sim.iter().map(name).collect();
    let tail = &names[names.len() - 7..];
    assert_eq!(
        tail,
        [
            "MusicOnHoldStop",
            "DialEnd",
            "DialEnd",
            "Hangup",
            "QueueCallerAbandon",
            "QueueCallerLeave",
            "Hangup"
        ]
    );
    let last = sim.last().unwrap();
    assert_eq!(get(last, "Channel"), Some("SIP/trunk-000001b9"));
    assert_eq!(get(last, "Cause"), Some("0"));
    let ab = sim
        .iter()
        .find(|e| name(e) == "QueueCallerAbandon")
        .unwrap();
    let keys: Vec<&str> = ab.iter().map(|(k, _)| k.as_str()).skip(16).collect();
    assert_eq!(keys, ["Queue", "Position", "OriginalPosition", "HoldTime"]);
    assert_eq!(get(ab, "HoldTime"), Some("3"));
    assert!(
        sim.iter()
            .any(|e| get(e, "DestChannel") == Some("SIP/221-000001ba"))
    );
}

#[test]
fn blind_transfer_follows_the_readme() {
    // No capture: README "BlindTransfer action": Unhold on the transferer, then BlindTransfer
    // (Result Success, Transferer*, Transferee*, Bridge*, IsExternal Yes, Context, Extension),
    // the transferer hung up, the transferee dials the target.
    let mut d = Drive::new(1_795_260_000, 0, 0, 0);
    d.phone("102", PhoneBehaviour::answers_after_ms(500));
    let linkedid = d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4930111222",
        "101",
        "101",
        1000,
        30_000,
    ));
    d.at(3000);
    d.events.clear();
    let r = d.action(&[
        ("Action", "BlindTransfer"),
        ("ActionID", "bt"),
        ("Channel", "SIP/101-00000001"),
        ("Exten", "102"),
        ("Context", "from-internal"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Transfer succeeded"));
    d.at(4000);
    let evs = keep(std::mem::take(&mut d.events));
    let names: Vec<&str> = evs.iter().map(name).collect();
    assert_eq!(&names[..2], ["Unhold", "BlindTransfer"]);
    let bt = &evs[1];
    assert_eq!(get(bt, "Result"), Some("Success"));
    assert_eq!(get(bt, "TransfererChannel"), Some("SIP/101-00000001"));
    assert_eq!(get(bt, "TransfereeChannel"), Some("SIP/trunk-00000000"));
    assert_eq!(get(bt, "IsExternal"), Some("Yes"));
    assert_eq!(get(bt, "Extension"), Some("102"));
    assert!(get(bt, "BridgeUniqueid").is_some());
    let hangup = evs
        .iter()
        .position(|e| name(e) == "Hangup" && get(e, "Channel") == Some("SIP/101-00000001"));
    let dial = evs
        .iter()
        .position(|e| name(e) == "DialBegin" && get(e, "DestChannel") == Some("SIP/102-00000002"));
    assert!(
        hangup.is_some() && dial.is_some() && hangup < dial,
        "{names:?}"
    );
    let calls = d.pbx.live_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].linkedid, linkedid);
    assert_eq!(calls[0].operators, ["102"]);
    // Errors.
    let r = d.action(&[
        ("Action", "BlindTransfer"),
        ("Channel", "SIP/nope-1"),
        ("Exten", "102"),
    ]);
    assert_eq!(msg(&r).as_deref(), Some("Channel specified does not exist"));
    let r = d.action(&[("Action", "BlindTransfer"), ("Channel", "SIP/102-00000002")]);
    assert_eq!(msg(&r).as_deref(), Some("No extension specified"));
}

#[test]
fn hangup_action_on_the_transferer_completes_an_attended_transfer() {
    let mut d = Drive::new(1_795_260_000, 0, 0, 0);
    d.phone("102", PhoneBehaviour::answers_after_ms(500));
    d.play(inbound(
        ScenarioKind::InboundAnswered,
        "+4930111222",
        "101",
        "101",
        1000,
        30_000,
    ));
    d.at(2000);
    d.action(&[
        ("Action", "Atxfer"),
        ("Channel", "SIP/101-00000001"),
        ("Exten", "102"),
    ]);
    d.at(3000);
    let r = d.action(&[("Action", "Hangup"), ("Channel", "SIP/101-00000001")]);
    assert_eq!(msg(&r).as_deref(), Some("Channel Hungup"));
    let evs = keep(std::mem::take(&mut d.events));
    assert!(evs.iter().any(|e| name(e) == "AttendedTransfer"));
    let calls = d.pbx.live_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].operators, ["102"]);
    assert_eq!(
        calls[0].channels,
        ["SIP/trunk-00000000", "SIP/102-00000002"]
    );
}
