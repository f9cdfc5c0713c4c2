//! The CSV of `stats/result`: `;`-separated, no quoting, rows ended by `\n` or `\r\n`, a
//! trailing newline; `records` as `[id1,id2]`. Columns are the request's `fields`, in order.

/// The columns Mango returns when a request names none, plus `entry_id`.
pub const DEFAULT_FIELDS: &str = "records,start,finish,answer,from_extension,from_number,to_extension,to_number,disconnect_reason,line_number,location,entry_id";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatsError {
    #[error("line {line}: {found} columns, the request asked for {expected}")]
    Columns {
        line: usize,
        found: usize,
        expected: usize,
    },
}

/// One row: the requested columns by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsRow {
    fields: Vec<(String, String)>,
}

impl StatsRow {
    /// A column's value (`None` when the request did not ask for it, `Some("")` when empty).
    pub fn get(&self, field: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, v)| v.as_str())
    }

    /// A numeric column; empty or non-numeric reads as `None`.
    pub fn int(&self, field: &str) -> Option<i64> {
        self.get(field)?.trim().parse().ok()
    }

    /// The `records` column as recording ids.
    pub fn records(&self) -> Vec<String> {
        self.get("records")
            .map(|r| {
                r.trim()
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses a report; identical repeated rows are kept once.
pub fn parse(csv: &str, fields: &str) -> Result<Vec<StatsRow>, StatsError> {
    let names: Vec<&str> = fields.split(',').map(str::trim).collect();
    let mut rows: Vec<StatsRow> = Vec::new();
    for (i, line) in csv.split(['\n', '\r']).enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let values: Vec<&str> = line.split(';').collect();
        if values.len() != names.len() {
            return Err(StatsError::Columns {
                line: i + 1,
                found: values.len(),
                expected: names.len(),
            });
        }
        let row = StatsRow {
            fields: names
                .iter()
                .zip(values)
                .map(|(n, v)| ((*n).to_owned(), v.trim().to_owned()))
                .collect(),
        };
        if !rows.contains(&row) {
            rows.push(row);
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_row_with_crlf_and_repeats() -> Result<(), StatsError> {
        let fields = "records,start,finish,answer,from_extension,from_number,to_extension,to_number,disconnect_reason,line_number,location";
        let row = "[];1481630614;1481630633;1481630614;131;sip:a.mango@domain.mangosip.ru;;sip:user2@domain.mangosip.ru;1110;;abonent";
        let csv = format!(
            "{row}\r\n[MToxMA==,MToxMQ==];1;2;0;;79161234567;101;;1111;74951234567;queue\r\n{row}\r\n"
        );
        let rows = parse(&csv, fields)?;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].get("from_extension"), Some("131"));
        assert_eq!(rows[0].get("to_extension"), Some(""));
        assert_eq!(rows[0].int("disconnect_reason"), Some(1110));
        assert!(rows[0].records().is_empty());
        assert_eq!(
            rows[1].records(),
            vec!["MToxMA==".to_owned(), "MToxMQ==".to_owned()]
        );
        assert_eq!(rows[1].int("answer"), Some(0));
        assert_eq!(rows[1].get("entry_id"), None);
        Ok(())
    }

    #[test]
    fn a_short_row_is_an_error() {
        assert_eq!(
            parse("a;b\n", "x,y,z"),
            Err(StatsError::Columns {
                line: 1,
                found: 2,
                expected: 3
            })
        );
        assert_eq!(parse("", "x"), Ok(Vec::new()));
    }
}
