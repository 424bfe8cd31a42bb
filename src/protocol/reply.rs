//! RESP2 reply encoding straight into a reusable output buffer.

/// Error texts shared by several command families, worded as Redis 7.
pub mod err {
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const INDEX_OUT_OF_RANGE: &str = "ERR index out of range";
    pub const OUT_OF_RANGE_POSITIVE: &str = "ERR value is out of range, must be positive";
    pub const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
}

/// Appends RESP2 replies to a byte buffer.
pub trait Resp {
    fn simple(&mut self, s: &str);
    fn error(&mut self, s: &str);
    fn int(&mut self, n: i64);
    fn bulk(&mut self, b: &[u8]);
    fn nil(&mut self);
    fn nil_array(&mut self);
    fn array(&mut self, len: usize);
    fn ok(&mut self) {
        self.simple("OK");
    }
    /// A float as Redis prints it in bulk replies (no exponent, no
    /// trailing zeros).
    fn bulk_f64(&mut self, v: f64);
}

impl Resp for Vec<u8> {
    #[inline]
    fn simple(&mut self, s: &str) {
        self.push(b'+');
        self.extend_from_slice(s.as_bytes());
        self.extend_from_slice(b"\r\n");
    }

    fn error(&mut self, s: &str) {
        self.push(b'-');
        // An error line must not contain CR/LF or it would desync the client.
        self.extend(
            s.bytes()
                .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        self.extend_from_slice(b"\r\n");
    }

    #[inline]
    fn int(&mut self, n: i64) {
        self.push(b':');
        push_i64(self, n);
        self.extend_from_slice(b"\r\n");
    }

    #[inline]
    fn bulk(&mut self, b: &[u8]) {
        self.push(b'$');
        push_i64(self, b.len() as i64);
        self.extend_from_slice(b"\r\n");
        self.extend_from_slice(b);
        self.extend_from_slice(b"\r\n");
    }

    #[inline]
    fn nil(&mut self) {
        self.extend_from_slice(b"$-1\r\n");
    }

    fn nil_array(&mut self) {
        self.extend_from_slice(b"*-1\r\n");
    }

    #[inline]
    fn array(&mut self, len: usize) {
        self.push(b'*');
        push_i64(self, len as i64);
        self.extend_from_slice(b"\r\n");
    }

    fn bulk_f64(&mut self, v: f64) {
        let mut tmp = Vec::with_capacity(32);
        format_f64(&mut tmp, v);
        self.bulk(&tmp);
    }
}

/// Decimal text of `n` without going through `fmt`.
#[inline]
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
}

/// Redis prints floats in human form: fixed notation, shortest digits that
/// round-trip, no trailing zeros ("3" rather than "3.0").
pub fn format_f64(out: &mut Vec<u8>, v: f64) {
    use std::io::Write;
    if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"inf" } else { b"-inf" });
    } else if v == v.trunc() && v.abs() < 1e17 {
        let _ = write!(out, "{}", v as i64);
    } else {
        // Redis prints a long double with 17 digits, which hides the last
        // binary digits of sums like 0.1 + 0.2; 15 digits of an f64 do the
        // same.
        let rounded: f64 = format!("{v:.14e}").parse().unwrap_or(v);
        let _ = write!(out, "{rounded}");
    }
}

/// The text INCRBYFLOAT/HINCRBYFLOAT store for `current + delta` (whose f64
/// value is `sum`). Redis adds in long double and prints 17 digits, which
/// for decimal inputs gives the exact decimal sum; we add decimal texts
/// exactly when both are plain decimals, and fall back to the f64 sum
/// otherwise (exponents, very long numbers).
pub fn float_sum_text(current: Option<&[u8]>, delta: &[u8], sum: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(24);
    match add_decimals(current.unwrap_or(b"0"), delta) {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => format_f64(&mut out, sum),
    }
    out
}

