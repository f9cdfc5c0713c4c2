//! Scripted Mango calls ([`MangoScenario`]) and [`render`], which plays one on a fresh fake VPBX
//! and returns its webhooks in the order of the reference's §6, timed in simulated
//! milliseconds; [`to_jsonl`] writes them in the replay-file format of `calldesk mango replay`.

use serde::Serialize;

use super::engine::Vpbx;
use super::ids::Ids;
use super::model::{Delivery, Employee, EngineConfig, Timings, demo_employees};

/// A scripted call. Numbers are strings as Mango sends them (`79161234567`, lines `74951234567`,
/// extensions `101`). Timings come from [`Timings`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MangoScenario {
    /// §6.1: the IVR leg (Appeared, Disconnected 1100), the operator leg via group 500
    /// (Appeared, Connected, Disconnected 1110 when the caller hangs up), the summary.
    InboundAnswered {
        caller: String,
        line: String,
        operator: String,
    },
    /// §6.2: every operator rings (group ringing); the caller gives up, every ringing leg gets
    /// its own Disconnected 1110; summary with `talk_time` 0, `to` the first operator.
    InboundMissed {
        caller: String,
        line: String,
        operators: Vec<String>,
    },
    /// §6.3: the operator dials out and the number is busy (1121).
    OutboundBusy { operator: String, number: String },
    /// §6.4: answered by `from_op`, who transfers blind to `to_op` (a scripted `commands/transfer`:
    /// `/result/transfer`, the old leg Disconnected 1120 with `from.was_transferred`, a new leg
    /// with `transfer":"blind"` and the `command_id`); `to_op` answers, then the caller hangs up.
    BlindTransfer {
        caller: String,
        line: String,
        from_op: String,
        to_op: String,
    },
    /// §6.5: answered, the operator puts the caller on hold (OnHold with `hold_initiator`), then
    /// Connected again; the caller hangs up later.
    Hold {
        caller: String,
        line: String,
        operator: String,
    },
    /// §6.6: answered and recorded automatically: `/events/recording` Started at the answer,
    /// Completed (1000, Cloud) at the end, then the summary, then `/events/record/added`.
    Recorded {
        caller: String,
        line: String,
        operator: String,
    },
    /// §3.2: `/result/callback`, leg 1 rings the operator (with the `command_id`), the operator
    /// answers, leg 1 is Disconnected (1100), leg 2 (`taken_from_call_id` = leg 1) rings the
    /// number: Connected then the operator hangs up (1110), or Disconnected 1111.
    Callback {
        operator: String,
        number: String,
        customer_answers: bool,
    },
}

impl MangoScenario {
    /// One example of every kind (a callback both answered and not), each with its own caller
    /// number, operators 101–103 and line 74951234567: what tests and demos play.
    pub fn examples() -> Vec<MangoScenario> {
        vec![
            MangoScenario::InboundAnswered {
                caller: String::from("79161234567"),
                line: String::from("74951234567"),
                operator: String::from("101"),
            },
            MangoScenario::InboundMissed {
                caller: String::from("79161234568"),
                line: String::from("74951234567"),
                operators: vec![String::from("101"), String::from("102")],
            },
            MangoScenario::OutboundBusy {
                operator: String::from("101"),
                number: String::from("79161234569"),
            },
            MangoScenario::BlindTransfer {
                caller: String::from("79161234570"),
                line: String::from("74951234567"),
                from_op: String::from("101"),
                to_op: String::from("102"),
            },
            MangoScenario::Hold {
                caller: String::from("79161234571"),
                line: String::from("74951234567"),
                operator: String::from("103"),
            },
            MangoScenario::Recorded {
                caller: String::from("79161234572"),
                line: String::from("74951234567"),
                operator: String::from("101"),
            },
            MangoScenario::Callback {
                operator: String::from("102"),
                number: String::from("79161234573"),
                customer_answers: true,
            },
            MangoScenario::Callback {
                operator: String::from("102"),
                number: String::from("79161234574"),
                customer_answers: false,
            },
        ]
    }
}

