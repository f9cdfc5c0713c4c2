//! `calldesk ami tail`: live call updates from an Asterisk.
//!
//! [`AmiClient`] (login, keepalive, reconnect, `CoreShowChannels` resync) → [`AsteriskTracker`]
//! → [`CallBook`] → one JSON object per line on stdout:
//! `{"update":"new|changed|ended","call":<CallRecord>}` and `{"presence":{…}}`. Connection
//! states go to stderr as plain sentences. Ctrl-C or SIGTERM logs off and exits 0; a rejected
//! login exits 2 ([`LoginRejected`]) without retrying (retries get the address banned).

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use calldesk_ami::{
    AmiClient, AmiClientConfig, AmiCredentials, AsteriskTracker, AuthMethod, ClientEvent,
    ConnState, EventMask, TlsConfig, TlsRoots,
};
use calldesk_asterisk::TrackerEvent;
use calldesk_calls::{Call, CallBook, NumberPlan, PresenceEvent, TenantId, Timestamp, UpdateKind};
use calldesk_wire::CallRecord;
use serde::Serialize;

use crate::secret::{self, Source};

/// How long the Logoff may take at exit.
const LOGOFF_GRACE: Duration = Duration::from_secs(3);

#[derive(clap::Args)]
pub struct TailArgs {
    /// Asterisk host name or address.
    #[arg(long)]
    host: String,
    /// AMI port [default: 5038, or 5039 with --tls].
    #[arg(long)]
    port: Option<u16>,
    /// AMI user (a `[section]` of manager.conf). The secret comes from CALLDESK_AMI_SECRET, else
    /// from the OS keyring (see `calldesk ami secret set`).
    #[arg(long)]
    user: String,
    /// Log in with the secret in clear (`Secret:`) instead of the MD5 challenge; only over TLS
    /// or loopback.
    #[arg(long)]
    plain_login: bool,
    /// AMI over TLS (Asterisk `tlsenable = yes`), checked against the system's trust store or
    /// --ca-file.
    #[arg(long)]
    tls: bool,
    /// PEM file with the CA certificate(s) the server's certificate must chain to.
    #[arg(long, requires = "tls")]
    ca_file: Option<PathBuf>,
    /// Events mask of the login: `on`, `off`, or AMI classes such as `call,agent,system`.
    #[arg(long, default_value = "on", value_parser = parse_events)]
    events: EventMask,
    /// Home region for numbers without a country code (ISO code).
    #[arg(long, default_value = "RU", env = "CALLDESK_REGION")]
    region: String,
}

fn parse_events(mask: &str) -> Result<EventMask, String> {
    EventMask::parse(mask).map_err(|e| e.to_string())
}

/// Asterisk refused the credentials: exit code 2, and say what to fix.
#[derive(Debug, thiserror::Error)]
#[error(
    "login rejected: {message} — check the user and secret: AMI user `{user}` with the secret {secret_from} must match a `[{user}]` section of manager.conf on {host}"
)]
pub struct LoginRejected {
    message: String,
    user: String,
    host: String,
    secret_from: Source,
}

