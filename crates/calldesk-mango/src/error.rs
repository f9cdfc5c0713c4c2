//! [`MangoError`]: why a request failed, and what to do about it.

use std::time::Duration;

use calldesk_mango_proto::Code;
use calldesk_mango_proto::codes::Family;
use calldesk_mango_proto::command::InvalidValue;
use calldesk_mango_proto::stats::StatsError;

/// Why a VPBX request failed. `action` is the request's path (`commands/transfer`). Messages
/// say what to fix; none of them carries the salt or a signature.
#[derive(Debug, thiserror::Error)]
pub enum MangoError {
    /// A value failed the local checks; nothing was sent.
    #[error("not sent to Mango: {0}")]
    Invalid(#[from] InvalidValue),
    /// Mango refused the action (2xxx account and billing, 4xxx not possible now, other
    /// non-success codes).
    #[error("Mango refused {action}: {code}{}", hint(*code))]
    Rejected { action: &'static str, code: Code },
    /// 3xxx: Mango says the request itself is wrong. Never retried: more than one of these in
    /// 2 minutes locks the API key for 2 minutes.
    #[error("Mango rejected {action} as a bad request: {code}{}{}", hint(*code), detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    BadRequest {
        action: &'static str,
        code: Code,
        /// Mango's `description` or per-field codes, when it sent them.
        detail: Option<String>,
    },
    /// HTTP 401: Mango locked the API key after invalid requests. The client refuses every
    /// request locally until the lock has passed.
    #[error(
        "Mango has locked the API key after invalid requests; nothing is sent for another {} s. Check the API key and salt, and the values being sent",
        retry_after.as_secs().max(1)
    )]
    LockedOut { retry_after: Duration },
    /// HTTP 429 on every attempt.
    #[error(
        "Mango's rate limit for {action} was exceeded on all {attempts} attempts; send these requests less often"
    )]
    RateLimited { action: &'static str, attempts: u32 },
    /// A 5xxx code or an HTTP 5xx status (after the retries allowed for the request).
    #[error("Mango's servers failed {action}: {}; try again later", server_reason(*code, *status))]
    Server {
        action: &'static str,
        code: Option<Code>,
        status: u16,
    },
    /// The connection failed. `maybe_sent`: Mango may have received (and executed) it.
    #[error("{action}: the connection to Mango failed {}: {reason}", sent_note(*maybe_sent))]
    Transport {
        action: &'static str,
        maybe_sent: bool,
        reason: String,
    },
    #[error("{action}: Mango did not answer within {} ms{}", after.as_millis(), if *maybe_sent { "; a command may still take effect" } else { "" })]
    Timeout {
        action: &'static str,
        maybe_sent: bool,
        after: Duration,
    },
    /// An answer that cannot be read (not the JSON or CSV expected, an unexpected status).
    #[error("unexpected answer from Mango: {0}")]
    BadResponse(String),
    /// `stats/result` answered 404: the key is unknown or its report expired.
    #[error(
        "Mango does not know this stats key (it expired or was never issued); request the report again"
    )]
    UnknownStatsKey,
    /// The report was not ready before the deadline.
    #[error("the stats report was not ready after {} s; ask for a shorter period or wait longer", waited.as_secs())]
    StatsNotReady { waited: Duration },
    #[error("the stats report cannot be read: {0}")]
    Stats(#[from] StatsError),
    /// Writing a downloaded recording failed; the writer holds a partial file.
    #[error("writing the recording failed: {0}")]
    Write(#[source] std::io::Error),
    /// The client cannot be built (TLS roots, base URL).
    #[error("Mango client setup: {0}")]
    Config(String),
}

impl MangoError {
    /// The VPBX result code, when Mango sent one.
    pub fn code(&self) -> Option<Code> {
        match self {
            Self::Rejected { code, .. } | Self::BadRequest { code, .. } => Some(*code),
            Self::Server { code, .. } => *code,
            _ => None,
        }
    }

    /// Whether Mango may have received (and so executed) the request.
    pub fn maybe_sent(&self) -> bool {
        match self {
            Self::Transport { maybe_sent, .. } | Self::Timeout { maybe_sent, .. } => *maybe_sent,
            Self::Invalid(_) | Self::LockedOut { .. } | Self::Config(_) => false,
            _ => true,
        }
    }
}

fn sent_note(maybe_sent: bool) -> &'static str {
    if maybe_sent {
        "after the request may have reached it (check whether a command took effect before repeating it)"
    } else {
        "before the request left (nothing happened)"
    }
}

fn server_reason(code: Option<Code>, status: u16) -> String {
    match code {
        Some(code) => format!("{code} (HTTP {status})"),
        None => format!("HTTP {status}"),
    }
}

/// What to do about a code, beyond its description.
fn hint(code: Code) -> &'static str {
    match code.0 {
        3102 | 3105 => "",
        3100 | 3103 | 3104 | 3111 => "; check the values sent",
        3300..=3399 => "; check the id (recordings become available a while after the call)",
        4101 => "; the call has already ended",
        4001 => "; this VPBX does not support the command",
        _ => match code.family() {
            Family::Account => {
                "; check the account's balance and limits in the Mango personal account"
            }
            Family::BadRequest => "; check the values sent",
            _ => "",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_fix() {
        let e = MangoError::BadRequest {
            action: "commands/callback",
            code: Code(3102),
            detail: None,
        };
        assert_eq!(
            e.to_string(),
            "Mango rejected commands/callback as a bad request: 3102 (the signature does not match: check the API key and salt)"
        );
        let e = MangoError::Rejected {
            action: "commands/callback",
            code: Code(2240),
        };
        assert!(e.to_string().contains("insufficient funds"), "{e}");
        assert!(e.to_string().contains("balance"), "{e}");
        assert_eq!(e.code(), Some(Code(2240)));
        let e = MangoError::LockedOut {
            retry_after: Duration::from_millis(300),
        };
        assert!(e.to_string().contains("another 1 s"), "{e}");
        assert!(!e.maybe_sent());
        let e = MangoError::Transport {
            action: "commands/call/hangup",
            maybe_sent: false,
            reason: "refused".into(),
        };
        assert!(e.to_string().contains("nothing happened"), "{e}");
    }
}
