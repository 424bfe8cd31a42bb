//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT, FCALL, FCALL_RO, FUNCTION:
//! Kora runs no scripts. Each answers a clear error, except what is
//! trivially true without scripting: FUNCTION FLUSH (there is nothing to
//! flush) and FUNCTION LIST (there are no libraries).

use super::Args;
use crate::protocol::reply::{Resp, err};

pub fn scripting(args: &Args, out: &mut Vec<u8>) {
    if args.is(0, "FUNCTION") {
        if args.is(1, "FLUSH") {
            return match args.len() {
                2 => out.ok(),
                3 if args.is(2, "ASYNC") || args.is(2, "SYNC") => out.ok(),
                _ => out.error(err::SYNTAX),
            };
        }
        if args.is(1, "LIST") {
            return function_list(args, out);
        }
    }
    out.error(&format!(
        "ERR '{}' is not supported: Kora does not run Lua scripts or functions \
         (EVAL, EVALSHA, SCRIPT, FUNCTION and FCALL are not available; only \
         FUNCTION LIST and FUNCTION FLUSH answer)",
        String::from_utf8_lossy(args.get(0)).to_lowercase()
    ));
}

/// FUNCTION LIST [LIBRARYNAME pattern] [WITHCODE]: checked like Redis, and
/// empty.
fn function_list(args: &Args, out: &mut Vec<u8>) {
    let mut i = 2;
    while i < args.len() {
        if args.is(i, "WITHCODE") {
            i += 1;
        } else if args.is(i, "LIBRARYNAME") && i + 1 < args.len() {
            i += 2;
        } else {
            return out.error(&format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(args.get(i))
            ));
        }
    }
    out.array(0);
}
