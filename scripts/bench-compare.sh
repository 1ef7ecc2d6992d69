#!/usr/bin/env bash
# Measures invstream against the naive use of rabbitmq-stream-client (examples/naive_baseline.rs)
# on the same broker in the same run: produce COUNT updates, then consume them from first.
# Each pair runs ROUNDS times, alternating, each on a fresh stream; the table shows medians.
# Client CPU (user + sys) and peak RSS come from /usr/bin/time; broker CPU from the RabbitMQ
# process listening on localhost:5552 (/proc/PID/stat before and after each run).
# "ceiling" is the baseline client sending one pre-built body: what the broker allows.
#
#   scripts/bench-compare.sh [COUNT] [ROUNDS]     (defaults: 100000 3)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
COUNT="${1:-100000}"
ROUNDS="${2:-3}"
[ -x /usr/bin/time ] || { echo "bench-compare: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

bash scripts/broker.sh up
cargo build --release --quiet --bin invstream --example naive_baseline
INVSTREAM=target/release/invstream
BASELINE=target/release/examples/naive_baseline
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
BROKER_PID="$(ss -ltnpH 'sport = :5552' | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)"
TICKS="$(getconf CLK_TCK)"
broker_cpu_s() {
    if [ -n "$BROKER_PID" ] && [ -r "/proc/$BROKER_PID/stat" ]; then
        awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$BROKER_PID/stat"
    else
        echo nan
    fi
}

# run NAME STREAM -- COMMAND…: one measured run; its JSON line and "user sys maxrss_kb" are kept.
run() {
    local name=$1 stream=$2 before after; shift 3
    before="$(broker_cpu_s)"
    /usr/bin/time -f "%U %S %M" -o "$OUT/time" "$@" >"$OUT/json" 2>"$OUT/stderr" \
        || { cat "$OUT/stderr" >&2; exit 1; }
    after="$(broker_cpu_s)"
    printf '%s\t%s\t%s\t%s %s\n' "$name" "$stream" "$(tail -n1 "$OUT/json")" "$(tail -n1 "$OUT/time")" \
        "$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$before" "$after")" >>"$OUT/results"
}

for round in $(seq 1 "$ROUNDS"); do
    base="bench-baseline-$$-$round"
    inv="bench-invstream-$$-$round"
    echo "bench-compare: round $round/$ROUNDS" >&2
    run ceiling-produce "$base-ceiling" -- "$BASELINE" ceiling "$base-ceiling" "$COUNT"
    run baseline-produce "$base" -- "$BASELINE" produce "$base" "$COUNT"
    run invstream-produce "$inv" -- "$INVSTREAM" --quiet --json --stream "$inv" produce --count "$COUNT"
    run invstream-produce-nofilter "$inv-nf" -- "$INVSTREAM" --quiet --json --stream "$inv-nf" produce --count "$COUNT" --no-filter-values
    run invstream-produce-subentry "$inv-se" -- "$INVSTREAM" --quiet --json --stream "$inv-se" produce --count "$COUNT" --sub-entry-size 100
    run invstream-produce-subentry-zstd "$inv-sez" -- "$INVSTREAM" --quiet --json --stream "$inv-sez" produce --count "$COUNT" --sub-entry-size 100 --compression zstd
    run baseline-consume "$base" -- "$BASELINE" consume "$base" "$COUNT"
    run invstream-consume-subentry "$inv-se" -- "$INVSTREAM" --quiet --json --stream "$inv-se" consume --offset first
    run invstream-consume "$inv" -- "$INVSTREAM" --quiet --json --stream "$inv" consume --offset first
    # The baseline consumer on invstream's messages, which carry properties (content type,
    # product_id, event) that the client decodes for every message: the like-for-like comparison.
    run baseline-consume-same "$inv" -- "$BASELINE" consume "$inv" "$COUNT"
    # Streams left on disk (gigabytes per round) slow every later run down: delete them.
    for stream in "$base-ceiling" "$base" "$inv" "$inv-nf" "$inv-se" "$inv-sez"; do
        "$BASELINE" delete "$stream" || echo "bench-compare: could not delete stream $stream" >&2
    done
