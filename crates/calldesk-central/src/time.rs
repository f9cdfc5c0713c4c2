//! RFC 3339 times ↔ microseconds since the Unix epoch, the form the store binds (PostgreSQL
//! `timestamptz` has microsecond precision). The parser is the domain's
//! ([`calldesk_calls::parse_rfc3339_micros`]).

use calldesk_calls::Timestamp;

pub(crate) use calldesk_calls::parse_rfc3339_micros as parse_micros;

/// RFC 3339 UTC with milliseconds of a time in milliseconds.
pub(crate) fn millis_rfc3339(millis: i64) -> String {
    Timestamp::from_unix_millis(millis).rfc3339()
}
