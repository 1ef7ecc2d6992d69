#!/usr/bin/env bash
# Measures invstream against the naive use of rabbitmq-stream-client (examples/naive_baseline.rs)
# on the same broker in the same run: produce COUNT updates, then consume them from first.
# Each pair runs ROUNDS times, alternating, each on a fresh stream; the table shows medians.
# msg/s and "elapsed s" are each tool's own clock (produce: producer ready to last confirm;
# consume: subscribed to last message; the baseline is timed like invstream); "wall s" is the
# whole process from /usr/bin/time (%e, 10 ms resolution): start-up, connecting, closing.
# Client CPU (user + sys) and peak RSS come from /usr/bin/time; broker CPU from the RabbitMQ
# process listening on localhost:5552 (/proc/PID/stat before and after each run).
# "ceiling" is the baseline client sending one pre-built body: what the broker allows.
# "baseline produce, named" is the same client with a producer name (`.name(...)`), so the broker
# deduplicates its messages as it does invstream's by default: the like-for-like baseline for
# invstream's default produce (issue 25; docs/BENCHMARKS.md). "invstream produce --no-dedup" is
# invstream without a name, like for like with the unnamed baseline.
#
# BENCH_PORT=5560 measures against a broker on another localhost port (e.g. a node of its own,
# `scripts/broker.sh node-up perf 5560`, away from the test broker's other users).
#
# A/B against an older invstream: INVSTREAM_BEFORE=/path/to/old/invstream (a release binary
# built from an older commit) adds a "before:" row for each invstream row, run next to it in
# every round (which goes first alternates from round to round), and a table of current/before
# ratios, so a refactor's "no slowdown" is shown on one noisy machine in one run. Both consume
# the same streams (written by the current binary). Flags for "with filter values" and
# "without" are chosen per binary: one whose `produce --help` has --filter-values tags only when
# asked; an older one tags unless given --no-filter-values.
#
#   scripts/bench-compare.sh [COUNT] [ROUNDS]     (defaults: 100000 3)
#   INVSTREAM_BEFORE=target-before/release/invstream scripts/bench-compare.sh 1000000 5
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
COUNT="${1:-100000}"
ROUNDS="${2:-3}"
[ -x /usr/bin/time ] || { echo "bench-compare: needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

BEFORE="${INVSTREAM_BEFORE:-}"
if [ -n "$BEFORE" ]; then
    [ -x "$BEFORE" ] || { echo "bench-compare: INVSTREAM_BEFORE=$BEFORE is not an executable" >&2; exit 1; }
    BEFORE="$(realpath "$BEFORE")"
fi

PORT="${BENCH_PORT:-5552}"
if [ "$PORT" = 5552 ]; then
    bash scripts/broker.sh up
fi
export INVSTREAM_URI="rabbitmq-stream://guest:guest@localhost:$PORT/%2f"
export NAIVE_BASELINE_PORT="$PORT"
cargo build --release --quiet --bin invstream --example naive_baseline
INVSTREAM=target/release/invstream
BASELINE=target/release/examples/naive_baseline
[ "$(realpath "$INVSTREAM")" != "$BEFORE" ] || { echo "bench-compare: INVSTREAM_BEFORE is the current binary" >&2; exit 1; }
OUT="$(mktemp -d)"
# BENCH_RESULTS=FILE keeps every run's raw row (name, round, stream, JSON summary, "user sys
# maxrss_kb wall_s broker_cpu_s") for a closer look than the medians.
trap '[ -z "${BENCH_RESULTS:-}" ] || cp "$OUT/results" "$BENCH_RESULTS"; rm -rf "$OUT"' EXIT
touch "$OUT/results"

# filter_flag BINARY with|without: that binary's produce flag for publishing with filter values,
# or without them (empty when it is the default).
filter_flag() {
    local help
    help="$("$1" produce --help 2>&1 || true)"
    if grep -qE -- '(^|[[:space:],])--filter-values([[:space:],=]|$)' <<<"$help"; then
        [ "$2" = without ] || echo --filter-values
    else
        [ "$2" = with ] || echo --no-filter-values
    fi
}
CUR_WITH="$(filter_flag "$INVSTREAM" with)"
CUR_WITHOUT="$(filter_flag "$INVSTREAM" without)"
if [ -n "$BEFORE" ]; then
    BEF_WITH="$(filter_flag "$BEFORE" with)"
    BEF_WITHOUT="$(filter_flag "$BEFORE" without)"
    echo "bench-compare: before = $BEFORE (filter values: '${BEF_WITH}' / '${BEF_WITHOUT}');" \
        "current = $INVSTREAM ('${CUR_WITH}' / '${CUR_WITHOUT}')" >&2
fi
BROKER_PID="$(ss -ltnpH "sport = :$PORT" | grep -o 'pid=[0-9]*' | head -n1 | cut -d= -f2)"
TICKS="$(getconf CLK_TCK)"
broker_cpu_s() {
    if [ -n "$BROKER_PID" ] && [ -r "/proc/$BROKER_PID/stat" ]; then
        awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$BROKER_PID/stat"
    else
        echo nan
    fi
}

# run NAME STREAM -- COMMAND…: one measured run; its JSON line, "user sys maxrss_kb wall_s" and
# the broker's CPU seconds are kept.
run() {
    local name=$1 stream=$2 before after; shift 3
    before="$(broker_cpu_s)"
    /usr/bin/time -f "%U %S %M %e" -o "$OUT/time" "$@" >"$OUT/json" 2>"$OUT/stderr" \
        || { echo "bench-compare: $name failed: $*" >&2; cat "$OUT/stderr" >&2; exit 1; }
    after="$(broker_cpu_s)"
    printf '%s\t%s\t%s\t%s\t%s %s\n' "$name" "$round" "$stream" "$(tail -n1 "$OUT/json")" "$(tail -n1 "$OUT/time")" \
        "$(python3 -c "import sys; print(float(sys.argv[2]) - float(sys.argv[1]))" "$before" "$after")" >>"$OUT/results"
}

# inv current|before NAME STREAM ARGS…: one invstream run (NAME is prefixed "before-" for the
# before binary); in ARGS, +filter and -filter stand for that binary's flag for "with filter
# values" and "without", and @stream for STREAM.
inv() {
    local who=$1 name=$2 stream=$3 bin=$INVSTREAM with=$CUR_WITH without=$CUR_WITHOUT arg; shift 3
    if [ "$who" = before ]; then
        bin=$BEFORE with=$BEF_WITH without=$BEF_WITHOUT name="before-$name"
    fi
    local args=()
    for arg in "$@"; do
        case $arg in
            +filter) [ -z "$with" ] || args+=("$with") ;;
            -filter) [ -z "$without" ] || args+=("$without") ;;
            @stream) args+=("$stream") ;;
            *) args+=("$arg") ;;
        esac
    done
    case " ${args[*]} " in
        # A super stream is named by its command's --super-stream (--stream beside it is refused).
        *" --super-stream "*) run "$name" "$stream" -- "$bin" --quiet --json "${args[@]}" ;;
        *) run "$name" "$stream" -- "$bin" --quiet --json --stream "$stream" "${args[@]}" ;;
    esac
}

