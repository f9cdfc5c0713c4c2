//! The outbox against a real SQLite file: every write queues its change in the same
//! transaction (and only then), rows come back in order and are settled by the hub's answer,
//! pulled state lands with its cursor and never overwrites a change still waiting to be pushed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use calldesk_store::{LocalStore, PulledCall};
use calldesk_wire::{CallNote, ChangeKind, SyncOutcome, SyncResult};

async fn store(name: &str) -> LocalStore {
    let dir = std::env::temp_dir().join(format!("calldesk-outbox-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    LocalStore::open(&dir.join("o.sqlite3")).await.unwrap()
}

fn note(id: &str, text: &str, at: i64) -> CallNote {
    CallNote {
        id: id.into(),
        text: text.into(),
        author: None,
        created_at: at,
    }
}

fn answer(id: &str, outcome: SyncOutcome, error: Option<&str>) -> SyncResult {
    SyncResult {
        id: id.into(),
        outcome,
        error: error.map(Into::into),
    }
}

#[tokio::test]
async fn every_write_is_queued_with_it_and_settled_by_the_hubs_answer() {
    let plain = store("plain").await;
    plain
        .add_note("c1", &note("n0", "kept here", 1))
        .await
        .unwrap();
    assert_eq!(plain.outbox_counts().await.unwrap().pending, 0);
    assert!(plain.pending_changes(0, 10).await.unwrap().is_empty());
    plain.close().await;

    let s = store("queued")
        .await
        .with_sync_target(Some("https://hub/#acme".into()));
    assert_eq!(s.sync_target(), Some("https://hub/#acme"));
    s.add_note(
        "c1",
        &note("7c9e6679-7425-40de-944b-e07fc1f90ae7", "first", 10),
    )
    .await
    .unwrap();
    // The same note again (a double click) is kept once and queued once.
    s.add_note(
        "c1",
        &note("7c9e6679-7425-40de-944b-e07fc1f90ae7", "first", 10),
    )
    .await
    .unwrap();
    s.set_disposition("c1", "sale", 20).await.unwrap();
    s.set_tags("c1", &["VIP".into()]).await.unwrap();
    // A refused write queues nothing.
    assert!(s.set_tags("c1", &["two words".into()]).await.is_err());
    s.set_disposition("c2", "callback", 30).await.unwrap();

    let all = s.pending_changes(0, 10).await.unwrap();
    let kinds: Vec<(&str, &str)> = all
        .iter()
        .map(|(_, c)| (c.call_id.as_str(), c.change.name()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("c1", "note"),
            ("c1", "disposition"),
            ("c1", "tags"),
            ("c2", "disposition")
        ]
    );
    assert_eq!(
        all[0].1.id, "7c9e6679-7425-40de-944b-e07fc1f90ae7",
        "a note's id is its change's"
    );
    assert_eq!(all[0].1.at, 10);
    assert_eq!(
        all[2].1.change,
        ChangeKind::Tags {
            tags: vec!["vip".into()]
        }
    );
    // Paging by position.
    let first = s.pending_changes(0, 2).await.unwrap();
    let rest = s.pending_changes(first[1].0, 10).await.unwrap();
    assert_eq!(first.len() + rest.len(), 4);
    assert_eq!(rest[0].1.id, all[2].1.id);

    s.settle(&[
        answer(&all[0].1.id, SyncOutcome::Applied, None),
        answer(&all[1].1.id, SyncOutcome::Duplicate, None),
        answer(
            &all[2].1.id,
            SyncOutcome::Retry,
            Some("the hub does not have call c1 yet"),
        ),
        answer(
            &all[3].1.id,
            SyncOutcome::Refused,
            Some("disposition `callback` is not in the list"),
        ),
        answer("unknown", SyncOutcome::Applied, None),
    ])
    .await
    .unwrap();
    let counts = s.outbox_counts().await.unwrap();
    assert_eq!((counts.pending, counts.refused), (1, 1));
    let left = s.pending_changes(0, 10).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1.id, all[2].1.id);
    let refused = s.refused_changes(10).await.unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].call_id, "c2");
    assert!(refused[0].error.contains("not in the list"));

    // Another hub's store sees none of this hub's rows.
    let other = s
        .clone()
        .with_sync_target(Some("https://other/#acme".into()));
    assert_eq!(other.outbox_counts().await.unwrap().pending, 0);
    s.close().await;
}

