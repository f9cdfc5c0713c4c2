//! The fake VPBX's vocabulary: employees, phone behaviours, timings, and one webhook to deliver.

use std::collections::BTreeMap;

use super::ids::splitmix64;

/// The VPBX line calls come in on and go out through when none is named.
pub const DEFAULT_LINE: &str = "74951234567";
/// The SIP domain of the fake VPBX.
pub const SIP_DOMAIN: &str = "vpbx400000000.mangosip.ru";
/// `product_id` of `/events/record/added`.
pub const PRODUCT_ID: i64 = 400_000_000;
/// Short number of the operator group inbound calls are routed through (`to.acd_group`).
pub const ACD_GROUP: &str = "500";

/// One employee of the VPBX (an operator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Employee {
    /// Short number, e.g. `101` (a string: leading zeros are kept).
    pub extension: String,
    pub name: String,
    /// SIP address, with or without `sip:` (`sip:ivanov@vpbx400000000.mangosip.ru`).
    pub sip: String,
    /// `general.user_id` (also `user_id` of `/events/record/added`).
    pub user_id: i64,
}

impl Employee {
    /// An employee whose `user_id` is derived from the extension.
    pub fn new(
        extension: impl Into<String>,
        name: impl Into<String>,
        sip: impl Into<String>,
    ) -> Self {
        let extension = extension.into();
        let digits = extension
            .bytes()
            .filter(u8::is_ascii_digit)
            .fold(0_i64, |n, b| (n * 10 + i64::from(b - b'0')) % 100_000);
        Self {
            extension,
            name: name.into(),
            sip: sip.into(),
            user_id: 300_050_000 + digits,
        }
    }

    /// A stand-in for an extension nobody configured (`sip:op<ext>@…`).
    pub fn stand_in(extension: &str) -> Self {
        Self::new(
            extension,
            format!("Оператор {extension}"),
            format!("sip:op{extension}@{SIP_DOMAIN}"),
        )
    }

    /// The SIP address as webhooks show it: `sip:user@domain`.
    pub fn sip_uri(&self) -> String {
        if self.sip.starts_with("sip:") {
            self.sip.clone()
        } else {
            format!("sip:{}", self.sip)
        }
    }

    /// The SIP address without `sip:` (as `general.sips` lists it).
    pub fn sip_bare(&self) -> &str {
        self.sip.strip_prefix("sip:").unwrap_or(&self.sip)
    }
}

/// Three operators: 101 Ivanov, 102 Petrov, 103 Sidorova.
pub fn demo_employees() -> Vec<Employee> {
    vec![
        Employee::new("101", "Иванов Иван", format!("sip:ivanov@{SIP_DOMAIN}")),
        Employee::new("102", "Петров Пётр", format!("sip:petrov@{SIP_DOMAIN}")),
        Employee::new("103", "Сидорова Анна", format!("sip:sidorova@{SIP_DOMAIN}")),
    ]
}

/// How a phone (an extension or an external number) reacts when the fake rings it for a command
/// (callback, transfer). Scripted scenarios follow their script instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhoneBehaviour {
    /// Answers after `after_s` simulated seconds; hangs up after `talk_s` more (the leg ends
    /// with 1120, ended by the called party). `None`: stays up until a hangup command.
    Answers { after_s: u32, talk_s: Option<u32> },
    /// Rings until the no-answer timeout ([`Timings::no_answer_s`]), then 1111.
    NeverAnswers,
    /// Busy after [`Timings::busy_s`]: 1121.
    Busy,
}