# ab NAME STREAM BEFORE_STREAM ARGS…: the invstream row on STREAM and, with INVSTREAM_BEFORE,
# the before binary's on BEFORE_STREAM, one after the other; odd rounds run the current first.
ab() {
    local name=$1 stream=$2 before_stream=$3; shift 3
    if [ -z "$BEFORE" ]; then
        inv current "$name" "$stream" "$@"
    elif [ $((round % 2)) = 1 ]; then
        inv current "$name" "$stream" "$@"
        inv before "$name" "$before_stream" "$@"
    else
        inv before "$name" "$before_stream" "$@"
        inv current "$name" "$stream" "$@"
    fi
}

# drop STREAM…: deletes streams no later run reads, at once: a 1,000,000-message stream is ~300 MB
# of dirty pages, and its writeback would slow whichever run comes next.
drop() {
    local stream
    for stream in "$@"; do
        "$BASELINE" delete "$stream" >/dev/null || echo "bench-compare: could not delete stream $stream" >&2
    done
}

# The produce rows the issue-25 ratios compare (plain and named baseline, invstream's default and
# --no-dedup, a one-partition super stream): run in a rotated order each round, so none is always the one after the others.
row_plain() { run baseline-produce "$base" -- "$BASELINE" produce "$base" "$COUNT"; }
row_named() {
    run baseline-produce-named "$base-named" -- env NAIVE_BASELINE_PRODUCER_NAME="$base-named" "$BASELINE" produce "$base-named" "$COUNT"
    drop "$base-named"
}
row_nodedup() {
    ab invstream-produce-nodedup "$inv-nd" "$bef-nd" produce --count "$COUNT" --no-dedup -filter
    drop "$inv-nd"
    [ -z "$BEFORE" ] || drop "$bef-nd"
}
row_default() {
    ab invstream-produce-nofilter "$inv-nf" "$bef-nf" produce --count "$COUNT" -filter
    drop "$inv-nf"
    [ -z "$BEFORE" ] || drop "$bef-nf"
}
# A super stream of one partition: what routing costs over writing the stream directly.
row_super1() {
    ab invstream-produce-super1 "$inv-s1" "$bef-s1" produce --super-stream @stream --partitions 1 --count "$COUNT" -filter
    "$BASELINE" delete-super "$inv-s1" >/dev/null || echo "bench-compare: could not delete super stream $inv-s1" >&2
    [ -z "$BEFORE" ] || "$BASELINE" delete-super "$bef-s1" >/dev/null || echo "bench-compare: could not delete super stream $bef-s1" >&2
}
ROWS=(row_plain row_named row_nodedup row_default row_super1)

