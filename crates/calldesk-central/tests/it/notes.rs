//! Notes (idempotent by UUID) and dispositions, and that tenants cannot touch each other's calls.

use calldesk_calls::Extension;
use calldesk_central::{CallFilter, CentralError, CentralStore, NewOperator, Role};
use calldesk_wire::CallStateView::{Ended, Talking};
use sqlx::PgPool;

use crate::common::{demo_tenant, hub_call, tid};

const NOTE_1: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";
const NOTE_2: &str = "7c9e6679-7425-40de-944b-e07fc1f90ae7";

async fn operator(store: &CentralStore, tenant: &str, login: &str) -> i64 {
    store
        .add_operator(&NewOperator {
            tenant: tid(tenant),
            login: login.into(),
            name: None,
            // Never verified here: any non-empty hash will do.
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            role: Role::Operator,
            extension: Extension::new("101").unwrap(),
            sip: None,
        })
        .await
        .unwrap()
        .id
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn notes_are_idempotent_and_dispositions_replace(pool: PgPool) {
    let store = CentralStore::from_pool(pool.clone());
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let anna = operator(&store, "acme", "anna").await;
    store
        .upsert_calls(&[hub_call("acme", "c1", "2026-01-01T10:00:00Z", Talking)])
        .await
        .unwrap();

    let note = store
        .add_note(
            &acme,
            "c1",
            NOTE_1,
            Some(anna),
            "Wants a callback\nafter 5 pm",
        )
        .await
        .unwrap();
    assert_eq!(note.id, NOTE_1);
    assert_eq!(note.call_id, "c1");
    assert_eq!(note.author.as_deref(), Some("anna"));
    assert_eq!(note.text, "Wants a callback\nafter 5 pm");
    assert!(
        note.created_at.ends_with('Z') && note.created_at.len() == 24,
        "{}",
        note.created_at
    );
    // Re-sent (a retry, even with edited text or in upper case): the stored note, once.
    let again = store
        .add_note(&acme, "c1", &NOTE_1.to_uppercase(), Some(anna), "edited")
        .await
        .unwrap();
    assert_eq!(again, note);
    let second = store
        .add_note(&acme, "c1", NOTE_2, None, "no author")
        .await
        .unwrap();
    assert_eq!(second.author, None);
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM call_notes")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 2);

    // The same note id on another call is a clash, not a silent success.
    store
        .upsert_calls(&[hub_call("acme", "c2", "2026-01-01T11:00:00Z", Ended)])
        .await
        .unwrap();
    let e = store
        .add_note(&acme, "c2", NOTE_1, None, "x")
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::Duplicate { .. }), "{e:?}");

    for (id, text) in [
        ("not-a-uuid", "x"),
        ("0f8fad5b-d9cb-469f-a165-70867728950", "x"),
        (NOTE_2, "   "),
        (NOTE_2, &"я".repeat(4001)),
    ] {
        let e = store
            .add_note(&acme, "c1", id, None, text)
            .await
            .unwrap_err();
        assert!(matches!(e, CentralError::Invalid(_)), "{id}: {e:?}");
    }
    assert!(
        store
            .add_note(
                &acme,
                "c1",
                "11111111-2222-3333-4444-555555555555",
                None,
                &"я".repeat(4000)
            )
            .await
            .is_ok()
    );
    let e = store
        .add_note(
            &acme,
            "nope",
            "21111111-2222-3333-4444-555555555555",
            None,
            "x",
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::NotFound(m) if m == "no call nope in tenant acme"),
        "{e:?}"
    );

    // Dispositions: set, same again (no change), replaced.
    let d = store
        .set_disposition(&acme, "c1", "callback", Some(anna))
        .await
        .unwrap();
    assert_eq!(
        (d.code.as_str(), d.set_by.as_deref()),
        ("callback", Some("anna"))
    );
    let same = store
        .set_disposition(&acme, "c1", "callback", Some(anna))
        .await
        .unwrap();
    assert_eq!(same, d);
    let sale = store
        .set_disposition(&acme, "c1", "sale", None)
        .await
        .unwrap();
    assert_eq!((sale.code.as_str(), sale.set_by), ("sale", None));
    for bad in ["", "Sale", "a b", &"x".repeat(65)] {
        let e = store
            .set_disposition(&acme, "c1", bad, None)
            .await
            .unwrap_err();
        assert!(matches!(e, CentralError::Invalid(_)), "{bad}: {e:?}");
    }
    let e = store
        .set_disposition(&acme, "nope", "sale", None)
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::NotFound(_)), "{e:?}");

    // The tenant's list: the built-in one until set; a code outside it is refused, and the
    // call keeps the code it has when the list changes.
    assert_eq!(
        store.dispositions(&acme).await.unwrap(),
        calldesk_wire::DEFAULT_DISPOSITIONS
    );
    let list = |codes: &[&str]| codes.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        store
            .set_dispositions(&acme, &list(&[" sold ", "lost", "callback"]))
            .await
            .unwrap(),
        ["sold", "lost", "callback"]
    );
    assert_eq!(
        store.dispositions(&acme).await.unwrap(),
        ["sold", "lost", "callback"]
    );
    let e = store
        .set_disposition(&acme, "c1", "sale", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::Invalid(m) if m.contains("not in tenant acme's list (sold, lost, callback)")),
        "{e:?}"
    );
    assert_eq!(
        store
            .call(&acme, "c1")
            .await
            .unwrap()
            .unwrap()
            .disposition
            .map(|d| d.code),
        Some("sale".to_owned())
    );
    for bad in [list(&[]), list(&["a", "a"]), list(&["Bad"])] {
        let e = store.set_dispositions(&acme, &bad).await.unwrap_err();
        assert!(matches!(e, CentralError::Invalid(_)), "{bad:?}: {e:?}");
    }
    let e = store
        .set_dispositions(&tid("nobody"), &list(&["x"]))
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::NotFound(_)), "{e:?}");
    store
        .set_dispositions(&acme, &calldesk_wire::default_dispositions())
        .await
        .unwrap();

    // Reading the call (and listing) brings notes, oldest first, and the disposition.
    let call = store.call(&acme, "c1").await.unwrap().unwrap();
    assert_eq!(call.notes.len(), 3);
    assert_eq!(call.notes[0], note);
    assert_eq!(call.notes[1], second);
    assert_eq!(
        call.disposition.as_ref().map(|d| d.code.as_str()),
        Some("sale")
    );
    let page = store
        .list_calls(&acme, &CallFilter::default())
        .await
        .unwrap();
    let listed = page.items.iter().find(|c| c.record.id == "c1").unwrap();
    assert_eq!(listed, &call);
    let c2 = page.items.iter().find(|c| c.record.id == "c2").unwrap();
    assert!(c2.notes.is_empty() && c2.disposition.is_none());

    // A later state of the call keeps its notes and disposition (they live apart).
    store
        .upsert_calls(&[hub_call("acme", "c1", "2026-01-01T10:00:00Z", Ended)])
        .await
        .unwrap();
    assert_eq!(
        store.call(&acme, "c1").await.unwrap().unwrap().notes.len(),
        3
    );
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn another_tenant_cannot_touch_a_call(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let (acme, globex) = (tid("acme"), tid("globex"));
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "globex", "2").await;
    let anna = operator(&store, "acme", "anna").await;
    let mallory = operator(&store, "globex", "mallory").await;
    store
        .upsert_calls(&[hub_call(
            "acme",
            "secret-call",
            "2026-01-01T10:00:00Z",
            Ended,
        )])
        .await
        .unwrap();

    let e = store
        .add_note(&globex, "secret-call", NOTE_1, Some(mallory), "mine")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::NotFound(m) if m == "no call secret-call in tenant globex"),
        "{e:?}"
    );
    let e = store
        .set_disposition(&globex, "secret-call", "sale", None)
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::NotFound(_)), "{e:?}");
    // Nor can acme's note name globex's operator as its author.
    let e = store
        .add_note(&acme, "secret-call", NOTE_1, Some(mallory), "x")
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::NotFound(m) if *m == format!("no operator {mallory} in tenant acme")),
        "{e:?}"
    );
    let e = store
        .set_disposition(&acme, "secret-call", "sale", Some(mallory))
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::NotFound(_)), "{e:?}");

    assert_eq!(store.call(&globex, "secret-call").await.unwrap(), None);
    assert!(
        store
            .list_calls(&globex, &CallFilter::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        store
            .call_events(&globex, "secret-call")
            .await
            .unwrap()
            .is_empty()
    );

    // The same note id in two tenants is two notes.
    store
        .add_note(&acme, "secret-call", NOTE_1, Some(anna), "ours")
        .await
        .unwrap();
    store
        .upsert_calls(&[hub_call(
            "globex",
            "secret-call",
            "2026-01-01T10:00:00Z",
            Ended,
        )])
        .await
        .unwrap();
    let theirs = store
        .add_note(&globex, "secret-call", NOTE_1, Some(mallory), "theirs")
        .await
        .unwrap();
    assert_eq!(theirs.text, "theirs");
    let ours = store.call(&acme, "secret-call").await.unwrap().unwrap();
    assert_eq!(ours.notes.len(), 1);
    assert_eq!(ours.notes[0].text, "ours");
}
