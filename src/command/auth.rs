//! Access control: `requirepass` and `protected-mode` (their per-shard
//! runtime values), AUTH and the authentication part of HELLO, the NOAUTH
//! gate, protected mode's accept-time decision, and the cross-protocol
//! scripting guard (`POST` / `Host:` sent to the RESP port).
//!
//! Only one user exists, `default`, as in Redis without ACL rules: with no
//! password it accepts any password; with `requirepass` set it accepts only
//! that one. Texts are Redis 7.0.15's, byte for byte.
//!
//! The per-core copy of the settings is [`crate::coord::AuthSettings`];
//! AUTH changes the connection's [`ClientState`].

use std::net::IpAddr;
use std::time::Instant;

use super::Args;
use super::conn::{ClientState, Flow};
use crate::config::Config;
use crate::coord::Shard;
use crate::protocol::reply::{Resp, err};

/// The reply to any command but AUTH, HELLO and QUIT before a client with
/// a password to give has authenticated.
pub(crate) const NOAUTH: &str = "NOAUTH Authentication required.";
/// A wrong password, or a user other than `default`.
pub(crate) const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
/// `AUTH <password>` while the default user has no password.
pub(crate) const NO_PASSWORD_CONFIGURED: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";
/// HELLO without AUTH from a client that has not authenticated.
pub(crate) const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";
/// Sent (as a whole error line) to a non-loopback client when protected
/// mode is on and no password is set, before closing. Redis 7.0.15's text,
/// including its "Setup a an" (7.2 reworded item 4).
pub(crate) const DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";
/// Logged (at most once a minute per shard, as Redis rate-limits it) when a
/// client sends `POST` or `Host:` as a command.
pub(crate) const ATTACK_LOG: &str = "Possible SECURITY ATTACK detected. It looks like somebody is sending POST or Host: commands to Redis. This is likely due to an attacker attempting to use Cross Protocol Scripting to compromise your Redis instance. Connection aborted.";

/// Whether a new connection starts authenticated: yes when no password is
/// set at that moment. Like Redis, a later CONFIG SET requirepass does not
/// log out connections that are already open.
pub(crate) fn authenticated_at_connect(shard: &Shard) -> bool {
    !shard.auth().has_password()
}

/// Whether `client` must still authenticate (Redis' `authRequired`): the
/// gate for commands and for the parser's small unauthenticated limits.
#[inline]
pub(crate) fn auth_required(shard: &Shard, client: &ClientState) -> bool {
    !client.authenticated && shard.auth().has_password()
}

/// Commands an unauthenticated client may run: those flagged `no_auth`
/// in the table, as in Redis (AUTH, HELLO, QUIT).
pub(crate) fn allowed_before_auth(spec: &super::CommandSpec) -> bool {
    spec.flags.contains(&"no_auth")
}

/// `POST` and `Host:` as commands (table rows, as in Redis): the first
/// line and a header of an HTTP request a browser was tricked into sending
/// to the RESP port. Counts the attempt, logs it to stderr at most once a
/// minute per shard (so an attacker cannot flood the log), and closes the
/// connection without a reply.
#[cold]
pub(crate) fn security_warning(
    shard: &Shard,
    _: &mut ClientState,
    _: &Args,
    _: &mut Vec<u8>,
) -> Flow {
    shard.metrics().stats.security_attacks.add(1);
    let now = Instant::now();
    let last = shard.auth().last_attack_log.get();
    if last.is_none_or(|t| now.duration_since(t).as_secs() > 60) {
        shard.auth().last_attack_log.set(Some(now));
        eprintln!("kora: shard {}: {ATTACK_LOG}", shard.id());
    }
    Flow::Abort
}

/// Loopback as protected mode means it: 127.0.0.0/8, ::1, and IPv4-mapped
/// 127.0.0.0/8 (a dual-stack listener reports IPv4 peers that way).
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Protected mode's decision for a new connection: refuse it when the mode
/// is on, no password is set and the peer is not loopback. A peer whose
/// address cannot be read counts as not loopback, as in Redis.
pub(crate) fn protected_mode_denies(
    protected_mode: bool,
    has_password: bool,
    peer: Option<IpAddr>,
) -> bool {
    protected_mode && !has_password && !peer.is_some_and(is_loopback)
}

/// Compares a given password with the configured one touching every byte
/// of the longer of the two, so the time taken does not tell how many
/// leading bytes were right (it may tell the length).
pub(crate) fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let len = given.len().max(expected.len());
    let mut diff = (given.len() != expected.len()) as u8;
    for i in 0..len {
        let a = given.get(i).copied().unwrap_or(0);
        let b = expected.get(i).copied().unwrap_or(0);
        diff |= std::hint::black_box(a ^ b);
    }
    diff == 0
}

