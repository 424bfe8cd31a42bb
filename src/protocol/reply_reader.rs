//! Incremental RESP2 *reply* reader, for the few places where Kora is the
//! client of another server (MIGRATE's RESTOREs, the cluster's peer PINGs:
//! `crate::coord::peer`).
//!
//! It is fed whatever bytes arrived and consumes them as it goes: a reply
//! split over many reads is never re-scanned (a bulk string is taken once
//! it is whole; until then only its `$N` header is looked at again). A
//! peer cannot make it buffer or nest without bound: every reply is
//! checked against [`ReplyLimits`] (total bytes, nesting depth) before its
//! bytes are kept, and arrays reserve room only for elements that arrived.

use memchr::memchr;

use super::parser::{ProtocolError, parse_i64};

/// One reply, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`.
    Status(Vec<u8>),
    /// `-text` (without the `-`).
    Error(Vec<u8>),
    /// `:n`.
    Int(i64),
    /// `$n` bytes, or None for `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` replies, or None for `*-1`.
    Array(Option<Vec<Reply>>),
}

/// How much one reply may take.
#[derive(Debug, Clone, Copy)]
pub struct ReplyLimits {
    /// Wire bytes of one reply (headers included).
    pub max_bytes: usize,
    /// Arrays inside arrays: a top-level array is depth 1.
    pub max_depth: usize,
}

impl Default for ReplyLimits {
    /// 64 MiB and 16 levels: far above what RESTORE, PING, AUTH or SELECT
    /// answer, far below what could hurt a core.
    fn default() -> Self {
        ReplyLimits {
            max_bytes: 64 << 20,
            max_depth: 16,
        }
    }
}

/// Longest status, error, integer or header line.
const MAX_LINE: usize = 64 * 1024;

/// What [`ReplyReader::feed`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Fed {
    /// One whole reply; `consumed` bytes of the input were used (the rest
    /// belongs to the next reply).
    Reply { reply: Reply, consumed: usize },
    /// Not yet whole: `consumed` bytes were used (drop them and feed the
    /// rest again with more), and nothing changes until the unused part
    /// is at least `need` bytes long.
    More { consumed: usize, need: usize },
}

/// Reads one reply after another from a byte stream (see the module
/// docs). Between two replies it holds nothing.
#[derive(Debug)]
pub struct ReplyReader {
    limits: ReplyLimits,
    /// Arrays being filled, outermost first: their elements so far and how
    /// many are still to come.
    open: Vec<(Vec<Reply>, usize)>,
    /// Wire bytes of the current reply consumed so far.
    taken: usize,
}

impl ReplyReader {
    /// A reader enforcing `limits` on every reply.
    pub fn new(limits: ReplyLimits) -> ReplyReader {
        ReplyReader {
            limits,
            open: Vec::new(),
            taken: 0,
        }
    }

    /// Consumes what it can of `buf` (see [`Fed`]). An error means the
    /// stream is unusable: close the connection.
    pub fn feed(&mut self, buf: &[u8]) -> Result<Fed, ProtocolError> {
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            let window = &rest[..rest.len().min(MAX_LINE)];
            let Some(nl) = memchr(b'\n', window) else {
                if window.len() >= MAX_LINE {
                    return Err(bad("line too long"));
                }
                return Ok(Fed::More {
                    consumed: pos,
                    need: rest.len() + 1,
                });
            };
            if nl == 0 || rest[nl - 1] != b'\r' {
                return Err(bad("line not ended by CRLF"));
            }
            let line = &rest[1..nl - 1];
            let after = nl + 1;
            let number = || parse_i64(line).ok_or_else(|| bad("bad length or integer"));
            let (leaf, used) = match rest[0] {
                b'+' => (Reply::Status(line.to_vec()), after),
                b'-' => (Reply::Error(line.to_vec()), after),
                b':' => (Reply::Int(number()?), after),
                b'$' => match number()? {
                    -1 => (Reply::Bulk(None), after),
                    n if n < 0 => return Err(bad("bad bulk length")),
                    n => {
                        let n = n as usize;
                        self.check_size(n.saturating_add(after + 2))?;
                        if rest.len() < after + n + 2 {
                            return Ok(Fed::More {
                                consumed: pos,
                                need: after + n + 2,
                            });
                        }
                        if &rest[after + n..after + n + 2] != b"\r\n" {
                            return Err(bad("bulk string not ended by CRLF"));
                        }
                        (
                            Reply::Bulk(Some(rest[after..after + n].to_vec())),
                            after + n + 2,
                        )
                    }
                },
                b'*' => match number()? {
                    -1 => (Reply::Array(None), after),
                    n if n < 0 => return Err(bad("bad array length")),
                    0 => (Reply::Array(Some(Vec::new())), after),
                    n => {
                        // Each element takes at least 3 bytes (`:0\r\n` is 4).
                        self.check_size((n as usize).saturating_mul(3).saturating_add(after))?;
                        if self.open.len() >= self.limits.max_depth {
                            return Err(bad("replies nested too deep"));
                        }
                        self.taken += after;
                        pos += after;
                        // Room only for elements that could already be here.
                        let room = (n as usize).min((buf.len() - pos) / 3 + 1);
                        self.open.push((Vec::with_capacity(room), n as usize));
                        continue;
                    }
                },
                _ => return Err(bad("unknown reply type")),
            };
            self.check_size(used)?;
            self.taken += used;
            pos += used;
            // Close every array this element completes.
            let mut done = leaf;
            loop {
                let Some((items, left)) = self.open.last_mut() else {
                    self.taken = 0;
                    return Ok(Fed::Reply {
                        reply: done,
                        consumed: pos,
                    });
                };
                items.push(done);
                *left -= 1;
                if *left > 0 {
                    break;
                }
                let (items, _) = self.open.pop().expect("an open array");
                done = Reply::Array(Some(items));
            }
        }
    }

    /// Refuses a reply whose bytes so far plus `more` pass the limit.
    fn check_size(&self, more: usize) -> Result<(), ProtocolError> {
        if self.taken.saturating_add(more) > self.limits.max_bytes {
            return Err(bad("reply too large"));
        }
        Ok(())
    }
}

