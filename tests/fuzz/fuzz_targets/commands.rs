//! Random command sequences against one shard's `Db` with the real command
//! table: every shard-side handler (`Kind::Keyed`, and `Kind::Multi`'s
//! `whole`, which is what runs when all keys live on one shard), called the
//! way the connection calls it (arity checked first, key/value pairs checked).
//! Connection-level commands (`Kind::Conn`) need a running server and are
//! left out.
//!
//! Input: per command, one byte picks the command, one the argument count,
//! and each argument is a key, a number, an option word or raw bytes from
//! small vocabularies, so sequences reach deep states quickly.
//!
//! Invariants after every command: no panic; exactly one reply, valid RESP2;
//! memory accounting equal to a full recount; no empty aggregate left
//! under a key.

#![no_main]

use std::rc::Rc;
use std::sync::OnceLock;

use kora::command::{Args, CommandSpec, Kind, table};
use kora::metrics::{HotKeys, ShardStats};
use kora::store::{Db, Value};
use libfuzzer_sys::fuzz_target;

const KEYS: &[&[u8]] = &[b"k", b"k2", b"h", b"s", b"l", b"{k}x", b""];

const NUMBERS: &[&[u8]] = &[
    b"0",
    b"1",
    b"2",
    b"3",
    b"-1",
    b"-2",
    b"10",
    b"-100",
    b"100",
    b"1000",
    b"3.5",
    b"-0.5",
    b"1e3",
    b"inf",
    b"-inf",
    b"+inf",
    b"nan",
    b"9223372036854775807",
    b"-9223372036854775808",
    b"9223372036854775808",
    b"4611686018427387904",
    b"-4611686018427387904",
    b"18446744073709551616",
    b"1.7976931348623157e308",
    b"00",
    b" 1",
    b"",
];

const WORDS: &[&[u8]] = &[
    b"EX",
    b"PX",
    b"EXAT",
    b"PXAT",
    b"NX",
    b"XX",
    b"GT",
    b"LT",
    b"KEEPTTL",
    b"GET",
    b"PERSIST",
    b"MATCH",
    b"COUNT",
    b"TYPE",
    b"NOVALUES",
    b"WITHVALUES",
    b"BEFORE",
    b"AFTER",
    b"LEFT",
    b"RIGHT",
    b"RANK",
    b"MAXLEN",
    b"LIMIT",
    b"WITHSCORES",
    b"REPLACE",
    b"ABSTTL",
    b"IDLETIME",
    b"FREQ",
    b"string",
    b"list",
    b"hash",
    b"set",
    b"*",
    b"k*",
    b"[a-z]",
    b"?",
    b"a*a*a*b",
    b"x",
    b"a",
    b"b",
];

/// Reads the fuzz input a byte at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn pick<'v>(&mut self, from: &[&'v [u8]]) -> &'v [u8] {
        from[usize::from(self.byte().unwrap_or(0)) % from.len()]
    }

    fn arg(&mut self, first: bool) -> Vec<u8> {
        let kind = self.byte().unwrap_or(0);
        // The first argument is the key of most commands: mostly a key.
        match if first && kind & 0x80 != 0 {
            0
        } else {
            kind % 4
        } {
            0 => self.pick(KEYS).to_vec(),
            1 => self.pick(NUMBERS).to_vec(),
            2 => self.pick(WORDS).to_vec(),
            _ => {
                let len = usize::from(self.byte().unwrap_or(0) % 12);
                (0..len).map(|_| self.byte().unwrap_or(0)).collect()
            }
        }
    }
}

fn specs() -> &'static [&'static CommandSpec] {
    static SPECS: OnceLock<Vec<&'static CommandSpec>> = OnceLock::new();
    SPECS.get_or_init(|| {
        table::all()
            .iter()
            .filter(|s| !matches!(s.kind, Kind::Conn(_)))
            .collect()
    })
}

