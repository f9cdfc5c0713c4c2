//! Result and disconnect-reason codes. Codes are hierarchical (class 1xxx → 11xx → 111x); an
//! unknown code is described by its nearest known class (2219 → 2210, 1090 → 1000).

use calldesk_calls::CallStatus;

/// A VPBX result code (`result`, `code`, `disconnect_reason`, `completion_code`, `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Code(pub u32);

/// What a code says about a request we sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// 1000–1099: done.
    Success,
    /// 11xx–13xx: call-ending reasons (not request results).
    CallEnded,
    /// 2xxx: account, billing or limits.
    Account,
    /// 3xxx: the request itself is wrong (parameters, signature, unknown object). Mango locks
    /// the key for 2 minutes after more than one of these in 2 minutes: never retried.
    BadRequest,
    /// 4xxx: the PBX refused the action in the call's current state.
    Refused,
    /// 5xxx: Mango's servers; worth a later retry.
    Server,
    Other,
}

/// What a `disconnect_reason` says about how a call (leg) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// 1100, 1300: ended normally (often an IVR leg handed to routing).
    Normal,
    /// 1110: the caller hung up (before an answer: gave up).
    CallerHungUp,
    /// 1111: nobody answered within the ringing timeout.
    NoAnswer,
    /// 1120: the called party hung up.
    CalledHungUp,
    /// 1121, 1193, 1312: busy.
    Busy,
    /// 1122–1124: rejected, do-not-disturb.
    Rejected,
    /// 1130–1135, 1140, 1150–1152, 3200, 4200: the number cannot be reached or is barred.
    Unreachable,
    /// 1160–1164: the group or queue gave up (queue full, wait exceeded, no operators).
    QueueGaveUp,
    /// 1170, 1171, 1190–1192: the routing scheme or a schedule ended the call.
    Closed,
    /// 1180–1183: a user or an API command ended it, another operator took it, or a transfer.
    Command,
    /// 2xxx, 5xxx and anything else: the PBX failed.
    Failed,
}