#[tokio::test]
async fn pulls_land_with_their_cursor_and_never_undo_a_waiting_change() {
    let s = store("pulled")
        .await
        .with_sync_target(Some("https://hub/#acme".into()));
    assert_eq!(s.pull_cursor().await.unwrap(), "");
    let mut call = common::call(1);
    call.id = "c1".into();
    // This desk changes the disposition; the hub still has another desk's older one.
    s.set_disposition("c1", "sale", 50).await.unwrap();
    s.add_note("c1", &note("n-mine", "mine", 40)).await.unwrap();
    let from_hub = PulledCall {
        view: call.clone(),
        notes: vec![
            CallNote {
                author: Some("anna".into()),
                ..note("n-mine", "mine", 40)
            },
            CallNote {
                author: Some("boris".into()),
                ..note("n-theirs", "theirs", 45)
            },
        ],
        disposition: Some(("callback".into(), 30)),
        tags: vec!["vip".into()],
    };
    s.apply_pulled(std::slice::from_ref(&from_hub), "740.3")
        .await
        .unwrap();
    assert_eq!(s.pull_cursor().await.unwrap(), "740.3");
    let after = s.after_call("c1").await.unwrap();
    assert_eq!(
        after.disposition.as_deref(),
        Some("sale"),
        "the waiting change stays"
    );
    assert_eq!(after.tags, ["vip"]);
    let authors: Vec<Option<&str>> = after.notes.iter().map(|n| n.author.as_deref()).collect();
    assert_eq!(authors, [Some("anna"), Some("boris")]);
    assert_eq!(s.recent_calls(10).await.unwrap()[0].id, "c1");
    // Once pushed, the hub's state is this desk's own, and the next pull applies it.
    let waiting = s.pending_changes(0, 10).await.unwrap();
    let answers: Vec<SyncResult> = waiting
        .iter()
        .map(|(_, c)| answer(&c.id, SyncOutcome::Applied, None))
        .collect();
    s.settle(&answers).await.unwrap();
    let later = PulledCall {
        disposition: Some(("no_answer".into(), 60)),
        ..from_hub
    };
    s.apply_pulled(std::slice::from_ref(&later), "741.1")
        .await
        .unwrap();
    assert_eq!(
        s.after_call("c1").await.unwrap().disposition.as_deref(),
        Some("no_answer")
    );
    // The same page twice changes nothing.
    s.apply_pulled(&[later], "741.1").await.unwrap();
    assert_eq!(s.after_call("c1").await.unwrap().notes.len(), 2);
    assert_eq!(s.recent_calls(10).await.unwrap().len(), 1);
    // The disposition list is remembered per hub.
    assert_eq!(s.remembered_dispositions().await.unwrap(), None);
    s.remember_dispositions(&["sale".into()]).await.unwrap();
    assert_eq!(
        s.remembered_dispositions().await.unwrap(),
        Some(vec!["sale".to_owned()])
    );
    s.close().await;
}

#[tokio::test]
async fn the_contacts_cache_names_callers_and_is_replaced_whole() {
    use calldesk_store::CachedContact;
    let s = store("contacts").await;
    let contact = |id: i64, name: &str, phones: &[&str]| CachedContact {
        id,
        name: name.into(),
        company: Some("Рога и копыта".into()),
        phones: phones.iter().map(|p| (*p).to_owned()).collect(),
    };
    assert_eq!(
        s.replace_contacts(&[
            contact(7, "Остап Бендер", &["+74951234567", "+79161234567"]),
            contact(3, "Shura Balaganov", &["+74951234567"]),
        ])
        .await
        .unwrap(),
        3
    );
    // Two contacts share a phone: the lower id names it.
    assert_eq!(
        s.contact_for("+74951234567").await.unwrap(),
        Some((
            "Shura Balaganov".to_owned(),
            Some("Рога и копыта".to_owned())
        ))
    );
    assert_eq!(
        s.contact_for("+79161234567").await.unwrap().unwrap().0,
        "Остап Бендер"
    );
    assert_eq!(s.contact_for("+70000000000").await.unwrap(), None);
    // The next refresh no longer has Shura: he is gone from the cache.
    s.replace_contacts(&[contact(7, "Остап Бендер", &["+74951234567"])])
        .await
        .unwrap();
    assert_eq!(
        s.contact_for("+74951234567").await.unwrap().unwrap().0,
        "Остап Бендер"
    );
    assert_eq!(s.contact_for("+79161234567").await.unwrap(), None);
    s.close().await;
}