/// `host:port`, with brackets around an IPv6 address.
fn address(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn client_config(args: &TailArgs, secret: secret::Secret) -> AmiClientConfig {
    let port = args.port.unwrap_or(if args.tls { 5039 } else { 5038 });
    let credentials = AmiCredentials {
        username: args.user.clone(),
        secret: secret.expose().to_owned(),
    };
    let mut config = AmiClientConfig::new(address(&args.host, port), credentials);
    config.auth = if args.plain_login {
        AuthMethod::Plain
    } else {
        AuthMethod::Md5
    };
    config.events = args.events.clone();
    if args.tls {
        config.tls = Some(TlsConfig {
            server_name: None,
            roots: args
                .ca_file
                .clone()
                .map_or(TlsRoots::System, TlsRoots::CaFile),
        });
    }
    config
}

pub fn run(args: &TailArgs) -> anyhow::Result<()> {
    let plan = NumberPlan::new(&args.region)?;
    if let Some(ca) = &args.ca_file {
        // Checked here: the client would only report it as a failed connection, again and again.
        std::fs::metadata(ca).with_context(|| {
            format!(
                "cannot read --ca-file {}; give the PEM file of the CA that signed the Asterisk certificate",
                ca.display()
            )
        })?;
    }
    let (secret, secret_from) = secret::from_env_or_keyring(&args.host, &args.user)?;
    let config = client_config(args, secret);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let rejected = |message: String| LoginRejected {
        message,
        user: args.user.clone(),
        host: args.host.clone(),
        secret_from: secret_from.clone(),
    };
    runtime.block_on(tail(config, plan, rejected))
}

async fn tail(
    config: AmiClientConfig,
    plan: NumberPlan,
    rejected: impl Fn(String) -> LoginRejected,
) -> anyhow::Result<()> {
    let addr = config.addr.clone();
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (client, mut events) = AmiClient::start(config, async move {
        let _ = stop_rx.await;
    });
    let mut state = client.state();
    let mut feed = Feed::new(plan, io::stdout());
    let interrupt = interrupted();
    tokio::pin!(interrupt);
    eprintln!("{}", describe(&state.borrow_and_update(), &addr));

    let outcome: anyhow::Result<()> = loop {
        tokio::select! {
            () = &mut interrupt => {
                eprintln!("interrupted; logging off");
                break Ok(());
            }
            changed = state.changed() => {
                if changed.is_err() {
                    break Err(anyhow::anyhow!("the AMI client stopped unexpectedly"));
                }
                let now = state.borrow_and_update().clone();
                match now {
                    ConnState::LoginRejected { message } => break Err(rejected(message).into()),
                    ConnState::Misconfigured { message } => {
                        break Err(anyhow::anyhow!("{message}"));
                    }
                    ConnState::Stopped => {
                        break Err(anyhow::anyhow!("the AMI client stopped unexpectedly"));
                    }
                    other => eprintln!("{}", describe(&other, &addr)),
                }
            }
            event = events.recv() => match event {
                Some(event) => match feed.client_event(event) {
                    Ok(()) => {}
                    // Whoever read our stdout is gone: nothing left to do.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => break Ok(()),
                    Err(e) => break Err(anyhow::Error::new(e).context("cannot write to stdout")),
                },
                None => break Err(anyhow::anyhow!("the AMI client stopped unexpectedly")),
            },
        }
    };
    let _ = stop.send(());
    if tokio::time::timeout(LOGOFF_GRACE, client.stopped())
        .await
        .is_err()
    {
        eprintln!("the AMI session did not close within {LOGOFF_GRACE:?}; exiting anyway");
    }
    if outcome.is_ok() {
        eprintln!("stopped");
    }
    outcome
}

/// Resolves on Ctrl-C (SIGINT) or, on Unix, SIGTERM. Never resolves if no handler could be
/// installed (rather than stopping at once).
async fn interrupted() {
    #[cfg(unix)]
    let terminate = async {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

/// The connection state as a line for stderr.
fn describe(state: &ConnState, addr: &str) -> String {
    match state {
        ConnState::Connecting { attempt } => format!("connecting to {addr} (attempt {attempt})…"),
        ConnState::Resyncing { .. } => "resyncing (reading the live channels)".to_owned(),
        ConnState::Connected { banner } => format!("connected to {banner}"),
        ConnState::Degraded { reason } => format!("degraded: {reason}"),
        ConnState::Disconnected { reason, retry_in } => {
            let hint = if reason.contains("MD5 challenge") {
                " (pass --plain-login)"
            } else {
                ""
            };
            format!(
                "disconnected: {reason}{hint}; retrying in {:.1} s",
                retry_in.as_secs_f64()
            )
        }
        ConnState::LoginRejected { message } => format!("login rejected: {message}"),
        ConnState::Misconfigured { message } => format!("cannot connect as configured: {message}"),
        ConnState::Stopped => "stopped".to_owned(),
    }
}

/// One stdout line about a call.
#[derive(Serialize)]
struct UpdateLine {
    update: &'static str,
    call: CallRecord,
}

/// One stdout line about an operator's presence.
#[derive(Serialize)]
struct PresenceLine<'a> {
    presence: PresenceView<'a>,
}

/// An operator's presence change as printed: `{"kind":"device","extension":"101","state":
/// "ringing"}` or `{"kind":"queue_member","extension":"101","queue":"support","paused":true,
/// "reason":"lunch"}`.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PresenceView<'a> {
    Device {
        extension: &'a str,
        state: &'static str,
    },
    QueueMember {
        extension: &'a str,
        queue: &'a str,
        paused: bool,
        reason: Option<&'a str>,
    },
}

impl<'a> From<&'a PresenceEvent> for PresenceView<'a> {
    fn from(event: &'a PresenceEvent) -> Self {
        match event {
            PresenceEvent::Device { extension, state } => Self::Device {
                extension: extension.as_str(),
                state: state.as_str(),
            },
            PresenceEvent::QueueMember {
                extension,
                queue,
                paused,
                reason,
            } => Self::QueueMember {
                extension: extension.as_str(),
                queue,
                paused: *paused,
                reason: reason.as_deref(),
            },
        }
    }
}

