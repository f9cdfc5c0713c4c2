//! The key test: the simulator's scenarios against the real Asterisk 20 captures.
//!
//! For a/b/c: decode the capture, keep the call-relevant events (CEL and the RTPAUDIOQOS*
//! VarSets are dropped), render the same scenario (same caller, DID, extension), and compare
//! event names, header names in order, and the values that define the call.

// Test-only helpers outside #[test] fns may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame};
use calldesk_sim::scenario::{CallIds, IdAllocator, render};
use calldesk_sim::{ScenarioCall, ScenarioKind};

const KEEP: &[&str] = &[
    "Newchannel",
    "Newstate",
    "Newexten",
    "VarSet",
    "DialBegin",
    "DialState",
    "DialEnd",
    "NewConnectedLine",
    "BridgeCreate",
    "BridgeEnter",
    "BridgeLeave",
    "BridgeDestroy",
    "HangupRequest",
    "SoftHangupRequest",
    "Hangup",
    "DeviceStateChange",
    "Cdr",
    "MixMonitorStart",
];

const KEY_VALUES: &[&str] = &[
    "ChannelState",
    "ChannelStateDesc",
    "DestChannelState",
    "DestChannelStateDesc",
    "DialStatus",
    "Cause",
    "Cause-txt",
    "Disposition",
    "CallerIDNum",
    "DestCallerIDNum",
    "Exten",
    "DestExten",
    "Context",
    "DestContext",
    "Variable",
    "Application",
    "Device",
    "State",
    "BridgeNumChannels",
    "Source",
    "Destination",
    "LastApplication",
    "LastData",
    "Duration",
    "BillableSeconds",
];

type Ev = Vec<(String, String)>;

fn relevant(ev: &Ev) -> bool {
    let name = &ev[0].1;
    if !KEEP.contains(&name.as_str()) {
        return false;
    }
    !(name == "VarSet"
        && ev
            .iter()
            .any(|(k, v)| k == "Variable" && v.starts_with("RTPAUDIOQOS")))
}

