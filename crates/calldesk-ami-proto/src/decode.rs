//! The streaming decoder.

use bytes::{Buf, BytesMut};

use crate::message::{Banner, Field, Message};

/// Default per-message size cap: 4 MiB (Asterisk has no output limit; `Command` output and big
/// lists can be hundreds of KB, so this is deliberately generous).
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 4 * 1024 * 1024;

/// Banner prefixes accepted (Asterisk and the proxies/forks Asterisk-Java accepts).
pub(crate) const BANNER_PREFIXES: &[&[u8]] = &[
    b"Asterisk Call Manager/",
    b"Asterisk Call Manager Proxy/",
    b"Asterisk Manager Proxy/",
    b"OpenPBX Call Manager/",
    b"CallWeaver Call Manager/",
];

/// Why bytes were dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The message (or the banner line) was longer than the configured cap.
    MessageTooLong {
        /// The cap in bytes.
        limit: usize,
    },
}

/// One decoded unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The greeting line.
    Banner(Banner),
    /// A message.
    Message(Message),
    /// Bytes dropped up to and including the next message boundary (resync).
    Skipped {
        /// How many bytes were dropped.
        bytes: usize,
        /// Why.
        reason: SkipReason,
    },
}

/// Streaming AMI decoder. Cheap to create; keeps only scan state between calls, the bytes
/// stay in the caller's buffer.
#[derive(Debug, Clone)]
pub struct AmiDecoder {
    max_message_len: usize,
    expect_banner: bool,
    /// Bytes of `buf` already scanned as complete header lines of the current message.
    scan_pos: usize,
    /// Fields of the current (partial) message; copied once into an exact-size `Vec`.
    scratch: Vec<Field>,
    skip: Option<SkipState>,
}

#[derive(Debug, Clone, Copy)]
struct SkipState {
    dropped: usize,
    /// The current (partial) line already had content, so it cannot be the empty line.
    line_has_content: bool,
}

impl Default for AmiDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl AmiDecoder {
    /// A decoder for a client: expects the banner line first.
    pub fn new() -> Self {
        Self {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            expect_banner: true,
            scan_pos: 0,
            scratch: Vec::new(),
            skip: None,
        }
    }

    /// A decoder for a server reading actions: no banner is expected.
    pub fn without_banner() -> Self {
        Self {
            expect_banner: false,
            ..Self::new()
        }
    }

    /// Sets the per-message size cap (at least 2 bytes are always allowed).
    pub fn with_max_message_len(mut self, max: usize) -> Self {
        self.max_message_len = max.max(2);
        self
    }

    /// The per-message size cap.
    pub fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    /// Takes whole frames off the front of `buf`; None = need more bytes.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<Frame> {
        loop {
            if let Some(state) = self.skip {
                return self.skip_to_boundary(buf, state);
            }
            if self.scan_pos == 0 {
                // Between messages: drop stray empty lines.
                match buf.first() {
                    None => return None,
                    Some(b'\n') => {
                        buf.advance(1);
                        continue;
                    }
                    Some(b'\r') => match buf.get(1) {
                        None => return None,
                        Some(b'\n') => {
                            buf.advance(2);
                            continue;
                        }
                        Some(_) => {}
                    },
                    Some(_) => {}
                }
                if self.expect_banner {
                    let Some(nl) = memchr::memchr(b'\n', buf) else {
                        if buf.len() > self.max_message_len {
                            self.expect_banner = false;
                            self.start_skip(buf);
                            continue;
                        }
                        return None;
                    };
                    self.expect_banner = false;
                    if nl + 1 > self.max_message_len {
                        self.start_skip(buf);
                        continue;
                    }
                    let line = strip_cr(&buf[..nl]);
                    let is_banner = BANNER_PREFIXES.iter().any(|p| line.starts_with(p))
                        || memchr::memchr(b':', line).is_none();
                    if is_banner {
                        let line_len = line.len();
                        let raw = buf.split_to(nl + 1).freeze().slice(..line_len);
                        return Some(Frame::Banner(Banner { raw }));
                    }
                }
            }
            // Scan header lines of the current message.
            let Some(rel) = memchr::memchr(b'\n', &buf[self.scan_pos..]) else {
                // A lone trailing `\r` may still become the empty line that ends the message.
                let lone_cr = buf.len() == self.scan_pos + 1 && buf.last() == Some(&b'\r');
                if buf.len() > self.max_message_len && !lone_cr {
                    self.start_skip(buf);
                    continue;
                }
                return None;
            };
            let nl = self.scan_pos + rel;
            let end = nl + 1;
            let start = self.scan_pos;
            let line_end = if nl > start && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            if line_end == start {
                // Empty line: the message is complete.
                let raw = buf.split_to(end).freeze();
                let fields = self.scratch.as_slice().to_vec();
                self.scratch.clear();
                self.scan_pos = 0;
                return Some(Frame::Message(Message { raw, fields }));
            }
            if end > self.max_message_len {
                self.start_skip(buf);
                continue;
            }
            let line = &buf[start..line_end];
            let field = match memchr::memchr(b':', line) {
                Some(c) => {
                    let mut vs = start + c + 1;
                    if vs < line_end && buf[vs] == b' ' {
                        vs += 1;
                    }
                    Field {
                        key: start..start + c,
                        value: vs..line_end,
                        has_colon: true,
                    }
                }
                None => Field {
                    key: start..line_end,
                    value: line_end..line_end,
                    has_colon: false,
                },
            };
            self.scratch.push(field);
            self.scan_pos = end;
        }
    }

    /// Drops the complete lines of the current message and switches to resync mode.
    fn start_skip(&mut self, buf: &mut BytesMut) {
        let dropped = self.scan_pos;
        buf.advance(self.scan_pos);
        self.scan_pos = 0;
        self.scratch.clear();
        // Only whole lines were dropped, so the current line starts fresh.
        self.skip = Some(SkipState {
            dropped,
            line_has_content: false,
        });
    }

    fn skip_to_boundary(&mut self, buf: &mut BytesMut, mut st: SkipState) -> Option<Frame> {
        loop {
            match memchr::memchr(b'\n', buf) {
                Some(nl) => {
                    let empty = !st.line_has_content && (nl == 0 || (nl == 1 && buf[0] == b'\r'));
                    buf.advance(nl + 1);
                    st.dropped = st.dropped.saturating_add(nl + 1);
                    st.line_has_content = false;
                    if empty {
                        self.skip = None;
                        return Some(Frame::Skipped {
                            bytes: st.dropped,
                            reason: SkipReason::MessageTooLong {
                                limit: self.max_message_len,
                            },
                        });
                    }
                }
                None => {
                    let n = buf.len();
                    if n == 0 || (n == 1 && buf[0] == b'\r' && !st.line_has_content) {
                        self.skip = Some(st);
                        return None;
                    }
                    buf.advance(n);
                    st.dropped = st.dropped.saturating_add(n);
                    st.line_has_content = true;
                    self.skip = Some(st);
                    return None;
                }
            }
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    }
}
