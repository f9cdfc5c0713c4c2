//! Migration 0002 (and the later ones) on a database that 0001 created and the old `upsert_call` filled: every
//! existing row reads back through the new API.

use calldesk_central::{CentralStore, MIGRATOR, PbxConfig, PbxKind};
use calldesk_wire::CallStateView;
use sqlx::PgPool;

use crate::common::{demo_tenant, tid};

#[sqlx::test(migrations = false)]
async fn rows_from_before_0002_read_back_as_tenants_and_calls(pool: PgPool) {
    let migrations: Vec<_> = MIGRATOR.iter().collect();
    assert_eq!(migrations[0].version, 1);
    assert_eq!(migrations[1].version, 2);
    sqlx::raw_sql(&migrations[0].sql)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::raw_sql(
        "INSERT INTO tenants (id, name, pbx_kind) VALUES
            ('acme', 'Acme', 'asterisk'), ('globex', 'Globex', 'mango'), ('demo', 'Demo', 'demo');
         INSERT INTO calls (tenant_id, pbx_call_id, direction, from_raw, from_e164, to_raw,
            to_e164, status, operator, started_at, answered_at, ended_at, hangup_cause) VALUES
            ('acme', '1.0', 'inbound', '84951234567', '+74951234567', '0367', NULL, 'answered',
             '101', '2026-01-01T10:00:00Z', '2026-01-01T10:00:02.5Z', '2026-01-01T10:00:09Z', 16),
            ('acme', '2.0', 'internal', '101', NULL, '102', NULL, NULL, NULL,
             '2026-01-01T11:00:00Z', NULL, NULL, NULL);",
    )
    .execute(&pool)
    .await
    .unwrap();
    // 0002 and every later migration.
    for later in &migrations[1..] {
        sqlx::raw_sql(&later.sql).execute(&pool).await.unwrap();
    }

    let store = CentralStore::from_pool(pool);
    let tenants = store.tenants().await.unwrap();
    let pbx: Vec<(&str, &PbxConfig, &str)> = tenants
        .iter()
        .map(|t| (t.id.as_str(), &t.pbx, t.number.as_str()))
        .collect();
    assert_eq!(
        pbx,
        [
            ("acme", &PbxConfig::default_for(PbxKind::Asterisk), ""),
            ("demo", &PbxConfig::Demo, ""),
            ("globex", &PbxConfig::default_for(PbxKind::Mango), ""),
        ]
    );
    assert!(tenants.iter().all(|t| t.active && t.region == "RU"));
    // Tenants without a number do not clash with each other or with a new one.
    demo_tenant(&store, "new", "0367").await;

    let ended = store.call(&tid("acme"), "1.0").await.unwrap().unwrap();
    assert_eq!(ended.state, CallStateView::Ended);
    assert_eq!(ended.record.from, "+74951234567");
    assert_eq!(ended.record.status.as_deref(), Some("answered"));
    assert_eq!(ended.record.answered_by, ["101"]);
    assert_eq!(ended.record.talk_secs, Some(6));
    assert_eq!(ended.record.ring_secs, Some(2));
    assert_eq!(
        ended.record.started_at.as_deref(),
        Some("2026-01-01T10:00:00.000Z")
    );
    assert_eq!(
        ended.record.answered_at.as_deref(),
        Some("2026-01-01T10:00:02.500Z")
    );
    assert_eq!(ended.record.hangup_cause.as_ref().map(|h| h.code), Some(16));
    assert_eq!(ended.operator.as_deref(), Some("101"));
    let live = store.live_calls(&tid("acme")).await.unwrap();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].record.id, "2.0");
    assert_eq!(live[0].state, CallStateView::Ringing);
    assert_eq!(live[0].record.from, "101");
}
