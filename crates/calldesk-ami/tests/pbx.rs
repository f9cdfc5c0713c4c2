//! AmiPbx: call controls over the client against a scripted server replaying the captures.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use calldesk_ami::{AmiClient, AmiPbx, ClientEvent};
use calldesk_ami_proto::Message;
use calldesk_asterisk::ChannelDirectory;
use calldesk_asterisk::actions::{ChannelTech, DialplanConfig};
use calldesk_calls::{
    CallId, Control, ControlError, ControlOutcome, Destination, Extension, MonitorMode, Pbx,
    TransferKind,
};
use support::*;
use tokio::sync::mpsc;

/// call id → legs `(extension, channel)`; the first leg is the customer's.
#[derive(Default)]
struct Directory(HashMap<String, Vec<(Option<String>, String)>>);

impl ChannelDirectory for Directory {
    fn operator_channel(&self, call: &CallId, extension: &Extension) -> Option<String> {
        self.0
            .get(call.as_str())?
            .iter()
            .find(|(e, _)| e.as_deref() == Some(extension.as_str()))
            .map(|(_, c)| c.clone())
    }
    fn customer_channel(&self, call: &CallId) -> Option<String> {
        self.0.get(call.as_str())?.first().map(|(_, c)| c.clone())
    }
    fn call_channels(&self, call: &CallId) -> Vec<String> {
        self.0
            .get(call.as_str())
            .map(|l| l.iter().map(|(_, c)| c.clone()).collect())
            .unwrap_or_default()
    }
}

fn ext(s: &str) -> Extension {
    Extension::new(s).unwrap()
}

/// The live call of capture j3: trunk ↔ 101.
fn directory() -> Arc<RwLock<Directory>> {
    let mut d = Directory::default();
    d.0.insert(
        "1795260104.84".to_owned(),
        vec![
            (None, "SIP/trunk-00000026".to_owned()),
            (Some("101".to_owned()), "SIP/101-00000027".to_owned()),
        ],
    );
    Arc::new(RwLock::new(d))
}

fn call() -> CallId {
    CallId::new("1795260104.84").unwrap()
}

fn dialplan() -> DialplanConfig {
    DialplanConfig {
        tech: ChannelTech::Sip,
        international_prefix: Some("00".to_owned()),
        ..DialplanConfig::default()
    }
}

/// Starts a client against a server task that runs `script` after login and resync; every
/// action the script reads is also reported on the returned channel.
async fn setup<F, Fut>(
    script: F,
) -> (
    AmiPbx<Directory>,
    mpsc::Receiver<ClientEvent>,
    tokio::task::JoinHandle<()>,
)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let (listener, addr) = listen().await;
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&listener).await;
        p.login_plain().await;
        p.resync_j3().await;
        script(p).await;
    });
    let (client, mut events) = AmiClient::start(config(&addr), never());
    assert_eq!(name_of(&next_event(&mut events).await), "Resync");
    (AmiPbx::new(client, directory(), dialplan()), events, server)
}

fn lines(m: &Message) -> Vec<String> {
    m.fields()
        .filter(|(k, _)| !k.eq_ignore_ascii_case(b"ActionID"))
        .map(|(k, v)| {
            format!(
                "{}: {}",
                String::from_utf8_lossy(k),
                String::from_utf8_lossy(v)
            )
        })
        .collect()
}

/// Replies with the capture's messages from the reply to `captured_id` through its
/// OriginateResponse, with the ActionIDs replaced.
async fn replay_originate(p: &mut Peer, o: &Message, capture: &str, captured_id: &str) {
    let c = Capture::load(capture);
    let start = c.position(0, "ActionID", captured_id);
    let end = c.position(start, "Event", "OriginateResponse");
    p.send(&with_id(&c.messages[start], &id(o))).await;
    p.send(&with_id(&c.messages[end], &id(o))).await;
}

