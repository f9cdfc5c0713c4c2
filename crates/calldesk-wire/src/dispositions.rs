//! Disposition codes (how a call was closed): one rule for the hub, the desk and the files
//! they are configured in. A tenant's list lives on the hub (`GET /api/dispositions`); a desk
//! on a Direct or Demo profile reads `dispositions.json`; both fall back to
//! [`DEFAULT_DISPOSITIONS`].

/// The list when nothing else is configured.
pub const DEFAULT_DISPOSITIONS: [&str; 6] = [
    "sale",
    "callback",
    "info",
    "complaint",
    "wrong_number",
    "other",
];

/// At most this many codes in one list (the after-call panel shows them all).
pub const MAX_DISPOSITIONS: usize = 30;

/// The default list, owned.
pub fn default_dispositions() -> Vec<String> {
    DEFAULT_DISPOSITIONS
        .iter()
        .map(|c| (*c).to_owned())
        .collect()
}

/// `value` if it is a disposition code: 1 to 64 characters of `a-z`, `0-9`, `_`, `-`.
pub fn disposition_code(value: &str) -> Result<&str, String> {
    if (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        Ok(value)
    } else {
        Err(format!(
            "disposition code `{}` is not 1 to 64 characters of a-z, 0-9, '_' and '-'",
            value.escape_debug()
        ))
    }
}

/// A disposition list as stored: each code trimmed and checked, in the given order, no
/// duplicates, 1 to [`MAX_DISPOSITIONS`] codes. The error names the first problem.
pub fn disposition_list(raw: &[String]) -> Result<Vec<String>, String> {
    if raw.is_empty() || raw.len() > MAX_DISPOSITIONS {
        return Err(format!(
            "a disposition list holds 1 to {MAX_DISPOSITIONS} codes, not {}",
            raw.len()
        ));
    }
    let mut codes: Vec<String> = Vec::with_capacity(raw.len());
    for code in raw {
        let code = disposition_code(code.trim())?;
        if codes.iter().any(|c| c == code) {
            return Err(format!("disposition code `{code}` is listed twice"));
        }
        codes.push(code.to_owned());
    }
    Ok(codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(codes: &[&str]) -> Vec<String> {
        codes.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn lists_keep_their_order_and_refuse_bad_codes() {
        assert_eq!(
            disposition_list(&list(&[" sold", "lost ", "call-back_2"])).unwrap(),
            ["sold", "lost", "call-back_2"]
        );
        assert!(disposition_list(&default_dispositions()).is_ok());
        for (bad, why) in [
            (list(&[]), "1 to 30"),
            (list(&["sold", "sold"]), "listed twice"),
            (list(&["Sold"]), "a-z"),
            (list(&["ok", "bad\nAction"]), "bad\\nAction"),
            (vec!["x".to_owned(); 31], "1 to 30"),
        ] {
            let err = disposition_list(&bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
