//! `tel:` and `callto:` links (RFC 3966, and the older Skype-style `callto:`) as the desktop
//! receives them when it is the system's handler: the number to dial, or `None` when the text
//! is not such a link or carries anything but a phone number.

/// The number of a `tel:`/`callto:` link (`tel:+7-495-123-45-67`, `callto://84951234567`,
/// `tel:%2B74951234567;phone-context=…`), percent-decoded, visual separators kept (the number
/// plan parses them). Parameters after `;` and a `?` query are dropped.
pub fn dial_link_number(link: &str) -> Option<String> {
    let link = link.trim();
    let (scheme, rest) = link.split_once(':')?;
    if !scheme.eq_ignore_ascii_case("tel") && !scheme.eq_ignore_ascii_case("callto") {
        return None;
    }
    let rest = rest.trim_start_matches('/');
    let number = rest.split([';', '?']).next().unwrap_or_default();
    let decoded = percent_decode(number)?;
    let ok = !decoded.is_empty()
        && decoded.len() <= 64
        && decoded.chars().any(|c| c.is_ascii_digit())
        && decoded
            .chars()
            .all(|c| c.is_ascii_digit() || "+-.() *#".contains(c));
    ok.then(|| decoded.trim().to_owned())
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tel_and_callto_links_give_their_number_and_nothing_else_passes() {
        for (link, number) in [
            ("tel:+7-495-123-45-67", "+7-495-123-45-67"),
            ("TEL:84951234567", "84951234567"),
            (
                "tel:%2B74951234567;phone-context=example.com",
                "+74951234567",
            ),
            ("callto://+7 (495) 123-45-67", "+7 (495) 123-45-67"),
            ("callto:101", "101"),
            ("  tel:101?call  ", "101"),
        ] {
            assert_eq!(dial_link_number(link).as_deref(), Some(number), "{link}");
        }
        for bad in [
            "https://example.com",
            "tel:",
            "tel:abc",
            "tel:101%0D%0AAction: Originate",
            "tel:101\r\nAction: Originate",
            "tel:%ZZ",
            "mailto:101",
            "/usr/bin/calldesk",
            "tel:+-()",
        ] {
            assert_eq!(dial_link_number(bad), None, "{bad:?}");
        }
        let long = format!("tel:{}", "1".repeat(65));
        assert_eq!(dial_link_number(&long), None);
    }
}
