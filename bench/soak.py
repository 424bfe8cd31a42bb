#!/usr/bin/env python3
"""Soak: every kind of client at once against one two-shard server, with
invariants checked at the end and the slowest PING of a bystander.

    flock /tmp/kora-bench.lock python3 bench/soak.py [--seconds 60] [--hogs 2]
        [--workers 2] [--kora target/release/kora]

The executor under Kora is patched (tools/vendor/glommio/KORA.md: how it
sleeps, wakes, polls sockets and preempts); a lost wake-up or a missed
readiness shows as a stall or a connection that never goes away, not as a
wrong reply, and only under a mix of load. This runs, for `--seconds`, on
a fresh server on a free loopback port, with `--hogs` CPU hogs (`yes`)
competing for the cores:

  bench     kora-bench --verify, mixed commands, pipelined (P=8)
  rb        redis-benchmark at P=1, its own keys, one command after another
            until the time is up
  transfer  WATCH/MULTI/EXEC moving amounts between 8 accounts spread over
            the shards; a MULTI/MGET/EXEC reader checks the sum every time
  incr      pipelined INCRs of one counter from 3 connections
  queue     LPUSH of unique ids by 2 producers, BLPOP (0.05 s) by 2 consumers
  pubsub    PUBLISH of sequence numbers, one subscriber checks the order
  churn     `--churners` threads of connections that send PING and hang
            up at once (FIN or RST), or send half a command and close
  probe     a PING every 5 ms on one connection, and one on a new
            connection every 100 ms
  scrape    GET /metrics every 250 ms: every shard up, no counter or
            histogram bucket ever going down, buckets cumulative in `le`

Then it checks: every invariant (sum, counter, each id popped once, every
message in order), the server alive with no panic on stderr, and the
connection count back to the checker's own within 5 s. Exit status 1 and a
line per failure if anything is off. Prints the probe's latencies.
"""
import argparse
import os
import random
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.request

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port, wait_ready  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNTS = [f"soak:acct:{i}" for i in range(8)]
START_BALANCE = 1000

failures = []
stop = threading.Event()


def fail(msg):
    failures.append(msg)
    print("FAIL:", msg, flush=True)


def client(port, **kw):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10, **kw)


def guarded(fn):
    """A worker whose exception is a failure, not a silent thread death."""
    def run(*a):
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001
            if not stop.is_set():
                fail(f"{fn.__name__}: {type(e).__name__}: {e}")
    return run


@guarded
def transfer(port, seed):
    r, rng = client(port), random.Random(seed)
    while not stop.is_set():
        a, b = rng.sample(ACCOUNTS, 2)
        with r.pipeline() as p:
            try:
                p.watch(a, b)
                amount = rng.randint(1, 50)
                p.multi()
                p.decrby(a, amount)
                p.incrby(b, amount)
                p.execute()
            except redis.WatchError:
                pass


@guarded
def audit(port, counts):
    r = client(port)
    while not stop.is_set():
        p = r.pipeline(transaction=True)
        p.mget(ACCOUNTS)
        (values,) = p.execute()
        total = sum(int(v) for v in values)
        counts["audits"] += 1
        if total != START_BALANCE * len(ACCOUNTS):
            fail(f"transfer: the accounts sum to {total} inside one EXEC")
            return


@guarded
def incr(port, counts):
    r = client(port)
    while not stop.is_set():
        p = r.pipeline(transaction=False)
        for _ in range(20):
            p.incr("soak:counter")
        p.execute()
        counts["incr"] += 20


@guarded
def produce(port, name, produced):
    r, n = client(port), 0
    while not stop.is_set():
        item = f"{name}:{n}"
        r.lpush("soak:queue", item)
        produced.append(item)
        n += 1


@guarded
def consume(port, consumed):
    r = client(port)
    while not stop.is_set():
        got = r.blpop("soak:queue", timeout=0.05)
        if got:
            consumed.append(got[1].decode())


published_all = threading.Event()


