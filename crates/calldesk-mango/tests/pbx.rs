//! `MangoPbx`: domain controls as VPBX commands on the legs a directory knows, against the
//! fake Mango.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use anyhow::bail;
use calldesk_calls::{
    CallId, Control, ControlError, ControlOutcome, Destination, Extension, MonitorMode, NumberPlan,
    Pbx, RecordAction, TransferKind,
};
use calldesk_mango::MangoPbx;
use calldesk_mango_proto::tracker::{LegDirectory, LiveLeg};
use calldesk_mango_proto::webhook::{LegParty, LegState, Location};
use support::{FakeMango, json, ok};

#[derive(Debug, Default)]
struct Legs(HashMap<CallId, Vec<LiveLeg>>);

impl LegDirectory for Legs {
    fn live_legs(&self, call: &CallId) -> Option<Vec<LiveLeg>> {
        self.0.get(call).cloned()
    }
}

fn party(extension: Option<&str>, number: &str) -> LegParty {
    LegParty {
        extension: extension.map(str::to_owned),
        number: Some(number.to_owned()),
        ..LegParty::default()
    }
}

fn leg(call_id: &str, state: LegState, from: LegParty, to: LegParty) -> LiveLeg {
    LiveLeg {
        call_id: call_id.to_owned(),
        state,
        location: Some(Location::Abonent),
        from,
        to,
    }
}

fn ext(e: &str) -> anyhow::Result<Extension> {
    Ok(Extension::new(e)?)
}

fn call() -> anyhow::Result<CallId> {
    Ok(CallId::new("MjYwNTQ4ODA3Nzc=")?)
}

/// Entry `MjYwNTQ4ODA3Nzc=`: the customer talks to 101 on leg B (and is on hold with 104 on
/// leg H, from before); 102 is ringing on leg C.
fn directory() -> anyhow::Result<Arc<RwLock<Legs>>> {
    let customer = || party(None, "79161234567");
    let mut legs = Legs::default();
    legs.0.insert(
        call()?,
        vec![
            leg(
                "leg-H",
                LegState::OnHold,
                customer(),
                party(Some("104"), "sip:d@vpbx.mangosip.ru"),
            ),
            leg(
                "leg-B",
                LegState::Connected,
                customer(),
                party(Some("101"), "sip:ivanov@vpbx.mangosip.ru"),
            ),
            leg(
                "leg-C",
                LegState::Appeared,
                customer(),
                party(Some("102"), "sip:petrov@vpbx.mangosip.ru"),
            ),
        ],
    );
    Ok(Arc::new(RwLock::new(legs)))
}

async fn pbx_with(
    responder: impl Fn(&support::Recorded) -> support::Reply + Send + Sync + 'static,
) -> anyhow::Result<(FakeMango, MangoPbx<Legs>)> {
    let fake = FakeMango::start(responder).await?;
    let pbx = MangoPbx::new(fake.client()?, directory()?);
    Ok((fake, pbx))
}

/// The json of the only request, without its (random) command_id.
fn body(fake: &FakeMango, index: usize) -> anyhow::Result<(String, serde_json::Value)> {
    let requests = fake.requests()?;
    let Some(r) = requests.get(index) else {
        bail!("no request #{index}: {requests:?}");
    };
    let mut value: serde_json::Value = serde_json::from_str(&r.json)?;
    let id = value
        .as_object_mut()
        .and_then(|o| o.remove("command_id"))
        .and_then(|v| v.as_str().map(str::to_owned));
    if id.is_none_or(|id| uuid::Uuid::parse_str(&id).is_err()) {
        bail!("no UUID command_id in {}", r.json);
    }
    Ok((r.path.clone(), value))
}

