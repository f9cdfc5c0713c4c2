//! Time to first audio on loopback: from the HTTP request for a recording to the first
//! decoded sample taken by the output, while the file is still downloading.
//!
//! `cargo bench -p calldesk-player --bench first_audio [-- --runs N] [-- --device]`
//!
//! A loopback HTTP server sends the recording in 16 KiB chunks (as fast as it can, or at a
//! set rate); the client streams it into the cache and the player starts on the growing file,
//! as the app does. The output is a virtual one paced in real time (no sound card needed);
//! `--device` uses the system's default device instead. Prints the median, p90 and max per
//! case; the target is under 300 ms.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

use calldesk_player::{Cache, Media, Output, Player, Status};

#[path = "../tests/common/mod.rs"]
mod common;

const CHUNK: usize = 16 * 1024;

/// Serves `body` to every request, at `rate` bytes per second (None: no limit).
fn serve(body: Vec<u8>, rate: Option<u64>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let body = body.clone();
            thread::spawn(move || answer(stream, &body, rate));
        }
    });
    port
}

fn answer(mut stream: TcpStream, body: &[u8], rate: Option<u64>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let started = Instant::now();
    for (i, chunk) in body.chunks(CHUNK).enumerate() {
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64((i * CHUNK) as f64 / rate as f64);
            thread::sleep(due.saturating_sub(started.elapsed()));
        }
        if stream.write_all(chunk).is_err() {
            return;
        }
    }
}

fn tone_wav(seconds: u32, rate: u32) -> Vec<u8> {
    common::wav(1, rate, &common::sine(rate, seconds, 440.0, 0.4)).unwrap()
}

/// The tone as MP3 through `lame`, if it is installed.
fn mp3_of(seconds: u32) -> Option<Vec<u8>> {
    let dir = common::temp_dir("first-audio-mp3").ok()?;
    let path = common::encode(
        &common::sine(44_100, seconds, 440.0, 0.4),
        44_100,
        "mp3",
        64,
        &dir,
    )
    .ok()?;
    std::fs::read(path).ok()
}

/// One play: request, stream into the cache, play; ms from the request to the first sample.
fn once(player: &Player, cache: &Cache, port: u16, hint: &str, run: usize) -> (u64, u64) {
    let started = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "GET /rec HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut len = None;
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap() > 2 {
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse::<u64>().ok();
        }
        line.clear();
    }
    let headers_ms = started.elapsed().as_millis() as u64;
    let (mut pending, media) = cache.start(&format!("bench/{run}.{hint}"), len).unwrap();
    player
        .load(
            format!("run-{run}"),
            Media::Stream {
                reader: media,
                hint: Some(hint.to_owned()),
            },
            true,
        )
        .unwrap();
    let loaded = started.elapsed();
    let copier = thread::spawn(move || {
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = reader.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            pending.append(&buf[..n]).unwrap();
        }
        pending
    });
    let first = loop {
        let state = player.state();
        if state.id.as_deref() == Some(&format!("run-{run}")) {
            if let Some(ms) = state.first_audio_ms {
                break ms;
            }
            assert_ne!(state.status, Status::Failed, "{state:?}");
        }
        thread::sleep(Duration::from_millis(1));
    };
    let pending = copier.join().unwrap();
    pending.finish(cache).unwrap();
    (headers_ms, loaded.as_millis() as u64 + first)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(10usize);
    let output = if args.iter().any(|a| a == "--device") {
        Output::Device
    } else {
        Output::Virtual {
            channels: 2,
            sample_rate: 48_000,
            capture: None,
        }
    };
    let dir: PathBuf =
        std::env::temp_dir().join(format!("calldesk-first-audio-cache-{}", std::process::id()));
    let cache = Cache::open(&dir, 1 << 30).unwrap();
    let player = Player::spawn(output.clone(), |_| {}).unwrap();
    println!("first audio on loopback ({runs} runs each; output: {output:?})");
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "case", "headers", "median", "p90", "max"
    );
    let mut cases: Vec<(String, Vec<u8>, &str, Option<u64>)> = vec![
        (
            "WAV 8 kHz mono, 60 s (960 KB), full speed".into(),
            tone_wav(60, 8000),
            "wav",
            None,
        ),
        (
            "WAV 8 kHz mono, 60 s, at 1 MB/s".into(),
            tone_wav(60, 8000),
            "wav",
            Some(1_000_000),
        ),
        (
            "WAV 8 kHz mono, 60 s, at 128 KB/s".into(),
            tone_wav(60, 8000),
            "wav",
            Some(128_000),
        ),
    ];
    match mp3_of(60) {
        Some(mp3) => {
            cases.push((
                format!("MP3 64 kbit/s, 60 s ({} KB), full speed", mp3.len() / 1000),
                mp3.clone(),
                "mp3",
                None,
            ));
            cases.push((
                "MP3 64 kbit/s, 60 s, at 128 KB/s".into(),
                mp3,
                "mp3",
                Some(128_000),
            ));
        }
        None => println!("(no MP3 cases: `lame` is not installed)"),
    }
    let mut run = 0;
    for (name, body, hint, rate) in cases {
        let port = serve(body, rate);
        let mut headers = Vec::new();
        let mut firsts = Vec::new();
        for _ in 0..runs {
            run += 1;
            let (h, f) = once(&player, &cache, port, hint, run);
            headers.push(h);
            firsts.push(f);
        }
        headers.sort_unstable();
        firsts.sort_unstable();
        let at = |v: &[u64], q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        println!(
            "{name:<44} {:>6}ms {:>6}ms {:>6}ms {:>6}ms",
            at(&headers, 0.5),
            at(&firsts, 0.5),
            at(&firsts, 0.9),
            firsts[firsts.len() - 1]
        );
    }
    player.unload().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
}
