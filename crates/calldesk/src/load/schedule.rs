//! The open-loop send schedule: webhook `k` is due `k / rate` seconds after the start, whatever
//! the hub does. Times come from `k` (never accumulated), so there is no drift; a send that
//! leaves after its due time is counted as late instead of moving the rest of the schedule.

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// Webhooks per second (> 0).
    rate: f64,
    /// How many webhooks in all.
    total: u64,
}

impl Schedule {
    /// `rate` webhooks/s for `duration`; `None` for a rate that is not a positive finite number.
    pub fn new(rate: f64, duration: Duration) -> Option<Self> {
        if !(rate.is_finite() && rate > 0.0) {
            return None;
        }
        let total = (rate * duration.as_secs_f64()).floor();
        Some(Self {
            rate,
            total: if total >= u64::MAX as f64 {
                u64::MAX
            } else {
                total as u64
            },
        })
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// When webhook `k` is due, after the start.
    pub fn due(&self, k: u64) -> Duration {
        let nanos = (k as f64 * 1e9 / self.rate).round();
        if nanos >= u64::MAX as f64 {
            Duration::MAX
        } else {
            Duration::from_nanos(nanos as u64)
        }
    }
}

/// How late a send left: `actual − due`, zero when it left early or on time.
pub fn lateness(due: Duration, actual: Duration) -> Duration {
    actual.saturating_sub(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_k_over_rate_without_drift() {
        let s = Schedule::new(2_000.0, Duration::from_secs(60)).unwrap();
        assert_eq!(s.total(), 120_000);
        assert_eq!(s.due(0), Duration::ZERO);
        assert_eq!(s.due(1), Duration::from_micros(500));
        assert_eq!(s.due(2_000), Duration::from_secs(1));
        // The last one is due just before the end, whatever the rounding of the steps.
        let last = s.due(s.total() - 1);
        assert!(last < Duration::from_secs(60));
        assert!(Duration::from_secs(60) - last <= Duration::from_micros(500));
        // A rate that is not a whole number of microseconds per webhook does not drift.
        let s = Schedule::new(3.0, Duration::from_secs(1_000_000)).unwrap();
        assert_eq!(s.due(3_000_000), Duration::from_secs(1_000_000));
    }

    #[test]
    fn a_slow_hub_makes_sends_late_but_does_not_move_the_schedule() {
        // Open loop: a stall of 50 ms at webhook 10 (rate 1000/s) leaves 10..60 late by
        // decreasing amounts; webhook 61 is on time again because due times never shift.
        let s = Schedule::new(1_000.0, Duration::from_secs(1)).unwrap();
        let resume = Duration::from_millis(60);
        let late: Vec<Duration> = (10..=61)
            .map(|k| lateness(s.due(k), resume.max(s.due(k))))
            .collect();
        assert_eq!(late[0], Duration::from_millis(50));
        assert_eq!(late[50], Duration::ZERO);
        assert_eq!(late[51], Duration::ZERO);
        assert_eq!(
            lateness(Duration::from_millis(5), Duration::from_millis(3)),
            Duration::ZERO
        );
    }

    #[test]
    fn bad_rates_are_refused() {
        assert!(Schedule::new(0.0, Duration::from_secs(1)).is_none());
        assert!(Schedule::new(-1.0, Duration::from_secs(1)).is_none());
        assert!(Schedule::new(f64::NAN, Duration::from_secs(1)).is_none());
        assert!(Schedule::new(f64::INFINITY, Duration::from_secs(1)).is_none());
        assert_eq!(
            Schedule::new(0.5, Duration::from_secs(3)).unwrap().total(),
            1
        );
    }
}
