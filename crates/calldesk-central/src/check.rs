//! Checks of values before they reach SQL. Each returns the value as stored (trimmed,
//! normalised) or [`CentralError::Invalid`] with a message that says what to fix.

use crate::CentralError;

fn invalid(message: String) -> CentralError {
    CentralError::Invalid(message)
}

/// Names (tenant, company, contact, operator): trimmed, 1–200 characters, no control characters.
pub(crate) const MAX_NAME_CHARS: usize = 200;
/// Free text (company note, position, email, SIP address): at most this many characters.
pub(crate) const MAX_TEXT_CHARS: usize = 4000;
/// A note on a call: at most this many characters.
pub(crate) const MAX_NOTE_CHARS: usize = 4000;

pub(crate) fn name(what: &str, value: &str) -> Result<String, CentralError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    let len = v.chars().count();
    if len > MAX_NAME_CHARS {
        return Err(invalid(format!(
            "{what} is {len} characters long; at most {MAX_NAME_CHARS} are allowed"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{what} `{}` contains a control character",
            v.escape_debug()
        )));
    }
    Ok(v.to_owned())
}

/// Optional one-line text: trimmed; blank is `None`.
pub(crate) fn optional_line(
    what: &str,
    value: Option<&str>,
) -> Result<Option<String>, CentralError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => name(what, v).map(Some),
    }
}

/// Optional free text (newlines and tabs allowed): trimmed; blank is `None`.
pub(crate) fn optional_text(
    what: &str,
    value: Option<&str>,
) -> Result<Option<String>, CentralError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => text(what, v, MAX_TEXT_CHARS).map(Some),
    }
}

/// Free text: 1–`max` characters, no control characters but newlines and tabs.
pub(crate) fn text(what: &str, value: &str, max: usize) -> Result<String, CentralError> {
    if value.trim().is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    let len = value.chars().count();
    if len > max {
        return Err(invalid(format!(
            "{what} is {len} characters long; at most {max} are allowed"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(format!("{what} contains a control character")));
    }
    Ok(value.to_owned())
}

/// `+` then 8–15 digits.
pub(crate) fn is_e164(value: &str) -> bool {
    value.strip_prefix('+').is_some_and(|digits| {
        (8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

/// A list of E.164 phones, each once, in the order given.
pub(crate) fn phones(values: &[String]) -> Result<Vec<String>, CentralError> {
    let mut out: Vec<String> = Vec::with_capacity(values.len());
    for raw in values {
        let v = raw.trim();
        if !is_e164(v) {
            return Err(invalid(format!(
                "phone `{}` is not E.164: `+` then 8 to 15 digits, e.g. +74951234567",
                raw.escape_debug()
            )));
        }
        if !out.iter().any(|p| p == v) {
            out.push(v.to_owned());
        }
    }
    Ok(out)
}

/// An operator login: 1–64 characters of `[A-Za-z0-9._@-]`.
pub(crate) fn login(value: &str) -> Result<&str, CentralError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if ok {
        Ok(value)
    } else {
        Err(invalid(format!(
            "login `{}` is not 1 to 64 characters of letters, digits, '.', '_', '@' and '-'",
            value.escape_debug()
        )))
    }
}

/// A tenant's number: 1–16 digits.
pub(crate) fn tenant_number(value: &str) -> Result<&str, CentralError> {
    if (1..=16).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit()) {
        Ok(value)
    } else {
        Err(invalid(format!(
            "tenant number `{}` is not 1 to 16 digits",
            value.escape_debug()
        )))
    }
}

/// The name of an environment variable: `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
pub(crate) fn env_name<'a>(what: &str, value: &'a str) -> Result<&'a str, CentralError> {
    let mut bytes = value.bytes();
    let ok = value.len() <= 128
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(value)
    } else {
        Err(invalid(format!(
            "{what} `{}` is not the name of an environment variable (letters, digits and '_'); \
             the secret itself is never stored",
            value.escape_debug()
        )))
    }
}

/// A SIP address or peer: 1–128 characters, no spaces or control characters.
pub(crate) fn sip(value: &str) -> Result<&str, CentralError> {
    if (1..=128).contains(&value.chars().count())
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        Ok(value)
    } else {
        Err(invalid(format!(
            "SIP address `{}` is not 1 to 128 characters without spaces",
            value.escape_debug()
        )))
    }
}

