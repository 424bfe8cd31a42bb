//! The /metrics listener's request-head handling on arbitrary bytes: what
//! `collector::http`'s connection loop does with a buffer (httparse, then
//! `decide`), request after request while the connection is kept alive.
//!
//! Invariants: no panic; a complete head consumes what was buffered at
//! most; the answer is one of the statuses the server sends; a 405 always
//! closes; HEAD is only ever reported for GET/HEAD answers.

#![no_main]

use kora::collector::http::{MAX_REQUEST_BYTES, decide};
use libfuzzer_sys::fuzz_target;

/// Same header budget as the server's connection loop.
const MAX_HEADERS: usize = 32;

fuzz_target!(|data: &[u8]| {
    let mut buf = &data[..data.len().min(MAX_REQUEST_BYTES)];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(n)) => {
                assert!(n >= 1 && n <= buf.len());
                let wanted = decide(&req);
                assert!(matches!(wanted.status, 200 | 404 | 405), "{wanted:?}");
                if wanted.status == 405 {
                    assert!(!wanted.keep_alive && !wanted.head_only, "{wanted:?}");
                }
                if !wanted.keep_alive {
                    return;
                }
                buf = &buf[n..];
            }
            // The server reads more, or answers 431 when its buffer is full.
            Ok(httparse::Status::Partial) => return,
            // 400 and close.
            Err(_) => return,
        }
    }
});
