//! A small HDR-style histogram: log-linear buckets (every power of two split into 128 linear
//! sub-buckets), so any recorded value is reported within 1/128 (< 0.8 %) of itself, from 0 to
//! `u64::MAX`, in a fixed 58 KiB. Count, min, max and sum are exact. Values are whatever unit the
//! caller chooses (the load tool records microseconds).

/// Sub-bucket bits: 2^7 = 128 linear steps per power of two.
const PRECISION: u32 = 7;
const SUB: usize = 1 << PRECISION;
/// Buckets to cover every `u64`: values below 2^7 one each, then 128 per power of two.
const BUCKETS: usize = (64 - PRECISION as usize + 1) * SUB;

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    min: u64,
    max: u64,
    sum: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

/// The bucket of `v`.
fn index(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros(); // ≥ PRECISION
    let shift = exp - PRECISION;
    let mantissa = (v >> shift) as usize; // in SUB..2*SUB
    (shift as usize + 1) * SUB + (mantissa - SUB)
}

/// The smallest and the largest value that fall into bucket `i`.
fn bounds(i: usize) -> (u64, u64) {
    if i < SUB {
        return (i as u64, i as u64);
    }
    let shift = (i / SUB - 1) as u32;
    let mantissa = (i % SUB + SUB) as u64;
    let low = mantissa << shift;
    let high = low.saturating_add((1_u64 << shift) - 1);
    (low, high)
}

impl Histogram {
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            min: u64::MAX,
            max: 0,
            sum: 0,
        }
    }

    pub fn record(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(index(v)) {
            *c += 1;
        }
        self.count += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        self.sum += u128::from(v);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// 0 when empty.
    pub fn min(&self) -> u64 {
        if self.count == 0 { 0 } else { self.min }
    }

    pub fn max(&self) -> u64 {
        self.max
    }

    /// 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0.0–1.0): the highest value of the bucket holding the
    /// `ceil(q·count)`-th smallest recording, never above the exact maximum (so the reported
    /// figure errs high, by less than 1/128). 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let q = if q.is_nan() { 1.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0_u64;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bounds(i).1.min(self.max).max(self.min);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_cover_u64() {
        let mut expected_low = 0_u64;
        for i in 0..BUCKETS {
            let (low, high) = bounds(i);
            assert_eq!(low, expected_low, "bucket {i}");
            assert!(high >= low);
            assert_eq!(index(low), i);
            assert_eq!(index(high), i);
            if i + 1 == BUCKETS {
                assert_eq!(high, u64::MAX);
            } else {
                expected_low = high + 1;
            }
        }
    }

    #[test]
    fn relative_error_is_below_one_in_128() {
        for v in [
            0_u64,
            1,
            127,
            128,
            129,
            1_000,
            12_345,
            999_999,
            1 << 40,
            u64::MAX - 1,
        ] {
            let (low, high) = bounds(index(v));
            assert!(low <= v && v <= high);
            assert!(
                (high - low) as f64 <= v as f64 / 128.0,
                "{v}: {low}..{high}"
            );
        }
    }

    #[test]
    fn quantiles_of_a_uniform_range() {
        let mut h = Histogram::new();
        for v in 1..=10_000_u64 {
            h.record(v);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!((h.min(), h.max()), (1, 10_000));
        assert!((h.mean() - 5_000.5).abs() < 1e-9);
        for (q, exact) in [
            (0.5, 5_000_u64),
            (0.9, 9_000),
            (0.99, 9_900),
            (0.999, 9_990),
        ] {
            let got = h.quantile(q);
            assert!(got >= exact, "q{q}: {got} < {exact}");
            assert!(
                got as f64 <= exact as f64 * (1.0 + 1.0 / 128.0),
                "q{q}: {got}"
            );
        }
        assert_eq!(h.quantile(1.0), 10_000);
        assert_eq!(h.quantile(0.0), 1);
    }

    #[test]
    fn a_single_outlier_is_the_max_and_only_the_top_quantile() {
        let mut h = Histogram::new();
        for _ in 0..999 {
            h.record(2_000);
        }
        h.record(250_000);
        // 2,000 lies in the bucket 2,000..=2,007 (8 wide at this magnitude).
        assert_eq!(h.quantile(0.99), 2_007);
        assert_eq!(h.quantile(0.999), 2_007);
        assert_eq!(h.quantile(0.9999), 250_000);
        assert_eq!(h.max(), 250_000);
    }

    #[test]
    fn empty_and_tiny() {
        let mut a = Histogram::new();
        assert_eq!(
            (a.quantile(0.99), a.min(), a.max(), a.mean()),
            (0, 0, 0, 0.0)
        );
        for v in [30, 10, 20] {
            a.record(v);
        }
        assert_eq!((a.count(), a.min(), a.max()), (3, 10, 30));
        assert_eq!(a.quantile(0.5), 20);
        assert!((a.mean() - 20.0).abs() < 1e-9);
    }
}
