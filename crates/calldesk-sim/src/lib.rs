//! # calldesk-sim: a fake Asterisk 20 PBX and a fake Mango Office VPBX for tests and demos
//!
//! The fake Mango (signed webhooks, the command API, recordings, stats) is [`mango`]; its module
//! docs say what it fakes and what not. The rest of this page is about the fake Asterisk.
//!
//! [`ami::AmiSimulator`] is an AMI server on a TCP socket (use `127.0.0.1:0` in tests) that behaves
//! like the real Asterisk 20.20.1 recorded in `shared/fixtures/ami`: the same greeting, the same
//! login (plain and MD5 `Challenge`), permission/ping/logoff/unknown-action replies, and a
//! **stateful PBX**: a table of live channels (name, Uniqueid, Linkedid, state, caller id,
//! connected line, context/exten, bridge) and bridges, on which AMI actions act and from which
//! every event's snapshot is built.
//!
//! ## Layout
//!
//! * [`pbx`]: the **pure** PBX ([`pbx::Pbx`]): channels, bridges, queues, parking, id
//!   allocation and all call flows; time is an input (`play`/`action`/`advance(now)`, then
//!   `drain()` for the events and deferred replies). No tokio, no clock.
//! * [`scenario`]: the scripted-call vocabulary ([`ScenarioCall`], [`ScenarioKind`]) and
//!   [`scenario::render`], which plays one call on a fresh [`pbx::Pbx`] and returns its timed
//!   events.
//! * [`ami`]: the server (tokio): the listener, one task per connection, and one PBX task that
//!   owns the [`pbx::Pbx`], sleeps until its next timed step, runs actions for the sessions and
//!   the [`ami::AmiSimHandle`], and broadcasts events (also the [`ami::Schedule::Demo`] calls).
//! * [`demo`]: deterministic demo data ([`demo::demo_caller`]).
//!
//! ## What it answers, and the capture each flow is checked against (`tests/flows.rs`)
//!
//! | AMI / handle | behaviour | capture |
//! |---|---|---|
//! | `play` answered / missed / busy | inbound call via `Dial(SIP/<ext>,20,tTkK)` | `a`/`b`/`c` (exact, VarSet/Cdr included) |
//! | `play` `QueueAnswered` / `QueueAbandoned` | queue `support` (ringall) or `sales` | `k1_queue_answered`, busy-hour abandon |
//! | `Originate` `SIP/<ext>` (Async or not) | click-to-call, operator answers/busy/no answer per [`pbx::PhoneBehaviour`] | `h1`, `h2`, `h3` |
//! | `Originate` `Local/…` to `spy`/`L101`, `W101`, `B101`, or `Application: ChanSpy` | `ChanSpyStart`/`Stop` | `g_spy_listen_whisper_barge` |
//! | `Originate` to `701`-`720` | retrieves a parked call (`UnParkedCall`) | `f2_park_retrieve` |
//! | `Redirect` | both legs leave, old peer hung up, new Dial | `d1_blind_transfer_redirect` |
//! | `BlindTransfer` | `Unhold`, `BlindTransfer`, transferer hung up, target dialled | README (no capture) |
//! | `Atxfer` + transferer hangs up (`Hangup` action or [`ami::AmiSimHandle::phone_hangup`]) | DTMF, Hold/MoH, Local pair, merge, `AttendedTransfer`, Local optimization | `e_attended_transfer` |
//! | `Park`, `ParkedCalls` | holding bridge, MoH, `Park successful\n` (bare LF) | `f2_park_retrieve` |
//! | `MixMonitor`, `MixMonitorMute`, `StopMixMonitor` | bare `Success`; `VarSet MIXMONITOR_FILENAME`, Start/Mute/Stop | `i_mixmonitor_ami` |
//! | `PlayDTMF` | `Message: DTMF successfully queued`, no event (app_senddtmf's texts); tones kept in [`pbx::SimCall::dtmf`] | app_senddtmf.c (no capture) |
//! | [`ami::AmiSimHandle::hold`] | `Hold`/`Unhold` + `MusicOnHoldStart`/`Stop` | `f_hold_moh` |
//! | `QueuePause`, `QueueAdd`, `QueueRemove`, `QueueStatus`, `QueueSummary` | member events, real error texts | `k3_queue_member_mgmt` |
//! | `CoreShowChannels`, `Status`, `BridgeList`, `CoreStatus`, `Getvar`, `Hangup` | lists with `EventList`, ActionID in items | `j3`, `j2` |
//! | [`ami::AmiSimHandle::restart`] | `SoftHangupRequest Cause: 4`, teardown, `Shutdown`, close, refuse, `Uptime: 0`, new epoch | `j6_restart_reconnect` |
//!
//! ## Behaviour worth knowing
//!
//! * Events reach only logged-in sessions whose event mask (`Events` at login or the `Events`
//!   action: `on`, `off`, or a class list such as `call,agent`) contains the event's class.
//! * A **synchronous `Originate`** (no `Async`) is answered only once decided, and that session
//!   gets no events meanwhile (they follow the reply), as with Asterisk.
//! * **Slow clients are disconnected**, like Asterisk does: each session has a bounded event queue
//!   ([`ami::AmiSimConfig::event_queue_len`]) and every socket write has a timeout
//!   ([`ami::AmiSimConfig::write_timeout`], Asterisk's `writetimeout` is 100 ms). A session that
//!   falls further behind than the queue, or whose write times out, is closed; other sessions are
//!   never blocked.
//! * **Reconnect levers**: [`ami::AmiSimHandle::drop_connections`] closes every session while
//!   calls go on; [`ami::AmiSimHandle::pause_accepting`] resets new connections before the
//!   greeting; [`ami::AmiSimHandle::restart`] restarts the PBX. Restarted counters use a new
//!   Uniqueid epoch, so no Uniqueid of a run is ever given out twice.
//! * **Truth for tests**: [`ami::AmiSimHandle::live_calls`] returns the calls as the PBX sees
//!   them ([`pbx::SimCall`]); [`ami::AmiSimHandle::start_call`] returns a call's Linkedid and
//!   [`ami::AmiSimHandle::hangup_call`] ends it (a long `talk` keeps a call up until then).
//! * Not modelled: the parking timeout (calls stay parked), `CancelAtxfer`, `Redirect` with
//!   `ExtraChannel`, `Hangup` with a `/regex/`, CEL and RTCP events; `Cdr` only for the trunk
//!   leg of scripted inbound calls.
//!
//! ## Tests
//!
//! `tests/captures.rs` compares the rendered inbound scenarios with captures a/b/c (every
//! message but CEL/RTPAUDIOQOS: names, header names in order, call-defining values);
//! `tests/flows.rs` drives the pure PBX with the counters, callers and timings of the other
//! captures and compares the call-relevant events per channel and per bridge (header names in
//! order, key values, identities through a consistent mapping); `tests/server.rs` exercises the
//! server over real loopback sockets (MD5 login, click-to-call, event masks, drop/pause/resync
//! against `live_calls`, restart, hold and park).

pub mod ami;
pub mod demo;
pub mod mango;
pub mod pbx;
pub mod s3;
pub mod scenario;

pub use mango::{FakeMango, FakeMangoConfig, MangoScenario};
pub use scenario::{ScenarioCall, ScenarioKind};
