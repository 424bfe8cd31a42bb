//! The O(pattern × subject) glob matcher against the recursive transcription
//! of Redis 7.0's `stringmatchlen`, case-sensitive and nocase.
//!
//! Input: first byte picks the split between pattern and subject. The
//! reference takes time exponential in the number of stars, so inputs are
//! bounded (40-byte pattern with at most 4 star runs, 20-byte subject).

#![no_main]

use kora::store::glob::{glob_match, glob_match_nocase, glob_match_reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(rest.len());
    let (pattern, subject) = rest.split_at(split);
    let pattern = &pattern[..pattern.len().min(40)];
    let subject = &subject[..subject.len().min(20)];
    let star_runs = pattern
        .iter()
        .enumerate()
        .filter(|&(i, &c)| c == b'*' && (i == 0 || pattern[i - 1] != b'*'))
        .count();
    if star_runs > 4 {
        return;
    }
    assert_eq!(
        glob_match(pattern, subject),
        glob_match_reference(pattern, subject, false),
        "{pattern:?} ~ {subject:?}"
    );
    assert_eq!(
        glob_match_nocase(pattern, subject),
        glob_match_reference(pattern, subject, true),
        "nocase {pattern:?} ~ {subject:?}"
    );
});
