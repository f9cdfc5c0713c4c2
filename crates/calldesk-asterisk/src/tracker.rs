//! Asterisk tracker: AMI events → domain [`CallEvent`]s. Pure: no IO, time is an input.
//!
//! Model: a channel is keyed by `Uniqueid`; a call by `Linkedid` (a new call's Linkedid is its
//! first channel's Uniqueid). A call starts with its first channel and ends when its last
//! channel hangs up. An operator is a channel whose peer is an extension (`SIP/101-00000007`).
//! This is the skeleton's minimal tracker: no Linkedid re-keying, transfers, queues or spy yet.

use std::collections::HashMap;

use calldesk_ami_proto::Message;
use calldesk_calls::{
    CallEvent, CallEventKind, CallId, Direction, Extension, HangupCause, NumberPlan, Timestamp,
};

#[derive(Debug)]
struct Channel {
    linkedid: String,
}

#[derive(Debug, Default)]
struct TrackedCall {
    channels: usize,
    /// The hangup cause of the call's first channel (the customer's leg for inbound calls).
    cause: Option<HangupCause>,
}

/// Folds AMI events into call events.
#[derive(Debug)]
pub struct AsteriskTracker {
    plan: NumberPlan,
    channels: HashMap<String, Channel>,
    calls: HashMap<String, TrackedCall>,
}

/// The peer of a channel name: `SIP/101-00000007` → `101`, `PJSIP/alice-0000002a` → `alice`.
/// `None` for names that carry no peer (`Local/…`) or do not look like a channel.
pub fn extension_of_channel(channel: &str) -> Option<Extension> {
    let (tech, rest) = channel.split_once('/')?;
    if tech.eq_ignore_ascii_case("Local") {
        return None;
    }
    let peer = rest.rsplit_once('-').map_or(rest, |(peer, _)| peer);
    Extension::new(peer).ok()
}

impl AsteriskTracker {
    pub fn new(plan: NumberPlan) -> Self {
        Self {
            plan,
            channels: HashMap::new(),
            calls: HashMap::new(),
        }
    }

    /// Number of calls with live channels.
    pub fn live_calls(&self) -> usize {
        self.calls.len()
    }

    /// An operator's extension: the channel's peer, when it is an internal number.
    fn operator(&self, channel: &str) -> Option<Extension> {
        let ext = extension_of_channel(channel)?;
        self.plan.extension(ext.as_str())
    }

    /// Handles one AMI message received at `now`; returns the call events it implies.
    pub fn handle(&mut self, msg: &Message, now: Timestamp) -> Vec<CallEvent> {
        let Some(event) = msg.event() else {
            return Vec::new();
        };
        let get = |key: &str| msg.get_str(key).map(|v| v.into_owned()).unwrap_or_default();
        let mut out = Vec::new();
        let mut emit = |linkedid: &str, kind: CallEventKind| {
            if let Ok(call) = CallId::new(linkedid) {
                out.push(CallEvent {
                    call,
                    at: now,
                    kind,
                });
            }
        };
        match event.as_ref() {
            "Newchannel" => {
                let (uniqueid, linkedid, channel) =
                    (get("Uniqueid"), get("Linkedid"), get("Channel"));
                if uniqueid.is_empty() || self.channels.contains_key(&uniqueid) {
                    return out;
                }
                let call = self.calls.entry(linkedid.clone()).or_default();
                call.channels += 1;
                if uniqueid == linkedid {
                    let to = self.plan.party(&get("Exten"));
                    let direction = match self.operator(&channel) {
                        None => Direction::Inbound,
                        Some(_) if to.extension.is_some() => Direction::Internal,
                        Some(_) => Direction::Outbound,
                    };
                    let name = msg.unescaped("CallerIDName").filter(|n| n != "<unknown>");
                    let from = self.plan.party(&get("CallerIDNum")).with_name(name);
                    emit(
                        &linkedid,
                        CallEventKind::Started {
                            direction,
                            from,
                            to,
                        },
                    );
                }
                self.channels.insert(uniqueid, Channel { linkedid });
            }
            "DialBegin" | "DialEnd" => {
                let linkedid = match get("DestLinkedid") {
                    l if l.is_empty() => get("Linkedid"),
                    l => l,
                };
                let Some(ext) = self.operator(&get("DestChannel")) else {
                    return out;
                };
                if event == "DialBegin" {
                    emit(&linkedid, CallEventKind::OperatorRinging { extension: ext });
                } else {
                    match get("DialStatus").as_str() {
                        "ANSWER" => emit(
                            &linkedid,
                            CallEventKind::Answered {
                                extension: Some(ext),
                            },
                        ),
                        "BUSY" => emit(&linkedid, CallEventKind::BusySignalled),
                        _ => {}
                    }
                }
            }
            "Hangup" => {
                let uniqueid = get("Uniqueid");
                let Some(channel) = self.channels.remove(&uniqueid) else {
                    return out;
                };
                let Some(call) = self.calls.get_mut(&channel.linkedid) else {
                    return out;
                };
                if uniqueid == channel.linkedid {
                    call.cause = get("Cause").parse().ok().map(|code| HangupCause {
                        code,
                        text: get("Cause-txt"),
                    });
                }
                call.channels = call.channels.saturating_sub(1);
                if call.channels == 0 {
                    let cause = call.cause.take();
                    self.calls.remove(&channel.linkedid);
                    emit(
                        &channel.linkedid,
                        CallEventKind::Ended {
                            cause,
                            status: None,
                        },
                    );
                }
            }
            _ => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_from_channel_names() {
        let ext = |c| extension_of_channel(c).map(|e| e.to_string());
        assert_eq!(ext("SIP/101-00000007").as_deref(), Some("101"));
        assert_eq!(ext("PJSIP/alice-0000002a").as_deref(), Some("alice"));
        assert_eq!(ext("SIP/trunk-00000006").as_deref(), Some("trunk"));
        assert_eq!(ext("Local/102@from-internal-00000001;1"), None);
        assert_eq!(ext("garbage"), None);
    }
}
