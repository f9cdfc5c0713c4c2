//! One AMI session: connect, banner check, login (plain or MD5 challenge); and the simple
//! sequential [`AmiConnection`] built on it.

use std::fmt;
use std::time::Duration;

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, EVENT_CLASSES, EncodeError, Frame, Message, Outgoing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::text::{header_text, server_text};
use crate::transport::{self, AmiStream, TlsConnector};

/// What can go wrong on an AMI session. Messages say what to check.
#[derive(Debug, thiserror::Error)]
pub enum AmiError {
    #[error(
        "cannot connect to AMI at {addr}: {source}; check the host, the port (usually 5038) and that manager.conf has `enabled = yes`"
    )]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("AMI at {addr} did not answer within {after:?}")]
    TimedOut { addr: String, after: Duration },
    #[error(
        "the server at {addr} is not an Asterisk Manager Interface (it greeted with {greeting:?})"
    )]
    NotAmi { addr: String, greeting: String },
    #[error(
        "Asterisk rejected the login for user `{username}`: {message}; check the AMI user and secret in manager.conf"
    )]
    AuthRejected { username: String, message: String },
    #[error(
        "Asterisk refused the MD5 challenge: {message}; use plain login (over TLS or loopback) instead"
    )]
    ChallengeRefused { message: String },
    #[error("AMI over TLS failed: {reason}")]
    Tls { reason: String },
    /// The TLS settings themselves are unusable (a CA file that cannot be read, no trusted
    /// roots): retrying cannot help.
    #[error("the TLS settings cannot be used: {reason}")]
    TlsSetup { reason: String },
    #[error(
        "invalid AMI event mask {mask:?}: {reason}; use `on`, `off` or classes such as `call,agent,system`"
    )]
    InvalidEventMask { mask: String, reason: String },
    #[error("the AMI connection was closed")]
    Disconnected,
    #[error("Asterisk has not answered for {after:?} (not even a Ping); the connection is dead")]
    Silent { after: Duration },
    #[error("AMI connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("refused to send an invalid AMI action: {0}")]
    Encode(#[from] EncodeError),
}

/// AMI user and secret. `Debug` never shows the secret.
#[derive(Clone)]
pub struct AmiCredentials {
    pub username: String,
    pub secret: String,
}

impl fmt::Debug for AmiCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmiCredentials")
            .field("username", &self.username)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// How the client proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthMethod {
    /// `Login` with `Secret:` — the secret crosses the wire; use it over TLS or loopback.
    Plain,
    /// `Challenge` (`AuthType: MD5`), then `Login` with `Key: md5_hex(challenge + secret)`: the
    /// secret never crosses the wire (MD5 is no real security either; prefer TLS for that).
    #[default]
    Md5,
}

/// Which events the session receives (the `Events:` header of `Login`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventMask(String);

impl EventMask {
    /// Every event the AMI user may read.
    pub fn on() -> Self {
        Self("on".to_owned())
    }

    /// No events (list items and `OriginateResponse`… are events too: an `Async` Originate
    /// then never completes).
    pub fn off() -> Self {
        Self("off".to_owned())
    }

