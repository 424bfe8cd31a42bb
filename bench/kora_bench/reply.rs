//! RESP2 reply parsing in place over a connection's read buffer: a frame is
//! a view into the buffer, so checking a reply allocates nothing.

use memchr::memchr;

/// Longest header line we accept before calling the stream garbage.
const MAX_LINE: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Simple(&'a [u8]),
    Error(&'a [u8]),
    Int(i64),
    Bulk(&'a [u8]),
    Nil,
    /// The element count; the elements follow as frames of their own.
    Array(usize),
    NilArray,
}

/// The bytes cannot be RESP2: the connection is out of sync and unusable.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed(pub &'static str);

/// The frame at the start of `buf` and its length in bytes, or `None` when
/// the buffer ends before the frame does.
#[inline]
pub fn frame(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, Malformed> {
    let Some(&kind) = buf.first() else {
        return Ok(None);
    };
    let window = &buf[..buf.len().min(MAX_LINE)];
    let Some(nl) = memchr(b'\n', window) else {
        if window.len() == MAX_LINE {
            return Err(Malformed("reply line longer than 64 KiB"));
        }
        return Ok(None);
    };
    if nl < 1 || buf[nl - 1] != b'\r' {
        return Err(Malformed("reply line not terminated by CRLF"));
    }
    let line = &buf[1..nl - 1];
    let after = nl + 1;
    let frame = match kind {
        b'+' => Frame::Simple(line),
        b'-' => Frame::Error(line),
        b':' => Frame::Int(parse_int(line)?),
        b'$' => {
            let len = parse_int(line)?;
            if len == -1 {
                return Ok(Some((Frame::Nil, after)));
            }
            let len = usize::try_from(len).map_err(|_| Malformed("negative bulk length"))?;
            let end = after + len;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(Malformed("bulk string not terminated by CRLF"));
            }
            return Ok(Some((Frame::Bulk(&buf[after..end]), end + 2)));
        }
        b'*' => match parse_int(line)? {
            -1 => Frame::NilArray,
            n => Frame::Array(usize::try_from(n).map_err(|_| Malformed("negative array length"))?),
        },
        _ => return Err(Malformed("unknown reply type byte")),
    };
    Ok(Some((frame, after)))
}

fn parse_int(line: &[u8]) -> Result<i64, Malformed> {
    let (negative, digits) = match line.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return Err(Malformed("bad integer"));
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(Malformed("bad integer"));
        }
        n = n
            .checked_mul(10)
            .and_then(|n| n.checked_add((d - b'0') as i64))
            .ok_or(Malformed("integer overflow"))?;
    }
    Ok(if negative { -n } else { n })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_reply_type() {
        assert_eq!(frame(b"+OK\r\n"), Ok(Some((Frame::Simple(b"OK"), 5))));
        assert_eq!(
            frame(b"-ERR no\r\n+OK\r\n"),
            Ok(Some((Frame::Error(b"ERR no"), 9)))
        );
        assert_eq!(frame(b":-42\r\n"), Ok(Some((Frame::Int(-42), 6))));
        assert_eq!(frame(b"$3\r\nabc\r\n"), Ok(Some((Frame::Bulk(b"abc"), 9))));
        assert_eq!(frame(b"$0\r\n\r\n"), Ok(Some((Frame::Bulk(b""), 6))));
        assert_eq!(frame(b"$-1\r\n"), Ok(Some((Frame::Nil, 5))));
        assert_eq!(frame(b"*2\r\n$1\r\na"), Ok(Some((Frame::Array(2), 4))));
        assert_eq!(frame(b"*-1\r\n"), Ok(Some((Frame::NilArray, 5))));
    }

    #[test]
    fn incomplete_frames_wait_for_more_bytes() {
        for partial in [
            &b""[..],
            b"+O",
            b"+OK\r",
            b"$3\r\nab",
            b"$3\r\nabc\r",
            b"$3",
            b":1",
        ] {
            assert_eq!(frame(partial), Ok(None), "{partial:?}");
        }
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [
            &b"?x\r\n"[..],
            b"+OK\n",
            b":12a\r\n",
            b":\r\n",
            b"$-2\r\n",
            b"$3\r\nabcde\r\n",
            b"*-5\r\n",
            b":99999999999999999999\r\n",
        ] {
            assert!(frame(bad).is_err(), "{bad:?}");
        }
        let long = vec![b'+'; MAX_LINE + 10];
        assert!(frame(&long).is_err());
    }
}
