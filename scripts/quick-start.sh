#!/usr/bin/env bash
# Runs the README's quick-start command exactly as written (the one line in the ```sh block under
# "## Quick start"), as a new user on this machine would, and checks what it promises: `invstream`
# installed and found on PATH, a broker up, 100,000 updates published and read back.
#
# So that it neither touches the user's ~/.cargo/bin nor the README examples' stream, cargo installs
# into a scratch root put first on PATH (CARGO_INSTALL_ROOT, which `cargo install` honours) and
# invstream writes a stream of its own (INVSTREAM_STREAM); both are removed afterwards.
# CARGO_TARGET_DIR=target lets the install reuse what the build before it compiled.
# .ci/run runs it before the test suite.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command_line=$(awk '
    /^## Quick start/ { in_section = 1; next }
    in_section && /^## / { exit }
    in_section && /^```sh/ { in_block = 1; next }
    in_block && /^```/ { exit }
    in_block { print }
' README.md)
if [ -z "$command_line" ] || [ "$(printf '%s\n' "$command_line" | wc -l)" -ne 1 ]; then
    echo "quick-start: README.md's \"## Quick start\" has no single-line \`\`\`sh block" >&2
    exit 1
fi
case "$command_line" in
    "cargo install --path . --locked && "*) ;;
    *) echo "quick-start: the quick start no longer starts with cargo install: $command_line" >&2; exit 1 ;;
esac

root=$(mktemp -d)
stream="quick-start-$$"
output="$root/output.txt"
cleanup() {
    "$root/bin/invstream" streams delete "$stream" --yes >/dev/null 2>&1 || true
    rm -rf "$root"
}
trap cleanup EXIT

echo "quick-start: running: $command_line"
status=0
env CARGO_INSTALL_ROOT="$root" CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}" \
    PATH="$root/bin:$PATH" INVSTREAM_STREAM="$stream" LC_ALL=C.UTF-8 \
    bash -c "$command_line" >"$output" 2>&1 || status=$?
fail() {
    tail -40 "$output" >&2
    echo "quick-start: $1" >&2
    exit 1
}
[ "$status" -eq 0 ] || fail "the command exited $status"
[ -x "$root/bin/invstream" ] || fail "cargo install put no invstream in $root/bin"
grep -q "messages        100,000 sent, 100,000 confirmed, 0 failed" "$output" ||
    fail "produce did not report 100,000 confirmed"
grep -q "messages        100,000 read" "$output" || fail "consume did not read 100,000"
grep -q "offsets         0 … 99,999" "$output" || fail "consume did not read offsets 0 … 99,999"
echo "quick-start: OK: invstream installed on PATH, 100,000 updates published and read back"
