//! calldesk Mango Office adapter (IO half): the VPBX command client and the `Pbx` backend.
//!
//! - [`MangoClient`] (built from [`MangoConfig`]): one signed `POST <base>/<path>` per request
//!   (`vpbx_api_key`, `sign`, `json`, urlencoded); the body is serialised once and that exact
//!   string is signed. Commands return their `command_id` (UUID v4) to correlate `/result/*`
//!   webhooks and call events: `callback`, `callback_group`, `hangup`, `route`, `transfer`,
//!   `hold_on`, `recording_start`, `play_start`, `sms`. Queries: `users`, `stats_request`,
//!   `stats_result`, `stats` (request + poll + parse), `download_recording` (streams the
//!   one-shot file into an `AsyncWrite`).
//! - [`MangoPbx`] implements [`calldesk_calls::Pbx`] on the legs a
//!   [`calldesk_mango_proto::tracker::LegDirectory`] knows (see [`pbx::CAPABILITIES`]).
//!
//! Invariants:
//! - Every value is checked before sending ([`MangoError::Invalid`]); nothing doubtful leaves.
//! - 3xxx answers ([`MangoError::BadRequest`]) are never retried; a 401 locks the key out and
//!   every request fails locally ([`MangoError::LockedOut`]) until the lock passes.
//! - 429 is retried with exponential backoff and jitter; 5xxx, 5xx and transport errors only for
//!   queries or a request that provably never left: a command is never sent twice.
//! - Requests wait (never fail) for their rate class's spacing; one limiter per class per
//!   client, i.e. per product.
//! - TLS is `calldesk-tls` (rustls, the ring provider given explicitly); system roots plus optional PEM
//!   roots. The salt and the signatures are never logged.

pub mod client;
pub mod config;
pub mod error;
pub mod pbx;

pub use calldesk_mango_proto::command::{StatsParty, TransferMethod, User};
pub use calldesk_mango_proto::stats::StatsRow;
pub use calldesk_mango_proto::{Code, Credentials};
pub use client::{Download, MangoClient, StatsFilter};
pub use config::{DEFAULT_BASE_URL, MIN_STATS_POLL, MangoConfig};
pub use error::MangoError;
pub use pbx::MangoPbx;
/// The URL type of [`MangoConfig::base_url`].
pub use reqwest::Url;
