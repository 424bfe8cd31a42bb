#!/usr/bin/env python3
"""Memory per item: Kora vs redis-server, side by side (README table).

    python3 bench/memory.py [--kora target/release/kora] [--redis /usr/bin/redis-server]
                            [--items N] [--workers 2] [--rows string16,hash,...]
                            [--accounting] [--json]

For every row of the table (string with a 14-byte key and a 16-, 64- or
512-byte value; hash fields, list elements, set members, sorted-set
members, 100 per key) it starts a fresh server, measures its RSS
(/proc/<pid>/status VmRSS) once it answers, loads N items (default 1M)
over one connection with pipelined commands, waits until the RSS settles,
and reports (RSS after - RSS before) / N, "settled" meaning at least
--min-settle seconds after the load (default 11, past jemalloc's 10 s
dirty-page decay) and then unchanged (within 0.2%) for 3 s, at most
--settle seconds (default 20; see settled_rss). It prints a markdown table:

    | data | Redis B/item | Kora B/item | Kora/Redis |

Why a fresh server per row rather than FLUSHALL between rows: after a
flush both allocators keep some freed pages (Redis's jemalloc and Kora's
malloc decay them at different paces), so a row loaded after a flush
measures how much of the previous row was reused, not what the data
costs; a fresh process starts every row from the same empty state and
the numbers repeat within ~1 B/item run to run. Only one server runs at a
time, and each is stopped by its pid right after its row (all of them on
any exit).

The sorted-set row runs only if the server knows ZADD (it is skipped, with
a note, otherwise). --accounting adds each server's own figure
(INFO memory `used_memory` growth per item) beside the RSS figure.

Only the standard library: raw sockets and RESP. Bounded in time: every
socket operation has a timeout and the whole run takes about 2 to 5
minutes at 1M items (--items and --rows shrink it).
"""

import argparse
import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PER_KEY = 100  # elements per hash, list, set and sorted set
BATCH = 1000  # items per pipelined batch (commands for strings)
TIMEOUT = 60  # seconds any one socket operation may take

# Server processes and their clean stop: the same helpers as compare.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import free_port, kora_argv, on_signal, redis_argv, running, stop, stop_all  # noqa: E402


