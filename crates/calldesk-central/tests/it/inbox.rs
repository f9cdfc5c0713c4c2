//! The Mango webhook inbox: de-duplication, ids in order, processing marks, replay.

use calldesk_calls::TenantId;
use calldesk_central::{CentralError, CentralStore, InboxItem};
use sqlx::PgPool;

use crate::common::{demo_tenant, tid};

fn item(tenant: &TenantId, path: &str, body: &str, at: i64) -> InboxItem {
    InboxItem {
        tenant: tenant.clone(),
        path: path.into(),
        body: body.into(),
        received_at_ms: at,
    }
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn webhooks_are_stored_once_and_replayed_until_processed(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let (acme, globex) = (tid("acme"), tid("globex"));
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "globex", "2").await;
    let t0 = 1_800_000_000_123;

    let first = store
        .insert_webhooks(&[
            item(&acme, "/events/call", r#"{"seq":1}"#, t0),
            item(&acme, "/events/call", r#"{"seq":2}"#, t0 + 1),
            // Delivered twice within the batch.
            item(&acme, "/events/call", r#"{"seq":1}"#, t0 + 2),
            // The same body on another path or for another tenant is another webhook.
            item(&acme, "/events/summary", r#"{"seq":1}"#, t0 + 3),
            item(&globex, "/events/call", r#"{"seq":1}"#, t0 + 4),
            // Path and body are not simply concatenated.
            item(&acme, "/events/call{", r#""seq":1}"#, t0 + 5),
        ])
        .await
        .unwrap();
    assert_eq!(first.len(), 6);
    assert_eq!(first[2], first[0]);
    let distinct: std::collections::BTreeSet<i64> = first.iter().copied().collect();
    assert_eq!(distinct.len(), 5);
    assert!(
        first[0] < first[1] && first[1] < first[3],
        "ids in order: {first:?}"
    );

    // Delivered again later: the existing ids come back, nothing is added.
    let again = store
        .insert_webhooks(&[
            item(&acme, "/events/call", r#"{"seq":2}"#, t0 + 100),
            item(&acme, "/events/call", r#"{"seq":3}"#, t0 + 101),
            item(&acme, "/events/call", r#"{"seq":1}"#, t0 + 102),
        ])
        .await
        .unwrap();
    assert_eq!(again[0], first[1]);
    assert_eq!(again[2], first[0]);
    assert!(again[1] > first[5]);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_inbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(rows, 6);
    assert!(store.insert_webhooks(&[]).await.unwrap().is_empty());

    // Reading: by id, scoped by tenant, with the first arrival's time.
    let acme_items = store.webhooks_after(&acme, 0, 100).await.unwrap();
    let ids: Vec<i64> = acme_items.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, [first[0], first[1], first[3], first[5], again[1]]);
    assert_eq!(
        acme_items[0].1,
        item(&acme, "/events/call", r#"{"seq":1}"#, t0)
    );
    assert_eq!(
        store
            .webhooks_after(&acme, first[1], 2)
            .await
            .unwrap()
            .len(),
        2,
        "after an id, limited"
    );
    let theirs = store.webhooks_after(&globex, 0, 100).await.unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].0, first[4]);

    // Processed by id (their calls are over): the rest is what a new replica replays.
    store
        .mark_webhooks_processed(&acme, &[first[0], first[3], first[4]])
        .await
        .unwrap();
    let pending: Vec<i64> = store
        .unprocessed_webhooks(&acme, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        pending,
        [first[1], first[5], again[1]],
        "first[4] is globex's"
    );
    // Paged by id.
    let page: Vec<i64> = store
        .unprocessed_webhooks(&acme, first[1], 1)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(page, [first[5]]);
    assert_eq!(
        store
            .unprocessed_webhooks(&globex, 0, 100)
            .await
            .unwrap()
            .len(),
        1,
        "marking is per tenant"
    );
    store
        .mark_webhooks_processed(&acme, &[first[1]])
        .await
        .unwrap();

    // Pruning removes processed items only.
    assert_eq!(store.prune_webhooks(&acme, t0 + 1_000).await.unwrap(), 3);
    assert_eq!(store.webhooks_after(&acme, 0, 100).await.unwrap().len(), 2);
    assert_eq!(store.prune_webhooks(&globex, t0 + 1_000).await.unwrap(), 0);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn bad_webhook_batches_are_refused_whole(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let e = store
        .insert_webhooks(&[
            item(&acme, "/events/call", "{}", 1),
            item(&tid("nobody"), "/events/call", "{}", 1),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::NotFound(m) if m.contains("nobody")),
        "{e:?}"
    );
    let e = store
        .insert_webhooks(&[item(&acme, "/events/call", "a\u{0}b", 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::Invalid(m) if m.contains("webhook 0")),
        "{e:?}"
    );
    assert!(store.webhooks_after(&acme, 0, 10).await.unwrap().is_empty());
}
