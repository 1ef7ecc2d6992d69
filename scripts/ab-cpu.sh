#!/usr/bin/env bash
# Client CPU (user + sys), peak RSS and msg/s of two or more invstream binaries doing the same
# work, alternated round by round on the broker at localhost:5552, as medians (min–max): for a
# "this change costs no CPU" check that bench-compare.sh's throughput table cannot show.
#
#   scripts/ab-cpu.sh consume STREAM ROUNDS BIN...   read STREAM from first (--count COUNT, default
#                                                   1,000,000; the stream must hold that many)
#   scripts/ab-cpu.sh produce ROUNDS BIN...          produce COUNT updates to a fresh stream per run,
#                                                   deleted afterwards
#
# The first binary gets BEFORE_FLAGS, the others CURRENT_FLAGS (e.g. BEFORE_FLAGS=--no-filter-values
# for a build from before filter values became opt-in).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x /usr/bin/time ] || { echo "ab-cpu: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
MODE="${1:?consume|produce}"; shift
COUNT="${COUNT:-1000000}"
if [ "$MODE" = consume ]; then STREAM="${1:?stream}"; shift; fi
ROUNDS="${1:?rounds}"; shift
[ $# -ge 2 ] || { echo "ab-cpu: give at least two binaries" >&2; exit 2; }
FIRST="$1"
OUT="$(mktemp -d)"
CREATED=()
# The produced streams go when the run ends (Python's rstream, as scripts/test.sh installs it).
cleanup() {
    if [ "${#CREATED[@]}" -gt 0 ]; then
        "$(bash scripts/broker.sh rstream)" - "${CREATED[@]}" <<'PY' || echo "ab-cpu: could not delete ${CREATED[*]}" >&2
import asyncio, sys
from rstream import Producer
async def main():
    async with Producer("localhost", port=5552, username="guest", password="guest") as producer:
        for name in sys.argv[1:]:
            await producer.delete_stream(name)
asyncio.run(main())
PY
    fi
    rm -rf "$OUT"
}
trap cleanup EXIT
run=0
for _ in $(seq "$ROUNDS"); do
    for bin in "$@"; do
        run=$((run + 1))
        flags="${CURRENT_FLAGS:-}"; [ "$bin" = "$FIRST" ] && flags="${BEFORE_FLAGS:-}"
        case "$MODE" in
            consume) args=(consume --stream "$STREAM" --offset first --count "$COUNT") ;;
            produce) s="ab-cpu-$$-$run"; CREATED+=("$s"); args=(produce --stream "$s" --count "$COUNT") ;;
            *) echo "ab-cpu: consume or produce, not $MODE" >&2; exit 2 ;;
        esac
        # shellcheck disable=SC2086
        /usr/bin/time -o "$OUT/time" -f "%U %S %M" "$bin" --json "${args[@]}" $flags >"$OUT/json" 2>/dev/null
        read -r user sys rss <"$OUT/time"
        rate=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["msg_per_s"])' "$OUT/json")
        echo "$run $bin $user $sys $rss $rate" >>"$OUT/all"
    done
done
python3 - "$OUT/all" "$@" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
def cell(values, fmt):
    values = sorted(values)
    return f"{fmt % statistics.median(values)} ({fmt % values[0]}–{fmt % values[-1]})"
print("| binary | runs | client CPU s | peak RSS MB | msg/s |")
print("|---|---:|---:|---:|---:|")
for binary in sys.argv[2:]:
    mine = [r for r in rows if r[1] == binary]
    cpu = [float(r[2]) + float(r[3]) for r in mine]
    rss = [int(r[4]) / 1024 for r in mine]
    rate = [float(r[5]) for r in mine]
    print(f"| {binary} | {len(mine)} | {cell(cpu, '%.3f')} | {cell(rss, '%.0f')} | {cell(rate, '%.0f')} |")
PY
