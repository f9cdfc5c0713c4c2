//! The player against a virtual output that plays in real time and keeps what it
//! played: exact samples out, streaming start, pause, seek, speed, volume, failures.

mod common;

use std::io::Write;
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use calldesk_player::{
    Cache, Capture, Media, Output, Player, Status, decode, stream_file, waveform,
};
use common::{temp_dir, tone, wait_for, wav};

const RATE: u32 = 8000;

fn virtual_player(channels: u16) -> Result<(Player, Capture)> {
    let capture = Capture::default();
    let output = Output::Virtual {
        channels,
        sample_rate: RATE,
        capture: Some(capture.clone()),
    };
    Ok((Player::spawn(output, |_| {})?, capture))
}

fn file_with(name: &str, bytes: &[u8]) -> Result<std::path::PathBuf> {
    let path = temp_dir(name)?.join("rec.wav");
    std::fs::write(&path, bytes)?;
    Ok(path)
}

#[test]
fn decoding_gives_back_the_source_samples_and_a_waveform() -> Result<()> {
    let source = tone(2, RATE, 500);
    let path = file_with("decode", &wav(2, RATE, &source)?)?;
    let decoded = decode(Media::File(path.clone()))?;
    assert_eq!((decoded.channels, decoded.sample_rate), (2, RATE));
    assert_eq!(decoded.samples, source);
    assert_eq!(decoded.duration(), Duration::from_millis(500));

    // Half silence, half tone: the overview shows it.
    let mut half = vec![0.0f32; 4000];
    half.extend(tone(1, RATE, 500));
    let path = file_with("wave", &wav(1, RATE, &half)?)?;
    let overview = waveform(Media::File(path), 10)?;
    assert_eq!(overview.duration_ms, 1000);
    assert_eq!(overview.peaks.len(), 10);
    assert!(
        overview.peaks[..5].iter().all(|p| *p == 0.0),
        "{:?}",
        overview.peaks
    );
    assert!(
        overview.peaks[5..]
            .iter()
            .all(|p| (0.55..=0.61).contains(p)),
        "{:?}",
        overview.peaks
    );
    Ok(())
}

#[test]
fn a_played_file_reaches_the_output_sample_for_sample_and_ends() -> Result<()> {
    let source = tone(2, RATE, 400);
    let path = file_with("play", &wav(2, RATE, &source)?)?;
    let (player, capture) = virtual_player(2)?;
    player.load("call-1", Media::File(path), true)?;
    let ended = wait_for(&player, "the end", |s| s.status == Status::Ended)?;
    assert_eq!(ended.id.as_deref(), Some("call-1"));
    assert_eq!(ended.duration_ms, Some(400));
    assert_eq!(ended.position_ms, 400);
    assert!(ended.first_audio_ms.is_some());
    let played = capture.samples();
    assert!(
        played.len() >= source.len(),
        "{} < {}",
        played.len(),
        source.len()
    );
    assert_eq!(&played[..source.len()], source.as_slice());
    // Play again after the end: from the start.
    player.play()?;
    wait_for(&player, "playing again", |s| {
        s.status == Status::Playing && s.position_ms < 400
    })?;
    Ok(())
}

#[test]
fn playback_starts_while_the_recording_is_still_downloading() -> Result<()> {
    let source = tone(1, RATE, 2000);
    let bytes = wav(1, RATE, &source)?;
    let cache = Cache::open(temp_dir("stream")?, 1 << 20)?;
    let (mut pending, reader) =
        cache.start("acme/2026/11/22/c1/rec.wav", Some(bytes.len() as u64))?;
    let (player, capture) = virtual_player(1)?;
    // The header and the first quarter now, the rest slowly.
    let quarter = bytes.len() / 4;
    pending.append(&bytes[..quarter])?;
    player.load(
        "c1",
        Media::Stream {
            reader,
            hint: Some("wav".into()),
        },
        true,
    )?;
    let playing = wait_for(&player, "playing", |s| s.status == Status::Playing)?;
    assert!(playing.downloaded < bytes.len() as u64, "{playing:?}");
    assert_eq!(playing.total, Some(bytes.len() as u64));
    for part in bytes[quarter..].chunks(bytes.len() / 8) {
        thread::sleep(Duration::from_millis(100));
        pending.append(part)?;
    }
    let cached = pending.finish(&cache)?;
    assert_eq!(cached.len, bytes.len() as u64);
    wait_for(&player, "the end", |s| s.status == Status::Ended)?;
    // Buffering inserts silence, but every source sample is played, in order.
    let played: Vec<f32> = capture
        .samples()
        .into_iter()
        .filter(|s| *s != 0.0)
        .collect();
    assert_eq!(played, source);
    assert_eq!(std::fs::read(cached.path)?, bytes);
    Ok(())
}