fn capture_events(name: &str) -> Vec<Ev> {
    let data = calldesk_fixtures::ami_rx(name);
    let mut buf = BytesMut::from(&data[..]);
    let mut dec = AmiDecoder::new();
    let mut out = Vec::new();
    while let Some(f) = dec.decode(&mut buf) {
        if let Frame::Message(m) = f {
            if m.event().is_none() {
                continue;
            }
            let ev: Ev = m
                .fields()
                .map(|(k, v)| {
                    (
                        String::from_utf8_lossy(k).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect();
            if relevant(&ev) {
                out.push(ev);
            }
        }
    }
    out
}

fn sim_events(call: &ScenarioCall, ids: &CallIds) -> Vec<Ev> {
    render(call, ids)
        .unwrap()
        .into_iter()
        .map(|(_, o)| {
            o.headers()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn label(ev: &Ev) -> String {
    let get = |k: &str| {
        ev.iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    format!(
        "{} {} {}{}",
        ev[0].1,
        get("Channel"),
        get("Variable"),
        get("Device")
    )
}

fn compare(capture: &str, call: &ScenarioCall) {
    let real = capture_events(capture);
    let sim = sim_events(call, &IdAllocator::default().next(1_795_259_787));
    assert!(
        real.len() >= 40,
        "{capture}: only {} relevant events decoded",
        real.len()
    );
    let mut problems = Vec::new();
    let names_real: Vec<String> = real.iter().map(label).collect();
    let names_sim: Vec<String> = sim.iter().map(label).collect();
    let real_types: Vec<&str> = real.iter().map(|e| e[0].1.as_str()).collect();
    let sim_types: Vec<&str> = sim.iter().map(|e| e[0].1.as_str()).collect();
    if real_types != sim_types {
        let mut diff = String::new();
        for i in 0..names_real.len().max(names_sim.len()) {
            let r = names_real.get(i).map(String::as_str).unwrap_or("-");
            let s = names_sim.get(i).map(String::as_str).unwrap_or("-");
            let mark = if real_types.get(i) == sim_types.get(i) {
                "  "
            } else {
                "!!"
            };
            diff.push_str(&format!("{mark} {i:3} capture: {r:60} sim: {s}\n"));
        }
        panic!(
            "{capture}: event sequence differs ({} vs {} events)\n{diff}",
            real.len(),
            sim.len()
        );
    }
    for (i, (r, s)) in real.iter().zip(&sim).enumerate() {
        let rk: Vec<&str> = r.iter().map(|(k, _)| k.as_str()).collect();
        let sk: Vec<&str> = s.iter().map(|(k, _)| k.as_str()).collect();
        if rk != sk {
            problems.push(format!(
                "#{i} {}: header names differ\n   capture: {rk:?}\n   sim:     {sk:?}",
                label(r)
            ));
            continue;
        }
        for key in KEY_VALUES {
            let rv: Vec<&str> = r
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            let sv: Vec<&str> = s
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .collect();
            if rv != sv {
                problems.push(format!(
                    "#{i} {}: {key}: capture {rv:?} sim {sv:?}",
                    label(r)
                ));
            }
        }
        // Linkedid of every channel equals the first channel's Uniqueid in both.
    }
    assert!(
        problems.is_empty(),
        "{capture}: {} mismatches\n{}",
        problems.len(),
        problems.join("\n")
    );
}

fn call(kind: ScenarioKind, caller: &str, ring: u64, talk: u64) -> ScenarioCall {
    ScenarioCall {
        kind,
        caller: caller.to_owned(),
        did: "101".to_owned(),
        extension: "101".to_owned(),
        ring: Duration::from_secs(ring),
        talk: Duration::from_secs(talk),
    }
}

#[test]
fn answered_matches_a_inbound_answered() {
    // 101 rings 2 s, talks 3 s (the capture's Cdr: Duration 5, BillableSeconds 3).
    compare(
        "a_inbound_answered",
        &call(ScenarioKind::InboundAnswered, "+4930111222", 2, 3),
    );
}

#[test]
fn missed_matches_b_inbound_noanswer() {
    compare(
        "b_inbound_noanswer",
        &call(ScenarioKind::InboundMissed, "+4989555666", 20, 0),
    );
}

#[test]
fn busy_matches_c_inbound_busy() {
    compare(
        "c_inbound_busy",
        &call(ScenarioKind::InboundBusy, "+442071234567", 0, 0),
    );
}

#[test]
fn ids_follow_asterisk_conventions() {
    let mut alloc = IdAllocator::new(10, 0x0a);
    let c = call(ScenarioKind::InboundAnswered, "+74951234567", 2, 3);
    let first = sim_events(&c, &alloc.next(1_795_259_787));
    let second = sim_events(&c, &alloc.next(1_795_259_800));
    let get = |ev: &Ev, k: &str| ev.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
    assert_eq!(
        get(&first[0], "Channel").as_deref(),
        Some("SIP/trunk-0000000a")
    );
    assert_eq!(get(&first[0], "Uniqueid").as_deref(), Some("1795259787.10"));
    let callee = first
        .iter()
        .find(|e| {
            e[0].1 == "Newchannel" && get(e, "Channel").as_deref() == Some("SIP/101-0000000b")
        })
        .unwrap();
    assert_eq!(get(callee, "Uniqueid").as_deref(), Some("1795259787.11"));
    assert_eq!(get(callee, "Linkedid").as_deref(), Some("1795259787.10"));
    assert_eq!(
        get(&second[0], "Channel").as_deref(),
        Some("SIP/trunk-0000000c")
    );
    assert_eq!(
        get(&second[0], "Uniqueid").as_deref(),
        Some("1795259800.12")
    );
    for ev in &first {
        if let Some(l) = get(ev, "Linkedid") {
            assert_eq!(l, "1795259787.10");
        }
    }
}
