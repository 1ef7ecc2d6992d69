#!/usr/bin/env bash
# Scaling on the 3-node cluster (scripts/cluster.sh): the aggregate publish rate of one stream and
# of super streams of 1, 3 and 6 partitions (leaders spread over the nodes), with simple entries
# and with sub-entry batches of 100, in one run. Each configuration runs ROUNDS times on a fresh
# (super) stream; the table shows medians with min–max and each row against one partition.
#
#   scripts/bench-scale.sh [COUNT] [ROUNDS]     (defaults: 1000000 3)
#
# Needs a release build (built here) and the cluster (started here if it is not up).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
COUNT="${1:-1000000}"
ROUNDS="${2:-3}"

bash scripts/cluster.sh up >&2
cargo build --release --quiet --bin invstream
INVSTREAM=target/release/invstream
URIS="$(bash scripts/cluster.sh uris | paste -sd, -)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

# One measured run: `invstream ARGS…` with --json; its msg/s is appended to $OUT/LABEL.
run() {
    local label=$1; shift
    "$INVSTREAM" --uri "$URIS" --quiet --json "$@" >"$OUT/json" 2>"$OUT/stderr" \
        || { cat "$OUT/stderr" >&2; exit 1; }
    python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['msg_per_s'])" "$OUT/json" \
        >>"$OUT/$label"
}

# Deletes what a round made (the broker's disk fills otherwise, and later rounds slow down).
cleanup() {
    for name in "$@"; do
        bash scripts/cluster.sh ctl 1 delete_queue "$name" >/dev/null 2>&1 || true
    done
}

for round in $(seq "$ROUNDS"); do
    for batching in simple sub-entry; do
        extra=()
        [ "$batching" = sub-entry ] && extra=(--sub-entry-size 100)
        stream="scale-$$-$round-$batching"
        run "stream-$batching" --stream "$stream" produce --count "$COUNT" "${extra[@]}"
        cleanup "$stream"
        for partitions in 1 3 6; do
            super="scale-$$-$round-$batching-p$partitions"
            run "p$partitions-$batching" produce --super-stream "$super" --partitions "$partitions" \
                --count "$COUNT" "${extra[@]}"
            names=()
            for i in $(seq 0 $((partitions - 1))); do names+=("$super-$i"); done
            cleanup "${names[@]}"
        done
    done
    echo "bench-scale: round $round of $ROUNDS done" >&2
done

echo "invstream $(git describe --always --dirty 2>/dev/null), $(nproc) cores, RabbitMQ $(bash scripts/cluster.sh ctl 1 version 2>/dev/null | tail -n1), $COUNT updates per run, $ROUNDS rounds"
python3 - "$OUT" <<'PY'
import statistics, sys, os
out = sys.argv[1]
def values(name):
    path = os.path.join(out, name)
    return [float(x) for x in open(path)] if os.path.exists(path) else []
print(f"| {'configuration':<34} | {'median msg/s':>13} | {'min – max':>23} | {'vs 1 partition':>14} |")
print(f"|{'-'*36}|{'-'*15}|{'-'*25}|{'-'*16}|")
for batching in ("simple", "sub-entry"):
    one = values(f"p1-{batching}")
    base = statistics.median(one) if one else None
    rows = [(f"one stream ({batching})", f"stream-{batching}")] + [
        (f"{p} partition{'s' if p > 1 else ''} ({batching})", f"p{p}-{batching}") for p in (1, 3, 6)]
    for label, name in rows:
        v = values(name)
        if not v:
            continue
        m = statistics.median(v)
        ratio = f"{m / base:.2f}x" if base else "-"
        print(f"| {label:<34} | {m:>13,.0f} | {min(v):>10,.0f} – {max(v):>10,.0f} | {ratio:>14} |")
PY
