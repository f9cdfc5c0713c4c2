//! Decoder fuzz target: arbitrary bytes, split at arbitrary points.
//!
//! Input: 4 control bytes, then the stream. Control byte 0 picks the banner mode and the size
//! cap (tiny caps exercise the skip/resync path), bytes 1..4 seed the chunk sizes. Checked:
//! * no panic, whatever the input;
//! * chunked decoding gives exactly the frames (and leftover bytes) of one-shot decoding;
//! * memory stays bounded: the buffer never holds more than `cap + 1` bytes between calls and
//!   no message is longer than `cap + 2`;
//! * with a cap larger than the input, the frames equal those of a simple line-by-line
//!   reference decoder written from the framing rules (`ami.md` §2).
#![no_main]

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame};
use libfuzzer_sys::fuzz_target;

/// Decodes `data` in pieces whose sizes come from `seed` (0 = one piece); checks the bounds.
fn run(mut dec: AmiDecoder, data: &[u8], seed: u32) -> (Vec<Frame>, BytesMut) {
    let cap = dec.max_message_len();
    let mut state = seed | 1;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    while pos < data.len() {
        let n = if seed == 0 {
            data.len()
        } else {
            // xorshift32: piece sizes 1..=64 mostly, now and then up to 1024.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let limit = if state % 8 == 0 { 1024 } else { 64 };
            1 + (state as usize >> 3) % limit
        };
        let n = n.min(data.len() - pos);
        buf.extend_from_slice(&data[pos..pos + n]);
        pos += n;
        while let Some(frame) = dec.decode(&mut buf) {
            if let Frame::Message(m) = &frame {
                assert!(m.raw().len() <= cap + 2, "message over the cap");
                for f in m.field_ranges() {
                    assert!(f.key.end <= m.raw().len() && f.value.end <= m.raw().len());
                    assert!(f.key.start <= f.key.end && f.value.start <= f.value.end);
                }
                // The accessors never panic.
                let _ = (m.event(), m.event_is("Hangup"), m.get_utf8("Uniqueid"));
                let _ = m.get_all("Output").count();
                let _ = m.unescaped("CallerIDName");
            }
            if let Frame::Banner(b) = &frame {
                let _ = (b.version(), b.is_known_ami(), b.text());
            }
            frames.push(frame);
        }
        assert!(
            buf.len() <= cap + 1,
            "buffer grew past the cap: {}",
            buf.len()
        );
    }
    (frames, buf)
}

#[derive(Debug, PartialEq)]
enum Item {
    Banner(Vec<u8>),
    Message(Vec<(Vec<u8>, Vec<u8>)>),
}

/// The framing rules, spelled out line by line over the whole input (no streaming, no cap).
fn reference(data: &[u8], expect_banner: bool) -> Vec<Item> {
    const PREFIXES: &[&[u8]] = &[
        b"Asterisk Call Manager/",
        b"Asterisk Call Manager Proxy/",
        b"Asterisk Manager Proxy/",
        b"OpenPBX Call Manager/",
        b"CallWeaver Call Manager/",
    ];
    let mut items = Vec::new();
    let mut banner = expect_banner;
    let mut current = Vec::new();
    let mut rest = data;
    while let Some(nl) = rest.iter().position(|&b| b == b'\n') {
        let mut line = &rest[..nl];
        rest = &rest[nl + 1..];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if line.is_empty() {
            if !current.is_empty() {
                items.push(Item::Message(std::mem::take(&mut current)));
            }
            continue;
        }
        let colon = line.iter().position(|&b| b == b':');
        if banner {
            banner = false;
            if colon.is_none() || PREFIXES.iter().any(|p| line.starts_with(p)) {
                items.push(Item::Banner(line.to_vec()));
                continue;
            }
        }
        current.push(match colon {
            Some(c) => {
                let value = &line[c + 1..];
                let value = value.strip_prefix(b" ").unwrap_or(value);
                (line[..c].to_vec(), value.to_vec())
            }
            None => (line.to_vec(), Vec::new()),
        });
    }
    items
}

fuzz_target!(|input: &[u8]| {
    let Some((control, data)) = input.split_first_chunk::<4>() else {
        return;
    };
    let banner = control[0] & 1 == 1;
    let cap = match control[0] >> 1 {
        0..=95 => 2 + usize::from(control[0] >> 1),
        _ => calldesk_ami_proto::DEFAULT_MAX_MESSAGE_LEN,
    };
    let seed = u32::from_le_bytes([control[1], control[2], control[3], 0x5a]);
    let decoder = || {
        let d = if banner {
            AmiDecoder::new()
        } else {
            AmiDecoder::without_banner()
        };
        d.with_max_message_len(cap)
    };
    let (whole, whole_rest) = run(decoder(), data, 0);
    let (chunked, chunked_rest) = run(decoder(), data, seed);
    assert_eq!(whole, chunked, "chunking changed the frames");
    assert_eq!(
        whole_rest, chunked_rest,
        "chunking changed the leftover bytes"
    );

    if cap > data.len() + 2 {
        let got: Vec<Item> = whole
            .iter()
            .map(|f| match f {
                Frame::Banner(b) => Item::Banner(b.raw.to_vec()),
                Frame::Message(m) => {
                    Item::Message(m.fields().map(|(k, v)| (k.to_vec(), v.to_vec())).collect())
                }
                Frame::Skipped { .. } => panic!("skipped below the cap"),
            })
            .collect();
        assert_eq!(
            got,
            reference(data, banner),
            "differs from the reference decoder"
        );
    }
});
