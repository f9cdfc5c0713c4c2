//! Recordings on their way into the store: added once, leased by one replica at a time, a lost
//! lease taken over, failures kept with their reason and retried, stored ones final.

use std::time::Duration;

use calldesk_central::{CentralError, CentralStore, FAILED_AFTER, NewRecording, RecordingState};
use sqlx::PgPool;

use crate::common::{demo_tenant, tid};

fn rec(tenant: &str, call: &str, name: &str) -> NewRecording {
    NewRecording {
        tenant: tid(tenant),
        call: call.into(),
        name: name.into(),
        store_key: format!("{tenant}/2025/11/21/{call}/{name}"),
    }
}

const LONG: Duration = Duration::from_secs(600);

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_recording_is_leased_once_retried_with_its_reason_then_stored(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    demo_tenant(&store, "acme", "0367").await;
    let r = rec("acme", "1.1", "in-101.wav");

    assert_eq!(
        store.add_recordings(&[r.clone(), r.clone()]).await.unwrap(),
        1
    );
    assert_eq!(
        store
            .add_recordings(std::slice::from_ref(&r))
            .await
            .unwrap(),
        0
    );

    let jobs = store
        .lease_recordings(&[tid("acme")], 10, LONG)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    let first = jobs[0].clone();
    assert_eq!(
        (first.attempts, first.store_key.as_str()),
        (1, "acme/2025/11/21/1.1/in-101.wav")
    );
    // Leased: no other replica gets it.
    assert!(
        store
            .lease_recordings(&[tid("acme")], 10, LONG)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.renew_recording_lease(&first, LONG).await.unwrap());

    // The try fails; due again at once (retry_in 0).
    let state = store
        .recording_failed(
            &first,
            "S3 unreachable:\r\n connection refused",
            Duration::ZERO,
        )
        .await
        .unwrap();
    assert_eq!(state, Some(RecordingState::Pending));
    let rows = store.recordings_of(&tid("acme"), "1.1").await.unwrap();
    assert_eq!(rows[0].state, RecordingState::Pending);
    assert_eq!(
        rows[0].last_error.as_deref(),
        Some("S3 unreachable: connection refused")
    );

    let second = store
        .lease_recordings(&[tid("acme")], 10, LONG)
        .await
        .unwrap()
        .remove(0);
    assert_eq!(second.attempts, 2);
    assert_ne!(second.lease_token, first.lease_token);
    // The first holder's late report changes nothing.
    assert_eq!(
        store
            .recording_failed(&first, "late", Duration::ZERO)
            .await
            .unwrap(),
        None
    );
    assert!(!store.renew_recording_lease(&first, LONG).await.unwrap());

    store.recording_stored(&second, 48_000).await.unwrap();
    // The call read back carries its recordings' states.
    store
        .upsert_calls(&[crate::common::hub_call(
            "acme",
            "1.1",
            "2025-11-21T04:40:00Z",
            calldesk_wire::CallStateView::Ended,
        )])
        .await
        .unwrap();
    let call = store.call(&tid("acme"), "1.1").await.unwrap().unwrap();
    assert_eq!(
        call.recording_states,
        [calldesk_wire::RecordingStatus {
            name: "in-101.wav".into(),
            state: "stored".into(),
            error: None,
        }]
    );
    let rows = store.recordings_of(&tid("acme"), "1.1").await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].state, RecordingState::Stored);
    assert_eq!(rows[0].size_bytes, Some(48_000));
    assert_eq!(rows[0].last_error, None);

    // Stored is final: adding it again neither reopens nor re-leases it.
    assert_eq!(store.add_recordings(&[r]).await.unwrap(), 0);
    assert!(
        store
            .lease_recordings(&[tid("acme")], 10, Duration::ZERO)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .recording_failed(&second, "late", Duration::ZERO)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.recordings_of(&tid("acme"), "1.1").await.unwrap()[0].state,
        RecordingState::Stored
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_lease_that_runs_out_is_taken_over(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    demo_tenant(&store, "acme", "0367").await;
    store
        .add_recordings(&[rec("acme", "1.1", "a.wav")])
        .await
        .unwrap();
    let dead = store
        .lease_recordings(&[tid("acme")], 10, Duration::from_millis(50))
        .await
        .unwrap()
        .remove(0);
    tokio::time::sleep(Duration::from_millis(120)).await;
    let taken = store
        .lease_recordings(&[tid("acme")], 10, LONG)
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempts, 2);
    assert!(!store.renew_recording_lease(&dead, LONG).await.unwrap());
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn repeated_failures_show_as_failed_and_are_still_retried(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    demo_tenant(&store, "acme", "0367").await;
    store
        .add_recordings(&[rec("acme", "1.1", "a.wav")])
        .await
        .unwrap();
    let mut last = None;
    for _ in 0..FAILED_AFTER {
        let job = store
            .lease_recordings(&[tid("acme")], 1, LONG)
            .await
            .unwrap()
            .remove(0);
        last = store
            .recording_failed(&job, "file not found", Duration::ZERO)
            .await
            .unwrap();
    }
    assert_eq!(last, Some(RecordingState::Failed));
    let again = store
        .lease_recordings(&[tid("acme")], 1, LONG)
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "a failed recording is still retried");
    assert_eq!(again[0].attempts, FAILED_AFTER + 1);

    // A later try that is not due yet is not leased.
    store
        .recording_failed(&again[0], "still missing", Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(
        store
            .lease_recordings(&[tid("acme")], 1, LONG)
            .await
            .unwrap()
            .is_empty()
    );
    // Unless the PBX says the recording is there now (Mango's record/added): due at once.
    store
        .add_recordings(&[rec("acme", "1.1", "a.wav")])
        .await
        .unwrap();
    assert_eq!(
        store
            .lease_recordings(&[tid("acme")], 1, LONG)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn tenants_see_only_their_recordings_and_an_unknown_tenant_is_refused(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    demo_tenant(&store, "acme", "0367").await;
    demo_tenant(&store, "june", "0368").await;
    store
        .add_recordings(&[rec("acme", "1.1", "a.wav"), rec("june", "1.1", "b.wav")])
        .await
        .unwrap();
    let acme = store.recordings_of(&tid("acme"), "1.1").await.unwrap();
    assert_eq!(acme.len(), 1);
    assert_eq!(acme[0].name, "a.wav");
    // A replica leases only the tenants it holds.
    let june = store
        .lease_recordings(&[tid("june")], 10, LONG)
        .await
        .unwrap();
    assert_eq!(june.len(), 1);
    assert_eq!(
        (june[0].tenant.as_str(), june[0].name.as_str()),
        ("june", "b.wav")
    );
    assert!(
        store
            .lease_recordings(&[], 10, LONG)
            .await
            .unwrap()
            .is_empty()
    );
    let e = store
        .add_recordings(&[rec("nobody", "1.1", "a.wav")])
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::NotFound(_)), "{e:?}");
}
