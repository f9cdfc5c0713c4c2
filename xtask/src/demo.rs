//! `cargo xtask demo`: builds the UI and the desktop app, then runs the app in demo mode (the
//! built-in simulated PBX), passing its exit code through.

use std::process::{Command, ExitCode};

use anyhow::{Result, bail};

use crate::{app, procs, steps};

pub fn run() -> Result<ExitCode> {
    let has_display = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|var| std::env::var_os(var).is_some_and(|value| !value.is_empty()));
    if !has_display {
        bail!(
            "neither DISPLAY nor WAYLAND_DISPLAY is set, so the app has no screen to open its \
             window on.\n    On a headless machine run it under a virtual X server:\n    \
             xvfb-run -a cargo xtask demo"
        );
    }
    let root = steps::repo_root();
    app::build_ui(&root)?;
    let app = app::build_desktop(&root, false)?;
    let status = procs::run_status(&mut Command::new(&app))?;
    // Exit codes are 0..=255 on Unix; a signal death has none, report it as 1.
    let code = status
        .code()
        .and_then(|code| u8::try_from(code).ok())
        .unwrap_or(1);
    Ok(ExitCode::from(code))
}
