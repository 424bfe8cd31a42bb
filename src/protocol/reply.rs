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
    /// An unsigned integer as a bulk string (SCAN cursors, as Redis'
    /// `addReplyBulkLongLong`).
    fn bulk_u64(&mut self, n: u64);
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

    #[inline]
    fn bulk_u64(&mut self, n: u64) {
        self.bulk(decimal(n, &mut [0; 20]));
    }

    fn bulk_f64(&mut self, v: f64) {
        self.bulk(format_f64(v, &mut [0; FLOAT_TEXT]));
    }
}

/// Decimal text of `n` without going through `fmt`.
#[inline]
pub fn push_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(decimal(n.unsigned_abs(), &mut [0; 20]));
}

/// The decimal digits of `v`, written at the end of `buf`: the one digit
/// loop ([`push_i64`], [`Resp::bulk_u64`], [`IntText`]).
#[inline]
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    &buf[i..]
}

/// The decimal text of an integer, on the stack (an intset's members, a
/// counter written back, an integral score).
#[derive(Clone, Copy)]
pub struct IntText {
    buf: [u8; 20],
    len: u8,
}

impl IntText {
    pub fn new(v: i64) -> IntText {
        let mut buf = [0u8; 20];
        let mut i = buf.len() - decimal(v.unsigned_abs(), &mut buf).len();
        if v < 0 {
            // i64::MIN has 19 digits: the sign fits.
            i -= 1;
            buf[i] = b'-';
        }
        let len = buf.len() - i;
        buf.copy_within(i.., 0);
        IntText {
            buf,
            len: len as u8,
        }
    }
}

impl std::ops::Deref for IntText {
    type Target = [u8];

    #[inline]
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len as usize]
    }
}

/// Room for any float's text from [`format_f64`] or [`float_sum_text`]:
/// the longest is the smallest subnormal in fixed notation (`-0.` and 324
/// digits).
pub const FLOAT_TEXT: usize = 400;

/// Redis prints floats in human form: fixed notation, shortest digits that
/// round-trip, no trailing zeros ("3" rather than "3.0"). Writes into `buf`
/// and returns the text (no allocation: `bulk_f64` and INCRBYFLOAT's
/// replies come here).
pub fn format_f64(v: f64, buf: &mut [u8; FLOAT_TEXT]) -> &[u8] {
    use std::io::{Cursor, Write};
    let mut w = Cursor::new(&mut buf[..]);
    // `buf` holds the longest text, so the writes cannot fail.
    let _ = if v.is_infinite() {
        w.write_all(if v > 0.0 { b"inf" } else { b"-inf" })
    } else if v == v.trunc() && v.abs() < 1e17 {
        w.write_all(&IntText::new(v as i64))
    } else {
        // Redis prints a long double with 17 digits, which hides the last
        // binary digits of sums like 0.1 + 0.2; 15 digits of an f64 do the
        // same.
        let mut e = Cursor::new([0u8; 32]);
        let _ = write!(e, "{v:.14e}");
        let len = e.position() as usize;
        let rounded = std::str::from_utf8(&e.get_ref()[..len])
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(v);
        write!(w, "{rounded}")
    };
    let len = w.position() as usize;
    &buf[..len]
}

/// The text INCRBYFLOAT/HINCRBYFLOAT store for `current + delta` (whose f64
/// value is `sum`), written into `buf`. Redis adds in long double and
/// prints 17 digits, which for decimal inputs gives the exact decimal sum;
/// we add decimal texts exactly when both are plain decimals, and fall back
/// to the f64 sum otherwise (exponents, very long numbers).
pub fn float_sum_text<'b>(
    current: Option<&[u8]>,
    delta: &[u8],
    sum: f64,
    buf: &'b mut [u8; FLOAT_TEXT],
) -> &'b [u8] {
    match add_decimals(current.unwrap_or(b"0"), delta, buf) {
        Some(len) => &buf[..len],
        None => format_f64(sum, buf),
    }
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

