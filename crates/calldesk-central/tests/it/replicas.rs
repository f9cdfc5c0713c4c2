//! Hub replicas: PBX leases (session advisory locks) and LISTEN/NOTIFY.

use std::time::Duration;

use calldesk_central::{CentralError, CentralStore, lease_key};
use sqlx::PgPool;

use crate::common::tid;

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_lease_has_one_holder_until_released_or_disconnected(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let (acme, globex) = (tid("acme"), tid("globex"));
    assert_ne!(lease_key(&acme), lease_key(&globex));
    assert_eq!(lease_key(&acme), lease_key(&tid("acme")), "stable");

    let mut a = store.lease_connection().await.unwrap();
    let mut b = store.lease_connection().await.unwrap();
    a.ping().await.unwrap();
    assert!(a.try_acquire(&acme).await.unwrap());
    assert!(a.try_acquire(&acme).await.unwrap(), "held already");
    assert!(!b.try_acquire(&acme).await.unwrap());
    assert!(b.try_acquire(&globex).await.unwrap());
    assert!(!a.try_acquire(&globex).await.unwrap());
    assert_eq!(a.held().collect::<Vec<_>>(), [&acme]);

    // Released (once, although acquired twice): the other replica takes it.
    a.release(&acme).await.unwrap();
    a.release(&acme).await.unwrap();
    assert!(b.try_acquire(&acme).await.unwrap());
    assert!(!a.try_acquire(&acme).await.unwrap());

    // A replica that dies (its connection drops) loses every lease.
    drop(b);
    let mut took_over = false;
    for _ in 0..200 {
        if a.try_acquire(&acme).await.unwrap() && a.try_acquire(&globex).await.unwrap() {
            took_over = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(
        took_over,
        "the dropped connection's leases were not released"
    );

    // A clean close releases them at once.
    a.close().await.unwrap();
    let mut c = store.lease_connection().await.unwrap();
    assert!(c.try_acquire(&acme).await.unwrap());
    assert!(c.try_acquire(&globex).await.unwrap());
    store.ping().await.unwrap();
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn notifications_reach_listeners_in_order(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let mut listener = store.listen(&["calls", "presence"]).await.unwrap();
    store
        .notify("calls", &["one".into(), "two".into(), "three".into()])
        .await
        .unwrap();
    store.notify("presence", &["p".into()]).await.unwrap();
    store
        .notify("elsewhere", &["ignored".into()])
        .await
        .unwrap();
    store.notify("calls", &[]).await.unwrap();

    let mut got = Vec::new();
    for _ in 0..4 {
        let n = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .expect("a notification within 10 s")
            .unwrap();
        got.push((n.channel().to_owned(), n.payload().to_owned()));
    }
    let expected: Vec<(String, String)> = [
        ("calls", "one"),
        ("calls", "two"),
        ("calls", "three"),
        ("presence", "p"),
    ]
    .into_iter()
    .map(|(c, p)| (c.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(got, expected);

    let e = store
        .notify("calls", &["x".repeat(8000)])
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::Invalid(_)), "{e:?}");
    let e = store.notify("", &["x".into()]).await.unwrap_err();
    assert!(matches!(e, CentralError::Invalid(_)), "{e:?}");
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn replicas_see_each_other_by_heartbeat_and_relaxed_writes_are_read_back(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    assert_eq!(store.replica_heartbeat("hub-a", 10).await.unwrap(), 0);
    assert_eq!(store.replica_heartbeat("hub-b", 10).await.unwrap(), 1);
    assert_eq!(store.replica_heartbeat("hub-a", 10).await.unwrap(), 1);
    store.replica_gone("hub-b").await.unwrap();
    assert_eq!(store.replica_heartbeat("hub-a", 10).await.unwrap(), 0);

    // The relaxed store writes the same database; what it commits is read back at once.
    let relaxed = store.relaxed(1).await.unwrap();
    let mode: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(relaxed.pool())
        .await
        .unwrap();
    assert_eq!(mode, "off");
    let normal: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!(normal, "on");
    crate::common::demo_tenant(&store, "acme", "0367").await;
    relaxed
        .mark_webhooks_processed(&tid("acme"), &[1])
        .await
        .unwrap();
}
