//! Replay of recorded webhooks: JSON lines `{"path": "/events/call", "json": "<raw json>"}`
//! (signatures are not part of the file: it holds what was already verified). Used by
//! `calldesk mango replay` and the tests.

use calldesk_calls::{Call, CallBook, NumberPlan, TenantId, Timestamp, UpdateKind};
use serde::Deserialize;

use crate::tracker::{MangoTracker, Timing};
use crate::webhook::{Route, Webhook, WebhookError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("line {line}: not a JSON object with \"path\" and \"json\" strings: {reason}")]
    Line { line: usize, reason: String },
    #[error("line {line}: {source}")]
    Webhook { line: usize, source: WebhookError },
}

#[derive(Deserialize)]
struct Line {
    path: String,
    json: String,
}

/// One line of a replay file: the route and the parsed webhook.
pub fn parse_line(line_no: usize, line: &str) -> Result<Webhook, ReplayError> {
    let l: Line = serde_json::from_str(line).map_err(|e| ReplayError::Line {
        line: line_no,
        reason: e.to_string(),
    })?;
    let route = Route::from_path(&l.path).map_err(|source| ReplayError::Webhook {
        line: line_no,
        source,
    })?;
    Webhook::parse(&route, &l.json).map_err(|source| ReplayError::Webhook {
        line: line_no,
        source,
    })
}

/// Every webhook of `text` (blank lines skipped) through the tracker and a call book; the calls
/// in the order they ended (all of them end at the end of the input).
pub fn replay(text: &str, plan: &NumberPlan) -> Result<Vec<Call>, ReplayError> {
    let hooks = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_line(i + 1, l))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(replay_hooks(&hooks, plan))
}

/// [`replay`] for parsed webhooks. Arrival time is the latest event time seen so far.
pub fn replay_hooks(hooks: &[Webhook], plan: &NumberPlan) -> Vec<Call> {
    let mut tracker = MangoTracker::new(plan.clone(), Timing::default());
    let mut book = CallBook::new(TenantId::local());
    let mut events = Vec::new();
    let mut now = Timestamp::from_unix_millis(0);
    for hook in hooks {
        if let Some(t) = event_time(hook) {
            now = now.max(Timestamp::from_unix_millis(t.saturating_mul(1000)));
        }
        tracker.handle(hook, now, &mut events);
    }
    tracker.finish(&mut events);
    let mut ended = Vec::new();
    for e in &events {
        if let Ok(Some(u)) = book.apply(e)
            && u.kind == UpdateKind::Ended
        {
            ended.push(u.call);
        }
    }
    ended
}

fn event_time(hook: &Webhook) -> Option<i64> {
    match hook {
        Webhook::Call(c) => Some(c.timestamp),
        Webhook::Summary(s) => s.end_time,
        Webhook::Recording(r) => r.timestamp,
        Webhook::RecordAdded(r) | Webhook::RecordTagged(r) => r.timestamp,
        _ => None,
    }
}