/// A note id: a UUID (36 characters, hex digits and dashes as 8-4-4-4-12), lowercased.
pub(crate) fn note_id(value: &str) -> Result<String, CentralError> {
    let ok = value.len() == 36
        && value.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    if ok {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(invalid(format!(
            "note id `{}` is not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
            value.escape_debug()
        )))
    }
}

/// A disposition code (`calldesk_wire::disposition_code`, the one rule hub and desk share).
pub(crate) fn disposition_code(value: &str) -> Result<&str, CentralError> {
    calldesk_wire::disposition_code(value).map_err(invalid)
}

/// Text PostgreSQL can store: no NUL character.
pub(crate) fn no_nul(what: &str, value: &str) -> Result<(), CentralError> {
    if value.contains('\0') {
        Err(invalid(format!("{what} contains a NUL character")))
    } else {
        Ok(())
    }
}

/// `value` for a `LIKE` pattern: `\`, `%` and `_` escaped (with the default escape `\`).
pub(crate) fn like_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    for c in value.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn e164_and_phone_lists() {
        assert!(is_e164("+74951234567"));
        assert!(is_e164("+12345678"));
        assert!(!is_e164("+1234567"));
        assert!(!is_e164("+1234567890123456"));
        assert!(!is_e164("74951234567"));
        assert!(!is_e164("+7 495 123 45 67"));
        assert!(!is_e164("+７4951234567"));
        assert_eq!(
            phones(&[
                " +74951234567".into(),
                "+74951234567".into(),
                "+4930123456".into()
            ])
            .unwrap(),
            ["+74951234567", "+4930123456"]
        );
        let e = phones(&["84951234567".into()]).unwrap_err();
        assert!(e.to_string().contains("`84951234567` is not E.164"), "{e}");
    }

    #[test]
    fn logins_names_and_codes() {
        assert!(login("anna.k@acme-1_x").is_ok());
        for bad in ["", "anna k", "анна", "a\n", &"a".repeat(65)] {
            assert!(login(bad).is_err(), "{bad:?}");
        }
        assert_eq!(name("company name", "  Acme  ").unwrap(), "Acme");
        assert!(name("company name", "   ").is_err());
        assert!(name("company name", "a\u{0}b").is_err());
        assert!(name("company name", &"я".repeat(201)).is_err());
        assert_eq!(optional_line("position", Some("  ")).unwrap(), None);
        assert!(text("note", "line 1\nline 2\t!", 4000).is_ok());
        assert!(text("note", "bell \u{7}", 4000).is_err());
        assert!(text("note", &"x".repeat(4001), 4000).is_err());
        assert!(disposition_code("call-back_2").is_ok());
        assert!(disposition_code("Sale").is_err());
        assert!(disposition_code("").is_err());
        assert!(tenant_number("0367").is_ok());
        assert!(tenant_number("03 67").is_err());
        assert!(tenant_number("12345678901234567").is_err());
        assert!(env_name("secret_env", "CALLDESK_AMI_SECRET").is_ok());
        assert!(env_name("secret_env", "1SECRET").is_err());
        assert!(env_name("secret_env", "s3cr3t value").is_err());
        assert!(sip("sip:anna@acme.mangosip.ru").is_ok());
        assert!(sip("anna smith").is_err());
    }

    #[test]
    fn note_ids_are_uuids_lowercased() {
        assert_eq!(
            note_id("0F8FAD5B-D9CB-469F-A165-70867728950E").unwrap(),
            "0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        for bad in [
            "",
            "0f8fad5b-d9cb-469f-a165-70867728950",
            "0f8fad5bd9cb-469f-a165-70867728950e0",
            "0f8fad5b-d9cb-469f-a165-70867728950g",
        ] {
            assert!(note_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape(r"50%_off\"), r"50\%\_off\\");
    }
}
