#!/usr/bin/env bash
# A Jepsen-style run (issue 23): invstream writes and reads on the chaos cluster (scripts/chaos.sh:
# three RabbitMQ nodes in network namespaces of their own) while a seeded nemesis kills, stops,
# pauses, cuts off and restarts nodes, moves leaders, raises disk alarms and cuts the client's
# connections; then everything is read back and checked (scripts/chaos-check.py).
#
#   scripts/chaos-run.sh [--faults LIST] [--interval S] [--duration S | --rounds N] [--seed N]
#                        [--rate N] [--no-dedup] [--out DIR] [--bin PATH] [--keep] [--ci] [--loopback]
#
#   --faults    comma-separated fault names (scripts/chaos.sh), default all
#   --interval  seconds from one fault's start to the next's (default 20)
#   --duration  seconds during which faults start (default 180)
#   --rounds    instead of --duration: every fault of the list this many times
#   --no-dedup  the producers without deduplication (to see the checker count duplicates)
#   --seed      the schedule's seed (default random, printed: give it again to replay a schedule)
#   --rate      updates per second to the stream; the super stream gets half (default 1000)
#   --out       where the run's files go (default /tmp/invstream-chaos-SEED-TIME)
#   --bin       the invstream binary (default target/release/invstream, else target/debug/invstream)
#   --keep      keep the streams (default: deleted after the check)
#   --ci        the short schedule CI runs: every fault type once, back to back, seed 23
#   --loopback  the cluster on 127.0.0.1 (CHAOS_NET=loopback), without the faults that need network
#               namespaces (isolate, isolate-peers, conn-cut); chosen by itself, and said, when
#               namespaces cannot be made (no root, no `ip`, a container without CAP_NET_ADMIN)
#
# The workload, all in the client namespace and with the defaults (deduplication on):
#   produce to a stream, and to a 3-partition super stream (one producer per partition);
#   consume the stream as a named consumer from the leader (storing offsets), and from a replica;
#   consume the super stream as a single-active consumer group member, named.
# The check, once every fault is healed: each stream read back whole; each named consumer reads
# on from its stored offset. Lost, duplicated or reordered confirmed updates, a consumer whose
# reading is not exactly the log, or a stall past its bound fail the run (exit 1). The files:
# run.json, faults.jsonl (the nemesis log), produce-*.json, consume-*.json (the replica reader's
# summary ends its consume-replica.log; consume-replica.arrivals.json is what it printed, per
# second of arrival), log-*.digest.json, summary.json, timeline.svg, and each process's stderr.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "chaos-run: $*" >&2; }
die() { echo "chaos-run: error: $*" >&2; exit 1; }

faults=all interval=20 duration=180 rounds="" seed="" rate=1000 out="" bin="" keep=false dedup=()
while [ $# -gt 0 ]; do
    case "$1" in
        --faults) faults=$2; shift 2 ;;
        --interval) interval=$2; shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --rounds) rounds=$2; shift 2 ;;
        --no-dedup) dedup=(--no-dedup); shift ;;
        --seed) seed=$2; shift 2 ;;
        --rate) rate=$2; shift 2 ;;
        --out) out=$2; shift 2 ;;
        --bin) bin=$2; shift 2 ;;
        --keep) keep=true; shift ;;
        --ci) faults=all interval=0 rounds=1 seed=${seed:-23}; shift ;;
        --loopback) export CHAOS_NET=loopback; shift ;;
        -h | --help) sed -n '2,34p' "$0"; exit 0 ;;
        *) die "unknown option '$1' (see --help)" ;;
    esac
done
for number in "$interval" "$duration" "$rate" ${rounds:+"$rounds"}; do
    [[ "$number" =~ ^[0-9]+$ ]] || die "--interval, --duration, --rounds and --rate take whole numbers, not '$number'"
done
if [ -n "$rounds" ]; then schedule=(--rounds "$rounds"); else schedule=(--duration "$duration"); fi
seed=${seed:-$((RANDOM * 32768 + RANDOM))}
if [ -z "$bin" ]; then
    bin=target/release/invstream
    [ -x "$bin" ] || bin=target/debug/invstream
