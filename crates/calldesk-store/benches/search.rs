//! History search over a large local store: `cargo bench -p calldesk-store --bench search
//! [-- N]` stores N synthetic calls (default 1 000 000; see `tests/common`) in batches of
//! 10 000, then times searches of each kind (200 each, against a warm page cache) and prints
//! p50 / p99 / max. The target is p99 < 30 ms over 1 M calls.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use calldesk_store::{HistoryQuery, LocalStore};
use calldesk_wire::CallStatusView;

/// A kind of search: its name, and the k-th query of that kind.
type Case = (&'static str, Box<dyn Fn(u64) -> HistoryQuery>);

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("calldesk-search-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("history.sqlite3");
    let store = LocalStore::open(&path).await.unwrap();

    let started = Instant::now();
    let mut at = 0;
    while at < n {
        let batch: Vec<_> = (at..(at + 10_000).min(n)).map(common::call).collect();
        store.save_ended_many(&batch).await.unwrap();
        at += batch.len() as u64;
    }
    let took = started.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.join("history.sqlite3-wal"))
            .map(|m| m.len())
            .unwrap_or(0);
    println!(
        "stored {n} calls in {:.1} s ({:.0} calls/s), database {} MB",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        size / 1_000_000
    );

    let probe = move |k: u64| common::caller_digits(common::mix(k) % n);
    let cases: Vec<Case> = vec![
        (
            "4 digits of a caller",
            Box::new(move |k| text(&probe(k)[3..7])),
        ),
        (
            "7 digits of a caller",
            Box::new(move |k| text(&probe(k)[3..])),
        ),
        (
            "a whole number, +7 (9xx) xxx-xx-xx",
            Box::new(move |k| {
                let d = probe(k);
                text(&format!(
                    "+7 ({}) {}-{}-{}",
                    &d[..3],
                    &d[3..6],
                    &d[6..8],
                    &d[8..]
                ))
            }),
        ),
        (
            "part of a name or company",
            Box::new(|k| text(["петр", "ostap", "копыт", "karen", "смирн"][k as usize % 5])),
        ),
        (
            "name part + missed",
            Box::new(|k| HistoryQuery {
                status: Some(CallStatusView::Missed),
                ..text(["иван", "bender", "ромаш"][k as usize % 3])
            }),
        ),
        (
            "filters only: missed at 102",
            Box::new(|_| HistoryQuery {
                status: Some(CallStatusView::Missed),
                operator: Some("102".into()),
                ..HistoryQuery::default()
            }),
        ),
        (
            "2 digits (substring scan)",
            Box::new(|k| text(&format!("{:02}", k % 100))),
        ),
        (
            "next page of 4 digits",
            Box::new(move |k| HistoryQuery {
                before: Some(n as i64 / 2),
                ..text(&probe(k)[3..7])
            }),
        ),
    ];
    println!(
        "{:<40} {:>8} {:>8} {:>8} {:>8}",
        "search (page of 100)", "p50 ms", "p99 ms", "max ms", "hits"
    );
    for (name, query) in cases {
        let mut times = Vec::new();
        let mut hits = 0;
        for k in 0..200 {
            let q = query(k);
            let t = Instant::now();
            let page = store.search_calls(&q).await.unwrap();
            times.push(t.elapsed());
            hits += page.calls.len();
        }
        times.sort_unstable();
        println!(
            "{name:<40} {:>8.2} {:>8.2} {:>8.2} {:>8}",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            percentile(&times, 1.0),
            hits / 200
        );
    }
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn text(t: &str) -> HistoryQuery {
    HistoryQuery {
        text: t.to_owned(),
        ..HistoryQuery::default()
    }
}
