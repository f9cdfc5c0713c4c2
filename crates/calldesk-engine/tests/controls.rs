//! Call controls end to end: `EngineHandle::execute` → AMI actions on a real socket → the
//! simulator acts like Asterisk → its events → tracker → call book. Each test checks what the
//! call book ends up saying, so the action, the PBX's reaction and the tracking all have to be
//! right.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use calldesk_calls::{
    CallId, Control, ControlError, ControlOutcome, Destination, Extension, MonitorMode, NumberPlan,
    RecordAction, TransferKind,
};
use calldesk_engine::DialplanConfig;
use calldesk_sim::ami::{AmiSimConfig, ScenarioCall, ScenarioKind};
use calldesk_sim::pbx::PhoneBehaviour;
use calldesk_wire::{CallStateView, CallStatusView, CallView, ConnectionState};

mod support;

use support::Setup;

/// The simulator is the lab's PBX: chan_sip phones, external numbers dialled with `00`.
fn lab() -> DialplanConfig {
    DialplanConfig {
        tech: calldesk_asterisk::actions::ChannelTech::Sip,
        international_prefix: Some("00".into()),
        ..DialplanConfig::default()
    }
}

async fn setup(name: &str, dialplan: DialplanConfig) -> Setup {
    let s = Setup::start(
        &format!("controls-{name}"),
        AmiSimConfig::default(),
        dialplan,
    )
    .await;
    wait_for(&s, "connected", |_| {
        (s.engine.connection_status().state == ConnectionState::Connected).then_some(())
    })
    .await;
    s
}

async fn teardown(s: Setup) {
    s.teardown().await;
}