for round in $(seq 1 "$ROUNDS"); do
    base="bench-baseline-$$-$round"
    inv="bench-invstream-$$-$round"
    bef="bench-before-$$-$round"
    echo "bench-compare: round $round/$ROUNDS" >&2
    run ceiling-produce "$base-ceiling" -- "$BASELINE" ceiling "$base-ceiling" "$COUNT"
    drop "$base-ceiling"
    for k in "${!ROWS[@]}"; do
        "${ROWS[$(((k + round) % ${#ROWS[@]}))]}"
    done
    ab invstream-produce "$inv" "$bef" produce --count "$COUNT" +filter
    # Sub-entry batches never carry filter values.
    ab invstream-produce-subentry "$inv-se" "$bef-se" produce --count "$COUNT" --sub-entry-size 100
    ab invstream-produce-subentry-zstd "$inv-sez" "$bef-sez" produce --count "$COUNT" --sub-entry-size 100 --compression zstd
    drop "$inv-sez"
    [ -z "$BEFORE" ] || drop "$bef-sez"
    run baseline-consume "$base" -- "$BASELINE" consume "$base" "$COUNT"
    ab invstream-consume-subentry "$inv-se" "$inv-se" consume --offset first
    ab invstream-consume "$inv" "$inv" consume --offset first
    # The baseline consumer on invstream's messages, which carry a property (producer) that the
    # client decodes for every message: the like-for-like comparison.
    run baseline-consume-same "$inv" -- "$BASELINE" consume "$inv" "$COUNT"
    # A super stream of 3 partitions (hash routing by product id), written and read whole.
    ab invstream-produce-super3 "$inv-ss" "$bef-ss" produce --super-stream @stream --partitions 3 --count "$COUNT" -filter
    ab invstream-consume-super3 "$inv-ss" "$inv-ss" consume --super-stream @stream --offset first
    # Streams left on disk (gigabytes per round) slow every later run down: delete them.
    streams=("$base" "$inv" "$inv-se")
    [ -z "$BEFORE" ] || streams+=("$bef" "$bef-se")
    drop "${streams[@]}"
    supers=("$inv-ss")
    [ -z "$BEFORE" ] || supers+=("$bef-ss")
    for super in "${supers[@]}"; do
        "$BASELINE" delete-super "$super" || echo "bench-compare: could not delete super stream $super" >&2
    done
done

