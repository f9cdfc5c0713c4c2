//! Each framing promise of the decoder, one test each (the captures are in `captures.rs`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, DEFAULT_MAX_MESSAGE_LEN, Frame, Message};

/// Decodes `data` in `chunk`-byte pieces; returns the frames and what is left in the buffer.
fn decode_in(dec: &mut AmiDecoder, data: &[u8], chunk: usize) -> (Vec<Frame>, BytesMut) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(f) = dec.decode(&mut buf) {
            frames.push(f);
        }
    }
    (frames, buf)
}

fn messages(frames: Vec<Frame>) -> Vec<Message> {
    frames
        .into_iter()
        .map(|f| match f {
            Frame::Message(m) => m,
            other => panic!("expected only messages, got {other:?}"),
        })
        .collect()
}

#[test]
fn crlf_then_bare_lf_ends_a_message() {
    // asterisk/asterisk#761: CoreShowChannelMap ended its message with `\r\n\n`.
    let data = b"Event: CoreShowChannelMap\r\nChannel: SIP/101-00000001\r\n\nEvent: Next\r\n\r\n";
    for chunk in [1, 2, 3, data.len()] {
        let (frames, rest) = decode_in(&mut AmiDecoder::without_banner(), data, chunk);
        let msgs = messages(frames);
        assert_eq!(msgs.len(), 2, "chunk {chunk}");
        assert!(msgs[0].event_is("CoreShowChannelMap"));
        assert_eq!(msgs[0].get("Channel"), Some(&b"SIP/101-00000001"[..]));
        assert_eq!(msgs[0].len(), 2);
        assert!(msgs[1].event_is("Next"));
        assert!(rest.is_empty());
    }
}

#[test]
fn banner_has_no_blank_line_and_first_message_follows_at_once() {
    let data = b"Asterisk Call Manager/9.0.0\r\nResponse: Success\r\nMessage: Authentication accepted\r\n\r\n";
    for chunk in [1, 5, data.len()] {
        let (frames, rest) = decode_in(&mut AmiDecoder::new(), data, chunk);
        assert_eq!(frames.len(), 2, "chunk {chunk}: {frames:?}");
        let Frame::Banner(b) = &frames[0] else {
            panic!("first frame is not the banner: {frames:?}")
        };
        assert!(b.is_known_ami());
        assert_eq!(b.version(), b"9.0.0");
        let Frame::Message(m) = &frames[1] else {
            panic!("second frame is not a message")
        };
        assert_eq!(m.response().as_deref(), Some("Success"));
        assert!(rest.is_empty());
    }
}

#[test]
fn partial_input_waits_and_keeps_the_buffer() {
    let mut dec = AmiDecoder::without_banner();
    let mut buf = BytesMut::from(&b"Event: Hangup\r\nUniqueid: 17"[..]);
    assert_eq!(dec.decode(&mut buf), None);
    assert_eq!(
        buf.len(),
        27,
        "nothing may be consumed from an incomplete message"
    );
    buf.extend_from_slice(b"95.12\r\n\r");
    assert_eq!(dec.decode(&mut buf), None);
    buf.extend_from_slice(b"\n");
    let Some(Frame::Message(m)) = dec.decode(&mut buf) else {
        panic!("message not complete")
    };
    assert_eq!(m.get("Uniqueid"), Some(&b"1795.12"[..]));
    assert!(buf.is_empty());
}

