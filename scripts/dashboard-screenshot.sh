#!/usr/bin/env bash
# A screenshot of `invstream bench`'s live dashboard, as a person sees it: bench runs in a tmux
# pane, the pane is captured with its colours (capture-pane -e), turned into an HTML page
# (scripts/ansi-to-html.py) and headless Chromium takes its picture.
#
#   scripts/dashboard-screenshot.sh OUT.png [STREAM]
#
# INVSTREAM is the binary (default: target/release/invstream, else target/debug/invstream);
# the broker must answer on localhost:5552 (scripts/broker.sh up). Installs tmux and chromium
# with apt-get when missing. The bench runs on STREAM-bench-… (default stream: dashboard-shot)
# and is stopped with `q`, which deletes its stream. Exits non-zero when any step fails.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
OUT="${1:?usage: scripts/dashboard-screenshot.sh OUT.png [STREAM]}"
STREAM="${2:-dashboard-shot}"
COLS=120
ROWS=36
# Seconds of the run shown: the rates chart needs a few samples to draw lines.
SHOW_AFTER_S="${SHOW_AFTER_S:-12}"

die() { echo "dashboard-screenshot: error: $*" >&2; exit 1; }

BIN="${INVSTREAM:-}"
if [ -z "$BIN" ]; then
    for candidate in "${CARGO_TARGET_DIR:-$REPO/target}/release/invstream" \
        "${CARGO_TARGET_DIR:-$REPO/target}/debug/invstream"; do
        if [ -x "$candidate" ]; then BIN="$candidate"; break; fi
    done
fi
[ -n "$BIN" ] && [ -x "$BIN" ] || die "no invstream binary: build it or set INVSTREAM"

install_missing() {
    command -v "$1" >/dev/null && return 0
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$2" >/dev/null \
        || die "cannot install $2 (apt-get install -y $2)"
}
install_missing tmux tmux
install_missing chromium chromium

WORK="$(mktemp -d)"
SOCKET="invstream-shot-$$"
cleanup() {
    # A run still going is stopped with q, so it deletes its stream (a killed pane would not).
    if tmux -L "$SOCKET" has-session -t shot 2>/dev/null \
        && ! tmux -L "$SOCKET" capture-pane -p -t shot | grep -q "exit=[0-9]"; then
        tmux -L "$SOCKET" send-keys -t shot q
        for _ in $(seq 1 300); do
            tmux -L "$SOCKET" capture-pane -p -t shot | grep -q "exit=[0-9]" && break
            sleep 0.1
        done
    fi
    tmux -L "$SOCKET" kill-server 2>/dev/null || true
    rm -rf "$WORK" 2>/dev/null || true
}
trap cleanup EXIT

# A shell in the pane, so the pane outlives the run and shows how it ended.
tmux -L "$SOCKET" -f /dev/null new-session -d -s shot -x "$COLS" -y "$ROWS" \
    "env -i PATH=/usr/bin:/bin TERM=xterm-256color HOME=\"$WORK\" PS1='$ ' bash --norc --noprofile"
tmux -L "$SOCKET" send-keys -t shot \
    "'$BIN' --stream '$STREAM' bench --duration 10m --rate 30000 --producers 2 --consumers 2; echo \"exit=\$?\"" Enter

capture() { tmux -L "$SOCKET" capture-pane -p -t shot; }

# Seconds on the dashboard's clock ("elapsed mm:ss"), 0 before it shows.
elapsed_s() {
    capture | grep -o 'elapsed [0-9]*:[0-9][0-9]' | head -n 1 | awk -F'[ :]' '{ print $2 * 60 + $3 }'
}

# The dashboard is up once its clock passed SHOW_AFTER_S.
deadline=$((SECONDS + 120))
until [ "$(elapsed_s || true)" -ge "$SHOW_AFTER_S" ] 2>/dev/null; do
    if capture | grep -q "exit=[0-9]"; then die "bench ended early: $(capture)"; fi
    [ "$SECONDS" -lt "$deadline" ] || die "no dashboard after 120 s: $(capture)"
    sleep 0.2
done
tmux -L "$SOCKET" capture-pane -e -p -t shot > "$WORK/pane.ansi"
tmux -L "$SOCKET" send-keys -t shot q
deadline=$((SECONDS + 60))
until capture | grep -q "exit=[0-9]"; do
    [ "$SECONDS" -lt "$deadline" ] || die "bench did not end after q: $(capture)"
    sleep 0.2
done

python3 "$HERE/ansi-to-html.py" "$COLS" < "$WORK/pane.ansi" > "$WORK/pane.html"
# A character cell is about 8.4 x 17 px at 14 px monospace; the page adds a margin of 16.
WIDTH=$((COLS * 85 / 10 + 40))
HEIGHT=$((ROWS * 17 + 32))
mkdir -p "$(dirname "$OUT")"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
    --user-data-dir="$WORK/chromium" --window-size="$WIDTH,$HEIGHT" \
    --screenshot="$(realpath -m "$OUT")" "file://$WORK/pane.html" >"$WORK/chromium.log" 2>&1 \
    || die "chromium failed: $(cat "$WORK/chromium.log")"
[ -s "$OUT" ] || die "chromium wrote no $OUT: $(cat "$WORK/chromium.log")"
echo "dashboard-screenshot: wrote $OUT"
