//! What Mango POSTs to us: `<base>/events/call`, `/events/summary`, `/events/recording`,
//! `/events/record/added`, `/events/record/tagged`, `/events/dtmf`, `/events/sms`,
//! `/result/<command>`, `/result/stat(s)`, `/ping`; each a form with `vpbx_api_key`, `sign` and
//! `json` (or `data`). Types are tolerant (numbers as strings and back, `was_transfered`),
//! unknown fields are ignored, and every failure is a typed [`WebhookError`], never a panic.

use std::borrow::Cow;

use serde::Deserialize;

use crate::codes::Code;
use crate::lenient;
use crate::sign::Credentials;

/// Largest form body accepted (Mango's own are well under 4 KiB).
pub const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("the body is {0} bytes; at most {MAX_BODY} are accepted")]
    TooLarge(usize),
    #[error("the form has no {0:?} field")]
    MissingField(&'static str),
    #[error("the form field {0:?} appears twice")]
    DuplicateField(&'static str),
    #[error("the vpbx_api_key does not belong to this tenant")]
    WrongKey,
    #[error("the signature does not match the json field (check the API key and salt)")]
    BadSignature,
    #[error("unknown webhook path {0:?}")]
    UnknownPath(String),
    #[error("the json field is not valid JSON for {path}: {reason}")]
    BadJson { path: &'static str, reason: String },
    #[error("{path} event without {field}")]
    MissingValue {
        path: &'static str,
        field: &'static str,
    },
}

/// The signed form of one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedForm<'a> {
    pub api_key: Cow<'a, str>,
    pub sign: Cow<'a, str>,
    /// The exact `json` (or `data`) field, after form decoding: what the signature covers.
    pub json: Cow<'a, str>,
}

impl<'a> SignedForm<'a> {
    /// Reads an `application/x-www-form-urlencoded` body. The payload is `json`, else `data`.
    pub fn parse(body: &'a [u8]) -> Result<Self, WebhookError> {
        if body.len() > MAX_BODY {
            return Err(WebhookError::TooLarge(body.len()));
        }
        let (mut key, mut sign, mut json, mut data) = (None, None, None, None);
        for (name, value) in form_urlencoded::parse(body) {
            let (slot, field) = match name.as_ref() {
                "vpbx_api_key" => (&mut key, "vpbx_api_key"),
                "sign" => (&mut sign, "sign"),
                "json" => (&mut json, "json"),
                "data" => (&mut data, "data"),
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(WebhookError::DuplicateField(field));
            }
        }
        Ok(Self {
            api_key: key.ok_or(WebhookError::MissingField("vpbx_api_key"))?,
            sign: sign.ok_or(WebhookError::MissingField("sign"))?,
            json: json.or(data).ok_or(WebhookError::MissingField("json"))?,
        })
    }

    /// Checks the key and the signature against one tenant's credentials.
    pub fn verify(&self, credentials: &Credentials) -> Result<&str, WebhookError> {
        if self.api_key != credentials.key() {
            return Err(WebhookError::WrongKey);
        }
        if !credentials.verify(&self.json, &self.sign) {
            return Err(WebhookError::BadSignature);
        }
        Ok(&self.json)
    }

    /// The form body of `json` signed with `credentials` (what Mango, or our client, sends).
    pub fn encode(credentials: &Credentials, json: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("vpbx_api_key", credentials.key())
            .append_pair("sign", &credentials.sign(json))
            .append_pair("json", json)
            .finish()
    }
}

/// Which webhook a path names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Route {
    Call,
    Summary,
    Recording,
    RecordAdded,
    RecordTagged,
    Dtmf,
    Sms,
    /// `/result/stat` or `/result/stats`: a stats report is ready.
    StatsReady,
    /// `/result/<command path>`, e.g. `callback`, `call/hangup`.
    Result(String),
    Ping,
}

