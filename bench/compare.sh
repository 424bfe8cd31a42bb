#!/usr/bin/env bash
# Kora vs Debian's redis-server, side by side, in one command: builds
# release, installs redis-server (and redis-benchmark) when missing, then
# bench/compare.py runs every workload with kora-bench against fresh
# servers on free loopback ports, adds redis-benchmark as a second opinion
# and the instrumentation on/off rows, and prints markdown tables.
# Usage: bench/compare.sh [--seconds S] [--rounds R] [--client-threads T] [--json FILE]
#        [--perf] [--kora-before BIN] [--only-get-set] [--server-cpus 0 --client-cpus 1]
# About 5 minutes with the defaults on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench/compare.sh: need ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The Debian package starts a system redis-server on 6379; we never use it
# (every server here gets a free port), so it is left as the package set it up.

cargo build --release --bins --quiet
exec python3 bench/compare.py "$@"
