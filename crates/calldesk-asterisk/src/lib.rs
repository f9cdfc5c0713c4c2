//! calldesk-asterisk: what Asterisk's AMI means, as pure code (layer 0: no tokio, no sockets,
//! never reads the clock).
//!
//! - [`AsteriskTracker`]: folds decoded AMI events into domain `CallEvent`s.
//! - [`ChannelDirectory`]: the tracker's view of live channels, used by the control planner.
//! - [`Replayer`]: bytes → codec → tracker → call book, without IO (replay, bench, tests).
//! - `actions`: turns a domain `Control` into the AMI actions that carry it out.

pub mod actions;
mod directory;
mod replay;
mod tracker;

pub use directory::ChannelDirectory;
pub use replay::{Replayer, RxChunk, TimelineError, rx_chunks, split_messages};
pub use tracker::{AsteriskTracker, TrackerEvent, extension_of_channel};
