//! Request bodies of the commands and queries we send (`POST https://app.mango-office.ru/vpbx/<PATH>`
//! with the signed form), their synchronous responses, and the strict checks applied to every
//! value before it is sent (a request Mango rejects as malformed counts towards its 2-minute key
//! lock-out, so nothing doubtful leaves the process).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::codes::Code;
use crate::lenient;

/// How often a request may be sent, per product (D26 §1.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateClass {
    /// 10 per second.
    Default,
    /// `commands/callback`, `commands/call/hangup`, `commands/recording/start`: 4 per second.
    Call,
    /// Recording downloads: 10 per second.
    Recording,
    /// `config/users/request`, `commands/transfer`, `commands/route`, `stats/request`: 1 per 2 s.
    Slow,
}

impl RateClass {
    /// The minimum spacing between two requests of this class, in milliseconds.
    pub const fn spacing_ms(self) -> u64 {
        match self {
            Self::Default | Self::Recording => 100,
            Self::Call => 250,
            Self::Slow => 2000,
        }
    }
}

/// A request body with its path and rate class.
pub trait Request: Serialize {
    /// Path below the API base, e.g. `commands/callback`.
    const PATH: &'static str;
    const RATE: RateClass;
    /// Whether Mango acts on it (a command) rather than only answering (a query). Commands are
    /// never re-sent after they may have reached Mango.
    const COMMAND: bool;
}

macro_rules! request {
    ($t:ty, $path:literal, $rate:ident, $command:literal) => {
        impl Request for $t {
            const PATH: &'static str = $path;
            const RATE: RateClass = RateClass::$rate;
            const COMMAND: bool = $command;
        }
    };
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackFrom {
    pub extension: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<String>,
}

/// `commands/callback`: ring the employee, then the number (click-to-call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Callback {
    pub command_id: String,
    pub from: CallbackFrom,
    pub to_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_headers: Option<BTreeMap<String, String>>,
}
request!(Callback, "commands/callback", Call, true);

/// `commands/callback_group`: connect a number and a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackGroup {
    pub command_id: String,
    pub from: String,
    pub to: String,
    pub line_number: String,
}
request!(CallbackGroup, "commands/callback_group", Call, true);

/// `commands/call/hangup`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hangup {
    pub command_id: String,
    pub call_id: String,
}
request!(Hangup, "commands/call/hangup", Call, true);

/// `commands/route`: send a leg waiting in the IVR or queue (or ringing) elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub command_id: String,
    pub call_id: String,
    pub to_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_headers: Option<BTreeMap<String, String>>,
}
request!(Route, "commands/route", Slow, true);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferMethod {
    Blind,
    /// Consultative: the other party waits on hold while the initiator calls the consultant.
    Hold,
}

/// `commands/transfer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    pub command_id: String,
    pub call_id: String,
    pub method: TransferMethod,
    pub to_number: String,
    pub initiator: String,
}
request!(Transfer, "commands/transfer", Slow, true);

/// `commands/call/hold/on`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldOn {
    pub command_id: String,
    pub call_id: String,
    pub initiator: String,
}
request!(HoldOn, "commands/call/hold/on", Default, true);

/// `commands/recording/start`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingStart {
    pub command_id: String,
    pub call_id: String,
    pub call_party_number: String,
}
request!(RecordingStart, "commands/recording/start", Call, true);

/// `commands/play/start`: play an uploaded audio file to a leg in the IVR or queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayStart {
    pub command_id: String,
    pub call_id: String,
    pub internal_id: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_play_time: Option<u32>,
}
request!(PlayStart, "commands/play/start", Default, true);

/// `commands/sms`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sms {
    pub command_id: String,
    pub text: String,
    pub from_extension: String,
    pub to_number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_sender: Option<String>,
}
request!(Sms, "commands/sms", Default, true);

/// `config/users/request`: employees (all, or one extension).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsersRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_fields: Option<Vec<String>>,
}
request!(UsersRequest, "config/users/request", Slow, false);

/// An `{extension, number}` filter of a stats request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsParty {
    #[serde(default)]
    pub extension: String,
    #[serde(default)]
    pub number: String,
}

/// `stats/request`: ask for a CSV report of the calls between two instants (≤ 1 month apart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsRequest {
    /// Unix seconds, as a string (as every client sends it).
    pub date_from: String,
    pub date_to: String,
    /// Comma-separated column names (see [`crate::stats::DEFAULT_FIELDS`]).
    pub fields: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<StatsParty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<StatsParty>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_party: Option<StatsParty>,
}
request!(StatsRequest, "stats/request", Slow, false);

