//! # calldesk-ami-proto: a sans-IO codec for the Asterisk Manager Interface (AMI)
//!
//! Layer 0 of calldesk: pure code, no tokio, no sockets, no clock. The async client
//! (`calldesk-ami`) and the fake PBX (`calldesk-sim`) feed bytes in and take frames out.
//!
//! ## Main types
//!
//! * [`AmiDecoder`]: a streaming decoder. [`AmiDecoder::decode`] takes whole frames off the
//!   front of a [`bytes::BytesMut`] and returns `None` when it needs more bytes.
//! * [`Frame`]: what the decoder yields: the [`Banner`] line (`Asterisk Call Manager/9.0.0`), a
//!   [`Message`], or [`Frame::Skipped`] when an oversized message was dropped.
//! * [`Message`]: one AMI message (response, event, or action when decoding what a client
//!   sent). It owns its bytes as one [`bytes::Bytes`] (zero-copy, split off the read buffer) and a
//!   `Vec` of index ranges into it: exactly one heap allocation per message.
//! * [`Outgoing`] / [`EncodeError`]: an outgoing message built header by header; every header is
//!   validated on insertion, so an `Outgoing` can always be encoded.
//!
//! ## Framing rules (see `shared/protocols/ami.md` §2 and the real Asterisk 20 captures)
//!
//! * The first line is the banner. It has no blank line after it. Lines starting with
//!   `Asterisk Call Manager/`, `Asterisk Call Manager Proxy/`, `Asterisk Manager Proxy/`,
//!   `OpenPBX Call Manager/`, `CallWeaver Call Manager/`, or any first line without a `:`, are
//!   taken as the banner. A first line *with* a `:` that is not a known banner is taken as the
//!   first header of a message (the decoder then assumes there is no banner). Use
//!   [`AmiDecoder::without_banner`] to decode what a client sends to a server.
//! * A line ends in `\n`; one optional `\r` before it is stripped. A message ends at the first
//!   line that is empty after that stripping. Empty lines between messages are ignored.
//!   This matters for `f2_park_retrieve`, where Asterisk sends
//!   `Message: Park successful\n\r\n\r\n`: the value is `Park successful`, the first `\r\n`
//!   ends the message and the second one is a stray empty line that is skipped. The message count
//!   then equals `INDEX.json`'s.
//! * A header line is split at the first `:`; exactly one optional space after it is stripped
//!   (`AccountCode: ` and `AccountCode:` both give an empty value). Values are raw bytes.
//! * A line without `:` inside a message does not fail anything: it is kept as a field whose key
//!   is the whole line and whose value is empty ([`Message::has_colonless_lines`] tells).
//! * A message longer than the cap (default [`DEFAULT_MAX_MESSAGE_LEN`], 4 MiB) is dropped while
//!   it streams in (memory stays bounded); the decoder resynchronises at the next empty line and
//!   yields [`Frame::Skipped`] with the number of bytes dropped. It never panics and never
//!   returns an error: nothing is fatal for the session.
//!
//! ## Encoding rules
//!
//! [`Outgoing`] rejects, with a typed [`EncodeError`], keys that are empty or contain `:`,
//! CR or LF in keys or values, and lines longer than [`MAX_LINE_LEN`] (1024 bytes including
//! the `\r\n`, Asterisk's `inbuf` limit). Actions are limited to [`MAX_ACTION_HEADERS`] (128) lines.
//!
//! ## Tests
//!
//! Integration tests (`tests/`) decode every real capture in `shared/fixtures/ami/*.rx.raw` and
//! compare message counts and event histograms with `INDEX.json`; proptests feed captures in
//! random chunk sizes (the result must equal the one-shot decode) and arbitrary bytes (no panic);
//! encoder rejection cases and a decode/encode round trip are covered too.

mod decode;
mod encode;
mod message;

pub use decode::{AmiDecoder, DEFAULT_MAX_MESSAGE_LEN, Frame, SkipReason};
pub use encode::{EncodeError, MAX_ACTION_HEADERS, MAX_LINE_LEN, Outgoing};
pub use message::{Banner, Field, Message, unescape_c};
