//! The streaming decoder.
//!
//! One pass over the input: every byte of a message is classified once, eight at a time (a
//! SWAR scan for `\n` and `:`), and the scan position survives between [`AmiDecoder::decode`]
//! calls, so input that arrives in small chunks is not scanned again (a long line fed byte by
//! byte costs linear, not quadratic, time).

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

/// "No `:` seen yet on the current line."
const NO_COLON: usize = usize::MAX;

/// Streaming AMI decoder. Cheap to create; keeps only scan state between calls, the bytes
/// stay in the caller's buffer.
///
/// The caller may only append to the buffer between calls (as a socket read does); if the
/// buffer is ever shorter than what the decoder has already scanned (the caller cleared it),
/// the decoder starts over at a message boundary instead of panicking.
#[derive(Debug, Clone)]
pub struct AmiDecoder {
    max_message_len: usize,
    expect_banner: bool,
    /// Start of the current (incomplete) line in `buf`; the bytes before it are the complete
    /// header lines of the current message, already indexed in `scratch`.
    line_start: usize,
    /// Bytes of `buf` already classified (`line_start <= scanned`): the next call resumes here.
    scanned: usize,
    /// Position in `buf` of the first `:` of the current line, or [`NO_COLON`].
    colon: usize,
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
            line_start: 0,
            scanned: 0,
            colon: NO_COLON,
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
        if self.scanned > buf.len() {
            // The caller replaced or truncated the buffer: our positions mean nothing now.
            self.reset_message();
        }
        loop {
            if let Some(state) = self.skip {
                return self.skip_to_boundary(buf, state);
            }
            let Some(nl) = self.next_line(buf) else {
                let start = self.line_start;
                // A lone trailing `\r` may still become the empty line that ends the message.
                let lone_cr = buf.len() == start + 1 && buf.get(start) == Some(&b'\r');
                if buf.len() > self.max_message_len && !lone_cr {
                    self.expect_banner = false;
                    self.start_skip(buf);
                    continue;
                }
                return None;
            };
            let start = self.line_start;
            let colon = std::mem::replace(&mut self.colon, NO_COLON);
            let end = nl + 1;
            let line_end = if nl > start && buf.get(nl - 1) == Some(&b'\r') {
                nl - 1
            } else {
                nl
            };
            if line_end == start {
                if self.scratch.is_empty() {
                    // A stray empty line between messages: drop it.
                    buf.advance(end);
                    self.reset_message();
                    continue;
                }
                // Empty line: the message is complete.
                let raw = buf.split_to(end).freeze();
                let fields = self.scratch.as_slice().to_vec();
                self.reset_message();
                return Some(Frame::Message(Message { raw, fields }));
            }
            if end > self.max_message_len {
                self.expect_banner = false;
                self.start_skip(buf);
                continue;
            }
            if self.expect_banner {
                // The first non-empty line (stray empty lines were dropped, so `start == 0`).
                self.expect_banner = false;
                let line = buf.get(start..line_end).unwrap_or_default();
                let is_banner =
                    colon >= line_end || BANNER_PREFIXES.iter().any(|p| line.starts_with(p));
                if is_banner {
                    let raw = buf.split_to(end).freeze().slice(start..line_end);
                    self.reset_message();
                    return Some(Frame::Banner(Banner { raw }));
                }
            }
            let field = if colon < line_end {
                let mut vs = colon + 1;
                if vs < line_end && buf.get(vs) == Some(&b' ') {
                    vs += 1;
                }
                Field {
                    key: start..colon,
                    value: vs..line_end,
                    has_colon: true,
                }
            } else {
                Field {
                    key: start..line_end,
                    value: line_end..line_end,
                    has_colon: false,
                }
            };
            self.scratch.push(field);
            self.line_start = end;
        }
    }

    /// Scans from `self.scanned` for the `\n` that ends the current line and returns its
    /// position, noting the line's first `:` in `self.colon` on the way. Without a `\n`,
    /// remembers how far it got and returns `None`.
    #[inline]
    fn next_line(&mut self, buf: &[u8]) -> Option<usize> {
        let mut i = self.scanned;
        // Eight bytes at a time (SWAR). `candidates` marks every `\n` and `:` (and the rare
        // 0x1A and `*`, which the byte check below skips).
        while let Some(word) = buf.get(i..i + 8) {
            let Ok(word) = <[u8; 8]>::try_from(word) else {
                break;
            };
            let x = u64::from_le_bytes(word);
            let mut hits = candidates(x);
            while hits != 0 {
                let bit = hits.trailing_zeros() & !7;
                hits &= hits - 1;
                let k = (bit / 8) as usize;
                match (x >> bit) as u8 {
                    b'\n' => {
                        self.scanned = i + k + 1;
                        return Some(i + k);
                    }
                    b':' if self.colon == NO_COLON => self.colon = i + k,
                    _ => {}
                }
            }
            i += 8;
        }
        // The last few bytes, one at a time.
        while let Some(&b) = buf.get(i) {
            if b == b'\n' {
                self.scanned = i + 1;
                return Some(i);
            }
            if b == b':' && self.colon == NO_COLON {
                self.colon = i;
            }
            i += 1;
        }
        self.scanned = i;
        None
    }

    /// Forgets the current message's lines: the next byte of the buffer starts a message.
    fn reset_message(&mut self) {
        self.line_start = 0;
        self.scanned = 0;
        self.colon = NO_COLON;
        self.scratch.clear();
    }

    /// Drops the complete lines of the current message and switches to resync mode.
    fn start_skip(&mut self, buf: &mut BytesMut) {
        let dropped = self.line_start.min(buf.len());
        buf.advance(dropped);
        self.reset_message();
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
                    let empty = !st.line_has_content
                        && (nl == 0 || (nl == 1 && buf.first() == Some(&b'\r')));
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
                    if n == 0 || (n == 1 && buf.first() == Some(&b'\r') && !st.line_has_content) {
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

/// Bytes `b` with `b | 0x30 == b':'`, that is `\n` (0x0A), 0x1A, `*` (0x2A) and `:` (0x3A): the
/// high bit of each such byte of `x` is set in the result, nothing else is. Exact per byte (no
/// carries between bytes), so the `\n` and `:` positions are never missed.
#[inline]
fn candidates(x: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let y = (x | 0x3030_3030_3030_3030) ^ 0x3a3a_3a3a_3a3a_3a3a;
    // A byte of `y` is zero exactly where `x` is a candidate.
    !(((y & LOW7) + LOW7) | y | LOW7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_are_exact() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut word = [b'a'; 8];
                word[pos] = b;
                let got = candidates(u64::from_le_bytes(word));
                let want = if matches!(b, b'\n' | 0x1a | b'*' | b':') {
                    0x80u64 << (8 * pos)
                } else {
                    0
                };
                assert_eq!(got, want, "byte {b:#04x} at {pos}");
            }
        }
        // Neighbours never leak into each other (a zero byte next to candidates, 0xff, 0x80).
        let word = [0x00, b'\n', 0xff, b':', 0x80, b'*', 0x1a, 0x7f];
        assert_eq!(
            candidates(u64::from_le_bytes(word)),
            0x0080_8000_8000_8000,
            "{word:?}"
        );
    }
}
