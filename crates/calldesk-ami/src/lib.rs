//! calldesk Asterisk adapter (layer 1): talks AMI to Asterisk and folds what it hears into the
//! domain's [`calldesk_calls::CallEvent`]s.
//!
//! - [`AmiConnection`]: one logged-in AMI session over TCP (tokio). It frames bytes with the
//!   sans-IO `calldesk-ami-proto` decoder, so reading is cancel-safe and never fails the session
//!   on odd input.
//! - [`AsteriskTracker`]: pure (no IO, time is an input) — AMI events in, `CallEvent`s out.
//!
//! Scope today is the skeleton's "minimal AMI handling": login, keepalive `Ping`, and inbound
//! calls (answered / missed / busy). The next issue ("AMI") grows this into the full client
//! (MD5 login, action correlation, reconnect with resync) and the full tracker (transfers, hold,
//! queues, spy, recordings).
//!
//! Tested against the real Asterisk 20 captures in `shared/fixtures/ami` (tests/captures.rs:
//! each capture must produce exactly the calls in its `expected/*.json`) and against the
//! simulator over a real socket (tests/connection.rs).

mod connection;

pub use calldesk_asterisk::{AsteriskTracker, extension_of_channel};
pub use connection::{AmiConnection, AmiCredentials, AmiError};
