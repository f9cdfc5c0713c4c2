//! Validated identifier newtypes.

use std::fmt;

/// Why an identifier was rejected. The message names the field and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{what} is empty")]
    Empty { what: &'static str },
    #[error("{what} is {len} characters long; at most {max} are allowed")]
    TooLong {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{what} `{value}` contains {found:?}; allowed are {allowed}")]
    BadCharacter {
        what: &'static str,
        value: String,
        found: char,
        allowed: &'static str,
    },
}

fn validate(
    what: &'static str,
    value: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { what });
    }
    let len = value.chars().count();
    if len > max {
        return Err(IdError::TooLong { what, len, max });
    }
    match value.chars().find(|c| !ok(*c)) {
        Some(found) => Err(IdError::BadCharacter {
            what,
            value: value.escape_debug().to_string(),
            found,
            allowed,
        }),
        None => Ok(()),
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $max:expr, $allowed:literal, $ok:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `value`.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($what, &value, $max, $allowed, $ok)?;
                Ok(Self(value))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }
    };
}

id_type!(
    /// A call's id as the PBX names it: Asterisk `Linkedid` (`1795259787.0`), Mango `entry_id`.
    /// Printable ASCII without spaces, at most 128 characters.
    CallId,
    "call id",
    128,
    "printable ASCII without spaces",
    |c: char| c.is_ascii_graphic()
);

id_type!(
    /// A tenant (enterprise) slug: `acme`, `client-42`.
    TenantId,
    "tenant id",
    64,
    "ASCII letters, digits, '-' and '_'",
    |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_'
);

id_type!(
    /// An operator's extension (`101`) or SIP peer name (`alice`): what follows `SIP/` or
    /// `PJSIP/` in a channel name, and what Mango calls `extension`.
    Extension,
    "extension",
    32,
    "ASCII letters, digits, '-', '_' and '.'",
    |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.'
);

impl TenantId {
    /// The tenant of a desktop that works without a hub (Demo and Direct profiles).
    pub fn local() -> Self {
        Self("local".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_line_breaks_and_spaces() {
        assert!(matches!(
            Extension::new("101\r\nAction: Hangup"),
            Err(IdError::BadCharacter { found: '\r', .. })
        ));
        assert!(CallId::new("1795259787.0").is_ok());
        assert_eq!(
            TenantId::new(TenantId::local().as_str()),
            Ok(TenantId::local())
        );
        assert!(matches!(
            CallId::new("a b"),
            Err(IdError::BadCharacter { found: ' ', .. })
        ));
        assert_eq!(
            TenantId::new("").unwrap_err().to_string(),
            "tenant id is empty"
        );
        assert_eq!(
            Extension::new("1".repeat(33)).unwrap_err().to_string(),
            "extension is 33 characters long; at most 32 are allowed"
        );
    }
}
