//! The Hub profile end to end: a real hub (`calldesk-hub`) on a real PostgreSQL
//! (`#[sqlx::test]`), holding the AMI simulator, served on a loopback port; the engine logs in,
//! follows `/ws` and sends controls over REST, which reach the simulator as AMI actions.
//! The hub is restarted while a call is up: the engine reconnects by itself, keeps the call,
//! and settles a call that ended while the hub was down from the hub's REST API.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::Duration;

use calldesk_calls::{CallId, Control, Destination, Extension, TenantId, TransferKind};
use calldesk_central::{
    AmiDialplan, CentralStore, CompanyInput, ContactInput, NewOperator, NewTenant, PbxConfig, Role,
};
use calldesk_engine::{
    Engine, EngineConfig, EngineEvent, EngineHandle, HubProfile, ProfileConfig, Secret,
};
use calldesk_hub::SecretEnv;

#[path = "support/hub.rs"]
mod hub_support;
use calldesk_sim::ami::{AmiSimConfig, AmiSimHandle, AmiSimulator, ScenarioCall, ScenarioKind};
use calldesk_wire::{CallStateView, CallView, ConnectionState};
use hub_support::serve_hub;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};

const WAIT: Duration = Duration::from_secs(20);
const PASSWORD: &str = "s3cret-password";
const CALLER: &str = "+74951234567";

struct Setup {
    store: CentralStore,
    secrets: SecretEnv,
    sim: AmiSimHandle,
    _stop_sim: watch::Sender<bool>,
    hub_addr: SocketAddr,
    stop_hub: watch::Sender<bool>,
    dir: std::path::PathBuf,
}

