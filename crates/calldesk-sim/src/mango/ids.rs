//! Deterministic ids in Mango's style: `entry_id` is base64 of a decimal number
//! (`MjYwNTQ4ODA3Nzc=`), `call_id` and `recording_id` base64 of `1:<product>:<…>` strings, stats
//! keys base64 with `+`, `/` and `=`. Every id comes from one counter shared by the clones of an
//! [`Ids`], so two renders with the same [`Ids`] never reuse an id, and the same seed and the
//! same sequence of calls always give the same ids.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The product number inside the fake `call_id`s and `recording_id`s.
const PRODUCT: u64 = 10_012_345;

/// Id source of the fake VPBX. Clones share the counter.
#[derive(Debug, Clone)]
pub struct Ids {
    seed: u64,
    next: Arc<AtomicU64>,
}

impl Default for Ids {
    fn default() -> Self {
        Self::new(0)
    }
}

/// Which kind of leg a `call_id` names (real ids differ by a routing component).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegIdKind {
    /// A leg that starts in the voice menu (`…:401:…:1`).
    Ivr,
    /// A leg ringing an employee (`…:506:…`).
    Employee,
    /// A leg dialled out to a number (`…:201:…`).
    Outbound,
}

impl Ids {
    /// Ids for `seed` (different seeds give different ids), starting at counter 0.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The next number: the seed in the high digits, the counter in the low six.
    fn number(&self) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        (self.seed % 1000) * 1_000_000 + n % 1_000_000
    }

    /// A new `entry_id`, e.g. `MjYwMDAwMDAwMDA=` (base64 of `26000000000`).
    pub fn entry_id(&self) -> String {
        b64((26_000_000_000 + self.number()).to_string())
    }

    /// A new `call_id`.
    pub(crate) fn call_id(&self, kind: LegIdKind) -> String {
        let n = 987_000_000 + self.number();
        b64(match kind {
            LegIdKind::Ivr => format!("1:{PRODUCT}:401:{n}:1"),
            LegIdKind::Employee => format!("1:{PRODUCT}:506:{n}"),
            LegIdKind::Outbound => format!("1:{PRODUCT}:201:{n}"),
        })
    }

    /// A new `recording_id`, e.g. base64 of `1:10012345:5009000000:1`.
    pub fn recording_id(&self) -> String {
        b64(format!("1:{PRODUCT}:{}:1", 5_009_000_000 + self.number()))
    }

    /// A new `command_id` for a scripted command, e.g. `tr-0003`.
    pub fn command_id(&self, prefix: &str) -> String {
        format!("{prefix}-{:04x}", self.number())
    }

    /// A new stats key: base64 that always holds `+`, `/` and `=`.
    pub fn stats_key(&self) -> String {
        let mut bytes = vec![0xfb, 0xff, 0xbf];
        bytes.extend_from_slice(&self.number().to_be_bytes());
        STANDARD.encode(bytes)
    }

    /// A new one-time file token (32 hex digits).
    pub fn file_token(&self) -> String {
        let n = self.number();
        let a = splitmix64(n ^ self.seed.rotate_left(17));
        let b = splitmix64(a ^ 0x5bd1_e995);
        format!("{a:016x}{b:016x}")
    }
}

fn b64(text: String) -> String {
    STANDARD.encode(text.as_bytes())
}

/// One step of SplitMix64: a small, good-enough deterministic mixer.
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A seeded pseudo-random sequence (SplitMix64).
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        splitmix64(self.0)
    }

    /// A value in `0..bound` (0 when `bound` is 0).
    pub(crate) fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            0
        } else {
            self.next_u64() % bound
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(id: &str) -> String {
        String::from_utf8(STANDARD.decode(id).unwrap()).unwrap()
    }

    #[test]
    fn ids_look_like_mangos_and_are_deterministic() {
        let a = Ids::new(7);
        let e = a.entry_id();
        assert!(decode(&e).bytes().all(|b| b.is_ascii_digit()), "{e}");
        assert_eq!(decode(&e).len(), 11);
        let ivr = decode(&a.call_id(LegIdKind::Ivr));
        assert!(
            ivr.starts_with("1:10012345:401:") && ivr.ends_with(":1"),
            "{ivr}"
        );
        assert!(decode(&a.call_id(LegIdKind::Employee)).contains(":506:"));
        let rec = decode(&a.recording_id());
        assert!(
            rec.starts_with("1:10012345:50") && rec.ends_with(":1"),
            "{rec}"
        );
        // Same seed, same sequence: same ids; clones share the counter.
        let b = Ids::new(7);
        assert_eq!(b.entry_id(), e);
        let c = b.clone();
        assert_ne!(c.entry_id(), b.entry_id());
        assert_ne!(Ids::new(8).entry_id(), e);
    }

    #[test]
    fn stats_keys_need_url_encoding() {
        let ids = Ids::new(1);
        let k = ids.stats_key();
        assert!(
            k.contains('+') && k.contains('/') && k.ends_with('='),
            "{k}"
        );
        assert_ne!(ids.stats_key(), k);
        let t = ids.file_token();
        assert_eq!(t.len(), 32);
        assert_ne!(ids.file_token(), t);
    }

    #[test]
    fn rng_is_seeded() {
        let (mut a, mut b) = (Rng::new(3), Rng::new(3));
        assert_eq!(a.next_u64(), b.next_u64());
        assert!(a.below(10) < 10);
        assert_eq!(a.below(0), 0);
        assert_ne!(Rng::new(4).next_u64(), Rng::new(3).next_u64());
    }
}
