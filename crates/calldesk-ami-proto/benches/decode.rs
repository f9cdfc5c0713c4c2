//! Decoder throughput on the largest real capture (`z_busy_hour`, 7.9 MB, 18,443 messages).
//!
//! `cargo bench -p calldesk-ami-proto --bench decode` (add `-- --quick` for a short run).
//! Throughput is reported in bytes of AMI input per second.

// A benchmark, like a test: a missing fixture should stop it loudly.
#![allow(clippy::expect_used)]

use std::hint::black_box;

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

/// A socket read's worth of input.
const CHUNK: usize = 4096;

/// Decodes everything in `buf`; returns the number of messages (checked by the caller).
fn drain(dec: &mut AmiDecoder, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(frame) = dec.decode(buf) {
        if let Frame::Message(m) = frame {
            n += 1;
            black_box(&m);
        }
    }
    n
}

fn one_shot(data: &[u8]) -> usize {
    let mut buf = BytesMut::from(data);
    drain(&mut AmiDecoder::new(), &mut buf)
}

fn chunked(data: &[u8]) -> usize {
    let mut dec = AmiDecoder::new();
    let mut buf = BytesMut::with_capacity(2 * CHUNK);
    let mut n = 0;
    for chunk in data.chunks(CHUNK) {
        buf.extend_from_slice(chunk);
        n += drain(&mut dec, &mut buf);
    }
    n
}

/// Like a tracker: decode and look at `Event` (then a second header) of every message.
fn with_lookups(data: &[u8]) -> usize {
    let mut dec = AmiDecoder::new();
    let mut buf = BytesMut::from(data);
    let mut n = 0;
    while let Some(frame) = dec.decode(&mut buf) {
        if let Frame::Message(m) = frame
            && m.event_is("Newchannel")
        {
            n += usize::from(m.get("Uniqueid").is_some());
        }
    }
    n
}

fn bench(c: &mut Criterion) {
    let data = calldesk_fixtures::ami_rx("z_busy_hour");
    // Sanity: both variants see every message (INDEX.json: 18,443 = 18,409 events + 34 responses).
    let index: serde_json::Value =
        serde_json::from_slice(&calldesk_fixtures::ami_file("INDEX.json")).expect("INDEX.json");
    let want = index["z_busy_hour"]["messages"].as_u64().expect("messages") as usize;
    assert_eq!(one_shot(&data), want, "one-shot message count");
    assert_eq!(chunked(&data), want, "chunked message count");
    let mut g = c.benchmark_group("z_busy_hour");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(30);
    g.bench_function("one_shot", |b| {
        b.iter_batched(
            || BytesMut::from(&data[..]),
            |mut buf| drain(&mut AmiDecoder::new(), &mut buf),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("chunked_4k", |b| b.iter(|| chunked(black_box(&data))));
    g.bench_function("one_shot_with_event_lookup", |b| {
        b.iter(|| with_lookups(black_box(&data)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