const KNOWN: &[(u32, &str)] = &[
    (1000, "success"),
    (1001, "success with remarks"),
    (1100, "call ended normally"),
    (1110, "ended by the caller"),
    (1111, "no answer within the ringing time"),
    (1120, "ended by the called party"),
    (1121, "the called party is busy"),
    (1122, "rejected by the called party"),
    (1123, "do not disturb"),
    (1124, "the recipient is unavailable (do not disturb)"),
    (1125, "the operator stopped the dialling task"),
    (1130, "the called number is restricted"),
    (1131, "the called number is unavailable"),
    (1132, "the called number is not served"),
    (1133, "the called number does not exist"),
    (1134, "too many forwardings"),
    (1135, "forwarding is prohibited"),
    (1140, "calls to this region are prohibited"),
    (1150, "the caller is restricted"),
    (1151, "the caller is in the black list"),
    (1152, "the caller is not in the white list"),
    (1160, "the call to the group failed"),
    (1161, "queueing is prohibited"),
    (1162, "the queue is full"),
    (1163, "the queue wait time was exceeded"),
    (1164, "all operators are unavailable"),
    (1170, "ended by the call-routing scheme"),
    (1171, "the call-routing scheme is misconfigured"),
    (1180, "ended by a user command"),
    (1181, "ended by an API command"),
    (1182, "another operator took the call"),
    (1183, "a new operator was assigned"),
    (1190, "the called number is inactive or out of schedule"),
    (1191, "the called number is deactivated"),
    (1192, "the called number is off by schedule"),
    (1193, "the called party is in a conversation (auto-reject)"),
    (1200, "contact-centre session error"),
    (1300, "call ended normally"),
    (1310, "answering machine detected"),
    (1312, "answering machine: busy"),
    (2000, "billing restriction"),
    (2100, "the account is inaccessible"),
    (2110, "the account is blocked"),
    (2120, "the account is closed"),
    (2130, "the account is frozen"),
    (2140, "the account is invalid"),
    (2200, "account access is limited"),
    (2210, "account access is limited for the period"),
    (2211, "the daily limit is reached"),
    (2212, "the monthly limit is reached"),
    (2220, "the concurrent calls limit is reached"),
    (2230, "the service is unavailable"),
    (2240, "insufficient funds"),
    (2250, "the service usage limit is reached"),
    (2300, "the direction is blocked"),
    (2400, "billing error"),
    (3000, "bad request"),
    (3100, "bad command parameters"),
    (3101, "the request is not a POST"),
    (
        3102,
        "the signature does not match: check the API key and salt",
    ),
    (3103, "a required parameter is missing"),
    (3104, "a parameter has a bad format"),
    (3105, "wrong access key: check the API key"),
    (3106, "the value is already in use"),
    (3111, "bad date range"),
    (3200, "wrong subscriber number"),
    (3300, "object not found"),
    (3310, "call not found"),
    (3320, "recording not found"),
    (3330, "number not found at the PBX"),
    (3340, "file not found"),
    (3400, "invalid JSON"),
    (3503, "the search request is too big"),
    (4000, "the action is impossible"),
    (4001, "the command is not supported"),
    (4002, "the recording is too short and was not saved"),
    (4100, "forbidden by the PBX logic"),
    (4101, "the call has ended or is unknown"),
    (4102, "already recording"),
    (4104, "too many forwardings"),
    (4200, "the party is unreachable right now"),
    (4290, "rate limit exceeded"),
    (4300, "the SMS failed"),
    (4301, "the SMS expired"),
    (4391, "the SMS was lost"),
    (4392, "the SMS was rejected"),
    (4393, "the SMS was cancelled"),
    (4400, "conference error"),
    (4500, "security restriction"),
    (4501, "call-frequency limit"),
    (4502, "the caller is in the inbound black list"),
    (4503, "the file is too big"),
    (4504, "the file size is unknown"),
    (4505, "bad file format"),
    (5000, "server error"),
    (5001, "server overload"),
    (5002, "switch restart"),
    (5003, "technical problem"),
    (5004, "database access problem"),
    (5005, "service mode"),
    (5006, "service access error"),
    (5007, "remote internal error"),
    (5008, "service unavailable"),
    (5009, "cannot add the service"),
    (5010, "no money for the service"),
    (5011, "service timeout"),
];

impl Code {
    pub const SUCCESS: Code = Code(1000);

    /// The nearest known code: itself, else its class at 10, 100, 1000.
    fn nearest(self) -> Option<(u32, &'static str)> {
        [1, 10, 100, 1000].into_iter().find_map(|step| {
            let c = self.0 / step * step;
            KNOWN.iter().find(|(k, _)| *k == c).copied()
        })
    }