done

VERSION="$(bash scripts/broker.sh version 2>/dev/null || echo unknown)"
python3 - "$OUT/results" "$COUNT" "$ROUNDS" "$VERSION" <<'PY'
import json, statistics, sys
path, count, rounds, version = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
rows = {}
for line in open(path):
    name, stream, js, t = line.rstrip("\n").split("\t")
    user, sys_, rss, broker = t.split()
    r = json.loads(js)
    rows.setdefault(name, []).append({
        "msg_per_s": r["msg_per_s"],
        "cpu_us_per_msg": (float(user) + float(sys_)) * 1e6 / count,
        "rss_mb": int(rss) / 1024,
        "broker_us_per_msg": float(broker) * 1e6 / count,
        "p50": r.get("latency_us", {}).get("p50"),
        "p99": r.get("latency_us", {}).get("p99"),
    })
med = lambda name, key: statistics.median(x[key] for x in rows[name])
print(f"RabbitMQ {version}, {count:,} messages, median of {rounds} rounds\n")
print("| run | msg/s | min – max msg/s | vs baseline | client CPU µs/msg | broker CPU µs/msg | peak RSS MB | latency p50 / p99 µs |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
labels = {
    "ceiling-produce": "ceiling: baseline client, one pre-built body",
    "baseline-produce": "baseline produce (bare JSON bodies)",
    "invstream-produce": "invstream produce (JSON + properties + filter values)",
    "invstream-produce-nofilter": "invstream produce --no-filter-values",
    "baseline-consume": "baseline consume (its own bare messages)",
    "baseline-consume-same": "baseline consume (invstream's messages)",
    "invstream-consume": "invstream consume",
    "invstream-produce-subentry": "invstream produce --sub-entry-size 100",
    "invstream-produce-subentry-zstd": "invstream produce --sub-entry-size 100 --compression zstd",
    "invstream-consume-subentry": "invstream consume (sub-entry stream)",
}
for name, base_name in [("ceiling-produce", "baseline-produce"), ("baseline-produce", "baseline-produce"), ("invstream-produce", "baseline-produce"),
                        ("invstream-produce-nofilter", "baseline-produce"),
                        ("invstream-produce-subentry", "baseline-produce"),
                        ("invstream-produce-subentry-zstd", "baseline-produce"),
                        ("baseline-consume", "baseline-consume"), ("baseline-consume-same", "baseline-consume"),
                        ("invstream-consume", "baseline-consume"),
                        ("invstream-consume-subentry", "baseline-consume")]:
    base = med(base_name, "msg_per_s")
    lat = "n/a" if name.startswith(("baseline", "ceiling")) else f"{med(name, 'p50'):,.0f} / {med(name, 'p99'):,.0f}"
    spread = f"{min(x['msg_per_s'] for x in rows[name]):,.0f} – {max(x['msg_per_s'] for x in rows[name]):,.0f}"
    print(f"| {labels[name]} | {med(name, 'msg_per_s'):,.0f} | {spread} | {med(name, 'msg_per_s') / base:.2f}× "
          f"| {med(name, 'cpu_us_per_msg'):.2f} | {med(name, 'broker_us_per_msg'):.2f} | {med(name, 'rss_mb'):.0f} | {lat} |")
same = med("invstream-consume", "msg_per_s") / med("baseline-consume-same", "msg_per_s")
print(f"\ninvstream consume vs the baseline on the same messages: {same:.2f}×")
ceiling = med("ceiling-produce", "msg_per_s")
for name in ["invstream-produce", "invstream-produce-nofilter"]:
    print(f"{labels[name]} vs the broker ceiling: {med(name, 'msg_per_s') / ceiling:.0%}")
PY
