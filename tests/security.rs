//! Access control against the real server: the cross-protocol (POST /
//! Host:) guard, requirepass with AUTH / HELLO AUTH / NOAUTH, the
//! unauthenticated protocol limits, the failed-auth counters, and protected
//! mode (loopback always; a non-loopback client from a private network
//! namespace when the test runs as root with iproute2).

mod common;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Server, e, free_port, info_field, q, raw_exchange};

const NOAUTH: &str = "-NOAUTH Authentication required.\r\n";
const WRONGPASS: &str = "-WRONGPASS invalid username-password pair or user is disabled.\r\n";
const HELLO_NOAUTH: &str = "-NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time\r\n";
const NO_PASSWORD: &str = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?";

/// Sends `bytes`, then reads until the server closes (true) or stays
/// silent for a while (false); returns what arrived and whether it closed.
fn send_and_wait_close(stream: &mut TcpStream, bytes: &[u8]) -> (Vec<u8>, bool) {
    stream.write_all(bytes).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // Closing with unread input makes the kernel reset the
            // connection: closed as well.
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

/// A metric's value from the /metrics text.
fn metric(s: &Server, name: &str) -> u64 {
    let body = s.metrics();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} missing from /metrics"))
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn http_post_to_the_resp_port_runs_nothing_and_closes() {
    let s = Server::start(2);
    // What a browser sends for a form posted to http://127.0.0.1:port/.
    let browser = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n\r\nSET pwned yes\r\n";
    let mut raw = s.raw();
    let (reply, closed) = send_and_wait_close(&mut raw, browser);
    assert!(closed, "the connection must be closed");
    assert!(reply.is_empty(), "no reply: {:?}", text(reply));

    // Anywhere in a pipeline, any case, inline or multibulk; the earlier
    // commands ran but, as in Redis, none of their replies is sent.
    let cases: [&[u8]; 4] = [
        b"SET before 1\r\nhost: evil\r\nSET pwned yes\r\n",
        b"*3\r\n$3\r\nSET\r\n$6\r\nbefore\r\n$1\r\n1\r\n*1\r\n$4\r\npOsT\r\n*3\r\n$3\r\nSET\r\n$5\r\npwned\r\n$3\r\nyes\r\n",
        b"MULTI\r\nSET pwned yes\r\nHOST: x\r\nEXEC\r\n",
        b"PING\r\nPost /x HTTP/1.0\r\nSET pwned yes\r\n",
    ];
    for case in cases {
        let mut raw = s.raw();
        let (reply, closed) = send_and_wait_close(&mut raw, case);
        assert!(closed, "{:?}", String::from_utf8_lossy(case));
        assert!(
            reply.is_empty(),
            "{:?}: {:?}",
            String::from_utf8_lossy(case),
            text(reply)
        );
    }
    let mut c = s.client();
    let exists: i64 = q(&mut c, &["EXISTS", "pwned"]);
    assert_eq!(exists, 0, "the request body must not run");
    let before: String = q(&mut c, &["GET", "before"]);
    assert_eq!(before, "1", "commands before the attack line still ran");
    assert_eq!(metric(&s, "kora_security_attacks_total"), 5);
    // The server is fine afterwards.
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
}

#[test]
fn requirepass_at_runtime_auth_hello_and_noauth() {
    let s = Server::start(2);
    let mut before = s.client();
    assert_eq!(
        e(&mut before, &["AUTH", "x"]),
        NO_PASSWORD,
        "AUTH without a configured password"
    );
    // With no password the default user takes any password.
    assert_eq!(
        q::<String>(&mut before, &["AUTH", "default", "anything"]),
        "OK"
    );
    let mut raw = s.raw();
    assert_eq!(
        text(raw_exchange(
            &mut raw,
            b"AUTH nobody x\r\nHELLO 2 AUTH nobody x\r\n"
        )),
        format!("{WRONGPASS}{WRONGPASS}")
    );
    assert_eq!(metric(&s, "kora_auth_failures_total"), 2);

    assert_eq!(
        q::<String>(&mut before, &["CONFIG", "SET", "requirepass", "s3cret"]),
        "OK"
    );
    let got: Vec<String> = q(&mut before, &["CONFIG", "GET", "requirepass"]);
    assert_eq!(got, ["requirepass", "s3cret"]);
    // Connections open before stay authenticated, as in Redis.
    assert_eq!(q::<String>(&mut before, &["PING"]), "PONG");

    // New connections, on every core (client ids are congruent to their
    // core), must authenticate.
    let mut cores = HashSet::new();
    let mut probes = 0u64;
    while probes < 8 || cores.len() < 2 {
        if probes == 64 {
            break; // SO_REUSEPORT put them all on one core; still checked
        }
        probes += 1;
        let mut raw = s.raw();
        let reply = text(raw_exchange(
            &mut raw,
            b"PING\r\nSET k v\r\nAUTH s3cre\r\nAUTH s3cret\r\nCLIENT ID\r\n",
        ));
        let id_line = reply
            .strip_prefix(&format!("{NOAUTH}{NOAUTH}{WRONGPASS}+OK\r\n:"))
            .unwrap_or_else(|| panic!("{reply:?}"));
        let id: u64 = id_line.trim_end().parse().unwrap();
        cores.insert(id % 2);
    }
    eprintln!("connections landed on cores {cores:?}");

    let mut raw = s.raw();
    let reply = text(raw_exchange(
        &mut raw,
        // Unknown commands and wrong arity are told apart before NOAUTH, as
        // in Redis; QUIT is allowed.
        b"NOSUCH\r\nGET\r\nGET k\r\nMULTI\r\nEXEC\r\nHELLO\r\nHELLO 2 SETNAME n\r\nHELLO 3\r\nAUTH a b c\r\nAUTH default wrong\r\nAUTH other s3cret\r\nHELLO 2 AUTH default wrong\r\n",
    ));
    assert_eq!(
        reply,
        format!(
            "-ERR unknown command 'NOSUCH', with args beginning with: \r\n-ERR wrong number of arguments for 'get' command\r\n{NOAUTH}{NOAUTH}{NOAUTH}{HELLO_NOAUTH}{HELLO_NOAUTH}-NOPROTO sorry, this protocol version is not supported.\r\n-ERR syntax error\r\n{WRONGPASS}{WRONGPASS}{WRONGPASS}"
        )
    );
    let reply = text(raw_exchange(
        &mut raw,
        b"HELLO 2 AUTH default s3cret SETNAME named\r\nCLIENT GETNAME\r\nSET k v\r\nGET k\r\n",
    ));
    assert!(reply.starts_with("*14\r\n$6\r\nserver\r\n"), "{reply:?}");
    assert!(
        reply.ends_with("$5\r\nnamed\r\n+OK\r\n$1\r\nv\r\n"),
        "{reply:?}"
    );
    let (reply, closed) = send_and_wait_close(&mut s.raw(), b"QUIT\r\n");
    assert_eq!((text(reply).as_str(), closed), ("+OK\r\n", true));

    // A client library with the password in the URL.
    let mut authed = redis::Client::open(format!("redis://:s3cret@127.0.0.1:{}/", s.port))
        .unwrap()
        .get_connection()
        .unwrap();
    assert_eq!(q::<String>(&mut authed, &["GET", "k"]), "v");

    // 2 before the password, 1 per probe connection, 3 on the last raw
    // connection (AUTH with three arguments is a syntax error, not a
    // failed authentication).
    let failures = metric(&s, "kora_auth_failures_total");
    assert_eq!(failures, 2 + probes + 3);
    let info: u64 = info_field(&mut authed, "stats", "acl_access_denied_auth")
        .parse()
        .unwrap();
    assert_eq!(info, failures, "INFO and /metrics agree");

    // Removing the password lets new connections in without AUTH.
    assert_eq!(
        q::<String>(&mut authed, &["CONFIG", "SET", "requirepass", ""]),
        "OK"
    );
    let mut raw = s.raw();
    assert_eq!(
        text(raw_exchange(&mut raw, b"GET k\r\nAUTH x\r\n")),
        format!("$1\r\nv\r\n-{NO_PASSWORD}\r\n")
    );
}

#[test]
fn exact_failure_count_and_no_auth_commands_counted() {
    let s = Server::start(1);
    let mut c = s.client();
    assert_eq!(
        q::<String>(&mut c, &["CONFIG", "SET", "requirepass", "pw"]),
        "OK"
    );
    let mut raw = s.raw();
    raw_exchange(
        &mut raw,
        b"AUTH a\r\nAUTH default b\r\nHELLO 2 AUTH default c\r\nAUTH pw\r\nAUTH bad\r\n",
    );
    assert_eq!(metric(&s, "kora_auth_failures_total"), 4);
    assert_eq!(info_field(&mut c, "stats", "acl_access_denied_auth"), "4");
    let errors: String = q(&mut c, &["INFO", "errorstats"]);
    assert!(errors.contains("errorstat_WRONGPASS:count=4"), "{errors}");
}

#[test]
fn unauthenticated_clients_get_small_protocol_limits() {
    let s = Server::start(2);
    let mut c = s.client();
    assert_eq!(
        q::<String>(&mut c, &["CONFIG", "SET", "requirepass", "pw"]),
        "OK"
    );
    let (reply, closed) = send_and_wait_close(&mut s.raw(), b"*11\r\n");
    assert_eq!(
        (text(reply).as_str(), closed),
        (
            "-ERR Protocol error: unauthenticated multibulk length\r\n",
            true
        )
    );
    let (reply, closed) = send_and_wait_close(&mut s.raw(), b"*2\r\n$4\r\nAUTH\r\n$16385\r\n");
    assert_eq!(
        (text(reply).as_str(), closed),
        ("-ERR Protocol error: unauthenticated bulk length\r\n", true)
    );
    // At the limits, and after AUTH, larger commands are fine.
    let mut raw = s.raw();
    let mut big =
        b"*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*3\r\n$3\r\nSET\r\n$1\r\nb\r\n$20000\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'x', 20000));
    big.extend_from_slice(b"\r\n*11\r\n$4\r\nMGET\r\n");
    for _ in 0..10 {
        big.extend_from_slice(b"$1\r\nz\r\n");
    }
    let reply = text(raw_exchange(&mut raw, &big));
    assert_eq!(
        reply,
        format!("+OK\r\n+OK\r\n*10\r\n{}", "$-1\r\n".repeat(10))
    );
    let mut ten = b"*10\r\n$4\r\nMGET\r\n".to_vec();
    for _ in 0..9 {
        ten.extend_from_slice(b"$1\r\nz\r\n");
    }
    let reply = text(raw_exchange(&mut s.raw(), &ten));
    assert_eq!(reply, NOAUTH);
}

#[test]
fn protected_mode_config_and_loopback_clients() {
    let s = Server::start(2);
    let mut c = s.client();
    // Default on, no password: loopback clients still get in.
    let got: Vec<String> = q(&mut c, &["CONFIG", "GET", "protected-mode"]);
    assert_eq!(got, ["protected-mode", "yes"]);
    assert_eq!(q::<String>(&mut c, &["PING"]), "PONG");
    assert_eq!(
        e(&mut c, &["CONFIG", "SET", "protected-mode", "maybe"]),
        "ERR CONFIG SET failed (possibly related to argument 'protected-mode') - argument must be 'yes' or 'no'"
    );
    assert_eq!(
        q::<String>(&mut c, &["CONFIG", "SET", "protected-mode", "NO"]),
        "OK"
    );
    let got: Vec<String> = q(&mut c, &["CONFIG", "GET", "protected-mode"]);
    assert_eq!(got, ["protected-mode", "no"]);
    assert_eq!(metric(&s, "kora_protected_mode_denied_total"), 0);
}

/// A kora process started with flags the shared harness does not pass
/// (its own --bind, or a password its PING probe would not give).
struct Kora {
    child: Child,
    port: u16,
}

impl Kora {
    /// Starts kora (two shards) on `bind` and waits until a connection
    /// there gets any answer.
    fn start(bind: &str, extra: &[&str]) -> Kora {
        let port = free_port();
        let metrics_port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_kora"))
            .args(["--bind", bind, "--port", &port.to_string()])
            .args([
                "--metrics-port",
                &metrics_port.to_string(),
                "--workers",
                "2",
            ])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start kora");
        let mut k = Kora { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            assert!(
                k.child.try_wait().unwrap().is_none(),
                "kora exited at startup"
            );
            if let Ok(mut s) = TcpStream::connect((bind, port)) {
                // Any answer (PONG, NOAUTH, DENIED) means it is serving.
                if !raw_exchange(&mut s, b"PING\r\n").is_empty() {
                    return k;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("kora did not start on {bind}");
    }
}

impl Drop for Kora {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn requirepass_and_protected_mode_from_flags_and_file() {
    let k = Kora::start(
        "127.0.0.1",
        &["--requirepass", "fl4g", "--protected-mode", "no"],
    );
    let mut raw = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    assert_eq!(
        text(raw_exchange(
            &mut raw,
            b"PING\r\nAUTH fl4g\r\nCONFIG GET protected-mode\r\n"
        )),
        format!("{NOAUTH}+OK\r\n*2\r\n$14\r\nprotected-mode\r\n$2\r\nno\r\n")
    );
    drop(k);

    let path = std::env::temp_dir().join(format!("kora-security-{}.toml", std::process::id()));
    std::fs::write(&path, "requirepass = \"f1le\"\nprotected_mode = true\n").unwrap();
    let k = Kora::start("127.0.0.1", &["--config", path.to_str().unwrap()]);
    let mut raw = TcpStream::connect(("127.0.0.1", k.port)).unwrap();
    assert_eq!(
        text(raw_exchange(
            &mut raw,
            b"GET x\r\nAUTH default f1le\r\nCONFIG GET requirepass\r\n"
        )),
        format!("{NOAUTH}+OK\r\n*2\r\n$11\r\nrequirepass\r\n$4\r\nf1le\r\n")
    );
    let _ = std::fs::remove_file(&path);
}

/// A network namespace joined to this one by a veth pair with private
/// addresses; removed (with the pair) when dropped.
struct Netns {
    name: String,
    host_if: String,
    host_ip: String,
    peer_ip: String,
}

impl Netns {
    fn ip(args: &[&str]) -> bool {
        Command::new("ip")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Err (with the reason) when this machine cannot do it.
    fn create() -> Result<Netns, String> {
        if unsafe { libc::geteuid() } != 0 {
            return Err("not root".into());
        }
        if !Netns::ip(&["-V"]) {
            return Err("no iproute2".into());
        }
        let pid = std::process::id();
        let subnet = format!("10.251.{}", pid % 250);
        let routes = Command::new("ip")
            .args(["-4", "route"])
            .output()
            .map_err(|e| e.to_string())?;
        if String::from_utf8_lossy(&routes.stdout).contains(&format!("{subnet}.")) {
            return Err(format!("{subnet}.0/30 is already in use here"));
        }
        let (host_if, peer_if) = (
            format!("ksh{}", pid % 100_000),
            format!("ksp{}", pid % 100_000),
        );
        let ns = Netns {
            name: format!("kora-sec-{pid}"),
            host_if: host_if.clone(),
            host_ip: format!("{subnet}.1"),
            peer_ip: format!("{subnet}.2"),
        };
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), ns.name.clone()],
            vec![
                "link".into(),
                "add".into(),
                host_if.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                peer_if.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                peer_if.clone(),
                "netns".into(),
                ns.name.clone(),
            ],
            vec![
                "addr".into(),
                "add".into(),
                format!("{}/30", ns.host_ip),
                "dev".into(),
                host_if.clone(),
            ],
            vec!["link".into(), "set".into(), host_if.clone(), "up".into()],
            vec![
                "-n".into(),
                ns.name.clone(),
                "addr".into(),
                "add".into(),
                format!("{}/30", ns.peer_ip),
                "dev".into(),
                peer_if.clone(),
            ],
            vec![
                "-n".into(),
                ns.name.clone(),
                "link".into(),
                "set".into(),
                peer_if,
                "up".into(),
            ],
        ];
        for step in &steps {
            let args: Vec<&str> = step.iter().map(String::as_str).collect();
            if !Netns::ip(&args) {
                // Drop removes what was made so far.
                return Err(format!("ip {} failed", args.join(" ")));
            }
        }
        Ok(ns)
    }

    /// Connects to `addr:port` from inside the namespace (setns changes
    /// only the calling thread's network namespace) and exchanges `bytes`.
    fn exchange(&self, addr: &str, port: u16, bytes: &'static [u8]) -> (Vec<u8>, bool) {
        let path = format!("/run/netns/{}", self.name);
        let addr = addr.to_string();
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).unwrap();
            use std::os::fd::AsRawFd;
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            let mut s = TcpStream::connect_timeout(
                &format!("{addr}:{port}").parse().unwrap(),
                Duration::from_secs(5),
            )
            .unwrap();
            let peer = s.local_addr().unwrap().ip();
            assert!(!peer.is_loopback(), "the client must not be loopback");
            send_and_wait_close(&mut s, bytes)
        })
        .join()
        .unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes the veth pair too.
        Netns::ip(&["netns", "del", &self.name]);
        // Gone with the namespace unless setup stopped before moving the
        // peer into it.
        Netns::ip(&["link", "del", &self.host_if]);
    }
}

