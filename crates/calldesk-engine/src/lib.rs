//! calldesk desktop engine (layer 2): everything the desktop app does, without Tauri.
//!
//! [`Engine::start`] takes an [`EngineConfig`] and returns an [`EngineHandle`] (cheap `Clone`)
//! that the Tauri shell keeps in its state. Inside run two tasks:
//! - the **PBX session** task: connects to AMI, logs in, keeps the session alive with `Ping`,
//!   feeds every message to the [`calldesk_ami::AsteriskTracker`], and reconnects with
//!   exponential backoff and jitter when the connection drops; it reports
//!   [`ConnectionStatus`] changes;
//! - the **call book** task: owns the [`calldesk_calls::CallBook`] and the local SQLite history
//!   ([`calldesk_store::LocalStore`]); applies call events, stores ended calls and publishes
//!   [`EngineEvent`]s.
//!
//! With the *Hub* profile a third task, the **sync worker** (`sync.rs`), pushes this desk's
//! after-call changes (queued in the local store's outbox with each write) to the hub and pulls
//! the hub's changes into the local history, so history, notes, dispositions and tags work the
//! same with the hub away.
//!
//! Profiles: *Demo* starts the built-in simulator (`calldesk-sim`, real AMI on loopback) and is
//! otherwise exactly *Direct AMI* pointed at it, so the demo exercises the real code path.
//! The *Hub* profile comes with the hub.
//!
//! Invariants: shutdown is an input ([`EngineHandle::shutdown`]); no lock is held across an
//! await (state lives in tasks, reached by channels); a lost PBX connection never blocks the
//! handle — snapshots are served by the call book task whatever the session is doing.
//!
//! Tested end to end in `tests/engine.rs`: Demo profile, simulator on a real socket, a temp
//! SQLite file.

mod book;
mod dispositions;
mod engine;
mod error;
mod figures;
mod hub;
mod latency;
mod links;
mod profiles;
mod recordings;
mod sync;

pub use calldesk_ami::AmiCredentials;
pub use calldesk_asterisk::actions::DialplanConfig;
pub use calldesk_secrets::{KeyringStore, MemoryStore, Secret, SecretStore, StoreError};
pub use calldesk_store::{HistoryPage, HistoryQuery, RefusedChange};
pub use engine::{Engine, EngineConfig, EngineEvent, EngineHandle, ProfileConfig, Seat};
pub use error::EngineError;
pub use figures::{OperatorFigures, figures};
pub use hub::{HubProfile, OperatorView};
pub use latency::PopLatency;
pub use links::dial_link_number;
pub use profiles::{
    HUB_SERVICE, HubLink, Profile, ProfileError, ProfileList, ProfileSettings, Profiles,
};
pub use recordings::OpenedRecording;
