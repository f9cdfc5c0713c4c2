//! Webhook fuzz target: arbitrary bytes as a route, a form body and a JSON payload.
//!
//! Input: control byte 0 picks the route, the rest is split at byte 1's position into a form
//! body and a `json` text. Checked:
//! * no panic in `SignedForm::parse`, `Webhook::receive`, `Webhook::parse`, nor in the tracker
//!   fed with whatever parsed (its `tick` and `finish` included);
//! * a payload signed with `SignedForm::encode` is received as exactly what `Webhook::parse`
//!   gives for it (signing and form encoding lose nothing, whatever the characters), and with
//!   one byte of the sign changed it is refused as `BadSignature`.
#![no_main]

use calldesk_calls::{NumberPlan, Timestamp};
use calldesk_mango_proto::tracker::{MangoTracker, Timing};
use calldesk_mango_proto::{Credentials, Route, SignedForm, Webhook, WebhookError};
use libfuzzer_sys::fuzz_target;

const ROUTES: [&str; 11] = [
    "/events/call",
    "/events/summary",
    "/events/recording",
    "/events/record/added",
    "/events/record/tagged",
    "/events/dtmf",
    "/events/sms",
    "/result/callback",
    "/result/stats",
    "/ping",
    "/t/events/call/",
];

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let path = ROUTES[data[0] as usize % ROUTES.len()];
    let split = (data[1] as usize).min(data.len() - 2);
    let (body, json) = data[2..].split_at(split);
    let creds = Credentials::new("key", "salt");

    // Arbitrary form bodies.
    let _ = SignedForm::parse(body);
    let _ = Webhook::receive(path, body, &creds);

    let Ok(json) = std::str::from_utf8(json) else {
        return;
    };
    let Ok(route) = Route::from_path(path) else {
        return;
    };
    let parsed = Webhook::parse(&route, json);
    // Sign + encode + receive round-trips exactly.
    let signed = SignedForm::encode(&creds, json);
    if signed.len() <= calldesk_mango_proto::webhook::MAX_BODY {
        assert_eq!(Webhook::receive(path, signed.as_bytes(), &creds), parsed);
        let tampered = signed.replacen("sign=", "sign=0", 1);
        let refused = Webhook::receive(path, tampered.as_bytes(), &creds);
        assert_eq!(refused, Err(WebhookError::BadSignature));
    }
    if let Ok(hook) = parsed {
        let Ok(plan) = NumberPlan::new("RU") else {
            return;
        };
        let mut tracker = MangoTracker::new(plan, Timing::default());
        let mut out = Vec::new();
        let now = Timestamp::from_unix_millis(i64::from(data[1]) * 1000);
        tracker.handle(&hook, now, &mut out);
        tracker.handle(&hook, now, &mut out);
        tracker.tick(Timestamp::from_unix_millis(i64::MAX / 2), &mut out);
        tracker.finish(&mut out);
    }
});
