//! Data-driven tests over every real Asterisk 20 capture in `shared/fixtures/ami`.

// Test-only helpers outside #[test] fns may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame, Message};
use proptest::prelude::*;

fn captures() -> Vec<(String, Vec<u8>)> {
    let out: Vec<_> = calldesk_fixtures::ami_captures()
        .into_iter()
        .map(|name| {
            let bytes = calldesk_fixtures::ami_rx(&name);
            (name, bytes)
        })
        .collect();
    assert!(
        out.len() >= 20,
        "expected the full capture set, found {}",
        out.len()
    );
    out
}

/// Every capture but the 8 MB busy hour, read once for all proptest cases.
static SMALL_CAPTURES: std::sync::LazyLock<Vec<(String, Vec<u8>)>> =
    std::sync::LazyLock::new(|| {
        captures()
            .into_iter()
            .filter(|(n, _)| n != "z_busy_hour")
            .collect()
    });

/// `{"Name": count}` objects of INDEX.json as a sorted map.
fn histogram(entry: &serde_json::Value, key: &str) -> BTreeMap<String, u64> {
    entry[key]
        .as_object()
        .unwrap_or_else(|| panic!("INDEX.json entry has no `{key}` object"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect()
}

fn decode_all(dec: &mut AmiDecoder, data: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(data);
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(&mut buf) {
        frames.push(f);
    }
    assert!(buf.is_empty(), "{} bytes left undecoded", buf.len());
    frames
}

fn decode_chunked(data: &[u8], chunks: &[usize]) -> Vec<Frame> {
    let mut dec = AmiDecoder::new();
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    let mut pos = 0;
    let mut ci = 0;
    while pos < data.len() {
        let n = chunks[ci % chunks.len()].max(1).min(data.len() - pos);
        ci += 1;
        buf.extend_from_slice(&data[pos..pos + n]);
        pos += n;
        while let Some(f) = dec.decode(&mut buf) {
            frames.push(f);
        }
    }
    frames
}

/// Compare frames by content (Bytes equality is by content already).
fn summary(frames: &[Frame]) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    frames
        .iter()
        .map(|f| match f {
            Frame::Banner(b) => vec![(b"#banner".to_vec(), b.raw.to_vec())],
            Frame::Message(m) => m.fields().map(|(k, v)| (k.to_vec(), v.to_vec())).collect(),
            Frame::Skipped { bytes, .. } => {
                vec![(b"#skipped".to_vec(), bytes.to_string().into_bytes())]
            }
        })
        .collect()
}

#[test]
fn every_capture_matches_index_counts_and_histograms() {
    let index: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&calldesk_fixtures::ami_file("INDEX.json")).unwrap();
    let caps = captures();
    assert_eq!(
        caps.len(),
        index.len(),
        "INDEX.json and *.rx.raw disagree on the capture set"
    );
    for (name, data) in &caps {
        let entry = index
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from INDEX.json"));
        let frames = decode_all(&mut AmiDecoder::new(), data);
        let Frame::Banner(b) = &frames[0] else {
            panic!("{name}: first frame is not the banner")
        };
        assert_eq!(b.text(), "Asterisk Call Manager/9.0.0");
        assert_eq!(b.version(), b"9.0.0");
        let msgs: Vec<&Message> = frames[1..]
            .iter()
            .map(|f| match f {
                Frame::Message(m) => m,
                other => panic!("{name}: unexpected frame {other:?}"),
            })
            .collect();
        let want = entry["messages"].as_u64().unwrap();
        assert_eq!(msgs.len() as u64, want, "{name}: message count");
        let mut hist: BTreeMap<String, u64> = BTreeMap::new();
        let mut resp: BTreeMap<String, u64> = BTreeMap::new();
        for m in &msgs {
            if let Some(e) = m.event() {
                *hist.entry(e.into_owned()).or_default() += 1;
            }
            if let Some(r) = m.response() {
                *resp.entry(r.into_owned()).or_default() += 1;
            }
            assert!(
                !m.has_colonless_lines(),
                "{name}: colonless line in {:?}",
                m.raw()
            );
        }
        assert_eq!(hist, histogram(entry, "events"), "{name}: event histogram");
        assert_eq!(
            resp,
            histogram(entry, "responses"),
            "{name}: response histogram"
        );
    }
}

