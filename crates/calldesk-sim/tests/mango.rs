//! The fake Mango VPBX over real loopback sockets: a tiny webhook receiver checks every
//! signature and parses every webhook with `calldesk-mango-proto`; commands go through reqwest.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use calldesk_mango_proto::webhook::{CallLeg, LegState, RecordingState, Summary, TransferMark};
use calldesk_mango_proto::{Credentials, Route, SignedForm, Webhook, stats};
use calldesk_sim::mango::{
    DeliveryMode, FakeMango, FakeMangoConfig, Ids, MangoScenario, PhoneBehaviour, Timings,
    loopback_client_builder, recording_audio, render,
};
use tokio::net::TcpListener;

const WAIT: Duration = Duration::from_secs(10);

/// One webhook as the receiver got it (signature verified, parsed).
#[derive(Debug, Clone)]
struct Got {
    /// Below the base, e.g. `events/call`.
    path: String,
    json: String,
    hook: Webhook,
}

#[derive(Clone)]
struct Inbox {
    credentials: Credentials,
    got: Arc<Mutex<Vec<Got>>>,
    bad: Arc<Mutex<Vec<String>>>,
}

impl Inbox {
    fn got(&self) -> Vec<Got> {
        self.got.lock().map(|g| g.clone()).unwrap_or_default()
    }

