//! Debian packages: which are missing, and installing them when we are root (CI runs as root in a
//! fresh clone); otherwise we print the `sudo apt-get install` line for the developer.

use std::process::Command;

use anyhow::{Result, bail};

use crate::procs;

/// Packages whose status is not `install ok installed`.
pub fn missing(packages: &[&str]) -> Result<Vec<String>> {
    if procs::find_program("dpkg-query").is_none() {
        bail!(
            "dpkg-query not found: this is not a Debian-based system; install the equivalents of \
             these Debian packages by hand: {}",
            packages.join(" ")
        );
    }
    let mut missing = Vec::new();
    for package in packages {
        let installed = Command::new("dpkg-query")
            .args(["-W", "-f=${Status}", package])
            .output()
            .is_ok_and(|out| {
                out.status.success()
                    && String::from_utf8_lossy(&out.stdout) == "install ok installed"
            });
        if !installed {
            missing.push((*package).to_owned());
        }
    }
    Ok(missing)
}

/// Installs `packages` with apt-get when root; when not root fails with the command to run.
pub fn install(packages: &[String]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    let list = packages.join(" ");
    if !procs::is_root() {
        bail!(
            "missing Debian packages: {list}\n    install them with:\n    \
             sudo apt-get install -y --no-install-recommends {list}\n    then run the command again"
        );
    }
    println!("installing missing Debian packages: {list}");
    procs::run(apt_get().arg("update"))?;
    procs::run(
        apt_get()
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages),
    )
}

/// `apt-get` that waits for a busy dpkg lock, retries downloads and never asks questions.
fn apt_get() -> Command {
    let mut cmd = Command::new("apt-get");
    cmd.args(["-o", "DPkg::Lock::Timeout=600", "-o", "Acquire::Retries=3"])
        .env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}