/// Simulated durations (seconds) of the scripted flows and of the PBX's own timers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    /// Time in the voice menu before routing to operators (§6.1: 9 s).
    pub ivr_s: u32,
    /// Ringing before a scripted answer.
    pub ring_s: u32,
    /// Scripted conversation length.
    pub talk_s: u32,
    /// A missed call's caller gives up after ringing this long (§6.2: 25 s).
    pub give_up_s: u32,
    /// A busy signal comes back after this long (§6.3: 4 s).
    pub busy_s: u32,
    /// Ring timeout of a phone that never answers (1111).
    pub no_answer_s: u32,
    /// Scripted hold starts this long after the answer.
    pub hold_after_s: u32,
    /// A hold (scripted or `call/hold/on`) lasts this long.
    pub hold_s: u32,
    /// The scripted blind transfer happens this long after the answer.
    pub transfer_after_s: u32,
    /// `/events/record/added` follows the end of the call after this long.
    pub record_added_s: u32,
    /// `/events/sms` follows the `commands/sms` after this long.
    pub sms_report_s: u32,
}

impl Default for Timings {
    fn default() -> Self {
        Self {
            ivr_s: 9,
            ring_s: 5,
            talk_s: 30,
            give_up_s: 25,
            busy_s: 4,
            no_answer_s: 30,
            hold_after_s: 10,
            hold_s: 15,
            transfer_after_s: 20,
            record_added_s: 5,
            sms_report_s: 2,
        }
    }
}

/// One webhook: where it goes (below the target base), its compact JSON, and when (simulated
/// milliseconds after the start of the render or of the server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// E.g. `events/call`, `events/summary`, `result/callback` (no leading slash).
    pub path: String,
    /// The exact `json` form field.
    pub json: String,
    pub at_ms: u64,
}

/// What the pure VPBX needs to know.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub timings: Timings,
    pub employees: Vec<Employee>,
    pub line: String,
    pub phones: BTreeMap<String, PhoneBehaviour>,
    pub extension_phone: PhoneBehaviour,
    pub number_phone: PhoneBehaviour,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            timings: Timings::default(),
            employees: demo_employees(),
            line: DEFAULT_LINE.to_owned(),
            phones: BTreeMap::new(),
            extension_phone: PhoneBehaviour::Answers {
                after_s: 3,
                talk_s: Some(60),
            },
            number_phone: PhoneBehaviour::Answers {
                after_s: 5,
                talk_s: Some(30),
            },
        }
    }
}

/// The bytes served for a recording: an ID3 tag, then MPEG-1 Layer III frame headers
/// (128 kbit/s, 44.1 kHz) over pseudo-random payload derived from the recording id. Exactly
/// `size` bytes; the same id always gives the same bytes.
pub fn recording_audio(recording_id: &str, size: usize) -> Vec<u8> {
    const FRAME: usize = 417;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"ID3\x03\x00\x00\x00\x00\x00\x00");
    // FNV-1a of the id seeds the payload.
    let mut state = recording_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    while out.len() < size {
        out.extend_from_slice(&[0xff, 0xfb, 0x90, 0x64]);
        let mut left = FRAME - 4;
        while left > 0 {
            state = splitmix64(state);
            let take = left.min(8);
            out.extend_from_slice(&state.to_le_bytes()[..take]);
            left -= take;
        }
    }
    out.truncate(size);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_is_deterministic_and_sized() {
        let a = recording_audio("MToxMA==", 200_000);
        assert_eq!(a.len(), 200_000);
        assert!(a.starts_with(b"ID3"));
        assert_eq!(&a[10..12], &[0xff, 0xfb]);
        assert_eq!(a, recording_audio("MToxMA==", 200_000));
        assert_ne!(a, recording_audio("MToxMQ==", 200_000));
        assert_eq!(recording_audio("x", 3), b"ID3".to_vec());
    }

    #[test]
    fn employees() {
        let e = Employee::new("0511", "A", "a@d");
        assert_eq!(e.sip_uri(), "sip:a@d");
        assert_eq!(e.sip_bare(), "a@d");
        assert_eq!(e.user_id, 300_050_511);
        assert_eq!(
            demo_employees()[0].sip_bare(),
            format!("ivanov@{SIP_DOMAIN}")
        );
    }
}
