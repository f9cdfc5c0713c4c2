//! After-call work beyond notes: tags on a call ([`normalize_tags`], one rule for hub and desk)
//! and the missed-calls worklist — a caller whose inbound calls went unanswered, until someone
//! reaches them or closes the item ([`CallbackItem`] as the hub serves it, [`CallbackView`] as
//! the desktop shows it, [`CallbackOutcome`] how it was closed).

use calldesk_calls::Timestamp;
use serde::{Deserialize, Serialize};

/// At most this many tags on one call.
pub const MAX_TAGS: usize = 10;
/// A tag is 1 to this many characters.
pub const MAX_TAG_CHARS: usize = 32;

/// The stored form of a call's tags: each trimmed and lowercased, 1–32 letters (any script),
/// digits, `-` or `_`; duplicates dropped; sorted; at most [`MAX_TAGS`]. The error says which
/// tag is wrong and why.
pub fn normalize_tags(raw: &[String]) -> Result<Vec<String>, String> {
    let mut tags = Vec::with_capacity(raw.len());
    for tag in raw {
        let tag = tag.trim().to_lowercase();
        let len = tag.chars().count();
        if len == 0 {
            return Err("a tag is empty".to_owned());
        }
        if len > MAX_TAG_CHARS {
            return Err(format!(
                "tag `{}` is {len} characters long; at most {MAX_TAG_CHARS} are allowed",
                tag.escape_debug()
            ));
        }
        if let Some(bad) = tag
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_')))
        {
            return Err(format!(
                "tag `{}` contains `{}`: use letters, digits, `-` or `_`",
                tag.escape_debug(),
                bad.escape_debug()
            ));
        }
        tags.push(tag);
    }
    tags.sort();
    tags.dedup();
    if tags.len() > MAX_TAGS {
        return Err(format!(
            "{} tags on one call; at most {MAX_TAGS} are allowed",
            tags.len()
        ));
    }
    Ok(tags)
}

/// How a callback was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallbackOutcome {
    /// Someone talked to the caller.
    Reached,
    /// Called back, nobody answered; the operator gives up.
    Unreachable,
    /// No call back needed (spam, wrong number, solved otherwise).
    NotNeeded,
}

impl CallbackOutcome {
    pub const ALL: [Self; 3] = [Self::Reached, Self::Unreachable, Self::NotNeeded];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reached => "reached",
            Self::Unreachable => "unreachable",
            Self::NotNeeded => "not_needed",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

/// A caller to call back, as the hub serves it (snake_case, RFC 3339 times): every unanswered
/// inbound call from `number` since the item was last closed, while no answered call with that
/// number came after them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackItem {
    /// The caller's number (E.164): the item's key.
    pub number: String,
    /// The caller card's contact, else company name, of the last missed call.
    pub name: Option<String>,
    pub company: Option<String>,
    /// How many calls were missed (since the item was last closed).
    pub missed: u32,
    pub first_missed_at: String,
    pub last_missed_at: String,
    pub last_call_id: String,
    /// The login of the operator who took it, if anyone did.
    pub claimed_by: Option<String>,
    pub claimed_at: Option<String>,
}

/// A caller to call back, as the desktop shows it (camelCase, unix ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackView {
    pub number: String,
    /// The number as people read it (`+7 495 123-45-67`): the engine's number plan fills it in.
    pub display: String,
    pub name: Option<String>,
    pub company: Option<String>,
    pub missed: u32,
    pub first_missed_at: i64,
    pub last_missed_at: i64,
    pub last_call_id: String,
    /// Who took it: a login (hub), `"me"` on this desk's own worklist, none if open.
    pub claimed_by: Option<String>,
    pub claimed_at: Option<i64>,
}

impl From<&CallbackItem> for CallbackView {
    fn from(c: &CallbackItem) -> Self {
        let ms = |t: &str| Timestamp::parse_rfc3339(t).map(Timestamp::unix_millis);
        Self {
            number: c.number.clone(),
            display: c.number.clone(),
            name: c.name.clone(),
            company: c.company.clone(),
            missed: c.missed,
            first_missed_at: ms(&c.first_missed_at).unwrap_or(0),
            last_missed_at: ms(&c.last_missed_at).unwrap_or(0),
            last_call_id: c.last_call_id.clone(),
            claimed_by: c.claimed_by.clone(),
            claimed_at: c.claimed_at.as_deref().and_then(ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(raw: &[&str]) -> Result<Vec<String>, String> {
        normalize_tags(&raw.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn tags_are_trimmed_lowercased_sorted_and_unique() {
        assert_eq!(
            tags(&[" VIP ", "ремонт", "vip", "follow-up", "a_b"]).unwrap(),
            ["a_b", "follow-up", "vip", "ремонт"]
        );
        assert_eq!(tags(&[]).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn bad_tags_say_what_is_wrong() {
        assert!(tags(&["  "]).unwrap_err().contains("empty"));
        assert!(tags(&["two words"]).unwrap_err().contains("` `"));
        assert!(tags(&["x\r\ny"]).unwrap_err().contains("\\r"));
        assert!(tags(&[&"x".repeat(33)]).unwrap_err().contains("at most 32"));
        let many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
        assert!(normalize_tags(&many).unwrap_err().contains("11 tags"));
        // duplicates count once
        let same: Vec<String> = (0..20).map(|_| "t".to_owned()).collect();
        assert_eq!(normalize_tags(&same).unwrap(), ["t"]);
    }

    #[test]
    fn outcomes_round_trip_their_names() {
        for o in CallbackOutcome::ALL {
            assert_eq!(CallbackOutcome::from_name(o.as_str()), Some(o));
        }
        assert_eq!(CallbackOutcome::from_name("done"), None);
    }

    #[test]
    fn hub_item_becomes_the_desk_view() {
        let item = CallbackItem {
            number: "+74951234567".into(),
            name: Some("Ivan".into()),
            company: None,
            missed: 2,
            first_missed_at: "2026-11-21T10:00:00Z".into(),
            last_missed_at: "2026-11-21T10:05:00.250Z".into(),
            last_call_id: "c2".into(),
            claimed_by: Some("anna".into()),
            claimed_at: Some("garbled".into()),
        };
        let v = CallbackView::from(&item);
        assert_eq!(v.last_missed_at - v.first_missed_at, 300_250);
        assert_eq!(v.claimed_at, None);
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["lastCallId"], "c2");
        assert_eq!(json["claimedBy"], "anna");
    }
}
