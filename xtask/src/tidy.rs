//! House rules of the workspace (docs: architecture.md), checked from `cargo metadata` by
//! `cargo test`: layer-0 crates stay free of tokio, only the Tauri shell depends on tauri, every
//! package uses the workspace lints and is not published, every crate root has a `//!` header.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fs;

use serde_json::Value;

/// Pure crates: no tokio, directly or through any normal dependency.
const LAYER_0: &[&str] = &[
    "calldesk-calls",
    "calldesk-ami-proto",
    "calldesk-asterisk",
    "calldesk-mango-proto",
    "calldesk-wire",
];
/// The only package allowed to depend on tauri or any `tauri*` crate (tauri-build, plugins).
const TAURI_SHELL: &str = "calldesk-desktop";

fn metadata() -> Value {
    crate::steps::cargo_metadata(&crate::steps::repo_root(), &[]).expect("cargo metadata")
}

/// The workspace's packages (as `cargo metadata` describes them).
fn workspace_packages(metadata: &Value) -> Vec<&Value> {
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| members.contains(package["id"].as_str().unwrap_or_default()))
        .collect()
}

fn name(package: &Value) -> &str {
    package["name"].as_str().unwrap_or_default()
}

fn report(rule: &str, offenders: &[String]) {
    assert!(
        offenders.is_empty(),
        "house rule broken: {rule}\n  {}",
        offenders.join("\n  ")
    );
}

#[test]
fn layer_0_crates_do_not_depend_on_tokio() {
    report(
        "layer-0 crates must not depend on tokio (normal dependencies)",
        &forbidden_paths(LAYER_0, "tokio"),
    );
}

#[test]
fn the_hub_never_links_the_sound_stack() {
    // The player (rodio → cpal → ALSA) is the desktop's; a headless hub must not need libasound.
    let mut offenders = forbidden_paths(&["calldesk-hub", "calldesk"], "rodio");
    offenders.extend(forbidden_paths(&["calldesk-hub", "calldesk"], "cpal"));
    report(
        "the hub and the CLI must not depend on rodio or cpal (normal dependencies)",
        &offenders,
    );
}

/// For each of `crates`, the chain of normal dependencies that reaches `forbidden`, if any
/// (breadth-first, so the shortest), as `a -> b -> forbidden`.
fn forbidden_paths(crates: &[&str], forbidden: &str) -> Vec<String> {
    let metadata = metadata();
    let nodes: HashMap<&str, &Value> = metadata["resolve"]["nodes"]
        .as_array()
        .expect("resolve.nodes")
        .iter()
        .map(|node| (node["id"].as_str().unwrap_or_default(), node))
        .collect();
    let names: HashMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| (package["id"].as_str().unwrap_or_default(), name(package)))
        .collect();
    let packages = workspace_packages(&metadata);
    let mut offenders = Vec::new();
    for krate in crates {
        let Some(package) = packages.iter().find(|package| name(package) == *krate) else {
            offenders.push(format!(
                "{krate}: not in the workspace (renamed? update the rule)"
            ));
            continue;
        };
        let start = package["id"].as_str().unwrap_or_default();
        let mut parent: HashMap<&str, &str> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        while let Some(id) = queue.pop_front() {
            if names.get(id) == Some(&forbidden) {
                let mut path = vec![names[id]];
                let mut at = id;
                while let Some(&up) = parent.get(at) {
                    path.push(names[up]);
                    at = up;
                }
                path.reverse();
                offenders.push(path.join(" -> "));
                break;
            }
            let Some(node) = nodes.get(id) else { continue };
            for dep in node["deps"].as_array().into_iter().flatten() {
                let normal = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|kind| kind["kind"].is_null());
                let dep_id = dep["pkg"].as_str().unwrap_or_default();
                if normal && dep_id != start && !parent.contains_key(dep_id) {
                    parent.insert(dep_id, id);
                    queue.push_back(dep_id);
                }
            }
        }
    }
    offenders
}

