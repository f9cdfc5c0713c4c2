//! A scripted AMI server for the client tests: it answers with the bytes of the real
//! Asterisk 20 captures (only the `ActionID` value is replaced by the one the client chose).

// Each test file uses a subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use calldesk_ami::{
    AmiClient, AmiClientConfig, AmiCredentials, AuthMethod, BackoffConfig, ClientEvent, ConnState,
    EventMask,
};
use calldesk_ami_proto::{AmiDecoder, Frame, Message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// How long a test waits for anything before it fails.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// A capture's greeting line and messages (raw bytes, each with its terminating empty line).
pub struct Capture {
    pub banner: Vec<u8>,
    pub messages: Vec<Bytes>,
}

impl Capture {
    pub fn load(name: &str) -> Self {
        let rx = calldesk_fixtures::ami_rx(name);
        let mut buf = BytesMut::from(&rx[..]);
        let mut decoder = AmiDecoder::new();
        let mut banner = Vec::new();
        let mut messages = Vec::new();
        while let Some(frame) = decoder.decode(&mut buf) {
            match frame {
                Frame::Banner(b) => {
                    banner = b.raw.to_vec();
                    banner.extend_from_slice(b"\r\n");
                }
                Frame::Message(m) => messages.push(m.raw().clone()),
                Frame::Skipped { .. } => panic!("{name}: skipped bytes"),
            }
        }
        assert!(!banner.is_empty(), "{name} has no banner");
        Self { banner, messages }
    }

    /// Index of the first message (from `from`) that has `key: value`.
    pub fn position(&self, from: usize, key: &str, value: &str) -> usize {
        self.messages[from..]
            .iter()
            .position(|m| header(m, key).as_deref() == Some(value))
            .map(|i| i + from)
            .unwrap_or_else(|| panic!("no message with {key}: {value}"))
    }

    /// The first message with `key: value`.
    pub fn find(&self, key: &str, value: &str) -> Bytes {
        self.messages[self.position(0, key, value)].clone()
    }

    /// The reply to the captured action `captured_id`: every message carrying that ActionID,
    /// in order (a Response, or a whole event list).
    pub fn reply_to(&self, captured_id: &str) -> Vec<Bytes> {
        let all: Vec<Bytes> = self
            .messages
            .iter()
            .filter(|m| header(m, "ActionID").as_deref() == Some(captured_id))
            .cloned()
            .collect();
        assert!(!all.is_empty(), "no reply to {captured_id}");
        all
    }
}

/// First value of `key` in a raw message.
pub fn header(raw: &[u8], key: &str) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    text.split("\r\n").find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.eq_ignore_ascii_case(key)
            .then(|| v.strip_prefix(' ').unwrap_or(v).to_owned())
    })
}

/// `raw` with its `ActionID` value replaced by `id` (bytes otherwise unchanged).
pub fn with_id(raw: &[u8], id: &str) -> Vec<u8> {
    let text = std::str::from_utf8(raw).expect("capture messages used here are UTF-8");
    let mut out = String::with_capacity(raw.len() + id.len());
    let mut replaced = false;
    for line in text.split_inclusive("\r\n") {
        match line.split_once(':') {
            Some((k, _)) if !replaced && k.eq_ignore_ascii_case("ActionID") => {
                out.push_str(&format!("{k}: {id}\r\n"));
                replaced = true;
            }
            _ => out.push_str(line),
        }
    }
    assert!(replaced, "message has no ActionID: {text}");
    out.into_bytes()
}

/// All messages of `list` with their ActionID replaced by `id`, concatenated.
pub fn list_with_id(list: &[Bytes], id: &str) -> Vec<u8> {
    list.iter().flat_map(|m| with_id(m, id)).collect()
}

pub async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    (listener, addr)
}

/// One accepted connection, read as a server reads actions.
pub struct Peer {
    pub stream: TcpStream,
    decoder: AmiDecoder,
    buf: BytesMut,
}

