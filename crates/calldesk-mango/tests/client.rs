//! The command client against a fake Mango on a loopback socket.

mod support;

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use calldesk_mango::{
    Code, MangoClient, MangoError, StatsFilter, StatsParty, TransferMethod, client::rate_period,
};
use calldesk_mango_proto::command::RateClass;
use support::{FakeMango, RATE_LIMIT_BODY, Recorded, Reply, json, ok, redirect};
use tokio::io::AsyncWrite;

fn paths(requests: &[Recorded]) -> Vec<&str> {
    requests.iter().map(|r| r.path.as_str()).collect()
}

#[tokio::test]
async fn each_command_sends_its_path_and_exact_json() -> anyhow::Result<()> {
    let fake = FakeMango::start(|_| ok()).await?;
    let client = fake.client()?;
    let call = "MToxMDAxMjM0NTo1MDY6OTg3NjU0MzU1";

    let mut expected = Vec::new();
    let id = client
        .callback("101", "+79161234567", Some("74951234567"))
        .await?;
    expected.push((
        "commands/callback",
        format!(
            r#"{{"command_id":"{id}","from":{{"extension":"101"}},"to_number":"79161234567","line_number":"74951234567"}}"#
        ),
    ));
    let id = client.callback("0511", "102", None).await?;
    expected.push((
        "commands/callback",
        format!(r#"{{"command_id":"{id}","from":{{"extension":"0511"}},"to_number":"102"}}"#),
    ));
    let id = client
        .callback_group("79161234567", "500", "74951234567")
        .await?;
    expected.push((
        "commands/callback_group",
        format!(
            r#"{{"command_id":"{id}","from":"79161234567","to":"500","line_number":"74951234567"}}"#
        ),
    ));
    let id = client
        .hangup("MToxMDA5Njg3NzoyMDE6MTI0MTg3Nzk3NQ==")
        .await?;
    expected.push((
        "commands/call/hangup",
        format!(r#"{{"command_id":"{id}","call_id":"MToxMDA5Njg3NzoyMDE6MTI0MTg3Nzk3NQ=="}}"#),
    ));
    let id = client.route(call, "102").await?;
    expected.push((
        "commands/route",
        format!(r#"{{"command_id":"{id}","call_id":"{call}","to_number":"102"}}"#),
    ));
    let id = client
        .transfer(call, TransferMethod::Blind, "+74951234567", "101")
        .await?;
    expected.push((
        "commands/transfer",
        format!(
            r#"{{"command_id":"{id}","call_id":"{call}","method":"blind","to_number":"74951234567","initiator":"101"}}"#
        ),
    ));
    let id = client.hold_on(call, "101").await?;
    expected.push((
        "commands/call/hold/on",
        format!(r#"{{"command_id":"{id}","call_id":"{call}","initiator":"101"}}"#),
    ));
    let id = client.recording_start(call, "101").await?;
    expected.push((
        "commands/recording/start",
        format!(r#"{{"command_id":"{id}","call_id":"{call}","call_party_number":"101"}}"#),
    ));
    let id = client.play_start(call, 1_000_237_176, Some(20)).await?;
    expected.push((
        "commands/play/start",
        format!(
            r#"{{"command_id":"{id}","call_id":"{call}","internal_id":1000237176,"after_play_time":20}}"#
        ),
    ));
    let id = client
        .sms(
            "Привет & до встречи",
            "101",
            "+79161234567",
            Some("PRO-TAXI"),
        )
        .await?;
    expected.push((
        "commands/sms",
        format!(
            r#"{{"command_id":"{id}","text":"Привет & до встречи","from_extension":"101","to_number":"79161234567","sms_sender":"PRO-TAXI"}}"#
        ),
    ));

    let requests = fake.requests()?;
    let got: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.path.as_str(), r.json.as_str()))
        .collect();
    let want: Vec<(&str, &str)> = expected.iter().map(|(p, j)| (*p, j.as_str())).collect();
    assert_eq!(got, want);
    // Command ids are UUID v4, one per command.
    let ids: std::collections::HashSet<String> = requests
        .iter()
        .filter_map(|r| {
            serde_json::from_str::<serde_json::Value>(&r.json)
                .ok()?
                .get("command_id")?
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(ids.len(), requests.len());
    for id in &ids {
        let u = uuid::Uuid::parse_str(id)?;
        assert_eq!(u.get_version_num(), 4, "{id}");
    }
    Ok(())
}

#[tokio::test]
async fn queries_send_their_path_and_exact_json() -> anyhow::Result<()> {
    let fake = FakeMango::start(|r| match r.path.as_str() {
        "config/users/request" => json(200, r#"{"users":[]}"#),
        "stats/request" => json(200, r#"{"key":"B+Dv/k=="}"#),
        _ => json(404, "{}"),
    })
    .await?;
    let client = fake.client()?;
    assert!(client.users(None).await?.is_empty());
    let filter = StatsFilter {
        to: Some(StatsParty {
            extension: "101".into(),
            number: String::new(),
        }),
        ..StatsFilter::default()
    };
    let key = client
        .stats_request(
            1_716_757_200,
            1_716_843_599,
            "start,finish,entry_id",
            &filter,
        )
        .await?;
    assert_eq!(key, "B+Dv/k==");
    let requests = fake.requests()?;
    let got: Vec<(&str, &str)> = requests
        .iter()
        .map(|r| (r.path.as_str(), r.json.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("config/users/request", "{}"),
            (
                "stats/request",
                r#"{"date_from":"1716757200","date_to":"1716843599","fields":"start,finish,entry_id","to":{"extension":"101","number":""}}"#
            ),
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_bad_request_is_never_retried_and_says_what_to_fix() -> anyhow::Result<()> {
    // The fake answers a wrong signature as Mango does: 3102.
    let fake = FakeMango::start(|_| ok()).await?;
    let mut config = fake.config();
    config.credentials = calldesk_mango::Credentials::new(support::KEY, "the-wrong-salt");
    let client = MangoClient::new(config)?;
    // A query: even queries are not retried on 3xxx.
    let err = client
        .users(None)
        .await
        .err()
        .context("expected an error")?;
    match &err {
        MangoError::BadRequest { code, action, .. } => {
            assert_eq!(*code, Code(3102));
            assert_eq!(*action, "config/users/request");
        }
        other => bail!("expected BadRequest, got {other:?}"),
    }
    assert!(
        err.to_string().contains("check the API key and salt"),
        "{err}"
    );
    assert_eq!(
        fake.bad_requests().len(),
        1,
        "exactly one request reached Mango"
    );

    // An explicit 3xxx answer with an HTTP error status (D17 used 420), with field codes.
    let fake =
        FakeMango::start(|_| json(420, r#"{"result":3100,"fields":{"to_number":3104}}"#)).await?;
    let err = fake
        .client()?
        .callback("101", "79161234567", None)
        .await
        .err()
        .context("expected an error")?;
    assert!(
        matches!(
            err,
            MangoError::BadRequest {
                code: Code(3100),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("to_number"), "{err}");
    assert_eq!(fake.requests()?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn unauthorized_locks_the_key_and_later_requests_fail_locally() -> anyhow::Result<()> {
    let fake = FakeMango::start(|_| json(401, r#"{"result":3105}"#)).await?;
    let client = fake.client()?;
    let err = client
        .hangup("call-1")
        .await
        .err()
        .context("expected an error")?;
    let MangoError::LockedOut { retry_after } = err else {
        bail!("expected LockedOut, got {err:?}");
    };
    assert!(retry_after > Duration::from_secs(100), "{retry_after:?}");
    assert_eq!(fake.requests()?.len(), 1);
    // Refused locally, whatever the request, and by clones too: nothing reaches Mango.
    for _ in 0..3 {
        let err = client.clone().users(None).await.err();
        assert!(matches!(err, Some(MangoError::LockedOut { .. })), "{err:?}");
    }
    let err = client.callback("101", "102", None).await.err();
    assert!(matches!(err, Some(MangoError::LockedOut { .. })), "{err:?}");
    assert_eq!(fake.requests()?.len(), 1, "no request sent while locked");
    assert!(client.locked_out_for().is_some());
    Ok(())
}

#[tokio::test]
async fn a_lock_with_retry_after_passes() -> anyhow::Result<()> {
    let fake = FakeMango::start(|r| {
        if r.nth_on_path == 1 {
            let mut reply = json(401, "{}");
            reply.response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
            reply
        } else {
            ok()
        }
    })
    .await?;
    let client = fake.client()?;
    let err = client.hangup("call-1").await.err();
    assert!(
        matches!(err, Some(MangoError::LockedOut { retry_after }) if retry_after <= Duration::from_secs(1)),
        "{err:?}"
    );
    assert!(matches!(
        client.hangup("call-1").await,
        Err(MangoError::LockedOut { .. })
    ));
    assert_eq!(fake.requests()?.len(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    client.hangup("call-1").await?;
    assert_eq!(fake.requests()?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn rate_limit_answers_are_retried_with_backoff() -> anyhow::Result<()> {
    let fake = FakeMango::start(|r| {
        if r.nth_on_path <= 2 {
            json(429, RATE_LIMIT_BODY)
        } else {
            ok()
        }
    })
    .await?;
    // A command: a 429 was not executed, so re-sending it is safe.
    fake.client()?.hangup("call-1").await?;
    let requests = fake.requests()?;
    assert_eq!(requests.len(), 3);
    assert!(
        requests.iter().all(|r| r.json == requests[0].json),
        "the same command each time"
    );

    // Still limited after every retry: RateLimited, after 1 + max_retries attempts.
    let fake = FakeMango::start(|_| json(429, RATE_LIMIT_BODY)).await?;
    let mut config = fake.config();
    config.max_retries = 2;
    let err = MangoClient::new(config)?.hangup("call-1").await.err();
    assert!(
        matches!(err, Some(MangoError::RateLimited { attempts: 3, .. })),
        "{err:?}"
    );
    assert_eq!(fake.requests()?.len(), 3);
    Ok(())
}

#[tokio::test]
async fn server_errors_are_retried_for_queries_only() -> anyhow::Result<()> {
    let users = r#"{"users":[{"general":{"name":"A"},"telephony":{"extension":"101"}}]}"#;
    let fake = FakeMango::start(move |r| match (r.path.as_str(), r.nth_on_path) {
        ("config/users/request", 1) => json(200, r#"{"result":5003}"#),
        ("config/users/request", _) => json(200, users),
        _ => json(200, r#"{"result":5003}"#),
    })
    .await?;
    let client = fake.client()?;
    // A query: retried.
    let got = client.users(None).await?;
    assert_eq!(got.len(), 1);
    assert_eq!(fake.requests()?.len(), 2);
    // A command: Mango may have acted on it, so it is never re-sent.
    let err = client.hangup("call-1").await.err();
    assert!(
        matches!(
            err,
            Some(MangoError::Server {
                code: Some(Code(5003)),
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(
        paths(&fake.requests()?),
        [
            "config/users/request",
            "config/users/request",
            "commands/call/hangup"
        ]
    );

    // HTTP 503 without a code: a query is retried until the retries run out.
    let fake = FakeMango::start(|_| json(503, "")).await?;
    let err = fake.client()?.users(None).await.err();
    assert!(
        matches!(
            err,
            Some(MangoError::Server {
                status: 503,
                code: None,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(fake.requests()?.len(), 4);
    Ok(())
}

#[tokio::test]
async fn refusals_are_typed_and_not_retried() -> anyhow::Result<()> {
    let fake = FakeMango::start(|_| json(200, r#"{"result":"4101","command_id":"x"}"#)).await?;
    let err = fake.client()?.hangup("call-1").await.err();
    let Some(
        err @ MangoError::Rejected {
            code: Code(4101), ..
        },
    ) = err
    else {
        bail!("expected Rejected 4101, got {err:?}");
    };
    assert!(err.to_string().contains("already ended"), "{err}");
    assert_eq!(fake.requests()?.len(), 1);

    // Something that is not JSON where JSON is expected.
    let fake = FakeMango::start(|_| {
        axum::response::IntoResponse::into_response("<html>proxy login</html>").into()
    })
    .await?;
    let err = fake.client()?.hangup("call-1").await.err();
    assert!(matches!(err, Some(MangoError::BadResponse(_))), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn requests_of_one_class_are_spaced_on_arrival() -> anyhow::Result<()> {
    let fake = FakeMango::start(|r| match r.path.as_str() {
        "config/users/request" => json(200, r#"{"users":[]}"#),
        _ => ok(),
    })
    .await?;
    let client = fake.client()?;
    // Slow class (1 per 2 s): both wait, neither fails.
    let other = client.clone();
    let (a, b) = tokio::join!(client.users(None), other.users(Some("101")));
    a?;
    b?;
    // Call class (4 per second), concurrently with nothing else.
    client.hangup("c1").await?;
    client.hangup("c2").await?;
    let requests = fake.requests()?;
    let at = |path: &str| -> Vec<Instant> {
        requests
            .iter()
            .filter(|r| r.path == path)
            .map(|r| r.at)
            .collect()
    };
    let users = at("config/users/request");
    let hangups = at("commands/call/hangup");
    ensure!(users.len() == 2 && hangups.len() == 2, "{requests:?}");
    let gap = users[1].duration_since(users[0]);
    assert!(gap >= Duration::from_secs(2), "Slow requests {gap:?} apart");
    let gap = hangups[1].duration_since(hangups[0]);
    assert!(
        gap >= Duration::from_millis(250),
        "Call requests {gap:?} apart"
    );
    assert!(rate_period(RateClass::Slow) >= Duration::from_secs(2));
    Ok(())
}

#[tokio::test]
async fn users_keep_leading_zero_extensions() -> anyhow::Result<()> {
    let body = r#"{"users":[
        {"general":{"name":"Иванов Иван","user_id":300052407,"sips":[{"number":"ivanov@vpbx400000000.mangosip.ru"}]},
         "telephony":{"extension":"0511","outgoingline":"74951234567","numbers":[
            {"number":"sip:ivanov@vpbx400000000.mangosip.ru","protocol":"sip","order":0,"wait_sec":120,"status":"on","schedule":[]},
            {"number":"79161112233","protocol":"tel","order":"1","wait_sec":"30","status":"on"}],"dial_alg":1},
         "groups":[10048964]},
        {"general":{"name":"Петров"},"telephony":{"extension":102}}]}"#;
    let fake = FakeMango::start(move |_| json(200, body)).await?;
    let users = fake.client()?.users(Some("0511")).await?;
    assert_eq!(users.len(), 2);
    assert_eq!(users[0].telephony.extension.as_deref(), Some("0511"));
    assert_eq!(users[0].general.user_id.as_deref(), Some("300052407"));
    assert_eq!(users[0].general.name.as_deref(), Some("Иванов Иван"));
    assert_eq!(users[0].telephony.numbers.len(), 2);
    assert!(
        users[0]
            .addresses()
            .contains(&"sip:ivanov@vpbx400000000.mangosip.ru".to_owned())
    );
    assert_eq!(users[1].telephony.extension.as_deref(), Some("102"));
    assert_eq!(fake.requests()?[0].json, r#"{"extension":"0511"}"#);

    let fake = FakeMango::start(|_| json(200, r#"{"users":"nope"}"#)).await?;
    let err = fake.client()?.users(None).await.err();
    assert!(matches!(err, Some(MangoError::BadResponse(_))), "{err:?}");
    Ok(())
}

#[tokio::test]
async fn stats_poll_until_the_report_is_ready() -> anyhow::Result<()> {
    let csv = "[];1481630614;1481630633;1481630614;131;sip:a.mango@domain.mangosip.ru;;sip:user2@domain.mangosip.ru;1110;;abonent;MTA=\r\n\
               [MToxMA==,MToxMQ==];1;2;0;;79161234567;101;;1111;74951234567;queue;MTE=\r\n";
    let fake = FakeMango::start(move |r| match (r.path.as_str(), r.nth_on_path) {
        ("stats/request", _) => json(200, r#"{"key":"B+Dv/xY=="}"#),
        ("stats/result", 1 | 2) => axum::http::StatusCode::NO_CONTENT.into_response_reply(),
        ("stats/result", _) => Reply::from(axum::response::IntoResponse::into_response((
            [(axum::http::header::CONTENT_TYPE, "text/csv")],
            csv,
        ))),
        _ => json(404, "{}"),
    })
    .await?;
    let client = fake.client()?;
    let fields = calldesk_mango_proto::stats::DEFAULT_FIELDS;
    let started = Instant::now();
    let rows = client
        .stats(
            1_716_757_200,
            1_716_843_599,
            fields,
            &StatsFilter::default(),
        )
        .await?;
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get("from_extension"), Some("131"));
    assert_eq!(rows[1].records(), ["MToxMA==", "MToxMQ=="]);
    assert_eq!(rows[1].get("entry_id"), Some("MTE="));
    let requests = fake.requests()?;
    assert_eq!(
        paths(&requests),
        [
            "stats/request",
            "stats/result",
            "stats/result",
            "stats/result"
        ]
    );
    // The key travels intact (`+`, `/`, `=` survive the form encoding and the signature).
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.json == r#"{"key":"B+Dv/xY=="}"#)
    );
    // Polled at the (test) interval, not faster.
    for pair in requests[1..].windows(2) {
        assert!(pair[1].at.duration_since(pair[0].at) >= Duration::from_millis(50));
    }
    assert!(started.elapsed() < Duration::from_secs(3));

    // stats_result on its own: 204 is "not yet".
    let fake = FakeMango::start(|r| match r.nth_on_path {
        1 => axum::http::StatusCode::NO_CONTENT.into_response_reply(),
        _ => json(404, ""),
    })
    .await?;
    let client = fake.client()?;
    assert_eq!(client.stats_result("k").await?, None);
    // 404: the key is unknown or expired; not retried.
    let err = client.stats_result("k").await.err();
    assert!(matches!(err, Some(MangoError::UnknownStatsKey)), "{err:?}");
    assert_eq!(fake.requests()?.len(), 2);
    Ok(())
}

#[tokio::test]
async fn stats_give_up_at_the_deadline() -> anyhow::Result<()> {
    let fake = FakeMango::start(|r| match r.path.as_str() {
        "stats/request" => json(200, r#"{"key":"k"}"#),
        _ => axum::http::StatusCode::NO_CONTENT.into_response_reply(),
    })
    .await?;
    let mut config = fake.config();
    config.stats_deadline = Duration::from_millis(500);
    let err = MangoClient::new(config)?
        .stats(1, 2, "start", &StatsFilter::default())
        .await
        .err();
    assert!(
        matches!(err, Some(MangoError::StatsNotReady { .. })),
        "{err:?}"
    );
    let polls = fake.requests()?.len() - 1;
    assert!((3..=9).contains(&polls), "{polls} polls");
    Ok(())
}

/// Counts the writes it passes on, to show the body arrives in chunks.
struct CountingWriter<W> {
    inner: W,
    writes: usize,
    largest: usize,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let poll = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = poll {
            this.writes += 1;
            this.largest = this.largest.max(n);
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn recordings_stream_from_the_one_shot_link_into_a_file() -> anyhow::Result<()> {
    // A relative Location, resolved against the API URL.
    let fake = FakeMango::start(|r| match r.path.as_str() {
        "queries/recording/post" => redirect("/files/one-shot-token"),
        _ => json(404, "{}"),
    })
    .await?;
    let audio: Vec<u8> = (0..8 * 1024 * 1024 + 777)
        .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    fake.add_file("one-shot-token", audio.clone());
    let client = fake.client()?;

    let path = std::env::temp_dir().join(format!("calldesk-mango-{}.mp3", uuid::Uuid::new_v4()));
    let file = tokio::fs::File::create(&path).await?;
    let mut writer = CountingWriter {
        inner: file,
        writes: 0,
        largest: 0,
    };
    let download = client
        .download_recording("MToxMDAxMjM0NTo1MDA5NDExMDIyOjE=", &mut writer)
        .await;
    drop(writer.inner);
    let written = tokio::fs::read(&path).await;
    let _ = tokio::fs::remove_file(&path).await;
    let download = download?;
    let written = written?;
    assert_eq!(download.bytes, audio.len() as u64);
    assert_eq!(download.content_type.as_deref(), Some("audio/mpeg"));
    assert_eq!(written.len(), audio.len());
    assert!(written == audio, "the file differs from what was served");
    assert!(
        writer.writes > 8 && writer.largest < audio.len(),
        "written in {} writes, the largest {} bytes",
        writer.writes,
        writer.largest
    );
    let requests = fake.requests()?;
    assert_eq!(paths(&requests), ["queries/recording/post"]);
    assert_eq!(
        requests[0].json,
        r#"{"recording_id":"MToxMDAxMjM0NTo1MDA5NDExMDIyOjE=","action":"download"}"#
    );
    assert_eq!(fake.file_gets(), 1);

    // The link works once: a second redirect to it gets 410 and a typed error, not retried.
    let mut sink = Vec::new();
    let err = client.download_recording("MToxMDAx", &mut sink).await.err();
    assert!(
        matches!(err, Some(MangoError::BadResponse(ref m)) if m.contains("410")),
        "{err:?}"
    );
    assert!(sink.is_empty());
    assert_eq!(fake.file_gets(), 2);
    Ok(())
}

#[tokio::test]
async fn a_json_answer_instead_of_audio_is_a_typed_error() -> anyhow::Result<()> {
    let fake = FakeMango::start(|_| json(200, r#"{"result":3320}"#)).await?;
    let mut sink = Vec::new();
    let err = fake
        .client()?
        .download_recording("MToxMDAx", &mut sink)
        .await
        .err()
        .context("expected an error")?;
    assert!(
        matches!(
            err,
            MangoError::BadRequest {
                code: Code(3320),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("recording not found"), "{err}");
    assert!(sink.is_empty());
    assert_eq!(fake.requests()?.len(), 1);
    Ok(())
}

#[tokio::test]
async fn invalid_values_are_rejected_before_anything_is_sent() -> anyhow::Result<()> {
    let fake = FakeMango::start(|_| ok()).await?;
    let client = fake.client()?;
    let mut errors = vec![
        client.callback("101", "7916123\r\n4567", None).await.err(),
        client.callback("101", "seven", None).await.err(),
        client.callback("10a", "79161234567", None).await.err(),
        client
            .callback("101", "79161234567", Some("line\n"))
            .await
            .err(),
        client.callback_group("", "500", "74951234567").await.err(),
        client.hangup("call id with spaces").await.err(),
        client.hangup("").await.err(),
        client.route("c1", "sip:<evil>@x").await.err(),
        client
            .transfer("c1", TransferMethod::Hold, "102", "10 1")
            .await
            .err(),
        client.hold_on("c1\r\nX-Injected: 1", "101").await.err(),
        client.recording_start("c1", "abc").await.err(),
        client.play_start("c1", 0, None).await.err(),
        client
            .sms(&"a".repeat(613), "101", "79161234567", None)
            .await
            .err(),
        client
            .sms(&"я".repeat(269), "101", "79161234567", None)
            .await
            .err(),
        client
            .sms("hi", "101", "79161234567", Some("MUCH-TOO-LONG-NAME"))
            .await
            .err(),
        client.users(Some("1O1")).await.err(),
        client
            .stats_request(0, 32 * 24 * 3600, "start", &StatsFilter::default())
            .await
            .err(),
        client
            .stats_request(10, 5, "start", &StatsFilter::default())
            .await
            .err(),
        client.stats_result("a key").await.err(),
    ];
    let mut sink = Vec::new();
    errors.push(client.download_recording("", &mut sink).await.err());
    for (i, e) in errors.iter().enumerate() {
        assert!(matches!(e, Some(MangoError::Invalid(_))), "case {i}: {e:?}");
        if let Some(e) = e {
            assert!(!e.maybe_sent());
            assert!(e.to_string().starts_with("not sent to Mango"), "{e}");
        }
    }
    assert!(fake.requests()?.is_empty());
    Ok(())
}

#[tokio::test]
async fn timeouts_resend_queries_but_never_commands() -> anyhow::Result<()> {
    let slow = || Reply {
        delay: Duration::from_secs(2),
        response: axum::response::IntoResponse::into_response(support::OK),
    };
    let fake = FakeMango::start(move |_| slow()).await?;
    let mut config = fake.config();
    config.request_timeout = Duration::from_millis(300);
    config.max_retries = 2;
    let client = MangoClient::new(config)?;
    let err = client.hangup("c1").await.err();
    assert!(
        matches!(
            err,
            Some(MangoError::Timeout {
                maybe_sent: true,
                ..
            })
        ),
        "{err:?}"
    );
    assert_eq!(fake.requests()?.len(), 1, "a command is sent once");
    let err = client.users(None).await.err();
    assert!(matches!(err, Some(MangoError::Timeout { .. })), "{err:?}");
    assert_eq!(fake.requests()?.len(), 4, "a query is sent 1 + 2 times");
    Ok(())
}

#[tokio::test]
async fn a_connect_failure_is_retried_even_for_commands() -> anyhow::Result<()> {
    // A port nobody listens on: the request provably never left.
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    drop(listener);
    let mut config = calldesk_mango::MangoConfig::with_base_url(
        reqwest::Url::parse(&format!("http://{addr}/vpbx"))?,
        support::credentials(),
    );
    config.backoff_base = Duration::from_millis(20);
    config.backoff_max = Duration::from_millis(20);
    config.max_retries = 2;
    let client = MangoClient::new(config)?;
    assert_eq!(client.base_url().path(), "/vpbx/", "a trailing / is added");
    let started = Instant::now();
    let err = client.hangup("c1").await.err();
    assert!(
        matches!(
            err,
            Some(MangoError::Transport {
                maybe_sent: false,
                ..
            })
        ),
        "{err:?}"
    );
    // Two backoffs of 10-20 ms each happened: it was retried.
    assert!(started.elapsed() >= Duration::from_millis(20));
    let text = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(text.contains("nothing happened"), "{text}");
    assert!(!text.contains(support::SALT));
    Ok(())
}

#[tokio::test]
async fn concurrent_requests_share_the_lock_out() -> anyhow::Result<()> {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let fake = FakeMango::start(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
        json(401, "{}")
    })
    .await?;
    let client = fake.client()?;
    // Call class (4/s): these queue behind each other; the first 401 stops the rest.
    let results = futures_util::future::join_all((0..5).map(|i| {
        let client = client.clone();
        async move { client.hangup(&format!("c{i}")).await }
    }))
    .await;
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(MangoError::LockedOut { .. })))
    );
    // Call class spacing is 262 ms: the 401 came back long before the second was due.
    assert_eq!(served.load(Ordering::SeqCst), 1);
    Ok(())
}

trait IntoReply {
    fn into_response_reply(self) -> Reply;
}

impl IntoReply for axum::http::StatusCode {
    fn into_response_reply(self) -> Reply {
        Reply::from(axum::response::IntoResponse::into_response(self))
    }
}
