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
//! `../shared/protocols/mango-vpbx.md`; the call model: `docs/adr/0003`.
//!
//! ## Fuzzing
//!
//! `fuzz/` holds a cargo-fuzz target (its own workspace, excluded from the main one). From
//! `crates/calldesk-mango-proto` (`cargo install cargo-fuzz`; nightly, or `RUSTC_BOOTSTRAP=1`):
//!
//! ```text
//! cargo +nightly fuzz run webhook -- -max_total_time=300 -max_len=4096
//! ```
//!
//! `webhook`: arbitrary form bodies and payloads on every route: no panic in the form parser,
//! `Webhook::receive`/`parse` or the tracker (`handle` twice, `tick`, `finish`); a payload
//! signed with `SignedForm::encode` is received as exactly what `Webhook::parse` gives, and with
//! the sign altered it is refused. Seeds: `fuzz/corpus/webhook/seed-*` (the scenario files).
//! Last run (cargo-fuzz 0.13.2, nightly, AddressSanitizer, one core, the other busy):
//! 1,077,187 executions in 5 min (3,578/s), 15,657 coverage edges (the phone-number parser
//! included), no crash.

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
