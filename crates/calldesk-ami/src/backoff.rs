//! Reconnect delays: exponential backoff with equal jitter, reset after a stable session.

use std::time::Duration;

use rand::Rng;

/// Backoff settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// The first delay (before jitter).
    pub min: Duration,
    /// The delay never grows past this (before jitter).
    pub max: Duration,
    /// A session that lasted at least this long resets the delay to `min`, so a PBX that
    /// accepts the login and drops us at once is not hammered.
    pub stable: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(500),
            max: Duration::from_secs(10),
            stable: Duration::from_secs(30),
        }
    }
}

/// Reconnect delays. Equal jitter: each delay is uniformly random in `[d/2, d]` where `d`
/// doubles from `min` to `max`, so a room of desktops does not reconnect in lockstep while it
/// still backs off.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    current: Duration,
}

impl Backoff {
    pub fn new(config: BackoffConfig) -> Self {
        let min = config.min.min(config.max);
        Self {
            config: BackoffConfig { min, ..config },
            current: min,
        }
    }

    /// The delay before the next attempt; the one after it will be twice as long (capped).
    pub fn next_delay(&mut self) -> Duration {
        self.next_delay_with(&mut rand::rng())
    }

    /// [`Backoff::next_delay`] with a given random source (for tests).
    pub fn next_delay_with(&mut self, rng: &mut impl Rng) -> Duration {
        let d = self.current;
        self.current = (self.current * 2).min(self.config.max);
        if d.is_zero() {
            return d;
        }
        rng.random_range(d / 2..=d)
    }

    /// Reports how long the session that just ended lasted: a stable one resets the delay.
    pub fn session_ended(&mut self, lasted: Duration) {
        if lasted >= self.config.stable {
            self.reset();
        }
    }

    /// Starts again from `min`.
    pub fn reset(&mut self) {
        self.current = self.config.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_equal_jitter_caps_and_resets_after_a_stable_session() {
        let config = BackoffConfig {
            min: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            stable: Duration::from_secs(5),
        };
        let mut b = Backoff::new(config);
        let mut rng = rand::rng();
        let mut caps = Vec::new();
        for _ in 0..8 {
            let cap = b.current;
            let d = b.next_delay_with(&mut rng);
            assert!(
                d >= cap / 2 && d <= cap,
                "{d:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
            caps.push(cap.as_millis());
        }
        assert_eq!(caps, [100, 200, 400, 800, 1000, 1000, 1000, 1000]);
        b.session_ended(Duration::from_secs(1));
        assert_eq!(
            b.current,
            Duration::from_millis(1000),
            "a short session keeps backing off"
        );
        b.session_ended(Duration::from_secs(5));
        assert_eq!(b.current, Duration::from_millis(100));
        // min > max is clamped, zero works.
        let mut z = Backoff::new(BackoffConfig {
            min: Duration::ZERO,
            max: Duration::ZERO,
            stable: Duration::ZERO,
        });
        assert_eq!(z.next_delay(), Duration::ZERO);
    }
}
