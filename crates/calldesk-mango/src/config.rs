//! [`MangoConfig`]: where the VPBX API is, the tenant's credentials, timeouts and retries.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use calldesk_mango_proto::Credentials;
use reqwest::Url;

/// The production VPBX API base.
pub const DEFAULT_BASE_URL: &str = "https://app.mango-office.ru/vpbx/";

/// Mango asks for `stats/result` to be polled no more than once every 5 s.
pub const MIN_STATS_POLL: Duration = Duration::from_secs(5);

/// How the client talks to one VPBX (one product; all rate limits are per client).
#[derive(Clone)]
pub struct MangoConfig {
    /// The API base; request paths (`commands/callback`) are joined to it. A missing trailing
    /// `/` is added. `http://` works (tests, a local fake).
    pub base_url: Url,
    pub credentials: Credentials,
    /// The longest one HTTP exchange may take (connect, send, answer). Downloads apply it to
    /// the answer's headers and to each body chunk instead of the whole file.
    pub request_timeout: Duration,
    /// Re-sends after a 429, or after a server or transport error where re-sending is safe
    /// (queries, or a request that provably never left). Commands are never re-sent once they
    /// may have reached Mango.
    pub max_retries: u32,
    /// The first retry delay; it doubles per attempt (equal jitter: a random delay in
    /// `[d/2, d]`), capped at [`MangoConfig::backoff_max`]. A `Retry-After` header wins when
    /// longer.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often [`crate::MangoClient::stats`] polls `stats/result`. Raised to
    /// [`MIN_STATS_POLL`] unless `base_url` is a loopback address: the only way to poll
    /// faster is a local fake Mango (tests).
    pub stats_poll_interval: Duration,
    /// How long [`crate::MangoClient::stats`] waits for a report before giving up.
    pub stats_deadline: Duration,
    /// PEM certificates trusted in addition to the system roots (a TLS-intercepting proxy's
    /// CA, a test server).
    pub extra_root_certs_pem: Option<Vec<u8>>,
}

impl fmt::Debug for MangoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MangoConfig")
            .field("base_url", &self.base_url.as_str())
            .field("credentials", &self.credentials)
            .field("request_timeout", &self.request_timeout)
            .field("max_retries", &self.max_retries)
            .field("backoff_base", &self.backoff_base)
            .field("backoff_max", &self.backoff_max)
            .field("stats_poll_interval", &self.stats_poll_interval)
            .field("stats_deadline", &self.stats_deadline)
            .field(
                "extra_root_certs_pem",
                &self.extra_root_certs_pem.as_ref().map(Vec::len),
            )
            .finish()
    }
}

impl MangoConfig {
    /// The production API with the defaults: 15 s timeout, 3 retries from 500 ms (at most
    /// 30 s apart), stats polled every 5 s for at most 10 minutes.
    pub fn new(credentials: Credentials) -> Self {
        Self::with_base_url(default_base_url(), credentials)
    }

    /// The defaults against another API base (a fake Mango, a proxy).
    pub fn with_base_url(base_url: Url, credentials: Credentials) -> Self {
        Self {
            base_url,
            credentials,
            request_timeout: Duration::from_secs(15),
            max_retries: 3,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            stats_poll_interval: MIN_STATS_POLL,
            stats_deadline: Duration::from_secs(600),
            extra_root_certs_pem: None,
        }
    }

    /// The stats poll interval actually used (see [`MangoConfig::stats_poll_interval`]).
    pub fn effective_stats_poll(&self) -> Duration {
        if is_loopback(&self.base_url) {
            self.stats_poll_interval
        } else {
            self.stats_poll_interval.max(MIN_STATS_POLL)
        }
    }
}

#[allow(clippy::expect_used)] // a constant, checked by a unit test
fn default_base_url() -> Url {
    Url::parse(DEFAULT_BASE_URL).expect("DEFAULT_BASE_URL parses")
}

/// Whether `url` points at this machine (`localhost`, `127.0.0.0/8`, `::1`).
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host_str() {
        Some("localhost") => true,
        Some(host) => host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_the_stats_poll_floor() -> Result<(), Box<dyn std::error::Error>> {
        let mut c = MangoConfig::new(Credentials::new("k", "very-secret-salt"));
        assert_eq!(c.base_url.as_str(), DEFAULT_BASE_URL);
        c.stats_poll_interval = Duration::from_millis(10);
        assert_eq!(c.effective_stats_poll(), MIN_STATS_POLL);
        for local in [
            "http://127.0.0.1:8080/",
            "http://localhost/x/",
            "http://[::1]:1/",
        ] {
            c.base_url = Url::parse(local)?;
            assert_eq!(
                c.effective_stats_poll(),
                Duration::from_millis(10),
                "{local}"
            );
        }
        c.base_url = Url::parse("http://10.0.0.1/")?;
        assert_eq!(c.effective_stats_poll(), MIN_STATS_POLL);
        assert!(!format!("{c:?}").contains("very-secret-salt"));
        Ok(())
    }
}
