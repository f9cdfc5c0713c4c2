//! calldesk test support: the shared real-PBX captures (`shared/fixtures/` beside the
//! repository), for tests only — every crate that uses it has it as a dev-dependency.
//!
//! The captures are ground truth (see `shared/fixtures/ami/README.md`); tests that compare
//! against them find them here, so the location is written once. A missing folder panics with
//! a message that says where it was looked for: a test that cannot see its ground truth must
//! fail, not pass vacuously.

// Test support: panicking on a missing fixture is the right outcome.
#![allow(clippy::panic)]

use std::path::PathBuf;

/// `shared/fixtures/ami`, the real Asterisk 20 AMI captures.
pub fn ami_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/ami");
    if !dir.join("INDEX.json").is_file() {
        panic!(
            "AMI captures not found at {}: the repository expects the shared/ folder beside it",
            dir.display()
        );
    }
    dir
}

/// The bytes of `shared/fixtures/ami/<file>`, e.g. `a_inbound_answered.rx.raw`.
pub fn ami_file(file: &str) -> Vec<u8> {
    let path = ami_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The bytes Asterisk sent in capture `name` (`<name>.rx.raw`).
pub fn ami_rx(name: &str) -> Vec<u8> {
    ami_file(&format!("{name}.rx.raw"))
}

/// The names of every AMI capture that has an `.rx.raw` file, sorted.
pub fn ami_captures() -> Vec<String> {
    let dir = ami_dir();
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".rx.raw").map(str::to_owned))
        .collect();
    names.sort();
    names
}
