//! What the control planner needs to know about live channels: the tracker's view, behind a
//! trait so the planner can be tested with a plain map.

use calldesk_calls::{CallId, Extension};

/// Live channels of the calls the tracker follows.
pub trait ChannelDirectory {
    /// `extension`'s live channel in `call` (an operator leg), e.g. `SIP/101-0000002a`.
    fn operator_channel(&self, call: &CallId, extension: &Extension) -> Option<String>;
    /// The customer's live channel in `call`: the trunk leg of an inbound or outbound call (for
    /// an internal call, the calling extension's channel).
    fn customer_channel(&self, call: &CallId) -> Option<String>;
    /// Every live non-`Local/` channel of `call`.
    fn call_channels(&self, call: &CallId) -> Vec<String>;
}