/// `a + b` exactly, when both are plain decimals, written into `buf`;
/// returns its length (`None`, and nothing written, otherwise).
fn add_decimals(a: &[u8], b: &[u8], buf: &mut [u8; FLOAT_TEXT]) -> Option<usize> {
    let ((ma, sa), (mb, sb)) = (parse_decimal(a)?, parse_decimal(b)?);
    let scale = sa.max(sb);
    let sum = ma
        .checked_mul(10i128.checked_pow(scale - sa)?)?
        .checked_add(mb.checked_mul(10i128.checked_pow(scale - sb)?)?)?;
    // |sum|'s digits, right-aligned, with at least one before the point
    // (an i128 has up to 39 digits; the scale is at most 30).
    let mut digits = [b'0'; 40];
    let mut at = digits.len();
    let mut v = sum.unsigned_abs();
    while v != 0 {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    let scale = scale as usize;
    let text = &digits[at.min(digits.len() - scale - 1)..];
    let (int, frac) = text.split_at(text.len() - scale);
    let frac = &frac[..frac.iter().rposition(|&d| d != b'0').map_or(0, |i| i + 1)];
    let mut len = 0;
    let mut put = |part: &[u8]| {
        buf[len..len + part.len()].copy_from_slice(part);
        len += part.len();
    };
    if sum < 0 {
        put(b"-");
    }
    put(int);
    if !frac.is_empty() {
        put(b".");
        put(frac);
    }
    Some(len)
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
        out.bulk_u64(0);
        out.bulk_u64(u64::MAX);
        assert_eq!(
            out,
            b"+OK\r\n-ERR bad  thing\r\n:-42\r\n$2\r\nhi\r\n$-1\r\n*2\r\n$4\r\n10.5\r\n$1\r\n3\r\n$3\r\n0.3\r\n\
              $1\r\n0\r\n$20\r\n18446744073709551615\r\n"
        );
    }

    #[test]
    fn integer_texts_on_the_stack() {
        for v in [0, 7, -7, 10, -10, i64::MAX, i64::MIN, 1 << 40] {
            assert_eq!(&*IntText::new(v), v.to_string().as_bytes());
        }
    }

    #[test]
    fn integer_extremes() {
        let mut out = Vec::new();
        push_i64(&mut out, i64::MIN);
        assert_eq!(out, i64::MIN.to_string().as_bytes());
        out.clear();
        push_i64(&mut out, i64::MAX);
        push_i64(&mut out, 0);
        push_i64(&mut out, -7);
        assert_eq!(out, format!("{}0-7", i64::MAX).as_bytes());
    }

    #[test]
    fn float_sums_are_exact_for_decimals() {
        let text = |cur: Option<&str>, d: &str| {
            let sum = cur.map_or(0.0, |c| c.parse::<f64>().unwrap()) + d.parse::<f64>().unwrap();
            let mut buf = [0; FLOAT_TEXT];
            String::from_utf8(
                float_sum_text(cur.map(str::as_bytes), d.as_bytes(), sum, &mut buf).to_vec(),
            )
            .unwrap()
        };
        assert_eq!(text(Some("0.1"), "0.2"), "0.3");
        assert_eq!(text(Some("1"), "-1.1"), "-0.1");
        assert_eq!(text(None, "0.1234567890123456"), "0.1234567890123456");
        assert_eq!(text(Some("10.50"), "0.1"), "10.6");
        assert_eq!(text(Some("5.0e3"), "200"), "5200");
        assert_eq!(text(Some("-3"), "3"), "0");
        assert_eq!(text(Some("0.5"), "-0.75"), "-0.25");
        assert_eq!(text(Some("0.001"), "0.002"), "0.003");
        assert_eq!(text(Some("100"), "0"), "100");
        assert_eq!(text(None, "-0.5"), "-0.5");
        assert_eq!(text(Some("-0.25"), "0.25"), "0");
        let thirty = "0.".to_string() + &"9".repeat(29);
        assert_eq!(
            text(Some(&thirty), &thirty),
            "1.".to_string() + &"9".repeat(28) + "8"
        );
    }

    /// The stack-buffer formatting gives what formatting through heap
    /// strings gave (`{:.14e}`, parsed back, then `{}`), up to the longest
    /// texts an f64 has.
    #[test]
    fn floats_format_in_human_form_on_the_stack() {
        let reference = |v: f64| -> String {
            if v.is_infinite() {
                (if v > 0.0 { "inf" } else { "-inf" }).into()
            } else if v == v.trunc() && v.abs() < 1e17 {
                (v as i64).to_string()
            } else {
                format!("{v:.14e}").parse::<f64>().unwrap().to_string()
            }
        };
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let extremes = [
            f64::MAX,
            f64::MIN,
            f64::MIN_POSITIVE,
            -f64::MIN_POSITIVE,
            5e-324,
            -5e-324,
            0.1 + 0.2,
            1e17,
            -1e300,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
        ];
        let random = (0..100_000).map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            f64::from_bits(rng)
        });
        let mut buf = [0; FLOAT_TEXT];
        for v in extremes.into_iter().chain(random).filter(|v| !v.is_nan()) {
            assert_eq!(format_f64(v, &mut buf), reference(v).as_bytes(), "{v:e}");
        }
        assert_eq!(format_f64(-5e-324, &mut buf).len(), 3 + 324 - 1 + 1);
    }
}
