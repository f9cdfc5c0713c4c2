//! Building the desktop app, shared by `test`, `e2e` and `demo`: the toolchain check for the UI,
//! the UI (`npm ci` when needed, `npm run build` into `ui/dist`, which `generate_context!` embeds)
//! and the Tauri binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{procs, steps};

/// The oldest Node.js the UI's tools support (`engines.node` in ui/package.json).
const NODE_MIN: (u32, u32) = (20, 19);
const INSTALL_NODE: &str =
    "install Node.js 20.19 or newer with npm (nodejs.org, NodeSource or nvm)";

/// Checks that Node.js is new enough and npm is there; returns `node vX, npm Y` for the log.
pub fn check_node() -> Result<String> {
    let node = procs::output(Command::new("node").arg("--version"))
        .with_context(|| format!("Node.js is missing: {INSTALL_NODE}"))?;
    let node = node.trim();
    match parse_node_version(node) {
        Some(version) if version >= NODE_MIN => {}
        Some(_) => bail!("Node.js {node} is too old: {INSTALL_NODE}"),
        None => bail!("cannot read the Node.js version from {node:?}: {INSTALL_NODE}"),
    }
    let npm = procs::output(Command::new("npm").arg("--version"))
        .with_context(|| format!("npm is missing: {INSTALL_NODE}"))?;
    Ok(format!("node {node}, npm {}", npm.trim()))
}

/// `(major, minor)` from `node --version` output such as `v20.19.1`.
fn parse_node_version(text: &str) -> Option<(u32, u32)> {
    let mut parts = text.trim().strip_prefix('v')?.split('.');
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

/// Runs `npm ci` in `ui` when `node_modules` is missing or older than `package-lock.json`.
fn ensure_npm_deps(ui: &Path) -> Result<()> {
    let lock = ui.join("package-lock.json");
    let installed = ui.join("node_modules").join(".package-lock.json");
    let modified = |path: &Path| path.metadata().and_then(|meta| meta.modified()).ok();
    let up_to_date = match (modified(&lock), modified(&installed)) {
        (Some(lock), Some(installed)) => lock <= installed,
        _ => false,
    };
    if up_to_date {
        println!("ui/node_modules is up to date");
        return Ok(());
    }
    if !lock.is_file() {
        bail!(
            "{} is missing: the UI must commit its package-lock.json",
            lock.display()
        );
    }
    procs::run(
        Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(ui),
    )
}

/// Checks Node.js, installs the UI's npm dependencies when needed and builds `ui/dist`.
pub fn build_ui(root: &Path) -> Result<()> {
    check_node()?;
    let ui = root.join("ui");
    ensure_npm_deps(&ui)?;
    npm_run(root, "build")
}

/// `npm run <script>` in `ui/`.
pub fn npm_run(root: &Path, script: &str) -> Result<()> {
    procs::run(
        Command::new("npm")
            .args(["run", script])
            .current_dir(root.join("ui")),
    )
}

/// Builds the desktop app (debug, or release for measurements) and returns the path of its
/// binary. Needs `ui/dist`.
pub fn build_desktop(root: &Path, release: bool) -> Result<PathBuf> {
    build_bin(root, "calldesk-desktop", release)
}

/// Builds the package whose binary has the package's name (`calldesk-desktop`, `calldesk`) and
/// returns the binary's path.
pub fn build_bin(root: &Path, package: &str, release: bool) -> Result<PathBuf> {
    let mut cmd = procs::cargo();
    cmd.args(["build", "-p", package]);
    if release {
        cmd.arg("--release");
    }
    procs::run(cmd.current_dir(root)).with_context(|| format!("building {package} failed"))?;
    let bin = steps::target_dir(root)?
        .join(if release { "release" } else { "debug" })
        .join(package);
    if !bin.is_file() {
        bail!("built {package} but {} does not exist", bin.display());
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::{NODE_MIN, parse_node_version};

    #[test]
    fn reads_node_versions() {
        assert_eq!(parse_node_version("v20.19.1\n"), Some((20, 19)));
        assert_eq!(parse_node_version("v22.3.0"), Some((22, 3)));
        assert_eq!(parse_node_version("20.19.1"), None);
        assert_eq!(parse_node_version("v20"), None);
        assert!(parse_node_version("v20.18.3") < Some(NODE_MIN));
        assert!(parse_node_version("v20.19.0") >= Some(NODE_MIN));
        assert!(parse_node_version("v21.0.0") >= Some(NODE_MIN));
    }
}