impl Route {
    /// The route of a request path; everything up to `events/`, `result/` or `ping` is the
    /// tenant's own base (e.g. `/mango/acme/events/call`). A trailing slash is tolerated.
    pub fn from_path(path: &str) -> Result<Self, WebhookError> {
        let p = path
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .trim_end_matches('/');
        let unknown = || WebhookError::UnknownPath(path.chars().take(200).collect());
        let tail = |marker: &str| {
            p.rfind(marker)
                .filter(|&i| i == 0 || p.as_bytes()[i - 1] == b'/')
                .map(|i| &p[i + marker.len()..])
        };
        if let Some(event) = tail("events/") {
            return Ok(match event {
                "call" => Self::Call,
                "summary" => Self::Summary,
                "recording" => Self::Recording,
                "record/added" => Self::RecordAdded,
                "record/tagged" => Self::RecordTagged,
                "dtmf" => Self::Dtmf,
                "sms" => Self::Sms,
                _ => return Err(unknown()),
            });
        }
        if let Some(command) = tail("result/") {
            return match command {
                "stat" | "stats" => Ok(Self::StatsReady),
                c if !c.is_empty()
                    && c.bytes()
                        .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'/') =>
                {
                    Ok(Self::Result(c.to_owned()))
                }
                _ => Err(unknown()),
            };
        }
        if p == "ping" || p.ends_with("/ping") {
            return Ok(Self::Ping);
        }
        Err(unknown())
    }

    /// The path below the base, as Mango appends it.
    pub fn path(&self) -> Cow<'static, str> {
        match self {
            Self::Call => "events/call".into(),
            Self::Summary => "events/summary".into(),
            Self::Recording => "events/recording".into(),
            Self::RecordAdded => "events/record/added".into(),
            Self::RecordTagged => "events/record/tagged".into(),
            Self::Dtmf => "events/dtmf".into(),
            Self::Sms => "events/sms".into(),
            Self::StatsReady => "result/stat".into(),
            Self::Result(c) => format!("result/{c}").into(),
            Self::Ping => "ping".into(),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Call => "/events/call",
            Self::Summary => "/events/summary",
            Self::Recording => "/events/recording",
            Self::RecordAdded => "/events/record/added",
            Self::RecordTagged => "/events/record/tagged",
            Self::Dtmf => "/events/dtmf",
            Self::Sms => "/events/sms",
            Self::StatsReady => "/result/stat",
            Self::Result(_) => "/result",
            Self::Ping => "/ping",
        }
    }
}

/// `call_state` of a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LegState {
    Appeared,
    Connected,
    OnHold,
    Disconnected,
    Unknown,
}

impl LegState {
    fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "appeared" => Self::Appeared,
            "connected" => Self::Connected,
            "onhold" | "on_hold" | "hold" => Self::OnHold,
            "disconnected" => Self::Disconnected,
            _ => Self::Unknown,
        }
    }
}

/// `location` of a leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Location {
    Ivr,
    Queue,
    Abonent,
    Other,
}

impl Location {
    fn parse(s: &str) -> Self {
        let s = s.trim().to_ascii_lowercase();
        match s.split('.').next().unwrap_or("") {
            "ivr" => Self::Ivr,
            "queue" => Self::Queue,
            "abonent" => Self::Abonent,
            _ => Self::Other,
        }
    }
}

/// `transfer` of a leg created by a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferMark {
    Consultative,
    Blind,
    ReturnBlind,
    Other,
}

impl TransferMark {
    fn parse(s: &str) -> Self {
        match s.trim().to_ascii_lowercase().as_str() {
            "consultative" => Self::Consultative,
            "blind" => Self::Blind,
            "return_blind" => Self::ReturnBlind,
            _ => Self::Other,
        }
    }
}

/// One side of a leg (`from` / `to`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
pub struct LegParty {
    #[serde(default, deserialize_with = "lenient::text")]
    pub extension: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub number: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub line_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub taken_from_call_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    pub acd_group: Option<String>,
    #[serde(default, alias = "was_transfered", deserialize_with = "lenient::flag")]
    pub was_transferred: Option<bool>,
    #[serde(default, deserialize_with = "lenient::flag")]
    pub hold_initiator: Option<bool>,
}

/// `/events/call`: one leg's state changed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CallLeg {
    pub entry_id: String,
    pub call_id: String,
    /// Unix seconds.
    pub timestamp: i64,
    pub seq: u64,
    pub state: LegState,
    pub location: Option<Location>,
    pub from: LegParty,
    pub to: LegParty,
    pub disconnect_reason: Option<Code>,
    pub transfer: Option<TransferMark>,
    pub command_id: Option<String>,
    pub callback_initiator: Option<String>,
    /// Read from the legacy flat format (no `entry_id`/`seq`): `seq` comes from the state.
    pub legacy: bool,
}

