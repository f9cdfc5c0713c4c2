//! Server-supplied text made safe to show.

/// At most this much of a server's own text goes into an error or a state (and so into the UI
/// and logs).
pub(crate) const MAX_SERVER_TEXT: usize = 200;

/// Control characters replaced by spaces, length capped at [`MAX_SERVER_TEXT`] characters.
pub(crate) fn server_text(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_SERVER_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX_SERVER_TEXT {
        out.push('…');
    }
    out
}

/// [`server_text`] of a header value, or `fallback` when the header is missing.
pub(crate) fn header_text(msg: &calldesk_ami_proto::Message, key: &str, fallback: &str) -> String {
    msg.get_str(key)
        .map_or_else(|| fallback.to_owned(), |m| server_text(&m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_controls_and_caps() {
        assert_eq!(server_text("a\r\nb\u{1b}[31m"), "a  b [31m");
        let long = "x".repeat(500);
        let t = server_text(&long);
        assert_eq!(t.chars().count(), MAX_SERVER_TEXT + 1);
        assert!(t.ends_with('…'));
    }
}
