#!/usr/bin/env python3
"""Generates src/command/redis_commands.{resp,rs}: Redis 7.0's COMMAND INFO
and COMMAND DOCS for every command it has, subcommands included, as raw
RESP2 that Kora answers verbatim for the commands its table has.

Usage: tools/gen-command-docs.py [path/to/redis-server]   (default:
/usr/bin/redis-server, which must be 7.0.x). It starts the server on a free
loopback port with no persistence, asks `COMMAND` and `COMMAND DOCS`, and
stops it.

Output:
  redis_commands.resp  one blob: each command's INFO entry and DOCS map,
                       exactly as redis-server sent them (RESP2).
  redis_commands.rs    the sorted index into the blob (name, arity, key
                       positions, ACL categories, key-spec flags, spans).
"""

import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "src", "command")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def encode(*words):
    out = b"*%d\r\n" % len(words)
    for w in words:
        w = w.encode()
        out += b"$%d\r\n%s\r\n" % (len(w), w)
    return out


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self, n):
        while len(self.buf) < n:
            d = self.sock.recv(1 << 20)
            if not d:
                raise EOFError
            self.buf += d

    def reply(self):
        """Reads one whole reply; returns its raw bytes."""
        pos = 0
        pending = 1
        while pending:
            while True:
                end = self.buf.find(b"\r\n", pos)
                if end >= 0:
                    break
                self.fill(len(self.buf) + 1)
            kind, n = self.buf[pos:pos + 1], self.buf[pos + 1:end]
            pos = end + 2
            pending -= 1
            if kind == b"$" and int(n) >= 0:
                self.fill(pos + int(n) + 2)
                pos += int(n) + 2
            elif kind == b"*" and int(n) > 0:
                pending += int(n)
        raw, self.buf = self.buf[:pos], self.buf[pos:]
        return raw


def parse(raw, pos=0):
    """Parses the reply at `pos`: (value, start, end); arrays are lists of
    such triples, bulk strings are str."""
    end = raw.index(b"\r\n", pos)
    kind, n = raw[pos:pos + 1], raw[pos + 1:end]
    body = end + 2
    if kind in (b"+", b"-"):
        return n.decode(), pos, body
    if kind == b":":
        return int(n), pos, body
    if kind == b"$":
        if int(n) < 0:
            return None, pos, body
        return raw[body:body + int(n)].decode(), pos, body + int(n) + 2
    if kind == b"*":
        items = []
        at = body
        for _ in range(max(int(n), 0)):
            item = parse(raw, at)
            items.append(item)
            at = item[2]
        return items, pos, at
    raise ValueError(kind)


def val(t):
    v = t[0]
    if isinstance(v, list):
        return [val(x) for x in v]
    return v


def strs(xs):
    return "&[" + ", ".join('"%s"' % x for x in xs) + "]"


def main():
    server = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/redis-server"
    port = free_port()
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--databases", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                sock = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.05)
        r = Reader(sock)
        sock.sendall(encode("INFO", "server"))
        version = [l for l in parse(r.reply())[0].splitlines()
                   if l.startswith("redis_version:")][0].split(":")[1]
        sock.sendall(encode("COMMAND"))
        info_raw = r.reply()
        sock.sendall(encode("COMMAND", "DOCS"))
        docs_raw = r.reply()
    finally:
        proc.terminate()
        proc.wait()

    blob = bytearray()
    entries = {}

    def span(raw, t, base):
        """Where reply `t` of `raw` lies in the blob: a top-level reply is
        appended; a nested one (a subcommand's) lies inside its parent's,
        copied at `base` = (blob offset, raw offset)."""
        if base is None:
            start = len(blob)
            blob.extend(raw[t[1]:t[2]])
            return start, len(blob), (start, t[1])
        at = base[0] + t[1] - base[1]
        return at, at + t[2] - t[1], base

    def add_info(t, raw, base=None):
        fields = t[0]
        name = fields[0][0]
        specs = []
        for spec in val(fields[8]):
            d = dict(zip(spec[0::2], spec[1::2]))
            bs = dict(zip(d["begin_search"][0::2], d["begin_search"][1::2]))
            bsa = dict(zip(bs["spec"][0::2], bs["spec"][1::2]))
            fk = dict(zip(d["find_keys"][0::2], d["find_keys"][1::2]))
            fka = dict(zip(fk["spec"][0::2], fk["spec"][1::2]))
            if bs["type"] == "index":
                begin = "Bs::Index(%d)" % bsa["index"]
            elif bs["type"] == "keyword":
                begin = 'Bs::Keyword("%s", %d)' % (bsa["keyword"], bsa["startfrom"])
            else:
                begin = "Bs::Unknown"
            if fk["type"] == "range":
                find = "Fk::Range(%d, %d, %d)" % (fka["lastkey"], fka["keystep"], fka["limit"])
            elif fk["type"] == "keynum":
                find = "Fk::Keynum(%d, %d, %d)" % (fka["keynumidx"], fka["firstkey"], fka["keystep"])
            else:
                find = "Fk::Unknown"
            specs.append("S { flags: %s, begin: %s, find: %s }"
                         % (strs(d.get("flags", [])), begin, find))
        entries[name] = {
            "arity": fields[1][0],
            "first": fields[3][0],
            "last": fields[4][0],
            "step": fields[5][0],
            "acl": [c.lstrip("@") for c in val(fields[6])],
            "keyflags": specs,
            "docs": (0, 0),
        }
        start, end, base = span(raw, t, base)
        entries[name]["info"] = (start, end)
        for sub in fields[9][0]:
            add_info(sub, raw, base)

    for t in parse(info_raw)[0]:
        add_info(t, info_raw)

    def add_docs(pairs, raw, base=None):
        for i in range(0, len(pairs), 2):
            name = pairs[i][0]
            doc = pairs[i + 1]
            start, end, inner = span(raw, doc, base)
            if name in entries:
                entries[name]["docs"] = (start, end)
            fields = doc[0]
            for j in range(0, len(fields), 2):
                if fields[j][0] == "subcommands":
                    add_docs(fields[j + 1][0], raw, inner)

    add_docs(parse(docs_raw)[0], docs_raw)

    with open(os.path.join(OUT, "redis_commands.resp"), "wb") as f:
        f.write(blob)

    lines = [
        "// @generated by tools/gen-command-docs.py from redis-server %s:" % version,
        "// do not edit. The index into redis_commands.resp, sorted by name.",
        "",
        "use super::{Bs, Fk, KeySpec as S, RedisCommand as C};",
        "",
        "/// The redis-server version the data was taken from.",
        "#[cfg(test)]",
        "pub(crate) const VERSION: &str = \"%s\";" % version,
        "",
        "pub(crate) static COMMANDS: &[C] = &[",
    ]
    for name in sorted(entries):
        e = entries[name]
        lines.append(
            '    C { name: "%s", arity: %d, first: %d, last: %d, step: %d, acl: %s, '
            'specs: &[%s], info: (%d, %d), docs: (%d, %d) },'
            % (name, e["arity"], e["first"], e["last"], e["step"], strs(e["acl"]),
               ", ".join(e["keyflags"]),
               e["info"][0], e["info"][1], e["docs"][0], e["docs"][1]))
    lines.append("];")
    with open(os.path.join(OUT, "redis_commands.rs"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%d commands from redis %s, %d bytes" % (len(entries), version, len(blob)))


if __name__ == "__main__":
    main()
