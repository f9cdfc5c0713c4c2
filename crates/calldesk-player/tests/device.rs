//! The player on a real ALSA output, with no sound card: each case runs in a child
//! process whose `HOME` holds an `.asoundrc` (ALSA reads it at start-up, and the
//! parent's environment must not change).
//! - `file-sink`: the default device is ALSA's `file` plugin over `null`; the played
//!   samples land in a raw file, which must hold the recording's sound.
//! - `no-device`: the default device is a sound card that does not exist; loading
//!   must fail with `no-audio-device` and a message that says what to do.

#![allow(clippy::print_stdout)] // a harness-free test reports on stdout

mod common;

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use calldesk_player::{Media, Output, Player, Status};
use common::{temp_dir, tone, wait_for, wav};

const FILE_SINK: &str = r#"pcm.!default { type plug; slave.pcm "calldesk_file" }
pcm.calldesk_file { type file; slave.pcm "calldesk_null"; file "OUT"; format "raw" }
pcm.calldesk_null { type null }
"#;

const MISSING_CARD: &str = "pcm.!default { type hw; card 29 }\nctl.!default { type hw; card 29 }\n";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let case = args.get(at + 1).context("a case after --child")?;
        let recording = args.get(at + 2).context("a recording after the case")?;
        return child(case, Path::new(recording));
    }
    let dir = temp_dir("device")?;
    let recording = dir.join("tone.wav");
    std::fs::write(&recording, wav(1, 8000, &tone(1, 8000, 1000))?)?;

    let out = dir.join("played.raw");
    let home = dir.join("file-sink");
    std::fs::create_dir_all(&home)?;
    std::fs::write(
        home.join(".asoundrc"),
        FILE_SINK.replace("OUT", &out.to_string_lossy()),
    )?;
    let report = run_child(&home, "file-sink", &recording)?;
    let played = std::fs::read(&out).with_context(|| format!("ALSA wrote no {}", out.display()))?;
    // At least one second of 8 kHz mono 16-bit, whatever format the plug picked.
    ensure!(
        played.len() >= 16_000,
        "only {} bytes reached the device",
        played.len()
    );
    let loud = played.iter().filter(|b| **b != 0).count();
    ensure!(
        loud > played.len() / 4,
        "the device got silence ({loud} of {} bytes non-zero)",
        played.len()
    );
    println!("file-sink: ok ({} bytes played; {report})", played.len());

    let home = dir.join("no-device");
    std::fs::create_dir_all(&home)?;
    std::fs::write(home.join(".asoundrc"), MISSING_CARD)?;
    let report = run_child(&home, "no-device", &recording)?;
    println!("no-device: ok ({report})");
    Ok(())
}

fn run_child(home: &Path, case: &str, recording: &Path) -> Result<String> {
    let output = Command::new(std::env::current_exe()?)
        .args(["--child", case])
        .arg(recording)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .output()?;
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !output.status.success() {
        bail!(
            "case {case} failed: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(stdout)
}

fn child(case: &str, recording: &Path) -> Result<()> {
    let player = Player::spawn(Output::Device, |_| {})?;
    player.load("device", Media::File(recording.to_owned()), true)?;
    match case {
        "file-sink" => {
            let ended = wait_for(&player, "the end", |s| s.status == Status::Ended)?;
            println!(
                "first audio after {} ms",
                ended.first_audio_ms.context("no first-audio time")?
            );
        }
        "no-device" => {
            let failed = wait_for(&player, "a failure", |s| s.status == Status::Failed)?;
            let error = failed.error.context("no error")?;
            ensure!(error.code == "no_audio_device", "{error:?}");
            ensure!(
                error.message.contains("connect speakers or headphones"),
                "{}",
                error.message
            );
            println!("{}", error.message);
        }
        other => bail!("unknown case {other}"),
    }
    Ok(())
}