#[test]
fn protected_mode_denies_non_loopback_clients_without_password() {
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(why) => {
            eprintln!("SKIPPED protected-mode non-loopback test: {why}");
            return;
        }
    };
    // Bound to the host end of the veth only: reachable from the namespace,
    // from nowhere else.
    let k = Kora::start(&ns.host_ip, &[]);
    let (reply, closed) = ns.exchange(&ns.host_ip, k.port, b"SET remote 1\r\n");
    let reply = text(reply);
    assert!(closed, "denied connections are closed");
    assert!(
        reply.starts_with("-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user.")
            && reply.ends_with("in order for the server to start accepting connections from the outside.\r\n"),
        "{reply:?}"
    );

    // This host's own veth address is not loopback either: denied too.
    let mut from_host = TcpStream::connect((ns.host_ip.as_str(), k.port)).unwrap();
    let (reply, closed) = send_and_wait_close(&mut from_host, b"PING\r\n");
    assert!(closed && text(reply).starts_with("-DENIED"));
    drop(k);

    // A password lifts it (the client must then AUTH)...
    let k = Kora::start(&ns.host_ip, &["--requirepass", "pw"]);
    let (reply, closed) = ns.exchange(&ns.host_ip, k.port, b"PING\r\nAUTH pw\r\nSET remote 1\r\n");
    assert_eq!(
        (text(reply), closed),
        (format!("{NOAUTH}+OK\r\n+OK\r\n"), false)
    );
    let admin = |bytes: &'static [u8]| ns.exchange(&ns.host_ip, k.port, bytes);
    // ...and so does turning the mode off at runtime, after which a
    // password removal leaves remote clients in.
    let (reply, _) = ns.exchange(
        &ns.host_ip,
        k.port,
        b"AUTH pw\r\nCONFIG SET protected-mode no\r\nCONFIG SET requirepass \"\"\r\n",
    );
    assert_eq!(text(reply), "+OK\r\n+OK\r\n+OK\r\n");
    let (reply, closed) = admin(b"GET remote\r\n");
    assert_eq!((text(reply).as_str(), closed), ("$1\r\n1\r\n", false));
    // Back on with no password: denied again.
    let (reply, _) = admin(b"CONFIG SET protected-mode yes\r\n");
    assert_eq!(text(reply), "+OK\r\n");
    let (reply, closed) = admin(b"PING\r\n");
    assert!(closed && text(reply).starts_with("-DENIED"));
}

