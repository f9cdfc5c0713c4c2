//! calldesk Asterisk adapter (layer 1): the tokio AMI client and the AMI call-control backend.
//!
//! # The client ([`AmiClient`])
//!
//! `AmiClient::start(config, shutdown)` spawns a driver that keeps one AMI session alive and
//! returns a cheap `Clone` handle plus the consumer's `mpsc::Receiver<ClientEvent>`.
//!
//! - **Connect**: TCP, or TLS with rustls (feature `tls`, on by default; ring backend; system
//!   roots or a CA file/PEM, [`TlsConfig`]). Credentials are sent only after a known AMI
//!   banner. Login is plain (`Secret`) or MD5 challenge (`Challenge`, then `Key` =
//!   `md5_hex(challenge + secret)`; [`AuthMethod`]), with the configured `Events:` mask
//!   ([`EventMask`]). A refused login is final ([`ConnState::LoginRejected`]): retrying a wrong
//!   secret only gets the desktop banned.
//! - **Actions**: [`AmiClient::send`]`(action, completion, timeout)` assigns the `ActionID`,
//!   routes replies by it and completes per [`Completion`] (one definition, shared with the
//!   planner in `calldesk_asterisk::actions`): `Response`, `EventList` (items until
//!   `EventList: Complete`), `AsyncEvent("OriginateResponse")` (the response, then the event
//!   with the same ActionID). `Response: Error` is [`ActionError::Rejected`] with the server's
//!   sanitised text. Every action has its own timeout. Anything no pending action claims — an
//!   event, a late `OriginateResponse` after a timeout — goes to the event stream, and so does
//!   an `OriginateResponse` that completes an action (the tracker needs it to tell a failed
//!   click-to-call).
//! - **Never blocking the socket**: per session a reader task only decodes and forwards (into
//!   an unbounded queue to the driver), a writer task serialises actions, and the driver hands
//!   events to the consumer with `try_send` on a bounded queue. When that queue is full the
//!   client drops events, reports [`ConnState::Degraded`] and, once the consumer has drained
//!   half of it, resyncs on the same session — so Asterisk never sees a slow reader (it cuts
//!   sessions whose writes block for `writetimeout`, 100 ms by default) and the consumer never
//!   silently misses events.
//! - **Resync after every login**: `CoreShowChannels` (and `QueueStatus` if configured) are
//!   collected and delivered as one [`ClientEvent::Resync`] before any event received after
//!   the login; events that arrive meanwhile are held and delivered after it, in order.
//! - **Keepalive**: a `Ping` every `ping_interval`; no answer within `ping_timeout` means the
//!   session is dead and the client reconnects. An `Event: Shutdown` names the reason.
//! - **Reconnect** with exponential backoff and equal jitter ([`Backoff`], also used by the
//!   engine), reset after a stable session. Actions pending when a session drops fail with
//!   [`ActionError::Disconnected`]`{ maybe_executed }` (false only if never written to the
//!   socket). Only read-only actions ([`is_safe_to_resend`]) are re-sent on the next session;
//!   Originate, Redirect, Atxfer, BlindTransfer, Park, MixMonitor, Hangup… never are.
//! - **State** through a `watch` ([`ConnState`]). Server texts are stripped of control
//!   characters and capped; secrets never reach `Debug` or logs ([`AmiCredentials`],
//!   `Outgoing`, the login bytes are wiped after writing).
//!
//! # Call controls ([`AmiPbx`])
//!
//! Implements `calldesk_calls::Pbx`: each control is planned by the pure
//! `calldesk_asterisk::actions::plan` (mapping and its reasons documented there) against a
//! `ChannelDirectory` shared with the tracker's owner, then sent step by step. AMI errors
//! become `ControlError::Refused` (sanitised text), timeouts `TimedOut`, lost sessions
//! `Disconnected { maybe_executed }`, a failed `OriginateResponse` `NotAnswered` (busy, no
//! answer…).
//!
//! # Also here
//!
//! [`run_session`]: the client's events through the tracker as [`SessionOutput`]s (call
//! events, presence, resync notices, connection states) for one consumer — the desktop engine
//! and the hub's per-tenant sessions; [`connection_view`] words a state for a status bar.
//! [`AmiConnection`]: the simple sequential session (connect, plain login, send, read) the
//! engine still uses, and the re-exported [`AsteriskTracker`].
//!
//! Tested over real sockets against scripted servers that replay the real Asterisk 20
//! captures byte for byte (tests/client.rs, tests/pbx.rs, tests/tls.rs) and against the
//! simulator (tests/connection.rs).

mod backoff;
mod client;
mod connection;
mod pbx;
mod session;
mod text;
mod transport;

pub use backoff::{Backoff, BackoffConfig};
pub use calldesk_asterisk::actions::Completion;
pub use calldesk_asterisk::{AsteriskTracker, extension_of_channel};
pub use client::{
    ActionError, AmiClient, AmiClientConfig, ClientEvent, ConnState, Reply, is_safe_to_resend,
};
pub use connection::{AmiConnection, AmiCredentials, AmiError, AuthMethod, EventMask};
pub use pbx::AmiPbx;
pub use session::{SessionOutput, connection_view, run_session};
pub use transport::{TlsConfig, TlsRoots};