def resp(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    """One RESP connection that sends batches and counts one-line replies
    (every command the loader sends answers a simple string, an integer
    or an error)."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self):
        self.sock.close()

    def pipeline(self, payload, replies):
        self.sock.sendall(payload)
        buf = bytearray()
        seen = 0
        while seen < replies:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise RuntimeError("server closed the connection")
            seen += chunk.count(b"\r\n")
            buf += chunk
        if buf.startswith(b"-") or b"\r\n-" in buf:
            start = buf.find(b"-") if buf.startswith(b"-") else buf.find(b"\r\n-") + 2
            raise RuntimeError(buf[start : buf.find(b"\r\n", start)].decode(errors="replace"))

    def call(self, *args):
        """One command; returns its reply as bytes (bulk, simple or error)."""
        self.sock.sendall(resp(*args))
        data = b""
        while b"\r\n" not in data:
            data += self.sock.recv(65536)
        header, _, rest = data.partition(b"\r\n")
        if header[:1] != b"$":
            return header
        n = int(header[1:])
        if n < 0:
            return None
        while len(rest) < n + 2:
            rest += self.sock.recv(65536)
        return rest[:n]


class StartFailed(Exception):
    pass


def wait_ready(port, proc, what):
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StartFailed(f"{what} exited during startup")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    stop(proc)
    raise StartFailed(f"{what} did not answer PING on port {port}")


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def settled_rss(pid, max_wait, quiet=3.0, min_wait=0.0):
    """RSS once at least `min_wait` seconds have passed and it has stayed
    within 0.2% for `quiet` seconds (or after `max_wait`): background work
    finishes first (Redis's incremental rehash, Kora's lazy free, and above
    all the allocators' purging of freed pages: jemalloc with a background
    thread, as Redis runs it, returns the old hash tables of a growing
    keyspace over its 10 s dirty-page decay, in steps with pauses of
    seconds between them, hence a minimum wait longer than the decay)."""
    start = time.monotonic()
    ref = rss_bytes(pid)
    ref_t = start
    while True:
        time.sleep(0.25)
        now = rss_bytes(pid)
        t = time.monotonic()
        if abs(now - ref) > ref * 0.002:
            ref, ref_t = now, t
        elif t - ref_t >= quiet and t - start >= min_wait:
            return now
        if t - start >= max_wait:
            return now


def used_memory(conn):
    info = conn.call(b"INFO", b"memory").decode()
    for line in info.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    return None


# ---------------------------------------------------------------- workloads
#
# Each loader yields (payload, replies) batches adding exactly `items`
# items. Keys are 14 bytes ("key:" + 10 digits) for the string rows but
# string16k's, which has redis-benchmark's 16 ("key:" + 12 digits); the
# aggregate rows use 16-byte elements. Values are not numeric, so no
# server stores them as integers.


def strings(value_size, key_digits=10):
    value = b"v" * value_size
    key = b"key:%0" + str(key_digits).encode() + b"d"

    def load(items):
        for start in range(0, items, BATCH):
            n = min(BATCH, items - start)
            yield b"".join(resp(b"SET", key % i, value) for i in range(start, start + n)), n

    return load


def aggregate(cmd, element):
    """One command per key adding PER_KEY elements; `element(i)` gives the
    arguments of element i."""

    def load(items):
        keys = (items + PER_KEY - 1) // PER_KEY
        per_batch = max(1, BATCH // PER_KEY)
        for k0 in range(0, keys, per_batch):
            cmds = []
            for k in range(k0, min(keys, k0 + per_batch)):
                args = [cmd, b"agg:%010d" % k]
                for i in range(k * PER_KEY, min(items, (k + 1) * PER_KEY)):
                    args.extend(element(i))
                cmds.append(resp(*args))
            yield b"".join(cmds), len(cmds)

    return load


ROWS = [
    # (id, label, loader, command that must exist)
    ("string16", "string, 14-byte key, 16-byte value", strings(16), b"SET"),
    ("string16k", "string, 16-byte key, 16-byte value", strings(16, key_digits=12), b"SET"),
    ("string64", "string, 64-byte value", strings(64), b"SET"),
    ("string512", "string, 512-byte value", strings(512), b"SET"),
    ("hash", "hash fields (100 per hash, 3-4-byte fields, 16-byte values)",
     aggregate(b"HSET", lambda i: (b"f:%d" % (i % PER_KEY), b"val:%012d" % i)), b"HSET"),
    # The issue's own row (Redis: 32 B/item) had 8-byte fields.
    ("hash8", "hash fields (100 per hash, 8-byte fields, 16-byte values)",
     aggregate(b"HSET", lambda i: (b"field:%02d" % (i % PER_KEY), b"val:%012d" % i)), b"HSET"),
    ("list", "list elements (100 per list, 16 bytes)",
     aggregate(b"RPUSH", lambda i: (b"elem:%011d" % i,)), b"RPUSH"),
    ("set", "set members (100 per set, 16 bytes)",
     aggregate(b"SADD", lambda i: (b"memb:%011d" % i,)), b"SADD"),
    ("zset", "sorted-set members (100 per zset, 16 bytes)",
     aggregate(b"ZADD", lambda i: (b"%d" % i, b"zmem:%011d" % i)), b"ZADD"),
]


def has_command(port, command):
    conn = Conn(port)
    try:
        conn.sock.sendall(resp(b"COMMAND", b"INFO", command))
        data = conn.sock.recv(1 << 16)
        # "*1\r\n*-1\r\n" (Redis) or "*1\r\n$-1\r\n": unknown command.
        return not (data.startswith(b"*1\r\n*-1") or data.startswith(b"*1\r\n$-1"))
    finally:
        conn.close()


def measure(server, row, items, accounting, settle, min_settle):
    """Fresh server, load one row, stop it. Returns a dict or None when
    the server lacks the row's command."""
    _, _, loader, command = row
    for attempt in range(3):
        # A port found free can be taken before the server binds it: retry.
        port = free_port()
        argv = [a.replace("{port}", str(port)) for a in server["argv"]]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running[proc.pid] = proc
        try:
            wait_ready(port, proc, server["name"])
            break
        except StartFailed:
            stop(proc)
            if attempt == 2:
                raise
    try:
        if not has_command(port, command):
            return None
        conn = Conn(port)
        # The connection exists before the baseline: its buffers are not data.
        conn.call(b"PING")
        before = settled_rss(proc.pid, settle, quiet=1.0)
        used_before = used_memory(conn) if accounting else None
        t0 = time.monotonic()
        for payload, replies in loader(items):
            conn.pipeline(payload, replies)
        load_s = time.monotonic() - t0
        after = settled_rss(proc.pid, max(settle, min_settle + 3), min_wait=min_settle)
        used_after = used_memory(conn) if accounting else None
        conn.close()
        out = {"rss_per_item": (after - before) / items, "load_s": load_s}
        if accounting and used_before is not None and used_after is not None:
            out["used_per_item"] = (used_after - used_before) / items
        return out
    finally:
        stop(proc)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kora", default=os.path.join(ROOT, "target/release/kora"))
    ap.add_argument("--redis", default="/usr/bin/redis-server")
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=2, help="Kora shards (default 2)")
    ap.add_argument("--rows", default=",".join(r[0] for r in ROWS),
                    help="comma-separated subset of: " + ",".join(r[0] for r in ROWS))
    ap.add_argument("--accounting", action="store_true",
                    help="also show each server's INFO used_memory growth per item")
    ap.add_argument("--no-redis", action="store_true", help="measure Kora only")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    ap.add_argument("--settle", type=float, default=20.0,
                    help="most seconds to wait for RSS to settle after a load (default 20)")
    ap.add_argument("--min-settle", type=float, default=11.0,
                    help="least seconds to wait after a load: jemalloc's dirty-page decay "
                         "(10 s) has run its course (default 11; 0 for quick runs)")
    args = ap.parse_args()

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    wanted = set(args.rows.split(","))
    unknown = wanted - {r[0] for r in ROWS}
    if unknown:
        sys.exit(f"memory: unknown rows {sorted(unknown)}")
    servers = []
    if not args.no_redis:
        servers.append({"key": "redis", "name": "redis-server",
                        "argv": redis_argv(args.redis)})
    servers.append({"key": "kora", "name": "kora",
                    "argv": kora_argv(args.kora, args.workers)})

    results = []
    notes = []
    for row in ROWS:
        if row[0] not in wanted:
            continue
        res = {"row": row[0], "data": row[1]}
        for server in servers:
            try:
                m = measure(server, row, args.items, args.accounting, args.settle, args.min_settle)
            except (StartFailed, OSError, RuntimeError) as err:
                # Keep what was measured: report the row as failed.
                notes.append(f"{row[1]}: not measured, {server['name']}: {err}")
                res = None
                break
            if m is None:
                notes.append(f"{row[1]}: skipped, {server['name']} does not know "
                             f"{row[3].decode()}")
                res = None
                break
            res[server["key"]] = m
            print(f"# {row[0]:<10} {server['name']:<13} {m['rss_per_item']:8.1f} B/item RSS"
                  + (f" {m['used_per_item']:8.1f} B/item used_memory" if "used_per_item" in m else "")
                  + f"  (load {m['load_s']:.1f}s)", file=sys.stderr)
        if res is not None:
            results.append(res)

    if args.json:
        print(json.dumps({"items": args.items, "workers": args.workers, "rows": results,
                          "notes": notes}, indent=2))
        return
    print(f"{args.items} items per row, RSS growth per item, Kora --workers {args.workers} "
          f"vs redis-server (fresh server per row):\n")
    header = "| data |" + (" Redis B/item |" if not args.no_redis else "") + " Kora B/item |"
    sep = "|---|" + ("---|" if not args.no_redis else "") + "---|"
    if not args.no_redis:
        header += " Kora/Redis |"
        sep += "---|"
    if args.accounting:
        header += (" Redis used_memory B/item |" if not args.no_redis else "") + " Kora used_memory B/item |"
        sep += ("---|" if not args.no_redis else "") + "---|"
    print(header)
    print(sep)
    for r in results:
        k = r["kora"]["rss_per_item"]
        line = f"| {r['data']} |"
        if not args.no_redis:
            red = r["redis"]["rss_per_item"]
            line += f" {red:.0f} | {k:.0f} | {k / red:.2f} |" if red > 0 else f" {red:.0f} | {k:.0f} | - |"
        else:
            line += f" {k:.0f} |"
        if args.accounting:
            if not args.no_redis:
                line += f" {r['redis'].get('used_per_item', 0):.0f} |"
            line += f" {r['kora'].get('used_per_item', 0):.0f} |"
        print(line)
    for n in notes:
        print(f"\n{n}")


if __name__ == "__main__":
    main()
