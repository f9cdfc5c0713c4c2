//! Against a real PostgreSQL: `DATABASE_URL` must point at a server where we may create
//! databases (`cargo xtask test` provides one).

// Test helpers may panic on bad fixtures: that is a failed test, not a crash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use calldesk_calls::{
    Call, CallBook, CallEvent, CallEventKind, CallId, Direction, HangupCause, NumberPlan, TenantId,
    Timestamp,
};
use calldesk_central::{CentralStore, PbxKind};
use sqlx::PgPool;

fn events(book: &mut CallBook, id: &str, kinds: Vec<(i64, CallEventKind)>) -> Vec<Call> {
    let call = CallId::new(id).unwrap();
    kinds
        .into_iter()
        .filter_map(|(ms, kind)| {
            book.apply(&CallEvent {
                call: call.clone(),
                at: Timestamp::from_unix_millis(1_800_000_000_000 + ms),
                kind,
            })
            .unwrap()
        })
        .map(|u| u.call)
        .collect()
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn upserts_are_idempotent_and_scoped_by_tenant(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let plan = NumberPlan::new("RU").unwrap();
    let (acme, globex) = (
        TenantId::new("acme").unwrap(),
        TenantId::new("globex").unwrap(),
    );
    store
        .upsert_tenant(&acme, "Acme", PbxKind::Asterisk)
        .await
        .unwrap();
    store
        .upsert_tenant(&acme, "Acme Ltd", PbxKind::Asterisk)
        .await
        .unwrap();
    store
        .upsert_tenant(&globex, "Globex", PbxKind::Mango)
        .await
        .unwrap();

    // The same PBX call id in two tenants is two calls.
    for tenant in [&acme, &globex] {
        let mut book = CallBook::new(tenant.clone());
        let snapshots = events(
            &mut book,
            "1795259787.0",
            vec![
                (
                    0,
                    CallEventKind::Started {
                        direction: Direction::Inbound,
                        from: plan.party("+74951234567"),
                        to: plan.party("101"),
                    },
                ),
                (2000, CallEventKind::Answered { extension: None }),
                (
                    9000,
                    CallEventKind::Ended {
                        cause: Some(HangupCause {
                            code: 16,
                            text: "Normal Clearing".into(),
                        }),
                        status: None,
                    },
                ),
            ],
        );
        // Every intermediate state, the final one twice, then a late earlier state (a replay):
        // one row, and it stays ended.
        for call in snapshots
            .iter()
            .chain(snapshots.last())
            .chain(snapshots.first())
        {
            store.upsert_call(call).await.unwrap();
        }
    }
    assert_eq!(store.count_calls(&acme, None).await.unwrap(), 1);
    assert_eq!(store.count_calls(&acme, Some("answered")).await.unwrap(), 1);
    assert_eq!(
        store.count_calls(&globex, Some("answered")).await.unwrap(),
        1
    );
    assert_eq!(store.count_calls(&acme, Some("missed")).await.unwrap(), 0);

    let (name, talk): (String, f64) = sqlx::query_as(
        "SELECT t.name, extract(epoch FROM c.ended_at - c.answered_at)::float8
         FROM calls c JOIN tenants t ON t.id = c.tenant_id WHERE c.tenant_id = 'acme'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((name.as_str(), talk), ("Acme Ltd", 7.0));
}
