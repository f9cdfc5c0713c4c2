//! Sync throughput: how fast a desk's outbox reaches the hub.
//!
//! A real hub on a real PostgreSQL (a fresh database on `DATABASE_URL`) on loopback; a desk on
//! the Hub profile makes `CALLDESK_BENCH_CHANGES` changes (default 50,000: 60 % notes, 20 %
//! dispositions, 20 % tag sets over 1,000 calls) while the hub is down, then the hub comes back
//! and the time until the outbox is empty is measured — pushes in batches of 1,000 over HTTP,
//! each applied in one transaction on the hub, and settled in the desk's SQLite — then the
//! whole round, with the pull that brings every changed call back.
//!
//! `cargo bench -p calldesk-engine --bench sync` prints `key=value` lines.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};

use calldesk_central::CentralStore;
use calldesk_engine::Engine;
use calldesk_hub::SecretEnv;

#[path = "../tests/support/hub.rs"]
mod hub_support;
use hub_support::{PASSWORD, drop_database, fresh_database, hub_desk, serve_hub, tenant};

const CODES: [&str; 3] = ["sale", "callback", "info"];

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}

async fn bench() {
    let changes: usize = std::env::var("CALLDESK_BENCH_CHANGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let name = format!("calldesk_sync_bench_{}", std::process::id());
    let (admin, pool) = fresh_database(&name).await;
    let store = CentralStore::from_pool(pool.clone());
    let ids = tenant(&store, 1000).await;
    let (_hub, addr, stop) =
        serve_hub(&store, SecretEnv::default(), ([127, 0, 0, 1], 0).into()).await;
    let dir = std::env::temp_dir().join(format!("calldesk-sync-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let desk = Engine::start(hub_desk(addr, "ivan", PASSWORD, &dir))
        .await
        .unwrap();
    // Logged in, the calls and the disposition list pulled.
    while desk.sync_status().last_synced_at.is_none() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.send_replace(true);
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    for i in 0..changes {
        let id = &ids[i % ids.len()];
        match i % 5 {
            0..=2 => drop(desk.add_note(id, &format!("note {i}")).await.unwrap()),
            3 => desk.set_disposition(id, CODES[i % 3]).await.unwrap(),
            _ => drop(desk.set_tags(id, &[format!("t{}", i % 9)]).await.unwrap()),
        }
    }
    let written = started.elapsed();
    println!(
        "local_writes={changes} local_secs={:.2} local_per_sec={:.0}",
        written.as_secs_f64(),
        changes as f64 / written.as_secs_f64()
    );

    let (_hub, _, _stop) = serve_hub(&store, SecretEnv::default(), addr).await;
    let started = Instant::now();
    desk.sync_now();
    let mut pushed_at = None;
    loop {
        let s = desk.sync_status();
        if pushed_at.is_none() && s.state != calldesk_wire::SyncState::Offline && s.pending == 0 {
            pushed_at = Some(started.elapsed());
        }
        if s.pending == 0 && s.state == calldesk_wire::SyncState::Idle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let round = started.elapsed();
    let pushed = pushed_at.unwrap_or(round);
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_applied")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(usize::try_from(applied).unwrap(), changes);
    println!(
        "pushed={changes} push_secs={:.2} records_per_sec={:.0} (outbox -> hub: read, HTTP, applied in PostgreSQL, settled)",
        pushed.as_secs_f64(),
        changes as f64 / pushed.as_secs_f64()
    );
    println!(
        "round_secs={:.2} round_records_per_sec={:.0} (and the pull of every changed call back into the desk)",
        round.as_secs_f64(),
        changes as f64 / round.as_secs_f64()
    );
    desk.shutdown().await;
    drop(_stop);
    drop_database(&admin, pool, &name).await;
    let _ = std::fs::remove_dir_all(&dir);
}