impl Peer {
    pub async fn accept(listener: &TcpListener) -> Self {
        let (stream, _) = tokio::time::timeout(PATIENCE, listener.accept())
            .await
            .expect("the client did not connect")
            .unwrap();
        Self {
            stream,
            decoder: AmiDecoder::without_banner(),
            buf: BytesMut::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// The next action, or `None` if the client closed the connection.
    pub async fn next_action(&mut self) -> Option<Message> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf) {
                match frame {
                    Frame::Message(m) => return Some(m),
                    _ => continue,
                }
            }
            if self.stream.read_buf(&mut self.buf).await.ok()? == 0 {
                return None;
            }
        }
    }

    /// The next action, which must be `name`.
    pub async fn expect(&mut self, name: &str) -> Message {
        let msg = tokio::time::timeout(PATIENCE, self.next_action())
            .await
            .unwrap_or_else(|_| panic!("no {name} from the client"))
            .unwrap_or_else(|| panic!("the client closed instead of sending {name}"));
        assert_eq!(
            msg.action().as_deref(),
            Some(name),
            "{:?}",
            String::from_utf8_lossy(msg.raw())
        );
        msg
    }

    /// The greeting and a plain login exactly as in capture j2 (Login reply, FullyBooted,
    /// SuccessfulAuth).
    pub async fn login_plain(&mut self) {
        let j2 = Capture::load("j2_errors_unknown_action");
        self.send(&j2.banner).await;
        let login = self.expect("Login").await;
        assert_eq!(login.get_str("Username").as_deref(), Some("crm"));
        assert_eq!(login.get_str("Secret").as_deref(), Some("secret"));
        self.send(&with_id(&j2.messages[0], &id(&login))).await;
        self.send(&j2.messages[1]).await; // FullyBooted
        self.send(&j2.messages[2]).await; // SuccessfulAuth
    }

    /// Answers the client's resync `CoreShowChannels` with the empty list of capture j6 conn2.
    pub async fn resync_empty(&mut self) {
        let j6 = Capture::load("j6_restart_reconnect.conn2");
        let csc = self.expect("CoreShowChannels").await;
        self.send(&list_with_id(&j6.reply_to("j6-conn2-004"), &id(&csc)))
            .await;
    }

    /// Answers the client's resync `CoreShowChannels` with capture j3's two live channels.
    pub async fn resync_j3(&mut self) {
        let csc = self.expect("CoreShowChannels").await;
        self.send(&list_with_id(&j3_channels(), &id(&csc))).await;
    }

    /// Answers actions by name from the captures until the client closes.
    pub async fn serve(&mut self) {
        while let Some(action) = self.next_action().await {
            let reply = canned_reply(&action);
            self.send(&reply).await;
        }
    }
}

/// Capture j3's CoreShowChannels reply (Response, 2 items, Complete).
pub fn j3_channels() -> Vec<Bytes> {
    Capture::load("j3_coreshowchannels_active_call").reply_to("j3-002")
}

/// A reply from the captures for the actions the tests use.
pub fn canned_reply(action: &Message) -> Vec<u8> {
    let id = id(action);
    match action.action().as_deref() {
        Some("Ping") => {
            let j1 = Capture::load("j1_login_failure.conn3_md5_challenge");
            with_id(&j1.messages[2], &id)
        }
        Some("CoreStatus") => {
            let j6 = Capture::load("j6_restart_reconnect.conn2");
            list_with_id(&j6.reply_to("j6-conn2-003"), &id)
        }
        Some("CoreShowChannels") => list_with_id(&j3_channels(), &id),
        Some("Logoff") => {
            let j6 = Capture::load("j6_restart_reconnect.conn2");
            list_with_id(&j6.reply_to("j6-conn2-005"), &id)
        }
        other => panic!("no canned reply for {other:?}"),
    }
}

/// The ActionID the client gave an action.
pub fn id(action: &Message) -> String {
    action
        .action_id()
        .expect("every action has an ActionID")
        .into_owned()
}

pub fn credentials() -> AmiCredentials {
    AmiCredentials {
        username: "crm".to_owned(),
        secret: "secret".to_owned(),
    }
}

/// Short timings for tests; plain login, all events, no keepalive during the test.
pub fn config(addr: &str) -> AmiClientConfig {
    AmiClientConfig {
        auth: AuthMethod::Plain,
        events: EventMask::on(),
        connect_timeout: Duration::from_secs(3),
        ping_interval: Duration::from_secs(3600),
        ping_timeout: Duration::from_secs(1),
        resync_timeout: Duration::from_secs(3),
        backoff: BackoffConfig {
            min: Duration::from_millis(10),
            max: Duration::from_millis(40),
            stable: Duration::from_secs(60),
        },
        event_queue: 1024,
        ..AmiClientConfig::new(addr, credentials())
    }
}

pub fn never() -> impl Future<Output = ()> + Send + 'static {
    std::future::pending()
}

pub async fn next_event(events: &mut mpsc::Receiver<ClientEvent>) -> ClientEvent {
    tokio::time::timeout(PATIENCE, events.recv())
        .await
        .expect("no event from the client")
        .expect("the client's event queue closed")
}

/// The `Event:` name of a stream item (`Resync` for a resync).
pub fn name_of(event: &ClientEvent) -> String {
    match event {
        ClientEvent::Resync { .. } => "Resync".to_owned(),
        ClientEvent::Event { message, .. } => message
            .event()
            .map(|e| e.into_owned())
            .or_else(|| message.response().map(|r| format!("Response:{r}")))
            .unwrap_or_default(),
    }
}

pub async fn wait_state(
    client: &AmiClient,
    what: &str,
    pred: impl Fn(&ConnState) -> bool,
) -> ConnState {
    let mut state = client.state();
    tokio::time::timeout(PATIENCE, state.wait_for(|s| pred(s)))
        .await
        .unwrap_or_else(|_| panic!("never {what}; state is {}", client.current_state()))
        .expect("the client stopped")
        .clone()
}
