//! Incremental RESP2 request parser.
//!
//! Requests are parsed in place: a parsed command is a list of byte ranges
//! into the connection's read buffer, so arguments are never copied until a
//! value has to be stored. When a frame is incomplete the parser reports how
//! many bytes it needs at least, so a large bulk arriving in many reads is
//! not re-scanned on every read.

use memchr::memchr;

/// Largest bulk string accepted, as Redis' `proto-max-bulk-len`.
pub const MAX_BULK_LEN: usize = 512 * 1024 * 1024;
/// Largest argument count accepted, as Redis 7 for an authenticated client
/// (INT_MAX). Nothing is allocated for the count itself: a command's bytes
/// are bounded by `client-query-buffer-limit`, and argument slots are
/// reserved only for arguments that can already be in the buffer.
pub const MAX_MULTIBULK_LEN: usize = i32::MAX as usize;
/// The shortest an argument can be on the wire: `$0\n\r\n`.
const MIN_ARG_BYTES: usize = 5;
/// Longest inline command (and longest `*`/`$` header line).
pub const MAX_INLINE_LEN: usize = 64 * 1024;
/// Largest argument count from a client that still has to authenticate
/// (Redis' fixed limit): a stranger cannot make us buffer much.
pub const UNAUTH_MAX_MULTIBULK_LEN: i64 = 10;
/// Largest bulk string from a client that still has to authenticate.
pub const UNAUTH_MAX_BULK_LEN: i64 = 16 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// One command occupying `consumed` bytes; its argument ranges were
    /// pushed into the caller's vector. May be zero arguments (empty line).
    Command { consumed: usize },
    /// The buffer holds only part of a command; do not call again until at
    /// least `need` bytes (counted from the same start) are buffered.
    Incomplete { need: usize },
}

/// A protocol violation: the text is the `-ERR` reply, after which the
/// connection must be closed.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtocolError(pub String);

/// Argument `i` of a command is `buf[start..end]`, absolute offsets into the
/// read buffer.
pub type ArgRange = (usize, usize);

/// Parse one command starting at `buf[0]`. Ranges are pushed relative to
/// `base` (the absolute offset of `buf[0]` in the read buffer).
pub fn parse_command(
    buf: &mut [u8],
    base: usize,
    args: &mut Vec<ArgRange>,
) -> Result<Parsed, ProtocolError> {
    parse_command_with(buf, base, args, false)
}

/// As [`parse_command`]; with `unauthenticated` (a password is set and the
/// client has not given it yet) a multibulk header above
/// [`UNAUTH_MAX_MULTIBULK_LEN`] arguments or a bulk above
/// [`UNAUTH_MAX_BULK_LEN`] bytes is a protocol error, as in Redis.
#[inline]
pub fn parse_command_with(
    buf: &mut [u8],
    base: usize,
    args: &mut Vec<ArgRange>,
    unauthenticated: bool,
) -> Result<Parsed, ProtocolError> {
    args.clear();
    if buf.is_empty() {
        return Ok(Parsed::Incomplete { need: 1 });
    }
    if buf[0] == b'*' {
        parse_multibulk(buf, base, args, unauthenticated)
    } else {
        parse_inline(buf, base, args)
    }
}