#[test]
fn duplicate_keys_are_kept_in_wire_order() {
    // Real `Command` output (`core show uptime`) from the j5 capture: two `Output` headers.
    let data = calldesk_fixtures::ami_rx("j5_command");
    let (frames, _) = decode_in(&mut AmiDecoder::new(), &data, data.len());
    let uptime = frames
        .iter()
        .find_map(|f| match f {
            Frame::Message(m) if m.get("ActionID") == Some(b"j5-003") => Some(m),
            _ => None,
        })
        .expect("j5-003 response");
    assert_eq!(
        uptime.get_all("output").collect::<Vec<_>>(),
        vec![
            &b"System uptime: 5 minutes, 44 seconds"[..],
            &b"Last reload: 5 minutes, 44 seconds"[..],
        ]
    );
    // `sip show peers`: 56 `Output` lines, first and last as Asterisk sent them.
    let peers = frames
        .iter()
        .find_map(|f| match f {
            Frame::Message(m) if m.get("ActionID") == Some(b"j5-004") => Some(m),
            _ => None,
        })
        .expect("j5-004 response");
    let out: Vec<&[u8]> = peers.get_all("Output").collect();
    assert_eq!(out.len(), 56);
    assert!(out[0].starts_with(b"Name/username"));
    assert!(out[55].starts_with(b"54 sip peers"));

    // `ChanVariable` headers (channelvars) keep their order too, among other keys.
    let data = b"Event: Newstate\r\nChanVariable: A=1\r\nUniqueid: 1.1\r\nChanVariable: B=2\r\nChanVariable: A=3\r\n\r\n";
    let (frames, _) = decode_in(&mut AmiDecoder::without_banner(), data, 4);
    let m = &messages(frames)[0];
    assert_eq!(
        m.get_all("ChanVariable").collect::<Vec<_>>(),
        vec![&b"A=1"[..], &b"B=2"[..], &b"A=3"[..]]
    );
    assert_eq!(m.get("chanvariable"), Some(&b"A=1"[..]), "first match wins");
    let keys: Vec<&[u8]> = m.fields().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        vec![
            &b"Event"[..],
            b"ChanVariable",
            b"Uniqueid",
            b"ChanVariable",
            b"ChanVariable"
        ]
    );
}

#[test]
fn values_are_bytes_with_lossy_and_unescaped_views() {
    // Latin-1 `é` (0xE9) from a trunk, and a C-escaped name.
    let data = b"Event: Newchannel\r\nCallerIDName: Ren\xe9\r\nConnectedLineName: O\\'Brien \\\\ \\\"x\\\"\\t\r\n\r\n";
    let (frames, _) = decode_in(&mut AmiDecoder::without_banner(), data, data.len());
    let m = &messages(frames)[0];
    assert_eq!(
        m.get("CallerIDName"),
        Some(&b"Ren\xe9"[..]),
        "raw bytes kept"
    );
    assert_eq!(m.get_str("CallerIDName").as_deref(), Some("Ren\u{fffd}"));
    assert_eq!(m.get_utf8("CallerIDName"), None, "not UTF-8");
    assert_eq!(m.get_utf8("Event"), Some("Newchannel"));
    assert_eq!(m.get_utf8("Missing"), None);
    assert_eq!(
        m.unescaped("ConnectedLineName").as_deref(),
        Some("O'Brien \\ \"x\"\t")
    );
    assert_eq!(
        m.unescaped("CallerIDName").as_deref(),
        Some("Ren\u{fffd}"),
        "no escapes: lossy copy"
    );
}

#[test]
fn lookup_ignores_ascii_case_of_keys_only() {
    let data = b"Event: Hangup\r\nCause-txt: Normal Clearing\r\nCAUSE: 16\r\n\r\n";
    let (frames, _) = decode_in(&mut AmiDecoder::without_banner(), data, data.len());
    let m = &messages(frames)[0];
    assert_eq!(m.get("cause"), Some(&b"16"[..]));
    assert_eq!(m.get("CAUSE-TXT"), Some(&b"Normal Clearing"[..]));
    assert_eq!(m.get("Caus"), None, "no prefix match");
    assert_eq!(m.get("Cause-txt2"), None);
    assert!(m.event_is("Hangup"));
    assert!(!m.event_is("hangup"), "event names are compared exactly");
    assert!(!m.event_is("Hang"));
}

#[test]
fn fields_and_message_borrow_the_read_buffer() {
    let data = b"Event: Newexten\r\nApplication: Set\r\nAppData: CDR(userfield)=did:101\r\n\r\n";
    let mut buf = BytesMut::with_capacity(4096);
    buf.extend_from_slice(data);
    let start = buf.as_ptr() as usize;
    let Some(Frame::Message(m)) = AmiDecoder::without_banner().decode(&mut buf) else {
        panic!("no message")
    };
    // The message is the front of the read buffer itself, not a copy.
    assert_eq!(m.raw().as_ptr() as usize, start);
    assert_eq!(m.raw().as_ref(), &data[..]);
    let raw = m.raw().as_ptr() as usize..m.raw().as_ptr() as usize + m.raw().len();
    for (k, v) in m.fields() {
        assert!(raw.contains(&(k.as_ptr() as usize)), "key outside raw");
        assert!(
            v.is_empty() || raw.contains(&(v.as_ptr() as usize)),
            "value outside raw"
        );
    }
    assert_eq!(m.get("AppData"), Some(&b"CDR(userfield)=did:101"[..]));
}

