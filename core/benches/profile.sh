#!/usr/bin/env bash
# Profiles the server under the load benchmark, one scenario at a time: while a scenario runs,
# samples the server process for 6 s with call graphs (linux-perf: `apt-get install -y
# linux-perf`; DWARF unwinding, as release builds keep no frame pointers), then folds the
# stacks and draws a flame graph of each where inferno is installed (`cargo install inferno`).
#
#   bash core/benches/profile.sh OUT_DIR [SCENARIO...]     # default: every scenario
#   perf report -i OUT_DIR/cc.data --no-children --sort symbol   # where the CPU went
#
# OUT_DIR gets, per scenario, SCENARIO.txt (the benchmark's own output), SCENARIO.data (perf),
# SCENARIO.folded and SCENARIO.svg (the flame graph), and SCENARIO.top (the 40 functions that
# took the most samples themselves). Scenarios: cc introspect introspect-many userinfo refresh
# device-poll code discovery live. Extra benchmark flags (`--postgres`,
# `--without-observability`) come from PROFILE_BENCH_FLAGS. Sampling costs throughput: read
# shares from the profile and figures from an unprofiled run.
set -u
out=${1:?usage: profile.sh OUT_DIR [SCENARIO...]}
shift
scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(cc introspect introspect-many userinfo refresh device-poll code discovery live)
mkdir -p "$out"
cd "$(dirname "$0")/../.."
cargo bench -p portcullis --bench load --no-run >/dev/null 2>&1 || {
    echo "profile.sh: the benchmark does not build" >&2
    exit 1
}
inferno=$(command -v inferno-collapse-perf || true)
# A virtual machine often has no hardware counters: sample the CPU clock there instead.
event=cycles
perf stat -x, -e cycles true 2>&1 >/dev/null | grep -q '^[0-9]' || event=cpu-clock
for scenario in "${scenarios[@]}"; do
    # Servers already running (another checkout's tests, say) are not the benchmark's.
    others=$(pgrep -f "portcullis serve" || true)
    # shellcheck disable=SC2086
    cargo bench -p portcullis --bench load -- 12 32 --only "$scenario" ${PROFILE_BENCH_FLAGS:-} >"$out/$scenario.txt" 2>&1 &
    bench=$!
    pid=
    until [[ -n $pid ]]; do
        sleep 0.2
        pid=$(pgrep -f "portcullis serve" | grep -vxF "${others:-none}" | tail -1 || true)
        kill -0 "$bench" 2>/dev/null || break
    done
    # The server is up; its clients and tokens are made in the first seconds.
    sleep 4
    perf record -e "$event" -F 499 --call-graph dwarf,16384 -p "$pid" -o "$out/$scenario.data" -- sleep 6 >/dev/null 2>&1
    wait "$bench"
    perf report -i "$out/$scenario.data" --no-children --sort symbol --stdio 2>/dev/null |
        grep -E '^ +[0-9]' | head -40 >"$out/$scenario.top"
    if [[ -n $inferno ]]; then
        perf script -i "$out/$scenario.data" 2>/dev/null | inferno-collapse-perf >"$out/$scenario.folded"
        inferno-flamegraph --title "portcullis: $scenario" <"$out/$scenario.folded" >"$out/$scenario.svg"
    fi
    echo "$scenario: $(grep -E '^[a-z].*req/s' "$out/$scenario.txt" | head -1)"
done