#[tokio::test]
async fn transfer_uses_the_operators_connected_leg_and_initiator() -> anyhow::Result<()> {
    let (fake, pbx) = pbx_with(|_| ok()).await?;
    let to = Destination::Number(NumberPlan::new("RU")?.parse("+7 495 123-45-67")?);
    let outcome = pbx
        .execute(Control::Transfer {
            call: call()?,
            operator: ext("101")?,
            to,
            kind: TransferKind::Attended,
        })
        .await?;
    assert_eq!(outcome, ControlOutcome::Done);
    assert_eq!(
        body(&fake, 0)?,
        (
            "commands/transfer".to_owned(),
            serde_json::json!({"call_id":"leg-B","method":"hold","to_number":"74951234567","initiator":"101"})
        )
    );
    // 102's leg only rings: refused locally, nothing sent.
    let err = pbx
        .execute(Control::Transfer {
            call: call()?,
            operator: ext("102")?,
            to: Destination::Extension(ext("103")?),
            kind: TransferKind::Blind,
        })
        .await
        .err();
    assert!(
        matches!(&err, Some(ControlError::Refused { action: "blind_transfer", message }) if message.contains("not connected")),
        "{err:?}"
    );
    // 103 is not on the call at all.
    let err = pbx
        .execute(Control::Transfer {
            call: call()?,
            operator: ext("103")?,
            to: Destination::Extension(ext("105")?),
            kind: TransferKind::Blind,
        })
        .await
        .err();
    assert!(
        matches!(&err, Some(ControlError::NotInCall { extension, .. }) if extension.as_str() == "103"),
        "{err:?}"
    );
    assert_eq!(fake.requests()?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn hold_record_hangup_and_originate_address_the_right_legs() -> anyhow::Result<()> {
    let (fake, pbx) = pbx_with(|_| ok()).await?;
    pbx.execute(Control::Hold {
        call: call()?,
        operator: ext("101")?,
        on: true,
    })
    .await?;
    pbx.execute(Control::Record {
        call: call()?,
        action: RecordAction::Start,
    })
    .await?;
    pbx.execute(Control::Hangup {
        call: call()?,
        operator: Some(ext("101")?),
    })
    .await?;
    pbx.execute(Control::Hangup {
        call: call()?,
        operator: None,
    })
    .await?;
    let outcome = pbx
        .execute(Control::Originate {
            operator: ext("0511")?,
            to: Destination::Number(NumberPlan::new("RU")?.parse("89161234567")?),
        })
        .await?;
    assert_eq!(outcome, ControlOutcome::Originated { call: None });
    let mut got = Vec::new();
    for i in 0..5 {
        got.push(body(&fake, i)?);
    }
    assert_eq!(
        got,
        [
            (
                "commands/call/hold/on".to_owned(),
                serde_json::json!({"call_id":"leg-B","initiator":"101"})
            ),
            (
                "commands/recording/start".to_owned(),
                serde_json::json!({"call_id":"leg-B","call_party_number":"101"})
            ),
            (
                "commands/call/hangup".to_owned(),
                serde_json::json!({"call_id":"leg-B"})
            ),
            // No operator: the newest live leg.
            (
                "commands/call/hangup".to_owned(),
                serde_json::json!({"call_id":"leg-C"})
            ),
            (
                "commands/callback".to_owned(),
                serde_json::json!({"from":{"extension":"0511"},"to_number":"79161234567"})
            ),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn what_mango_cannot_do_is_refused_without_a_request() -> anyhow::Result<()> {
    let (fake, pbx) = pbx_with(|_| ok()).await?;
    let caps = pbx.capabilities();
    assert!(caps.originate && caps.hangup && caps.blind_transfer && caps.attended_transfer);
    assert!(caps.hold && caps.record);
    assert!(!caps.monitor && !caps.queue_pause && !caps.dtmf);

    let unhold = pbx
        .execute(Control::Hold {
            call: call()?,
            operator: ext("101")?,
            on: false,
        })
        .await
        .err();
    match unhold {
        Some(e @ ControlError::NotSupported(_)) => {
            assert!(e.to_string().contains("off hold"), "{e}");
            assert!(e.to_string().contains("use the phone"), "{e}");
        }
        other => bail!("expected NotSupported, got {other:?}"),
    }
    let others = [
        Control::Monitor {
            call: call()?,
            operator: ext("101")?,
            supervisor: ext("200")?,
            mode: MonitorMode::Listen,
        },
        Control::QueuePause {
            operator: ext("101")?,
            queue: None,
            paused: true,
            reason: None,
        },
        Control::Record {
            call: call()?,
            action: RecordAction::Stop,
        },
        Control::Record {
            call: call()?,
            action: RecordAction::Mute,
        },
        Control::Dtmf {
            call: call()?,
            operator: ext("101")?,
            digits: calldesk_calls::DtmfDigits::new("1")?,
        },
    ];
    for control in others {
        let err = pbx.execute(control.clone()).await.err();
        assert!(
            matches!(err, Some(ControlError::NotSupported(_))),
            "{control:?}: {err:?}"
        );
        assert_eq!(err.map(|e| e.code()), Some("not_supported"));
    }
    assert!(fake.requests()?.is_empty());
    Ok(())
}

#[tokio::test]
async fn unknown_calls_bad_values_and_refusals() -> anyhow::Result<()> {
    let (fake, pbx) = pbx_with(|r| match r.path.as_str() {
        "commands/call/hangup" => json(200, r#"{"result":4101}"#),
        _ => ok(),
    })
    .await?;
    let gone = CallId::new("bm8tc3VjaA==")?;
    for control in [
        Control::Hangup {
            call: gone.clone(),
            operator: None,
        },
        Control::Hold {
            call: gone.clone(),
            operator: ext("101")?,
            on: true,
        },
        Control::Record {
            call: gone.clone(),
            action: RecordAction::Start,
        },
    ] {
        let err = pbx.execute(control).await.err();
        assert!(
            matches!(&err, Some(ControlError::NoSuchCall(c)) if *c == gone),
            "{err:?}"
        );
    }
    // An operator Mango cannot address (letters): invalid, never sent.
    let err = pbx
        .execute(Control::Originate {
            operator: ext("alice")?,
            to: Destination::Extension(ext("102")?),
        })
        .await
        .err();
    assert!(matches!(err, Some(ControlError::Invalid(_))), "{err:?}");
    assert!(fake.requests()?.is_empty());

    // Mango's refusal, with its reason.
    let err = pbx
        .execute(Control::Hangup {
            call: call()?,
            operator: Some(ext("101")?),
        })
        .await
        .err();
    match err {
        Some(ControlError::Refused { action, message }) => {
            assert_eq!(action, "hangup");
            assert!(message.contains("4101"), "{message}");
        }
        other => bail!("expected Refused, got {other:?}"),
    }
    assert_eq!(fake.requests()?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_lost_connection_says_whether_the_command_may_have_run() -> anyhow::Result<()> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    let mut config = calldesk_mango::MangoConfig::with_base_url(
        reqwest::Url::parse(&format!("http://{addr}/vpbx/"))?,
        support::credentials(),
    );
    config.max_retries = 0;
    let pbx = MangoPbx::new(calldesk_mango::MangoClient::new(config)?, directory()?);
    let err = pbx
        .execute(Control::Hangup {
            call: call()?,
            operator: None,
        })
        .await
        .err();
    assert_eq!(
        err,
        Some(ControlError::Disconnected {
            maybe_executed: false
        })
    );
    Ok(())
}
