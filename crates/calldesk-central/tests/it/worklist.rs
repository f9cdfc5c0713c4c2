//! Tags and the missed-calls worklist: derived from the calls (missed since closed, until the
//! caller is reached), claims that exclude each other, tenants kept apart.

use calldesk_calls::{Extension, Timestamp};
use calldesk_central::{Actor, CentralError, CentralStore, NewOperator, Role};
use calldesk_wire::CallStateView::Ended;
use calldesk_wire::{CallbackOutcome, HubCall};
use sqlx::PgPool;

use crate::common::{card, demo_tenant, hub_call, now_ms, tid};

const CALLER: &str = "+74951234567";
const OTHER: &str = "+74957654321";

/// An ended call `minutes` from now (negative: in the past).
fn call(id: &str, direction: &str, from: &str, to: &str, status: &str, minutes: i64) -> HubCall {
    let at = Timestamp::from_unix_millis(now_ms() + minutes * 60_000).rfc3339();
    let mut c = hub_call("acme", id, &at, Ended);
    c.record.direction = direction.into();
    c.record.from = from.into();
    c.record.to = to.into();
    c.record.status = Some(status.into());
    c
}

fn missed(id: &str, from: &str, minutes: i64) -> HubCall {
    call(id, "inbound", from, "0367", "missed", minutes)
}

