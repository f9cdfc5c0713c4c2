//! Decoded messages and the banner.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

/// The greeting line, e.g. `Asterisk Call Manager/9.0.0` (without its line terminator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// The banner line without `\r\n`.
    pub raw: Bytes,
}

impl Banner {
    /// The part after the first `/` (the AMI version, `9.0.0` for Asterisk 20); empty if none.
    pub fn version(&self) -> &[u8] {
        match memchr::memchr(b'/', &self.raw) {
            Some(i) => &self.raw[i + 1..],
            None => &[],
        }
    }

    /// True when the line is a known AMI greeting (Asterisk or one of its proxies). The decoder
    /// also takes any colon-less first line as a banner; a client must check this before it
    /// sends credentials, or a wrong port (SSH, SMTP) would receive them.
    pub fn is_known_ami(&self) -> bool {
        crate::decode::BANNER_PREFIXES
            .iter()
            .any(|p| self.raw.starts_with(p))
    }

    /// The whole banner line, lossily decoded.
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.raw)
    }
}

/// One header of a [`Message`]: byte ranges of key and value inside [`Message::raw`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Range of the key in `raw`.
    pub key: Range<usize>,
    /// Range of the value in `raw` (one optional space after the `:` is not included).
    pub value: Range<usize>,
    /// False when the line had no `:` (then the key is the whole line and the value is empty).
    pub has_colon: bool,
}

/// One decoded AMI message: ordered fields (duplicates kept) over one shared buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub(crate) raw: Bytes,
    pub(crate) fields: Vec<Field>,
}

impl Message {
    /// Builds a message from raw bytes and field ranges. Ranges outside `raw` read as empty.
    pub fn from_parts(raw: Bytes, fields: Vec<Field>) -> Self {
        Self { raw, fields }
    }

    fn slice(&self, r: &Range<usize>) -> &[u8] {
        self.raw.get(r.clone()).unwrap_or(&[])
    }

    /// True when field `f`'s key equals `key` ignoring ASCII case. The length is compared first
    /// (from the range, without touching the bytes), so most fields are rejected at once.
    #[inline]
    fn key_is(&self, f: &Field, key: &[u8]) -> bool {
        f.key.len() == key.len() && self.slice(&f.key).eq_ignore_ascii_case(key)
    }

    /// Value of the first header whose key equals `key` ignoring ASCII case.
    ///
    /// A linear scan over the field ranges (an AMI message has a few dozen headers at most,
    /// which beats building a map); no allocation.
    pub fn get(&self, key: &str) -> Option<&[u8]> {
        let key = key.as_bytes();
        self.fields
            .iter()
            .find(|f| self.key_is(f, key))
            .map(|f| self.slice(&f.value))
    }

    /// [`Message::get`] as `&str` without copying; `None` when the header is missing *or* its
    /// value is not valid UTF-8 (use [`Message::get_str`] for a lossy view of such values).
    pub fn get_utf8(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// True when the message is the event `name`: its `Event` value equals `name` exactly
    /// (event names are case-sensitive on the wire). No allocation, unlike comparing
    /// [`Message::event`]; meant for a tracker's hot path.
    pub fn event_is(&self, name: &str) -> bool {
        self.get("Event") == Some(name.as_bytes())
    }

    /// [`Message::get`], lossily decoded as UTF-8.
    pub fn get_str(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).map(String::from_utf8_lossy)
    }

    /// All values for `key` (ASCII case-insensitive), in wire order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.fields
            .iter()
            .filter(move |f| self.key_is(f, key.as_bytes()))
            .map(|f| self.slice(&f.value))
    }

    /// All `(key, value)` pairs in wire order.
    pub fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.fields
            .iter()
            .map(|f| (self.slice(&f.key), self.slice(&f.value)))
    }

    /// The field ranges (for zero-copy consumers).
    pub fn field_ranges(&self) -> &[Field] {
        &self.fields
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// True if the message has no header lines (never produced by the decoder).
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// True if some line had no `:` (kept as a key with an empty value).
    pub fn has_colonless_lines(&self) -> bool {
        self.fields.iter().any(|f| !f.has_colon)
    }

    /// Value of `Event`.
    pub fn event(&self) -> Option<Cow<'_, str>> {
        self.get_str("Event")
    }

    /// Value of `Response`.
    pub fn response(&self) -> Option<Cow<'_, str>> {
        self.get_str("Response")
    }

    /// Value of `Action` (for messages a client sent).
    pub fn action(&self) -> Option<Cow<'_, str>> {
        self.get_str("Action")
    }

    /// Value of `ActionID`.
    pub fn action_id(&self) -> Option<Cow<'_, str>> {
        self.get_str("ActionID")
    }

    /// The whole message as received, including its terminating empty line.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The value of `key` with C escapes resolved (see [`unescape_c`]), lossily decoded.
    /// Asterisk escapes `CallerIDName`, `ConnectedLineName`, `VarSet` `Value` and `ChanVariable`.
    pub fn unescaped(&self, key: &str) -> Option<String> {
        self.get(key).map(unescape_c)
    }
}

/// Resolves the C escapes Asterisk's `ast_escape_c` produces:
/// `\a \b \f \n \r \t \v \\ \' \" \?`. Unknown escapes and a trailing `\` are kept as is.
pub fn unescape_c(v: &[u8]) -> String {
    if memchr::memchr(b'\\', v).is_none() {
        // Nothing to resolve (the common case): one copy.
        return String::from_utf8_lossy(v).into_owned();
    }
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let b = v[i];
        if b == b'\\' && i + 1 < v.len() {
            let r = match v[i + 1] {
                b'a' => Some(0x07),
                b'b' => Some(0x08),
                b'f' => Some(0x0c),
                b'n' => Some(b'\n'),
                b'r' => Some(b'\r'),
                b't' => Some(b'\t'),
                b'v' => Some(0x0b),
                b'\\' => Some(b'\\'),
                b'\'' => Some(b'\''),
                b'"' => Some(b'"'),
                b'?' => Some(b'?'),
                _ => None,
            };
            if let Some(r) = r {
                out.push(r);
                i += 2;
                continue;
            }
        }
        out.push(b);
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}