#[test]
fn pause_seek_speed_and_volume_act_on_what_is_played() -> Result<()> {
    let source = tone(1, RATE, 1000);
    let path = file_with("controls", &wav(1, RATE, &source)?)?;
    let (player, capture) = virtual_player(1)?;

    // Loaded paused, moved to 0.5 s, then played: the output starts there.
    player.load("c2", Media::File(path.clone()), false)?;
    wait_for(&player, "paused", |s| {
        s.status == Status::Paused && s.duration_ms == Some(1000)
    })?;
    player.seek(Duration::from_millis(500))?;
    player.play()?;
    wait_for(&player, "the end", |s| s.status == Status::Ended)?;
    let played = capture.samples();
    let half = &source[4000..];
    assert_eq!(&played[..half.len()], half);

    // Half volume halves every sample; double speed halves the output's length.
    player.set_volume(0.5)?;
    player.set_speed(2.0)?;
    let before = capture.samples().len();
    player.load("c3", Media::File(path), true)?;
    let ended = wait_for(&player, "the end", |s| {
        s.status == Status::Ended && s.id.as_deref() == Some("c3")
    })?;
    assert_eq!((ended.speed, ended.volume), (2.0, 0.5));
    let all = capture.samples();
    let fast: Vec<f32> = all[before..]
        .iter()
        .copied()
        .skip_while(|s| *s == 0.0)
        .collect();
    let fast_len = fast.iter().rposition(|s| *s != 0.0).map_or(0, |i| i + 1);
    // rodio's converter takes a new rate at its next 512-sample span: 512 + 7488 / 2.
    assert!(
        (4000..=4300).contains(&fast_len),
        "{fast_len} samples at 2× for 8000 at 1×"
    );
    let peak = fast.iter().fold(0f32, |m, s| m.max(s.abs()));
    assert!(
        (0.28..=0.31).contains(&peak),
        "peak {peak} at half volume (source 0.6)"
    );

    // Pausing holds the position.
    player.set_speed(1.0)?;
    let long = file_with("pause", &wav(1, RATE, &tone(1, RATE, 3000))?)?;
    player.load("c4", Media::File(long), true)?;
    wait_for(&player, "some playing", |s| {
        s.status == Status::Playing && s.position_ms > 100
    })?;
    player.pause()?;
    let paused = wait_for(&player, "paused", |s| s.status == Status::Paused)?;
    thread::sleep(Duration::from_millis(300));
    let later = player.state();
    assert!(
        later.position_ms.abs_diff(paused.position_ms) <= 30,
        "{paused:?} then {later:?}"
    );

    assert!(player.set_speed(2.5).is_err());
    assert!(player.set_volume(-0.1).is_err());
    Ok(())
}

#[test]
fn failures_are_reported_with_a_code_and_the_reason() -> Result<()> {
    let (player, _capture) = virtual_player(1)?;

    let garbage = temp_dir("garbage")?.join("rec.mp3");
    std::fs::File::create(&garbage)?.write_all(&[0x42; 4096])?;
    player.load("bad", Media::File(garbage), true)?;
    let failed = wait_for(&player, "a failure", |s| s.status == Status::Failed)?;
    let error = failed.error.context("an error")?;
    assert_eq!(error.code, "unsupported_format");

    let opus = temp_dir("opus")?.join("rec.opus");
    std::fs::write(&opus, b"OggS")?;
    player.load("opus", Media::File(opus), true)?;
    let failed = wait_for(&player, "a failure", |s| {
        s.status == Status::Failed && s.id.as_deref() == Some("opus")
    })?;
    assert!(failed.error.context("an error")?.message.contains("Opus"));

    // The download breaks half-way: what arrived plays, then the reason shows.
    let bytes = wav(1, RATE, &tone(1, RATE, 1000))?;
    let (mut download, reader) =
        stream_file(&temp_dir("cut")?.join("rec.wav"), Some(bytes.len() as u64))?;
    download.append(&bytes[..bytes.len() / 2])?;
    player.load(
        "cut",
        Media::Stream {
            reader,
            hint: Some("wav".into()),
        },
        true,
    )?;
    wait_for(&player, "playing", |s| s.status == Status::Playing)?;
    download.fail("the hub answered 502 Bad Gateway");
    let failed = wait_for(&player, "a failure", |s| s.status == Status::Failed)?;
    let error = failed.error.context("an error")?;
    assert_eq!(error.code, "recording_unreadable");
    assert!(
        error.message.contains("502 Bad Gateway"),
        "{}",
        error.message
    );
    Ok(())
}
