//! The Mango call tracker (pure). Placeholder interface; the fold lands in the next commit.

use calldesk_calls::CallId;

use crate::webhook::{LegParty, LegState, Location};

/// A leg of a live call, as the command client needs it to address a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLeg {
    pub call_id: String,
    pub state: LegState,
    pub location: Option<Location>,
    pub from: LegParty,
    pub to: LegParty,
}

impl LiveLeg {
    /// Whether `extension` is one side of this leg.
    pub fn has_extension(&self, extension: &str) -> bool {
        self.from.extension.as_deref() == Some(extension)
            || self.to.extension.as_deref() == Some(extension)
    }
}

/// Who answers "which legs does this call have now" (the tracker; a test double in tests).
pub trait LegDirectory {
    /// The legs of a live call that have not disconnected, in order of appearance; `None` when
    /// the call is not live.
    fn live_legs(&self, call: &CallId) -> Option<Vec<LiveLeg>>;
}

#[derive(Debug, Default)]
pub struct MangoTracker;
