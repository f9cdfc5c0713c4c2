//! Deterministic demo data.

/// Area codes / mobile prefixes used for demo callers (Moscow, St Petersburg, mobiles).
const PREFIXES: &[&str] = &["495", "812", "916", "903", "499", "925", "965", "981"];

/// The caller number of the `n`-th demo call: a realistic Russian E.164 number such as
/// `+74951234567`. Deterministic: the same `n` always gives the same number; `n = 0` is the
/// first demo call's caller.
pub fn demo_caller(n: u64) -> String {
    let prefix = PREFIXES[(n % PREFIXES.len() as u64) as usize];
    // A simple bijective scramble of n into 7 digits (odd multiplier mod 10^7).
    let sub = (n.wrapping_mul(2_654_435).wrapping_add(1_234_567)) % 10_000_000;
    format!("+7{prefix}{sub:07}")
}

#[cfg(test)]
mod tests {
    use super::demo_caller;

    #[test]
    fn demo_callers_look_real_and_are_deterministic() {
        assert_eq!(demo_caller(0), demo_caller(0));
        assert_eq!(demo_caller(0), "+74951234567");
        for n in 0..100 {
            let c = demo_caller(n);
            assert_eq!(c.len(), 12, "{c}");
            assert!(c.starts_with("+7"));
            assert!(c[1..].bytes().all(|b| b.is_ascii_digit()));
        }
        assert_ne!(demo_caller(1), demo_caller(0));
    }
}
