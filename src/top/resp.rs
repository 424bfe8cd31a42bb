//! The little RESP2 client `kora top` needs: send one command, read one
//! reply, with limits so that a misbehaving peer cannot make it buffer
//! without bound.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const MAX_BULK_BYTES: usize = 16 * 1024 * 1024;
const MAX_ARRAY_LEN: usize = 1024 * 1024;
const MAX_DEPTH: usize = 8;
const MAX_LINE_BYTES: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

pub struct RespClient {
    reader: BufReader<TcpStream>,
}

impl RespClient {
    pub fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<RespClient> {
        let stream = super::scrape::connect(host, port, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(RespClient {
            reader: BufReader::new(stream),
        })
    }

    pub fn call(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            request.extend_from_slice(arg);
            request.extend_from_slice(b"\r\n");
        }
        self.reader.get_mut().write_all(&request)?;
        read_reply(&mut self.reader, 0)
    }
}

fn protocol_error(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("protocol error: {what}"),
    )
}

fn read_line(reader: &mut impl BufRead) -> io::Result<String> {
    let mut line = Vec::new();
    reader
        .by_ref()
        .take(MAX_LINE_BYTES)
        .read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(if line.is_empty() {
            io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed")
        } else {
            protocol_error("line not ended by CRLF or too long")
        });
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| protocol_error("non-UTF-8 line"))
}

pub fn read_reply(reader: &mut impl BufRead, depth: usize) -> io::Result<Reply> {
    if depth > MAX_DEPTH {
        return Err(protocol_error("replies nested too deep"));
    }
    let line = read_line(reader)?;
    let (kind, rest) = line.split_at_checked(1).unwrap_or(("", ""));
    let length = || -> io::Result<i64> {
        rest.parse::<i64>()
            .map_err(|_| protocol_error("bad length"))
    };
    match kind {
        "+" => Ok(Reply::Status(rest.to_string())),
        "-" => Ok(Reply::Error(rest.to_string())),
        ":" => Ok(Reply::Int(length()?)),
        "$" => match length()? {
            -1 => Ok(Reply::Bulk(None)),
            n if (0..=MAX_BULK_BYTES as i64).contains(&n) => {
                let mut data = vec![0u8; n as usize + 2];
                reader.read_exact(&mut data)?;
                if !data.ends_with(b"\r\n") {
                    return Err(protocol_error("bulk string not ended by CRLF"));
                }
                data.truncate(n as usize);
                Ok(Reply::Bulk(Some(data)))
            }
            _ => Err(protocol_error("bulk length out of range")),
        },
        "*" => match length()? {
            -1 => Ok(Reply::Array(None)),
            n if (0..=MAX_ARRAY_LEN as i64).contains(&n) => {
                // Grows as elements arrive: a huge announced length costs
                // nothing until the peer actually sends that much.
                let mut items = Vec::new();
                for _ in 0..n {
                    items.push(read_reply(reader, depth + 1)?);
                }
                Ok(Reply::Array(Some(items)))
            }
            _ => Err(protocol_error("array length out of range")),
        },
        _ => Err(protocol_error("unknown reply type")),
    }
}

/// Reads HOTKEYS' `[[key, count], …]` answer.
pub fn hotkeys_from_reply(reply: Reply) -> Result<Vec<(Vec<u8>, i64)>, String> {
    match reply {
        Reply::Array(Some(items)) => items
            .into_iter()
            .map(|item| match item {
                Reply::Array(Some(pair)) => match pair.as_slice() {
                    [Reply::Bulk(Some(key)), Reply::Int(n)] => Ok((key.clone(), *n)),
                    _ => Err("unexpected HOTKEYS entry".to_string()),
                },
                _ => Err("unexpected HOTKEYS entry".to_string()),
            })
            .collect(),
        Reply::Error(e) => Err(e),
        _ => Err("unexpected HOTKEYS reply".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &[u8]) -> io::Result<Reply> {
        read_reply(&mut io::Cursor::new(bytes.to_vec()), 0)
    }

    #[test]
    fn hotkeys_reply_round_trip() {
        let wire = b"*2\r\n*2\r\n$7\r\nhot:key\r\n:120\r\n*2\r\n$3\r\na\x00b\r\n:3\r\n";
        let keys = hotkeys_from_reply(parse(wire).unwrap()).unwrap();
        assert_eq!(
            keys,
            vec![(b"hot:key".to_vec(), 120), (b"a\x00b".to_vec(), 3)]
        );
        assert_eq!(
            hotkeys_from_reply(parse(b"-ERR unknown command 'HOTKEYS'\r\n").unwrap()),
            Err("ERR unknown command 'HOTKEYS'".to_string())
        );
    }

    #[test]
    fn malformed_or_oversized_replies_are_errors_not_allocations() {
        assert!(parse(b"$99999999999\r\n").is_err());
        assert!(parse(b"*99999999999\r\n").is_err());
        assert!(parse(b"$3\r\nabcXX").is_err());
        assert!(parse(b"?what\r\n").is_err());
        assert!(parse(b":12").is_err());
        assert!(parse(&b"*1\r\n".repeat(20)).is_err());
        // Announces a million elements, sends one: fails on EOF, having
        // allocated only for what arrived.
        assert!(parse(b"*1000000\r\n:1\r\n").is_err());
        assert_eq!(parse(b"$-1\r\n").unwrap(), Reply::Bulk(None));
    }
}
