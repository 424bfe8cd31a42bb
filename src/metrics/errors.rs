//! Error replies counted by kind: the first word of the error line, as
//! Redis' INFO errorstats does (`errorstat_WRONGTYPE:count=3`).
//!
//! Kinds are a fixed table so that counting never allocates and memory
//! stays bounded whatever a reply starts with; a prefix outside the table
//! counts as `other`.

/// Error prefixes a Redis 7 server sends, in a fixed order. The last slot
/// is the catch-all.
pub const ERROR_KINDS: [&str; NUM_ERROR_KINDS] = [
    "ERR",
    "WRONGTYPE",
    "EXECABORT",
    "NOPROTO",
    "NOSCRIPT",
    "NOAUTH",
    "WRONGPASS",
    "NOPERM",
    "BUSY",
    "BUSYKEY",
    "LOADING",
    "OOM",
    "READONLY",
    "CROSSSLOT",
    "MOVED",
    // Cluster mode (issue 16).
    "ASK",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "other",
];
pub const NUM_ERROR_KINDS: usize = 19;
pub const ERROR_KIND_OTHER: u8 = NUM_ERROR_KINDS as u8 - 1;

/// The kind of an error reply (`-WRONGTYPE ...\r\n`), or None when the
/// reply is not an error.
#[inline]
pub fn error_kind(reply: &[u8]) -> Option<u8> {
    let line = reply.strip_prefix(b"-")?;
    let end = line
        .iter()
        .position(|&b| b == b' ' || b == b'\r')
        .unwrap_or(line.len());
    let word = &line[..end];
    let known = ERROR_KINDS[..NUM_ERROR_KINDS - 1]
        .iter()
        .position(|k| k.as_bytes() == word);
    Some(known.map_or(ERROR_KIND_OTHER, |i| i as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_first_word() {
        assert_eq!(error_kind(b"+OK\r\n"), None);
        assert_eq!(error_kind(b":1\r\n"), None);
        assert_eq!(error_kind(b"-ERR syntax error\r\n"), Some(0));
        let wrongtype = error_kind(b"-WRONGTYPE Operation against a key\r\n").unwrap();
        assert_eq!(ERROR_KINDS[wrongtype as usize], "WRONGTYPE");
        let abort = error_kind(b"-EXECABORT Transaction discarded\r\n").unwrap();
        assert_eq!(ERROR_KINDS[abort as usize], "EXECABORT");
        assert_eq!(
            error_kind(b"-NOPROTO\r\n").map(|k| ERROR_KINDS[k as usize]),
            Some("NOPROTO")
        );
        // Lower case or unknown words land in the bounded catch-all.
        assert_eq!(error_kind(b"-err x\r\n"), Some(ERROR_KIND_OTHER));
        assert_eq!(error_kind(b"-\r\n"), Some(ERROR_KIND_OTHER));
        assert_eq!(
            error_kind(b"-SOMETHINGNEW happened\r\n"),
            Some(ERROR_KIND_OTHER)
        );
    }
}
