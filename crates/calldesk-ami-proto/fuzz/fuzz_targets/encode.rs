//! Encoder fuzz target: arbitrary headers.
//!
//! Every header is either refused with the error the rules call for (empty key, `:` in the key,
//! CR/LF anywhere, a line over 1024 bytes, more than 128 lines in an action) or accepted; the
//! accepted ones encode to bytes that decode back to exactly the same headers, in order.
#![no_main]

use bytes::BytesMut;
use calldesk_ami_proto::{
    AmiDecoder, EncodeError, Frame, MAX_ACTION_HEADERS, MAX_LINE_LEN, Outgoing,
};
use libfuzzer_sys::fuzz_target;

/// What the rules say about one header (`count` = headers already accepted).
fn expected(key: &str, value: &str, is_action: bool, count: usize) -> Result<(), &'static str> {
    if key.is_empty() {
        Err("EmptyKey")
    } else if key.contains(['\r', '\n']) {
        Err("LineBreakInKey")
    } else if key.contains(':') {
        Err("ColonInKey")
    } else if value.contains(['\r', '\n']) {
        Err("LineBreakInValue")
    } else if key.len() + value.len() + 4 > MAX_LINE_LEN {
        Err("LineTooLong")
    } else if is_action && count >= MAX_ACTION_HEADERS {
        Err("TooManyHeaders")
    } else {
        Ok(())
    }
}

fn kind(r: &Result<(), EncodeError>) -> Result<(), &'static str> {
    match r {
        Ok(()) => Ok(()),
        Err(EncodeError::EmptyKey) => Err("EmptyKey"),
        Err(EncodeError::LineBreakInKey { .. }) => Err("LineBreakInKey"),
        Err(EncodeError::ColonInKey { .. }) => Err("ColonInKey"),
        Err(EncodeError::LineBreakInValue { .. }) => Err("LineBreakInValue"),
        Err(EncodeError::LineTooLong { .. }) => Err("LineTooLong"),
        Err(EncodeError::TooManyHeaders { .. }) => Err("TooManyHeaders"),
        Err(_) => Err("unknown"),
    }
}

fuzz_target!(|input: (u8, String, Vec<(String, String)>)| {
    let (which, first, headers) = input;
    let (first_key, is_action) = match which % 3 {
        0 => ("Action", true),
        1 => ("Event", false),
        _ => ("Response", false),
    };
    let made = match which % 3 {
        0 => Outgoing::action(&first),
        1 => Outgoing::event(&first),
        _ => Outgoing::response(&first),
    };
    let mut out = match made {
        Ok(o) => o,
        Err(e) => {
            assert_eq!(kind(&Err(e)), expected(first_key, &first, is_action, 0));
            return;
        }
    };
    assert_eq!(expected(first_key, &first, is_action, 0), Ok(()));
    let mut want = vec![(first_key.to_owned(), first)];
    for (k, v) in headers {
        let got = out.push(&k, &v);
        assert_eq!(
            kind(&got),
            expected(&k, &v, is_action, want.len()),
            "{k:?}: {v:?}"
        );
        if got.is_ok() {
            want.push((k, v));
        }
    }
    let have: Vec<(String, String)> = out
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(have, want);

    let bytes = out.to_bytes();
    assert_eq!(bytes.len(), out.encoded_len());
    let mut buf = BytesMut::from(&bytes[..]);
    let mut dec = AmiDecoder::without_banner();
    let Some(Frame::Message(m)) = dec.decode(&mut buf) else {
        panic!("encoded bytes are not one message: {bytes:?}");
    };
    assert!(buf.is_empty(), "bytes left after the message");
    assert_eq!(dec.decode(&mut buf), None);
    let decoded: Vec<(String, String)> = m
        .fields()
        .map(|(k, v)| {
            (
                String::from_utf8(k.to_vec()).unwrap_or_default(),
                String::from_utf8(v.to_vec()).unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(decoded, want, "round trip changed the headers");
    assert!(!m.has_colonless_lines());
    assert_eq!(m.raw().as_ref(), &bytes[..]);
});