fn update_name(kind: UpdateKind) -> &'static str {
    match kind {
        UpdateKind::New => "new",
        UpdateKind::Changed => "changed",
        UpdateKind::Ended => "ended",
    }
}

/// Client events → tracker → call book → lines on `out`.
struct Feed<W> {
    tracker: AsteriskTracker,
    book: CallBook,
    events: Vec<TrackerEvent>,
    out: W,
}

impl<W: Write> Feed<W> {
    fn new(plan: NumberPlan, out: W) -> Self {
        Self {
            tracker: AsteriskTracker::new(plan),
            book: CallBook::new(TenantId::local()),
            events: Vec::new(),
            out,
        }
    }

    fn client_event(&mut self, event: ClientEvent) -> io::Result<()> {
        match event {
            ClientEvent::Resync {
                items,
                complete,
                at_ms,
                ..
            } => {
                // A partial list would end calls that are still up: keep what we know then.
                if complete {
                    self.tracker.resync(
                        &items,
                        Timestamp::from_unix_millis(at_ms),
                        &mut self.events,
                    );
                }
                self.apply()?;
                eprintln!(
                    "resynced: {} live call(s){}",
                    self.book.live().count(),
                    if complete {
                        ""
                    } else {
                        " (the channel list was incomplete; calls kept as they were)"
                    }
                );
                Ok(())
            }
            ClientEvent::Event {
                message,
                received_at_ms,
            } => {
                self.tracker.handle(
                    &message,
                    Timestamp::from_unix_millis(received_at_ms),
                    &mut self.events,
                );
                self.apply()
            }
        }
    }

    fn apply(&mut self) -> io::Result<()> {
        let Self {
            book, events, out, ..
        } = self;
        for event in events.drain(..) {
            match event {
                TrackerEvent::Call(event) => match book.apply(&event) {
                    Ok(Some(update)) => write_line(out, &update_line(update.kind, &update.call))?,
                    Ok(None) => {}
                    Err(anomaly) => eprintln!("warning: {anomaly}"),
                },
                TrackerEvent::Presence(presence) => write_line(
                    out,
                    &PresenceLine {
                        presence: PresenceView::from(&presence),
                    },
                )?,
            }
        }
        out.flush()
    }
}

fn update_line(kind: UpdateKind, call: &Call) -> UpdateLine {
    UpdateLine {
        update: update_name(kind),
        call: CallRecord::new(call, true),
    }
}

fn write_line(out: &mut impl Write, line: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, line).map_err(io::Error::other)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use calldesk_calls::{DeviceState, Extension};

    #[test]
    fn presence_lines_are_tagged_objects() {
        let device = PresenceEvent::Device {
            extension: Extension::new("101").unwrap(),
            state: DeviceState::RingInUse,
        };
        let member = PresenceEvent::QueueMember {
            extension: Extension::new("102").unwrap(),
            queue: "support".to_owned(),
            paused: true,
            reason: Some("lunch".to_owned()),
        };
        let text = |e: &PresenceEvent| {
            serde_json::to_string(&PresenceLine { presence: e.into() }).unwrap()
        };
        assert_eq!(
            text(&device),
            r#"{"presence":{"kind":"device","extension":"101","state":"ring_in_use"}}"#
        );
        assert_eq!(
            text(&member),
            r#"{"presence":{"kind":"queue_member","extension":"102","queue":"support","paused":true,"reason":"lunch"}}"#
        );
    }

    #[test]
    fn states_read_as_sentences() {
        let addr = "pbx:5038";
        assert_eq!(
            describe(&ConnState::Connecting { attempt: 2 }, addr),
            "connecting to pbx:5038 (attempt 2)…"
        );
        assert_eq!(
            describe(
                &ConnState::Disconnected {
                    reason: "the AMI connection was closed".to_owned(),
                    retry_in: Duration::from_millis(1230),
                },
                addr
            ),
            "disconnected: the AMI connection was closed; retrying in 1.2 s"
        );
        assert_eq!(address("::1", 5038), "[::1]:5038");
        assert_eq!(address("pbx.example.com", 5039), "pbx.example.com:5039");
    }
}
