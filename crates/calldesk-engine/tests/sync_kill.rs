//! kill -9 during sync, many times: no change lost, none applied twice.
//!
//! A real hub on a real PostgreSQL (a fresh database on `DATABASE_URL`) runs in this process.
//! A desk — this same test binary started again with `--child`, running the engine on the Hub
//! profile — writes notes as fast as it can while its sync worker pushes them; it is killed with
//! SIGKILL at a random moment, again and again (the notes it wrote keep piling up in its SQLite
//! file, and each start resumes the push). A last start drains the outbox. Then every note the
//! desk's database holds is on the hub exactly once, nothing else is, and the hub recorded
//! exactly one applied change per note.
//!
//! `harness = false`: `main` is the test (and the child).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use calldesk_central::CentralStore;
use calldesk_engine::Engine;
use calldesk_hub::SecretEnv;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};

#[path = "support/hub.rs"]
mod hub_support;
use hub_support::{PASSWORD, drop_database, fresh_database, hub_desk, serve_hub, tenant};

const KILLS: u32 = 12;
const CALLS: usize = 50;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if let Some(at) = args.iter().position(|a| a == "--child") {
        let mode = args[at + 1].clone();
        let dir = args[at + 2].clone();
        let addr = args[at + 3].parse().unwrap();
        let run = args[at + 4].clone();
        runtime.block_on(child(&mode, Path::new(&dir), addr, &run));
        return;
    }
    // `cargo test -- --list` and name filters: this file holds one test.
    if args.iter().any(|a| a == "--list") {
        println!("kill_9_during_sync_loses_nothing: test");
        return;
    }
    runtime.block_on(parent());
    println!("test kill_9_during_sync_loses_nothing ... ok");
}

/// The desk: `write` adds notes until it is killed; `drain` waits until the outbox is empty.
async fn child(mode: &str, dir: &Path, addr: std::net::SocketAddr, run: &str) {
    let desk = Engine::start(hub_desk(addr, "ivan", PASSWORD, dir))
        .await
        .unwrap();
    match mode {
        "write" => {
            for k in 0.. {
                let call = format!("call-{:04}", k % CALLS);
                desk.add_note(&call, &format!("run {run} note {k}"))
                    .await
                    .unwrap();
                if k % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
        _ => {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let s = desk.sync_status();
                if s.state == calldesk_wire::SyncState::Idle && s.pending == 0 && s.error.is_none()
                {
                    break;
                }
                assert!(Instant::now() < deadline, "the outbox never drained: {s:?}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            desk.shutdown().await;
        }
    }
}

/// (notes, pending outbox rows) in the desk's database.
async fn desk_counts(db: &Path) -> (BTreeSet<String>, i64) {
    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM notes")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM outbox WHERE state = 'pending'")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    (ids.into_iter().collect(), pending)
}

async fn parent() {
    let name = format!("calldesk_sync_kill_{}", std::process::id());
    let (admin, pool) = fresh_database(&name).await;
    let store = CentralStore::from_pool(pool.clone());
    tenant(&store, CALLS).await;
    let (_hub, addr, _stop) =
        serve_hub(&store, SecretEnv::default(), ([127, 0, 0, 1], 0).into()).await;

    let dir = std::env::temp_dir().join(format!("calldesk-sync-kill-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let db = dir.join("calldesk.sqlite3");
    let exe = std::env::current_exe().unwrap();
    let start = |mode: &str, run: u32| {
        Command::new(&exe)
            .args(["--child", mode, &dir.to_string_lossy(), &addr.to_string()])
            .arg(run.to_string())
            .env("RUST_LOG", "off")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let hub_notes = || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM call_notes")
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    // Kill moments from 0.6 to 2.4 s after the start (a fixed sequence: the same every run).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut interrupted = 0;
    let mut last_hub = 0;
    let mut hub_grew = 0;
    for run in 0..KILLS {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let after = Duration::from_millis(600 + (seed >> 33) % 1800);
        let mut desk = start("write", run);
        tokio::time::sleep(after).await;
        desk.kill().unwrap();
        desk.wait().unwrap();
        let (local, pending) = desk_counts(&db).await;
        let on_hub = hub_notes().await;
        println!(
            "kill {run}: after {} ms; desk holds {} notes, {pending} waiting; hub holds {on_hub}",
            after.as_millis(),
            local.len()
        );
        if pending > 0 {
            interrupted += 1;
        }
        if on_hub > last_hub {
            hub_grew += 1;
        }
        last_hub = on_hub;
    }
    let status = start("drain", KILLS).wait().unwrap();
    assert!(status.success(), "the draining desk failed: {status}");

    let (local, pending) = desk_counts(&db).await;
    assert_eq!(pending, 0);
    let on_hub: BTreeSet<String> = sqlx::query_scalar("SELECT id::text FROM call_notes")
        .fetch_all(&pool)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let missing = local.difference(&on_hub).count();
    let extra = on_hub.difference(&local).count();
    assert_eq!(
        (missing, extra),
        (0, 0),
        "every note of the desk on the hub, nothing else"
    );
    let texts: i64 = sqlx::query_scalar("SELECT count(DISTINCT text) FROM call_notes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        usize::try_from(texts).unwrap(),
        local.len(),
        "no note twice"
    );
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM sync_applied")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(usize::try_from(applied).unwrap(), local.len());
    // The kills did land while work was outstanding, and the pushes made progress between them.
    assert!(
        interrupted >= KILLS / 2,
        "only {interrupted} kills left changes waiting"
    );
    assert!(
        hub_grew >= KILLS / 2,
        "the hub grew after only {hub_grew} of {KILLS} runs"
    );
    println!(
        "{} notes written across {KILLS} killed runs, {interrupted} kills with changes waiting; all on the hub once",
        local.len()
    );

    drop(_stop);
    drop_database(&admin, pool, &name).await;
    let _ = std::fs::remove_dir_all(&dir);
}