/// `[-+]digits[.digits]` as (mantissa, digits after the point).
fn parse_decimal(s: &[u8]) -> Option<(i128, u32)> {
    let (neg, body) = match s.first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(dot) => (&body[..dot], &body[dot + 1..]),
        None => (body, &body[..0]),
    };
    if int.len() + frac.len() == 0 || int.len() + frac.len() > 30 {
        return None;
    }
    let mut mantissa: i128 = 0;
    for &d in int.iter().chain(frac) {
        if !d.is_ascii_digit() {
            return None;
        }
        mantissa = mantissa * 10 + (d - b'0') as i128;
    }
    Some((if neg { -mantissa } else { mantissa }, frac.len() as u32))
}

fn add_decimals(a: &[u8], b: &[u8]) -> Option<String> {
    let ((ma, sa), (mb, sb)) = (parse_decimal(a)?, parse_decimal(b)?);
    let scale = sa.max(sb);
    let sum = ma
        .checked_mul(10i128.checked_pow(scale - sa)?)?
        .checked_add(mb.checked_mul(10i128.checked_pow(scale - sb)?)?)?;
    let digits = sum.unsigned_abs().to_string();
    let scale = scale as usize;
    let (int, frac) = if digits.len() > scale {
        (
            digits[..digits.len() - scale].to_string(),
            &digits[digits.len() - scale..],
        )
    } else {
        ("0".to_string(), &digits[..])
    };
    let frac = format!("{frac:0>scale$}");
    let frac = frac.trim_end_matches('0');
    let sign = if sum < 0 { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// Parses a float argument as Redis does: no spaces, no NaN.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(s).ok()?;
    if text.is_empty()
        || text.starts_with(char::is_whitespace)
        || text.ends_with(char::is_whitespace)
    {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    let v = match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => f64::INFINITY,
        "-inf" | "-infinity" => f64::NEG_INFINITY,
        _ => text.parse::<f64>().ok()?,
    };
    if v.is_nan() { None } else { Some(v) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_every_reply_type() {
        let mut out = Vec::new();
        out.ok();
        out.error("ERR bad\r\nthing");
        out.int(-42);
        out.bulk(b"hi");
        out.nil();
        out.array(2);
        out.bulk_f64(10.5);
        out.bulk_f64(3.0);
        out.bulk_f64(0.1 + 0.2);
        assert_eq!(
            out,
            b"+OK\r\n-ERR bad  thing\r\n:-42\r\n$2\r\nhi\r\n$-1\r\n*2\r\n$4\r\n10.5\r\n$1\r\n3\r\n$3\r\n0.3\r\n"
        );
    }

    #[test]
    fn integer_extremes() {
        let mut out = Vec::new();
        push_i64(&mut out, i64::MIN);
        assert_eq!(out, i64::MIN.to_string().as_bytes());
    }

    #[test]
    fn float_sums_are_exact_for_decimals() {
        let text = |cur: Option<&str>, d: &str| {
            let sum = cur.map_or(0.0, |c| c.parse::<f64>().unwrap()) + d.parse::<f64>().unwrap();
            String::from_utf8(float_sum_text(cur.map(str::as_bytes), d.as_bytes(), sum)).unwrap()
        };
        assert_eq!(text(Some("0.1"), "0.2"), "0.3");
        assert_eq!(text(Some("1"), "-1.1"), "-0.1");
        assert_eq!(text(None, "0.1234567890123456"), "0.1234567890123456");
        assert_eq!(text(Some("10.50"), "0.1"), "10.6");
        assert_eq!(text(Some("5.0e3"), "200"), "5200");
        assert_eq!(text(Some("-3"), "3"), "0");
        assert_eq!(text(Some("0.5"), "-0.75"), "-0.25");
    }

    #[test]
    fn floats_parse_like_redis() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_f64(b"5e3"), Some(5000.0));
        assert_eq!(parse_f64(b"nan"), None);
        assert_eq!(parse_f64(b" 1"), None);
        assert_eq!(parse_f64(b"abc"), None);
    }
}
