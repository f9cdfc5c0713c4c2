//! `calldesk ami replay`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use calldesk_asterisk::{Replayer, RxChunk, rx_chunks};
use calldesk_calls::{NumberPlan, Timestamp};
use calldesk_wire::CallRecord;

#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Capture files: raw bytes as received from Asterisk (`*.rx.raw`).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Home region for numbers without a country code (ISO code).
    #[arg(long, default_value = "RU", env = "CALLDESK_REGION")]
    region: String,
    /// Repeat codec + tracker over the files in memory for at least this long and report the
    /// throughput instead of printing records.
    #[arg(long)]
    bench: bool,
    /// Minimum benchmark duration in seconds.
    #[arg(long, default_value_t = 2.0, requires = "bench")]
    bench_secs: f64,
}

/// A capture in memory: its bytes and how they arrived.
struct Capture {
    bytes: Vec<u8>,
    chunks: Option<Vec<RxChunk>>,
}

/// `x.rx.raw` → `x.timeline.jsonl`.
fn timeline_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".rx.raw")?;
    Some(path.with_file_name(format!("{stem}.timeline.jsonl")))
}

fn load(path: &Path) -> anyhow::Result<Capture> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let chunks = match timeline_of(path).filter(|t| t.is_file()) {
        Some(t) => {
            let text = std::fs::read_to_string(&t)
                .with_context(|| format!("cannot read {}", t.display()))?;
            let chunks = rx_chunks(&text).with_context(|| format!("in {}", t.display()))?;
            let fits = chunks.iter().all(|c| {
                c.off
                    .checked_add(c.len)
                    .is_some_and(|end| end <= bytes.len())
            });
            anyhow::ensure!(
                fits,
                "{} does not describe {} (offsets beyond its {} bytes)",
                t.display(),
                path.display(),
                bytes.len()
            );
            Some(chunks)
        }
        None => None,
    };
    Ok(Capture { bytes, chunks })
}

/// Runs one capture through a fresh replayer; returns it with the ended calls.
fn replay(capture: &Capture, plan: &NumberPlan) -> Replayer {
    let mut replayer = Replayer::new(plan.clone());
    match &capture.chunks {
        Some(chunks) => {
            for c in chunks {
                replayer.feed(&capture.bytes[c.off..c.off + c.len], c.at);
            }
        }
        None => replayer.feed(&capture.bytes, Timestamp::from_unix_millis(0)),
    }
    replayer
}

fn report(messages: u64, bytes: u64, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let mb_s = if seconds > 0.0 {
        bytes as f64 / 1e6 / seconds
    } else {
        0.0
    };
    eprintln!("messages={messages} bytes={bytes} seconds={seconds:.6} throughput_mb_s={mb_s:.1}");
}

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let plan = NumberPlan::new(&args.region)?;
    // Load the numbering metadata now, so its one-time set-up is not timed as replay.
    let _ = plan.party("+74951234567");
    let captures = args
        .files
        .iter()
        .map(|f| load(f))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if args.bench {
        return bench(
            &captures,
            &plan,
            Duration::from_secs_f64(args.bench_secs.max(0.0)),
        );
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let (mut messages, mut bytes, mut elapsed) = (0, 0, Duration::ZERO);
    for capture in &captures {
        let started = Instant::now();
        let mut replayer = replay(capture, &plan);
        elapsed += started.elapsed();
        messages += replayer.messages();
        bytes += replayer.bytes();
        for call in replayer.take_ended() {
            let record = CallRecord::new(&call, capture.chunks.is_some());
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    report(messages, bytes, elapsed);
    Ok(())
}

fn bench(captures: &[Capture], plan: &NumberPlan, at_least: Duration) -> anyhow::Result<()> {
    let (mut messages, mut bytes, mut calls) = (0u64, 0u64, 0usize);
    let started = Instant::now();
    loop {
        for capture in captures {
            let mut replayer = replay(capture, plan);
            messages += replayer.messages();
            bytes += replayer.bytes();
            calls += replayer.take_ended().len();
        }
        if started.elapsed() >= at_least {
            break;
        }
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(
        bytes == 0 || messages > 0,
        "no AMI message found in the input"
    );
    latency(captures, plan);
    eprintln!("calls={calls}");
    report(messages, bytes, elapsed);
    Ok(())
}

/// From the last byte of a message to its call updates: each message is fed alone, complete,
/// and timed until the replayer has applied what it implies.
fn latency(captures: &[Capture], plan: &NumberPlan) {
    let mut samples: Vec<Duration> = Vec::new();
    for capture in captures {
        let mut replayer = Replayer::new(plan.clone());
        for message in calldesk_asterisk::split_messages(&capture.bytes) {
            let started = Instant::now();
            replayer.feed(message, Timestamp::from_unix_millis(0));
            samples.push(started.elapsed());
        }
    }
    if samples.is_empty() {
        return;
    }
    samples.sort_unstable();
    let pick = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    eprintln!(
        "latency_us p50={:.2} p99={:.2} p999={:.2} max={:.2}",
        pick(0.5),
        pick(0.99),
        pick(0.999),
        pick(1.0)
    );
}
