//! The disposition codes (how a call was closed) of a desk without a hub: `dispositions.json`
//! in the data folder, else the defaults. A Hub profile uses the tenant's list on the hub.

use calldesk_wire::{DEFAULT_DISPOSITIONS, default_dispositions, disposition_list};

/// The disposition list: `dispositions.json` in `data_dir` (a JSON array of codes, checked by
/// [`disposition_list`]: a-z, 0-9, `_`, `-`; 1 to 30, no duplicates), else
/// [`DEFAULT_DISPOSITIONS`]. A damaged file is logged and the defaults serve.
pub fn disposition_codes(data_dir: &std::path::Path) -> Vec<String> {
    let path = data_dir.join("dispositions.json");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(_) => return default_dispositions(),
    };
    let checked = serde_json::from_slice::<Vec<String>>(&bytes)
        .map_err(|e| format!("not a JSON array of codes: {e}"))
        .and_then(|codes| disposition_list(&codes));
    match checked {
        Ok(codes) => codes,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, defaults = ?DEFAULT_DISPOSITIONS, "dispositions.json cannot be used; using the defaults");
            default_dispositions()
        }
    }
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
