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
            recordings: Vec::new(),
        }
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