/// Checks `username`/`password` against the default user and marks the
/// client authenticated on success. A failure is counted (INFO
/// `acl_access_denied_auth`, `kora_auth_failures_total`) and leaves the
/// client's state as it was, as in Redis.
pub(crate) fn authenticate(
    shard: &Shard,
    client: &mut ClientState,
    username: &[u8],
    password: &[u8],
) -> bool {
    let ok = username == b"default"
        && shard.auth().with_password(|expected| match expected {
            // The default user without a password takes any password.
            None => true,
            Some(expected) => constant_time_eq(password, expected),
        });
    if ok {
        client.authenticated = true;
    } else {
        shard.metrics().stats.auth_failures.add(1);
    }
    ok
}

/// AUTH [username] password.
pub(crate) fn auth(shard: &Shard, client: &mut ClientState, args: &Args, out: &mut Vec<u8>) {
    let (username, password): (&[u8], &[u8]) = match args.len() {
        2 => {
            if !shard.auth().has_password() {
                return out.error(NO_PASSWORD_CONFIGURED);
            }
            (b"default", args.get(1))
        }
        3 => (args.get(1), args.get(2)),
        _ => return out.error(err::SYNTAX),
    };
    if authenticate(shard, client, username, password) {
        out.ok();
    } else {
        out.error(WRONGPASS);
    }
}

/// Warnings printed at startup about how exposed the server is.
pub fn startup_warnings(config: &Config) -> Vec<String> {
    let mut warnings = Vec::new();
    let non_loopback = |host: &str| {
        host != "localhost"
            && host
                .trim_matches(|c| c == '[' || c == ']')
                .parse::<IpAddr>()
                .map_or(true, |ip| !is_loopback(ip))
    };
    if non_loopback(&config.bind) && !config.protected_mode && config.requirepass.is_empty() {
        warnings.push(format!(
            "WARNING: listening on {} with protected mode off and no password: anyone who can reach this address can read, change and delete every key. Set requirepass or bind to a loopback address.",
            config.listen_addr()
        ));
    }
    if config.metrics_port != 0 && non_loopback(&config.metrics_bind) {
        warnings.push(format!(
            "WARNING: the /metrics endpoint on {} has no authentication and is reachable from other hosts.",
            config.metrics_addr()
        ));
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        for lo in [
            "127.0.0.1",
            "127.255.0.9",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:127.1.2.3",
        ] {
            assert!(is_loopback(lo.parse().unwrap()), "{lo}");
        }
        for far in [
            "10.0.0.1",
            "0.0.0.0",
            "192.168.1.1",
            "::",
            "::ffff:10.0.0.1",
            "fe80::1",
            "128.0.0.1",
        ] {
            assert!(!is_loopback(far.parse().unwrap()), "{far}");
        }
    }

    #[test]
    fn protected_mode_decision() {
        let far: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped_far: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lo6: IpAddr = "::1".parse().unwrap();
        // On, no password: only loopback gets in; an unknown peer does not.
        assert!(protected_mode_denies(true, false, Some(far)));
        assert!(protected_mode_denies(true, false, Some(mapped_far)));
        assert!(protected_mode_denies(true, false, None));
        assert!(!protected_mode_denies(true, false, Some(lo)));
        assert!(!protected_mode_denies(true, false, Some(lo6)));
        // A password, or the mode off, lets everyone connect (then AUTH).
        assert!(!protected_mode_denies(true, true, Some(far)));
        assert!(!protected_mode_denies(false, false, Some(far)));
        assert!(!protected_mode_denies(false, false, None));
    }

    #[test]
    fn password_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secreT", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secret\0"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn cross_protocol_names() {
        for name in [&b"POST"[..], b"post", b"pOsT", b"Host:", b"HOST:", b"host:"] {
            let row = super::super::lookup(name).map(|spec| spec.name);
            assert!(matches!(row, Some("post" | "host:")), "{name:?}");
        }
        for name in [&b"GET"[..], b"PING", b"host", b"posts", b"hosts:", b""] {
            let row = super::super::lookup(name).map(|spec| spec.name);
            assert!(!matches!(row, Some("post" | "host:")), "{name:?}");
        }
    }

    #[test]
    fn startup_warning_only_when_exposed() {
        let exposed = Config {
            bind: "0.0.0.0".into(),
            protected_mode: false,
            ..Config::default()
        };
        assert_eq!(startup_warnings(&exposed).len(), 1);
        let with_pass = Config {
            requirepass: "pw".into(),
            ..exposed.clone()
        };
        assert!(startup_warnings(&with_pass).is_empty());
        let protected = Config {
            protected_mode: true,
            ..exposed.clone()
        };
        assert!(startup_warnings(&protected).is_empty());
        // The defaults bind RESP and /metrics to loopback: no warning.
        let defaults = Config::default();
        assert_eq!(defaults.metrics_bind, "127.0.0.1");
        assert!(startup_warnings(&defaults).is_empty());
        let metrics_out = Config {
            metrics_bind: "::".into(),
            ..Config::default()
        };
        assert_eq!(startup_warnings(&metrics_out).len(), 1);
        let v6_lo = Config {
            bind: "::1".into(),
            protected_mode: false,
            ..Config::default()
        };
        assert!(startup_warnings(&v6_lo).is_empty());
    }
}
