#!/usr/bin/env bash
# Profiles the load benchmark: while each scenario runs, samples every CPU of the machine
# for 6 s with call graphs (linux-perf: `apt-get install -y linux-perf`).
#
#   bash core/benches/profile.sh OUT_DIR
#   perf report -i OUT_DIR/cc.data --sort comm --no-children -g none      # who used the CPUs
#   perf report -i OUT_DIR/code.data --tid <server threads> --percentage relative --children
#
# OUT_DIR gets bench.txt (the benchmark's own output) and cc.data, intro.data, code.data
# (client credentials, introspection, authorization code flow). Sampling costs throughput:
# read shares from the profile and figures from an unprofiled run.
set -u
out=${1:?usage: profile.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/../.."
cargo bench -p portcullis --bench load -- 10 32 >"$out/bench.txt" 2>&1 &
bench=$!
record() { perf record -a -F 997 -g -o "$out/$1.data" -- sleep 6 >/dev/null 2>&1; }
# The server is up and the first scenario under way.
until pgrep -f "portcullis.*serve" >/dev/null; do sleep 0.5; done
sleep 2.5
record cc
# Each scenario prints its line when it ends; the next starts at once.
until grep -q "^client credentials" "$out/bench.txt"; do sleep 0.2; done
sleep 2
record intro
until grep -q "^introspection" "$out/bench.txt"; do sleep 0.2; done
sleep 2.5
record code
wait $bench