async fn setup(pool: PgPool, name: &str) -> Setup {
    let sim_config = AmiSimConfig {
        auth_failure_delay: Duration::from_millis(10),
        ..AmiSimConfig::default()
    };
    let (user, secret) = (sim_config.username.clone(), sim_config.secret.clone());
    let sim = AmiSimulator::bind(([127, 0, 0, 1], 0).into(), sim_config)
        .await
        .unwrap();
    let (sim_addr, sim_handle) = (sim.local_addr(), sim.handle());
    let (stop_sim, mut stop_sim_rx) = watch::channel(false);
    tokio::spawn(sim.run(async move {
        let _ = stop_sim_rx.wait_for(|s| *s).await;
    }));

    let store = CentralStore::from_pool(pool);
    let tenant = TenantId::new("acme").unwrap();
    store
        .add_tenant(&NewTenant {
            id: tenant.clone(),
            name: "Acme".into(),
            number: "0367".into(),
            region: "RU".into(),
            pbx: PbxConfig::Asterisk {
                host: "127.0.0.1".into(),
                port: sim_addr.port(),
                user,
                secret_env: "ACME_AMI_SECRET".into(),
                tls: false,
                // The simulator is the lab's Asterisk: chan_sip phones, `00` for abroad.
                dialplan: AmiDialplan {
                    tech: "sip".into(),
                    context: "from-internal".into(),
                    international_prefix: Some("00".into()),
                    hold_context: Some("calldesk-hold".into()),
                    recordings_dir: None,
                },
            },
        })
        .await
        .unwrap();
    let hash = calldesk_central::password::hash_password(PASSWORD).unwrap();
    for (login, role, ext) in [
        ("ivan", Role::Operator, "101"),
        ("petr", Role::Operator, "102"),
        ("sam", Role::Supervisor, "201"),
    ] {
        store
            .add_operator(&NewOperator {
                tenant: tenant.clone(),
                login: login.into(),
                name: Some(format!("{login} (name)")),
                password_hash: hash.clone(),
                role,
                extension: Extension::new(ext).unwrap(),
                sip: None,
            })
            .await
            .unwrap();
    }
    let company = store
        .create_company(
            &tenant,
            &CompanyInput {
                name: "Horns and Hooves".into(),
                ..CompanyInput::default()
            },
        )
        .await
        .unwrap();
    store
        .create_contact(
            &tenant,
            &ContactInput {
                name: "Ostap Bender".into(),
                company_id: Some(company.id),
                phones: vec![CALLER.into()],
                ..ContactInput::default()
            },
        )
        .await
        .unwrap();
    let secrets = SecretEnv::default().with("ACME_AMI_SECRET", &secret);
    let (hub, hub_addr, stop_hub) =
        serve_hub(&store, secrets.clone(), ([127, 0, 0, 1], 0).into()).await;
    assert!(hub.wait_until_held(&tenant, WAIT).await);
    let dir =
        std::env::temp_dir().join(format!("calldesk-engine-hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    Setup {
        store,
        secrets,
        sim: sim_handle,
        _stop_sim: stop_sim,
        hub_addr,
        stop_hub,
        dir,
    }
}

impl Setup {
    async fn engine(&self, login: &str, password: &str) -> EngineHandle {
        Engine::start(EngineConfig {
            profile: ProfileConfig::Hub(HubProfile {
                url: format!("http://{}", self.hub_addr),
                tenant: "acme".into(),
                login: login.into(),
                password: Secret::new(password),
                extra_root_certs_pem: None,
            }),
            data_dir: self.dir.join(login),
            region: "RU".into(),
            dialplan: calldesk_engine::DialplanConfig::default(),
            seat: calldesk_engine::Seat::default(),
        })
        .await
        .unwrap()
    }

    async fn inbound(&self, ext: &str, talk: Duration) -> String {
        self.sim
            .start_call(ScenarioCall {
                kind: ScenarioKind::InboundAnswered,
                caller: CALLER.into(),
                did: "74951110000".into(),
                extension: ext.into(),
                ring: Duration::from_millis(300),
                talk,
            })
            .await
            .unwrap()
    }
}

/// The after-call work of `id` on `desk` once `done` accepts it (the sync brings it).
async fn synced(
    desk: &EngineHandle,
    id: &str,
    done: impl Fn(&calldesk_wire::AfterCall) -> bool,
) -> calldesk_wire::AfterCall {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = desk.after_call(id).await.unwrap();
        if done(&now) || tokio::time::Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for a connection state.
async fn state(
    engine: &EngineHandle,
    events: &mut broadcast::Receiver<EngineEvent>,
    want: ConnectionState,
) {
    if engine.connection_status().state == want {
        return;
    }
    tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(EngineEvent::ConnectionChanged(s)) = events.recv().await
                && s.state == want
            {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("never {want:?}; now {:?}", engine.connection_status()));
}

/// Waits for an update of call `id` that `check` accepts.
async fn call_update(
    events: &mut broadcast::Receiver<EngineEvent>,
    id: &str,
    what: &str,
    check: impl Fn(&CallView) -> bool,
) -> CallView {
    let mut seen = Vec::new();
    let found = tokio::time::timeout(WAIT, async {
        loop {
            if let Ok(EngineEvent::CallUpdated(call)) = events.recv().await
                && call.id == id
            {
                if check(&call) {
                    return *call;
                }
                seen.push(*call);
            }
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("call {id} never {what}; saw {seen:#?}"))
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn the_hub_profile_pops_the_card_controls_reach_the_pbx_and_a_hub_restart_loses_nothing(
    pool: PgPool,
) {
    let s = setup(pool, "restart").await;
    let ivan = s.engine("ivan", PASSWORD).await;
    let mut events = ivan.subscribe();
    state(&ivan, &mut events, ConnectionState::Connected).await;
    let me = ivan.identity();
    assert_eq!(
        (me.login.as_deref(), me.extension.as_deref(), me.supervisor),
        (Some("ivan"), Some("101"), false)
    );
    assert_eq!(me.tenant.as_deref(), Some("acme"));
    let caps = ivan.capabilities();
    assert!(
        caps.originate && caps.hangup && caps.blind_transfer,
        "{caps:?}"
    );

    // A call for 101 pops with the caller card.
    let id = s.inbound("101", Duration::from_secs(3600)).await;
    let ringing = call_update(&mut events, &id, "rang", |c| {
        c.state == CallStateView::Ringing
    })
    .await;
    assert_eq!(ringing.from.e164.as_deref(), Some(CALLER));
    assert_eq!(ringing.from.name.as_deref(), Some("Ostap Bender"));
    assert_eq!(ringing.company.as_deref(), Some("Horns and Hooves"));
    assert!(ringing.rang.iter().any(|e| e == "101"), "{ringing:?}");
    call_update(&mut events, &id, "was answered", |c| {
        c.state == CallStateView::Talking
    })
    .await;

    // A second call ends while the hub is down; the first goes on through the restart.
    let short = s.inbound("102", Duration::from_secs(3600)).await;
    let sam = s.engine("sam", PASSWORD).await;
    let mut sam_events = sam.subscribe();
    state(&sam, &mut sam_events, ConnectionState::Connected).await;
    assert!(sam.identity().supervisor);
    tokio::time::timeout(WAIT, async {
        loop {
            let live = sam.calls_snapshot().await.unwrap();
            let talking = |id: &str| {
                live.iter()
                    .any(|c| c.id == id && c.state == CallStateView::Talking)
            };
            if talking(&id) && talking(&short) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the supervisor never saw both calls talking");

    s.stop_hub.send(true).unwrap();
    state(&sam, &mut sam_events, ConnectionState::Reconnecting).await;
    let detail = sam.connection_status().detail.unwrap_or_default();
    assert!(detail.contains("retrying in"), "{detail}");
    // The UI is never blocked: the snapshot still answers, with the call live.
    let during = sam.calls_snapshot().await.unwrap();
    assert!(
        during
            .iter()
            .any(|c| c.id == id && c.state == CallStateView::Talking)
    );
    s.sim.hangup_call(&short).await.unwrap();
    // Let the engine's backoff grow a little while the hub is away.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (hub, _, stop_again) = serve_hub(&s.store, s.secrets.clone(), s.hub_addr).await;
    assert!(
        hub.wait_until_held(&TenantId::new("acme").unwrap(), WAIT)
            .await
    );
    state(&sam, &mut sam_events, ConnectionState::Connected).await;
    // The call that ended while the hub was down is settled from the hub's record and stored.
    let ended = call_update(&mut sam_events, &short, "ended", |c| {
        c.state == CallStateView::Ended
    })
    .await;
    // (A call merely missing from the snapshot would end without a status.)
    assert_eq!(
        ended.status,
        Some(calldesk_wire::CallStatusView::Answered),
        "{ended:?}"
    );
    assert!(ended.ended_at.is_some(), "{ended:?}");
    let live = sam.calls_snapshot().await.unwrap();
    assert!(
        live.iter()
            .any(|c| c.id == id && c.state == CallStateView::Talking),
        "the call that went on through the restart was lost: {live:#?}"
    );
    assert!(
        live.iter()
            .any(|c| c.id == short && c.state == CallStateView::Ended)
    );

    // Controls go through the new hub to the PBX: 101 holds the customer and resumes, then
    // sends them to 102.
    state(&ivan, &mut events, ConnectionState::Connected).await;
    for on in [true, false] {
        ivan.execute(Control::Hold {
            call: CallId::new(id.as_str()).unwrap(),
            operator: Extension::new("101").unwrap(),
            on,
        })
        .await
        .unwrap();
        call_update(&mut events, &id, "changed its hold", |c| c.on_hold == on).await;
    }
    ivan.execute(Control::Transfer {
        call: CallId::new(id.as_str()).unwrap(),
        operator: Extension::new("101").unwrap(),
        to: Destination::Extension(Extension::new("102").unwrap()),
        kind: TransferKind::Blind,
    })
    .await
    .unwrap();
    tokio::time::timeout(WAIT, async {
        loop {
            let live = s.sim.live_calls().await.unwrap();
            if live
                .iter()
                .any(|c| c.linkedid == id && c.operators.iter().any(|o| o == "102"))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the transfer never reached the PBX");
    // Operators act only as themselves: the hub refuses, the engine says why.
    let err = ivan
        .execute(Control::Hangup {
            call: CallId::new(id.as_str()).unwrap(),
            operator: Some(Extension::new("102").unwrap()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refused", "{err}");
    s.sim.hangup_call(&id).await.unwrap();
    call_update(&mut sam_events, &id, "ended", |c| {
        c.state == CallStateView::Ended
    })
    .await;

    // The supervisor's figures and operator list come from the hub.
    // Both calls ended answered by 102 (the hub stores a call within its 100 ms write batch).
    let mut figures = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        figures = sam.figures_since(0).await.unwrap();
        if figures
            .iter()
            .any(|f| f.extension == "102" && f.answered == 2 && f.average_handle_seconds.is_some())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        figures
            .iter()
            .any(|f| f.extension == "102" && f.answered == 2 && f.average_handle_seconds.is_some()),
        "{figures:?}"
    );
    let operators = sam.operators().await.unwrap();
    assert!(
        operators
            .iter()
            .any(|o| o.extension == "101" && o.name.as_deref() == Some("ivan (name)")),
        "{operators:?}"
    );

    // After the call: a note and a disposition go to the hub and read back from it.
    let note = ivan.add_note(&id, "  wants a quote  ").await.unwrap();
    assert_eq!(note.text, "wants a quote");
    assert_eq!(note.author.as_deref(), Some("ivan"));
    assert_eq!(
        ivan.disposition_codes().await.unwrap(),
        calldesk_wire::DEFAULT_DISPOSITIONS
    );
    ivan.set_disposition(&id, "callback").await.unwrap();
    let err = ivan.set_disposition(&id, "no such code").await.unwrap_err();
    assert_eq!(err.code(), "invalid", "{err}");
    // The list is the tenant's, on the hub: a change reaches the desk without a restart.
    let acme = calldesk_calls::TenantId::new("acme").unwrap();
    s.store
        .set_dispositions(&acme, &["callback".into(), "quote".into()])
        .await
        .unwrap();
    assert_eq!(
        ivan.disposition_codes().await.unwrap(),
        ["callback", "quote"]
    );
    let err = ivan.set_disposition(&id, "sale").await.unwrap_err();
    assert!(err.to_string().contains("(callback, quote)"), "{err}");
    // The desk has it at once; the supervisor's desk once the sync has carried it over.
    assert_eq!(
        ivan.after_call(&id).await.unwrap().notes,
        vec![note.clone()]
    );
    let after = synced(&sam, &id, |a| {
        !a.notes.is_empty() && a.disposition.is_some()
    })
    .await;
    assert_eq!(after.notes, vec![note]);
    assert_eq!(after.disposition.as_deref(), Some("callback"));
    assert_eq!(
        ivan.set_tags(&id, &["Quote".into()]).await.unwrap(),
        ["quote"]
    );
    assert_eq!(
        synced(&sam, &id, |a| !a.tags.is_empty()).await.tags,
        ["quote"]
    );

    // The worklist is the tenant's: a missed call the hub stored shows on both desks; what one
    // takes the other sees taken, and cannot take.
    let at =
        calldesk_calls::Timestamp::from_unix_millis(calldesk_store::wall_clock_millis() - 60_000)
            .rfc3339();
    let missed: calldesk_wire::HubCall = serde_json::from_value(serde_json::json!({
        "id": "missed-1", "direction": "inbound", "from": "+74957770001", "to": "0367",
        "status": "missed", "answered_by": [], "transfers": [], "monitors": [], "queue": null,
        "ring_secs": 20, "talk_secs": null, "hangup_cause": null, "recordings": [],
        "started_at": at, "answered_at": null, "ended_at": at,
        "tenant": "acme", "state": "ended", "operator": "101", "rang": ["101"],
        "on_hold": false, "caller": null, "notes": [], "disposition": null
    }))
    .unwrap();
    s.store.upsert_calls(&[missed]).await.unwrap();
    let list = sam.callbacks().await.unwrap();
    assert!(list.iter().any(|c| c.number == "+74957770001"), "{list:?}");
    let mut sam_events = sam.subscribe();
    let item = ivan
        .claim_callback("+74957770001", true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(item.claimed_by.as_deref(), Some("ivan"));
    // Sam's desk hears of the claim at once over the hub's WebSocket (no poll).
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match sam_events.recv().await {
                Ok(calldesk_engine::EngineEvent::CallbacksChanged) => break,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("sam's events ended: {e}"),
            }
        }
    })
    .await
    .expect("sam's desk was not told of ivan's claim");
    assert!(item.claimed_at.is_some());
    let list = sam.callbacks().await.unwrap();
    assert!(
        list.iter()
            .any(|c| c.number == "+74957770001" && c.claimed_by.as_deref() == Some("ivan")),
        "{list:?}"
    );
    ivan.close_callback("+74957770001", "unreachable")
        .await
        .unwrap();
    assert!(sam.callbacks().await.unwrap().is_empty());

    // The pop's "last calls" come from the hub.
    let history = ivan.caller_history("84951234567").await.unwrap();
    assert!(history.iter().any(|c| c.id == id), "{history:#?}");
    ivan.shutdown().await;
    sam.shutdown().await;
    let _ = stop_again.send(true);
    let _ = std::fs::remove_dir_all(&s.dir);
}

#[sqlx::test(migrator = "calldesk_central::MIGRATOR")]
async fn a_wrong_password_says_so_and_an_unreachable_hub_is_retried(pool: PgPool) {
    let s = setup(pool, "refused").await;
    let wrong = s.engine("ivan", "not-the-password").await;
    let mut events = wrong.subscribe();
    state(&wrong, &mut events, ConnectionState::Disconnected).await;
    let detail = wrong.connection_status().detail.unwrap_or_default();
    assert!(
        detail.contains("wrong tenant, login or password"),
        "{detail}"
    );
    wrong.shutdown().await;

    s.stop_hub.send(true).unwrap();
    // Wait until the port is closed, then an engine on it retries with a reason.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let away = s.engine("ivan", PASSWORD).await;
    let mut events = away.subscribe();
    state(&away, &mut events, ConnectionState::Reconnecting).await;
    let detail = away.connection_status().detail.unwrap_or_default();
    assert!(
        detail.contains("cannot be reached") && detail.contains("retrying in"),
        "{detail}"
    );
    assert!(away.calls_snapshot().await.unwrap().is_empty());
    away.shutdown().await;
    let _ = std::fs::remove_dir_all(&s.dir);
}
