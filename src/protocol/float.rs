//! Float arguments as Redis 7.0 reads them: C's `strtod` over the whole
//! argument (`getDoubleFromObject`, and `getLongDoubleFromObject` for
//! INCRBYFLOAT/HINCRBYFLOAT, whose `long double` takes the same texts up to
//! its wider range), without allocating.
//!
//! One parser for every float a client sends: scores and their ranges,
//! WEIGHTS, GEO coordinates and radii, DEBUG SLEEP ([`parse_f64`]), and the
//! INCRBYFLOAT family ([`parse_long_double`]).
//!
//! And the other way, the exact decimal digits of a double as C's `printf`
//! rounds them (`round_scaled`): what scores (`%.17g`) and GEO replies
//! (`%.17f`, `%.4f`) are written from.

/// Parses a score as Redis' getDoubleFromObject does (ZADD, ZINCRBY,
/// WEIGHTS): all of the text must be a `strtod` number (decimal, hex,
/// `inf`, `infinity`), not empty, no leading blank, not NaN, and not out of
/// range (overflow to infinity or underflow to zero); `None` otherwise.
pub fn parse_f64(raw: &[u8]) -> Option<f64> {
    if raw.first().is_none_or(u8::is_ascii_whitespace) {
        return None;
    }
    let (v, out_of_range) = strtod(raw)?;
    if v.is_nan() || out_of_range {
        return None;
    }
    Some(v)
}

/// Parses a float as Redis' getLongDoubleFromObject does (INCRBYFLOAT,
/// HINCRBYFLOAT, their current values): the texts of [`parse_f64`], but a
/// `long double` reaches ±1.19e4932 and down to 3.6e-4951, so a text
/// outside an f64's range is no error here. It reads as the nearest f64:
/// zero or a subnormal for a tiny value (whose sum Redis prints as this
/// does), an infinity for a huge one, which the command refuses as an
/// infinite sum (where Redis, in long double, would still add and print
/// it). Redis copies the text into a 5 KiB buffer first: longer is no
/// number.
pub fn parse_long_double(raw: &[u8]) -> Option<f64> {
    if raw.len() >= LONG_DOUBLE_TEXT || raw.first().is_none_or(u8::is_ascii_whitespace) {
        return None;
    }
    let (v, _) = strtod(raw)?;
    (!v.is_nan()).then_some(v)
}

/// Redis' `MAX_LONG_DOUBLE_CHARS`: a long double's text must be shorter.
const LONG_DOUBLE_TEXT: usize = 5 * 1024;

/// `strtod` over the whole of `raw`: the value and whether it overflowed
/// to an infinity or underflowed to zero (C's ERANGE cases Redis checks).
/// Allocates nothing: every ZADD, ZINCRBY and score range comes here.
pub(crate) fn strtod(raw: &[u8]) -> Option<(f64, bool)> {
    let (neg, body) = match raw.first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    let sign = |v: f64| if neg { -v } else { v };
    // The common score, an integer (a count, a timestamp), needs no text
    // parser: up to 19 digits it fits a u64, whose conversion rounds once,
    // as strtod does.
    if (1..=19).contains(&body.len()) && body.iter().all(u8::is_ascii_digit) {
        let v = body.iter().fold(0u64, |v, &d| v * 10 + u64::from(d - b'0'));
        return Some((sign(v as f64), false));
    }
    let is = |word: &[u8]| body.eq_ignore_ascii_case(word);
    if is(b"inf") || is(b"infinity") {
        return Some((sign(f64::INFINITY), false));
    }
    if is(b"nan") {
        return Some((f64::NAN, false));
    }
    let hex = body.len() >= 2 && body[0] == b'0' && (body[1] | 0x20) == b'x';
    let (v, mantissa) = if hex {
        let digits = &body[2..];
        let exp = digits.iter().position(|&b| (b | 0x20) == b'p');
        (hex_float(digits)?, &digits[..exp.unwrap_or(digits.len())])
    } else {
        // Rust's parser takes "inf"/"nan" spellings (handled above) and
        // decimals; refuse its other words and signs inside.
        let decimal = |b: &u8| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-');
        if !body.iter().all(decimal) || body.starts_with(b"+") || body.starts_with(b"-") {
            return None;
        }
        let exp = body.iter().position(|&b| (b | 0x20) == b'e');
        let v = std::str::from_utf8(body).ok()?.parse::<f64>().ok()?;
        (v, &body[..exp.unwrap_or(body.len())])
    };
    let nonzero = mantissa.iter().any(|&b| b.is_ascii_hexdigit() && b != b'0');
    let out_of_range = v.is_infinite() || (v == 0.0 && nonzero);
    Some((sign(v), out_of_range))
}