    /// `on`, `off`, or a comma-separated list of classes, e.g. `call,agent,system`.
    /// `OriginateResponse` is a `call` event, `Shutdown` a `system` one.
    pub fn parse(mask: &str) -> Result<Self, AmiError> {
        let lower = mask.trim().to_ascii_lowercase();
        if lower == "on" || lower == "off" {
            return Ok(Self(lower));
        }
        let bad = |reason: String| AmiError::InvalidEventMask {
            mask: server_text(mask),
            reason,
        };
        let classes: Vec<&str> = lower.split(',').map(str::trim).collect();
        if classes.iter().any(|c| c.is_empty()) {
            return Err(bad("it has an empty class".to_owned()));
        }
        if let Some(unknown) = classes
            .iter()
            .find(|c| **c != "all" && !EVENT_CLASSES.contains(c))
        {
            return Err(bad(format!(
                "`{}` is not an AMI class (known: all, {})",
                server_text(unknown),
                EVENT_CLASSES.join(", ")
            )));
        }
        Ok(Self(classes.join(",")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for EventMask {
    fn default() -> Self {
        Self::on()
    }
}

/// A stream with its decoder: reads frames (cancel-safe), writes actions.
pub(crate) struct Framed {
    pub(crate) stream: AmiStream,
    pub(crate) decoder: AmiDecoder,
    pub(crate) buf: BytesMut,
}

impl Framed {
    pub(crate) fn new(stream: AmiStream) -> Self {
        Self {
            stream,
            decoder: AmiDecoder::new(),
            buf: BytesMut::with_capacity(64 * 1024),
        }
    }

    pub(crate) async fn next_frame(&mut self) -> Result<Frame, AmiError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf) {
                return Ok(frame);
            }
            if self.buf.capacity() - self.buf.len() < 8 * 1024 {
                self.buf.reserve(64 * 1024);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(AmiError::Disconnected);
            }
        }
    }

    pub(crate) async fn next_message(&mut self) -> Result<Message, AmiError> {
        loop {
            match self.next_frame().await? {
                Frame::Message(m) => return Ok(m),
                Frame::Banner(_) => continue,
                Frame::Skipped { bytes, reason } => {
                    tracing::warn!(bytes, ?reason, "skipped an AMI message");
                }
            }
        }
    }

    /// Writes `action` (which must already carry its `ActionID`). The encoded bytes are wiped
    /// afterwards: the Login action carries the secret or the key.
    pub(crate) async fn write(&mut self, action: &Outgoing) -> Result<(), AmiError> {
        let mut out = Vec::with_capacity(action.encoded_len());
        action.encode(&mut out);
        let written = self.stream.write_all(&out).await;
        out.fill(0);
        written?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads until the response to `id` (messages before it are dropped: before login there
    /// are no events).
    async fn response_to(&mut self, id: &str) -> Result<Message, AmiError> {
        loop {
            let msg = self.next_message().await?;
            if msg.action_id().as_deref() == Some(id) && msg.response().is_some() {
                return Ok(msg);
            }
        }
    }
}

/// What a login needs.
pub(crate) struct LoginRequest<'a> {
    pub(crate) addr: &'a str,
    pub(crate) credentials: &'a AmiCredentials,
    pub(crate) auth: AuthMethod,
    pub(crate) events: Option<&'a EventMask>,
    /// Prefix of the login's ActionIDs.
    pub(crate) id_prefix: &'a str,
}

fn is_success(msg: &Message) -> bool {
    msg.response()
        .is_some_and(|r| r.eq_ignore_ascii_case("Success"))
}

/// Connects (TCP, optional TLS), checks the banner and logs in. No timeout: the caller bounds
/// it. Returns the framed stream (bytes after the login response stay buffered) and the banner.
pub(crate) async fn open(
    req: &LoginRequest<'_>,
    tls: Option<&TlsConnector>,
) -> Result<(Framed, String), AmiError> {
    let stream = transport::connect(req.addr, tls).await?;
    let mut conn = Framed::new(stream);
    let not_ami = |greeting: &str| AmiError::NotAmi {
        addr: req.addr.to_owned(),
        greeting: server_text(greeting),
    };
    let banner = match conn.next_frame().await? {
        // Credentials go only to a server that greeted as AMI.
        Frame::Banner(b) if b.is_known_ami() => server_text(&b.text()),
        Frame::Banner(b) => return Err(not_ami(&b.text())),
        Frame::Message(m) => return Err(not_ami(&String::from_utf8_lossy(m.raw()))),
        Frame::Skipped { .. } => return Err(not_ami("an oversized message")),
    };
    let creds = req.credentials;
    let mut login = Outgoing::action("Login")?;
    match req.auth {
        AuthMethod::Plain => {
            let id = format!("{}-login", req.id_prefix);
            login.push("ActionID", &id)?;
            login.push("Username", &creds.username)?;
            login.push("Secret", &creds.secret)?;
        }
        AuthMethod::Md5 => {
            let id = format!("{}-challenge", req.id_prefix);
            let challenge = Outgoing::action("Challenge")?
                .header("ActionID", &id)?
                .header("AuthType", "MD5")?;
            conn.write(&challenge).await?;
            let reply = conn.response_to(&id).await?;
            let Some(challenge) = reply.get_str("Challenge").filter(|_| is_success(&reply)) else {
                return Err(AmiError::ChallengeRefused {
                    message: header_text(&reply, "Message", "no challenge given"),
                });
            };
            let key = calldesk_ami_proto::md5_login_key(&challenge, &creds.secret);
            let id = format!("{}-login", req.id_prefix);
            login.push("ActionID", &id)?;
            login.push("AuthType", "MD5")?;
            login.push("Username", &creds.username)?;
            login.push("Key", &key)?;
        }
    }
    if let Some(events) = req.events {
        login.push("Events", events.as_str())?;
    }
    let id = format!("{}-login", req.id_prefix);
    conn.write(&login).await?;
    drop(login);
    let reply = conn.response_to(&id).await?;
    if is_success(&reply) {
        Ok((conn, banner))
    } else {
        Err(AmiError::AuthRejected {
            username: creds.username.clone(),
            message: header_text(&reply, "Message", "no reason given"),
        })
    }
}

/// A logged-in AMI session, read and written by one task in sequence. The full client with
/// correlation, keepalive and reconnect is [`crate::AmiClient`].
pub struct AmiConnection {
    conn: Framed,
    next_action: u64,
}

impl fmt::Debug for AmiConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmiConnection")
            .field("stream", &self.conn.stream)
            .field("buffered", &self.conn.buf.len())
            .field("next_action", &self.next_action)
            .finish()
    }
}

