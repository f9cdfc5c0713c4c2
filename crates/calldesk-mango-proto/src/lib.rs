//! Mango Office VPBX API, the pure half (layer 0: no IO, no clock, no tokio).
//!
//! - [`sign`]: `sha256(key + json + salt)` for our requests and Mango's webhooks (constant-time
//!   check).
//! - [`webhook`]: routes, the signed form, and tolerant types for every event Mango posts.
//! - [`codes`]: result and disconnect codes, their classes and what they mean for a call.
//! - [`command`]: request bodies, synchronous responses and strict value checks.
//! - [`stats`]: the `stats/result` CSV.
//! - [`tracker`]: folds webhooks into the domain's `CallEvent`s (`entry_id` is the call).
//!
//! The IO half (the HTTP command client, rate limits, the `Pbx` implementation) is
//! `calldesk-mango`; the fake Mango is in `calldesk-sim`. Reference:
//! `../shared/protocols/mango-vpbx.md`.

pub mod codes;
pub mod command;
mod lenient;
pub mod replay;
pub mod sign;
pub mod stats;
pub mod tracker;
pub mod webhook;

pub use codes::{Code, Ending, Family};
pub use sign::Credentials;
pub use tracker::MangoTracker;
pub use webhook::{Route, SignedForm, Webhook, WebhookError};
