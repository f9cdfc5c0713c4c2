//! Reconnects against the simulator, checked against the PBX's own truth
//! (`AmiSimHandle::live_calls`): the connection is killed mid-call and calls change while the
//! engine is away; the PBX restarts with calls up. After every resync the engine's live calls
//! equal the PBX's, and the history holds every finished call exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::Duration;

use calldesk_engine::EngineEvent;
use calldesk_sim::ami::{AmiSimConfig, ScenarioCall, ScenarioKind};
use calldesk_wire::{CallStateView, CallView, ConnectionState};

const LONG: Duration = Duration::from_secs(3600);

mod support;

/// The engine as the tests use it, with its event stream.
struct Setup {
    inner: support::Setup,
    events: tokio::sync::broadcast::Receiver<EngineEvent>,
}

impl std::ops::Deref for Setup {
    type Target = support::Setup;
    fn deref(&self) -> &support::Setup {
        &self.inner
    }
}

async fn setup(name: &str) -> Setup {
    let config = AmiSimConfig {
        restart_downtime: Duration::from_millis(300),
        ..AmiSimConfig::default()
    };
    let inner = support::Setup::start(
        &format!("reconnect-{name}"),
        config,
        calldesk_engine::DialplanConfig::default(),
    )
    .await;
    let events = inner.engine.subscribe();
    Setup { inner, events }
}

fn call(caller: &str, extension: &str, ring_ms: u64) -> ScenarioCall {
    ScenarioCall {
        kind: ScenarioKind::InboundAnswered,
        caller: caller.into(),
        did: extension.into(),
        extension: extension.into(),
        ring: Duration::from_millis(ring_ms),
        talk: LONG,
    }
}

