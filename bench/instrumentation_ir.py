#!/usr/bin/env python3
"""Instructions and branch mispredictions per command of Kora's per-command
instrumentation, counted by callgrind (steady on a busy machine, where the
ns of `cargo bench --bench instrumentation` move with the load).

    python3 bench/instrumentation_ir.py [--n 1000000] [--before BINARY]

Builds bench/instrumentation_ir.rs (`cargo bench --no-run`), runs each
variant N times under `valgrind --tool=callgrind --branch-sim=yes`, and
subtracts the same loop with nothing instrumented. Only the loop is counted
(callgrind's --toggle-collect), not the setup. The db-* variants are a key
access of the keyspace (Db::get, an in-place Db::set_string) with and
without its hot-key count; the z-* variants are whole sorted-set commands
on a 100k-member set and the c-* variants other whole commands (ZSCORE of a
fractional score, GEOPOS, GEODIST, ZSCAN's
cursor, INCRBYFLOAT, HINCRBYFLOAT), not less the loop; `--cache` adds the
misses past a simulated 1 MB cache (callgrind's --cache-sim with --LL at
1 MB, about this VM's L2). `--before` counts an
older build of that bench binary in the same run (build it from an older
checkout with this bench file copied in, `cargo bench --bench
instrumentation_ir --no-run`; the path is printed as "Executable").
"""
import argparse, json, os, re, subprocess, sys, tempfile

VARIANTS = ["timer", "sketch-uniform", "sketch-zipf", "whole", "pipelined", "off",
            "db-get", "db-get-nosketch", "db-set",
            "z-zadd", "z-zscore", "z-zrank", "z-zrangebyscore", "z-zrange-withscores",
            "c-zscore", "c-geopos", "c-geodist", "c-zscan", "c-incrbyfloat", "c-hincrbyfloat"]


def build():
    out = subprocess.run(["cargo", "bench", "--bench", "instrumentation_ir", "--no-run",
                          "--message-format=json"], check=True, capture_output=True, text=True,
                         cwd=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "instrumentation_ir":
            return msg["executable"]
    sys.exit("instrumentation_ir: no executable built")


def count(binary, variant, n, cache=False):
    """(instructions, conditional-branch mispredictions, misses past a
    simulated 1 MB cache or None) of one run."""
    sim = ["--cache-sim=yes", "--LL=1048576,16,64"] if cache else []
    with tempfile.NamedTemporaryFile() as f:
        # Only `measured` (the loop) is counted, not the setup.
        subprocess.run(["valgrind", "--tool=callgrind", "--branch-sim=yes", "--collect-atstart=no",
                        "--toggle-collect=instrumentation_ir::measured*", *sim,
                        f"--callgrind-out-file={f.name}", binary, variant, str(n)],
                       check=True, capture_output=True)
        events = []
        for line in open(f.name):
            if line.startswith("events:"):
                events = line.split()[1:]
            if line.startswith("summary:") or line.startswith("totals:"):
                got = dict(zip(events, (int(x) for x in line.split()[1:])))
                if got.get("Ir", 0) == 0:
                    sys.exit(f"instrumentation_ir: nothing counted in {binary}: a build from "
                             "before `measured` existed (copy this bench file into that checkout)")
                misses = got.get("DLmr", 0) + got.get("DLmw", 0) if cache else None
                return got["Ir"], got["Bcm"], misses
    sys.exit("instrumentation_ir: no totals in callgrind's output")


def per_command(binary, n, variants, cache):
    """Per command: each variant less the bare loop (the z-* and c-*
    variants are whole commands, counted as they are)."""
    whole = all(v.startswith(("z-", "c-")) for v in variants)
    base = (0, 0, 0) if whole else count(binary, "loop", n, cache)
    rows = {}
    for v in variants:
        got = count(binary, v, n, cache)
        sub = (0, 0, 0) if v.startswith(("z-", "c-")) else base
        rows[v] = tuple(None if g is None else (g - b) / n for g, b in zip(got, sub))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--before", help="an older instrumentation_ir binary to count in the same run")
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated subset")
    ap.add_argument("--cache", action="store_true",
                    help="also count misses past a simulated 1 MB cache (slower)")
    a = ap.parse_args()
    variants = a.variants.split(",")
    now = per_command(build(), a.n, variants, a.cache)
    before = per_command(a.before, a.n, variants, a.cache) if a.before else None
    cols = ["instructions", "mispredicts"] + (["misses past 1 MB"] if a.cache else [])
    head = "| variant | " + " | ".join(f"{c}/command" for c in cols) + " |"
    if before:
        head += "".join(f" before: {c} |" for c in cols)
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    fmt = lambda r: "".join(f" {x:.1f} |" if i != 1 else f" {x:.3f} |"
                            for i, x in enumerate(r) if x is not None)
    for v in variants:
        print(f"| {v} |" + fmt(now[v]) + (fmt(before[v]) if before else ""))


if __name__ == "__main__":
    main()
