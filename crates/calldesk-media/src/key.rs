//! Where a recording lives in a store: `{tenant}/{yyyy}/{mm}/{dd}/{call}/{name}` — by tenant
//! first (a tenant's recordings can be listed, moved or deleted as one prefix, and access rules
//! can be written per prefix), then the call's start date in UTC, then the call.
//!
//! The call id and the recording's name come from the PBX (`1700000000.12`, Mango's base64
//! `NTAwOTQxMTAyMg==`, `out-101-…-1700000000.12.wav`): letters, digits, `.`, `-` and `_` stay as
//! they are; anything else, a `.` that starts a segment, and `~` itself become `~XX` (hex), so a
//! segment never holds `/`, is never `.` or `..`, and two ids never share a key.

use std::fmt;

use calldesk_calls::{CallId, TenantId};

/// Why a key cannot be made or read; the message names the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the recording's name is empty")]
    EmptyName,
    #[error("the recording's name is {0} bytes long; at most 200 are allowed")]
    NameTooLong(usize),
    #[error("the call's start time {0} s is outside the years 1970–9999")]
    BadDate(i64),
    #[error("`{0}` is not a recording key (tenant/yyyy/mm/dd/call/name)")]
    Malformed(String),
}

/// The longest recording name kept (before escaping).
const MAX_NAME: usize = 200;

/// A recording's key in a store (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordingKey(String);

impl RecordingKey {
    /// The key of recording `name` of `call` (of `tenant`), the call having started at
    /// `started_unix_s` (UTC).
    pub fn new(
        tenant: &TenantId,
        started_unix_s: i64,
        call: &CallId,
        name: &str,
    ) -> Result<Self, KeyError> {
        if name.is_empty() {
            return Err(KeyError::EmptyName);
        }
        if name.len() > MAX_NAME {
            return Err(KeyError::NameTooLong(name.len()));
        }
        let date = jiff::Timestamp::from_second(started_unix_s)
            .map_err(|_| KeyError::BadDate(started_unix_s))?
            .to_zoned(jiff::tz::TimeZone::UTC)
            .date();
        if date.year() < 1970 {
            return Err(KeyError::BadDate(started_unix_s));
        }
        Ok(Self(format!(
            "{}/{:04}/{:02}/{:02}/{}/{}",
            tenant.as_str(),
            date.year(),
            date.month(),
            date.day(),
            escape(call.as_str()),
            escape(name)
        )))
    }

    /// Reads a key back (from a URL or a listing), checking its shape.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bad = || KeyError::Malformed(text.escape_debug().to_string());
        let parts: Vec<&str> = text.split('/').collect();
        let [tenant, year, month, day, call, name] = parts.as_slice() else {
            return Err(bad());
        };
        TenantId::new(*tenant).map_err(|_| bad())?;
        let number = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
        if !(number(year, 4) && number(month, 2) && number(day, 2)) {
            return Err(bad());
        }
        for segment in [call, name] {
            if unescape(segment).is_none() {
                return Err(bad());
            }
        }
        Ok(Self(text.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tenant the recording belongs to (the key's first segment).
    pub fn tenant(&self) -> &str {
        self.0.split('/').next().unwrap_or_default()
    }

    /// The segments, for a file path under a folder: none is empty, `.`, `..` or holds `/`.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The recording's file name as the PBX gave it (its extension tells the format).
    pub fn name(&self) -> String {
        self.0
            .rsplit('/')
            .next()
            .and_then(unescape)
            .unwrap_or_default()
    }
}

impl fmt::Display for RecordingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn plain(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, b) in text.bytes().enumerate() {
        if plain(b) && !(i == 0 && b == b'.') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("~{b:02X}"));
        }
    }
    out
}

/// The text of an escaped segment; `None` when the segment is not one `escape` makes.
fn unescape(segment: &str) -> Option<String> {
    if segment.is_empty() || segment.starts_with('.') {
        return None;
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'~' => {
                let hex = segment.get(i + 1..i + 3)?;
                if hex.bytes().any(|b| b.is_ascii_lowercase()) {
                    return None;
                }
                let b = u8::from_str_radix(hex, 16).ok()?;
                if plain(b) && !(i == 0 && b == b'.') {
                    return None;
                }
                out.push(b);
                i += 3;
            }
            b if plain(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn key(call: &str, name: &str) -> RecordingKey {
        RecordingKey::new(
            &TenantId::new("acme").unwrap(),
            1_763_700_000, // 2025-11-21 04:40 UTC
            &CallId::new(call).unwrap(),
            name,
        )
        .unwrap()
    }

    #[test]
    fn asterisk_and_mango_ids_make_readable_keys() {
        assert_eq!(
            key("1763700000.12", "in-101-1763700000.12.wav").as_str(),
            "acme/2025/11/21/1763700000.12/in-101-1763700000.12.wav"
        );
        let mango = key("NTAwOTQxMTAyMg==", "MToxMDAwNjA4NTo1MDA5NDExMDIyOjE=.mp3");
        assert_eq!(
            mango.as_str(),
            "acme/2025/11/21/NTAwOTQxMTAyMg~3D~3D/MToxMDAwNjA4NTo1MDA5NDExMDIyOjE~3D.mp3"
        );
        assert_eq!(mango.name(), "MToxMDAwNjA4NTo1MDA5NDExMDIyOjE=.mp3");
        assert_eq!(mango.tenant(), "acme");
    }

    #[test]
    fn no_segment_can_climb_out_of_a_folder() {
        let k = key("..", "../../etc/passwd");
        assert!(
            k.segments()
                .all(|s| !s.is_empty() && !s.starts_with('.') && !s.contains('/'))
        );
        assert_eq!(k.as_str(), "acme/2025/11/21/~2E./~2E.~2F..~2Fetc~2Fpasswd");
        assert_eq!(k.name(), "../../etc/passwd");
    }

    #[test]
    fn bad_input_is_refused_with_the_reason() {
        let t = TenantId::new("acme").unwrap();
        let c = CallId::new("1.2").unwrap();
        assert_eq!(RecordingKey::new(&t, 0, &c, ""), Err(KeyError::EmptyName));
        assert_eq!(
            RecordingKey::new(&t, 0, &c, &"a".repeat(201)),
            Err(KeyError::NameTooLong(201))
        );
        assert_eq!(
            RecordingKey::new(&t, -5, &c, "a.wav"),
            Err(KeyError::BadDate(-5))
        );
        for bad in [
            "acme/2025/11/21/x",
            "acme/25/11/21/x/y",
            "acme/2025/11/21/../y",
            "acme/2025/11/21/x/a~2e",
            "acme/2025/11/21/x/a~41",
            "a b/2025/11/21/x/y",
            "acme/2025/11/21/x/y/z",
            "acme/2025/11/21/x/a%2F",
        ] {
            assert!(RecordingKey::parse(bad).is_err(), "{bad} was accepted");
        }
    }

    proptest! {
        #[test]
        fn keys_read_back_and_differ_for_different_names(
            call in "[!-~]{1,40}",
            a in "\\PC{1,30}",
            b in "\\PC{1,30}",
            at in 0i64..253_402_300_799,
        ) {
            let t = TenantId::new("t-1").unwrap();
            let c = CallId::new(call).unwrap();
            let ka = RecordingKey::new(&t, at, &c, &a).unwrap();
            prop_assert_eq!(RecordingKey::parse(ka.as_str()), Ok(ka.clone()));
            prop_assert_eq!(ka.name(), a.clone());
            let kb = RecordingKey::new(&t, at, &c, &b).unwrap();
            prop_assert_eq!(ka == kb, a == b);
        }
    }
}