#[test]
fn hello_options_take_effect_in_order_as_redis_7_0() {
    let s = Server::start(1);
    let mut c = s.client();
    assert_eq!(
        q::<String>(&mut c, &["CONFIG", "SET", "requirepass", "pw"]),
        "OK"
    );
    let cases: [(&[u8], String); 4] = [
        // The name is set although HELLO then refuses the client.
        (
            b"HELLO 2 SETNAME early\r\nAUTH pw\r\nCLIENT GETNAME\r\n",
            format!("{HELLO_NOAUTH}+OK\r\n$5\r\nearly\r\n"),
        ),
        // AUTH took effect before the bad option.
        (
            b"HELLO 2 AUTH default pw FOO\r\nPING\r\n",
            "-ERR Syntax error in HELLO option 'FOO'\r\n+PONG\r\n".into(),
        ),
        // The first AUTH fails: the second is never tried.
        (
            b"HELLO 2 AUTH default wrong AUTH default pw\r\nPING\r\n",
            format!("{WRONGPASS}{NOAUTH}"),
        ),
        (
            b"HELLO 2 SETNAME \"a b\" AUTH default pw\r\nPING\r\n",
            format!(
                "-ERR Client names cannot contain spaces, newlines or special characters.\r\n{NOAUTH}"
            ),
        ),
    ];
    for (input, expected) in cases {
        let reply = text(raw_exchange(&mut s.raw(), input));
        assert_eq!(reply, expected, "{:?}", String::from_utf8_lossy(input));
    }
}