/// `/events/summary`: the whole call is over.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Summary {
    pub entry_id: String,
    /// 0 internal, 1 incoming, 2 outgoing.
    pub call_direction: Option<i64>,
    pub from: LegParty,
    pub to: LegParty,
    pub line_number: Option<String>,
    pub create_time: Option<i64>,
    pub forward_time: Option<i64>,
    /// When the conversation began; 0 (absent) when there was none.
    pub talk_time: Option<i64>,
    pub end_time: Option<i64>,
    pub entry_result: Option<i64>,
    pub disconnect_reason: Option<Code>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordingState {
    Started,
    Continued,
    Completed,
    Other,
}

/// `/events/recording`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Recording {
    pub recording_id: String,
    pub state: RecordingState,
    pub seq: u64,
    pub entry_id: String,
    pub call_id: Option<String>,
    pub extension: Option<String>,
    pub timestamp: Option<i64>,
    pub completion_code: Option<Code>,
    pub recipient: Option<String>,
    pub command_id: Option<String>,
}

/// `/events/record/added` and `/events/record/tagged`: the file is in the cloud.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordAdded {
    pub entry_id: String,
    pub recording_id: String,
    pub user_id: Option<String>,
    pub timestamp: Option<i64>,
}

/// `/events/dtmf`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Dtmf {
    pub entry_id: String,
    pub call_id: String,
    pub seq: Option<u64>,
    pub dtmf: String,
    pub location: Option<String>,
    pub initiator: Option<String>,
    pub timestamp: Option<i64>,
}

/// `/events/sms`: the delivery result of an SMS command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SmsResult {
    pub command_id: Option<String>,
    pub reason: Option<Code>,
    pub timestamp: Option<i64>,
}

/// `/result/<command>`: the asynchronous result of a command.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommandResult {
    pub command: String,
    pub command_id: Option<String>,
    pub result: Option<Code>,
}

/// `/result/stat`: a stats report is ready.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StatsReady {
    pub key: Option<String>,
    pub request_id: Option<String>,
}

/// One parsed webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Webhook {
    Call(CallLeg),
    Summary(Summary),
    Recording(Recording),
    RecordAdded(RecordAdded),
    RecordTagged(RecordAdded),
    Dtmf(Dtmf),
    Sms(SmsResult),
    Result(CommandResult),
    StatsReady(StatsReady),
    Ping,
}

impl Webhook {
    /// The call (`entry_id`) it belongs to, when it belongs to one.
    pub fn entry_id(&self) -> Option<&str> {
        match self {
            Self::Call(e) => Some(&e.entry_id),
            Self::Summary(e) => Some(&e.entry_id),
            Self::Recording(e) => Some(&e.entry_id),
            Self::RecordAdded(e) | Self::RecordTagged(e) => Some(&e.entry_id),
            Self::Dtmf(e) => Some(&e.entry_id),
            _ => None,
        }
    }

