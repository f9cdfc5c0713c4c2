//! Synthetic call history for the search tests and the search benchmark: deterministic, with
//! Russian numbers in the formats PBXs report, names, companies, queues and operators.
#![allow(dead_code)]

use calldesk_wire::{CallStateView, CallStatusView, CallView, DirectionView, PartyView};

pub const NAMES: [&str; 8] = [
    "Иван Петров",
    "Ostap Bender",
    "Мария Сидорова",
    "Anna Karenina",
    "Пётр Иванов",
    "Olga Smirnova",
    "Сергей Кузнецов",
    "Nikolai Gogol",
];
pub const COMPANIES: [&str; 5] = [
    "Рога и копыта",
    "Horns and Hooves",
    "Ромашка",
    "Acme",
    "Вектор",
];
pub const QUEUES: [&str; 3] = ["sales", "support", "billing"];
pub const OPERATORS: [&str; 6] = ["101", "102", "103", "104", "105", "201"];

/// splitmix64: the same `i` always gives the same call.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The caller's ten national digits of call `i` (about 200 000 distinct callers).
pub fn caller_digits(i: u64) -> String {
    format!("9{:09}", mix(i % 200_000) % 1_000_000_000)
}

fn party(raw: String, e164: Option<String>, name: Option<String>) -> PartyView {
    PartyView {
        display: raw.clone(),
        raw,
        e164,
        name,
    }
}

/// Call number `i`, started `i` minutes after a fixed day.
pub fn call(i: u64) -> CallView {
    let r = mix(i ^ 0x5eed);
    let national = caller_digits(i);
    // Raw numbers as PBXs give them: 8…, +7…, 7….
    let raw = match r % 3 {
        0 => format!("8{national}"),
        1 => format!("+7{national}"),
        _ => format!("7{national}"),
    };
    let operator = OPERATORS[(r >> 8) as usize % OPERATORS.len()];
    let answered = !(r >> 16).is_multiple_of(4);
    let started = 1_767_225_600_000 + i as i64 * 60_000;
    CallView {
        id: format!("call-{i}"),
        direction: if (r >> 20).is_multiple_of(5) {
            DirectionView::Outbound
        } else {
            DirectionView::Inbound
        },
        from: party(
            raw,
            Some(format!("+7{national}")),
            (r >> 24)
                .is_multiple_of(3)
                .then(|| NAMES[(r >> 28) as usize % NAMES.len()].to_owned()),
        ),
        to: party(operator.to_owned(), None, None),
        state: CallStateView::Ended,
        status: Some(if answered {
            CallStatusView::Answered
        } else {
            CallStatusView::Missed
        }),
        operator: Some(operator.to_owned()),
        started_at: started,
        answered_at: answered.then_some(started + 5_000),
        ended_at: Some(started + 65_000),
        ring_seconds: Some(5),
        talk_seconds: answered.then_some(60),
        hangup_cause: None,
        company: (r >> 32)
            .is_multiple_of(4)
            .then(|| COMPANIES[(r >> 36) as usize % COMPANIES.len()].to_owned()),
        queue: Some(QUEUES[(r >> 40) as usize % QUEUES.len()].to_owned()),
        on_hold: false,
        rang: vec![operator.to_owned()],
        monitors: Vec::new(),
        event_at: None,
        recordings: Vec::new(),
    }
}
