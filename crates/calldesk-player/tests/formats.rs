//! MP3 and Ogg Vorbis, made from a WAV tone by the real encoders (`lame`, `oggenc`; `cargo
//! xtask test` installs them), decode to the same sound: the same length and loudness, and
//! the same pitch (the zero crossings of a 440 Hz tone). Opus is refused by name.

mod common;

use std::path::PathBuf;

use anyhow::{Result, ensure};
use calldesk_player::{Media, PlayerError, decode, waveform};
use common::{encode, sine, temp_dir, wav};

const RATE: u32 = 44_100;

/// A 440 Hz tone at half scale, 2 s.
fn tone() -> Vec<f32> {
    sine(RATE, 2, 440.0, 0.5)
}

fn rms(samples: &[f32]) -> f32 {
    (samples.iter().map(|s| s * s).sum::<f32>() / samples.len().max(1) as f32).sqrt()
}

/// Upward zero crossings per second of the middle second (a tone's frequency).
fn frequency(samples: &[f32], rate: u32) -> f32 {
    let middle = &samples[rate as usize / 2..rate as usize * 3 / 2];
    middle
        .windows(2)
        .filter(|w| w[0] < 0.0 && w[1] >= 0.0)
        .count() as f32
}

fn check(path: PathBuf) -> Result<()> {
    let decoded = decode(Media::File(path.clone()))?;
    ensure!(
        decoded.channels == 1 && decoded.sample_rate == RATE,
        "{} → {} ch {} Hz",
        path.display(),
        decoded.channels,
        decoded.sample_rate
    );
    let ms = decoded.duration().as_millis();
    ensure!(
        (1950..=2060).contains(&ms),
        "{}: {ms} ms for 2000",
        path.display()
    );
    let loud = rms(&decoded.samples);
    ensure!(
        (0.33..=0.38).contains(&loud),
        "{}: rms {loud} for 0.354",
        path.display()
    );
    let hz = frequency(&decoded.samples, RATE);
    ensure!(
        (438.0..=442.0).contains(&hz),
        "{}: {hz} Hz for 440",
        path.display()
    );
    let overview = waveform(Media::File(path.clone()), 20)?;
    ensure!(
        overview
            .peaks
            .iter()
            .skip(1)
            .take(18)
            .all(|p| (0.45..=0.56).contains(p)),
        "{}: {:?}",
        path.display(),
        overview.peaks
    );
    Ok(())
}

#[test]
fn mp3_and_ogg_vorbis_decode_to_the_source_tone() -> Result<()> {
    let dir = temp_dir("formats")?;
    let source = dir.join("tone.wav");
    std::fs::write(&source, wav(1, RATE, &tone())?)?;
    check(source.clone())?;
    check(encode(&tone(), RATE, "mp3", 128, &dir)?)?;
    check(encode(&tone(), RATE, "ogg", 5, &dir)?)?;
    Ok(())
}

#[test]
fn opus_is_refused_by_name() -> Result<()> {
    let path = temp_dir("opus-name")?.join("call.opus");
    std::fs::write(&path, b"OggS\0\x02")?;
    match decode(Media::File(path)) {
        Err(PlayerError::Format(what)) => ensure!(what.contains("Opus"), "{what}"),
        other => anyhow::bail!("expected a format error, got {other:?}"),
    }
    Ok(())
}
