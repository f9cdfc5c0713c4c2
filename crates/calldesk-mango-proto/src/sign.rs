//! The VPBX API signature: `sign = lower_hex(sha256(vpbx_api_key + json + vpbx_api_salt))`, the
//! same in both directions (our commands, Mango's webhooks). It is computed over the exact `json`
//! string that travels in the form field, never over a re-serialisation.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The credentials of one VPBX (one tenant). The salt never leaves the process: it is not sent,
/// and `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    key: String,
    salt: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("key", &self.key)
            .field("salt", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    pub fn new(key: impl Into<String>, salt: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            salt: salt.into(),
        }
    }

    /// The `vpbx_api_key` (sent with every request; not a secret on its own).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The signature of `json` (64 lowercase hex digits).
    pub fn sign(&self, json: &str) -> String {
        sign(&self.key, json, &self.salt)
    }

    /// Whether `sign` is the signature of `json`, compared in constant time. Upper-case hex is
    /// accepted; `\r\n` in `json` is also tried as `\n` (a defensive step one production
    /// integration takes).
    pub fn verify(&self, json: &str, sign: &str) -> bool {
        let given = sign.trim().to_ascii_lowercase();
        let matches = |json: &str| bool::from(self.sign(json).as_bytes().ct_eq(given.as_bytes()));
        matches(json) || (json.contains("\r\n") && matches(&json.replace("\r\n", "\n")))
    }

    /// The signature of a pre-signed recording link:
    /// `sha256(key + expires + recording_id + salt)`.
    pub fn sign_recording_link(&self, expires_unix: i64, recording_id: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.key.as_bytes());
        h.update(expires_unix.to_string().as_bytes());
        h.update(recording_id.as_bytes());
        h.update(self.salt.as_bytes());
        hex::encode(h.finalize())
    }
}

/// `lower_hex(sha256(key + json + salt))`.
pub fn sign(key: &str, json: &str, salt: &str) -> String {
    let mut h = Sha256::new();
    h.update(key.as_bytes());
    h.update(json.as_bytes());
    h.update(salt.as_bytes());
    hex::encode(h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The four vectors of the official PHP examples (key and salt literally with brackets).
    #[test]
    fn official_vectors() {
        let c = Credentials::new("<YOUR_API_KEY>", "<YOUR_API_SALT>");
        let vectors = [
            (
                r#"{"command_id":"your-command-id","from":{"extension":"<extension>","number":""},"to_number":"<to_number>"}"#,
                "afdeb462cd5e0e422a9c9220390124608df06a4472cb1add6ebd6e24184bd15a",
            ),
            (
                r#"{"command_id":"your-command-id","call_id":"<CALL_ID>"}"#,
                "2d1d01246f52cec1fdb44f2a4d7091dc54f67e318369c0628201d66b5d336ef0",
            ),
            (
                r#"{"date_from":"1445288400","date_to":"1445374859","from":{"extension":"","number":""},"to":{"extension":"","number":""}}"#,
                "94e263aa0aa65d77481b86e9224fa2230265faa387322e40716389406982c0fb",
            ),
            (
                r#"{"key":"<REQUEST_KEY>"}"#,
                "515069b8c079df62f408e36dd7933912b8e86d833c5927ee77eb4b68d766c4f5",
            ),
        ];
        for (json, expected) in vectors {
            assert_eq!(c.sign(json), expected, "{json}");
            assert!(c.verify(json, expected));
            assert!(c.verify(json, &expected.to_ascii_uppercase()));
        }
    }

    #[test]
    fn non_ascii_json_and_the_webhook_example() {
        let c = Credentials::new(
            "8h2kq7m1x0v9c3zq5t6y4w2e1r0u9i8o",
            "p0o9i8u7y6t5r4e3w2q1a2s3d4f5g6h7",
        );
        let sms = r#"{"command_id":"sms-1","text":"Привет","from_extension":"101","to_number":"79161234567"}"#;
        assert_eq!(
            c.sign(sms),
            "9f35e76bbdfa7cad8f51535a25f7638921399f182746fe1cc173f6c968d441ba"
        );
        // The same text escaped as \uXXXX is a different string, hence a different sign.
        let escaped = sms.replace("Привет", r"\u041f\u0440\u0438\u0432\u0435\u0442");
        assert_ne!(c.sign(&escaped), c.sign(sms));
        let event = r#"{"entry_id":"MjYwNTQ4ODA3Nzc=","call_id":"MToxMDAxMjM0NTo0MDE6OTg3NjU0MzIxOjE=","timestamp":1716800000,"seq":1,"call_state":"Appeared","location":"ivr","from":{"number":"79161234567","line_number":"74951234567"},"to":{"number":"74951234567","line_number":"74951234567"},"dct":{"type":0}}"#;
        assert_eq!(
            c.sign(event),
            "02e96101a427307b6d8cce98faf490654f8537fd45ce5acce16952a43122a5fd"
        );
        assert_eq!(
            c.sign_recording_link(1_716_803_600, "MToxMDAxMjM0NTo1MDA5NDExMDIyOjE="),
            "0499ee5abc188fbf32f935c3d4845daa8ec03346d7c5b171a005b183d5496950"
        );
    }

    #[test]
    fn forged_or_altered_signs_fail() {
        let c = Credentials::new("key", "s3cr3t-salt");
        let json = r#"{"a":1}"#;
        let good = c.sign(json);
        assert!(!c.verify(r#"{"a":2}"#, &good));
        assert!(!c.verify(json, &Credentials::new("key", "other").sign(json)));
        assert!(!c.verify(json, ""));
        assert!(!c.verify(json, &good[..63]));
        // CRLF normalisation only ever helps a string that has CRLF.
        let crlf = "{\"a\":\r\n1}";
        assert!(c.verify(crlf, &c.sign("{\"a\":\n1}")));
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert!(format!("{c:?}").contains("<redacted>"));
    }
}