fi
[ -x "$bin" ] || die "no invstream binary at $bin: cargo build --release first, or give --bin"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"
stamp="$(date +%s)"
out=${out:-/tmp/invstream-chaos-$seed-$stamp}
mkdir -p "$out"
out="$(cd "$out" && pwd)"

chaos() { bash scripts/chaos.sh "$@"; }
set +e
chaos up
rc=$?
if [ "$rc" -eq 3 ] && [ "${CHAOS_NET:-netns}" = netns ]; then
    [[ ",$faults," != *,isolate,* && ",$faults," != *,isolate-peers,* && ",$faults," != *,conn-cut,* ]] ||
        die "--faults $faults needs network namespaces (Linux, root, 'ip'), which are not to be had here"
    say "no network namespaces here: the loopback cluster instead, without isolate, isolate-peers and conn-cut"
    export CHAOS_NET=loopback
    chaos up
    rc=$?
fi
set -e
[ "$rc" -eq 0 ] || die "the chaos cluster did not come up (scripts/chaos.sh up exited $rc); it needs Linux and root, and for partitions 'ip' (iproute2)"
net=${CHAOS_NET:-netns}

uris="$(chaos uris)"
stream="chaos-$seed-$stamp"
super="chaos-ss-$seed-$stamp"
# Updates keep coming through the whole schedule, and for TAIL_S seconds of a healthy cluster
# after it; then the producers and readers are stopped (SIGINT: the producers wait for their
# last confirms), so --count is only a cap.
tail_s=10
super_rate=$((rate / 2))
count=$((rate * 86400)) super_count=$((super_rate * 86400))
# Long enough for any fault and its heal: a run reports what happened, it does not give up.
retry=(--retry-for 600s)
# invstream in the client namespace. In the background, `inv_bg ... &`: the subshell becomes
# `ip netns exec`, which becomes invstream, so $! is its PID (for the SIGINT at the end).
# (On the loopback cluster, as it is.)
client=(ip netns exec invchaos-client)
[ "$net" = netns ] || client=()
inv() { "${client[@]}" "$bin" --uri "$uris" "$@"; }
# Their stderr logs carry invstream's timestamped events too (RUST_LOG), to line up with faults.
inv_bg() { RUST_LOG=${RUST_LOG:-invstream=info} exec "${client[@]}" "$bin" --uri "$uris" "$@"; }

say "seed $seed; files in $out"
started="$(date +%s.%N)"
cat >"$out/run.json" <<EOF
{"seed": $seed, "faults": "$faults", "net": "$net", "interval": $interval, "schedule": "${schedule[*]}", "rate": $rate,
 "stream": "$stream", "super_stream": "$super", "started": $started,
 "command": "scripts/chaos-run.sh$([ "$net" = netns ] || echo " --loopback") --faults $faults --interval $interval ${schedule[*]} --seed $seed --rate $rate ${dedup[*]}",
 "invstream": "$("$bin" --version 2>/dev/null || echo unknown)"}
EOF

pids=()
inv_bg --stream "$stream" --json "${retry[@]}" produce --count "$count" --rate "$rate" "${dedup[@]}" \
    >"$out/produce-stream.json" 2>"$out/produce-stream.log" &
pids+=($!)
inv_bg --json "${retry[@]}" produce --super-stream "$super" --partitions 3 --count "$super_count" \
    --rate "$super_rate" "${dedup[@]}" >"$out/produce-super.json" 2>"$out/produce-super.log" &
pids+=($!)

# Readers subscribe once the streams exist (their producers create them).
for _ in $(seq 1 300); do
    if inv --stream "$stream" -q --json consume --offset first --count 1 >/dev/null 2>&1 &&
        inv -q --json consume --super-stream "$super" --offset first --count 1 >/dev/null 2>&1; then
        break
    fi
    sleep 0.2