impl AmiConnection {
    /// Connects over TCP, reads the banner and logs in (plain `Secret`, all events).
    /// Everything must happen within `timeout`.
    pub async fn connect(
        addr: &str,
        credentials: &AmiCredentials,
        timeout: Duration,
    ) -> Result<(Self, String), AmiError> {
        let req = LoginRequest {
            addr,
            credentials,
            auth: AuthMethod::Plain,
            events: None,
            id_prefix: "calldesk-0",
        };
        let (conn, banner) = tokio::time::timeout(timeout, open(&req, None))
            .await
            .map_err(|_| AmiError::TimedOut {
                addr: addr.to_owned(),
                after: timeout,
            })??;
        Ok((
            Self {
                conn,
                next_action: 0,
            },
            banner,
        ))
    }

    /// Sends an action with a fresh `ActionID`, which is returned.
    pub async fn send(&mut self, mut action: Outgoing) -> Result<String, AmiError> {
        self.next_action += 1;
        let id = format!("calldesk-{}", self.next_action);
        action.push("ActionID", &id)?;
        self.conn.write(&action).await?;
        Ok(id)
    }

    /// The next message (response or event). Cancel-safe: bytes already read stay buffered.
    pub async fn next_message(&mut self) -> Result<Message, AmiError> {
        self.conn.next_message().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_key_matches_the_example_in_the_protocol_notes() {
        // ami.md §3.2 (the captured login is checked in calldesk-ami-proto).
        assert_eq!(
            calldesk_ami_proto::md5_login_key("840415273", "s3cret"),
            "d7994fd8cd10e2224514d095d0fd3f7b"
        );
    }

    #[test]
    fn event_masks_are_checked() {
        assert_eq!(EventMask::parse("ON").unwrap().as_str(), "on");
        assert_eq!(
            EventMask::parse("call, Agent,system").unwrap().as_str(),
            "call,agent,system"
        );
        let err = EventMask::parse("call,calls").unwrap_err().to_string();
        assert!(err.contains("`calls` is not an AMI class"), "{err}");
        assert!(EventMask::parse("call,,agent").is_err());
        assert!(EventMask::parse("call\r\nAction: Originate").is_err());
    }
}