#[test]
fn park_successful_bare_lf_is_one_message() {
    let data = calldesk_fixtures::ami_rx("f2_park_retrieve");
    let frames = decode_all(&mut AmiDecoder::new(), &data);
    let park = frames
        .iter()
        .find_map(|f| match f {
            Frame::Message(m) if m.action_id().as_deref() == Some("f2-002") => Some(m),
            _ => None,
        })
        .unwrap();
    assert_eq!(park.get("Message"), Some(&b"Park successful"[..]));
    assert_eq!(park.response().as_deref(), Some("Success"));
    assert_eq!(park.len(), 3);
}

#[test]
fn field_semantics() {
    let mut buf = BytesMut::from(
        &b"Event: Newchannel\r\nAccountCode: \r\nConnectedLineName:\r\nexten: 101\r\nExten: 102\r\nValue: a: b\r\nCallerIDName: O\\'Brien \\\"x\\\"\\n\r\nnocolon\r\nTabbed:\tx\r\n\r\n"[..],
    );
    let mut dec = AmiDecoder::without_banner();
    let Some(Frame::Message(m)) = dec.decode(&mut buf) else {
        panic!()
    };
    assert_eq!(m.event().as_deref(), Some("Newchannel"));
    assert_eq!(m.get("accountcode"), Some(&b""[..]));
    assert_eq!(m.get("ConnectedLineName"), Some(&b""[..]));
    assert_eq!(m.get("EXTEN"), Some(&b"101"[..]));
    assert_eq!(
        m.get_all("Exten").collect::<Vec<_>>(),
        vec![&b"101"[..], &b"102"[..]]
    );
    assert_eq!(m.get("Value"), Some(&b"a: b"[..]));
    assert_eq!(
        m.unescaped("CallerIDName").as_deref(),
        Some("O'Brien \"x\"\n")
    );
    assert_eq!(m.get("nocolon"), Some(&b""[..]));
    assert!(m.has_colonless_lines());
    assert_eq!(m.get("Tabbed"), Some(&b"\tx"[..]));
    assert_eq!(m.get("Missing"), None);
    assert!(buf.is_empty());
}

#[test]
fn bare_lf_framing_and_partial_input() {
    let mut dec = AmiDecoder::new();
    let mut buf = BytesMut::from(&b"Asterisk Call Manager/9.0.0\r"[..]);
    assert_eq!(dec.decode(&mut buf), None);
    buf.extend_from_slice(b"\nResponse: Success\nMessage: x\n");
    assert!(matches!(dec.decode(&mut buf), Some(Frame::Banner(_))));
    assert_eq!(dec.decode(&mut buf), None);
    buf.extend_from_slice(b"\r");
    assert_eq!(dec.decode(&mut buf), None);
    buf.extend_from_slice(b"\n\n\r\nEvent: A\n\n");
    let Some(Frame::Message(m)) = dec.decode(&mut buf) else {
        panic!()
    };
    assert_eq!(m.get("Message"), Some(&b"x"[..]));
    let Some(Frame::Message(m)) = dec.decode(&mut buf) else {
        panic!()
    };
    assert_eq!(m.event().as_deref(), Some("A"));
    assert_eq!(dec.decode(&mut buf), None);
}

#[test]
fn proxy_banner_and_no_banner() {
    let mut dec = AmiDecoder::new();
    let mut buf = BytesMut::from(&b"Asterisk Call Manager Proxy/1.2\r\n"[..]);
    let Some(Frame::Banner(b)) = dec.decode(&mut buf) else {
        panic!()
    };
    assert_eq!(b.version(), b"1.2");
    // A stream that starts with a header is taken as having no banner.
    let mut dec = AmiDecoder::new();
    let mut buf = BytesMut::from(&b"Response: Success\r\n\r\n"[..]);
    assert!(matches!(dec.decode(&mut buf), Some(Frame::Message(_))));
}

