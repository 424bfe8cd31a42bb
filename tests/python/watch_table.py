#!/usr/bin/env python3
"""Re-records the WATCH table of tests/transactions.rs
(`REDIS_WATCH_TABLE`) against a running server: for each row, WATCH k,
let another client run the row's command, then MULTI/SET/EXEC, and print
the row with that server's outcome (`runs` or `aborts`), marking rows whose
outcome differs from the table's.

    python3 tests/python/watch_table.py PORT            # compare
    python3 tests/python/watch_table.py PORT --print    # the table as recorded

Run it against redis-server to (re)record the expected answers, and against
Kora to see the differences the Rust test would report.
"""
import os, re, sys

import redis


def table():
    src = open(os.path.join(os.path.dirname(__file__), "..", "transactions.rs")).read()
    body = re.search(r'const REDIS_WATCH_TABLE: &str = r#"\n(.*?)"#;', src, re.S).group(1)
    return [line for line in body.splitlines() if line]


def words(command):
    return [b"" if w == '""' else w.replace("\\0", "\0").encode() for w in command.split()]


def main():
    port = int(sys.argv[1])
    show = "--print" in sys.argv
    a, b = redis.Redis(port=port), redis.Redis(port=port)
    differ = 0
    for line in table():
        cols = line.split(" | ")
        want, write = cols[0].strip(), cols[1]
        a.flushall()
        for setup in (cols[2].split(" ; ") if len(cols) > 2 else []):
            a.execute_command(*words(setup))
        a.execute_command("WATCH", "k")
        try:
            b.execute_command(*words(write))
        except redis.ResponseError:
            pass
        p = a.pipeline(transaction=True)
        p.set("{k}marker", 1)
        try:
            p.execute()
            got = "runs"
        except redis.WatchError:
            got = "aborts"
        row = " | ".join([got.ljust(6)] + cols[1:])
        if show:
            print(row)
        elif got != want:
            differ += 1
            print(f"differs: {line}  -> {got}")
    if not show:
        print(f"{differ} of {len(table())} rows differ")
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