done
inv_bg --stream "$stream" --json "${retry[@]}" consume --offset first --name chaos-named \
    --read-from leader --follow --verify >"$out/consume-named.json" 2>"$out/consume-named.log" &
readers=($!)
# The replica reader prints what it reads, through a FIFO to the checker's `arrivals` (when each
# update arrived: the timeline's consume rate; and its reading checked update by update). Its
# summary goes to its stderr then, after its log lines.
mkfifo "$out/replica.fifo"
python3 scripts/chaos-check.py arrivals <"$out/replica.fifo" >"$out/consume-replica.arrivals.json" &
arrivals_pid=$!
inv_bg --stream "$stream" --json "${retry[@]}" consume --offset first --read-from replica \
    --follow --verify --print >"$out/replica.fifo" 2>"$out/consume-replica.log" &
readers+=($!)
inv_bg --json "${retry[@]}" consume --super-stream "$super" --offset first --name chaos-sac \
    --single-active --follow --verify >"$out/consume-sac.json" 2>"$out/consume-sac.log" &
readers+=($!)

# shellcheck disable=SC2317  # called from the traps
stop_all() { kill "${pids[@]}" "${readers[@]}" 2>/dev/null || true; }
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

set +e
chaos nemesis --faults "$faults" --interval "$interval" "${schedule[@]}" --seed "$seed" \
    --stream "$stream" --log "$out/faults.jsonl"
nemesis_rc=$?
set -e
[ "$nemesis_rc" -eq 0 ] || say "the nemesis exited $nemesis_rc (its log: $out/faults.jsonl)"
chaos wait-healthy "$stream" >/dev/null 2>&1 || say "the cluster is not healthy after the schedule"

say "faults over; $tail_s s more of updates on a healthy cluster"
sleep "$tail_s"
# Stopped as a user stops them: the producers wait for their last confirms, the named readers
# store their offsets. Exit 130 is that stop; anything else is a failure.
produce_failed=0
kill -INT "${pids[@]}" 2>/dev/null || true
for pid in "${pids[@]}"; do
    rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 0 ] || [ "$rc" -eq 130 ] || produce_failed=$((produce_failed + 1))
done
kill -INT "${readers[@]}" 2>/dev/null || true
for pid in "${readers[@]}"; do wait "$pid" || true; done
wait "$arrivals_pid" || say "the replica reader's arrivals digest failed"
rm -f "$out/replica.fifo"
say "producers and readers stopped ($produce_failed producer(s) failed)"
date +%s.%N >"$out/ended"

say "reading everything back"
inv --stream "$stream" -q consume --offset first --print 2>"$out/log-stream.log" |
    python3 scripts/chaos-check.py digest >"$out/log-stream.digest.json"
inv -q consume --super-stream "$super" --offset first --print 2>"$out/log-super.log" |
    python3 scripts/chaos-check.py digest >"$out/log-super.digest.json"
# The named consumers go on from the offsets they stored: with what they read live, the log.
inv --stream "$stream" --json consume --offset stored --name chaos-named --read-from leader \
    --verify >"$out/consume-named-rest.json" 2>"$out/consume-named-rest.log" || true
inv --json consume --super-stream "$super" --offset stored --name chaos-sac --single-active \
    --verify >"$out/consume-sac-rest.json" 2>"$out/consume-sac-rest.log" || true

python3 - "$out" <<'EOF'
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
run = json.loads((d / "run.json").read_text())
run["ended"] = float((d / "ended").read_text())
(d / "run.json").write_text(json.dumps(run, indent=1) + "\n")
EOF

set +e
python3 scripts/chaos-check.py report "$out"
check_rc=$?
set -e
if ! $keep; then
    chaos ctl 1 delete_queue "$stream" >/dev/null 2>&1 || true
    for p in 0 1 2; do chaos ctl 1 delete_queue "$super-$p" >/dev/null 2>&1 || true; done
fi
say "summary: $out/summary.json, timeline: $out/timeline.svg"
[ "$produce_failed" -eq 0 ] || { say "a producer failed: see $out/produce-*.log"; exit 1; }
exit "$check_rc"