    /// Parses the (verified) `json` of a webhook that came in on `route`.
    pub fn parse(route: &Route, json: &str) -> Result<Self, WebhookError> {
        let path = route.name();
        if *route == Route::Ping {
            return Ok(Self::Ping);
        }
        if !json.trim_start().starts_with('{') {
            return Err(WebhookError::BadJson {
                path,
                reason: "not a JSON object".into(),
            });
        }
        let raw: Raw = serde_json::from_str(json).map_err(|e| WebhookError::BadJson {
            path,
            reason: e.to_string(),
        })?;
        let need = |v: Option<String>, field| v.ok_or(WebhookError::MissingValue { path, field });
        let code = |v: Option<i64>| v.and_then(|c| u32::try_from(c).ok()).map(Code);
        Ok(match route {
            Route::Call => Self::Call(raw.into_leg(path)?),
            Route::Summary => Self::Summary(Summary {
                entry_id: need(raw.entry_id, "entry_id")?,
                call_direction: raw.call_direction,
                line_number: raw.line_number.or_else(|| raw.to.line_number.clone()),
                from: raw.from,
                to: raw.to,
                create_time: raw.create_time,
                forward_time: raw.forward_time,
                talk_time: raw.talk_time.filter(|t| *t > 0),
                end_time: raw.end_time,
                entry_result: raw.entry_result,
                disconnect_reason: code(raw.disconnect_reason),
            }),
            Route::Recording => Self::Recording(Recording {
                recording_id: need(raw.recording_id, "recording_id")?,
                state: match raw.recording_state.as_deref().map(str::to_ascii_lowercase) {
                    Some(s) if s == "started" => RecordingState::Started,
                    Some(s) if s == "continued" => RecordingState::Continued,
                    Some(s) if s == "completed" => RecordingState::Completed,
                    _ => RecordingState::Other,
                },
                seq: raw.seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                entry_id: need(raw.entry_id, "entry_id")?,
                call_id: raw.call_id,
                extension: raw.extension,
                timestamp: raw.timestamp,
                completion_code: code(raw.completion_code),
                recipient: raw.recipient,
                command_id: raw.command_id,
            }),
            Route::RecordAdded | Route::RecordTagged => {
                let added = RecordAdded {
                    entry_id: need(raw.entry_id, "entry_id")?,
                    recording_id: need(raw.recording_id, "recording_id")?,
                    user_id: raw.user_id,
                    timestamp: raw.timestamp,
                };
                if *route == Route::RecordAdded {
                    Self::RecordAdded(added)
                } else {
                    Self::RecordTagged(added)
                }
            }
            Route::Dtmf => Self::Dtmf(Dtmf {
                entry_id: need(raw.entry_id, "entry_id")?,
                call_id: need(raw.call_id, "call_id")?,
                seq: raw.seq.and_then(|s| u64::try_from(s).ok()),
                dtmf: need(raw.dtmf, "dtmf")?,
                location: raw.location,
                initiator: raw.initiator,
                timestamp: raw.timestamp,
            }),
            Route::Sms => Self::Sms(SmsResult {
                command_id: raw.command_id,
                reason: code(raw.reason),
                timestamp: raw.timestamp,
            }),
            Route::Result(command) => Self::Result(CommandResult {
                command: command.clone(),
                command_id: raw.command_id,
                result: code(raw.result),
            }),
            Route::StatsReady => Self::StatsReady(StatsReady {
                key: raw.key,
                request_id: raw.request_id,
            }),
            Route::Ping => Self::Ping,
        })
    }

    /// Reads a whole webhook: path, form body, signature (checked against `credentials`).
    pub fn receive(
        path: &str,
        body: &[u8],
        credentials: &Credentials,
    ) -> Result<Self, WebhookError> {
        let route = Route::from_path(path)?;
        let form = SignedForm::parse(body)?;
        let json = form.verify(credentials)?;
        Self::parse(&route, json)
    }
}

/// Every field any webhook carries, all optional and lenient; also the legacy flat names.
#[derive(Debug, Default, Deserialize)]
struct Raw {
    #[serde(default, deserialize_with = "lenient::text")]
    entry_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    call_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    timestamp: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    seq: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    call_state: Option<String>,
    #[serde(default, alias = "locaton", deserialize_with = "lenient::text")]
    location: Option<String>,
    #[serde(default)]
    from: LegParty,
    #[serde(default)]
    to: LegParty,
    #[serde(default, deserialize_with = "lenient::text")]
    from_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    from_extension: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    to_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    to_extension: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    disconnect_reason: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    transfer: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    command_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    callback_initiator: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    call_direction: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    line_number: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    create_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    forward_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    talk_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    end_time: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    entry_result: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    recording_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    recording_state: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    extension: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    completion_code: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    recipient: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    user_id: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    dtmf: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    initiator: Option<String>,
    #[serde(default, deserialize_with = "lenient::int")]
    reason: Option<i64>,
    #[serde(default, deserialize_with = "lenient::int")]
    result: Option<i64>,
    #[serde(default, deserialize_with = "lenient::text")]
    key: Option<String>,
    #[serde(default, deserialize_with = "lenient::text")]
    request_id: Option<String>,
}