fn parse_multibulk(
    buf: &[u8],
    base: usize,
    args: &mut Vec<ArgRange>,
    unauthenticated: bool,
) -> Result<Parsed, ProtocolError> {
    let Some((count, mut pos)) = read_header_line(buf, 0, "mbulk count")? else {
        return Ok(Parsed::Incomplete {
            need: buf.len() + 1,
        });
    };
    if count > MAX_MULTIBULK_LEN as i64 {
        return Err(ProtocolError(
            "Protocol error: invalid multibulk length".into(),
        ));
    }
    if unauthenticated && count > UNAUTH_MAX_MULTIBULK_LEN {
        return Err(ProtocolError(
            "Protocol error: unauthenticated multibulk length".into(),
        ));
    }
    if count <= 0 {
        // `*0` and `*-1` are ignored by Redis: an empty command.
        return Ok(Parsed::Command { consumed: pos });
    }
    let count = count as usize;
    // Reserve only for what could plausibly be in the buffer: a hostile
    // `*2000000000` must not make us allocate before the bytes arrive.
    args.reserve(count.min(buf.len() / MIN_ARG_BYTES + 1));
    // When the frame is incomplete, ask to be called again only once the
    // buffer has doubled (or the frame's minimum size is there): a command
    // of millions of arguments arriving in many reads is then re-parsed
    // O(log n) times, not once per read. The hint never exceeds what the
    // frame needs at least, so the caller's buffer limit still applies to
    // the real frame, and never more than twice what has arrived, so a
    // large count alone makes nobody allocate.
    let incomplete = |exact: usize, remaining_args: usize| {
        let at_least = exact.saturating_add(remaining_args.saturating_mul(MIN_ARG_BYTES));
        Parsed::Incomplete {
            need: exact.max(at_least.min(buf.len().saturating_mul(2))),
        }
    };
    for i in 0..count {
        if pos >= buf.len() {
            return Ok(incomplete(pos + 1, count - i - 1));
        }
        if buf[pos] != b'$' {
            return Err(ProtocolError(format!(
                "Protocol error: expected '$', got '{}'",
                printable(buf[pos])
            )));
        }
        let Some((len, after)) = read_header_line(buf, pos, "bulk count")? else {
            return Ok(incomplete(buf.len() + 1, count - i - 1));
        };
        if len < 0 || len as usize > MAX_BULK_LEN {
            return Err(ProtocolError("Protocol error: invalid bulk length".into()));
        }
        if unauthenticated && len > UNAUTH_MAX_BULK_LEN {
            return Err(ProtocolError(
                "Protocol error: unauthenticated bulk length".into(),
            ));
        }
        let len = len as usize;
        let end = after + len;
        if buf.len() < end + 2 {
            return Ok(incomplete(end + 2, count - i - 1));
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Err(ProtocolError(
                "Protocol error: bulk string not terminated by CRLF".into(),
            ));
        }
        args.push((base + after, base + end));
        pos = end + 2;
    }
    Ok(Parsed::Command { consumed: pos })
}

