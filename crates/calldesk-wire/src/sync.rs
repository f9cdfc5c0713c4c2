//! Desk ↔ hub sync (`POST /api/sync/push`, `GET /api/sync/pull`): snake_case, like the hub's
//! other JSON.
//!
//! A desk writes every change locally first, with an outbox row carrying a [`SyncChange`] and a
//! UUID the desk made; the sync worker pushes outbox rows in batches and the hub applies each id
//! once (a batch sent twice changes nothing), answering a [`SyncResult`] per change. The desk
//! pulls the calls whose history or after-call work changed since its cursor as whole
//! [`HubCall`]s ([`SyncPage`]).
//!
//! Conflict rule (the hub applies it): notes are append-only (every note is kept, keyed by its
//! id); a disposition and a call's tag set are last-writer-wins **by the hub's clock** — the
//! change that reaches the hub last wins, whenever the desk made it; calls belong to the PBX side
//! — a call a desk reports (Direct AMI profile) is stored only if the hub has no such call, and
//! never replaces what the hub heard from the PBX; a worklist claim made away from the hub is
//! the hub's compare-and-set when it arrives (refused, naming the holder, if someone else
//! took the item meanwhile).

use serde::{Deserialize, Serialize};

use crate::HubCall;

/// The most changes one push may carry.
pub const MAX_PUSH: usize = 1000;
/// The most calls one pull returns.
pub const MAX_PULL: usize = 1000;

/// One change a desk made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncChange {
    /// The desk's UUID for this change: the hub applies each id once.
    pub id: String,
    pub call_id: String,
    /// When the desk made it (unix ms, the desk's clock; a note keeps it as its time unless it
    /// is in the hub's future).
    pub at: i64,
    #[serde(flatten)]
    pub change: ChangeKind,
}

/// What changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChangeKind {
    /// A note added (notes are append-only; the note's id is the change's id).
    Note { text: String },
    /// The call's disposition set (replaces the one before).
    Disposition { code: String },
    /// The call's tags replaced as a set.
    Tags { tags: Vec<String> },
    /// A call this desk heard from its own PBX session (Direct AMI profile), ended.
    Call { call: Box<HubCall> },
    /// A missed-calls worklist item taken, given back or closed (`outcome` for a close). The
    /// change's `call_id` is the caller's number (E.164). The hub's rules apply when it arrives:
    /// an item someone else holds is refused, with who holds it.
    Callback {
        action: CallbackAction,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outcome: Option<crate::CallbackOutcome>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackAction {
    Claim,
    Release,
    Close,
}

impl ChangeKind {
    pub const fn name(&self) -> &'static str {
        match self {
            Self::Note { .. } => "note",
            Self::Disposition { .. } => "disposition",
            Self::Tags { .. } => "tags",
            Self::Call { .. } => "call",
            Self::Callback { .. } => "callback",
        }
    }
}

/// `POST /api/sync/push`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPush {
    pub changes: Vec<SyncChange>,
}

/// What the hub did with each change of a push, in the push's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPushReply {
    pub results: Vec<SyncResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResult {
    pub id: String,
    pub outcome: SyncOutcome,
    /// Why it was refused or must wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncOutcome {
    /// Applied now.
    Applied,
    /// Applied before (the same id was pushed already): nothing changed.
    Duplicate,
    /// Never applicable (a code not in the list, a call this operator may not touch): the desk
    /// stops sending it and shows why.
    Refused,
    /// Not yet (the hub does not have the call yet): the desk sends it again later.
    Retry,
}

/// `GET /api/sync/pull?cursor=&limit=`: the calls (with notes, disposition, tags and
/// recording states) whose history or after-call work changed after `cursor`, each once as it
/// is now, in the commit order of their latest change; `cursor` is where the next pull starts,
/// `more` says whether it would find more now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncPage {
    pub calls: Vec<HubCall>,
    pub cursor: String,
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_flat_json_with_its_kind() {
        let change = SyncChange {
            id: "0d6f0e9e-4a43-4c55-9b9e-1c1a5e0c2b11".into(),
            call_id: "1700000000.12".into(),
            at: 1_700_000_000_000,
            change: ChangeKind::Disposition {
                code: "sale".into(),
            },
        };
        let json = serde_json::to_value(&change).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "0d6f0e9e-4a43-4c55-9b9e-1c1a5e0c2b11",
                "call_id": "1700000000.12",
                "at": 1_700_000_000_000_i64,
                "kind": "disposition",
                "code": "sale"
            })
        );
        assert_eq!(serde_json::from_value::<SyncChange>(json).unwrap(), change);
        let bad = serde_json::json!({"id": "x", "call_id": "c", "at": 1, "kind": "delete"});
        assert!(serde_json::from_value::<SyncChange>(bad).is_err());
        let result = SyncResult {
            id: "x".into(),
            outcome: SyncOutcome::Retry,
            error: None,
        };
        assert_eq!(
            serde_json::to_string(&result).unwrap(),
            r#"{"id":"x","outcome":"retry"}"#
        );
    }
}
