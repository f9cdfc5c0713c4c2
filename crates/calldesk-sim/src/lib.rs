//! # calldesk-sim: a fake Asterisk 20 PBX for tests and demos
//!
//! [`ami::AmiSimulator`] is an AMI server on a TCP socket (use `127.0.0.1:0` in tests) that behaves
//! like the real Asterisk 20.20.1 recorded in `shared/fixtures/ami`: the same greeting, the same
//! login/permission/ping/logoff/unknown-action replies, and scripted inbound calls whose events
//! have the same types, order, header names and key values as the captures
//! `a_inbound_answered`, `b_inbound_noanswer` and `c_inbound_busy`.
//!
//! ## Layout
//!
//! * [`scenario`]: the **pure** call model. [`scenario::render`] turns a [`ScenarioCall`] plus
//!   identifiers and a start time into `Vec<(offset, Outgoing)>`; there is no clock inside.
//! * [`ami`]: the server (tokio). It owns the listener, one task per connection, and a
//!   scheduler task that renders calls (from [`ami::AmiSimHandle::play`] or the
//!   [`ami::Schedule::Demo`] schedule) and broadcasts their events at the right offsets.
//! * [`demo`]: deterministic demo data ([`demo::demo_caller`]).
//!
//! ## Behaviour worth knowing
//!
//! * Events reach only sessions that are logged in with events on (`Events: off` at login or the
//!   `Events` action turns them off).
//! * **Slow clients are disconnected**, like Asterisk does: each session has a bounded event queue
//!   ([`ami::AmiSimConfig::event_queue_len`]) and every socket write has a timeout
//!   ([`ami::AmiSimConfig::write_timeout`], Asterisk's `writetimeout` is 100 ms). A session that
//!   falls further behind than the queue, or whose write times out, is closed; other sessions are
//!   never blocked.
//! * MD5 `Challenge` login is not implemented; `Challenge` gets the real "Invalid/unknown command"
//!   error.
//!
//! ## Tests
//!
//! `tests/captures.rs` compares the rendered scenarios with the real captures (event names,
//! header names in order, and call-defining values); `tests/server.rs` exercises the server over
//! real loopback sockets.

pub mod ami;
pub mod demo;
pub mod scenario;

pub use scenario::{ScenarioCall, ScenarioKind};
