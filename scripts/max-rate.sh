#!/usr/bin/env bash
# The highest sustainable rate (bench --find-max-rate) of this machine's single node and 3-node
# cluster, for one stream and a 3-partition super stream, simple and sub-entry: eight searches
# with the release binary, one after another, a Markdown table on stdout (docs/BENCHMARKS.md
# keeps it). Run it on a quiet machine: a compile beside it halves the figures.
#
#   scripts/max-rate.sh [SETTLE] [PRECISION]     (defaults: 10s 5%)
#   MAX_RATE_TARGETS=single scripts/max-rate.sh  (only the single node; or cluster)
#   MAX_RATE_TARGETS=custom MAX_RATE_URIS=rabbitmq-stream://u:p@n1:5552/%2f,rabbitmq-stream://u:p@n2:5552/%2f \
#       scripts/max-rate.sh                       (your own nodes, started by you)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SETTLE="${1:-10s}"
PRECISION="${2:-5%}"
TARGETS="${MAX_RATE_TARGETS:-single cluster}"
cargo build --release --quiet --bin invstream
INVSTREAM=target/release/invstream
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

echo "| broker | shape | batching | max sustainable msg/s | lowest failed msg/s | tries | at the max: confirm p99 (worst s) ms |"
echo "|---|---|---|---:|---:|---:|---:|"
for target in $TARGETS; do
    case "$target" in
        single) bash scripts/broker.sh up >&2; uris=(--uri rabbitmq-stream://guest:guest@localhost:5552/%2f) ;;
        cluster)
            bash scripts/cluster.sh up >&2
            uris=()
            while read -r uri; do uris+=(--uri "$uri"); done < <(bash scripts/cluster.sh uris)
            ;;
        custom)
            [ -n "${MAX_RATE_URIS:-}" ] || { echo "max-rate: custom needs MAX_RATE_URIS (comma-separated URIs)" >&2; exit 2; }
            uris=()
            for uri in ${MAX_RATE_URIS//,/ }; do uris+=(--uri "$uri"); done
            ;;
        *) echo "max-rate: unknown target '$target' (single, cluster or custom)" >&2; exit 2 ;;
    esac
    for shape in stream super3; do
        for batching in simple sub-entry; do
            args=()
            [ "$shape" = super3 ] && args+=(--super-stream-partitions 3)
            [ "$batching" = sub-entry ] && args+=(--sub-entry-size 100)
            json="$OUT/$target-$shape-$batching.json"
            echo "max-rate: $target $shape $batching" >&2
            "$INVSTREAM" "${uris[@]}" --json bench --find-max-rate --settle "$SETTLE" \
                --precision "$PRECISION" "${args[@]}" > "$json" || true
            python3 - "$target" "$shape" "$batching" "$json" <<'PY'
import json, sys
target, shape, batching, path = sys.argv[1:5]
outcome = json.load(open(path))
found = outcome.get("max_sustainable_rate")
at = next((t for t in outcome["tries"] if t["rate"] == found and t["verdict"] == "sustained"), None)
shape = {"stream": "one stream", "super3": "super stream, 3 partitions"}[shape]
print(f"| {target} | {shape} | {batching} | {found or 0:,} | {outcome.get('lowest_failed_rate') or 0:,} | "
      f"{len(outcome['tries'])} | {at['confirm_p99_us'] / 1000:.1f} |" if at else
      f"| {target} | {shape} | {batching} | none | {outcome.get('lowest_failed_rate') or 0:,} | {len(outcome['tries'])} | |")
PY
        done
    done
done
