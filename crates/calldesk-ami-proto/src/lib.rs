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
//!   `Vec` of index ranges into it: exactly one heap allocation per message. Values are bytes:
//!   [`Message::get`] (first match, key compared ignoring ASCII case, length first),
//!   [`Message::get_all`] (duplicates such as `Output` or `ChanVariable`, in wire order),
//!   [`Message::get_utf8`] (borrowed `&str`, `None` if not UTF-8), [`Message::get_str`] (lossy),
//!   [`Message::unescaped`] (Asterisk's C escapes resolved) and [`Message::event_is`] (an
//!   allocation-free event test for a tracker's hot path).
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
//! * Between calls the caller only appends to the buffer (as a socket read does). If it drops
//!   bytes the decoder had already scanned, the decoder starts over at the front of the buffer
//!   rather than panicking.
//!
//! ## Encoding rules
//!
//! [`Outgoing`] rejects, with a typed [`EncodeError`], keys that are empty or contain `:`,
//! CR or LF in keys or values, and lines longer than [`MAX_LINE_LEN`] (1024 bytes including
//! the `\r\n`, Asterisk's `inbuf` limit). Actions are limited to [`MAX_ACTION_HEADERS`] (128) lines.
//!
//! ## Performance
//!
//! The decoder looks at every byte once: a SWAR scan classifies eight bytes at a time (`\n` and
//! `:` in one pass, no per-line `memchr` calls), the scan position is kept between
//! [`AmiDecoder::decode`] calls (input that arrives in small pieces is not scanned again, so a
//! long line fed byte by byte costs linear time), and the fields of a message are gathered in a
//! reused scratch `Vec` and copied once into an exact-size one.
//!
//! Measured with `benches/decode.rs` on the largest real capture (`z_busy_hour`, 7.95 MB,
//! 18,443 messages), one core of the 2-core AMD EPYC (Zen 4) dev machine, release build:
//!
//! | framing + indexing | before (two `memchr` per line) | now (SWAR, resumable scan) |
//! |---|---:|---:|
//! | one buffer | 1.41 GB/s (best run 1.58) | 2.16 GB/s (best run 2.45) |
//! | 4 KiB chunks, as from a socket | 1.17 GB/s (best run 1.43) | 2.01 GB/s (best run 2.15) |
//! | one buffer + `event_is` and a `get` per message | 1.24 GB/s | 1.97 GB/s |
//!
//! Criterion medians, taken while other builds shared the machine (so on the low side); "best
//! run" is the fastest of 300 passes.
//!
//! ```text
//! cargo bench -p calldesk-ami-proto --bench decode            # criterion, throughput in bytes
//! cargo bench -p calldesk-ami-proto --bench decode -- --quick # a short run
//! ```
//!
//! ## Tests
//!
//! * `tests/captures.rs` decodes every real capture in `shared/fixtures/ami/*.rx.raw` and
//!   compares message counts and event/response histograms with `INDEX.json`; proptests feed
//!   every capture in one random chunking per case (the frames must equal the one-shot decode;
//!   `z_busy_hour` in socket-sized chunks too) and arbitrary bytes with a random tiny cap (no
//!   panic, the buffer stays within the cap, chunking changes nothing).
//! * `tests/framing.rs` has one test per framing promise: banner, `\r\n\n` and bare-`\n`
//!   ends, partial input, duplicate keys (`Output`, `ChanVariable`), byte values with lossy and
//!   C-unescaped views, key case, zero-copy, the generous default cap, linear-time resumption.
//! * `tests/encode.rs` covers the encoder's refusals and, as a proptest, the encode → decode
//!   round trip of arbitrary headers (refused for the documented reason, or decoded back to
//!   the same headers).
//! * `tests/alloc.rs` counts heap allocations (`allocation-counter`, in that test binary only):
//!   at most one per decoded message, one-shot or chunked, and none for lookups.
//!
//! ## Fuzzing
//!
//! `fuzz/` holds two cargo-fuzz targets (its own workspace, excluded from the main one). From
//! `crates/calldesk-ami-proto` (`cargo install cargo-fuzz` first; it needs a nightly toolchain,
//! or `RUSTC_BOOTSTRAP=1` with stable):
//!
//! ```text
//! cargo +nightly fuzz run decode -- -max_total_time=600 -max_len=8192
//! cargo +nightly fuzz run encode -- -max_total_time=180
//! ```
//!
//! * `decode`: arbitrary bytes with a random cap and banner mode, split at arbitrary points: no
//!   panic; chunked frames and leftover bytes equal the one-shot ones; the buffer never holds
//!   more than `cap + 1` bytes between calls; below the cap, the frames equal those of a
//!   line-by-line reference decoder written from the rules above. Seeds: `fuzz/corpus/decode/
//!   seed-*` (small real captures, the bare-`\n` Park response, a tiny cap).
//! * `encode`: arbitrary headers: each is refused with the error the rules call for, or the
//!   message decodes back to exactly the accepted headers.
//!
//! Last runs (cargo-fuzz 0.13.2, nightly rustc 1.97, libFuzzer with AddressSanitizer, one
//! core): `decode` 2,211,274 executions in 11 min (3,345/s), 492 coverage edges, 2,420
//! features, no crash; `encode` 1,177,489 executions in 3 min (6,505/s), 431 edges, 2,013
//! features, no crash.

mod auth;
mod decode;
mod encode;
mod message;

pub use auth::md5_login_key;

/// The AMI event classes (`perms[]` in Asterisk's manager.c, in bit order): what `Events:`
/// masks and `read`/`write` in manager.conf name. `all` stands for every one of them.
pub const EVENT_CLASSES: [&str; 19] = [
    "system",
    "call",
    "log",
    "verbose",
    "command",
    "agent",
    "user",
    "config",
    "dtmf",
    "reporting",
    "cdr",
    "dialplan",
    "originate",
    "agi",
    "cc",
    "aoc",
    "test",
    "security",
    "message",
];
pub use decode::{AmiDecoder, DEFAULT_MAX_MESSAGE_LEN, Frame, SkipReason};
pub use encode::{EncodeError, MAX_ACTION_HEADERS, MAX_LINE_LEN, Outgoing};
pub use message::{Banner, Field, Message, unescape_c};