/// Polls the engine's snapshot until `check` finds what it wants.
async fn wait_for<T>(s: &Setup, what: &str, check: impl Fn(&[CallView]) -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let snapshot = s.engine.calls_snapshot().await.unwrap();
        if let Some(found) = check(&snapshot) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}; calls: {snapshot:#?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

fn ext(e: &str) -> Extension {
    Extension::new(e).unwrap()
}

async fn talking_inbound(s: &Setup, caller: &str, extension: &str) -> CallId {
    let id = s
        .sim
        .start_call(ScenarioCall {
            kind: ScenarioKind::InboundAnswered,
            caller: caller.into(),
            did: extension.into(),
            extension: extension.into(),
            ring: Duration::from_millis(50),
            talk: Duration::from_secs(3600),
        })
        .await
        .unwrap();
    wait_for(s, "the call to be answered", |calls| {
        calls
            .iter()
            .find(|c| c.id == id && c.state == CallStateView::Talking)
            .map(|_| ())
    })
    .await;
    CallId::new(id).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_rings_the_operator_then_the_customer() {
    let s = setup("c2c", lab()).await;
    assert!(s.engine.capabilities().originate);
    let number = NumberPlan::new("RU")
        .unwrap()
        .parse("+74957654321")
        .unwrap();
    let outcome = s
        .engine
        .execute(Control::Originate {
            operator: ext("101"),
            to: Destination::Number(number),
        })
        .await
        .unwrap();
    let ControlOutcome::Originated { call: Some(id) } = outcome else {
        panic!("no call id: {outcome:?}");
    };
    let call = wait_for(&s, "the outbound call to be answered", |calls| {
        calls
            .iter()
            .find(|c| c.id == id.as_str() && c.state == CallStateView::Talking)
            .cloned()
    })
    .await;
    assert_eq!(call.from.raw, "101");
    assert_eq!(call.operator.as_deref(), Some("101"));
    s.engine
        .execute(Control::Hangup {
            call: id.clone(),
            operator: Some(ext("101")),
        })
        .await
        .unwrap();
    let ended = wait_for(&s, "the call to end", |calls| {
        calls
            .iter()
            .find(|c| c.id == id.as_str() && c.state == CallStateView::Ended)
            .cloned()
    })
    .await;
    assert_eq!(ended.status, Some(CallStatusView::Answered));
    teardown(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn click_to_call_to_a_busy_operator_is_refused_clearly() {
    let s = setup("c2c-busy", lab()).await;
    s.sim.set_phone(
        "101",
        PhoneBehaviour::Busy {
            after: Duration::from_millis(50),
        },
    );
    let err = s
        .engine
        .execute(Control::Originate {
            operator: ext("101"),
            to: Destination::Extension(ext("102")),
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::NotAnswered { .. }), "{err:?}");
    assert!(err.to_string().contains("busy"), "{err}");
    // The failed click-to-call is in the history as failed.
    wait_for(&s, "a failed call in history", |calls| {
        calls
            .iter()
            .find(|c| c.status == Some(CallStatusView::Failed) && c.from.raw == "101")
            .map(|_| ())
    })
    .await;
    teardown(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blind_and_attended_transfers_move_the_customer() {
    let s = setup("transfer", lab()).await;
    let blind = talking_inbound(&s, "+74951230001", "101").await;
    s.engine
        .execute(Control::Transfer {
            call: blind.clone(),
            operator: ext("101"),
            to: Destination::Extension(ext("102")),
            kind: TransferKind::Blind,
        })
        .await
        .unwrap();
    wait_for(&s, "102 to talk after the blind transfer", |calls| {
        calls
            .iter()
            .find(|c| {
                c.id == blind.as_str()
                    && c.state == CallStateView::Talking
                    && c.operator.as_deref() == Some("102")
            })
            .map(|_| ())
    })
    .await;

    // 101 is free again after the blind transfer; 104 is the lab's always-busy phone.
    let attended = talking_inbound(&s, "+74951230002", "103").await;
    s.engine
        .execute(Control::Transfer {
            call: attended.clone(),
            operator: ext("103"),
            to: Destination::Extension(ext("101")),
            kind: TransferKind::Attended,
        })
        .await
        .unwrap();
    // 103 consults 104, then hangs up: the transfer completes.
    tokio::time::sleep(Duration::from_millis(800)).await;
    s.sim.phone_hangup("103").await.unwrap();
    wait_for(&s, "101 to talk after the attended transfer", |calls| {
        calls
            .iter()
            .find(|c| c.id == attended.as_str() && c.operator.as_deref() == Some("101"))
            .map(|_| ())
    })
    .await;
    teardown(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supervisor_listens_and_recording_starts_on_the_exact_call() {
    let dialplan = DialplanConfig {
        recording: Some(calldesk_asterisk::actions::RecordingConfig::default()),
        ..lab()
    };
    let s = setup("monitor", dialplan).await;
    let id = talking_inbound(&s, "+74951230003", "101").await;
    s.engine
        .execute(Control::Record {
            call: id.clone(),
            action: RecordAction::Start,
        })
        .await
        .unwrap();
    s.engine
        .execute(Control::Monitor {
            call: id.clone(),
            operator: ext("101"),
            supervisor: ext("102"),
            mode: MonitorMode::Whisper,
        })
        .await
        .unwrap();
    // The spy leg is not a call of its own: only the customer's call is live.
    let truth = s.sim.live_calls().await.unwrap();
    assert_eq!(truth.len(), 1, "{truth:?}");
    // 102 whispers on the call (ChanSpy's `w`), on the call's own channel.
    assert_eq!(truth[0].spies, ["102:bqwESu"], "{truth:?}");
    let live = s.engine.calls_snapshot().await.unwrap();
    assert_eq!(
        live.iter()
            .filter(|c| c.state != CallStateView::Ended)
            .count(),
        1,
        "{live:#?}"
    );
    // Asking for a leg the operator does not have is refused with a clear reason.
    let err = s
        .engine
        .execute(Control::Hold {
            call: id.clone(),
            operator: ext("101"),
            on: true,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_supported", "{err}");
    let err = s
        .engine
        .execute(Control::Hangup {
            call: id.clone(),
            operator: Some(ext("109")),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "not_in_call", "{err}");
    teardown(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_parks_both_legs_in_the_helper_and_resume_bridges_them_again() {
    let dialplan = DialplanConfig {
        hold: Some(calldesk_asterisk::actions::HoldConfig::default()),
        ..lab()
    };
    let s = setup("hold", dialplan).await;
    assert!(s.engine.capabilities().hold);
    let id = talking_inbound(&s, "+74951230007", "101").await;
    let hold = |on| Control::Hold {
        call: id.clone(),
        operator: ext("101"),
        on,
    };
    s.engine.execute(hold(true)).await.unwrap();
    // At the PBX: one call, the customer on music on hold, 101's leg still up.
    let truth = s.sim.live_calls().await.unwrap();
    assert_eq!(truth.len(), 1, "{truth:?}");
    assert_eq!(
        (truth[0].state, truth[0].operators.as_slice()),
        ("held", ["101".to_owned()].as_slice())
    );
    wait_for(&s, "the call to show on hold", |calls| {
        calls
            .iter()
            .find(|c| c.id == id.as_str() && c.on_hold)
            .map(|_| ())
    })
    .await;
    s.engine.execute(hold(false)).await.unwrap();
    let truth = s.sim.live_calls().await.unwrap();
    assert_eq!((truth.len(), truth[0].state), (1, "talking"), "{truth:?}");
    wait_for(&s, "the call to be off hold, still talking", |calls| {
        calls
            .iter()
            .find(|c| c.id == id.as_str() && !c.on_hold && c.state == CallStateView::Talking)
            .map(|_| ())
    })
    .await;
    teardown(s).await;
}

#[tokio::test]
async fn touch_tones_go_out_on_the_customer_channel_one_by_one() {
    let s = setup("dtmf", lab()).await;
    assert!(s.engine.capabilities().dtmf);
    let id = talking_inbound(&s, "+74951230008", "101").await;
    let tones = |digits: &str| Control::Dtmf {
        call: id.clone(),
        operator: ext("101"),
        digits: calldesk_calls::DtmfDigits::new(digits).unwrap(),
    };
    s.engine.execute(tones("12")).await.unwrap();
    s.engine.execute(tones("*#")).await.unwrap();
    let truth = s.sim.live_calls().await.unwrap();
    assert_eq!(truth.len(), 1, "{truth:?}");
    // Only the trunk (the customer's side) sent tones, in the order pressed.
    assert_eq!(truth[0].dtmf.len(), 1, "{truth:?}");
    let (channel, sent) = truth[0].dtmf[0].split_once(':').unwrap();
    assert!(channel.starts_with("SIP/trunk-"), "{channel}");
    assert_eq!(sent, "12*#");
    assert_eq!(truth[0].state, "talking");
    // Someone not in the call cannot send tones into it.
    let stranger = Control::Dtmf {
        call: id.clone(),
        operator: ext("102"),
        digits: calldesk_calls::DtmfDigits::new("5").unwrap(),
    };
    let err = s.engine.execute(stranger).await.unwrap_err();
    assert_eq!(err.code(), "not_in_call", "{err}");
    teardown(s).await;
}
