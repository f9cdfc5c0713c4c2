//! Today's figures per operator for the supervisor view: answered calls, missed calls (every
//! operator a missed call rang counts it), average handle time (talk time of answered calls).

use std::collections::BTreeMap;

use calldesk_wire::{CallStatusView, CallView};
use serde::Serialize;

/// One operator's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperatorFigures {
    pub extension: String,
    pub answered: u32,
    pub missed: u32,
    /// Average talk time of the answered calls, whole seconds (none answered: `None`).
    pub average_handle_seconds: Option<i64>,
}

/// Disposition codes when the data folder has no `dispositions.json`.
pub const DEFAULT_DISPOSITIONS: [&str; 6] = [
    "sale",
    "callback",
    "info",
    "complaint",
    "wrong_number",
    "other",
];

/// The disposition list: `dispositions.json` in `data_dir` (a JSON array of codes: letters,
/// digits, `_`, `-`, at most 64), else [`DEFAULT_DISPOSITIONS`]. A damaged file is logged and
/// the defaults serve.
pub fn disposition_codes(data_dir: &std::path::Path) -> Vec<String> {
    let path = data_dir.join("dispositions.json");
    let defaults = || {
        DEFAULT_DISPOSITIONS
            .iter()
            .map(|c| (*c).to_owned())
            .collect()
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) => return defaults(),
    };
    let codes: Vec<String> = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "dispositions.json is not a JSON array of codes; using the defaults");
            return defaults();
        }
    };
    let good = |c: &String| {
        !c.is_empty()
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if codes.is_empty() || !codes.iter().all(good) {
        tracing::warn!(path = %path.display(), "dispositions.json holds an empty list or a code that is not letters, digits, `_` or `-`; using the defaults");
        return defaults();
    }
    codes
}

#[derive(Default)]
struct Tally {
    answered: u32,
    missed: u32,
    talk: i64,
    timed: i64,
}

/// The figures of the ended calls in `calls`, by extension (sorted).
pub fn figures<'a>(calls: impl IntoIterator<Item = &'a CallView>) -> Vec<OperatorFigures> {
    let mut by: BTreeMap<&str, Tally> = BTreeMap::new();
    for call in calls {
        match call.status {
            Some(CallStatusView::Answered) => {
                let Some(operator) = call.operator.as_deref() else {
                    continue;
                };
                let t = by.entry(operator).or_default();
                t.answered += 1;
                if let Some(talk) = call.talk_seconds {
                    t.talk += talk;
                    t.timed += 1;
                }
            }
            Some(CallStatusView::Missed | CallStatusView::NoAnswer) => {
                let mut rang: Vec<&str> = call.rang.iter().map(String::as_str).collect();
                rang.sort_unstable();
                rang.dedup();
                for ext in rang {
                    by.entry(ext).or_default().missed += 1;
                }
            }
            _ => {}
        }
    }
    by.into_iter()
        .map(|(ext, t)| OperatorFigures {
            extension: ext.to_owned(),
            answered: t.answered,
            missed: t.missed,
            average_handle_seconds: (t.timed > 0).then(|| t.talk / t.timed),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use calldesk_wire::{CallStateView, DirectionView, PartyView};

    fn call(
        status: CallStatusView,
        operator: Option<&str>,
        rang: &[&str],
        talk: Option<i64>,
    ) -> CallView {
        let party = |raw: &str| PartyView {
            raw: raw.into(),
            e164: None,
            display: raw.into(),
            name: None,
        };
        CallView {
            id: "x".into(),
            direction: DirectionView::Inbound,
            from: party("+74951234567"),
            to: party("0367"),
            state: CallStateView::Ended,
            status: Some(status),
            operator: operator.map(Into::into),
            started_at: 0,
            answered_at: None,
            ended_at: Some(1),
            ring_seconds: None,
            talk_seconds: talk,
            hangup_cause: None,
            company: None,
            queue: None,
            on_hold: false,
            rang: rang.iter().map(|s| (*s).to_owned()).collect(),
            monitors: vec![],
            event_at: None,
        }
    }

    #[test]
    fn the_disposition_list_comes_from_the_data_folder_or_the_defaults() {
        let dir =
            std::env::temp_dir().join(format!("calldesk-dispositions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dispositions.json");
        let _ = std::fs::remove_file(&file);
        assert_eq!(disposition_codes(&dir), DEFAULT_DISPOSITIONS);
        std::fs::write(&file, r#"["sold","lost"]"#).unwrap();
        assert_eq!(disposition_codes(&dir), ["sold", "lost"]);
        std::fs::write(&file, r#"["ok","bad code\nX"]"#).unwrap();
        assert_eq!(disposition_codes(&dir), DEFAULT_DISPOSITIONS);
        std::fs::write(&file, b"not json").unwrap();
        assert_eq!(disposition_codes(&dir), DEFAULT_DISPOSITIONS);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn answered_missed_and_average_handle_time_per_operator() {
        let calls = [
            call(CallStatusView::Answered, Some("101"), &["101"], Some(60)),
            call(
                CallStatusView::Answered,
                Some("101"),
                &["102", "101"],
                Some(121),
            ),
            // A queue call nobody took counts as missed for everyone it rang, once each.
            call(CallStatusView::Missed, None, &["101", "102", "101"], None),
            call(CallStatusView::NoAnswer, None, &["103"], None),
            // Busy and failed calls are nobody's miss.
            call(CallStatusView::Busy, None, &["104"], None),
            call(CallStatusView::Answered, Some("105"), &["105"], None),
        ];
        let f = figures(&calls);
        let by = |ext: &str| f.iter().find(|o| o.extension == ext).cloned().unwrap();
        assert_eq!(
            f.iter().map(|o| o.extension.as_str()).collect::<Vec<_>>(),
            ["101", "102", "103", "105"]
        );
        assert_eq!(
            (
                by("101").answered,
                by("101").missed,
                by("101").average_handle_seconds
            ),
            (2, 1, Some(90))
        );
        assert_eq!(
            (
                by("102").answered,
                by("102").missed,
                by("102").average_handle_seconds
            ),
            (0, 1, None)
        );
        assert_eq!(by("103").missed, 1);
        assert_eq!(
            (by("105").answered, by("105").average_handle_seconds),
            (1, None)
        );
    }
}
