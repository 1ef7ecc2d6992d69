#!/usr/bin/env bash
# Measures `invstream serve` against `invstream produce` on the same broker in one run: how many
# updates per second the gateway stores when they arrive as NDJSON posts of 1,000 lines from a
# real HTTP load generator (wrk), next to produce's own rate. Both deduplicate (the gateway always
# publishes under its name, `invstream-STREAM-serve`; produce under its default name), so the
# ratio is the gateway's own cost, not deduplication's.
#
#   scripts/bench-serve.sh [SECONDS] [CONNECTIONS]     (defaults: 10 8)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECONDS_RUN="${1:-10}"
CONNECTIONS="${2:-8}"
PORT=18089

command -v wrk >/dev/null || { echo "bench-serve: installing wrk" >&2; apt-get install -y -q wrk >/dev/null; }
bash scripts/broker.sh up
cargo build --release --quiet --bin invstream
INVSTREAM=target/release/invstream
OUT="$(mktemp -d)"
# Both streams are deleted (each holds gigabytes): produce's before serve starts, so its
# writeback does not slow serve down; serve's at the end, however the script ends.
drop() { "$INVSTREAM" --quiet streams delete "$1" --yes >/dev/null 2>&1 || true; }
trap 'kill -TERM "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; drop "bench-serve-$$"; rm -rf "$OUT"' EXIT

# 1,000 updates without seq (the gateway numbers them), as one NDJSON body.
python3 - "$OUT/body.ndjson" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(1000):
        stock = 20 + i % 150
        f.write(json.dumps({"product_id": 1 + i % 1000, "sku": f"SKU-{1 + i % 1000:06}", "warehouse": "AMS-1",
                            "event": "sold", "quantity_delta": -1, "stock_level": stock}) + "\n")
PY
cat >"$OUT/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/x-ndjson"
local f = io.open("$OUT/body.ndjson", "r")
wrk.body = f:read("*a")
f:close()
LUA

produce_rate=$("$INVSTREAM" --quiet --json --stream "bench-produce-$$" produce --count 1000000 \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["msg_per_s"])')
drop "bench-produce-$$"

"$INVSTREAM" --quiet --stream "bench-serve-$$" serve --listen "127.0.0.1:$PORT" >"$OUT/serve.out" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done
confirmed() { curl -s "http://127.0.0.1:$PORT/metrics" | awk '$1 == "invstream_confirmed_total" {print $2}'; }
before=$(confirmed)
wrk -t2 -c"$CONNECTIONS" -d"${SECONDS_RUN}s" -s "$OUT/post.lua" "http://127.0.0.1:$PORT/updates" >"$OUT/wrk.txt"
after=$(confirmed)
kill -TERM "$SERVE_PID"; wait "$SERVE_PID" || true

python3 - "$produce_rate" "$before" "$after" "$SECONDS_RUN" "$CONNECTIONS" "$OUT/wrk.txt" "$(bash scripts/broker.sh version 2>/dev/null || echo unknown)" <<'PY'
import sys
produce, before, after, secs, conns, wrk_path, version = sys.argv[1:8]
serve = (int(after) - int(before)) / float(secs)
produce = float(produce)
wrk = open(wrk_path).read()
non2xx = [l.strip() for l in wrk.splitlines() if "Non-2xx" in l]
print(f"RabbitMQ {version}; serve: wrk -t2 -c{conns} -d{secs}s, NDJSON posts of 1,000 updates\n")
print("| run | updates/s | vs produce |")
print("|---|---:|---:|")
print(f"| invstream produce --count 1000000 | {produce:,.0f} | 1.00× |")
print(f"| invstream serve (confirmed, from /metrics) | {serve:,.0f} | {serve / produce:.2f}× |")
print("\nwrk:", " / ".join(l.strip() for l in wrk.splitlines() if l.strip().startswith(("Requests/sec", "Latency"))), *non2xx)
PY
