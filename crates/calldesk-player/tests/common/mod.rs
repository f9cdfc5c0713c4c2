//! Test recordings: real WAV files made with rodio's WAV writer.
#![allow(dead_code)]

use std::io::Cursor;
use std::num::NonZero;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use calldesk_player::{Player, PlayerState, Status};

/// A two-tone test signal that never starts with an exact zero (so leading
/// silence can be told from the recording).
pub fn tone(channels: u16, rate: u32, millis: u32) -> Vec<f32> {
    let frames = rate as usize * millis as usize / 1000;
    let mut samples = Vec::with_capacity(frames * usize::from(channels));
    for i in 0..frames {
        let t = i as f32 / rate as f32;
        for c in 0..channels {
            let f = if c == 0 { 440.0 } else { 660.0 };
            samples.push(0.5 * (std::f32::consts::TAU * f * t + 0.3).sin() + 0.1);
        }
    }
    samples
}

/// The samples as a 32-bit float WAV file.
pub fn wav(channels: u16, rate: u32, samples: &[f32]) -> Result<Vec<u8>> {
    let source = rodio::buffer::SamplesBuffer::new(
        NonZero::new(channels).context("channels")?,
        NonZero::new(rate).context("rate")?,
        samples.to_vec(),
    );
    let mut out = Cursor::new(Vec::new());
    rodio::wav_to_writer(source, &mut out)?;
    Ok(out.into_inner())
}

/// A mono tone of `freq` Hz at `level` (0..1), `seconds` long.
pub fn sine(rate: u32, seconds: u32, freq: f32, level: f32) -> Vec<f32> {
    (0..rate * seconds)
        .map(|i| level * (std::f32::consts::TAU * freq * i as f32 / rate as f32).sin())
        .collect()
}

/// Encodes mono `samples` at `rate` with a real encoder, from raw 16-bit little-endian PCM:
/// `lame` (`format` "mp3", at `quality` kbit/s) or `oggenc` ("ogg", `quality` 0-10).
/// `cargo xtask test` installs both (Debian `lame`, `vorbis-tools`).
pub fn encode(
    samples: &[f32],
    rate: u32,
    format: &str,
    quality: u32,
    dir: &Path,
) -> Result<PathBuf> {
    let raw = dir.join("tone.raw");
    let pcm: Vec<u8> = samples
        .iter()
        .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
        .collect();
    std::fs::write(&raw, pcm)?;
    let out = dir.join(format!("tone.{format}"));
    let (khz, hz, q) = (
        format!("{}", rate as f32 / 1000.0),
        rate.to_string(),
        quality.to_string(),
    );
    let (program, args): (&str, Vec<&str>) = match format {
        "mp3" => (
            "lame",
            vec![
                "--quiet",
                "-r",
                "-s",
                &khz,
                "--bitwidth",
                "16",
                "--signed",
                "--little-endian",
                "-m",
                "m",
                "-b",
                &q,
            ],
        ),
        "ogg" => (
            "oggenc",
            vec![
                "--quiet", "-r", "-B", "16", "-C", "1", "-R", &hz, "-q", &q, "-o",
            ],
        ),
        other => bail!("no encoder for {other}"),
    };
    let mut cmd = Command::new(program);
    cmd.args(args);
    // lame: input then output; oggenc: -o output, then input.
    if format == "mp3" {
        cmd.arg(&raw).arg(&out);
    } else {
        cmd.arg(&out).arg(&raw);
    }
    let status = cmd
        .stderr(std::process::Stdio::null())
        .status()
        .with_context(|| format!("{program} is not installed: run `cargo xtask test` once, or apt install lame vorbis-tools"))?;
    ensure!(status.success(), "{program} failed: {status}");
    Ok(out)
}

pub fn temp_dir(name: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("calldesk-player-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Waits until the player's state passes `check`, or fails with the last state.
pub fn wait_for(
    player: &Player,
    what: &str,
    check: impl Fn(&PlayerState) -> bool,
) -> Result<PlayerState> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let state = player.state();
        if check(&state) {
            return Ok(state);
        }
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}; last state {state:?}");
        }
        if state.status == Status::Failed && !what.contains("fail") {
            bail!("the player failed while waiting for {what}: {state:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
