//! The history's search: what a call is found by, and the query that finds it.
//!
//! A call is indexed by its parties' digits (raw and E.164, separators dropped) and by its
//! words (caller name, company, queue, operator; lower-cased). A search text is split at
//! spaces; each part with three or more digits and nothing but digits and `+ - ( ) .` looks in
//! the digits, any other part of three or more characters in the words — both as substrings
//! (FTS5 trigram index). Shorter parts (`12`, `ab`) are substring filters on the same columns
//! (a scan, but only of what the other parts and filters left). All parts must match.
//!
//! Results are newest-stored first (rowid order), a page at a time: `next` is the cursor for
//! the following page.

use calldesk_wire::{CallStatusView, CallView, DirectionView};
use sqlx::{QueryBuilder, Row, Sqlite};

use crate::{LocalStore, StoreError, row_to_view};

/// The search terms stored with a call: (digits, words).
pub(crate) fn terms(view: &CallView) -> (String, String) {
    let mut digits: Vec<String> = Vec::new();
    for raw in [
        Some(view.from.raw.as_str()),
        view.from.e164.as_deref(),
        Some(view.to.raw.as_str()),
        view.to.e164.as_deref(),
    ]
    .into_iter()
    .flatten()
    {
        let d: String = raw.chars().filter(char::is_ascii_digit).collect();
        if !d.is_empty() && !digits.contains(&d) {
            digits.push(d);
        }
    }
    let words: Vec<String> = [
        view.from.name.as_deref(),
        view.company.as_deref(),
        view.queue.as_deref(),
        view.operator.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter(|w| !w.trim().is_empty())
    .map(|w| w.trim().to_lowercase())
    .collect();
    (digits.join(" "), words.join(" "))
}

/// What to look for in the history; every part is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct HistoryQuery {
    /// Search as typed: numbers (any 3+ digits of them), names, companies, queues.
    pub text: String,
    /// Calls that started at or after / before these unix ms.
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub status: Option<CallStatusView>,
    pub direction: Option<DirectionView>,
    pub operator: Option<String>,
    /// The previous page's `next`.
    pub before: Option<i64>,
    /// Page size (1..=500; default 100).
    pub limit: Option<u32>,
}

/// One page of the history, newest first.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPage {
    pub calls: Vec<CallView>,
    /// Pass as `before` for the next page; none at the end.
    pub next: Option<i64>,
}

/// A search text split into an FTS5 expression and the short parts it cannot hold.
#[derive(Debug, Default, PartialEq, Eq)]
struct Parsed {
    fts: Vec<String>,
    short: Vec<(bool, String)>,
}

fn is_number_part(part: &str) -> bool {
    part.chars().any(|c| c.is_ascii_digit())
        && part
            .chars()
            .all(|c| c.is_ascii_digit() || "+-().".contains(c))
}

fn parse(text: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for part in text.split_whitespace() {
        let (digits, value) = if is_number_part(part) {
            (
                true,
                part.chars()
                    .filter(char::is_ascii_digit)
                    .collect::<String>(),
            )
        } else {
            (false, part.to_lowercase())
        };
        if value.chars().count() >= 3 {
            // A phrase in double quotes: every character literal (quotes doubled).
            let column = if digits { "digits" } else { "words" };
            parsed
                .fts
                .push(format!("{column} : \"{}\"", value.replace('"', "\"\"")));
        } else if !value.is_empty() {
            parsed.short.push((digits, value));
        }
    }
    parsed
}

/// `%`, `_` and `\` taken literally in a LIKE pattern (with `ESCAPE '\'`).
fn like_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('%');
    for c in value.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl LocalStore {
    /// One page of the history matching `query` (see the module's documentation).
    pub async fn search_calls(&self, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
        let limit = query.limit.unwrap_or(100);
        if !(1..=500).contains(&limit) {
            return Err(StoreError::Invalid(format!(
                "a history page holds 1 to 500 calls, not {limit}"
            )));
        }
        let parsed = parse(&query.text);
        let mut sql: QueryBuilder<'_, Sqlite> = if parsed.fts.is_empty() {
            QueryBuilder::new("SELECT c.*, c.rowid AS rid FROM calls c WHERE 1 = 1")
        } else {
            let mut b = QueryBuilder::new(
                "SELECT c.*, c.rowid AS rid FROM calls_search s JOIN calls c ON c.rowid = s.rowid \
                 WHERE calls_search MATCH ",
            );
            b.push_bind(parsed.fts.join(" AND "));
            b
        };
        for (digits, value) in &parsed.short {
            sql.push(if *digits {
                " AND c.search_digits LIKE "
            } else {
                " AND c.search_words LIKE "
            });
            sql.push_bind(like_literal(value));
            sql.push(" ESCAPE '\\'");
        }
        if let Some(since) = query.since {
            sql.push(" AND c.started_at >= ").push_bind(since);
        }
        if let Some(until) = query.until {
            sql.push(" AND c.started_at < ").push_bind(until);
        }
        if let Some(status) = query.status {
            sql.push(" AND c.status = ").push_bind(status.as_str());
        }
        if let Some(direction) = query.direction {
            sql.push(" AND c.direction = ")
                .push_bind(direction.as_str());
        }
        if let Some(operator) = &query.operator {
            sql.push(" AND c.operator = ").push_bind(operator.clone());
        }
        if let Some(before) = query.before {
            sql.push(" AND c.rowid < ").push_bind(before);
        }
        sql.push(if parsed.fts.is_empty() {
            " ORDER BY c.rowid DESC LIMIT "
        } else {
            " ORDER BY s.rowid DESC LIMIT "
        });
        sql.push_bind(i64::from(limit) + 1);
        let rows = sql.build().fetch_all(&self.pool).await?;
        let more = rows.len() > limit as usize;
        let mut calls = Vec::with_capacity(rows.len().min(limit as usize));
        let mut last = None;
        for row in rows.iter().take(limit as usize) {
            calls.push(row_to_view(row)?);
            last = Some(row.try_get::<i64, _>("rid")?);
        }
        Ok(HistoryPage {
            calls,
            next: if more { last } else { None },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_words_are_told_apart_and_quoted() {
        let p = parse("+7 (495) 123-45-67 Ostap ab \"x\"y 12");
        assert_eq!(
            p.fts,
            [
                "digits : \"495\"".to_owned(),
                "digits : \"1234567\"".to_owned(),
                "words : \"ostap\"".to_owned(),
                "words : \"\"\"x\"\"y\"".to_owned(),
            ]
        );
        assert_eq!(
            p.short,
            [
                (true, "7".to_owned()),
                (false, "ab".to_owned()),
                (true, "12".to_owned())
            ]
        );
        assert_eq!(like_literal("5%_\\"), "%5\\%\\_\\\\%");
    }
}
