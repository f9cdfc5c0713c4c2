//! One AMI session over TCP.

use std::fmt;
use std::time::Duration;

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, EncodeError, Frame, Message, Outgoing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

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

/// At most this much of a server's own text goes into an error (and so into the UI and logs).
const MAX_SERVER_TEXT: usize = 200;

/// Server-supplied text made safe to show: control characters replaced, length capped.
fn server_text(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_SERVER_TEXT)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().count() > MAX_SERVER_TEXT {
        out.push('…');
    }
    out
}

/// A logged-in AMI session.
pub struct AmiConnection {
    stream: TcpStream,
    decoder: AmiDecoder,
    buf: BytesMut,
    next_action: u64,
    out: Vec<u8>,
}

impl fmt::Debug for AmiConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not `out`: it held the Login action, secret included.
        f.debug_struct("AmiConnection")
            .field("peer", &self.stream.peer_addr().ok())
            .field("buffered", &self.buf.len())
            .field("next_action", &self.next_action)
            .finish()
    }
}

impl AmiConnection {
    /// Connects, reads the banner and logs in. Everything must happen within `timeout`.
    pub async fn connect(
        addr: &str,
        credentials: &AmiCredentials,
        timeout: Duration,
    ) -> Result<(Self, String), AmiError> {
        let timed_out = || AmiError::TimedOut {
            addr: addr.to_owned(),
            after: timeout,
        };
        tokio::time::timeout(timeout, Self::connect_inner(addr, credentials))
            .await
            .map_err(|_| timed_out())?
    }

    async fn connect_inner(
        addr: &str,
        credentials: &AmiCredentials,
    ) -> Result<(Self, String), AmiError> {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| AmiError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
        stream.set_nodelay(true)?;
        let mut conn = Self {
            stream,
            decoder: AmiDecoder::new(),
            buf: BytesMut::with_capacity(64 * 1024),
            next_action: 0,
            out: Vec::new(),
        };
        let not_ami = |greeting: &str| AmiError::NotAmi {
            addr: addr.to_owned(),
            greeting: server_text(greeting),
        };
        let banner = match conn.next_frame().await? {
            // Credentials go only to a server that greeted as AMI.
            Frame::Banner(b) if b.is_known_ami() => b.text().into_owned(),
            Frame::Banner(b) => return Err(not_ami(&b.text())),
            Frame::Message(m) => return Err(not_ami(&String::from_utf8_lossy(m.raw()))),
            Frame::Skipped { .. } => {
                return Err(AmiError::NotAmi {
                    addr: addr.to_owned(),
                    greeting: "an oversized message".to_owned(),
                });
            }
        };
        let login = Outgoing::action("Login")?
            .header("Username", &credentials.username)?
            .header("Secret", &credentials.secret)?;
        let id = conn.send(login).await?;
        loop {
            let msg = conn.next_message().await?;
            if msg.action_id().as_deref() != Some(id.as_str()) {
                continue;
            }
            return match msg.response().as_deref() {
                Some("Success") => Ok((conn, banner)),
                _ => Err(AmiError::AuthRejected {
                    username: credentials.username.clone(),
                    message: msg
                        .get_str("Message")
                        .map_or_else(|| "no reason given".to_owned(), |m| server_text(&m)),
                }),
            };
        }
    }

    /// Sends an action with a fresh `ActionID`, which is returned.
    pub async fn send(&mut self, mut action: Outgoing) -> Result<String, AmiError> {
        self.next_action += 1;
        let id = format!("calldesk-{}", self.next_action);
        action.push("ActionID", &id)?;
        self.out.clear();
        action.encode(&mut self.out);
        let written = self.stream.write_all(&self.out).await;
        // Do not keep the bytes around: the Login action carries the secret.
        self.out.clear();
        written?;
        Ok(id)
    }

    /// The next message (response or event). Cancel-safe: bytes already read stay buffered.
    pub async fn next_message(&mut self) -> Result<Message, AmiError> {
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

    async fn next_frame(&mut self) -> Result<Frame, AmiError> {
        loop {
            if let Some(frame) = self.decoder.decode(&mut self.buf) {
                return Ok(frame);
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(AmiError::Disconnected);
            }
        }
    }
}