async fn wait_connected(s: &mut Setup) {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            if s.engine.connection_status().state == ConnectionState::Connected {
                return;
            }
            match s.events.recv().await {
                Ok(EngineEvent::ConnectionChanged(st))
                    if st.state == ConnectionState::Connected =>
                {
                    return;
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .expect("no Connected status within 15 s");
}

async fn wait_state(s: &mut Setup, state: ConnectionState) {
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match s.events.recv().await {
                Ok(EngineEvent::ConnectionChanged(st)) if st.state == state => return,
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("{e}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {state:?} status within 15 s"));
}

fn live(snapshot: &[CallView]) -> BTreeSet<String> {
    snapshot
        .iter()
        .filter(|c| c.state != CallStateView::Ended)
        .map(|c| c.id.clone())
        .collect()
}

/// Waits until the engine's live calls equal the PBX's (same ids, same talking operators).
async fn wait_book_equals_truth(s: &Setup) -> Vec<CallView> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let truth = s.sim.live_calls().await.unwrap();
        let want: BTreeSet<String> = truth.iter().map(|c| c.linkedid.clone()).collect();
        let snapshot = s.engine.calls_snapshot().await.unwrap();
        let operators_match = truth.iter().all(|t| {
            snapshot.iter().any(|c| {
                c.id == t.linkedid
                    && (t.state != "talking"
                        || c.operator.as_deref() == t.operators.last().map(String::as_str))
            })
        });
        if live(&snapshot) == want && operators_match {
            return snapshot;
        }
        if tokio::time::Instant::now() > deadline {
            panic!(
                "engine live calls {:?} != PBX truth {:?}",
                snapshot
                    .iter()
                    .filter(|c| c.state != CallStateView::Ended)
                    .map(|c| (&c.id, &c.operator, c.state))
                    .collect::<Vec<_>>(),
                truth
                    .iter()
                    .map(|c| (&c.linkedid, &c.operators, c.state))
                    .collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_history_has_no_duplicates(snapshot: &[CallView]) {
    let ended: Vec<&String> = snapshot
        .iter()
        .filter(|c| c.state == CallStateView::Ended)
        .map(|c| &c.id)
        .collect();
    let unique: BTreeSet<&String> = ended.iter().copied().collect();
    assert_eq!(
        ended.len(),
        unique.len(),
        "duplicates in history: {ended:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_connection_mid_call_is_resynced_to_the_truth() {
    let mut s = setup("drop").await;
    wait_connected(&mut s).await;
    let a = s
        .sim
        .start_call(call("+74951110001", "101", 50))
        .await
        .unwrap();
    let b = s
        .sim
        .start_call(call("+74951110002", "102", 50))
        .await
        .unwrap();
    let before = wait_book_equals_truth(&s).await;
    assert_eq!(live(&before), BTreeSet::from([a.clone(), b.clone()]));

    // The network drops the session; the PBX keeps answering new connections with a reset for
    // a while, and calls change meanwhile: A ends, C starts and is answered.
    s.sim.pause_accepting(true);
    s.sim.drop_connections();
    wait_state(&mut s, ConnectionState::Reconnecting).await;
    s.sim.hangup_call(&a).await.unwrap();
    let c = s
        .sim
        .start_call(call("+74951110003", "103", 50))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.sim.pause_accepting(false);
    wait_connected(&mut s).await;

    let after = wait_book_equals_truth(&s).await;
    assert_eq!(live(&after), BTreeSet::from([b.clone(), c.clone()]));
    // A is in the history, once, answered (by 101 before the drop).
    let a_view = after.iter().find(|x| x.id == a).expect("A in history");
    assert_eq!(a_view.state, CallStateView::Ended);
    assert_eq!(a_view.operator.as_deref(), Some("101"));
    // C was answered while we were away: the resync knows who talks.
    let c_view = after.iter().find(|x| x.id == c).unwrap();
    assert_eq!(c_view.state, CallStateView::Talking);
    assert_eq!(c_view.from.raw, "+74951110003");

    // Everything ends normally on the new session; each call is in the history once.
    s.sim.hangup_call(&b).await.unwrap();
    s.sim.hangup_call(&c).await.unwrap();
    let done = wait_book_equals_truth(&s).await;
    assert!(live(&done).is_empty());
    assert_history_has_no_duplicates(&done);
    for id in [&a, &b, &c] {
        assert!(
            done.iter().any(|x| &x.id == id),
            "{id} missing from history"
        );
    }
    s.inner.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pbx_restart_with_calls_up_ends_them_once_and_new_calls_follow() {
    let mut s = setup("restart").await;
    wait_connected(&mut s).await;
    let a = s
        .sim
        .start_call(call("+74951110011", "101", 50))
        .await
        .unwrap();
    let b = s
        .sim
        .start_call(call("+74951110012", "102", 5_000))
        .await
        .unwrap();
    wait_book_equals_truth(&s).await;

    s.sim.restart().await.unwrap();
    wait_state(&mut s, ConnectionState::Reconnecting).await;
    wait_connected(&mut s).await;
    let after = wait_book_equals_truth(&s).await;
    assert!(live(&after).is_empty(), "calls survived a PBX restart");
    let status = |id: &str| after.iter().find(|x| x.id == id).and_then(|x| x.status);
    assert_eq!(status(&a), Some(calldesk_wire::CallStatusView::Answered));
    assert_eq!(status(&b), Some(calldesk_wire::CallStatusView::Missed));

    // The restarted PBX counts Uniqueids from 0 again, under a new epoch: a new call is a new
    // call, not a duplicate of an old one.
    let c = s
        .sim
        .start_call(call("+74951110013", "101", 50))
        .await
        .unwrap();
    assert!(c != a && c != b);
    let with_c = wait_book_equals_truth(&s).await;
    assert_eq!(live(&with_c), BTreeSet::from([c.clone()]));
    s.sim.hangup_call(&c).await.unwrap();
    let done = wait_book_equals_truth(&s).await;
    assert_history_has_no_duplicates(&done);
    s.inner.teardown().await;
}
