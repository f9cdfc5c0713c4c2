//! Pop latency: how long from the PBX event that made a call ring at this desk to the pop
//! painted on screen. The UI measures each pop (after the frame that shows it) and reports it;
//! the engine keeps the last [`KEEP`] samples and serves percentiles to the shell, the log and
//! the end-to-end benchmark.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Samples kept (the oldest go first).
const KEEP: usize = 10_000;

/// Percentiles of the kept samples, in milliseconds (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PopLatency {
    pub count: usize,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub max: u32,
}

#[derive(Debug, Default)]
pub(crate) struct LatencySamples {
    samples: Mutex<VecDeque<u32>>,
}

impl LatencySamples {
    pub(crate) fn record(&self, ms: u32) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() == KEEP {
            samples.pop_front();
        }
        samples.push_back(ms);
    }

    pub(crate) fn summary(&self) -> PopLatency {
        let mut sorted: Vec<u32> = self
            .samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect();
        sorted.sort_unstable();
        let rank = |p: usize| -> u32 {
            // Nearest rank: the smallest sample with at least p % of samples at or below it.
            let n = sorted.len();
            let i = (p * n).div_ceil(100).clamp(1, n) - 1;
            sorted[i]
        };
        if sorted.is_empty() {
            return PopLatency::default();
        }
        PopLatency {
            count: sorted.len(),
            p50: rank(50),
            p90: rank(90),
            p99: rank(99),
            max: sorted[sorted.len() - 1],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank_and_a_bounded_window() {
        let s = LatencySamples::default();
        assert_eq!(s.summary(), PopLatency::default());
        for ms in (1..=100).rev() {
            s.record(ms);
        }
        assert_eq!(
            s.summary(),
            PopLatency {
                count: 100,
                p50: 50,
                p90: 90,
                p99: 99,
                max: 100
            }
        );
        for _ in 0..KEEP {
            s.record(7);
        }
        let all_sevens = s.summary();
        assert_eq!(
            (all_sevens.count, all_sevens.max, all_sevens.p99),
            (KEEP, 7, 7)
        );
    }
}