#[tokio::test]
async fn click_to_call_answered_busy_and_no_answer() {
    let (pbx, _events, server) = setup(|mut p| async move {
        let o = p.expect("Originate").await;
        let l = lines(&o);
        assert_eq!(
            l[..7],
            [
                "Action: Originate",
                "Channel: SIP/101",
                "Context: from-internal",
                "Exten: 004930123456",
                "Priority: 1",
                "CallerID: 004930123456",
                "Timeout: 30000",
            ]
        );
        assert_eq!(l[7], "Async: true");
        assert!(l[8].starts_with("ChannelId: calldesk-"), "{l:?}");
        replay_originate(&mut p, &o, "h1_click_to_call", "h1-002").await;
        let o = p.expect("Originate").await;
        replay_originate(&mut p, &o, "h2_click_to_call_agent_busy", "h2-002").await;
        let o = p.expect("Originate").await;
        replay_originate(&mut p, &o, "h3_click_to_call_agent_noanswer", "h3-002").await;
        p.serve().await;
    })
    .await;
    let number = calldesk_calls::NumberPlan::new("DE")
        .unwrap()
        .parse("+4930123456")
        .unwrap();
    let c2c = Control::Originate {
        operator: ext("101"),
        to: Destination::Number(number),
    };
    assert_eq!(
        pbx.execute(c2c.clone()).await,
        Ok(ControlOutcome::Originated {
            call: Some(CallId::new("1795260035.68").unwrap())
        })
    );
    assert_eq!(
        pbx.execute(c2c.clone()).await,
        Err(ControlError::NotAnswered {
            extension: ext("101"),
            reason: "busy".to_owned()
        })
    );
    assert_eq!(
        pbx.execute(c2c).await,
        Err(ControlError::NotAnswered {
            extension: ext("101"),
            reason: "no answer".to_owned()
        })
    );
    drop(pbx);
    server.await.unwrap();
}

#[tokio::test]
async fn refusals_keep_the_servers_text_and_plans_reach_the_wire_exactly() {
    let j2 = Capture::load("j2_errors_unknown_action");
    let (pbx, _events, server) = setup(move |mut p| async move {
        // Blind transfer: BlindTransfer on the operator's channel.
        let t = p.expect("BlindTransfer").await;
        assert_eq!(
            lines(&t),
            [
                "Action: BlindTransfer",
                "Channel: SIP/101-00000027",
                "Context: from-internal",
                "Exten: 102"
            ]
        );
        // Answered with Redirect's real error text (a channel that went away meanwhile).
        p.send(&list_with_id(&j2.reply_to("j2-005"), &id(&t))).await;
        // Hangup of the whole call: the first leg is gone already, the second goes.
        let h1 = p.expect("Hangup").await;
        assert_eq!(h1.get_str("Channel").as_deref(), Some("SIP/trunk-00000026"));
        p.send(&list_with_id(&j2.reply_to("j2-004"), &id(&h1)))
            .await;
        let h2 = p.expect("Hangup").await;
        assert_eq!(h2.get_str("Channel").as_deref(), Some("SIP/101-00000027"));
        let ok = format!(
            "Response: Success\r\nActionID: {}\r\nMessage: Channel Hungup\r\n\r\n",
            id(&h2)
        );
        p.send(ok.as_bytes()).await;
        // Spy: never answered in time.
        let spy = p.expect("Originate").await;
        assert_eq!(
            spy.get_str("Data").as_deref(),
            Some("SIP/101-00000027,bqwESu")
        );
        p.serve().await;
    })
    .await;
    let err = pbx
        .execute(Control::Transfer {
            call: call(),
            operator: ext("101"),
            to: Destination::Extension(ext("102")),
            kind: TransferKind::Blind,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ControlError::Refused {
            action: "blind_transfer",
            message: "Channel does not exist: SIP/999-00000000".to_owned()
        }
    );
    assert_eq!(
        pbx.execute(Control::Hangup {
            call: call(),
            operator: None
        })
        .await,
        Ok(ControlOutcome::Done)
    );
    // Hold is not configured: refused without touching the wire.
    assert_eq!(
        pbx.execute(Control::Hold {
            call: call(),
            operator: ext("101"),
            on: true
        })
        .await,
        Err(ControlError::NotSupported("hold"))
    );
    assert!(!calldesk_calls::Pbx::capabilities(&pbx).hold);
    assert_eq!(
        pbx.execute(Control::Hangup {
            call: call(),
            operator: Some(ext("102"))
        })
        .await,
        Err(ControlError::NotInCall {
            call: call(),
            extension: ext("102")
        })
    );
    // A spy call whose OriginateResponse does not come in time.
    let short = AmiPbx::new(
        pbx.client().clone(),
        directory(),
        DialplanConfig {
            originate_timeout: Duration::from_millis(100),
            action_timeout: Duration::from_millis(100),
            ..dialplan()
        },
    );
    let err = short
        .execute(Control::Monitor {
            call: call(),
            operator: ext("101"),
            supervisor: ext("103"),
            mode: MonitorMode::Whisper,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ControlError::TimedOut {
            seconds: 1,
            maybe_executed: true
        }
    );
    drop((pbx, short));
    server.await.unwrap();
}