#[test]
fn oversized_message_is_skipped_and_decoder_resyncs() {
    let mut dec = AmiDecoder::without_banner().with_max_message_len(64);
    let big = format!("Event: Big\r\nOutput: {}\r\n\r\n", "x".repeat(200));
    let data = format!("{big}Event: Small\r\n\r\n{big}Event: Small2\r\n\r\n");
    for chunks in [vec![data.len()], vec![1], vec![7, 3, 50]] {
        let mut dec2 = dec.clone();
        let frames = {
            let mut buf = BytesMut::new();
            let mut frames = Vec::new();
            let mut pos = 0;
            let mut i = 0;
            while pos < data.len() {
                let n = chunks[i % chunks.len()].min(data.len() - pos);
                i += 1;
                buf.extend_from_slice(&data.as_bytes()[pos..pos + n]);
                pos += n;
                while let Some(f) = dec2.decode(&mut buf) {
                    frames.push(f);
                }
                assert!(
                    buf.len() <= 64 + 2,
                    "buffer must stay bounded, got {}",
                    buf.len()
                );
            }
            frames
        };
        assert_eq!(frames.len(), 4, "{frames:?}");
        assert!(matches!(frames[0], Frame::Skipped { bytes, .. } if bytes == big.len()));
        assert!(matches!(&frames[1], Frame::Message(m) if m.event().as_deref() == Some("Small")));
        assert!(matches!(frames[2], Frame::Skipped { bytes, .. } if bytes == big.len()));
        assert!(matches!(&frames[3], Frame::Message(m) if m.event().as_deref() == Some("Small2")));
    }
    // After resyncing, the decoder is idle: no input, no frame.
    assert!(dec.decode(&mut BytesMut::new()).is_none());
}

#[test]
fn busy_hour_in_socket_sized_chunks_matches_one_shot() {
    let data = calldesk_fixtures::ami_rx("z_busy_hour");
    let whole = decode_all(&mut AmiDecoder::new(), &data);
    assert_eq!(
        whole.len(),
        1 + 18_443,
        "banner + INDEX.json's message count"
    );
    for chunks in [vec![4096], vec![1460, 4096, 17, 65536, 3]] {
        let chunked = decode_chunked(&data, &chunks);
        assert_eq!(whole, chunked, "chunks {chunks:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn chunking_does_not_change_the_result(
        chunks in proptest::collection::vec(1usize..700, 1..16),
    ) {
        // Every capture but the busy hour (its own test below), in the same random chunking.
        for (name, data) in &*SMALL_CAPTURES {
            let whole = decode_all(&mut AmiDecoder::new(), data);
            let chunked = decode_chunked(data, &chunks);
            prop_assert_eq!(summary(&whole), summary(&chunked), "capture {}", name);
            prop_assert_eq!(&whole, &chunked, "capture {}: frames differ", name);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..2048),
        chunks in proptest::collection::vec(1usize..64, 1..8),
        cap in 2usize..256,
        banner in any::<bool>(),
    ) {
        let new = || {
            let d = if banner { AmiDecoder::new() } else { AmiDecoder::without_banner() };
            d.with_max_message_len(cap)
        };
        let mut dec = new();
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        let mut pos = 0;
        let mut i = 0;
        while pos < data.len() {
            let n = chunks[i % chunks.len()].min(data.len() - pos);
            i += 1;
            buf.extend_from_slice(&data[pos..pos + n]);
            pos += n;
            while let Some(f) = dec.decode(&mut buf) {
                if let Frame::Message(m) = &f {
                    for (k, v) in m.fields() { let _ = (k.len(), v.len()); }
                    let _ = m.unescaped("x");
                    prop_assert!(m.raw().len() <= cap + 2);
                }
                frames.push(f);
            }
            prop_assert!(buf.len() <= cap + 1, "buffer {} over the cap {}", buf.len(), cap);
        }
        // Whatever the bytes, chunking does not change the frames.
        let mut one = BytesMut::from(&data[..]);
        let mut dec = new();
        let mut whole = Vec::new();
        while let Some(f) = dec.decode(&mut one) {
            whole.push(f);
        }
        prop_assert_eq!(whole, frames);
        prop_assert_eq!(one, buf);
    }

    #[test]
    fn ami_like_noise_never_panics(
        parts in proptest::collection::vec(prop_oneof![
            Just("\r\n".to_string()), Just("\n".to_string()), Just("\r".to_string()),
            Just(":".to_string()), Just(" ".to_string()), "[A-Za-z]{1,6}".prop_map(|s| s),
        ], 0..200),
    ) {
        let data = parts.concat();
        let _ = decode_chunked(data.as_bytes(), &[3]);
        let _ = decode_chunked(data.as_bytes(), &[1000]);
    }
}
