//! The whole receive path without IO: bytes → [`AmiDecoder`] → [`AsteriskTracker`] →
//! [`CallBook`]. Used by `calldesk ami replay`, its benchmark and the capture tests, so the
//! three measure and check the same code the live session runs.

use bytes::BytesMut;
use calldesk_ami_proto::{AmiDecoder, Frame};
use calldesk_calls::{Call, CallBook, NumberPlan, TenantId, Timestamp, UpdateKind};

use crate::tracker::{AsteriskTracker, TrackerEvent};

/// Feeds server→client AMI bytes through codec, tracker and call book.
#[derive(Debug)]
pub struct Replayer {
    decoder: AmiDecoder,
    buf: BytesMut,
    tracker: AsteriskTracker,
    book: CallBook,
    events: Vec<TrackerEvent>,
    ended: Vec<Call>,
    messages: u64,
    bytes: u64,
    anomalies: u64,
    presence: u64,
}

impl Replayer {
    pub fn new(plan: NumberPlan) -> Self {
        Self {
            decoder: AmiDecoder::new(),
            buf: BytesMut::new(),
            tracker: AsteriskTracker::new(plan),
            book: CallBook::new(TenantId::local()),
            events: Vec::new(),
            ended: Vec::new(),
            messages: 0,
            bytes: 0,
            anomalies: 0,
            presence: 0,
        }
    }

    /// Takes `chunk`, received at `now`, and processes every complete message in it.
    pub fn feed(&mut self, chunk: &[u8], now: Timestamp) {
        self.bytes += chunk.len() as u64;
        self.buf.extend_from_slice(chunk);
        while let Some(frame) = self.decoder.decode(&mut self.buf) {
            let Frame::Message(msg) = frame else { continue };
            self.messages += 1;
            self.tracker.handle(&msg, now, &mut self.events);
            self.apply_events();
        }
    }

    /// Processes a `CoreShowChannels` resync taken at `now`.
    pub fn resync(&mut self, items: &[calldesk_ami_proto::Message], now: Timestamp) {
        self.tracker.resync(items, now, &mut self.events);
        self.apply_events();
    }

    fn apply_events(&mut self) {
        for event in self.events.drain(..) {
            match event {
                TrackerEvent::Call(event) => match self.book.apply(&event) {
                    Ok(Some(update)) if update.kind == UpdateKind::Ended => {
                        self.ended.push(update.call)
                    }
                    Ok(_) => {}
                    Err(_) => self.anomalies += 1,
                },
                TrackerEvent::Presence(_) => self.presence += 1,
            }
        }
    }

    /// Calls that ended since the last call, in the order they ended.
    pub fn take_ended(&mut self) -> Vec<Call> {
        std::mem::take(&mut self.ended)
    }

    /// Calls still live.
    pub fn live(&self) -> impl Iterator<Item = &Call> {
        self.book.live()
    }

    pub fn tracker(&self) -> &AsteriskTracker {
        &self.tracker
    }

    /// Messages decoded so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// Bytes fed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Events the call book could not use (should stay 0; counted, never fatal).
    pub fn anomalies(&self) -> u64 {
        self.anomalies
    }

    /// Presence events seen.
    pub fn presence_events(&self) -> u64 {
        self.presence
    }
}

/// One `read()` of a capture's `.timeline.jsonl`: `len` bytes at offset `off` of the `.rx.raw`
/// file arrived at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxChunk {
    pub off: usize,
    pub len: usize,
    pub at: Timestamp,
}

/// Why a timeline could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TimelineError {
    #[error("timeline line {line}: {reason}")]
    BadLine { line: usize, reason: String },
}

#[derive(serde::Deserialize)]
struct TimelineLine {
    t: f64,
    ev: String,
    #[serde(default)]
    off: Option<usize>,
    #[serde(default)]
    len: Option<usize>,
}

/// Reads the `rx` chunks of a capture timeline (`{"t": epoch, "ev": "rx", "off": …, "len": …}`
/// per line; other lines are skipped).
pub fn rx_chunks(timeline: &str) -> Result<Vec<RxChunk>, TimelineError> {
    let mut chunks = Vec::new();
    for (i, text) in timeline.lines().enumerate() {
        if text.trim().is_empty() {
            continue;
        }
        let line: TimelineLine =
            serde_json::from_str(text).map_err(|e| TimelineError::BadLine {
                line: i + 1,
                reason: e.to_string(),
            })?;
        if line.ev != "rx" {
            continue;
        }
        let (Some(off), Some(len)) = (line.off, line.len) else {
            return Err(TimelineError::BadLine {
                line: i + 1,
                reason: "an rx line needs off and len".to_owned(),
            });
        };
        chunks.push(RxChunk {
            off,
            len,
            at: Timestamp::from_unix_millis((line.t * 1000.0).round() as i64),
        });
    }
    Ok(chunks)
}

/// Splits raw AMI bytes into the byte ranges of whole frames (banner, messages), as the decoder
/// sees them; for timing one message at a time.
pub fn split_messages(bytes: &[u8]) -> Vec<&[u8]> {
    let mut buf = BytesMut::from(bytes);
    let mut decoder = AmiDecoder::new();
    let mut out = Vec::new();
    let mut consumed = 0;
    let total = bytes.len();
    while decoder.decode(&mut buf).is_some() {
        let now = total - buf.len();
        if let Some(slice) = bytes.get(consumed..now) {
            out.push(slice);
        }
        consumed = now;
    }
    out
}