/// Reads a `*N\r\n` or `$N\r\n` line at `start`; returns the number and the
/// offset after the CRLF, or None when the line is not complete yet.
fn read_header_line(
    buf: &[u8],
    start: usize,
    what: &str,
) -> Result<Option<(i64, usize)>, ProtocolError> {
    let window = &buf[start..buf.len().min(start + MAX_INLINE_LEN)];
    let Some(nl) = memchr(b'\n', window) else {
        if window.len() >= MAX_INLINE_LEN {
            return Err(ProtocolError(format!(
                "Protocol error: too big {what} string"
            )));
        }
        return Ok(None);
    };
    let line = &window[1..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let invalid = || {
        let kind = if what == "mbulk count" {
            "multibulk"
        } else {
            "bulk"
        };
        ProtocolError(format!("Protocol error: invalid {kind} length"))
    };
    let n = parse_i64(line).ok_or_else(invalid)?;
    Ok(Some((n, start + nl + 1)))
}

fn parse_inline(
    buf: &mut [u8],
    base: usize,
    args: &mut Vec<ArgRange>,
) -> Result<Parsed, ProtocolError> {
    let window = &buf[..buf.len().min(MAX_INLINE_LEN)];
    let Some(nl) = memchr(b'\n', window) else {
        if window.len() >= MAX_INLINE_LEN {
            return Err(ProtocolError(
                "Protocol error: too big inline request".into(),
            ));
        }
        return Ok(Parsed::Incomplete {
            need: buf.len() + 1,
        });
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    split_inline_args(&mut buf[..line_end], base, args)?;
    Ok(Parsed::Command { consumed: nl + 1 })
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Redis' `sdssplitargs` over a line that is not a request (a script's or
/// a library's `#!` shebang): its words, unescaped as in an inline command;
/// None for unbalanced quotes. As in C, the line ends at its first NUL.
pub fn split_words(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let end = memchr::memchr(0, line).unwrap_or(line.len());
    let mut buf = line[..end].to_vec();
    let mut ranges = Vec::new();
    split_inline_args(&mut buf, 0, &mut ranges).ok()?;
    Some(ranges.iter().map(|&(a, b)| buf[a..b].to_vec()).collect())
}

/// Splits an inline command line into arguments as Redis' `sdssplitargs`
/// does: whitespace separates, "double quotes" take `\n \r \t \b \a \\ \"`
/// and `\xHH` escapes, 'single quotes' take `\'`. Unescaping only ever
/// shortens the text, so it is done in place and arguments stay slices.
fn split_inline_args(
    line: &mut [u8],
    base: usize,
    args: &mut Vec<ArgRange>,
) -> Result<(), ProtocolError> {
    let unbalanced = || ProtocolError("Protocol error: unbalanced quotes in request".into());
    let (mut r, mut w) = (0, 0);
    while r < line.len() {
        if is_space(line[r]) {
            r += 1;
            continue;
        }
        let start = w;
        let (mut in_double, mut in_single) = (false, false);
        loop {
            if in_double || in_single {
                let Some(&c) = line.get(r) else {
                    return Err(unbalanced());
                };
                let quote = if in_double { b'"' } else { b'\'' };
                if c == quote {
                    // A closing quote must end the argument.
                    if line.get(r + 1).is_some_and(|&n| !is_space(n)) {
                        return Err(unbalanced());
                    }
                    r += 1;
                    break;
                }
                let (byte, used) = match (in_double, c, line.get(r + 1).copied()) {
                    (true, b'\\', Some(b'x'))
                        if line.len() > r + 3
                            && hex_value(line[r + 2]).is_some()
                            && hex_value(line[r + 3]).is_some() =>
                    {
                        (
                            hex_value(line[r + 2]).unwrap() * 16 + hex_value(line[r + 3]).unwrap(),
                            4,
                        )
                    }
                    (true, b'\\', Some(e)) => {
                        let byte = match e {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        };
                        (byte, 2)
                    }
                    (false, b'\\', Some(b'\'')) => (b'\'', 2),
                    _ => (c, 1),
                };
                line[w] = byte;
                w += 1;
                r += used;
            } else {
                match line.get(r) {
                    None => break,
                    Some(&c) if is_space(c) => break,
                    Some(b'"') => in_double = true,
                    Some(b'\'') => in_single = true,
                    Some(&c) => {
                        line[w] = c;
                        w += 1;
                    }
                }
                r += 1;
            }
        }
        args.push((base + start, base + w));
    }
    Ok(())
}

fn printable(b: u8) -> char {
    if b.is_ascii_graphic() { b as char } else { '?' }
}

/// Strict decimal i64 as Redis' `string2ll`: optional '-', no '+', no
/// spaces, no leading zeros except "0" itself.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(_) => (false, s),
        None => return None,
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || neg) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    if neg {
        if v > i64::MAX as u64 + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else {
        i64::try_from(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut input = input.to_vec();
        let input = &mut input[..];
        let mut out = Vec::new();
        let mut args = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            match parse_command(&mut input[pos..], pos, &mut args)? {
                Parsed::Command { consumed } => {
                    out.push(args.iter().map(|&(s, e)| input[s..e].to_vec()).collect());
                    pos += consumed;
                }
                Parsed::Incomplete { .. } => break,
            }
        }
        Ok(out)
    }

    #[test]
    fn pipelined_multibulk_and_inline() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n  set a  b \n").unwrap();
        let quoted = parse_all(b"SET \"a b\\x41\\n\" 'it\\'s' x\"y z\"\r\n").unwrap();
        assert_eq!(
            quoted[0],
            vec![
                b"SET".to_vec(),
                b"a bA\n".to_vec(),
                b"it's".to_vec(),
                b"xy z".to_vec()
            ]
        );
        let mut args = Vec::new();
        for bad in [&b"SET \"abc\n"[..], b"SET \"a\"b\n", b"SET 'x\n"] {
            assert!(
                parse_command(&mut bad.to_vec(), 0, &mut args).is_err(),
                "{bad:?}"
            );
        }
        assert_eq!(cmds.len(), 3);
        assert_eq!(cmds[0], vec![b"GET".to_vec(), b"k".to_vec()]);
        assert_eq!(cmds[1], vec![b"PING".to_vec()]);
        assert_eq!(cmds[2], vec![b"set".to_vec(), b"a".to_vec(), b"b".to_vec()]);
    }

    #[test]
    fn incomplete_reports_needed_bytes() {
        let mut args = Vec::new();
        let r = parse_command(&mut b"*1\r\n$10\r\nabc".to_vec(), 0, &mut args).unwrap();
        assert_eq!(r, Parsed::Incomplete { need: 21 });
        let r = parse_command(&mut b"*1\r\n$10\r\nabcdefghij\r\n".to_vec(), 0, &mut args).unwrap();
        assert_eq!(r, Parsed::Command { consumed: 21 });
    }

    #[test]
    fn huge_argument_count_allocates_nothing_up_front() {
        let mut args = Vec::new();
        let r = parse_command(&mut b"*2000000000\r\n".to_vec(), 0, &mut args).unwrap();
        let Parsed::Incomplete { need } = r else {
            panic!("{r:?}")
        };
        assert!(need <= 2 * 13, "need {need}");
        assert!(args.capacity() < 16, "reserved {}", args.capacity());
        // Part of the arguments arrived: still only what the bytes hold.
        let mut buf = b"*2000000000\r\n".to_vec();
        for _ in 0..1000 {
            buf.extend_from_slice(b"$1\r\nx\r\n");
        }
        let r = parse_command(&mut buf, 0, &mut args).unwrap();
        assert!(matches!(r, Parsed::Incomplete { need } if need <= 2 * buf.len()));
        assert!(args.capacity() <= buf.len() / MIN_ARG_BYTES + 1);
    }

    #[test]
    fn more_than_a_million_arguments() {
        let n = 1_500_000;
        let mut buf = format!("*{}\r\n$5\r\nLPUSH\r\n", n + 1).into_bytes();
        for _ in 0..n {
            buf.extend_from_slice(b"$1\r\nx\r\n");
        }
        let mut args = Vec::new();
        // Arriving in pieces: the hint lets the caller skip re-parsing
        // until the buffer has doubled.
        let mut have = 64;
        let mut parses = 0;
        loop {
            parses += 1;
            match parse_command(&mut buf[..have], 0, &mut args).unwrap() {
                Parsed::Incomplete { need } => have = need.min(buf.len()),
                Parsed::Command { consumed } => {
                    assert_eq!(consumed, buf.len());
                    break;
                }
            }
        }
        assert_eq!(args.len(), n + 1);
        assert!(parses < 40, "{parses} parses");
    }

    #[test]
    fn binary_safe_bulk() {
        let cmds = parse_all(b"*1\r\n$4\r\na\r\nb\r\n").unwrap();
        assert_eq!(cmds[0][0], b"a\r\nb".to_vec());
    }

    #[test]
    fn limits_and_garbage_are_errors() {
        let mut args = Vec::new();
        for bad in [
            &b"*2\r\n$-5\r\n"[..],
            b"*1\r\n$536870913\r\n",
            b"*2147483648\r\n",
            b"*1\r\n:5\r\n",
            b"*x\r\n",
            b"*1\r\n$3\r\nabcXY",
        ] {
            assert!(
                parse_command(&mut bad.to_vec(), 0, &mut args).is_err(),
                "{bad:?}"
            );
        }
        let mut long = vec![b'a'; MAX_INLINE_LEN + 1];
        assert!(parse_command(&mut long, 0, &mut args).is_err());
    }

    #[test]
    fn unauthenticated_limits() {
        let mut args = Vec::new();
        let mut parse = |input: &[u8], unauth: bool| {
            parse_command_with(&mut input.to_vec(), 0, &mut args, unauth)
        };
        // At the limits: accepted (or waiting for more bytes).
        let ten = b"*10\r\n$1\r\na\r\n";
        assert!(matches!(parse(ten, true), Ok(Parsed::Incomplete { .. })));
        assert!(matches!(
            parse(b"*1\r\n$16384\r\n", true),
            Ok(Parsed::Incomplete { .. })
        ));
        // Above them: errors at the header, before the bytes arrive.
        assert_eq!(
            parse(b"*11\r\n", true).unwrap_err().0,
            "Protocol error: unauthenticated multibulk length"
        );
        assert_eq!(
            parse(b"*2\r\n$4\r\nAUTH\r\n$16385\r\n", true)
                .unwrap_err()
                .0,
            "Protocol error: unauthenticated bulk length"
        );
        // The general limits still come first.
        assert_eq!(
            parse(b"*2147483648\r\n", true).unwrap_err().0,
            "Protocol error: invalid multibulk length"
        );
        // Authenticated (or no password): no such limits.
        assert!(parse(b"*11\r\n", false).is_ok());
        assert!(parse(b"*1\r\n$16385\r\n", false).is_ok());
        // Inline commands are bounded by MAX_INLINE_LEN alone, as in Redis.
        assert!(parse(b"AUTH a b c d e f g h i j k l\r\n", true).is_ok());
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b""), None);
        assert_eq!(parse_i64(b"-0"), None);
    }
}