/// Commands Redis also allows to allocate hundreds of megabytes (a 512 MB
/// SETRANGE, SRANDMEMBER -1000000000): legal, but not what this target
/// looks for, and libFuzzer would report them as out-of-memory.
fn allocates_huge(name: &str, argv: &[Vec<u8>]) -> bool {
    let int = |i: usize| {
        argv.get(i)
            .and_then(|a| std::str::from_utf8(a).ok()?.parse::<i64>().ok())
    };
    match name {
        "setrange" => int(2).is_some_and(|offset| offset > 1 << 20),
        "srandmember" | "hrandfield" => int(2).is_some_and(|n| n < -10_000 && n != i64::MIN),
        _ => false,
    }
}

/// A RESP2 line at `pos` (without its CRLF) and the offset after it.
fn line(b: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = b.get(pos..)?;
    let cr = rest.iter().position(|&c| c == b'\r' || c == b'\n')?;
    (rest.get(cr..cr + 2)? == b"\r\n").then(|| (&rest[..cr], pos + cr + 2))
}

/// A decimal integer as Redis writes one: no sign but `-`, no leading zero.
fn int(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && text != b"-0";
    if !canonical {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// One RESP2 value at `pos`; returns the offset after it.
fn value(b: &[u8], pos: usize) -> Option<usize> {
    let kind = *b.get(pos)?;
    let (text, next) = line(b, pos + 1)?;
    match kind {
        b'+' => Some(next),
        b'-' => (!text.is_empty()).then_some(next),
        b':' => int(text).map(|_| next),
        b'$' => match int(text)? {
            -1 => Some(next),
            n if n >= 0 => {
                let end = next.checked_add(n as usize)?;
                (b.get(end..end + 2)? == b"\r\n").then_some(end + 2)
            }
            _ => None,
        },
        b'*' => match int(text)? {
            -1 => Some(next),
            n if n >= 0 => (0..n).try_fold(next, |at, _| value(b, at)),
            _ => None,
        },
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let specs = specs();
    let mut db = Db::new(Rc::new(ShardStats::default()), HotKeys::new(8, true), 7);
    let mut input = Input(data);
    let mut buf = Vec::new();
    let mut ranges = Vec::new();
    let mut out = Vec::new();
    for _ in 0..32 {
        let Some(pick) = input.byte() else { break };
        let spec = specs[usize::from(pick) % specs.len()];
        let nargs = usize::from(input.byte().unwrap_or(0) % 7);
        let mut argv = vec![spec.name.as_bytes().to_vec()];
        for i in 0..nargs {
            argv.push(input.arg(i == 0));
        }
        if !spec.arity_ok(argv.len()) || allocates_huge(spec.name, &argv) {
            continue;
        }
        let handler = match spec.kind {
            Kind::Keyed(handler) => handler,
            // MSET/MSETNX-style rows take keys and values in pairs, as the
            // connection checks before running `whole`.
            Kind::Multi { whole, .. }
                if spec.key_step <= 1
                    || (argv.len() - 1).is_multiple_of(spec.key_step as usize) =>
            {
                whole
            }
            _ => continue,
        };
        buf.clear();
        ranges.clear();
        for a in &argv {
            ranges.push((buf.len(), buf.len() + a.len()));
            buf.extend_from_slice(a);
        }
        out.clear();
        handler(&mut db, &Args::new(&buf, &ranges), &mut out);
        let shown = || {
            format!(
                "{:?}",
                argv.iter()
                    .map(|a| String::from_utf8_lossy(a))
                    .collect::<Vec<_>>()
            )
        };
        assert_eq!(
            value(&out, 0),
            Some(out.len()),
            "{}: not exactly one RESP2 reply: {:?}",
            shown(),
            String::from_utf8_lossy(&out)
        );
        assert_eq!(db.mem_used(), db.mem_recomputed(), "{}", shown());
        for (key, value) in db.iter() {
            let empty = match value {
                Value::List(l) => l.is_empty(),
                Value::Hash(h) => h.is_empty(),
                Value::Set(s) => s.is_empty(),
                Value::ZSet(z) => z.is_empty(),
                Value::Str(_) => false,
            };
            assert!(
                !empty,
                "empty aggregate left under {key:?} after {}",
                shown()
            );
        }
    }
});
