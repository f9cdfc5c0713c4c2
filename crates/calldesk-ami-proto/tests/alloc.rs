//! Allocation counts: at most one heap allocation per decoded message, none for lookups.
//!
//! This test binary alone links `allocation-counter` (it replaces the global allocator and
//! counts per thread, so the other tests are not affected).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame};

/// Allocations that are not per message: the read buffer turning shared on its first split,
/// and the decoder's scratch `Vec` growing (doubling) to the largest message's field count.
const FIXED: u64 = 16;

#[test]
fn one_allocation_per_message_and_none_for_lookups() {
    let data = calldesk_fixtures::ami_rx("g_spy_listen_whisper_barge");
    let mut buf = BytesMut::from(&data[..]);
    let mut frames = Vec::with_capacity(2000);
    let decode = allocation_counter::measure(|| {
        let mut dec = AmiDecoder::new();
        while let Some(f) = dec.decode(&mut buf) {
            frames.push(f);
        }
    });
    let messages = frames
        .iter()
        .filter(|f| matches!(f, Frame::Message(_)))
        .count() as u64;
    assert!(messages > 500, "{messages} messages");
    assert_eq!(
        frames.capacity(),
        2000,
        "the frame list must not have grown"
    );
    assert!(
        decode.count_total <= messages + FIXED,
        "{} allocations for {messages} messages",
        decode.count_total
    );

    let lookups = allocation_counter::measure(|| {
        let mut hits = 0usize;
        for f in &frames {
            if let Frame::Message(m) = f {
                hits += usize::from(m.event_is("Newchannel"));
                hits += usize::from(m.get("Uniqueid").is_some());
                hits += usize::from(m.get_utf8("Linkedid").is_some());
                hits += m.get_all("ChanVariable").count();
                hits += m.fields().count();
            }
        }
        assert!(hits > 0);
    });
    assert_eq!(lookups.count_total, 0, "lookups must not allocate");
}

#[test]
fn chunked_decoding_allocates_only_per_message_too() {
    let data = calldesk_fixtures::ami_rx("a_inbound_answered");
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut frames = Vec::with_capacity(1000);
    let mut dec = AmiDecoder::new();
    let decode = allocation_counter::measure(|| {
        for chunk in data.chunks(1460) {
            // The buffer's own growth is the caller's business, not counted.
            allocation_counter::opt_out(|| buf.extend_from_slice(chunk));
            while let Some(f) = dec.decode(&mut buf) {
                frames.push(f);
            }
        }
    });
    let messages = frames.len() as u64 - 1;
    assert!(messages > 100, "{messages} messages");
    assert!(
        decode.count_total <= messages + FIXED,
        "{} allocations for {messages} messages",
        decode.count_total
    );
}