    fn bad(&self) -> Vec<String> {
        self.bad.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Waits until `done` holds for what arrived; returns it.
    async fn until(&self, what: &str, done: impl Fn(&[Got]) -> bool) -> Result<Vec<Got>> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.got();
            if done(&got) {
                return Ok(got);
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "timed out waiting for {what}; got {:#?}; rejected {:?}",
                    got.iter().map(|g| (&g.path, &g.json)).collect::<Vec<_>>(),
                    self.bad()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for the summary of `entry`.
    async fn summary(&self, entry: &str) -> Result<Vec<Got>> {
        self.until(&format!("the summary of {entry}"), |g| {
            g.iter()
                .any(|g| matches!(&g.hook, Webhook::Summary(s) if s.entry_id == entry))
        })
        .await
    }
}

async fn receive(State(inbox): State<Inbox>, Path(path): Path<String>, body: Bytes) -> StatusCode {
    let checked = (|| {
        let form = SignedForm::parse(&body).map_err(|e| e.to_string())?;
        let json = form.verify(&inbox.credentials).map_err(|e| e.to_string())?;
        let route = Route::from_path(&format!("/mango/acme/{path}")).map_err(|e| e.to_string())?;
        let hook = Webhook::parse(&route, json).map_err(|e| e.to_string())?;
        Ok::<_, String>(Got {
            path: path.clone(),
            json: json.to_owned(),
            hook,
        })
    })();
    match checked {
        Ok(got) => {
            if let Ok(mut g) = inbox.got.lock() {
                g.push(got);
            }
            StatusCode::OK
        }
        Err(e) => {
            if let Ok(mut b) = inbox.bad.lock() {
                b.push(format!("{path}: {e}"));
            }
            StatusCode::BAD_REQUEST
        }
    }
}

/// A webhook receiver at `http://127.0.0.1:PORT/mango/acme/`.
async fn receiver(credentials: Credentials) -> Result<(Inbox, String)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let inbox = Inbox {
        credentials,
        got: Arc::default(),
        bad: Arc::default(),
    };
    let app = Router::new()
        .route("/mango/acme/{*path}", post(receive))
        .with_state(inbox.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((inbox, format!("http://{addr}/mango/acme/")))
}

struct Lab {
    fake: FakeMango,
    inbox: Inbox,
    http: reqwest::Client,
}

impl Lab {
    async fn start(config: FakeMangoConfig) -> Result<Self> {
        let fake = FakeMango::start(config).await?;
        let (inbox, base) = receiver(fake.credentials().clone()).await?;
        fake.set_target(base);
        let http = loopback_client_builder()?
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { fake, inbox, http })
    }

    /// POSTs a signed command; returns the status and the body.
    async fn send(&self, path: &str, json: &str) -> Result<(u16, String)> {
        self.send_signed(path, SignedForm::encode(self.fake.credentials(), json))
            .await
    }

    async fn send_signed(&self, path: &str, form: String) -> Result<(u16, String)> {
        let resp = self
            .http
            .post(format!("{}{path}", self.fake.base_url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }
}

/// Waits until the fake has logged `n` deliveries (it logs after the receiver's 200 arrives).
async fn delivered(fake: &FakeMango, n: usize) -> Result<Vec<String>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let delivered: Vec<String> = fake.delivered().into_iter().map(|d| d.json).collect();
        if delivered.len() >= n {
            return Ok(delivered);
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "only {} of {n} deliveries logged",
            delivered.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn quiet() -> FakeMangoConfig {
    FakeMangoConfig {
        rate_limits: false,
        ..FakeMangoConfig::default()
    }
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn answered(operator: &str) -> MangoScenario {
    MangoScenario::InboundAnswered {
        caller: s("79161234567"),
        line: s("74951234567"),
        operator: s(operator),
    }
}

fn scenarios() -> Vec<MangoScenario> {
    MangoScenario::examples()
}

/// What identifies a webhook apart from ids and times: path, state, code, seq, transfer.
fn shape(path: &str, json: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(json)?;
    Ok(format!(
        "{path} {} {} seq={} {}",
        v.get("call_state")
            .or(v.get("recording_state"))
            .map(ToString::to_string)
            .unwrap_or_default(),
        v.get("disconnect_reason")
            .or(v.get("result"))
            .or(v.get("completion_code"))
            .map(ToString::to_string)
            .unwrap_or_default(),
        v.get("seq").map(ToString::to_string).unwrap_or_default(),
        v.get("transfer")
            .map(ToString::to_string)
            .unwrap_or_default(),
    ))
}

fn calls(got: &[Got]) -> Vec<CallLeg> {
    got.iter()
        .filter_map(|g| match &g.hook {
            Webhook::Call(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

/// (state, reason) of every event of one leg.
fn leg_states(got: &[Got], call_id: &str) -> Vec<(LegState, Option<u32>)> {
    calls(got)
        .into_iter()
        .filter(|c| c.call_id == call_id)
        .map(|c| (c.state, c.disconnect_reason.map(|r| r.0)))
        .collect()
}

/// Call ids of `entry` in order of appearance.
fn legs_of(got: &[Got], entry: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in calls(got).into_iter().filter(|c| c.entry_id == entry) {
        if !out.contains(&c.call_id) {
            out.push(c.call_id);
        }
    }
    out
}

fn summary_of(got: &[Got], entry: &str) -> Result<Summary> {
    got.iter()
        .find_map(|g| match &g.hook {
            Webhook::Summary(s) if s.entry_id == entry => Some(s.clone()),
            _ => None,
        })
        .context("no summary")
}

/// Waits for the first event of `entry` in `state`; returns that leg's call id.
async fn leg_in_state(inbox: &Inbox, entry: &str, state: LegState, ext: &str) -> Result<String> {
    let got = inbox
        .until(&format!("{ext} {state:?}"), |g| {
            calls(g).iter().any(|c| {
                c.entry_id == entry && c.state == state && c.to.extension.as_deref() == Some(ext)
            })
        })
        .await?;
    calls(&got)
        .into_iter()
        .find(|c| c.entry_id == entry && c.state == state && c.to.extension.as_deref() == Some(ext))
        .map(|c| c.call_id)
        .context("leg")
}

#[tokio::test]
async fn inbound_answered_over_the_wire() -> Result<()> {
    let lab = Lab::start(quiet()).await?;
    let entry = lab.fake.play(&answered("101"));
    let live = lab.fake.live_calls();
    ensure!(live.len() == 1 && live[0].entry_id == entry, "{live:?}");
    // One live leg: the IVR leg, or the operator's once routed (never both).
    assert_eq!(live[0].legs.len(), 1, "{live:?}");
    let got = lab.inbox.summary(&entry).await?;
    assert!(lab.inbox.bad().is_empty(), "{:?}", lab.inbox.bad());
    let legs = legs_of(&got, &entry);
    assert_eq!(legs.len(), 2);
    assert_eq!(
        leg_states(&got, &legs[0]),
        [
            (LegState::Appeared, None),
            (LegState::Disconnected, Some(1100))
        ]
    );
    assert_eq!(
        leg_states(&got, &legs[1]),
        [
            (LegState::Appeared, None),
            (LegState::Connected, None),
            (LegState::Disconnected, Some(1110))
        ]
    );
    let op = &calls(&got)[2];
    assert_eq!(op.to.extension.as_deref(), Some("101"));
    assert_eq!(op.to.acd_group.as_deref(), Some("500"));
    assert_eq!(
        op.from.taken_from_call_id.as_deref(),
        Some(legs[0].as_str())
    );
    assert_eq!(op.from.number.as_deref(), Some("79161234567"));
    let sum = summary_of(&got, &entry)?;
    assert!(sum.talk_time.is_some_and(|t| t > 0), "{sum:?}");
    assert_eq!(sum.entry_result, Some(1));
    assert_eq!(sum.call_direction, Some(1));
    assert_eq!(sum.line_number.as_deref(), Some("74951234567"));
    assert_eq!(got.last().map(|g| g.path.as_str()), Some("events/summary"));
    // What the fake logged as delivered is what arrived, in order; nothing failed.
    let arrived: Vec<String> = got.iter().map(|g| g.json.clone()).collect();
    assert_eq!(delivered(&lab.fake, arrived.len()).await?, arrived);
    assert!(lab.fake.failed_deliveries().is_empty());
    assert!(lab.fake.live_calls().is_empty());
    lab.fake.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn played_scenarios_send_what_render_returns() -> Result<()> {
    let lab = Lab::start(FakeMangoConfig {
        sim_second: Duration::from_millis(4),
        ..quiet()
    })
    .await?;
    for sc in scenarios() {
        let before = lab.inbox.got().len();
        let expected = render(&sc, &Ids::new(42), 1_700_000_000);
        let entry = lab.fake.play(&sc);
        let got = lab
            .inbox
            .until(&format!("{sc:?}"), |g| g.len() >= before + expected.len())
            .await?;
        let new = &got[before..];
        let want: Vec<String> = expected
            .iter()
            .map(|d| shape(&d.path, &d.json))
            .collect::<Result<_>>()?;
        let have: Vec<String> = new
            .iter()
            .map(|g| shape(&g.path, &g.json))
            .collect::<Result<_>>()?;
        assert_eq!(have, want, "{sc:?}");
        for g in new {
            if let Some(e) = g.hook.entry_id() {
                assert_eq!(e, entry, "{sc:?}");
            }
        }
        // Nothing more for this call.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(lab.inbox.got().len(), before + expected.len(), "{sc:?}");
    }
    assert!(lab.inbox.bad().is_empty(), "{:?}", lab.inbox.bad());
    Ok(())
}

#[tokio::test]
async fn a_bad_signature_gets_3102_then_the_key_is_locked() -> Result<()> {
    let lab = Lab::start(FakeMangoConfig {
        lockout_window: Duration::from_millis(400),
        ..quiet()
    })
    .await?;
    let json = r#"{"command_id":"h-1","call_id":"MToxMA=="}"#;
    let forged = format!(
        "vpbx_api_key={}&sign={}&json={}",
        lab.fake.credentials().key(),
        "0".repeat(64),
        "%7B%7D"
    );
    let (status, body) = lab
        .send_signed("commands/call/hangup", forged.clone())
        .await?;
    assert_eq!((status, body.as_str()), (420, r#"{"code":3102}"#));
    let (status, body) = lab.send_signed("commands/call/hangup", forged).await?;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains(r#""status":401"#), "{body}");
    // Everything is refused during the lock-out, even a good request.
    let (status, _) = lab.send("commands/call/hangup", json).await?;
    assert_eq!(status, 401);
    tokio::time::sleep(Duration::from_millis(450)).await;
    let (status, body) = lab.send("commands/call/hangup", json).await?;
    assert_eq!((status, body.as_str()), (200, r#"{"result":4101}"#));
    let statuses: Vec<u16> = lab.fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [420, 401, 401, 200]);
    Ok(())
}

#[tokio::test]
async fn malformed_requests_get_their_3xxx_codes() -> Result<()> {
    let lab = Lab::start(FakeMangoConfig {
        lockout_window: Duration::ZERO,
        ..quiet()
    })
    .await?;
    let other = Credentials::new("someone-else", "salt");
    let (status, body) = lab
        .send_signed("commands/sms", SignedForm::encode(&other, "{}"))
        .await?;
    assert_eq!((status, body.as_str()), (420, r#"{"code":3105}"#));
    let (status, body) = lab
        .send_signed("commands/sms", "json=%7B%7D".to_owned())
        .await?;
    assert_eq!((status, body.as_str()), (420, r#"{"code":3103}"#));
    let (status, body) = lab.send("commands/sms", "{not json").await?;
    assert_eq!((status, body.as_str()), (420, r#"{"code":3400}"#));
    let (status, body) = lab
        .send(
            "commands/callback",
            r#"{"command_id":"c","from":{"extension":"101"}}"#,
        )
        .await?;
    assert_eq!((status, body.as_str()), (420, r#"{"code":3103}"#));
    let (status, body) = lab
        .send(
            "commands/call/hangup",
            r#"{"command_id":"c","call_id":{"x":1}}"#,
        )
        .await?;
    assert_eq!((status, body.as_str()), (420, r#"{"code":3400}"#));
    let resp = lab
        .http
        .get(format!("{}config/users/request", lab.fake.base_url()))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 420);
    assert_eq!(resp.text().await?, r#"{"code":3101}"#);
    let (status, _) = lab.send("commands/nonsense", "{}").await?;
    assert_eq!(status, 404);
    // An unknown employee is a refusal, not a malformed request.
    let (status, body) = lab
        .send(
            "commands/callback",
            r#"{"command_id":"c","from":{"extension":"999"},"to_number":"79161234567"}"#,
        )
        .await?;
    assert_eq!((status, body.as_str()), (200, r#"{"result":3330}"#));
    let logged: Vec<(u16, Option<u32>)> = lab
        .fake
        .requests()
        .iter()
        .map(|r| (r.status, r.code))
        .collect();
    assert_eq!(
        logged,
        [
            (420, Some(3105)),
            (420, Some(3103)),
            (420, Some(3400)),
            (420, Some(3103)),
            (420, Some(3400)),
            (420, Some(3101)),
            (404, None),
            (200, Some(3330))
        ]
    );
    Ok(())
}

#[tokio::test]
async fn rate_limits_answer_429() -> Result<()> {
    let lab = Lab::start(FakeMangoConfig::default()).await?;
    let json = r#"{"command_id":"h","call_id":"MToxMA=="}"#;
    for _ in 0..4 {
        let (status, body) = lab.send("commands/call/hangup", json).await?;
        assert_eq!((status, body.as_str()), (200, r#"{"result":4101}"#));
    }
    let (status, body) = lab.send("commands/call/hangup", json).await?;
    assert_eq!(status, 429);
    assert_eq!(
        body,
        r#"{"name":"Service Unavailable","message":"Rate limit exceeded.","code":0,"status":429}"#
    );
    // Another method has its own budget; a slow one allows 1 per 2 s.
    let (status, _) = lab.send("config/users/request", "{}").await?;
    assert_eq!(status, 200);
    let (status, _) = lab.send("config/users/request", "{}").await?;
    assert_eq!(status, 429);
    Ok(())
}

#[tokio::test]
async fn callback_drives_both_legs_and_posts_the_result() -> Result<()> {
    let phones = BTreeMap::from([
        (
            s("101"),
            PhoneBehaviour::Answers {
                after_s: 2,
                talk_s: None,
            },
        ),
        (
            s("79161234567"),
            PhoneBehaviour::Answers {
                after_s: 3,
                talk_s: Some(10),
            },
        ),
        (s("79035550000"), PhoneBehaviour::Busy),
    ]);
    let lab = Lab::start(FakeMangoConfig { phones, ..quiet() }).await?;
    let (status, body) = lab
        .send(
            "commands/callback",
            r#"{"command_id":"cb-1","from":{"extension":"101"},"to_number":"79161234567","line_number":"74957654321"}"#,
        )
        .await?;
    assert_eq!((status, body.as_str()), (200, r#"{"result":1000}"#));
    let got = lab
        .inbox
        .until("the callback's summary", |g| {
            g.iter().any(|g| g.path == "events/summary")
        })
        .await?;
    let result = got
        .iter()
        .find_map(|g| match &g.hook {
            Webhook::Result(r) if r.command == "callback" => Some(r.clone()),
            _ => None,
        })
        .context("no /result/callback")?;
    assert_eq!(result.command_id.as_deref(), Some("cb-1"));
    assert_eq!(result.result.map(|c| c.0), Some(1000));
    let entry = calls(&got)[0].entry_id.clone();
    let legs = legs_of(&got, &entry);
    assert_eq!(legs.len(), 2);
    assert_eq!(
        leg_states(&got, &legs[0]),
        [
            (LegState::Appeared, None),
            (LegState::Connected, None),
            (LegState::Disconnected, Some(1100))
        ]
    );
    assert_eq!(
        leg_states(&got, &legs[1]),
        [
            (LegState::Appeared, None),
            (LegState::Connected, None),
            (LegState::Disconnected, Some(1120))
        ]
    );
    let cs = calls(&got);
    assert!(cs.iter().all(|c| c.command_id.as_deref() == Some("cb-1")));
    assert_eq!(cs[0].to.extension.as_deref(), Some("101"));
    let second = cs.iter().find(|c| c.call_id == legs[1]).context("leg 2")?;
    assert_eq!(
        second.from.taken_from_call_id.as_deref(),
        Some(legs[0].as_str())
    );
    assert_eq!(second.from.line_number.as_deref(), Some("74957654321"));
    assert_eq!(second.to.number.as_deref(), Some("79161234567"));
    let sum = summary_of(&got, &entry)?;
    assert_eq!(sum.call_direction, Some(2));
    assert_eq!(sum.line_number.as_deref(), Some("74957654321"));
    let (connected, talk) = (
        cs.iter()
            .find(|c| c.call_id == legs[1] && c.state == LegState::Connected)
            .map(|c| c.timestamp),
        sum.talk_time,
    );
    assert_eq!(talk, connected);
    assert_eq!(sum.end_time.zip(talk).map(|(e, t)| e - t), Some(10));

    // A busy number: leg 2 ends 1121, no conversation.
    let before = got.len();
    let (status, _) = lab
        .send(
            "commands/callback",
            r#"{"command_id":"cb-2","from":{"extension":"101"},"to_number":"79035550000"}"#,
        )
        .await?;
    assert_eq!(status, 200);
    let got = lab
        .inbox
        .until("the busy callback's summary", |g| {
            g[before.min(g.len())..]
                .iter()
                .any(|g| g.path == "events/summary")
        })
        .await?;
    let new = &got[before..];
    let entry = calls(new)[0].entry_id.clone();
    let legs = legs_of(new, &entry);
    assert_eq!(
        leg_states(new, &legs[1]),
        [
            (LegState::Appeared, None),
            (LegState::Disconnected, Some(1121))
        ]
    );
    let sum = summary_of(new, &entry)?;
    assert_eq!((sum.talk_time, sum.entry_result), (None, Some(0)));
    assert_eq!(sum.disconnect_reason.map(|c| c.0), Some(1121));
    assert!(lab.inbox.bad().is_empty());
    Ok(())
}

/// Long calls (10 min simulated) so commands find them up.
fn long_calls() -> FakeMangoConfig {
    FakeMangoConfig {
        timings: Timings {
            talk_s: 600,
            ..Timings::default()
        },
        ..quiet()
    }
}

#[tokio::test]
async fn hangup_ends_a_leg_or_answers_4101() -> Result<()> {
    let lab = Lab::start(long_calls()).await?;
    let (status, body) = lab
        .send(
            "commands/call/hangup",
            r#"{"command_id":"h-0","call_id":"bm9wZQ=="}"#,
        )
        .await?;
    assert_eq!((status, body.as_str()), (200, r#"{"result":4101}"#));
    let entry = lab.fake.play(&answered("102"));
    let leg = leg_in_state(&lab.inbox, &entry, LegState::Connected, "102").await?;
    let live = lab.fake.live_calls();
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].legs.len(), 1);
    assert_eq!(
        (live[0].legs[0].call_id.as_str(), live[0].legs[0].state),
        (leg.as_str(), LegState::Connected)
    );
    let hangup = format!(r#"{{"command_id":"h-1","call_id":"{leg}"}}"#);
    let (status, body) = lab.send("commands/call/hangup", &hangup).await?;
    assert_eq!((status, body.as_str()), (200, r#"{"result":1000}"#));
    let got = lab.inbox.summary(&entry).await?;
    assert_eq!(
        leg_states(&got, &leg).last(),
        Some(&(LegState::Disconnected, Some(1181)))
    );
    assert_eq!(
        summary_of(&got, &entry)?.disconnect_reason.map(|c| c.0),
        Some(1181)
    );
    assert!(got.iter().any(|g| matches!(&g.hook,
        Webhook::Result(r) if r.command == "call/hangup" && r.command_id.as_deref() == Some("h-1"))));
    assert!(lab.fake.live_calls().is_empty());
    let (status, body) = lab.send("commands/call/hangup", &hangup).await?;
    assert_eq!((status, body.as_str()), (200, r#"{"result":4101}"#));
    Ok(())
}

#[tokio::test]
async fn recording_hold_transfer_and_sms_commands() -> Result<()> {
    let mut config = long_calls();
    config.phones.insert(
        s("102"),
        PhoneBehaviour::Answers {
            after_s: 2,
            talk_s: None,
        },
    );
    let lab = Lab::start(config).await?;
    let entry = lab.fake.play(&answered("101"));
    let leg = leg_in_state(&lab.inbox, &entry, LegState::Connected, "101").await?;

    // Recording: Started with our command_id; a second start is refused.
    let rec = format!(r#"{{"command_id":"rec-1","call_id":"{leg}","call_party_number":"101"}}"#);
    assert_eq!(
        lab.send("commands/recording/start", &rec).await?,
        (200, s(r#"{"result":1000}"#))
    );
    assert_eq!(
        lab.send("commands/recording/start", &rec).await?,
        (200, s(r#"{"result":4102}"#))
    );
    let got = lab
        .inbox
        .until("recording Started", |g| {
            g.iter().any(
                |g| matches!(&g.hook, Webhook::Recording(r) if r.state == RecordingState::Started),
            )
        })
        .await?;
    let started = got
        .iter()
        .find_map(|g| match &g.hook {
            Webhook::Recording(r) => Some(r.clone()),
            _ => None,
        })
        .context("recording")?;
    assert_eq!(started.command_id.as_deref(), Some("rec-1"));
    assert_eq!(started.call_id.as_deref(), Some(leg.as_str()));
    assert_eq!(started.extension.as_deref(), Some("101"));

    // Hold: OnHold with the initiator marked, then Connected again.
    let hold = format!(r#"{{"command_id":"ho-1","call_id":"{leg}","initiator":"101"}}"#);
    assert_eq!(
        lab.send("commands/call/hold/on", &hold).await?,
        (200, s(r#"{"result":1000}"#))
    );
    let got = lab
        .inbox
        .until("resumed after hold", |g| leg_states(g, &leg).len() >= 4)
        .await?;
    assert_eq!(
        leg_states(&got, &leg)[2..4],
        [(LegState::OnHold, None), (LegState::Connected, None)]
    );
    let on_hold = calls(&got)
        .into_iter()
        .find(|c| c.state == LegState::OnHold)
        .context("OnHold")?;
    assert_eq!(
        (on_hold.to.hold_initiator, on_hold.from.hold_initiator),
        (Some(true), Some(false))
    );

    // Blind transfer to 102.
    let transfer = format!(
        r#"{{"command_id":"tr-1","call_id":"{leg}","method":"blind","to_number":"102","initiator":"101"}}"#
    );
    assert_eq!(
        lab.send("commands/transfer", &transfer).await?,
        (200, s(r#"{"result":1000}"#))
    );
    let new_leg = leg_in_state(&lab.inbox, &entry, LegState::Connected, "102").await?;
    let got = lab.inbox.got();
    assert!(got.iter().any(|g| matches!(&g.hook,
        Webhook::Result(r) if r.command == "transfer" && r.command_id.as_deref() == Some("tr-1"))));
    let old_end = calls(&got)
        .into_iter()
        .find(|c| c.call_id == leg && c.state == LegState::Disconnected)
        .context("old leg end")?;
    assert_eq!(old_end.disconnect_reason.map(|c| c.0), Some(1120));
    assert_eq!(old_end.from.was_transferred, Some(true));
    let appeared = calls(&got)
        .into_iter()
        .find(|c| c.call_id == new_leg)
        .context("new leg")?;
    assert_eq!(appeared.transfer, Some(TransferMark::Blind));
    assert_eq!(appeared.command_id.as_deref(), Some("tr-1"));
    assert_eq!(
        appeared.from.taken_from_call_id.as_deref(),
        Some(leg.as_str())
    );
    // The recording of 101 completed when 101 left.
    assert!(got.iter().any(|g| matches!(&g.hook,
        Webhook::Recording(r) if r.state == RecordingState::Completed && r.completion_code.map(|c| c.0) == Some(1000))));

    // Hang the new leg up: the call ends, then the recording is in the cloud.
    let hangup = format!(r#"{{"command_id":"h-9","call_id":"{new_leg}"}}"#);
    assert_eq!(
        lab.send("commands/call/hangup", &hangup).await?,
        (200, s(r#"{"result":1000}"#))
    );
    let got = lab
        .inbox
        .until("record/added", |g| {
            g.iter().any(|g| matches!(&g.hook, Webhook::RecordAdded(_)))
        })
        .await?;
    let summary_at = got
        .iter()
        .position(|g| g.path == "events/summary")
        .context("summary")?;
    let added_at = got
        .iter()
        .position(|g| g.path == "events/record/added")
        .context("added")?;
    assert!(summary_at < added_at);
    let Webhook::RecordAdded(added) = &got[added_at].hook else {
        bail!("not record/added")
    };
    assert_eq!(added.recording_id, started.recording_id);
    let sum = summary_of(&got, &entry)?;
    assert_eq!(sum.to.extension.as_deref(), Some("102"));

    // SMS: accepted, then a delivery report.
    let sms = r#"{"command_id":"sms-1","text":"Привет","from_extension":"101","to_number":"79161234567"}"#;
    assert_eq!(
        lab.send("commands/sms", sms).await?,
        (200, s(r#"{"result":1000}"#))
    );
    let got = lab
        .inbox
        .until("/events/sms", |g| g.iter().any(|g| g.path == "events/sms"))
        .await?;
    assert!(got.iter().any(|g| matches!(&g.hook,
        Webhook::Sms(r) if r.command_id.as_deref() == Some("sms-1") && r.reason.map(|c| c.0) == Some(1000))));
    assert!(got.iter().any(|g| g.path == "result/sms"));
    // route and play on an ended call: 4101.
    let route = format!(r#"{{"command_id":"r","call_id":"{new_leg}","to_number":"103"}}"#);
    assert_eq!(
        lab.send("commands/route", &route).await?,
        (200, s(r#"{"result":4101}"#))
    );
    assert!(lab.inbox.bad().is_empty(), "{:?}", lab.inbox.bad());
    Ok(())
}

#[tokio::test]
async fn a_recording_downloads_once_through_a_302() -> Result<()> {
    let lab = Lab::start(quiet()).await?;
    let entry = lab.fake.play(&MangoScenario::Recorded {
        caller: s("79161234567"),
        line: s("74951234567"),
        operator: s("101"),
    });
    let got = lab
        .inbox
        .until("record/added", |g| {
            g.iter().any(|g| g.path == "events/record/added")
        })
        .await?;
    let recording_id = got
        .iter()
        .find_map(|g| match &g.hook {
            Webhook::RecordAdded(r) if r.entry_id == entry => Some(r.recording_id.clone()),
            _ => None,
        })
        .context("recording id")?;
    let ask = format!(r#"{{"recording_id":"{recording_id}","action":"download"}}"#);
    let resp = lab
        .http
        .post(format!("{}queries/recording/post", lab.fake.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(SignedForm::encode(lab.fake.credentials(), &ask))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp
        .headers()
        .get("location")
        .context("no Location")?
        .to_str()?
        .to_owned();
    assert!(
        location.starts_with(&format!("http://{}/files/", lab.fake.addr())),
        "{location}"
    );
    let file = lab.http.get(&location).send().await?;
    assert_eq!(file.status().as_u16(), 200);
    assert_eq!(
        file.headers().get("content-type").map(|v| v.as_bytes()),
        Some(&b"audio/mpeg"[..])
    );
    let bytes = file.bytes().await?;
    assert_eq!(bytes.len(), 200_000);
    assert_eq!(
        bytes.as_ref(),
        recording_audio(&recording_id, 200_000).as_slice()
    );
    let again = lab.http.get(&location).send().await?;
    assert_eq!(again.status().as_u16(), 404);

    // A client that follows redirects gets the bytes straight away, from a new link.
    let follows = loopback_client_builder()?.build()?;
    let resp = follows
        .post(format!("{}queries/recording/post", lab.fake.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(SignedForm::encode(lab.fake.credentials(), &ask))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.bytes().await?.len(), 200_000);

    let unknown = r#"{"recording_id":"MToxMDAxMjM0NTo5OTk6MQ==","action":"play"}"#;
    assert_eq!(
        lab.send("queries/recording/post", unknown).await?,
        (200, s(r#"{"result":3320}"#))
    );
    Ok(())
}

#[tokio::test]
async fn stats_answer_204_then_the_csv() -> Result<()> {
    let lab = Lab::start(FakeMangoConfig {
        sim_second: Duration::from_millis(5),
        lockout_window: Duration::ZERO,
        ..quiet()
    })
    .await?;
    let answered_entry = lab.fake.play(&answered("101"));
    let busy_entry = lab.fake.play(&MangoScenario::OutboundBusy {
        operator: s("102"),
        number: s("79035550101"),
    });
    lab.inbox.summary(&answered_entry).await?;
    lab.inbox.summary(&busy_entry).await?;
    let now = lab.fake.now_unix();
    let fields = "entry_id,start,answer,disconnect_reason,to_extension,to_number,records";
    let ask = format!(
        r#"{{"date_from":"{}","date_to":"{}","fields":"{fields}","request_id":"r-1"}}"#,
        now - 3600,
        now + 86_400
    );
    let (status, body) = lab.send("stats/request", &ask).await?;
    assert_eq!(status, 200, "{body}");
    let key: serde_json::Value = serde_json::from_str(&body)?;
    let key = key["key"].as_str().context("no key")?.to_owned();
    assert!(
        key.contains('+') && key.contains('/') && key.contains('='),
        "{key}"
    );
    let poll = format!(r#"{{"key":"{key}"}}"#);
    let (status, body) = lab.send("stats/result", &poll).await?;
    assert_eq!((status, body.as_str()), (204, ""));
    let (status, csv) = lab.send("stats/result", &poll).await?;
    assert_eq!(status, 200);
    assert!(
        csv.ends_with("\r\n") && csv.matches("\r\n").count() == 2,
        "{csv:?}"
    );
    let rows = stats::parse(&csv, fields)?;
    assert_eq!(rows.len(), 2);
    let row = |entry: &str| rows.iter().find(|r| r.get("entry_id") == Some(entry));
    let a = row(&answered_entry).context("answered row")?;
    assert!(a.int("answer").is_some_and(|t| t > 0));
    assert_eq!(a.int("disconnect_reason"), Some(1110));
    assert_eq!(a.get("to_extension"), Some("101"));
    assert!(a.records().is_empty());
    let b = row(&busy_entry).context("busy row")?;
    assert_eq!(
        (b.int("answer"), b.int("disconnect_reason")),
        (Some(0), Some(1121))
    );
    assert_eq!(b.get("to_number"), Some("79035550101"));
    assert_eq!(b.get("to_extension"), Some(""));

    let (status, _) = lab.send("stats/result", r#"{"key":"bm9wZQ=="}"#).await?;
    assert_eq!(status, 404);
    // A window before the calls: an empty report.
    let old = format!(
        r#"{{"date_from":"{}","date_to":"{}"}}"#,
        now - 90_000,
        now - 86_400
    );
    let (_, body) = lab.send("stats/request", &old).await?;
    let key: serde_json::Value = serde_json::from_str(&body)?;
    let poll = format!(r#"{{"key":"{}"}}"#, key["key"].as_str().context("key")?);
    assert_eq!(lab.send("stats/result", &poll).await?.0, 204);
    assert_eq!(lab.send("stats/result", &poll).await?, (200, String::new()));
    // More than a month: refused.
    let wide = format!(
        r#"{{"date_from":"{}","date_to":"{}"}}"#,
        now - 40 * 86_400,
        now
    );
    assert_eq!(
        lab.send("stats/request", &wide).await?,
        (420, s(r#"{"code":3111}"#))
    );
    Ok(())
}

#[tokio::test]
async fn users_come_from_the_configured_employees() -> Result<()> {
    let lab = Lab::start(quiet()).await?;
    let (status, body) = lab.send("config/users/request", "{}").await?;
    assert_eq!(status, 200);
    let all: calldesk_mango_proto::command::UsersResponse = serde_json::from_str(&body)?;
    let exts: Vec<Option<&str>> = all
        .users
        .iter()
        .map(|u| u.telephony.extension.as_deref())
        .collect();
    assert_eq!(exts, [Some("101"), Some("102"), Some("103")]);
    assert!(
        all.users[0]
            .addresses()
            .contains(&s("sip:ivanov@vpbx400000000.mangosip.ru"))
    );
    let (_, body) = lab
        .send("config/users/request", r#"{"extension":"102"}"#)
        .await?;
    let one: calldesk_mango_proto::command::UsersResponse = serde_json::from_str(&body)?;
    assert_eq!(one.users.len(), 1);
    assert_eq!(one.users[0].general.name.as_deref(), Some("Петров Пётр"));
    Ok(())
}

#[tokio::test]
async fn duplicated_mode_sends_every_webhook_twice() -> Result<()> {
    let lab = Lab::start(FakeMangoConfig {
        delivery: DeliveryMode::Duplicated,
        sim_second: Duration::from_millis(5),
        ..quiet()
    })
    .await?;
    let n = render(&answered("101"), &Ids::new(1), 0).len();
    lab.fake.play(&answered("101"));
    let got = lab
        .inbox
        .until("every webhook twice", |g| g.len() >= 2 * n)
        .await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    let got_now = lab.inbox.got();
    assert_eq!(got_now.len(), 2 * n);
    for pair in got.chunks(2) {
        assert_eq!(pair[0].json, pair[1].json);
        assert_eq!(pair[0].path, pair[1].path);
    }
    let distinct: std::collections::BTreeSet<&str> = got.iter().map(|g| g.json.as_str()).collect();
    assert_eq!(distinct.len(), n);
    assert_eq!(delivered(&lab.fake, 2 * n).await?.len(), 2 * n);
    Ok(())
}

#[tokio::test]
async fn shuffled_mode_delivers_the_same_set_in_another_order() -> Result<()> {
    let lab = Lab::start(FakeMangoConfig {
        delivery: DeliveryMode::Shuffled { seed: 7 },
        sim_second: Duration::from_millis(1),
        shuffle_max_delay: Duration::from_millis(200),
        ..quiet()
    })
    .await?;
    let sc = MangoScenario::Recorded {
        caller: s("79161234567"),
        line: s("74951234567"),
        operator: s("101"),
    };
    let expected = render(&sc, &Ids::new(1), 0);
    lab.fake.play(&sc);
    let got = lab
        .inbox
        .until("all webhooks", |g| g.len() >= expected.len())
        .await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(lab.inbox.got().len(), expected.len());
    let want: Vec<String> = expected
        .iter()
        .map(|d| shape(&d.path, &d.json))
        .collect::<Result<_>>()?;
    let have: Vec<String> = got
        .iter()
        .map(|g| shape(&g.path, &g.json))
        .collect::<Result<_>>()?;
    assert_ne!(have, want, "shuffled delivery kept the order");
    let (mut a, mut b) = (have.clone(), want.clone());
    a.sort();
    b.sort();
    assert_eq!(a, b);
    Ok(())
}

#[tokio::test]
async fn a_down_target_is_recorded_not_fatal() -> Result<()> {
    let fake = FakeMango::start(FakeMangoConfig {
        sim_second: Duration::from_millis(2),
        ..quiet()
    })
    .await?;
    let busy = MangoScenario::OutboundBusy {
        operator: s("101"),
        number: s("79161234567"),
    };
    // No target yet.
    fake.play(&busy);
    // A port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await?;
    let port = closed.local_addr()?.port();
    drop(closed);
    let deadline = tokio::time::Instant::now() + WAIT;
    while fake.failed_deliveries().len() < 3 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            fake.failed_deliveries()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    fake.set_target(format!("http://127.0.0.1:{port}/mango/"));
    fake.play(&busy);
    while fake.failed_deliveries().len() < 6 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            fake.failed_deliveries()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let failed = fake.failed_deliveries();
    assert!(
        failed[0].reason.contains("no target"),
        "{}",
        failed[0].reason
    );
    assert!(
        failed[3].reason.contains(&port.to_string()),
        "{}",
        failed[3].reason
    );
    assert_eq!(failed[5].path, "events/summary");
    assert!(fake.delivered().is_empty());
    // Still serving.
    let http = loopback_client_builder()?.build()?;
    let resp = http
        .post(format!("{}config/users/request", fake.base_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(SignedForm::encode(fake.credentials(), "{}"))
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 200);
    fake.shutdown().await;
    Ok(())
}
