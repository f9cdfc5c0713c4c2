//! Resync after a (re)connect: the tracker rebuilds live calls from `CoreShowChannels` (the real
//! list of `j3_coreshowchannels_active_call`), ends calls whose channels vanished, and never
//! announces a call twice.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame, Message};
use calldesk_asterisk::{AsteriskTracker, Replayer, TrackerEvent};
use calldesk_calls::{CallEventKind, NumberPlan, Timestamp};

fn messages(name: &str) -> Vec<Message> {
    let mut buf = BytesMut::from(&calldesk_fixtures::ami_rx(name)[..]);
    let mut decoder = AmiDecoder::new();
    let mut out = Vec::new();
    while let Some(frame) = decoder.decode(&mut buf) {
        if let Frame::Message(m) = frame {
            out.push(m);
        }
    }
    out
}

fn event_is(m: &Message, name: &str) -> bool {
    m.get_str("Event").as_deref() == Some(name)
}

/// j3's `CoreShowChannel` items, and the messages after the list ended.
fn j3() -> (Vec<Message>, Vec<Message>) {
    let all = messages("j3_coreshowchannels_active_call");
    let end = all
        .iter()
        .position(|m| event_is(m, "CoreShowChannelsComplete"))
        .unwrap();
    let items = all[..end]
        .iter()
        .filter(|m| event_is(m, "CoreShowChannel"))
        .cloned()
        .collect();
    (items, all[end + 1..].to_vec())
}

fn at(s: i64) -> Timestamp {
    Timestamp::from_unix_millis(1_795_260_107_000 + s * 1000)
}

#[test]
fn a_call_in_progress_is_rebuilt_from_core_show_channels_and_then_ends_normally() {
    let (items, rest) = j3();
    assert_eq!(items.len(), 2);
    let mut replayer = Replayer::new(NumberPlan::new("RU").unwrap());
    replayer.resync(&items, at(0));
    let live: Vec<_> = replayer.live().cloned().collect();
    assert_eq!(live.len(), 1);
    let call = &live[0];
    assert_eq!(call.id.as_str(), "1795260104.84");
    assert_eq!(call.from.raw, "+4930123000");
    assert_eq!(call.to.raw, "101");
    assert_eq!(
        call.answered_by
            .iter()
            .map(|e| e.as_str())
            .collect::<Vec<_>>(),
        ["101"]
    );
    // Duration 00:00:03: the call started three seconds before the resync.
    assert_eq!(call.started_at, at(-3));

    // The same list again changes nothing.
    replayer.resync(&items, at(1));
    assert_eq!(replayer.live().count(), 1);

    // Then the rest of the capture: both legs hang up; exactly one record.
    for m in rest {
        let bytes = m.raw().clone();
        replayer.feed(&bytes, at(5));
    }
    let ended = replayer.take_ended();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].status.map(|s| s.as_str()), Some("answered"));
    assert_eq!(replayer.live().count(), 0);
}

#[test]
fn calls_that_ended_while_disconnected_end_at_the_resync() {
    // The first half of a_inbound_answered: the call is up, then the connection is lost.
    let all = messages("a_inbound_answered");
    let cut = all.iter().position(|m| event_is(m, "BridgeEnter")).unwrap();
    let mut tracker = AsteriskTracker::new(NumberPlan::new("RU").unwrap());
    let mut out = Vec::new();
    for m in &all[..=cut + 1] {
        tracker.handle(m, at(0), &mut out);
    }
    assert_eq!(tracker.live_calls(), 1);
    out.clear();
    // After reconnecting, the PBX lists no channel: the call ended meanwhile.
    tracker.resync(&[], at(10), &mut out);
    assert_eq!(tracker.live_calls(), 0);
    assert_eq!(tracker.live_channels(), 0);
    let ended: Vec<_> = out
        .iter()
        .filter_map(|e| match e {
            TrackerEvent::Call(c) if matches!(c.kind, CallEventKind::Ended { .. }) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].call.as_str(), "1795259787.0");
}

#[test]
fn late_news_of_a_call_that_ended_at_a_resync_does_not_bring_it_back() {
    let all = messages("a_inbound_answered");
    let cut = all.iter().position(|m| event_is(m, "BridgeEnter")).unwrap();
    let mut replayer = Replayer::new(NumberPlan::new("RU").unwrap());
    for m in &all[..=cut] {
        replayer.feed(&m.raw().clone(), at(0));
    }
    replayer.resync(&[], at(10));
    assert_eq!(replayer.take_ended().len(), 1);
    // Stale messages of that call (e.g. replayed by a buggy proxy) arrive afterwards.
    for m in &all[..] {
        replayer.feed(&m.raw().clone(), at(11));
    }
    assert_eq!(replayer.live().count(), 0, "the ended call came back");
    assert!(
        replayer.take_ended().is_empty(),
        "a second record of the same call"
    );
}

#[test]
fn a_resync_adds_calls_that_started_while_disconnected_without_duplicates() {
    let (items, _) = j3();
    let mut tracker = AsteriskTracker::new(NumberPlan::new("RU").unwrap());
    let mut out = Vec::new();
    tracker.resync(&items, at(0), &mut out);
    tracker.resync(&items, at(1), &mut out);
    let started = out
        .iter()
        .filter(|e| matches!(e, TrackerEvent::Call(c) if matches!(c.kind, CallEventKind::Started { .. })))
        .count();
    assert_eq!(started, 1);
    assert_eq!(tracker.live_channels(), 2);
}