#[test]
fn default_cap_is_generous() {
    // A 1 MiB `Command` response (Asterisk has no output limit) passes the default cap.
    let mut data = b"Response: Success\r\nMessage: Command output follows\r\n".to_vec();
    let line = format!("Output: {}\r\n", "x".repeat(1000));
    while data.len() < 1024 * 1024 {
        data.extend_from_slice(line.as_bytes());
    }
    data.extend_from_slice(b"\r\n");
    let mut dec = AmiDecoder::without_banner();
    assert_eq!(dec.max_message_len(), DEFAULT_MAX_MESSAGE_LEN);
    assert!(
        dec.max_message_len() >= 4 * 1024 * 1024,
        "not 64 KiB like some clients"
    );
    let (frames, rest) = decode_in(&mut dec, &data, 4096);
    let m = &messages(frames)[0];
    assert_eq!(m.raw().len(), data.len());
    assert_eq!(m.get_all("Output").count(), m.len() - 2);
    assert!(rest.is_empty());
}

#[test]
fn a_long_line_fed_byte_by_byte_is_decoded() {
    // The scan position survives between calls: each byte is looked at once, so this runs
    // in linear time (rescanning the partial line each call would be quadratic: 10^11 steps).
    let value = "v".repeat(512 * 1024);
    let data = format!("Event: Big\r\nValue: {value}\r\n\r\nEvent: After\r\n\r\n");
    let (frames, rest) = decode_in(&mut AmiDecoder::without_banner(), data.as_bytes(), 1);
    let msgs = messages(frames);
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].get("Value").map(<[u8]>::len), Some(value.len()));
    assert!(msgs[1].event_is("After"));
    assert!(rest.is_empty());
}

#[test]
fn captures_fed_one_byte_at_a_time_match_one_shot() {
    for name in [
        "j4_ping_events",
        "f2_park_retrieve",
        "j3_coreshowchannels_active_call",
    ] {
        let data = calldesk_fixtures::ami_rx(name);
        let (whole, _) = decode_in(&mut AmiDecoder::new(), &data, data.len());
        let (bytewise, rest) = decode_in(&mut AmiDecoder::new(), &data, 1);
        assert_eq!(whole, bytewise, "{name}");
        assert!(rest.is_empty(), "{name}");
        assert!(whole.len() > 3, "{name}");
    }
}

#[test]
fn a_truncated_buffer_restarts_cleanly() {
    // API misuse (the caller drops bytes the decoder had scanned) must not panic: the decoder
    // starts over at the front of whatever the buffer now holds.
    let mut dec = AmiDecoder::without_banner();
    let mut buf = BytesMut::from(&b"Event: Half\r\nUniqueid: 1"[..]);
    assert_eq!(dec.decode(&mut buf), None);
    buf.clear();
    buf.extend_from_slice(b"Event: Whole\r\n\r\n");
    let Some(Frame::Message(m)) = dec.decode(&mut buf) else {
        panic!("no message after the restart")
    };
    assert!(m.event_is("Whole"));
    assert_eq!(m.len(), 1);
}

#[test]
fn oversized_banner_line_is_skipped_then_messages_flow() {
    let mut data = vec![b'A'; 300];
    data.extend_from_slice(b"\r\n\r\nEvent: Ok\r\n\r\n");
    for chunk in [1, 7, data.len()] {
        let mut dec = AmiDecoder::new().with_max_message_len(100);
        let (frames, rest) = decode_in(&mut dec, &data, chunk);
        assert_eq!(frames.len(), 2, "chunk {chunk}: {frames:?}");
        assert!(
            matches!(frames[0], Frame::Skipped { bytes: 304, .. }),
            "{frames:?}"
        );
        assert!(matches!(&frames[1], Frame::Message(m) if m.event_is("Ok")));
        assert!(rest.is_empty());
    }
}
