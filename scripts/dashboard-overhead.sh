#!/usr/bin/env bash
# Does the live dashboard slow `bench`? Runs the same bench in a tmux pane (a real terminal for
# both) with the dashboard and with --no-tui, interleaved, ROUNDS times each, and prints the
# summaries' publish throughput and consume rate: medians, min – max, and the ratio.
#
#   scripts/dashboard-overhead.sh [COUNT] [ROUNDS]      (defaults: 2000000 3)
#
# INVSTREAM is the binary (default: target/release/invstream); the broker must answer on
# localhost:5552. Each bench deletes its own stream (q is never pressed: the runs end by count).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
COUNT="${1:-2000000}"
ROUNDS="${2:-3}"
BIN="${INVSTREAM:-${CARGO_TARGET_DIR:-$REPO/target}/release/invstream}"
[ -x "$BIN" ] || { echo "dashboard-overhead: no $BIN (cargo build --release, or set INVSTREAM)" >&2; exit 1; }
command -v tmux >/dev/null || { echo "dashboard-overhead: tmux is missing" >&2; exit 1; }

SOCKET="invstream-overhead-$$"
trap 'tmux -L "$SOCKET" kill-server 2>/dev/null || true' EXIT
tmux -L "$SOCKET" -f /dev/null new-session -d -s o -x 120 -y 36 \
    "env -i PATH=/usr/bin:/bin TERM=xterm-256color PS1='$ ' bash --norc --noprofile"

# One bench in the pane; prints "publish_msg_s consume_msg_s" from its summary.
run_one() {
    local flags="$1" marker="done-$RANDOM$RANDOM"
    tmux -L "$SOCKET" send-keys -t o "clear; '$BIN' --stream dash-overhead bench --count $COUNT $flags; echo $marker" Enter
    local deadline=$((SECONDS + 600))
    until tmux -L "$SOCKET" capture-pane -p -S - -t o | grep -q "^$marker"; do
        [ "$SECONDS" -lt "$deadline" ] || { echo "dashboard-overhead: a run took over 600 s" >&2; exit 1; }
        sleep 0.5
    done
    local text
    text="$(tmux -L "$SOCKET" capture-pane -p -S - -t o)"
    tmux -L "$SOCKET" clear-history -t o
    local publish consume
    publish="$(grep -o 'throughput *[0-9,]* msg/s' <<<"$text" | tail -n 1 | tr -dc '0-9')"
    consume="$(grep -o 'consumers, [0-9,]* msg/s' <<<"$text" | tail -n 1 | tr -dc '0-9')"
    [ -n "$publish" ] && [ -n "$consume" ] || { echo "dashboard-overhead: no summary in: $text" >&2; exit 1; }
    echo "$publish $consume"
}

declare -a tui_pub tui_con plain_pub plain_con
for round in $(seq 1 "$ROUNDS"); do
    # Alternate which goes first.
    for mode in $([ $((round % 2)) -eq 1 ] && echo "tui plain" || echo "plain tui"); do
        if [ "$mode" = tui ]; then
            read -r p c < <(run_one "")
            tui_pub+=("$p"); tui_con+=("$c")
        else
            read -r p c < <(run_one "--no-tui")
            plain_pub+=("$p"); plain_con+=("$c")
        fi
        echo "round $round $mode: publish $p msg/s, consume $c msg/s" >&2
    done
done

stats() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%d %d %d", v[int((NR + 1) / 2)], v[1], v[NR] }'; }
read -r tp_med tp_min tp_max <<<"$(stats "${tui_pub[@]}")"
read -r pp_med pp_min pp_max <<<"$(stats "${plain_pub[@]}")"
read -r tc_med tc_min tc_max <<<"$(stats "${tui_con[@]}")"
read -r pc_med pc_min pc_max <<<"$(stats "${plain_con[@]}")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
echo "bench --count $COUNT, $ROUNDS rounds each, interleaved, medians (min – max) in msg/s:"
echo "| run | publish msg/s | consume msg/s |"
echo "|---|---:|---:|"
echo "| dashboard | $tp_med ($tp_min – $tp_max) | $tc_med ($tc_min – $tc_max) |"
echo "| --no-tui | $pp_med ($pp_min – $pp_max) | $pc_med ($pc_min – $pc_max) |"
echo "| dashboard / --no-tui | $(ratio "$tp_med" "$pp_med")× | $(ratio "$tc_med" "$pc_med")× |"