    /// English description, from the nearest known class; `"unknown code"` otherwise.
    pub fn describe(self) -> &'static str {
        self.nearest().map_or("unknown code", |(_, d)| d)
    }

    pub fn family(self) -> Family {
        match self.0 {
            1000..=1099 => Family::Success,
            1100..=1399 => Family::CallEnded,
            2000..=2999 => Family::Account,
            3000..=3999 => Family::BadRequest,
            4000..=4999 => Family::Refused,
            5000..=5999 => Family::Server,
            _ => Family::Other,
        }
    }

    pub fn is_success(self) -> bool {
        self.family() == Family::Success
    }

    /// How a leg ended, for a `disconnect_reason`.
    pub fn ending(self) -> Ending {
        match self.0 {
            1100..=1109 | 1300..=1309 => Ending::Normal,
            1110 => Ending::CallerHungUp,
            1111..=1119 => Ending::NoAnswer,
            1120 => Ending::CalledHungUp,
            1121 | 1193 | 1312 => Ending::Busy,
            1122..=1129 => Ending::Rejected,
            1130..=1159 | 3200..=3299 | 4200..=4299 => Ending::Unreachable,
            1160..=1169 => Ending::QueueGaveUp,
            1170..=1179 | 1190..=1199 => Ending::Closed,
            1180..=1189 => Ending::Command,
            1100..=1299 | 1310..=1399 => Ending::Normal,
            _ => Ending::Failed,
        }
    }

    /// The status of a call that was **not** answered and ended with this reason: busy and
    /// rejected read as `busy`, unreachable numbers and PBX failures as `failed`, anything else
    /// as missed (inbound) or not answered (outbound, internal).
    pub fn unanswered_status(self, inbound: bool) -> CallStatus {
        match self.ending() {
            Ending::Busy | Ending::Rejected => CallStatus::Busy,
            Ending::Unreachable | Ending::Failed => CallStatus::Failed,
            _ if inbound => CallStatus::Missed,
            _ => CallStatus::NoAnswer,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.0, self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_take_the_nearest_class() {
        assert_eq!(Code(2219).describe(), Code(2210).describe());
        assert_eq!(Code(1090).describe(), "success");
        assert_eq!(
            Code(3102).describe(),
            "the signature does not match: check the API key and salt"
        );
        assert_eq!(Code(3999).describe(), "bad request");
        assert_eq!(Code(7).describe(), "unknown code");
        assert_eq!(
            Code(1163).to_string(),
            "1163 (the queue wait time was exceeded)"
        );
    }

    #[test]
    fn families() {
        assert_eq!(Code(1000).family(), Family::Success);
        assert_eq!(Code(1001).family(), Family::Success);
        assert_eq!(Code(1110).family(), Family::CallEnded);
        assert_eq!(Code(2240).family(), Family::Account);
        assert_eq!(Code(3102).family(), Family::BadRequest);
        assert_eq!(Code(4101).family(), Family::Refused);
        assert_eq!(Code(5001).family(), Family::Server);
        assert_eq!(Code(0).family(), Family::Other);
        assert!(Code::SUCCESS.is_success() && !Code(1100).is_success());
    }

    /// One case per disconnect-code family of the reference's outcome table.
    #[test]
    fn disconnect_families_map_to_statuses() {
        let cases = [
            (
                1100,
                Ending::Normal,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (
                1110,
                Ending::CallerHungUp,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (
                1111,
                Ending::NoAnswer,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (
                1120,
                Ending::CalledHungUp,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (1121, Ending::Busy, CallStatus::Busy, CallStatus::Busy),
            (1193, Ending::Busy, CallStatus::Busy, CallStatus::Busy),
            (1122, Ending::Rejected, CallStatus::Busy, CallStatus::Busy),
            (1123, Ending::Rejected, CallStatus::Busy, CallStatus::Busy),
            (
                1131,
                Ending::Unreachable,
                CallStatus::Failed,
                CallStatus::Failed,
            ),
            (
                1151,
                Ending::Unreachable,
                CallStatus::Failed,
                CallStatus::Failed,
            ),
            (
                3200,
                Ending::Unreachable,
                CallStatus::Failed,
                CallStatus::Failed,
            ),
            (
                1163,
                Ending::QueueGaveUp,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (
                1164,
                Ending::QueueGaveUp,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (
                1170,
                Ending::Closed,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (
                1192,
                Ending::Closed,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (
                1181,
                Ending::Command,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (
                1231,
                Ending::Normal,
                CallStatus::Missed,
                CallStatus::NoAnswer,
            ),
            (1312, Ending::Busy, CallStatus::Busy, CallStatus::Busy),
            (2240, Ending::Failed, CallStatus::Failed, CallStatus::Failed),
            (5001, Ending::Failed, CallStatus::Failed, CallStatus::Failed),
        ];
        for (code, ending, inbound, outbound) in cases {
            let c = Code(code);
            assert_eq!(c.ending(), ending, "{code}");
            assert_eq!(c.unanswered_status(true), inbound, "{code} inbound");
            assert_eq!(c.unanswered_status(false), outbound, "{code} outbound");
        }
    }
}