/// `stats/result`: 204 while not ready, 404 for an unknown key, 200 with the CSV.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsResult {
    pub key: String,
}
request!(StatsResult, "stats/result", Default, false);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingAction {
    Download,
    Play,
}

/// `queries/recording/post`: answered with a 302 to a one-shot file link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingPost {
    pub recording_id: String,
    pub action: RecordingAction,
}
request!(RecordingPost, "queries/recording/post", Recording, false);

/// The synchronous answer to a command: `{"result":1000}`, or on errors `{"code":3104}` /
/// `{"result":3100,"fields":{"start_date":3111}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CommandResponse {
    #[serde(default, deserialize_with = "lenient::int")]
    pub result: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    pub code: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub command_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub message: Option<String>,
    #[serde(default)]
    pub fields: Option<serde_json::Value>,
}

impl CommandResponse {
    /// `result`, else `code`, as a [`Code`] (absent or out of range: `None`).
    pub fn code(&self) -> Option<Code> {
        self.result
            .or(self.code)
            .and_then(|c| u32::try_from(c).ok())
            .filter(|c| *c != 0)
            .map(Code)
    }
}

/// `config/users/request`'s answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UsersResponse {
    #[serde(default)]
    pub users: Vec<User>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct User {
    #[serde(default)]
    pub general: UserGeneral,
    #[serde(default)]
    pub telephony: UserTelephony,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserGeneral {
    #[serde(default, deserialize_with = "lenient::text")]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub login: Option<String>,
    #[serde(default)]
    pub sips: Vec<UserNumber>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserTelephony {
    #[serde(default, deserialize_with = "lenient::text")]
    pub extension: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub outgoingline: Option<String>,
    #[serde(default)]
    pub numbers: Vec<UserNumber>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct UserNumber {
    #[serde(default, deserialize_with = "lenient::text")]
    pub number: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub protocol: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub status: Option<String>,
}

impl User {
    /// Every address the employee can appear under in webhooks (`to.number`): SIP addresses
    /// with and without `sip:`, and the numbers of their card.
    pub fn addresses(&self) -> Vec<String> {
        let mut out = Vec::new();
        let all = self.general.sips.iter().chain(&self.telephony.numbers);
        for n in all.filter_map(|n| n.number.as_deref()) {
            let bare = n.strip_prefix("sip:").unwrap_or(n);
            for a in [bare.to_owned(), format!("sip:{bare}")] {
                if !out.contains(&a) {
                    out.push(a);
                }
            }
        }
        out
    }
}

/// A `stats/request` answer: the key to poll with.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StatsKey {
    #[serde(deserialize_with = "lenient::text")]
    pub key: Option<String>,
}

/// Why a value may not be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidValue {
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} is too long ({len} bytes; at most {max})")]
    TooLong {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} {value:?} is not valid: {why}")]
    Bad {
        field: &'static str,
        value: String,
        why: &'static str,
    },
}

fn bad(field: &'static str, value: &str, why: &'static str) -> InvalidValue {
    InvalidValue::Bad {
        field,
        value: value.chars().take(64).collect(),
        why,
    }
}

fn bounded(field: &'static str, value: &str, max: usize) -> Result<(), InvalidValue> {
    if value.is_empty() {
        return Err(InvalidValue::Empty { field });
    }
    if value.len() > max {
        return Err(InvalidValue::TooLong {
            field,
            len: value.len(),
            max,
        });
    }
    if value.chars().any(char::is_control) {
        return Err(bad(field, value, "it contains control characters"));
    }
    Ok(())
}

/// An employee's short number: 1–10 digits (leading zeros kept).
pub fn check_extension(field: &'static str, value: &str) -> Result<(), InvalidValue> {
    bounded(field, value, 10)?;
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(field, value, "an extension is digits only"));
    }
    Ok(())
}

/// A number Mango can dial: digits with an optional leading `+` (3–20 digits), an extension,
/// or a SIP address `sip:user@domain` (no spaces, quotes or angle brackets).
pub fn check_number(field: &'static str, value: &str) -> Result<(), InvalidValue> {
    bounded(field, value, 128)?;
    if let Some(sip) = value.strip_prefix("sip:") {
        let ok = sip.split_once('@').is_some_and(|(u, d)| {
            !u.is_empty()
                && !d.is_empty()
                && sip
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"@.-_+!~*'()&=$,;?/%".contains(&b))
        });
        return if ok {
            Ok(())
        } else {
            Err(bad(field, value, "a SIP address is sip:user@domain"))
        };
    }
    let digits = value.strip_prefix('+').unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 20 {
        return Err(bad(
            field,
            value,
            "a number is digits with an optional leading +",
        ));
    }
    Ok(())
}

