//! Outgoing messages with validation on insertion.

/// Longest line Asterisk accepts from a client, including the `\r\n` (`char inbuf[1025]`).
pub const MAX_LINE_LEN: usize = 1024;

/// Most header lines Asterisk accepts in one action (`AST_MAX_MANHEADERS`).
pub const MAX_ACTION_HEADERS: usize = 128;

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// Empty key.
    #[error("a header key is empty; give every header a name")]
    EmptyKey,
    /// Key with `:`.
    #[error("header key `{key}` contains ':'; AMI splits key and value at the first ':'")]
    ColonInKey {
        /// The key.
        key: String,
    },
    /// CR or LF in the key.
    #[error("header key `{key}` contains a line break; remove CR/LF from the key")]
    LineBreakInKey {
        /// The key (escaped for display).
        key: String,
    },
    /// CR or LF in the value.
    #[error(
        "header `{key}` contains a line break; AMI has no multi-line values, send one header per line"
    )]
    LineBreakInValue {
        /// The key.
        key: String,
    },
    /// Line longer than Asterisk's input buffer.
    #[error(
        "header `{key}` is {len} bytes on the wire, Asterisk accepts at most {max} per line; shorten the value or split it into several headers"
    )]
    LineTooLong {
        /// The key.
        key: String,
        /// Encoded line length including `\r\n`.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Too many header lines in one action.
    #[error(
        "action has more than {max} header lines, Asterisk would refuse it; send fewer headers"
    )]
    TooManyHeaders {
        /// The limit.
        max: usize,
    },
}

/// An outgoing message: ordered headers, validated on insertion.
#[derive(Clone, PartialEq, Eq)]
pub struct Outgoing {
    headers: Vec<(String, String)>,
    is_action: bool,
}

/// Headers whose values are credentials (`Login`'s `Secret`, the MD5 `Key`).
const SECRET_HEADERS: &[&str] = &["Secret", "Key"];

/// Shows every header but the values of `Secret` and `Key` (credentials), so an action can be
/// logged.
impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut list = f.debug_list();
        for (k, v) in &self.headers {
            let secret = SECRET_HEADERS.iter().any(|s| s.eq_ignore_ascii_case(k));
            list.entry(&format_args!(
                "{k}: {}",
                if secret { "<redacted>" } else { v }
            ));
        }
        list.finish()
    }
}

impl Outgoing {
    fn first(key: &str, value: &str, is_action: bool) -> Result<Self, EncodeError> {
        let mut o = Self {
            headers: Vec::new(),
            is_action,
        };
        o.push(key, value)?;
        Ok(o)
    }

    /// A new action; first header `Action: name`.
    pub fn action(name: &str) -> Result<Self, EncodeError> {
        Self::first("Action", name, true)
    }

    /// A new event; first header `Event: name`.
    pub fn event(name: &str) -> Result<Self, EncodeError> {
        Self::first("Event", name, false)
    }

    /// A new response; first header `Response: kind`.
    pub fn response(kind: &str) -> Result<Self, EncodeError> {
        Self::first("Response", kind, false)
    }

    /// Builder form of [`Outgoing::push`].
    pub fn header(mut self, key: &str, value: &str) -> Result<Self, EncodeError> {
        self.push(key, value)?;
        Ok(self)
    }

    /// Appends a header (duplicates allowed) after validating it.
    pub fn push(&mut self, key: &str, value: &str) -> Result<(), EncodeError> {
        validate(key, value)?;
        if self.is_action && self.headers.len() >= MAX_ACTION_HEADERS {
            return Err(EncodeError::TooManyHeaders {
                max: MAX_ACTION_HEADERS,
            });
        }
        self.headers.push((key.to_owned(), value.to_owned()));
        Ok(())
    }

    /// The headers in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// First value for `key` (ASCII case-insensitive).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    }

    /// Number of bytes [`Outgoing::encode`] appends.
    pub fn encoded_len(&self) -> usize {
        self.headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>()
            + 2
    }

    /// Appends `Key: Value\r\n`... then `\r\n` to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        for (k, v) in &self.headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
    }

    /// Convenience: the encoded bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

fn validate(key: &str, value: &str) -> Result<(), EncodeError> {
    if key.is_empty() {
        return Err(EncodeError::EmptyKey);
    }
    if key.contains(['\r', '\n']) {
        return Err(EncodeError::LineBreakInKey {
            key: key.escape_debug().to_string(),
        });
    }
    if key.contains(':') {
        return Err(EncodeError::ColonInKey {
            key: key.to_owned(),
        });
    }
    if value.contains(['\r', '\n']) {
        return Err(EncodeError::LineBreakInValue {
            key: key.to_owned(),
        });
    }
    let len = key.len() + 2 + value.len() + 2;
    if len > MAX_LINE_LEN {
        return Err(EncodeError::LineTooLong {
            key: key.to_owned(),
            len,
            max: MAX_LINE_LEN,
        });
    }
    Ok(())
}