/// The hex form strtod accepts after `0x`: digits, an optional fraction
/// and an optional binary exponent (`p` or `P`).
fn hex_float(t: &[u8]) -> Option<f64> {
    let (mant, exp) = match t.iter().position(|&b| (b | 0x20) == b'p') {
        Some(i) => (
            &t[..i],
            std::str::from_utf8(&t[i + 1..]).ok()?.parse::<i32>().ok()?,
        ),
        None => (t, 0),
    };
    let (int, frac) = match mant.iter().position(|&b| b == b'.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, &[][..]),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let digit = |c: u8| char::from(c).to_digit(16).map(f64::from);
    let mut v = 0f64;
    for &c in int {
        v = v * 16.0 + digit(c)?;
    }
    let mut scale = 1.0 / 16.0;
    for &c in frac {
        v += digit(c)? * scale;
        scale /= 16.0;
    }
    // 2^exp as two finite factors: the first keeps the value normal (an
    // exact step), the second makes the one rounding a subnormal result
    // needs. In one, 2^exp alone under- or overflows (`0x1p-1070` came out
    // 0, where it is 8e-323).
    // (And a zero mantissa is zero whatever the exponent: 0 × ∞ is NaN.)
    if v == 0.0 {
        return Some(0.0);
    }
    let first = exp.clamp(-960, 960);
    Some(v * 2f64.powi(first) * 2f64.powi(exp - first))
}

/// `a × 10^k` rounded to an integer (to nearest, ties to even) exactly,
/// as C's `printf` rounds the last digit it prints: `%.{k}f` is these
/// digits with the point `k` from the right, and `%.17g` those for `k = 16
/// − exponent`. A double is m × 2^e with m < 2^53, so `a × 10^k` is m ×
/// 5^k × 2^(e+k), whose first two factors fit a u128 for `k` ≤ 32: one
/// multiplication and a shift, where `fmt`'s exact formatting takes ten
/// times the instructions. For finite `a` ≥ 0 and `k` in 0..=32; None
/// outside, or when the result passes a u128.
pub(crate) fn round_scaled(a: f64, k: i32) -> Option<u128> {
    const POW5: [u128; 33] = {
        let mut t = [1u128; 33];
        let mut i = 1;
        while i < t.len() {
            t[i] = t[i - 1] * 5;
            i += 1;
        }
        t
    };
    if !(0..=32).contains(&k) || !a.is_finite() || a.is_sign_negative() {
        return None;
    }
    let bits = a.to_bits();
    let biased = (bits >> 52) as i32;
    let fraction = bits & ((1 << 52) - 1);
    let (m, e) = match biased {
        0 => (fraction, -1074), // zero and subnormals
        _ => (fraction | (1 << 52), biased - 1075),
    };
    let p = u128::from(m) * POW5[k as usize];
    let s = e + k;
    if s >= 0 {
        return (p == 0 || s < p.leading_zeros() as i32).then(|| p << s);
    }
    let sh = -s as u32;
    Some(match sh {
        // Below a half (p < 2^128): rounds to 0.
        129.. => 0,
        128 => u128::from(p > 1 << 127),
        _ => {
            let (q, r, half) = (p >> sh, p & ((1 << sh) - 1), 1u128 << (sh - 1));
            q + u128::from(r > half || (r == half && q & 1 == 1))
        }
    })
}

/// What the tests of float texts compare with: the C library's `printf`
/// (what Redis 7.0 formats with), and a generator of the same doubles on
/// every run.
#[cfg(test)]
pub(crate) mod c_texts {
    /// A xorshift generator seeded with `state` (not zero).
    pub(crate) fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    /// C's `%.{decimals}f` of `v`.
    pub(crate) fn fixed(v: f64, decimals: i32) -> String {
        let mut buf = [0u8; 512];
        // SAFETY: the buffer's length is passed; the format takes an int and
        // a double.
        let n = unsafe {
            libc::snprintf(
                buf.as_mut_ptr().cast(),
                buf.len(),
                c"%.*f".as_ptr(),
                decimals,
                v,
            )
        };
        String::from_utf8(buf[..n as usize].to_vec()).unwrap()
    }

    /// C's `%.17g` of `v` (Redis 7.0's scores).
    pub(crate) fn g17(v: f64) -> String {
        let mut buf = [0u8; 64];
        // SAFETY: the buffer's length is passed; the format takes a double.
        let n = unsafe { libc::snprintf(buf.as_mut_ptr().cast(), buf.len(), c"%.17g".as_ptr(), v) };
        String::from_utf8(buf[..n as usize].to_vec()).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `round_scaled` against the C library's `%.{k}f`, digits without the
    /// point, on doubles of every magnitude and every `k` it takes.
    #[test]
    fn scaled_digits_round_as_the_c_library() {
        use super::c_texts::{fixed, xorshift};
        let c_fixed = |a: f64, k: i32| -> u128 { fixed(a, k).replace('.', "").parse().unwrap() };
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let (mut checked, mut none) = (0, 0);
        for i in 0..60_000 {
            let a = match i % 3 {
                // Any magnitude, most of them out of reach.
                0 => f64::from_bits(next() >> 1),
                // 1e-20 .. 1e20.
                1 => {
                    (next() >> 11) as f64 / (1u64 << 53) as f64
                        * 10f64.powi((next() % 41) as i32 - 20)
                }
                // A few fraction bits: ties for the last digit.
                _ => ((next() >> 11) | 1) as f64 / f64::from(1u32 << (next() % 20)) / 1e10,
            };
            let k = (next() % 33) as i32;
            if !a.is_finite() {
                continue;
            }
            match round_scaled(a, k) {
                Some(n) => {
                    assert_eq!(n, c_fixed(a, k), "{a:e} × 10^{k}");
                    checked += 1;
                }
                None => none += 1,
            }
        }
        assert!(checked > 35_000 && none > 5_000, "{checked} {none}");
        assert_eq!(round_scaled(0.0, 5), Some(0));
        assert_eq!(round_scaled(2.5, 0), Some(2));
        assert_eq!(round_scaled(3.5, 0), Some(4));
        assert_eq!(round_scaled(f64::MIN_POSITIVE / 4.0, 32), Some(0));
        assert_eq!(round_scaled(-1.0, 0), None);
        assert_eq!(round_scaled(1.0, 33), None);
        assert_eq!(round_scaled(1e300, 0), None);
    }

    #[test]
    fn long_doubles_take_what_an_f64_cannot_hold() {
        assert_eq!(parse_long_double(b"1e-400"), Some(0.0));
        assert_eq!(parse_long_double(b"-1e-400"), Some(-0.0));
        assert_eq!(parse_long_double(b"1e400"), Some(f64::INFINITY));
        assert_eq!(parse_long_double(b"0x1p3"), Some(8.0));
        assert_eq!(parse_long_double(b"nan"), None);
        assert_eq!(parse_long_double(b" 1"), None);
        assert_eq!(parse_long_double(b"1 "), None);
        assert_eq!(parse_long_double(b""), None);
        let mut long = b"0.".to_vec();
        long.resize(LONG_DOUBLE_TEXT - 1, b'0');
        assert_eq!(parse_long_double(&long), Some(0.0));
        long.push(b'1');
        assert_eq!(parse_long_double(&long), None);
    }

    #[test]
    fn parses_like_strtod() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"+inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b".5"), Some(0.5));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b"abc"), None);
        assert_eq!(parse_f64(b""), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"1 "), None);
        assert_eq!(parse_f64(b"1e400"), None);
        assert_eq!(parse_f64(b"1e-400"), None);
        assert_eq!(parse_f64(b"0x10"), Some(16.0));
        assert_eq!(parse_f64(b"1."), Some(1.0));
        assert_eq!(parse_f64(b"+infinity"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"Inf"), Some(f64::INFINITY));
        assert_eq!(parse_f64(b"1e"), None);
        assert_eq!(parse_f64(b"--1"), None);
    }

    /// Redis 7.0's getDoubleFromObject, by the C library's own `strtod`:
    /// not empty, no leading space, all of it converted, not NaN, and
    /// ERANGE only when the result is an infinity or zero.
    fn c_strtod(raw: &[u8]) -> Option<f64> {
        let c = std::ffi::CString::new(raw).ok()?;
        let mut end = std::ptr::null_mut();
        // SAFETY: `c` is a NUL-terminated string that outlives the call;
        // errno is this thread's.
        let (v, erange) = unsafe {
            *libc::__errno_location() = 0;
            let v = libc::strtod(c.as_ptr(), &mut end);
            (v, *libc::__errno_location() == libc::ERANGE)
        };
        let used = end as usize - c.as_ptr() as usize;
        let bad = raw.is_empty()
            || raw[0].is_ascii_whitespace()
            || used != raw.len()
            || (erange && (v.is_infinite() || v == 0.0))
            || v.is_nan();
        (!bad).then_some(v)
    }

    /// `parse_f64` against the C library on generated text: numbers
    /// of every form (integers past 19 digits, fractions, exponents that
    /// overflow and underflow, short hex floats) and garbage around them.
    #[test]
    fn parses_as_the_c_library_does() {
        let mut rng = 0x1234_5678_9abc_def1u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let mut agree = 0;
        for _ in 0..200_000 {
            let mut s = Vec::new();
            let pick = |s: &mut Vec<u8>, set: &[u8], n: u64, next: &mut dyn FnMut(u64) -> u64| {
                for _ in 0..n {
                    s.push(set[next(set.len() as u64) as usize]);
                }
            };
            match next(4) {
                0 => pick(
                    &mut s,
                    b"+-0123456789.eExXpPinfatyINFATY ",
                    next(12),
                    &mut next,
                ),
                1 => {
                    for w in ["", "+", "-", "inf", "Infinity", "nan", "NAN", "0x", "0X"] {
                        if next(9) == 0 {
                            s.extend_from_slice(w.as_bytes());
                        }
                    }
                    pick(&mut s, b"0123456789abcdefABCDEF.", next(7), &mut next);
                    if next(2) == 0 {
                        s.push(if next(2) == 0 { b'p' } else { b'P' });
                        pick(&mut s, b"+-", next(2), &mut next);
                        pick(&mut s, b"0123456789", next(5), &mut next);
                    }
                }
                _ => {
                    pick(&mut s, b"+-", next(2), &mut next);
                    pick(&mut s, b"0123456789", next(22), &mut next);
                    if next(2) == 0 {
                        s.push(b'.');
                        pick(&mut s, b"0123456789", next(6), &mut next);
                    }
                    if next(3) == 0 {
                        s.push(if next(2) == 0 { b'e' } else { b'E' });
                        pick(&mut s, b"+-", next(2), &mut next);
                        pick(&mut s, b"0123456789", next(4), &mut next);
                    }
                    pick(&mut s, b" x.", next(2), &mut next);
                }
            }
            let (ours, c) = (parse_f64(&s), c_strtod(&s));
            assert_eq!(
                ours.map(f64::to_bits),
                c.map(f64::to_bits),
                "{:?}: {ours:?} vs {c:?}",
                String::from_utf8_lossy(&s)
            );
            agree += usize::from(c.is_some());
        }
        // Most generated texts are numbers, not only refusals.
        assert!(agree > 40_000, "{agree}");
    }
}