# The version the broker measured reports (its PeerProperties answer on $PORT): not the test
# broker's, which may be another or stopped when BENCH_PORT names a node of its own.
VERSION="$(python3 - "$PORT" <<'PY' 2>/dev/null || echo unknown
import socket, struct, sys
sock = socket.create_connection(("localhost", int(sys.argv[1])), timeout=5)
request = struct.pack(">HHIi", 0x0011, 1, 1, 0)  # PeerProperties, version 1, correlation 1, no properties
sock.sendall(struct.pack(">I", len(request)) + request)
def exact(n):
    got = b""
    while len(got) < n:
        part = sock.recv(n - len(got))
        if not part:
            raise EOFError
        got += part
    return got
frame = exact(struct.unpack(">I", exact(4))[0])
count, at, answer = struct.unpack(">i", frame[10:14])[0], 14, {}
def string():
    global at
    n = struct.unpack(">h", frame[at:at + 2])[0]
    at += 2 + n
    return frame[at - n:at].decode()
for _ in range(count):
    key = string()
    answer[key] = string()
print(answer["version"])
PY
)"
python3 - "$OUT/results" "$COUNT" "$ROUNDS" "$VERSION" "$BEFORE" <<'PY'
import json, statistics, sys
path, count, rounds, version, before = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = {}
for line in open(path):
    name, rnd, stream, js, t = line.rstrip("\n").split("\t")
    user, sys_, rss, wall, broker = t.split()
    r = json.loads(js)
    rows.setdefault(name, []).append({
        "round": int(rnd),
        "msg_per_s": r["msg_per_s"],
        "elapsed_s": r["elapsed_s"],
        "wall_s": float(wall),
        "cpu_us_per_msg": (float(user) + float(sys_)) * 1e6 / count,
        "rss_mb": int(rss) / 1024,
        "broker_us_per_msg": float(broker) * 1e6 / count,
        "p50": r.get("latency_us", {}).get("p50"),
        "p99": r.get("latency_us", {}).get("p99"),
    })
med = lambda name, key: statistics.median(x[key] for x in rows[name])
print(f"RabbitMQ {version}, {count:,} messages, median of {rounds} rounds")
if before:
    print(f"before: {before}")