@guarded
def publish(port, counts):
    r, n = client(port), 0
    try:
        while not stop.is_set():
            receivers = r.publish("soak:chan", n)
            n += 1
            counts["published"] = n
            if receivers != 1:
                fail(f"pubsub: PUBLISH reached {receivers} subscribers, not the one")
                return
    finally:
        published_all.set()


@guarded
def subscribe(port, ready, counts):
    r = client(port)
    ps = r.pubsub(ignore_subscribe_messages=True)
    ps.subscribe("soak:chan")
    ready.set()
    expect, give_up = None, None
    while not published_all.is_set() or counts["received"] < counts["published"]:
        m = ps.get_message(timeout=1.0)
        if m is None:
            # Once the publisher is done, the rest gets 10 s to arrive.
            if published_all.is_set():
                give_up = give_up or time.monotonic() + 10
                if time.monotonic() > give_up:
                    break
            continue
        n = int(m["data"])
        if expect is not None and n != expect:
            fail(f"pubsub: message {n} arrived where {expect} was due")
            return
        expect = n + 1
        counts["received"] += 1
    ps.close()


server_pid = None


def diagnose(port, client_port):
    """The stuck connection's socket on the server side (`ss`: state,
    queues) and the state of each of the server's io_uring rings (fdinfo:
    queue heads, overflow, pending polls), written to a file for a look
    afterwards."""
    path = f"/tmp/kora-soak-stuck-{client_port}.txt"
    with open(path, "w") as f:
        f.write(subprocess.run(["ss", "-tanpie", f"( sport = :{port} and dport = :{client_port} )"],
                               capture_output=True, text=True).stdout)
        for fd in os.listdir(f"/proc/{server_pid}/fd"):
            try:
                if "io_uring" in os.readlink(f"/proc/{server_pid}/fd/{fd}"):
                    with open(f"/proc/{server_pid}/fdinfo/{fd}") as info:
                        f.write(f"--- ring fd {fd}\n" + info.read())
            except OSError:
                pass
    return f"details in {path}"


@guarded
def churn(port, counts, seed):
    rng = random.Random(seed)
    while not stop.is_set():
        s = socket.create_connection(("127.0.0.1", port))
        kind = rng.randrange(3)
        if kind == 0:  # send and hang up at once
            s.sendall(b"PING\r\n")
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            buf = b""
            try:
                while True:
                    d = s.recv(64)
                    if not d:
                        break
                    buf += d
            except socket.timeout:
                fail(f"churn: no EOF within 5 s after PING and a shutdown, from port "
                     f"{s.getsockname()[1]}, after {buf!r}; {diagnose(port, s.getsockname()[1])}")
                s.close()
                continue
            if buf != b"+PONG\r\n":
                fail(f"churn: a client that sent PING and hung up got {buf!r}")
        elif kind == 1:  # reset with a request in flight
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.sendall(b"*3\r\n$3\r\nSET\r\n$9\r\nsoak:rst\r\n$1\r\nx\r\nGET soak:rst\r\n")
        else:  # half a command, then close
            s.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nsoak")
        s.close()
        counts["churn"] += 1
        time.sleep(0.002)


@guarded
def probe(port, lat):
    r = client(port)
    next_fresh = time.monotonic()
    while not stop.is_set():
        t = time.monotonic()
        r.ping()
        lat["kept"].append(time.monotonic() - t)
        if t >= next_fresh:
            next_fresh = t + 0.1
            t = time.monotonic()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16) != b"+PONG\r\n":
                    fail("probe: a new connection's PING was not answered +PONG")
            lat["fresh"].append(time.monotonic() - t)
        time.sleep(0.005)


# redis-benchmark's -t tests use kora-bench's key names, so it runs its own
# commands on keys of its own (`-r` fills in __rand_int__).
RB_COMMANDS = [
    "SET rb:s:__rand_int__ value", "GET rb:s:__rand_int__", "INCR rb:c:__rand_int__",
    "LPUSH rb:list value", "RPOP rb:list", "HSET rb:hash f:__rand_int__ value",
    "SADD rb:set m:__rand_int__", "SPOP rb:set", "MSET rb:s:__rand_int__ a rb:t:__rand_int__ b",
]


