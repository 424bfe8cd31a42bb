#!/usr/bin/env python3
"""Hostile clients against a Kora binary, measured from outside: what a
single bad client costs the server in memory and in stalls of everyone else.

Usage: bench/hostile.py [path/to/kora] (default target/release/kora)

Scenarios, each on a fresh 2-shard server on a free loopback port:
  header   8 connections each send `*3 $3 SET $1 k $536870912` and go
           silent: RSS growth, and the slowest PING on a fresh connection.
  reader   one connection pipelines 20k `GET`s of 1 MB keys, some on the
           other shard, without reading: peak RSS growth, its `omem`,
           and whether CLIENT KILL really closes it.
  glob     `KEYS a*a*...*b` (20 stars) with a key of 60 `a`s: time to answer
           (capped at 10 s).
"""

import os
import socket
import subprocess
import sys
import time

KORA = sys.argv[1] if len(sys.argv) > 1 else "target/release/kora"
MB = 1 << 20


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) * 1024
    return 0


def cmd(sock, *args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    sock.sendall(out)


def reply(sock, timeout=10.0):
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    if data[:1] == b"$" and not data.startswith(b"$-1"):
        n = int(data[1 : data.index(b"\r\n")])
        while len(data) < data.index(b"\r\n") + 2 + n + 2:
            data += sock.recv(65536)
    return data


def reply_array(sock):
    """A SCAN reply: [cursor, [keys]] (small, read whole)."""
    sock.settimeout(10)
    data = b""
    while True:
        data += sock.recv(65536)
        lines = data.split(b"\r\n")
        try:
            n = int(lines[3][1:])
            if len(lines) >= 5 + 2 * n:
                cursor = lines[2]
                keys = [lines[5 + 2 * i] for i in range(n)]
                return cursor, keys
        except (IndexError, ValueError):
            pass


def ping_time(port):
    s = socket.create_connection(("127.0.0.1", port))
    t = time.time()
    s.sendall(b"PING\r\n")
    reply(s)
    s.close()
    return time.time() - t


class Server:
    def __enter__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [KORA, "--port", str(self.port), "--metrics-port", "0", "--workers", "2"],
            stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                ping_time(self.port)
                return self
            except OSError:
                time.sleep(0.05)
        raise SystemExit("kora did not start")

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def header():
    with Server() as srv:
        before = rss(srv.proc.pid)
        held = []
        for _ in range(8):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n")
            held.append(s)
        time.sleep(1.0)
        slowest = max(ping_time(srv.port) for _ in range(8))
        grown = rss(srv.proc.pid) - before
        print(f"header: 8 connections, RSS +{grown / MB:.0f} MB, slowest PING {slowest * 1000:.1f} ms")


def reader():
    with Server() as srv:
        s = socket.create_connection(("127.0.0.1", srv.port))
        cmd(s, "CLIENT", "ID")
        cid = int(reply(s)[1:-2])
        admin = socket.create_connection(("127.0.0.1", srv.port))
        # 1 MB keys on the shard the connection is not on (its id is
        # congruent to its shard; a SCAN cursor names the shard it walks).
        for i in range(16):
            cmd(admin, "SET", f"big:{i}", b"x" * MB)
            reply(admin)
        keys, cursor = [], 0
        while True:
            cmd(admin, "SCAN", cursor, "COUNT", 1)
            raw = reply_array(admin)
            if (cursor & 1023) != cid % 2:
                keys += raw[1]
            cursor = int(raw[0])
            if cursor == 0:
                break
        keys = [k.decode() for k in keys] or ["big:0"]
        before = rss(srv.proc.pid)
        s.setblocking(False)
        payload = b"".join(
            b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k.encode()) for k in keys
        ) * 1_250
        sent, peak, t = 0, 0, time.time()
        while sent < len(payload) and time.time() - t < 5:
            try:
                sent += s.send(payload[sent : sent + 65536])
            except BlockingIOError:
                time.sleep(0.01)
            peak = max(peak, rss(srv.proc.pid))
        time.sleep(1.5)
        peak = max(peak, rss(srv.proc.pid))
        cmd(admin, "CLIENT", "LIST")
        listing = reply(admin).decode(errors="replace")
        omem = [f for line in listing.splitlines() if f"id={cid} " in line for f in line.split() if f.startswith("omem=")]
        cmd(admin, "CLIENT", "KILL", "ID", cid)
        killed = reply(admin).strip()
        time.sleep(0.5)
        cmd(admin, "CLIENT", "LIST")
        still = f"id={cid} " in reply(admin).decode(errors="replace")
        print(
            f"reader: sent {sent / MB:.1f} MB of GETs, peak RSS +{(peak - before) / MB:.0f} MB, "
            f"{omem[0] if omem else 'omem=?'}, CLIENT KILL {killed.decode()} -> "
            f"{'still connected' if still else 'closed'}"
        )


def glob():
    with Server() as srv:
        s = socket.create_connection(("127.0.0.1", srv.port))
        cmd(s, "SET", "a" * 60, "v")
        reply(s)
        pattern = "a*" * 20 + "b"
        t = time.time()
        cmd(s, "KEYS", pattern)
        try:
            reply(s, timeout=10)
            print(f"glob: KEYS with 20 stars answered in {(time.time() - t) * 1000:.2f} ms")
        except socket.timeout:
            print("glob: KEYS with 20 stars did not answer within 10 s")


if __name__ == "__main__":
    header()
    reader()
    glob()