fn bad(what: &str) -> ProtocolError {
    ProtocolError(format!("Protocol error in reply: {what}"))
}

/// Appends `args` as one RESP2 command (an array of bulk strings).
pub fn encode_command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.push(b'*');
    super::reply::push_i64(out, args.len() as i64);
    out.extend_from_slice(b"\r\n");
    for a in args {
        out.push(b'$');
        super::reply::push_i64(out, a.len() as i64);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes as a socket would deliver
    /// them; returns every reply and whether bytes were left over.
    fn read_all(
        wire: &[u8],
        step: usize,
        limits: ReplyLimits,
    ) -> Result<Vec<Reply>, ProtocolError> {
        let mut r = ReplyReader::new(limits);
        let mut buf: Vec<u8> = Vec::new();
        let mut replies = Vec::new();
        let mut at = 0;
        while at < wire.len() || !buf.is_empty() {
            let end = (at + step).min(wire.len());
            buf.extend_from_slice(&wire[at..end]);
            at = end;
            loop {
                match r.feed(&buf)? {
                    Fed::Reply { reply, consumed } => {
                        replies.push(reply);
                        buf.drain(..consumed);
                    }
                    Fed::More { consumed, need } => {
                        buf.drain(..consumed);
                        assert!(need > buf.len());
                        break;
                    }
                }
            }
            if at == wire.len() && !buf.is_empty() {
                panic!("left over: {buf:?}");
            }
        }
        Ok(replies)
    }

    #[test]
    fn every_type_in_any_split() {
        let wire = b"+OK\r\n-BUSYKEY Target key name already exists.\r\n:-42\r\n$-1\r\n$5\r\nh\r\nlo\r\n*-1\r\n*0\r\n*3\r\n:1\r\n*2\r\n$0\r\n\r\n+x\r\n$1\r\n\n\r\n";
        let want = vec![
            Reply::Status(b"OK".to_vec()),
            Reply::Error(b"BUSYKEY Target key name already exists.".to_vec()),
            Reply::Int(-42),
            Reply::Bulk(None),
            Reply::Bulk(Some(b"h\r\nlo".to_vec())),
            Reply::Array(None),
            Reply::Array(Some(vec![])),
            Reply::Array(Some(vec![
                Reply::Int(1),
                Reply::Array(Some(vec![
                    Reply::Bulk(Some(vec![])),
                    Reply::Status(b"x".to_vec()),
                ])),
                Reply::Bulk(Some(b"\n".to_vec())),
            ])),
        ];
        for step in [1, 2, 3, 7, 1000] {
            assert_eq!(
                read_all(wire, step, ReplyLimits::default()).unwrap(),
                want,
                "{step}"
            );
        }
    }

    #[test]
    fn limits_and_garbage_are_errors() {
        let small = ReplyLimits {
            max_bytes: 100,
            max_depth: 2,
        };
        // A bulk announced over the limit is refused before its bytes come.
        assert!(read_all(b"$1000\r\n", 1, small).is_err());
        assert!(read_all(b"*1000\r\n", 1, small).is_err());
        assert!(read_all(b"*1\r\n*1\r\n*1\r\n:1\r\n", 1, small).is_err());
        assert!(read_all(b"*1\r\n*1\r\n:1\r\n", 1, small).is_ok());
        // Many small elements add up.
        let many = b"*30\r\n"
            .iter()
            .chain(b":1\r\n".repeat(30).iter())
            .copied()
            .collect::<Vec<_>>();
        assert!(read_all(&many, 5, small).is_err());
        for junk in [
            &b"?x\r\n"[..],
            b"+OK\n",
            b":12a\r\n",
            b"$-2\r\n",
            b"$1\r\nab\r\n",
        ] {
            assert!(
                read_all(junk, 1, ReplyLimits::default()).is_err(),
                "{junk:?}"
            );
        }
        let long = vec![b'+'; MAX_LINE + 1];
        assert!(
            ReplyReader::new(ReplyLimits::default())
                .feed(&long)
                .is_err()
        );
    }

    #[test]
    fn commands_encode_as_bulk_arrays() {
        let mut out = Vec::new();
        encode_command(&mut out, &[b"SET", b"k", b""]);
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n");
    }
}