def parse_metrics(text):
    """{(name, labels): value} of every sample line, and the names of the
    samples that may never go down (counters, histogram buckets, counts
    and sums), from the `# TYPE` lines."""
    samples, monotonic, families = {}, set(), {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(" ", 3)
            families[family] = kind
        elif line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            name, _, labels = key.partition("{")
            samples[(name, labels)] = float(value)
            if families.get(name) == "counter" or any(
                    families.get(name[: -len(suffix)]) == "histogram"
                    for suffix in ("_bucket", "_count", "_sum") if name.endswith(suffix)):
                monotonic.add(name)
    return samples, monotonic


@guarded
def scrape(metrics_port, counts):
    last = {}
    while not stop.is_set():
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as resp:
            if resp.status != 200:
                fail(f"scrape: /metrics answered {resp.status}")
                return
            now, monotonic = parse_metrics(resp.read().decode())
        for (name, labels), value in now.items():
            if name == "kora_shard_up" and value != 1:
                fail(f"scrape: kora_shard_up{{{labels} is {value}")
            before = last.get((name, labels))
            if before is not None and name in monotonic and value < before:
                fail(f"scrape: {name}{{{labels} went down, {before} -> {value}")
                return
        buckets = {}
        for (name, labels), value in now.items():
            if name.endswith("_bucket"):
                pairs = labels.rstrip("}").split(",")
                le = next(p for p in pairs if p.startswith("le="))
                rest = ",".join(p for p in pairs if p != le)
                buckets.setdefault((name, rest), []).append((float(le[4:-1]), value))
        for series, points in buckets.items():
            counts_in_order = [v for _, v in sorted(points)]
            if counts_in_order != sorted(counts_in_order):
                fail(f"scrape: {series} buckets are not cumulative: {sorted(points)}")
                return
        last = now
        counts["scrapes"] += 1
        time.sleep(0.25)


def redis_benchmark(port, deadline):
    i = 0
    while time.monotonic() < deadline and not stop.is_set():
        cmd = RB_COMMANDS[i % len(RB_COMMANDS)].split()
        i += 1
        subprocess.run(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-c", "20", "-P", "1",
                        "-r", "10000", "-n", "20000", "-q"] + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] * 1000 if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--hogs", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--churners", type=int, default=1, help="threads opening short-lived connections")
    ap.add_argument("--kora", default=os.path.join(ROOT, "target/release/kora"))
    a = ap.parse_args()

    port, metrics_port = free_port(), free_port()
    err_path = f"/tmp/kora-soak-{port}.err"
    err = open(err_path, "w")
    server = subprocess.Popen([a.kora, "--bind", "127.0.0.1", "--port", str(port), "--metrics-port", str(metrics_port),
                               "--workers", str(a.workers)], stdout=subprocess.DEVNULL, stderr=err)
    hogs = []
    global server_pid
    server_pid = server.pid
    try:
        wait_ready(port, server, a.kora)
        r = client(port)
        r.mset({k: START_BALANCE for k in ACCOUNTS})
        hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(a.hogs)]
        deadline = time.monotonic() + a.seconds
        bench = subprocess.Popen([os.path.join(ROOT, "target/release/kora-bench"), "-p", str(port), "-c", "20",
                                  "--threads", "1", "-P", "8", "--verify", "--duration", str(a.seconds),
                                  "--commands", "set:2,get:4,incr:1,lpush:1,lpop:1,hset:1,hget:1,sadd:1,mget:1",
                                  "-r", "20000", "--timeout", "10"],
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        counts = dict(audits=0, incr=0, published=0, received=0, churn=0, scrapes=0)
        produced, consumed = [], []
        lat = dict(kept=[], fresh=[])
        ready = threading.Event()
        threads = [threading.Thread(target=subscribe, args=(port, ready, counts))]
        threads[0].start()
        ready.wait(5)
        time.sleep(0.1)
        threads += [threading.Thread(target=f, args=args) for f, args in [
            (transfer, (port, 1)), (transfer, (port, 2)), (transfer, (port, 3)), (audit, (port, counts)),
            (incr, (port, counts)), (incr, (port, counts)), (incr, (port, counts)),
            (produce, (port, "p1", produced)), (produce, (port, "p2", produced)),
            (consume, (port, consumed)), (consume, (port, consumed)),
            (publish, (port, counts)), (probe, (port, lat)), (scrape, (metrics_port, counts)),
            (redis_benchmark, (port, deadline)),
        ]] + [threading.Thread(target=churn, args=(port, counts, seed)) for seed in range(a.churners)]
        for t in threads[1:]:
            t.start()
        while time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.2)
        stop.set()
        for h in hogs:
            h.kill()
        for t in threads:
            t.join(30)
            if t.is_alive():
                fail(f"a worker ({t.name}) did not finish within 30 s of the stop")
        out = bench.communicate(timeout=60)[0]
        if bench.returncode != 0:
            fail(f"kora-bench exited {bench.returncode}: {out.strip().splitlines()[-3:]}")
        if server.poll() is not None:
            fail(f"the server exited with {server.returncode}")
            return
        r = client(port)
        # What the consumers left behind is still in the queue.
        rest = [x.decode() for x in r.lrange("soak:queue", 0, -1)]
        popped = consumed + rest
        if sorted(popped) != sorted(produced):
            fail(f"queue: {len(produced)} pushed, {len(consumed)} popped + {len(rest)} left, "
                 f"{len(set(produced) - set(popped))} lost, {len(popped) - len(set(popped))} twice")
        total = sum(int(v) for v in r.mget(ACCOUNTS))
        if total != START_BALANCE * len(ACCOUNTS):
            fail(f"transfer: the accounts sum to {total} at the end")
        if int(r.get("soak:counter") or 0) != counts["incr"]:
            fail(f"incr: the counter is {r.get('soak:counter')}, {counts['incr']} were acknowledged")
        if counts["received"] != counts["published"]:
            fail(f"pubsub: {counts['published']} published, {counts['received']} received")
        end = time.monotonic() + 5
        while True:
            n = len(r.client_list())
            if n == 1 or time.monotonic() > end:
                break
            time.sleep(0.1)
        if n != 1:
            left = [c for c in r.client_list() if c["cmd"] != "client"]
            fail(f"{len(left)} connection(s) still open 5 s after every client closed: " + "; ".join(
                " ".join(f"{k}={v}" for k, v in c.items()) + "; " + diagnose(port, c["addr"].rsplit(":", 1)[1])
                for c in left))
        print(f"soak: {a.seconds:.0f} s, {a.workers} shards, {a.hogs} hogs; "
              f"audits {counts['audits']}, incr {counts['incr']}, queue {len(produced)}, "
              f"pubsub {counts['published']}, churned connections {counts['churn']}, scrapes {counts['scrapes']}")
        print(f"  kora-bench: {' '.join(out.split())[:300]}")
        print(f"  probe PING, kept connection: median {pct(lat['kept'], 0.5):.2f} ms, p99 {pct(lat['kept'], 0.99):.2f}, "
              f"max {pct(lat['kept'], 1.0):.2f} ({len(lat['kept'])}); new connection: median "
              f"{pct(lat['fresh'], 0.5):.2f}, max {pct(lat['fresh'], 1.0):.2f} ({len(lat['fresh'])})")
    finally:
        stop.set()
        for h in hogs:
            h.kill()
        server.terminate()
        server.wait()
        err.close()
        with open(err_path) as f:
            text = f.read()
        os.unlink(err_path)
        if "panicked" in text:
            fail("the server panicked: " + text[text.index("panicked") - 200:][:600])
    if failures:
        print(f"soak: {len(failures)} failure(s)")
        sys.exit(1)
    print("soak: ok")


if __name__ == "__main__":
    main()
