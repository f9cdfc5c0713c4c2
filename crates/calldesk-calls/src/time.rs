//! RFC 3339 date-times → instants. Strict: a date, `T` (or `t` or a space), a time with seconds,
//! an optional fraction and `Z` or `±HH:MM` — what [`Timestamp::rfc3339`] prints, what the hub
//! serves and what API clients send.

use crate::Timestamp;

impl Timestamp {
    /// The instant of an RFC 3339 date-time (fractions below a millisecond are dropped), or
    /// `None` if `s` is not one.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        parse_rfc3339_micros(s).map(|us| Timestamp::from_unix_millis(us.div_euclid(1000)))
    }
}

/// Microseconds since the Unix epoch of an RFC 3339 date-time, or `None` if `s` is not one.
pub fn parse_rfc3339_micros(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |n, d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let at = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(at(4, b"-") && at(7, b"-") && at(10, b"Tt ") && at(13, b":") && at(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut micros = 0i64;
    if at(i, b".") {
        i += 1;
        let start = i;
        while let Some(d) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if i - start < 6 {
                micros = micros * 10 + i64::from(d - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return None;
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if b.len() == i + 1 => 0,
        Some(sign @ (b'+' | b'-')) if b.len() == i + 6 && at(i + 3, b":") => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            if *sign == b'+' {
                h * 60 + m
            } else {
                -(h * 60 + m)
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000_000 + micros)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn every_printed_instant_parses_back(ms in -62_135_596_800_000i64..253_402_300_799_999) {
            let t = Timestamp::from_unix_millis(ms);
            prop_assert_eq!(Timestamp::parse_rfc3339(&t.rfc3339()), Some(t));
        }

        #[test]
        fn any_text_is_parsed_or_refused_without_panic(s in "\\PC{0,40}") {
            let _ = parse_rfc3339_micros(&s);
        }
    }

    #[test]
    fn parses_what_timestamps_print_and_round_trips() {
        for ms in [
            0,
            1_000,
            1_795_259_787_617,
            951_782_400_000,
            -86_400_000,
            4_102_444_799_999,
        ] {
            let text = Timestamp::from_unix_millis(ms).rfc3339();
            assert_eq!(parse_rfc3339_micros(&text), Some(ms * 1000), "{text}");
            assert_eq!(
                Timestamp::parse_rfc3339(&text),
                Some(Timestamp::from_unix_millis(ms))
            );
        }
    }

    #[test]
    fn offsets_fractions_and_separators() {
        let utc = parse_rfc3339_micros("2026-11-21T11:16:27Z");
        assert_eq!(utc, Some(1_795_259_787_000_000));
        assert_eq!(parse_rfc3339_micros("2026-11-21t11:16:27z"), utc);
        assert_eq!(parse_rfc3339_micros("2026-11-21 11:16:27Z"), utc);
        assert_eq!(parse_rfc3339_micros("2026-11-21T14:16:27+03:00"), utc);
        assert_eq!(parse_rfc3339_micros("2026-11-21T08:46:27-02:30"), utc);
        assert_eq!(
            parse_rfc3339_micros("2026-11-21T11:16:27.5Z"),
            Some(1_795_259_787_500_000)
        );
        assert_eq!(
            parse_rfc3339_micros("2026-11-21T11:16:27.123456789Z"),
            Some(1_795_259_787_123_456)
        );
        assert_eq!(
            parse_rfc3339_micros("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000_000)
        );
    }

    #[test]
    fn refuses_anything_else() {
        for bad in [
            "",
            "now",
            "2026-11-21",
            "2026-11-21T11:16Z",
            "2026-11-21T11:16:27",
            "2026-11-21T11:16:27.Z",
            "2026-11-21T11:16:27+0300",
            "2026-11-21T11:16:27Zjunk",
            "2026-13-01T00:00:00Z",
            "2025-02-29T00:00:00Z",
            "2026-04-31T00:00:00Z",
            "2026-11-21T24:00:00Z",
            "2026-11-21T11:60:00Z",
            "2026-11-21T11:16:27+24:00",
            "+026-11-21T11:16:27Z",
            "2026-11-21T11:16:27.12a Z",
            "２026-11-21T11:16:27Z",
        ] {
            assert_eq!(parse_rfc3339_micros(bad), None, "{bad:?}");
        }
    }
}
