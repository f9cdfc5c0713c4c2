//! AMI's MD5 challenge login: `Action: Challenge` / `AuthType: MD5` returns a `Challenge`, and
//! `Login` then carries `Key: md5_hex(challenge + secret)` instead of the secret.

use md5::{Digest, Md5};

/// The `Key` of an MD5 `Login`: lower-case hex MD5 of `challenge + secret` (manager.c
/// `authenticate()`). Used by the client, and by the simulator to check it.
pub fn md5_login_key(challenge: &str, secret: &str) -> String {
    let mut h = Md5::new();
    h.update(challenge.as_bytes());
    h.update(secret.as_bytes());
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::md5_login_key;

    #[test]
    fn matches_the_captured_login_and_the_docs() {
        // j1 conn3: Challenge 178112119, secret `secret` (the key Asterisk accepted).
        assert_eq!(
            md5_login_key("178112119", "secret"),
            "818c947a53b39481dd042be1c29f9eca"
        );
        assert_eq!(md5_login_key("", ""), "d41d8cd98f00b204e9800998ecf8427e");
    }
}
