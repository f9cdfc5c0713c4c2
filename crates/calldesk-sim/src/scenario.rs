//! Scripted calls: what a played call does ([`ScenarioCall`], [`ScenarioKind`]), the id
//! counters ([`CallIds`], [`IdAllocator`]) and [`render`], which plays one call on a fresh
//! [`Pbx`] and returns its timed events.
//!
//! The inbound flows follow the real Asterisk 20 captures `a_inbound_answered`,
//! `b_inbound_noanswer` and `c_inbound_busy` message by message (chan_sip, `[from-trunk]` dialplan
//! of the lab: `NoOp`, `Set(CDR(userfield)=did:…)`, `Set(CDR(CallType)=inbound)`,
//! `Set(__CALLTYPE=inbound)`, `MixMonitor`, three `GotoIf`s, `Dial(SIP/<ext>,20,tTkK)`, then
//! `Hangup(17|19)` on failure). CEL events and the `RTPAUDIOQOS*` `VarSet`s are left out;
//! everything else (including the ordering quirks: `DialBegin` before the callee's `Newstate
//! Ringing`, `Cdr` before the trunk leg's `Hangup` for missed and busy calls but after it for
//! answered calls, and the `DeviceStateChange` positions) follows the captures.

use std::time::Duration;

use calldesk_ami_proto::{EncodeError, Outgoing};

use crate::pbx::{Output, Pbx, PbxConfig};

/// What happens to an inbound call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScenarioKind {
    /// The extension rings for `ring`, answers, talks for `talk`, then the caller hangs up.
    InboundAnswered,
    /// The extension rings for `ring` and the Dial times out (`NOANSWER`, trunk cause 19).
    InboundMissed,
    /// The extension answers `486 Busy` after `ring` (`BUSY`, cause 17 on both legs).
    InboundBusy,
    /// A call to a queue DID (`5000` → `support`, ringall 101+102; `5001` → `sales`): the
    /// members ring, `extension` answers after `ring` (the others get cause 26), talk for
    /// `talk`, then the caller hangs up (`k1_queue_answered`).
    QueueAnswered,
    /// A call to a queue DID whose caller hangs up after `ring` while the members ring
    /// (`QueueCallerAbandon`).
    QueueAbandoned,
}

/// One scripted inbound call from the trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioCall {
    /// What happens.
    pub kind: ScenarioKind,
    /// Caller number (E.164, e.g. `+74951234567`).
    pub caller: String,
    /// Dialled number (the DID; `Exten` of the trunk channel).
    pub did: String,
    /// Extension that is dialled (`SIP/<extension>`).
    pub extension: String,
    /// Time from the start until the callee answers / rejects / the Dial times out.
    pub ring: Duration,
    /// Talk time (answered calls only).
    pub talk: Duration,
}

/// Identifiers and wall-clock start of one call (allocated by the server, input to [`render`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallIds {
    /// Unix time (seconds) when the call starts; the `<epoch>` of the Uniqueids and CDR times.
    pub start_epoch: u64,
    /// Uniqueid sequence number of the trunk channel; the callee gets `uniqueid_seq + 1`.
    pub uniqueid_seq: u64,
    /// Channel-name counter of the trunk channel; the callee gets `channel_seq + 1`.
    pub channel_seq: u32,
}

impl CallIds {
    /// How many Uniqueid sequence numbers and channel counters one call uses.
    pub const PER_CALL: u64 = 2;
}

/// Allocates [`CallIds`] for consecutive calls (counters continue across calls, like Asterisk's).
#[derive(Debug, Clone, Default)]
pub struct IdAllocator {
    next_uid: u64,
    next_chan: u32,
}

impl IdAllocator {
    /// Starts at the given counters.
    pub fn new(next_uid: u64, next_chan: u32) -> Self {
        Self {
            next_uid,
            next_chan,
        }
    }

    /// Ids for the next call starting at `start_epoch`.
    pub fn next(&mut self, start_epoch: u64) -> CallIds {
        let ids = CallIds {
            start_epoch,
            uniqueid_seq: self.next_uid,
            channel_seq: self.next_chan,
        };
        self.next_uid = self.next_uid.wrapping_add(CallIds::PER_CALL);
        self.next_chan = self.next_chan.wrapping_add(2);
        ids
    }
}

/// Display name of a lab extension (`CallerIDName` of its SIP peer).
pub fn extension_name(ext: &str) -> String {
    match ext {
        "101" => "Alice Agent".to_owned(),
        "102" => "Bob Agent".to_owned(),
        "103" => "Carol Supervisor".to_owned(),
        other => format!("Agent {other}"),
    }
}

/// Civil date/time (UTC) of a Unix timestamp: (year, month, day, hour, minute, second).
pub fn civil(epoch: u64) -> (i64, u32, u32, u32, u32, u32) {
    let secs = i64::try_from(epoch).unwrap_or(i64::MAX / 1000);
    let c = calldesk_calls::Timestamp::from_unix_millis(secs.saturating_mul(1000)).civil();
    (c.year, c.month, c.day, c.hour, c.minute, c.second)
}

/// `YYYY-MM-DD HH:MM:SS` as in CDR events.
pub fn cdr_time(epoch: u64) -> String {
    let (y, mo, d, h, mi, s) = civil(epoch);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// Renders one call into `(offset from call start, event)` pairs, in emission order.
///
/// Pure: the wall clock enters only through `ids.start_epoch`. The call is played on a fresh
/// [`Pbx`] (the same model the server runs) whose counters start at `ids`, and time is advanced
/// until nothing is left to happen. CR/LF in the call's strings are removed; an error is
/// returned only if a value is too long for one AMI line.
pub fn render(
    call: &ScenarioCall,
    ids: &CallIds,
) -> Result<Vec<(Duration, Outgoing)>, EncodeError> {
    let mut pbx = Pbx::new(PbxConfig::default(), ids.start_epoch).with_counters(
        ids.uniqueid_seq,
        ids.channel_seq,
        0,
    );
    pbx.play(Duration::ZERO, call);
    while let Some(at) = pbx.next_deadline() {
        pbx.advance(at);
    }
    if let Some(e) = pbx.take_encode_error() {
        return Err(e);
    }
    Ok(pbx
        .drain()
        .into_iter()
        .filter_map(|(at, out)| match out {
            Output::Event(o) | Output::Shutdown(o) => Some((at, o)),
            Output::Reply { .. } => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time() {
        // 1795259787 = 2026-11-21 11:16:27 UTC (the lab's clock in a_inbound_answered).
        assert_eq!(cdr_time(1_795_259_787), "2026-11-21 11:16:27");
        assert_eq!(cdr_time(0), "1970-01-01 00:00:00");
        assert_eq!(cdr_time(951_782_400), "2000-02-29 00:00:00");
    }

    #[test]
    fn offsets_are_monotonic() {
        for kind in [
            ScenarioKind::InboundAnswered,
            ScenarioKind::InboundMissed,
            ScenarioKind::InboundBusy,
        ] {
            let call = ScenarioCall {
                kind,
                caller: "+74951234567".into(),
                did: "101".into(),
                extension: "101".into(),
                ring: Duration::from_secs(2),
                talk: Duration::from_secs(3),
            };
            let evs = render(&call, &IdAllocator::default().next(1_795_259_787)).unwrap();
            assert!(evs.windows(2).all(|w| w[0].0 <= w[1].0));
        }
    }
}
