//! RESTORE's payload decoder (`kora::store::rdb`) on hostile input: it must
//! refuse malformed payloads with an error, never panic, hang or allocate
//! beyond what the input can describe. Half of the inputs get a valid
//! footer (RDB version 10 and the right CRC64) so the fuzzer reaches the
//! body decoder instead of stopping at the checksum; a decoded value must
//! dump again and decode to the same value.

#![no_main]

use kora::store::rdb::{crc64, dump, restore_default};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let payload = if mode & 1 == 0 {
        body.to_vec()
    } else {
        let mut p = body.to_vec();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        p
    };
    if let Ok(value) = restore_default(&payload) {
        let mut again = Vec::new();
        dump(&value, &mut again);
        assert_eq!(restore_default(&again).expect("own dump restores"), value);
    }
});
