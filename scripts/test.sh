#!/usr/bin/env bash
# Runs invstream's whole test suite, bringing up the brokers it needs first:
# RabbitMQ 4.x on localhost:5552 (scripts/broker.sh up) and, for the "broker too old" test,
# Debian's RabbitMQ 3.10.8 on localhost:5553 (scripts/broker.sh old-up), a 3-node cluster on
# 5561-5563 (scripts/cluster.sh up); extra nodes for fault
# tests are started by the tests themselves (scripts/broker.sh node-up); then the short chaos
# schedule (scripts/chaos-run.sh --ci), and a shorter one on the loopback cluster (--loopback).
# Extra arguments go to the test runner, e.g. scripts/test.sh produce_consume
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The tests read invstream's output in a UTF-8 locale (outside one it writes ->, us, ... for →, µs,
# …; the tests of that set their own locale).
export LC_ALL=C.UTF-8

bash scripts/broker.sh up
bash scripts/broker.sh old-up
# A 3-node cluster (stream ports 5561-5563) for the failover tests (tests/integration/cluster.rs).
bash scripts/cluster.sh up
# Python's rstream writes sub-entry batches, which invstream must read.
INVSTREAM_PYTHON="$(bash scripts/broker.sh rstream)"
export INVSTREAM_PYTHON

# invstream, and the vendored client and protocol crates' own unit tests (entry formats, frame
# decoding, dispatcher, options; none needs a broker: see vendor/PATCHES.md).
packages=(-p invstream -p rabbitmq-stream-protocol -p rabbitmq-stream-client)
status=0
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "${packages[@]}" "$@" || status=$?
else
    cargo test --no-fail-fast "${packages[@]}" -- "$@" || status=$?
fi

# The whole suite (no filter given) ends with the short chaos schedule (issue 23): every fault
# type once, seed 23, on a 3-node cluster in network namespaces (scripts/chaos.sh), invstream
# writing and reading throughout; it fails on any confirmed update lost, duplicated or
# reordered, a consumer whose reading is not the log, or a stall past its bound. Its checker
# first shows each of its counts catching what it claims. Alone, after the tests: its nodes
# and faults would slow the timing of the tests beside them.
if [ $# -eq 0 ]; then
    python3 scripts/chaos-check.py selftest || status=1
    bash scripts/chaos-run.sh --ci --bin target/debug/invstream || status=1
    # The harness's own repair: a node running out of the cluster is restarted whole.
    bash scripts/chaos.sh selftest || status=1
    bash scripts/chaos.sh down || true
    # The fall-back where network namespaces cannot be made: the same nodes on 127.0.0.1,
    # without the partition faults; a node killed, one paused past failure detection, a leader
    # moved.
    bash scripts/chaos-run.sh --loopback --faults kill,pause-long,leader-move --rounds 1 \
        --interval 0 --seed 23 --bin target/debug/invstream || status=1
    CHAOS_NET=loopback bash scripts/chaos.sh down || true
fi
exit "$status"