impl Raw {
    fn into_leg(self, path: &'static str) -> Result<CallLeg, WebhookError> {
        let missing = |field| WebhookError::MissingValue { path, field };
        let call_id = self.call_id.ok_or(missing("call_id"))?;
        let state = LegState::parse(self.call_state.as_deref().ok_or(missing("call_state"))?);
        let legacy = self.entry_id.is_none() || self.seq.is_none();
        let mut from = self.from;
        let mut to = self.to;
        // Legacy flat names fill what the nested objects lack.
        from.number = from.number.or(self.from_number);
        from.extension = from.extension.or(self.from_extension);
        to.number = to.number.or(self.to_number);
        to.extension = to.extension.or(self.to_extension);
        let seq = match self.seq.and_then(|s| u64::try_from(s).ok()) {
            Some(seq) => seq,
            // Legacy events carry no counter: their states only move forward.
            None => match state {
                LegState::Appeared => 1,
                LegState::Connected => 2,
                LegState::OnHold => 3,
                LegState::Disconnected => 4,
                LegState::Unknown => 0,
            },
        };
        Ok(CallLeg {
            entry_id: self.entry_id.unwrap_or_else(|| call_id.clone()),
            call_id,
            timestamp: self.timestamp.ok_or(missing("timestamp"))?,
            seq,
            state,
            location: self.location.as_deref().map(Location::parse),
            from,
            to,
            disconnect_reason: self
                .disconnect_reason
                .and_then(|c| u32::try_from(c).ok())
                .map(Code),
            transfer: self.transfer.as_deref().map(TransferMark::parse),
            command_id: self.command_id,
            callback_initiator: self.callback_initiator.map(|s| s.replace('С', "C")),
            legacy,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new("vpbxkey", "salt")
    }

    fn parse(route: Route, json: &str) -> Result<Webhook, WebhookError> {
        Webhook::parse(&route, json)
    }

    #[test]
    fn routes_from_paths() -> Result<(), WebhookError> {
        assert_eq!(Route::from_path("/events/call")?, Route::Call);
        assert_eq!(Route::from_path("/mango/acme/events/call/")?, Route::Call);
        assert_eq!(Route::from_path("events/summary")?, Route::Summary);
        assert_eq!(
            Route::from_path("/x/events/record/added")?,
            Route::RecordAdded
        );
        assert_eq!(
            Route::from_path("/x/events/record/tagged")?,
            Route::RecordTagged
        );
        assert_eq!(Route::from_path("/events/recording?x=1")?, Route::Recording);
        assert_eq!(Route::from_path("/events/dtmf")?, Route::Dtmf);
        assert_eq!(Route::from_path("/events/sms")?, Route::Sms);
        assert_eq!(Route::from_path("/result/stats")?, Route::StatsReady);
        assert_eq!(Route::from_path("/result/stat")?, Route::StatsReady);
        assert_eq!(
            Route::from_path("/t/result/call/hangup")?,
            Route::Result("call/hangup".into())
        );
        assert_eq!(Route::from_path("/t/ping")?, Route::Ping);
        assert_eq!(Route::Result("callback".into()).path(), "result/callback");
        for bad in [
            "/events/other",
            "/result/",
            "/result/../x",
            "/",
            "/myevents/call",
            "",
        ] {
            assert!(Route::from_path(bad).is_err(), "{bad}");
        }
        Ok(())
    }

    #[test]
    fn the_signed_form_round_trips_and_forgeries_fail() -> Result<(), WebhookError> {
        let json = r#"{"command_id":"a+b&c=d","result":1000,"text":"Привет"}"#;
        let body = SignedForm::encode(&creds(), json);
        assert!(body.contains("json=%7B"), "{body}");
        let form = SignedForm::parse(body.as_bytes())?;
        assert_eq!(form.json, json);
        assert_eq!(form.verify(&creds())?, json);
        let hook = Webhook::receive("/result/callback", body.as_bytes(), &creds())?;
        assert_eq!(
            hook,
            Webhook::Result(CommandResult {
                command: "callback".into(),
                command_id: Some("a+b&c=d".into()),
                result: Some(Code(1000)),
            })
        );
        // Another tenant's key, a forged sign, an altered payload.
        let other = Credentials::new("vpbxkey2", "salt");
        assert_eq!(form.verify(&other), Err(WebhookError::WrongKey));
        let forged = Credentials::new("vpbxkey", "guess");
        assert_eq!(form.verify(&forged), Err(WebhookError::BadSignature));
        let altered = body.replace("1000", "1001");
        assert_eq!(
            Webhook::receive("/result/callback", altered.as_bytes(), &creds()),
            Err(WebhookError::BadSignature)
        );
        Ok(())
    }

    #[test]
    fn malformed_forms_are_typed_errors() {
        let e = |b: &[u8]| SignedForm::parse(b).err();
        assert_eq!(
            e(b"sign=x&json={}"),
            Some(WebhookError::MissingField("vpbx_api_key"))
        );
        assert_eq!(
            e(b"vpbx_api_key=k&json={}"),
            Some(WebhookError::MissingField("sign"))
        );
        assert_eq!(
            e(b"vpbx_api_key=k&sign=s"),
            Some(WebhookError::MissingField("json"))
        );
        assert_eq!(
            e(b"vpbx_api_key=k&sign=s&json=1&json=2"),
            Some(WebhookError::DuplicateField("json"))
        );
        assert_eq!(
            e(&vec![b'a'; MAX_BODY + 1]),
            Some(WebhookError::TooLarge(MAX_BODY + 1))
        );
        assert_eq!(
            e(b"\xff\xfe=%%%&&&"),
            Some(WebhookError::MissingField("vpbx_api_key"))
        );
        // `data` stands in for `json`.
        let form = SignedForm::parse(b"vpbx_api_key=k&sign=s&data=%7B%7D").ok();
        assert_eq!(form.map(|f| f.json.into_owned()), Some("{}".to_owned()));
    }

    #[test]
    fn call_event_with_every_field_and_lenient_types() -> Result<(), WebhookError> {
        let json = r#"{"entry_id":"MjYw","call_id":"MToxMD","timestamp":"1716800060","seq":"3",
            "call_state":"Disconnected","location":"abonent",
            "from":{"number":"79161234567","was_transfered":true,"taken_from_call_id":"OLD"},
            "to":{"extension":101,"number":"sip:ivanov@vpbx4.mangosip.ru","line_number":"74951234567","acd_group":"","hold_initiator":"1"},
            "disconnect_reason":"1120","transfer":"return_blind","command_id":"tr-1","task_id":77,
            "callback_initiator":"MissGroupСallCallback","dct":{"type":0},"sip_call_id":"abc@host","new_field":[1,2]}"#;
        let Webhook::Call(leg) = parse(Route::Call, json)? else {
            panic!("not a call event");
        };
        assert_eq!(leg.entry_id, "MjYw");
        assert_eq!((leg.timestamp, leg.seq), (1_716_800_060, 3));
        assert_eq!(leg.state, LegState::Disconnected);
        assert_eq!(leg.location, Some(Location::Abonent));
        assert_eq!(leg.from.was_transferred, Some(true));
        assert_eq!(leg.from.taken_from_call_id.as_deref(), Some("OLD"));
        assert_eq!(leg.to.extension.as_deref(), Some("101"));
        assert_eq!(leg.to.acd_group, None);
        assert_eq!(leg.to.hold_initiator, Some(true));
        assert_eq!(leg.disconnect_reason, Some(Code(1120)));
        assert_eq!(leg.transfer, Some(TransferMark::ReturnBlind));
        assert_eq!(
            leg.callback_initiator.as_deref(),
            Some("MissGroupCallCallback")
        );
        assert!(!leg.legacy);
        // The other spelling of the v2 flag, states and locations as Mango varies them.
        let Webhook::Call(leg) = parse(
            Route::Call,
            r#"{"entry_id":"e","call_id":"c","timestamp":1,"seq":1,"call_state":"OnHold","locaton":"ivr.2","from":{"was_transferred":false},"to":{}}"#,
        )?
        else {
            panic!("not a call event");
        };
        assert_eq!(
            (leg.state, leg.location),
            (LegState::OnHold, Some(Location::Ivr))
        );
        assert_eq!(leg.from.was_transferred, Some(false));
        Ok(())
    }

    #[test]
    fn legacy_flat_events_are_accepted() -> Result<(), WebhookError> {
        let Webhook::Call(leg) = parse(
            Route::Call,
            r#"{"call_id":"test-123","call_state":"Connected","from":{"number":"+79991234567"},"to":{"number":"sip:101@domain"},"timestamp":1234567890}"#,
        )?
        else {
            panic!("not a call event");
        };
        assert!(leg.legacy);
        assert_eq!(leg.entry_id, "test-123");
        assert_eq!(leg.seq, 2);
        let Webhook::Call(leg) = parse(
            Route::Call,
            r#"{"call_id":"t","call_state":"Disconnected","from_number":"79991234567","to_extension":"0101","timestamp":5}"#,
        )?
        else {
            panic!("not a call event");
        };
        assert_eq!(leg.from.number.as_deref(), Some("79991234567"));
        assert_eq!(leg.to.extension.as_deref(), Some("0101"));
        assert_eq!(leg.seq, 4);
        Ok(())
    }

    #[test]
    fn every_other_event_type() -> Result<(), WebhookError> {
        let s = parse(
            Route::Summary,
            r#"{"entry_id":"e","call_direction":"1","from":{"number":"7916"},"to":{"extension":"101","line_number":"7495"},"create_time":1,"forward_time":2,"talk_time":"0","end_time":9,"entry_result":1,"disconnect_reason":1110}"#,
        )?;
        let Webhook::Summary(s) = s else {
            panic!("summary")
        };
        assert_eq!(s.call_direction, Some(1));
        assert_eq!(s.talk_time, None, "talk_time 0 means no conversation");
        assert_eq!(
            s.line_number.as_deref(),
            Some("7495"),
            "line_number inside `to` too"
        );
        assert_eq!(s.disconnect_reason, Some(Code(1110)));

        let r = parse(
            Route::Recording,
            r#"{"recording_id":"R","recording_state":"Completed","seq":2,"entry_id":"e","call_id":"c","extension":"","timestamp":9,"completion_code":4002}"#,
        )?;
        let Webhook::Recording(r) = r else {
            panic!("recording")
        };
        assert_eq!(
            (r.state, r.completion_code, r.extension),
            (RecordingState::Completed, Some(Code(4002)), None)
        );

        let a = parse(
            Route::RecordAdded,
            r#"{"entry_id":"e","product_id":400000000,"user_id":-1,"timestamp":1578664187,"recording_id":"R"}"#,
        )?;
        assert_eq!(
            a,
            Webhook::RecordAdded(RecordAdded {
                entry_id: "e".into(),
                recording_id: "R".into(),
                user_id: Some("-1".into()),
                timestamp: Some(1_578_664_187),
            })
        );
        assert!(matches!(
            parse(
                Route::RecordTagged,
                r#"{"entry_id":"e","recording_id":"R"}"#
            )?,
            Webhook::RecordTagged(_)
        ));

        let d = parse(
            Route::Dtmf,
            r#"{"seq":1,"dtmf":"124","timestamp":1,"call_id":"c","entry_id":"e","location":"ivr.1","initiator":"79161234567"}"#,
        )?;
        let Webhook::Dtmf(d) = d else { panic!("dtmf") };
        assert_eq!(
            (d.dtmf.as_str(), d.location.as_deref()),
            ("124", Some("ivr.1"))
        );

        let sms = parse(
            Route::Sms,
            r#"{"command_id":"sms-7f3a","timestamp":1716800100,"reason":4392}"#,
        )?;
        assert_eq!(
            sms,
            Webhook::Sms(SmsResult {
                command_id: Some("sms-7f3a".into()),
                reason: Some(Code(4392)),
                timestamp: Some(1_716_800_100),
            })
        );
        let st = parse(
            Route::StatsReady,
            r#"{"key":"B+Dv/x==","request_id":"r-1"}"#,
        )?;
        assert_eq!(
            st,
            Webhook::StatsReady(StatsReady {
                key: Some("B+Dv/x==".into()),
                request_id: Some("r-1".into())
            })
        );
        assert_eq!(parse(Route::Ping, "not even json")?, Webhook::Ping);
        assert_eq!(st.entry_id(), None);
        Ok(())
    }

    #[test]
    fn missing_or_broken_values_are_typed_errors() {
        let err = |route, json| parse(route, json).err();
        assert_eq!(
            err(
                Route::Call,
                r#"{"entry_id":"e","seq":1,"timestamp":1,"call_state":"Appeared"}"#
            ),
            Some(WebhookError::MissingValue {
                path: "/events/call",
                field: "call_id"
            })
        );
        assert_eq!(
            err(
                Route::Call,
                r#"{"entry_id":"e","call_id":"c","seq":1,"call_state":"Appeared"}"#
            ),
            Some(WebhookError::MissingValue {
                path: "/events/call",
                field: "timestamp"
            })
        );
        assert_eq!(
            err(Route::Summary, "{}"),
            Some(WebhookError::MissingValue {
                path: "/events/summary",
                field: "entry_id"
            })
        );
        for bad in ["", "[]", "{", r#"{"seq":"x"}"#, r#"{"from":5}"#, "null"] {
            assert!(
                matches!(err(Route::Call, bad), Some(WebhookError::BadJson { .. })),
                "{bad:?}"
            );
        }
    }
}