#[test]
fn only_the_tauri_shell_depends_on_tauri() {
    let metadata = metadata();
    let offenders: Vec<String> = workspace_packages(&metadata)
        .into_iter()
        .filter(|package| name(package) != TAURI_SHELL)
        .flat_map(|package| {
            package["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|dep| dep["name"].as_str())
                .filter(|dep| dep.starts_with("tauri"))
                .map(|dep| format!("{} -> {dep}", name(package)))
        })
        .collect();
    report(
        &format!(
            "only {TAURI_SHELL} may depend on tauri crates (tauri, tauri-build, tauri-plugin-*)"
        ),
        &offenders,
    );
}

#[test]
fn every_package_uses_workspace_lints_and_is_unpublished() {
    let metadata = metadata();
    let mut offenders = Vec::new();
    for package in workspace_packages(&metadata) {
        let manifest_path = package["manifest_path"].as_str().unwrap_or_default();
        let manifest = fs::read_to_string(manifest_path).expect("cannot read a Cargo.toml");
        if !uses_workspace_lints(&manifest) {
            offenders.push(format!(
                "{}: add `[lints] workspace = true` to {manifest_path}",
                name(package)
            ));
        }
        // `publish = false` shows up as an empty list of allowed registries.
        if package["publish"] != Value::Array(Vec::new()) {
            offenders.push(format!(
                "{}: set `publish = false` (or `publish.workspace = true`) in {manifest_path}",
                name(package)
            ));
        }
    }
    report(
        "packages use `[lints] workspace = true` and `publish = false`",
        &offenders,
    );
}

#[test]
fn every_crate_root_starts_with_a_doc_header() {
    let metadata = metadata();
    let mut offenders = Vec::new();
    for package in workspace_packages(&metadata) {
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_root = target["kind"].as_array().into_iter().flatten().any(|kind| {
                ["lib", "bin", "proc-macro"].contains(&kind.as_str().unwrap_or_default())
            });
            if !is_root {
                continue;
            }
            let path = target["src_path"].as_str().unwrap_or_default();
            let source = fs::read_to_string(path).unwrap_or_default();
            let first_line = source
                .lines()
                .find(|line| !line.trim().is_empty())
                .unwrap_or_default();
            if !first_line.trim_start().starts_with("//!") {
                offenders.push(format!("{}: {path}", name(package)));
            }
        }
    }
    report(
        "every crate root (lib.rs/main.rs) starts with a `//!` doc header",
        &offenders,
    );
}

/// Whether a manifest has `[lints] workspace = true` (or `lints.workspace = true`, or
/// `lints = { workspace = true }`). A tiny line scanner: enough for our own manifests.
fn uses_workspace_lints(manifest: &str) -> bool {
    let mut section = String::new();
    for line in manifest.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if line.starts_with('[') {
            section = line.trim_matches(['[', ']', ' ']).to_owned();
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim(), value.trim().replace(' ', ""));
        let full_key = if section.is_empty() {
            key.to_owned()
        } else {
            format!("{section}.{key}")
        };
        if (full_key == "lints.workspace" && value == "true")
            || (full_key == "lints" && value == "{workspace=true}")
        {
            return true;
        }
    }
    false
}

#[test]
fn lints_scanner_reads_the_usual_forms() {
    assert!(uses_workspace_lints(
        "[package]\nname = \"a\"\n\n[lints]\nworkspace = true\n"
    ));
    assert!(uses_workspace_lints("lints.workspace = true\n"));
    assert!(uses_workspace_lints("lints = { workspace = true }\n"));
    assert!(!uses_workspace_lints("[lints]\n# workspace = true\n"));
    assert!(!uses_workspace_lints("[package]\nworkspace = true\n"));
    assert!(!uses_workspace_lints(
        "[lints.rust]\nunsafe_code = \"forbid\"\n"
    ));
}