/// The webhooks of `scenario` started at `start_unix` (Unix seconds), with ids from `ids`, the
/// default [`Timings`] and the demo employees (101 Ivanov, 102 Petrov, 103 Sidorova; other
/// extensions get a stand-in). Always ends with `events/summary` (then `events/record/added`
/// for recordings).
pub fn render(scenario: &MangoScenario, ids: &Ids, start_unix: i64) -> Vec<Delivery> {
    render_with(
        scenario,
        ids,
        start_unix,
        &Timings::default(),
        &demo_employees(),
    )
}

/// [`render`] with other timings and employees.
pub fn render_with(
    scenario: &MangoScenario,
    ids: &Ids,
    start_unix: i64,
    timings: &Timings,
    employees: &[Employee],
) -> Vec<Delivery> {
    let cfg = EngineConfig {
        timings: timings.clone(),
        employees: employees.to_vec(),
        ..EngineConfig::default()
    };
    let mut vpbx = Vpbx::new(cfg, ids.clone(), start_unix);
    vpbx.play(scenario);
    vpbx.run_to_end(10_000);
    vpbx.drain()
}

#[derive(Serialize)]
struct JsonlLine<'a> {
    path: String,
    json: &'a str,
}

/// One line per webhook: `{"path":"/events/call","json":"<the raw json string>"}`, each ended
/// by `\n` (the replay-file format of `calldesk mango replay`).
pub fn to_jsonl(deliveries: &[Delivery]) -> String {
    let mut out = String::new();
    for d in deliveries {
        let line = JsonlLine {
            path: format!("/{}", d.path.trim_start_matches('/')),
            json: &d.json,
        };
        match serde_json::to_string(&line) {
            Ok(s) => {
                out.push_str(&s);
                out.push('\n');
            }
            Err(e) => tracing::error!(%e, "a replay line did not serialise"),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use calldesk_mango_proto::webhook::{LegState, Route, TransferMark, Webhook};
    use serde_json::Value;

    use super::*;

    const START: i64 = 1_716_800_000;

    fn s(v: &str) -> String {
        v.to_owned()
    }

    fn all() -> Vec<MangoScenario> {
        vec![
            MangoScenario::InboundAnswered {
                caller: s("79161234567"),
                line: s("74951234567"),
                operator: s("101"),
            },
            MangoScenario::InboundMissed {
                caller: s("79161234567"),
                line: s("74951234567"),
                operators: vec![s("101"), s("102")],
            },
            MangoScenario::OutboundBusy {
                operator: s("101"),
                number: s("79161234567"),
            },
            MangoScenario::BlindTransfer {
                caller: s("79161234567"),
                line: s("74951234567"),
                from_op: s("101"),
                to_op: s("102"),
            },
            MangoScenario::Hold {
                caller: s("79161234567"),
                line: s("74951234567"),
                operator: s("101"),
            },
            MangoScenario::Recorded {
                caller: s("79161234567"),
                line: s("74951234567"),
                operator: s("101"),
            },
            MangoScenario::Callback {
                operator: s("101"),
                number: s("79161234567"),
                customer_answers: true,
            },
            MangoScenario::Callback {
                operator: s("102"),
                number: s("79035550101"),
                customer_answers: false,
            },
        ]
    }

    fn parse(d: &Delivery) -> Webhook {
        let route = Route::from_path(&d.path).unwrap();
        Webhook::parse(&route, &d.json).unwrap_or_else(|e| panic!("{}: {e}: {}", d.path, d.json))
    }

    fn json(d: &Delivery) -> Value {
        serde_json::from_str(&d.json).unwrap()
    }

    fn calls(ds: &[Delivery]) -> Vec<calldesk_mango_proto::webhook::CallLeg> {
        ds.iter()
            .filter_map(|d| match parse(d) {
                Webhook::Call(c) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// (call_state, disconnect_reason) per event of the leg `call_id`.
    fn states(ds: &[Delivery], call_id: &str) -> Vec<(LegState, Option<u32>)> {
        calls(ds)
            .into_iter()
            .filter(|c| c.call_id == call_id)
            .map(|c| (c.state, c.disconnect_reason.map(|r| r.0)))
            .collect()
    }

    /// Distinct call ids in order of appearance.
    fn legs(ds: &[Delivery]) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for c in calls(ds) {
            if !out.contains(&c.call_id) {
                out.push(c.call_id);
            }
        }
        out
    }

    #[test]
    fn every_scenario_parses_with_seq_in_order_and_summary_last() {
        let ids = Ids::new(3);
        for sc in all() {
            let ds = render(&sc, &ids, START);
            assert!(ds.len() >= 3, "{sc:?}");
            let mut last_seq: HashMap<String, u64> = HashMap::new();
            let mut last_rec_seq: HashMap<String, u64> = HashMap::new();
            let mut entry = None;
            for w in ds.windows(2) {
                assert!(w[0].at_ms <= w[1].at_ms, "{sc:?}: time goes back");
            }
            for d in &ds {
                assert!(
                    !d.json.contains(": ") && !d.json.contains(", "),
                    "compact: {}",
                    d.json
                );
                let hook = parse(d);
                if let Some(e) = hook.entry_id() {
                    assert_eq!(
                        *entry.get_or_insert(e.to_owned()),
                        e,
                        "{sc:?}: one entry_id"
                    );
                }
                match hook {
                    Webhook::Call(c) => {
                        let prev = last_seq.insert(c.call_id.clone(), c.seq).unwrap_or(0);
                        assert!(c.seq > prev, "{sc:?}: seq {} after {prev}", c.seq);
                        assert_eq!(c.seq, prev + 1, "{sc:?}: seq starts at 1, step 1");
                        assert!(!c.legacy);
                        assert!(c.timestamp >= START);
                        assert_eq!(
                            c.state == LegState::Disconnected,
                            c.disconnect_reason.is_some(),
                            "{sc:?}: a reason exactly on Disconnected"
                        );
                        assert!(json(d)["dct"]["type"] == 0);
                    }
                    Webhook::Recording(r) => {
                        let prev = last_rec_seq
                            .insert(r.recording_id.clone(), r.seq)
                            .unwrap_or(0);
                        assert_eq!(r.seq, prev + 1);
                    }
                    _ => {}
                }
            }
            // Every leg ends Disconnected.
            for leg in legs(&ds) {
                assert_eq!(
                    states(&ds, &leg).last().map(|s| s.0),
                    Some(LegState::Disconnected)
                );
            }
            let summaries: Vec<usize> = (0..ds.len())
                .filter(|&i| ds[i].path == "events/summary")
                .collect();
            assert_eq!(summaries.len(), 1, "{sc:?}");
            let after: Vec<&str> = ds[summaries[0] + 1..]
                .iter()
                .map(|d| d.path.as_str())
                .collect();
            if matches!(sc, MangoScenario::Recorded { .. }) {
                assert_eq!(after, vec!["events/record/added"]);
            } else {
                assert!(after.is_empty(), "{sc:?}: {after:?}");
            }
        }
    }

    #[test]
    fn inbound_answered_is_the_reference_example() {
        let ids = Ids::new(0);
        let ds = render(&all()[0], &ids, START);
        let paths: Vec<&str> = ds.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            ["events/call"; 5]
                .iter()
                .copied()
                .chain(["events/summary"])
                .collect::<Vec<_>>()
        );
        let l = legs(&ds);
        let [ivr, op] = &l[..] else {
            panic!("two legs")
        };
        let entry = json(&ds[0])["entry_id"].as_str().unwrap().to_owned();
        let sip = "sip:ivanov@vpbx400000000.mangosip.ru";
        assert_eq!(
            ds[0].json,
            format!(
                r#"{{"entry_id":"{entry}","call_id":"{ivr}","timestamp":1716800000,"seq":1,"call_state":"Appeared","location":"ivr","from":{{"number":"79161234567","line_number":"74951234567"}},"to":{{"number":"74951234567","line_number":"74951234567"}},"dct":{{"type":0}}}}"#
            )
        );
        assert_eq!(
            ds[1].json,
            format!(
                r#"{{"entry_id":"{entry}","call_id":"{ivr}","timestamp":1716800009,"seq":2,"call_state":"Disconnected","location":"ivr","from":{{"number":"79161234567","line_number":"74951234567"}},"to":{{"number":"74951234567","line_number":"74951234567"}},"disconnect_reason":1100,"dct":{{"type":0}}}}"#
            )
        );
        let leg_b = format!(
            r#""from":{{"number":"79161234567","taken_from_call_id":"{ivr}","line_number":"74951234567"}},"to":{{"extension":"101","number":"{sip}","line_number":"74951234567","acd_group":"500"}}"#
        );
        assert_eq!(
            ds[2].json,
            format!(
                r#"{{"entry_id":"{entry}","call_id":"{op}","timestamp":1716800009,"seq":1,"call_state":"Appeared","location":"abonent",{leg_b},"dct":{{"type":0}}}}"#
            )
        );
        assert_eq!(
            ds[3].json,
            format!(
                r#"{{"entry_id":"{entry}","call_id":"{op}","timestamp":1716800014,"seq":2,"call_state":"Connected","location":"abonent",{leg_b},"dct":{{"type":0}}}}"#
            )
        );
        assert_eq!(
            ds[4].json,
            format!(
                r#"{{"entry_id":"{entry}","call_id":"{op}","timestamp":1716800044,"seq":3,"call_state":"Disconnected","location":"abonent",{leg_b},"disconnect_reason":1110,"dct":{{"type":0}}}}"#
            )
        );
        assert_eq!(
            ds[5].json,
            format!(
                r#"{{"entry_id":"{entry}","call_direction":1,"from":{{"number":"79161234567"}},"to":{{"extension":"101","number":"{sip}"}},"line_number":"74951234567","create_time":1716800000,"forward_time":1716800009,"talk_time":1716800014,"end_time":1716800044,"entry_result":1,"disconnect_reason":1110}}"#
            )
        );
        assert_eq!(
            ds.iter().map(|d| d.at_ms).collect::<Vec<_>>(),
            [0, 9000, 9000, 14000, 44000, 44000]
        );
    }

    #[test]
    fn missed_group_call_ends_every_leg() {
        let ds = render(&all()[1], &Ids::new(1), START);
        let l = legs(&ds);
        assert_eq!(l.len(), 3);
        for op in &l[1..] {
            assert_eq!(
                states(&ds, op),
                [
                    (LegState::Appeared, None),
                    (LegState::Disconnected, Some(1110))
                ]
            );
        }
        let exts: Vec<Option<String>> = calls(&ds)
            .iter()
            .skip(2)
            .take(2)
            .map(|c| c.to.extension.clone())
            .collect();
        assert_eq!(exts, [Some(s("101")), Some(s("102"))]);
        let sum = json(ds.last().unwrap());
        assert_eq!(sum["talk_time"], 0);
        assert_eq!(sum["entry_result"], 0);
        assert_eq!(sum["disconnect_reason"], 1110);
        assert_eq!(sum["to"]["extension"], "101");
        assert_eq!(sum["forward_time"], START + 9);
        assert_eq!(sum["end_time"], START + 9 + 25);
    }

    #[test]
    fn outbound_busy_is_the_reference_example() {
        let ds = render(&all()[2], &Ids::new(2), START);
        assert_eq!(ds.len(), 3);
        let sip = "sip:ivanov@vpbx400000000.mangosip.ru";
        let e = json(&ds[0]);
        let (entry, call) = (
            e["entry_id"].as_str().unwrap(),
            e["call_id"].as_str().unwrap(),
        );
        assert_eq!(
            ds[0].json,
            format!(
                r#"{{"entry_id":"{entry}","call_id":"{call}","timestamp":1716800000,"seq":1,"call_state":"Appeared","location":"abonent","from":{{"extension":"101","number":"{sip}","line_number":"74951234567"}},"to":{{"number":"79161234567"}},"dct":{{"type":0}}}}"#
            )
        );
        assert_eq!(states(&ds, call)[1], (LegState::Disconnected, Some(1121)));
        assert_eq!(json(&ds[1])["timestamp"], START + 4);
        assert_eq!(
            ds[2].json,
            format!(
                r#"{{"entry_id":"{entry}","call_direction":2,"from":{{"extension":"101","number":"{sip}"}},"to":{{"number":"79161234567"}},"line_number":"74951234567","create_time":1716800000,"forward_time":1716800000,"talk_time":0,"end_time":1716800004,"entry_result":0,"disconnect_reason":1121}}"#
            )
        );
    }

    #[test]
    fn blind_transfer_follows_6_4() {
        let ds = render(&all()[3], &Ids::new(4), START);
        let l = legs(&ds);
        assert_eq!(l.len(), 3);
        let i = ds.iter().position(|d| d.path == "result/transfer").unwrap();
        let Webhook::Result(r) = parse(&ds[i]) else {
            panic!()
        };
        assert_eq!(r.command.as_str(), "transfer");
        assert_eq!(r.result.map(|c| c.0), Some(1000));
        let command_id = r.command_id.unwrap();
        // Right after the result: the old leg ends (1120, the caller was transferred), then the
        // new leg rings 102.
        let Webhook::Call(old) = parse(&ds[i + 1]) else {
            panic!()
        };
        assert_eq!(
            (old.call_id.as_str(), old.disconnect_reason.map(|c| c.0)),
            (l[1].as_str(), Some(1120))
        );
        assert_eq!(old.from.was_transferred, Some(true));
        assert_eq!(old.to.was_transferred, None);
        let Webhook::Call(new) = parse(&ds[i + 2]) else {
            panic!()
        };
        assert_eq!(new.state, LegState::Appeared);
        assert_eq!(new.transfer, Some(TransferMark::Blind));
        assert_eq!(new.command_id.as_deref(), Some(command_id.as_str()));
        assert_eq!(new.from.taken_from_call_id.as_deref(), Some(l[1].as_str()));
        assert_eq!(new.from.number.as_deref(), Some("79161234567"));
        assert_eq!(new.to.extension.as_deref(), Some("102"));
        assert_eq!(
            states(&ds, &l[2]),
            [
                (LegState::Appeared, None),
                (LegState::Connected, None),
                (LegState::Disconnected, Some(1110))
            ]
        );
        let sum = json(ds.last().unwrap());
        assert_eq!(sum["to"]["extension"], "102");
        assert_eq!(sum["entry_result"], 1);
    }

    #[test]
    fn hold_marks_the_initiator_then_resumes() {
        let ds = render(&all()[4], &Ids::new(5), START);
        let op = legs(&ds)[1].clone();
        assert_eq!(
            states(&ds, &op),
            [
                (LegState::Appeared, None),
                (LegState::Connected, None),
                (LegState::OnHold, None),
                (LegState::Connected, None),
                (LegState::Disconnected, Some(1110))
            ]
        );
        let on_hold: Vec<Value> = ds
            .iter()
            .map(json)
            .filter(|j| j["call_state"] == "OnHold")
            .collect();
        assert_eq!(on_hold[0]["from"]["hold_initiator"], false);
        assert_eq!(on_hold[0]["to"]["hold_initiator"], true);
        assert_eq!(on_hold[0]["seq"], 3);
        let resumed: Vec<Value> = ds.iter().map(json).filter(|j| j["seq"] == 4).collect();
        assert_eq!(resumed[0]["call_state"], "Connected");
        assert!(resumed[0]["to"].get("hold_initiator").is_none());
        assert_eq!(
            resumed[0]["timestamp"].as_i64().unwrap() - on_hold[0]["timestamp"].as_i64().unwrap(),
            15
        );
    }

    #[test]
    fn recording_lifecycle_follows_6_6() {
        let ds = render(&all()[5], &Ids::new(6), START);
        let op = legs(&ds)[1].clone();
        let paths: Vec<&str> = ds.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "events/call",
                "events/call",
                "events/call",
                "events/call",
                "events/recording",
                "events/call",
                "events/recording",
                "events/summary",
                "events/record/added"
            ]
        );
        let started = json(&ds[4]);
        assert_eq!(started["recording_state"], "Started");
        assert_eq!(started["call_id"], op.as_str());
        assert_eq!(started["extension"], "101");
        assert!(started.get("completion_code").is_none());
        let completed = json(&ds[6]);
        assert_eq!(completed["recording_state"], "Completed");
        assert_eq!(completed["completion_code"], 1000);
        assert_eq!(completed["recipient"], "Cloud");
        assert_eq!(completed["seq"], 2);
        let added = json(&ds[8]);
        assert_eq!(added["recording_id"], started["recording_id"]);
        assert_eq!(added["product_id"], 400_000_000);
        assert_eq!(added["user_id"], 300_050_101);
        assert_eq!(
            added["timestamp"].as_i64(),
            json(&ds[7])["end_time"].as_i64().map(|t| t + 5)
        );
        assert_eq!(ds[8].at_ms, ds[7].at_ms + 5000);
    }

    #[test]
    fn callback_rings_the_operator_then_the_number() {
        let ds = render(&all()[6], &Ids::new(7), START);
        assert_eq!(ds[0].path, "result/callback");
        let command_id = json(&ds[0])["command_id"].as_str().unwrap().to_owned();
        assert_eq!(json(&ds[0])["result"], 1000);
        let l = legs(&ds);
        assert_eq!(l.len(), 2);
        assert_eq!(
            states(&ds, &l[0]),
            [
                (LegState::Appeared, None),
                (LegState::Connected, None),
                (LegState::Disconnected, Some(1100))
            ]
        );
        assert_eq!(
            states(&ds, &l[1]),
            [
                (LegState::Appeared, None),
                (LegState::Connected, None),
                (LegState::Disconnected, Some(1110))
            ]
        );
        let cs = calls(&ds);
        assert!(
            cs.iter()
                .all(|c| c.command_id.as_deref() == Some(command_id.as_str()))
        );
        assert_eq!(cs[0].to.extension.as_deref(), Some("101"));
        assert_eq!(cs[0].from.number.as_deref(), Some("79161234567"));
        let second = cs.iter().find(|c| c.call_id == l[1]).unwrap();
        assert_eq!(
            second.from.taken_from_call_id.as_deref(),
            Some(l[0].as_str())
        );
        assert_eq!(second.from.extension.as_deref(), Some("101"));
        assert_eq!(second.to.number.as_deref(), Some("79161234567"));
        let sum = json(ds.last().unwrap());
        assert_eq!(sum["call_direction"], 2);
        assert!(sum["talk_time"].as_i64().unwrap() > 0);
        assert_eq!(sum["to"]["number"], "79161234567");

        let ds = render(&all()[7], &Ids::new(7), START);
        let l = legs(&ds);
        assert_eq!(
            states(&ds, &l[1]),
            [
                (LegState::Appeared, None),
                (LegState::Disconnected, Some(1111))
            ]
        );
        let sum = json(ds.last().unwrap());
        assert_eq!(
            (sum["talk_time"].as_i64(), sum["entry_result"].as_i64()),
            (Some(0), Some(0))
        );
        assert_eq!(sum["disconnect_reason"], 1111);
    }

    #[test]
    fn ids_are_fresh_per_render_and_deterministic_per_seed() {
        let ids = Ids::new(9);
        let a = render(&all()[0], &ids, START);
        let b = render(&all()[0], &ids, START);
        assert_ne!(json(&a[0])["entry_id"], json(&b[0])["entry_id"]);
        assert_ne!(legs(&a), legs(&b));
        assert_eq!(render(&all()[0], &Ids::new(9), START), a);
    }

    #[test]
    fn jsonl_lines_hold_the_raw_json() {
        let ds = render(&all()[2], &Ids::new(1), START);
        let text = to_jsonl(&ds);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), ds.len());
        assert!(text.ends_with('\n'));
        assert!(
            lines[0].starts_with(r#"{"path":"/events/call","json":"{\"entry_id\":"#),
            "{}",
            lines[0]
        );
        for (line, d) in lines.iter().zip(&ds) {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["path"], format!("/{}", d.path));
            assert_eq!(v["json"], d.json.as_str());
        }
    }
}
