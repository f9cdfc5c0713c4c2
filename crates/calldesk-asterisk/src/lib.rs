//! calldesk-asterisk: what Asterisk's AMI means, as pure code (layer 0: no tokio, no sockets,
//! never reads the clock).
//!
//! - [`AsteriskTracker`]: folds decoded AMI events into domain `CallEvent`s.
//! - [`ChannelDirectory`]: the tracker's view of live channels, used by the control planner.
//! - `actions`: turns a domain `Control` into the AMI actions that carry it out.

pub mod actions;
mod directory;
mod tracker;

pub use directory::ChannelDirectory;
pub use tracker::{AsteriskTracker, extension_of_channel};