async fn operator(store: &CentralStore, tenant: &str, login: &str, role: Role) -> Actor {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(100);
    let extension = NEXT
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        .to_string();
    let op = store
        .add_operator(&NewOperator {
            tenant: tid(tenant),
            login: login.into(),
            name: None,
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            role,
            extension: Extension::new(&extension).unwrap(),
            sip: None,
        })
        .await
        .unwrap();
    Actor {
        operator: op.id,
        supervisor: role.supervises(),
    }
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn missed_calls_group_per_caller_until_reached(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let mut first = missed("m1", CALLER, -60);
    first.caller = Some(card(CALLER, Some((1, "Ivan")), Some((2, "Horns"))));
    store
        .upsert_calls(&[
            first,
            call("b1", "inbound", CALLER, "0367", "busy", -30),
            missed("m2", OTHER, -20),
            // answered and outbound calls, anonymous callers, and old calls are not missed work
            call("a0", "inbound", "+74950000000", "0367", "answered", -50),
            call("anon", "inbound", "Anonymous", "0367", "missed", -10),
            missed("old", "+74951111111", -60 * 24 * 8),
        ])
        .await
        .unwrap();

    let list = store.callbacks(&acme, 7, now_ms()).await.unwrap();
    let numbers: Vec<_> = list.iter().map(|c| c.number.as_str()).collect();
    assert_eq!(numbers, [OTHER, CALLER], "newest missed call first");
    let ivan = &list[1];
    assert_eq!(ivan.missed, 2);
    assert_eq!(ivan.last_call_id, "b1");
    // the card of the last missed call: b1 had none, so none
    assert_eq!(ivan.name, None);
    assert!(ivan.first_missed_at < ivan.last_missed_at);
    assert_eq!(ivan.claimed_by, None);
    // a longer window finds the old one too
    assert_eq!(store.callbacks(&acme, 9, now_ms()).await.unwrap().len(), 3);
    let e = store.callbacks(&acme, 40, now_ms()).await.unwrap_err();
    assert!(
        matches!(&e, CentralError::Invalid(m) if m.contains("1 to 31 days")),
        "{e:?}"
    );

    // The operator calls Ivan back and he answers: the item is settled by itself.
    store
        .upsert_calls(&[call("cb", "outbound", "101", CALLER, "answered", -5)])
        .await
        .unwrap();
    let list = store.callbacks(&acme, 7, now_ms()).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].number, OTHER);

    // Ivan calls again and nobody picks up: a new item with only the new call.
    let mut again = missed("m3", CALLER, -1);
    again.caller = Some(card(CALLER, Some((1, "Ivan")), Some((2, "Horns"))));
    store.upsert_calls(&[again]).await.unwrap();
    let list = store.callbacks(&acme, 7, now_ms()).await.unwrap();
    assert_eq!(list[0].number, CALLER);
    assert_eq!(list[0].missed, 1);
    assert_eq!(list[0].name.as_deref(), Some("Ivan"));
    assert_eq!(list[0].company.as_deref(), Some("Horns"));
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn claims_exclude_each_other_and_close_hides_until_next_miss(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let anna = operator(&store, "acme", "anna", Role::Operator).await;
    let boris = operator(&store, "acme", "boris", Role::Operator).await;
    let sue = operator(&store, "acme", "sue", Role::Supervisor).await;
    store
        .upsert_calls(&[missed("m1", CALLER, -10)])
        .await
        .unwrap();
    let now = now_ms();

    let item = store
        .claim_callback(&acme, CALLER, anna, true, now)
        .await
        .unwrap();
    assert_eq!(item.claimed_by.as_deref(), Some("anna"));
    assert!(item.claimed_at.is_some());
    // again: no-op
    let again = store
        .claim_callback(&acme, CALLER, anna, true, now)
        .await
        .unwrap();
    assert_eq!(again.claimed_at, item.claimed_at);
    let e = store
        .claim_callback(&acme, CALLER, boris, true, now)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::Conflict(m) if m == "+74951234567 is taken by anna; only they or a supervisor can take it over"),
        "{e:?}"
    );
    let e = store
        .close_callback(&acme, CALLER, CallbackOutcome::Reached, boris, now)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::Conflict(m) if m.contains("taken by anna")),
        "{e:?}"
    );
    let e = store
        .claim_callback(&acme, CALLER, boris, false, now)
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::Conflict(_)), "{e:?}");
    // the supervisor takes it over, then gives it back
    let item = store
        .claim_callback(&acme, CALLER, sue, true, now)
        .await
        .unwrap();
    assert_eq!(item.claimed_by.as_deref(), Some("sue"));
    let item = store
        .claim_callback(&acme, CALLER, sue, false, now)
        .await
        .unwrap();
    assert_eq!(item.claimed_by, None);

    // closed: off the list; a missed call recorded after that brings it back, unclaimed
    store
        .claim_callback(&acme, CALLER, boris, true, now)
        .await
        .unwrap();
    store
        .close_callback(&acme, CALLER, CallbackOutcome::Unreachable, boris, now)
        .await
        .unwrap();
    assert!(store.callbacks(&acme, 7, now).await.unwrap().is_empty());
    let e = store
        .claim_callback(&acme, CALLER, anna, true, now)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, CentralError::NotFound(m) if m.contains("no missed calls from +74951234567")),
        "{e:?}"
    );
    store
        .upsert_calls(&[missed("m2", CALLER, -9)])
        .await
        .unwrap();
    let list = store.callbacks(&acme, 7, now).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!((list[0].missed, list[0].claimed_by.as_deref()), (1, None));

    // a claim made before the caller was reached is void when they miss again later
    store
        .claim_callback(&acme, CALLER, anna, true, now)
        .await
        .unwrap();
    store
        .upsert_calls(&[call("in", "inbound", CALLER, "0367", "answered", -8)])
        .await
        .unwrap();
    assert!(store.callbacks(&acme, 7, now).await.unwrap().is_empty());
    store
        .upsert_calls(&[missed("m3", CALLER, -7)])
        .await
        .unwrap();
    let list = store.callbacks(&acme, 7, now).await.unwrap();
    assert_eq!(list[0].last_call_id, "m3");
    assert_eq!((list[0].missed, list[0].claimed_by.as_deref()), (1, None));
    // and does not block another operator
    let item = store
        .claim_callback(&acme, CALLER, boris, true, now)
        .await
        .unwrap();
    assert_eq!(item.claimed_by.as_deref(), Some("boris"));
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn concurrent_claims_give_the_item_to_one(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    let mut ops = Vec::new();
    for i in 0..8 {
        ops.push(operator(&store, "acme", &format!("op{i}"), Role::Operator).await);
    }
    store
        .upsert_calls(&[missed("m1", CALLER, -10)])
        .await
        .unwrap();
    let now = now_ms();
    let tasks: Vec<_> = ops
        .iter()
        .map(|op| {
            let (store, acme, op) = (store.clone(), acme.clone(), *op);
            tokio::spawn(async move { store.claim_callback(&acme, CALLER, op, true, now).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => winners += 1,
            Err(CentralError::Conflict(_)) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert_eq!(winners, 1);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn tags_replace_the_set_and_tenants_are_apart(pool: PgPool) {
    let store = CentralStore::from_pool(pool);
    let acme = tid("acme");
    demo_tenant(&store, "acme", "1").await;
    demo_tenant(&store, "globex", "2").await;
    store
        .upsert_calls(&[missed("m1", CALLER, -10)])
        .await
        .unwrap();
    let tags = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();

    let stored = store
        .set_tags(&acme, "m1", &tags(&["VIP", "ремонт", "vip"]))
        .await
        .unwrap();
    assert_eq!(stored, ["vip", "ремонт"]);
    let call = store.call(&acme, "m1").await.unwrap().unwrap();
    assert_eq!(call.tags, ["vip", "ремонт"]);
    store
        .set_tags(&acme, "m1", &tags(&["follow-up", "vip"]))
        .await
        .unwrap();
    assert_eq!(
        store.call(&acme, "m1").await.unwrap().unwrap().tags,
        ["follow-up", "vip"]
    );
    store.set_tags(&acme, "m1", &[]).await.unwrap();
    assert!(
        store
            .call(&acme, "m1")
            .await
            .unwrap()
            .unwrap()
            .tags
            .is_empty()
    );

    let e = store
        .set_tags(&acme, "m1", &tags(&["two words"]))
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::Invalid(_)), "{e:?}");
    // another tenant's call does not exist for globex, with or without tags
    for t in [tags(&["x"]), vec![]] {
        let e = store.set_tags(&tid("globex"), "m1", &t).await.unwrap_err();
        assert!(
            matches!(&e, CentralError::NotFound(m) if m == "no call m1 in tenant globex"),
            "{e:?}"
        );
    }
    assert!(
        store
            .callbacks(&tid("globex"), 7, now_ms())
            .await
            .unwrap()
            .is_empty()
    );
    let e = store
        .claim_callback(
            &tid("globex"),
            CALLER,
            Actor {
                operator: 1,
                supervisor: true,
            },
            true,
            now_ms(),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, CentralError::NotFound(_)), "{e:?}");
}