/// An opaque id (`call_id`, `recording_id`, `command_id`): printable, at most 128 bytes.
pub fn check_id(field: &'static str, value: &str) -> Result<(), InvalidValue> {
    bounded(field, value, 128)?;
    if value.chars().any(char::is_whitespace) {
        return Err(bad(field, value, "an id has no spaces"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_serialise_compactly_with_the_documented_names() -> Result<(), serde_json::Error> {
        let cb = Callback {
            command_id: "cb-1".into(),
            from: CallbackFrom {
                extension: "101".into(),
                number: None,
            },
            to_number: "79161234567".into(),
            line_number: None,
            sip_headers: None,
        };
        assert_eq!(
            serde_json::to_string(&cb)?,
            r#"{"command_id":"cb-1","from":{"extension":"101"},"to_number":"79161234567"}"#
        );
        let t = Transfer {
            command_id: "t-1".into(),
            call_id: "c".into(),
            method: TransferMethod::Hold,
            to_number: "102".into(),
            initiator: "101".into(),
        };
        assert_eq!(
            serde_json::to_string(&t)?,
            r#"{"command_id":"t-1","call_id":"c","method":"hold","to_number":"102","initiator":"101"}"#
        );
        assert_eq!(serde_json::to_string(&UsersRequest::default())?, "{}");
        assert_eq!(Transfer::PATH, "commands/transfer");
        assert_eq!(Transfer::RATE.spacing_ms(), 2000);
        const { assert!(Hangup::COMMAND && !UsersRequest::COMMAND) };
        Ok(())
    }

    #[test]
    fn responses_are_read_leniently() -> Result<(), serde_json::Error> {
        let r: CommandResponse = serde_json::from_str(r#"{"result":"1000"}"#)?;
        assert_eq!(r.code(), Some(Code(1000)));
        let r: CommandResponse = serde_json::from_str(r#"{"code":3104}"#)?;
        assert_eq!(r.code(), Some(Code(3104)));
        let r: CommandResponse = serde_json::from_str(
            r#"{"name":"Service Unavailable","message":"Rate limit exceeded.","code":0,"status":429}"#,
        )?;
        assert_eq!(r.code(), None);
        let users: UsersResponse = serde_json::from_str(
            r#"{"users":[{"general":{"name":"Иванов Иван","user_id":300052407,"sips":[{"number":"ivanov@vpbx400000000.mangosip.ru"}]},
               "telephony":{"extension":"0511","numbers":[{"number":"sip:ivanov@vpbx400000000.mangosip.ru","protocol":"sip","order":0,"wait_sec":"120","status":"on"}]},"groups":[1]}]}"#,
        )?;
        let u = &users.users[0];
        assert_eq!(u.telephony.extension.as_deref(), Some("0511"));
        assert_eq!(u.general.user_id.as_deref(), Some("300052407"));
        assert_eq!(
            u.addresses(),
            vec![
                "ivanov@vpbx400000000.mangosip.ru".to_owned(),
                "sip:ivanov@vpbx400000000.mangosip.ru".to_owned()
            ]
        );
        Ok(())
    }

    #[test]
    fn values_are_checked_strictly() {
        assert!(check_extension("ext", "0511").is_ok());
        assert!(check_extension("ext", "10a").is_err());
        assert!(check_extension("ext", "").is_err());
        assert!(check_extension("ext", "12345678901").is_err());
        assert!(check_number("to", "+79161234567").is_ok());
        assert!(check_number("to", "101").is_ok());
        assert!(check_number("to", "sip:ivanov@vpbx4.mangosip.ru").is_ok());
        for bad in [
            "7916\r\n",
            "+",
            "79 16",
            "sip:@x",
            "sip:a b@x",
            "sip:<a@b>",
            "1234567890123456789012",
        ] {
            assert!(check_number("to", bad).is_err(), "{bad:?}");
        }
        assert!(check_id("call_id", "MToxMDA5Njg3NzoyMDE6MTI0MTg3Nzk3NQ==").is_ok());
        assert!(check_id("call_id", "a b").is_err());
        assert!(check_id("call_id", &"x".repeat(129)).is_err());
        let e = check_number("to_number", "79\n1")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("to_number \"79\\n1\" is not valid: it contains control characters")
        );
    }
}
