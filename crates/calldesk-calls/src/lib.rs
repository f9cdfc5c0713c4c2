//! calldesk domain model (layer 0: pure — no tokio, no sockets, never reads the clock).
//!
//! One vocabulary for every PBX: the Asterisk and Mango trackers fold their protocol events into
//! [`CallEvent`]s, and a [`CallBook`] folds those into live [`Call`]s, emitting [`CallUpdate`]s for
//! the stores, the hub's fan-out and the desktop UI.
//!
//! Main types:
//! - identifiers: [`CallId`], [`TenantId`], [`Extension`] — validated newtypes that can never hold
//!   control characters (they end up in protocol lines and SQL parameters);
//! - numbers: [`NumberPlan`] (default region, e.g. RU) turns what a PBX sent into a [`Party`], with a
//!   normalised E.164 [`PhoneNumber`] when the text is a real phone number;
//! - calls: [`Call`], [`CallPhase`], [`CallStatus`], [`Direction`], [`HangupCause`], [`Timestamp`];
//! - [`CallBook`]: the live calls of one tenant, keyed by id;
//! - controls: [`Control`] and the [`Pbx`] trait every backend implements ([`Capabilities`],
//!   [`ControlError`] with stable codes);
//! - presence: [`PresenceEvent`] (phone state, queue pause) for the supervisor's board.
//!
//! Invariants:
//! - Time is an input: every event carries its own [`Timestamp`].
//! - Applying an event twice changes nothing the second time ([`CallBook::apply`] returns `None`),
//!   events for a call that already ended are ignored, and an ended call never comes back to life.
//! - A call's final status is decided once, when it ends (see [`CallStatus`] for the rules).
//!
//! Tests: data-driven (`tests/it`): a small script of events in, the rendered updates out.

mod book;
mod call;
mod control;
mod ids;
mod phone;
mod presence;
mod time;

pub use book::{Anomaly, CallBook, CallUpdate, UpdateKind};
pub use call::{
    Call, CallEvent, CallEventKind, CallFacts, CallPhase, CallStatus, CivilTime, Direction,
    HangupCause, Monitor, Timestamp, Transfer,
};
pub use control::{
    Capabilities, Control, ControlError, ControlOutcome, Destination, DtmfDigits, MonitorMode, Pbx,
    RecordAction, TransferKind,
};
pub use ids::{CallId, Extension, IdError, TenantId};
pub use phone::{NumberPlan, Party, PartyMemo, PhoneError, PhoneNumber};
pub use presence::{DeviceState, PresenceEvent};
pub use time::parse_rfc3339_micros;
