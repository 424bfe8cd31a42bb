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
without its hot-key count. `--before` counts an
older build of that bench binary in the same run (build it from an older
checkout with this bench file copied in, `cargo bench --bench
instrumentation_ir --no-run`; the path is printed as "Executable").
"""
import argparse, json, os, re, subprocess, sys, tempfile

VARIANTS = ["timer", "sketch-uniform", "sketch-zipf", "whole", "pipelined", "off",
            "db-get", "db-get-nosketch", "db-set"]


def build():
    out = subprocess.run(["cargo", "bench", "--bench", "instrumentation_ir", "--no-run",
                          "--message-format=json"], check=True, capture_output=True, text=True,
                         cwd=os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    for line in out.stdout.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "instrumentation_ir":
            return msg["executable"]
    sys.exit("instrumentation_ir: no executable built")


def count(binary, variant, n):
    """(instructions, conditional-branch mispredictions) of one run."""
    with tempfile.NamedTemporaryFile() as f:
        # Only `measured` (the loop) is counted, not the setup.
        subprocess.run(["valgrind", "--tool=callgrind", "--branch-sim=yes", "--collect-atstart=no",
                        "--toggle-collect=instrumentation_ir::measured*",
                        f"--callgrind-out-file={f.name}", binary, variant, str(n)],
                       check=True, capture_output=True)
        for line in open(f.name):
            if line.startswith("summary:") or line.startswith("totals:"):
                # events: Ir Bc Bcm Bi Bim
                fields = [int(x) for x in line.split()[1:]]
                if fields[0] == 0:
                    sys.exit(f"instrumentation_ir: nothing counted in {binary}: a build from "
                             "before `measured` existed (copy this bench file into that checkout)")
                return fields[0], fields[2]
    sys.exit("instrumentation_ir: no totals in callgrind's output")


def per_command(binary, n):
    base_ir, base_bcm = count(binary, "loop", n)
    rows = {}
    for v in VARIANTS:
        ir, bcm = count(binary, v, n)
        rows[v] = ((ir - base_ir) / n, (bcm - base_bcm) / n)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--before", help="an older instrumentation_ir binary to count in the same run")
    a = ap.parse_args()
    now = per_command(build(), a.n)
    before = per_command(a.before, a.n) if a.before else None
    head = "| variant | instructions/command | mispredicts/command |"
    if before:
        head += " before: instructions | before: mispredicts |"
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for v in VARIANTS:
        row = f"| {v} | {now[v][0]:.1f} | {now[v][1]:.3f} |"
        if before:
            row += f" {before[v][0]:.1f} | {before[v][1]:.3f} |"
        print(row)


if __name__ == "__main__":
    main()