print()
print("| run | msg/s | min – max msg/s | vs baseline | elapsed s | wall s | client CPU µs/msg | broker CPU µs/msg | peak RSS MB | latency p50 / p99 µs |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
labels = {
    "ceiling-produce": "ceiling: baseline client, one pre-built body",
    "baseline-produce": "baseline produce (bare JSON bodies)",
    "baseline-produce-named": "baseline produce, named (bare JSON bodies, deduplicated)",
    "invstream-produce-nodedup": "invstream produce --no-dedup (no producer name, no filter values)",
    "invstream-produce": "invstream produce (JSON + properties + filter values)",
    "invstream-produce-nofilter": "invstream produce (the default: named, no filter values)",
    "baseline-consume": "baseline consume (its own bare messages)",
    "baseline-consume-same": "baseline consume (invstream's messages)",
    "invstream-consume": "invstream consume",
    "invstream-produce-subentry": "invstream produce --sub-entry-size 100",
    "invstream-produce-subentry-zstd": "invstream produce --sub-entry-size 100 --compression zstd",
    "invstream-consume-subentry": "invstream consume (sub-entry stream)",
    "invstream-produce-super1": "invstream produce, super stream of 1 partition (named, no filter values)",
    "invstream-produce-super3": "invstream produce, super stream of 3 partitions (no filter values)",
    "invstream-consume-super3": "invstream consume, super stream of 3 partitions",
}
order = [("ceiling-produce", "baseline-produce"), ("baseline-produce", "baseline-produce"),
         ("baseline-produce-named", "baseline-produce"), ("invstream-produce", "baseline-produce"),
         ("invstream-produce-nofilter", "baseline-produce"),
         ("invstream-produce-nodedup", "baseline-produce"),
         ("invstream-produce-subentry", "baseline-produce"),
         ("invstream-produce-subentry-zstd", "baseline-produce"),
         ("baseline-consume", "baseline-consume"), ("baseline-consume-same", "baseline-consume"),
         ("invstream-consume", "baseline-consume"),
         ("invstream-consume-subentry", "baseline-consume"),
         ("invstream-produce-super1", "baseline-produce"),
         ("invstream-produce-super3", "baseline-produce"), ("invstream-consume-super3", "baseline-consume")]
for name, base_name in list(order):
    if "before-" + name in rows:
        labels["before-" + name] = "before: " + labels[name]
        order.insert(order.index((name, base_name)) + 1, ("before-" + name, base_name))
for name, base_name in order:
    base = med(base_name, "msg_per_s")
    latencies = [x[k] for x in rows[name] for k in ("p50", "p99")]
    lat = "n/a" if None in latencies else f"{med(name, 'p50'):,.0f} / {med(name, 'p99'):,.0f}"
    spread = f"{min(x['msg_per_s'] for x in rows[name]):,.0f} – {max(x['msg_per_s'] for x in rows[name]):,.0f}"
    print(f"| {labels[name]} | {med(name, 'msg_per_s'):,.0f} | {spread} | {med(name, 'msg_per_s') / base:.2f}× "
          f"| {med(name, 'elapsed_s'):.3f} | {med(name, 'wall_s'):.2f} "
          f"| {med(name, 'cpu_us_per_msg'):.2f} | {med(name, 'broker_us_per_msg'):.2f} | {med(name, 'rss_mb'):.0f} | {lat} |")
named = med("baseline-produce-named", "msg_per_s")
default = med("invstream-produce-nofilter", "msg_per_s")
print(f"\ninvstream produce (the default: named, deduplicated) vs the named baseline: "
      f"{default / named:.2f}×; vs the unnamed baseline: "
      f"{default / med('baseline-produce', 'msg_per_s'):.2f}×")
print(f"deduplication's cost: named / unnamed baseline {named / med('baseline-produce', 'msg_per_s'):.2f}×, "
      f"invstream default / --no-dedup {default / med('invstream-produce-nodedup', 'msg_per_s'):.2f}×; "
      f"broker CPU µs/msg named {med('baseline-produce-named', 'broker_us_per_msg'):.2f} vs unnamed "
      f"{med('baseline-produce', 'broker_us_per_msg'):.2f} (baseline), {med('invstream-produce-nofilter', 'broker_us_per_msg'):.2f} vs "
      f"{med('invstream-produce-nodedup', 'broker_us_per_msg'):.2f} (invstream)")
print(f"invstream produce to a super stream of 1 partition vs to a stream (both the default): "
      f"{med('invstream-produce-super1', 'msg_per_s') / default:.2f}×")
same = med("invstream-consume", "msg_per_s") / med("baseline-consume-same", "msg_per_s")
print(f"\ninvstream consume vs the baseline on the same messages: {same:.2f}×")
ceiling = med("ceiling-produce", "msg_per_s")
for name in ["invstream-produce", "invstream-produce-nofilter"]:
    print(f"{labels[name]} vs the broker ceiling: {med(name, 'msg_per_s') / ceiling:.0%}")

if before:
    # Ratios of current to before: of the medians, and per round (the two ran back to back).
    print(f"\ncurrent / before (INVSTREAM_BEFORE), > 1 is faster now:\n")
    print("| run | msg/s ratio (medians) | per-round min – max | wall s ratio (medians, < 1 is faster now) | client CPU ratio |")
    print("|---|---:|---:|---:|---:|")
    for name, _ in order:
        if not name.startswith("invstream-") or "before-" + name not in rows:
            continue
        then = {x["round"]: x for x in rows["before-" + name]}
        paired = [x["msg_per_s"] / then[x["round"]]["msg_per_s"] for x in rows[name] if x["round"] in then]
        wall = med(name, "wall_s") / med("before-" + name, "wall_s") if med("before-" + name, "wall_s") > 0 else float("nan")
        print(f"| {labels[name]} | {med(name, 'msg_per_s') / med('before-' + name, 'msg_per_s'):.2f}× "
              f"| {min(paired):.2f} – {max(paired):.2f} | {wall:.2f} "
              f"| {med(name, 'cpu_us_per_msg') / med('before-' + name, 'cpu_us_per_msg'):.2f} |")
PY
