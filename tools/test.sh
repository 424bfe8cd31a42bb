#!/usr/bin/env bash
# The one command that runs every test: installs what the tests need on a
# fresh Debian machine, then unit + integration tests, then the end-to-end
# checks with real clients (redis-cli, redis-benchmark, redis-py, promtool),
# redis-py's own test suite as a compatibility gauge, and the operator kit
# with a real Prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

missing=()
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
command -v redis-benchmark >/dev/null 2>&1 || missing+=(redis-tools)
# The reference replies: tests/cluster.rs (and the comparisons in other
# test files) run a real redis-server 7.0 beside Kora.
[ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "tools/test.sh: need ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# redis-py 8 opens with HELLO 3 (RESP3), which Kora answers with -NOPROTO
# like any RESP2-only server; redis-py 5-7 speak RESP2 by default.
if ! python3 -c 'import redis, sys; sys.exit(not 5 <= int(redis.__version__.split(".")[0]) < 8)' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'redis>=5,<8' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'redis>=5,<8'
fi

cargo build --release --bins
# The design docs (src/ARCHITECTURE.md and the module docs) must build
# without warnings: broken or private intra-doc links fail here.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
cargo test --release
# The vendored glommio's own unit tests (Kora patches its reactor).
tools/glommio-tests.sh
# Benchmarks are compiled, not run, so they never rot.
cargo bench --no-run --quiet
# Fuzz targets (tests/fuzz, a workspace of its own) are built and smoke-run
# for a moment, not fuzzed, for the same reason. cargo-fuzz passes -Z
# flags: nightly if installed, else stable told to accept them.
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  fuzz=(env RUSTC_BOOTSTRAP=1 cargo fuzz)
fi
"${fuzz[@]}" build --fuzz-dir tests/fuzz
fuzz_scratch=$(mktemp -d)
for target in $("${fuzz[@]}" list --fuzz-dir tests/fuzz); do
  # New inputs go to the scratch dir, never into the committed corpus.
  mkdir -p "$fuzz_scratch/$target" "tests/fuzz/corpus/$target"
  if ! "${fuzz[@]}" run --fuzz-dir tests/fuzz "$target" "$fuzz_scratch/$target" \
    "tests/fuzz/corpus/$target" -- -runs=1000 >"$fuzz_scratch/$target.log" 2>&1; then
    tail -n 40 "$fuzz_scratch/$target.log" >&2
    echo "tools/test.sh: fuzz smoke run of $target failed" >&2
    exit 1
  fi
done
rm -rf "$fuzz_scratch"
tools/e2e.sh target/release/kora
# Every kind of client at once for 20 s (bench/soak.py): invariants of
# transactions, queues, pub/sub and counters, and no connection left open.
python3 bench/soak.py --seconds 20 --hogs 0 --churners 2 --kora target/release/kora
# redis-py's own suite as a compatibility gauge: the tests it passed before
# (tests/python/redis-py-gauge.txt) must still pass; most of the suite
# exercises commands Kora lacks, so the whole suite passing is not the bar.
tools/redis-py-gauge.sh target/release/kora
tools/prometheus-e2e.sh target/release/kora
