//! The call centre's disposition codes (how a call was closed): `dispositions.json` in the
//! data folder, else the defaults.

/// Disposition codes when the data folder has no `dispositions.json`.
pub const DEFAULT_DISPOSITIONS: [&str; 6] = [
    "sale",
    "callback",
    "info",
    "complaint",
    "wrong_number",
    "other",
];

/// The disposition list: `dispositions.json` in `data_dir` (a JSON array of codes: letters,
/// digits, `_`, `-`, at most 64), else [`DEFAULT_DISPOSITIONS`]. A damaged file is logged and
/// the defaults serve.
pub fn disposition_codes(data_dir: &std::path::Path) -> Vec<String> {
    let path = data_dir.join("dispositions.json");
    let defaults = || {
        DEFAULT_DISPOSITIONS
            .iter()
            .map(|c| (*c).to_owned())
            .collect()
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) => return defaults(),
    };
    let codes: Vec<String> = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "dispositions.json is not a JSON array of codes; using the defaults");
            return defaults();
        }
    };
    let good = |c: &String| {
        !c.is_empty()
            && c.len() <= 64
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if codes.is_empty() || !codes.iter().all(good) {
        tracing::warn!(path = %path.display(), "dispositions.json holds an empty list or a code that is not letters, digits, `_` or `-`; using the defaults");
        return defaults();
    }
    codes
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_disposition_list_comes_from_the_data_folder_or_the_defaults() {
        let dir =
            std::env::temp_dir().join(format!("calldesk-dispositions-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("dispositions.json");
        let _ = std::fs::remove_file(&file);
        assert_eq!(disposition_codes(&dir), DEFAULT_DISPOSITIONS);
        std::fs::write(&file, r#"["sold","lost"]"#).unwrap();
        assert_eq!(disposition_codes(&dir), ["sold", "lost"]);
        std::fs::write(&file, r#"["ok","bad code\nX"]"#).unwrap();
        assert_eq!(disposition_codes(&dir), DEFAULT_DISPOSITIONS);
        std::fs::write(&file, b"not json").unwrap();
        assert_eq!(disposition_codes(&dir), DEFAULT_DISPOSITIONS);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
