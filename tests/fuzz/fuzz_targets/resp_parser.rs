//! RESP request parser on arbitrary bytes (multibulk and inline), parsed
//! the way a connection does: command after command until the buffer runs
//! out or the protocol is violated.
//!
//! Invariants: no panic; every command consumes at least one byte and at
//! most what is buffered; its argument ranges are ordered and lie inside
//! the bytes it consumed; `Incomplete { need }` asks for more than is
//! buffered; and a command cut short anywhere reports `Incomplete` with a
//! `need` no larger than the whole command (a larger one would make the
//! server wait for bytes the client never sends).

#![no_main]

use kora::protocol::parser::{ArgRange, Parsed, parse_command};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let mut args: Vec<ArgRange> = Vec::new();
    let mut scratch_args: Vec<ArgRange> = Vec::new();
    let mut pos = 0;
    loop {
        let rest_len = buf.len() - pos;
        // Inline parsing unescapes in place: cut copies come first.
        let pristine = buf[pos..].to_vec();
        match parse_command(&mut buf[pos..], pos, &mut args) {
            Ok(Parsed::Command { consumed }) => {
                assert!(
                    consumed >= 1 && consumed <= rest_len,
                    "consumed {consumed} of {rest_len}"
                );
                let mut prev = pos;
                for &(start, end) in &args {
                    assert!(prev <= start && start <= end, "{args:?}");
                    assert!(end <= pos + consumed, "{args:?} past {}", pos + consumed);
                    prev = end;
                }
                // The same command arriving in two reads.
                for cut in [consumed - 1, consumed / 2, 1.min(consumed - 1)] {
                    let mut part = pristine[..cut].to_vec();
                    match parse_command(&mut part, 0, &mut scratch_args) {
                        Ok(Parsed::Incomplete { need }) => {
                            assert!(
                                need > cut && need <= consumed,
                                "cut {cut}: need {need} of {consumed}"
                            )
                        }
                        other => panic!("cut {cut} of {consumed}: {other:?}"),
                    }
                }
                pos += consumed;
            }
            Ok(Parsed::Incomplete { need }) => {
                assert!(need > rest_len, "need {need} with {rest_len} buffered");
                break;
            }
            Err(_) => break,
        }
    }
});
