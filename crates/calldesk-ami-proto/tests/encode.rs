//! Encoder validation and decode/encode round trips.

// Test-only helpers outside #[test] fns may unwrap: a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, EncodeError, Frame, MAX_LINE_LEN, Outgoing};
use proptest::prelude::*;

#[test]
fn encodes_in_order_with_crlf() {
    let o = Outgoing::action("Login")
        .unwrap()
        .header("ActionID", "1")
        .unwrap()
        .header("Username", "crm")
        .unwrap()
        .header("Secret", "secret")
        .unwrap();
    let mut out = Vec::new();
    o.encode(&mut out);
    assert_eq!(
        out,
        b"Action: Login\r\nActionID: 1\r\nUsername: crm\r\nSecret: secret\r\n\r\n"
    );
    assert_eq!(out.len(), o.encoded_len());
}

#[test]
fn rejects_bad_headers() {
    let mut o = Outgoing::action("Originate").unwrap();
    assert_eq!(o.push("", "x"), Err(EncodeError::EmptyKey));
    assert!(matches!(
        o.push("Se:cret", "x"),
        Err(EncodeError::ColonInKey { .. })
    ));
    assert!(matches!(
        o.push("Sec\nret", "x"),
        Err(EncodeError::LineBreakInKey { .. })
    ));
    let e = o.push("Secret", "a\r\nAction: Logoff").unwrap_err();
    assert_eq!(
        e.to_string(),
        "header `Secret` contains a line break; AMI has no multi-line values, send one header per line"
    );
    assert!(matches!(
        o.push("Secret", "a\nb"),
        Err(EncodeError::LineBreakInValue { .. })
    ));
    assert!(matches!(
        o.push("Secret", "a\rb"),
        Err(EncodeError::LineBreakInValue { .. })
    ));
    // Exactly at the limit is fine, one more byte is not.
    let max_val = MAX_LINE_LEN - "Variable: ".len() - 2;
    assert!(o.push("Variable", &"v".repeat(max_val)).is_ok());
    assert!(matches!(
        o.push("Variable", &"v".repeat(max_val + 1)),
        Err(EncodeError::LineTooLong {
            len: 1025,
            max: 1024,
            ..
        })
    ));
    assert!(Outgoing::event("A\r\nB").is_err());
    // Rejected headers were not added.
    assert_eq!(o.headers().count(), 2);
    // Too many headers in an action.
    let mut a = Outgoing::action("Originate").unwrap();
    for i in 0..127 {
        a.push("Variable", &format!("v{i}=1")).unwrap();
    }
    assert!(matches!(
        a.push("Variable", "x"),
        Err(EncodeError::TooManyHeaders { max: 128 })
    ));
    // Events have no header limit (server output is unbounded).
    let mut ev = Outgoing::event("X").unwrap();
    for _ in 0..200 {
        ev.push("Output", "line").unwrap();
    }
}

#[test]
fn round_trip() {
    let o = Outgoing::event("Newchannel")
        .unwrap()
        .header("Privilege", "call,all")
        .unwrap()
        .header("AccountCode", "")
        .unwrap()
        .header("Variable", "a=1")
        .unwrap()
        .header("Variable", "b=2: x")
        .unwrap()
        .header("ActionID", "custom-id-with spaces & symbols/ä")
        .unwrap();
    let mut buf = BytesMut::from(&o.to_bytes()[..]);
    let mut dec = AmiDecoder::without_banner();
    let Some(Frame::Message(m)) = dec.decode(&mut buf) else {
        panic!()
    };
    let got: Vec<(String, String)> = m
        .fields()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = o
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(m.raw().as_ref(), o.to_bytes().as_slice());
    assert!(buf.is_empty());
}

#[test]
fn debug_output_never_shows_credentials() {
    let login = Outgoing::action("Login")
        .unwrap()
        .header("Username", "crm")
        .unwrap()
        .header("Secret", "hunter2")
        .unwrap();
    let challenge = Outgoing::action("Login")
        .unwrap()
        .header("key", "0123abcd")
        .unwrap();
    let shown = format!("{login:?} {challenge:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("0123abcd"),
        "{shown}"
    );
    assert!(shown.contains("Username: crm"), "{shown}");
    assert!(shown.contains("Secret: <redacted>"), "{shown}");
}

/// Header text: mostly printable, sometimes with the characters the rules are about.
fn header_text(max: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            8 => proptest::char::range(' ', '~'),
            1 => Just(':'),
            1 => Just(' '),
            1 => prop_oneof![Just('\r'), Just('\n')],
            1 => any::<char>(),
        ],
        0..max,
    )
    .prop_map(|cs| cs.into_iter().collect())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, .. ProptestConfig::default() })]

    /// Any header is either refused for the documented reason, or encodes to bytes that decode
    /// back to the very same headers, in order, with nothing left over.
    #[test]
    fn encode_then_decode_round_trips_or_refuses(
        kind in 0u8..3,
        first in header_text(24),
        headers in proptest::collection::vec((header_text(16), header_text(40)), 0..24),
        long in proptest::option::of(1000usize..1100),
    ) {
        let made = match kind {
            0 => Outgoing::action(&first),
            1 => Outgoing::event(&first),
            _ => Outgoing::response(&first),
        };
        let first_key = ["Action", "Event", "Response"][usize::from(kind)];
        let Ok(mut out) = made else {
            prop_assert!(first.contains(['\r', '\n']) || first_key.len() + first.len() + 4 > MAX_LINE_LEN);
            return Ok(());
        };
        let mut want = vec![(first_key.to_owned(), first.clone())];
        let mut headers = headers;
        if let Some(n) = long {
            headers.push(("Variable".to_owned(), "v".repeat(n)));
        }
        for (k, v) in &headers {
            let refused = k.is_empty() || k.contains([':', '\r', '\n']) || v.contains(['\r', '\n'])
                || k.len() + v.len() + 4 > MAX_LINE_LEN;
            match out.push(k, v) {
                Ok(()) => {
                    prop_assert!(!refused, "accepted {:?}: {:?}", k, v);
                    want.push((k.clone(), v.clone()));
                }
                Err(e) => prop_assert!(refused, "refused {:?}: {:?} with {}", k, v, e),
            }
        }
        let bytes = out.to_bytes();
        prop_assert_eq!(bytes.len(), out.encoded_len());
        let mut buf = BytesMut::from(&bytes[..]);
        let mut dec = AmiDecoder::without_banner();
        let Some(Frame::Message(m)) = dec.decode(&mut buf) else {
            return Err(TestCaseError::fail(format!("not one message: {bytes:?}")));
        };
        prop_assert!(buf.is_empty());
        let got: Vec<(String, String)> = m
            .fields()
            .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        prop_assert_eq!(got, want);
    }
}
