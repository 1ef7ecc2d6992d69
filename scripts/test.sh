#!/usr/bin/env bash
# Runs invstream's whole test suite, bringing up the brokers it needs first:
# RabbitMQ 4.x on localhost:5552 (scripts/broker.sh up) and, for the "broker too old" test,
# Debian's RabbitMQ 3.10.8 on localhost:5553 (scripts/broker.sh old-up).
# Extra arguments go to the test runner, e.g. scripts/test.sh produce_consume
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bash scripts/broker.sh up
bash scripts/broker.sh old-up

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    cargo test --no-fail-fast -- "$@"
fi
