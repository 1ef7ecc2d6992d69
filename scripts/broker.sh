#!/usr/bin/env bash
# Brings a RabbitMQ broker with the stream plugin up or down for invstream and its tests.
#
#   scripts/broker.sh up        start a broker (>= 3.11) on localhost:5552, wait until it answers
#   scripts/broker.sh down      stop the broker this script started
#   scripts/broker.sh status    say whether localhost:5552 answers
#   scripts/broker.sh version   print the RabbitMQ version of the broker this script started
#   scripts/broker.sh old-up    start Debian bookworm's RabbitMQ 3.10.8 on localhost:5553 (too old
#                               for the Rust client: used to test the "broker too old" error)
#   scripts/broker.sh old-down  stop it
#
# `up` picks, in this order: a broker already answering on 5552; a running Docker engine
# (docker-compose.yml); a RabbitMQ >= 3.11 installed on this machine; else a Debian trixie root
# filesystem made with debootstrap (RabbitMQ 4.x), run in a chroot. The root filesystem is cached
# outside the repo, in $INVSTREAM_CACHE (default ~/.cache/invstream), and reused.
# INVSTREAM_BROKER=docker|system|chroot forces one way. Every step is idempotent.
set -euo pipefail

CACHE="${INVSTREAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/invstream}"
ROOTFS="$CACHE/rabbitmq-trixie"
STATE="$CACHE/broker-mode"
SYSTEM_DIR="$CACHE/system-broker"
OLD_DIR="$CACHE/old-broker-3.10"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"
# Debian's /usr/sbin wrappers switch to the rabbitmq user, who cannot enter a private $HOME: run
# the real scripts as the caller, with the node's files (and Erlang cookie) under its own dir.
RABBITMQ_BIN=/usr/lib/rabbitmq/bin
PORT=5552
OLD_PORT=5553
START_TIMEOUT_S="${INVSTREAM_BROKER_TIMEOUT_S:-120}"

say() { echo "broker: $*" >&2; }
die() { echo "broker: error: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() {
    local port=$1 what=$2 waited=0
    while ! port_open "$port"; do
        if [ "$waited" -ge "$START_TIMEOUT_S" ]; then
            die "$what did not open port $port within ${START_TIMEOUT_S}s"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    say "$what answers on localhost:$port (after ${waited}s)"
}

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found: install $* by hand, or use Docker (docker compose up -d)"
    say "installing $* with apt-get"
    as_root apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q "$@" >/dev/null
}

docker_available() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

compose() {
    if docker compose version >/dev/null 2>&1; then docker compose "$@"
    elif command -v docker-compose >/dev/null; then docker-compose "$@"
    else die "Docker runs but neither 'docker compose' nor 'docker-compose' is installed"; fi
}

# Prints the version of a RabbitMQ installed on this machine (outside any chroot), or nothing.
system_rabbitmq_version() {
    command -v rabbitmq-server >/dev/null 2>&1 || [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || return 0
    if command -v dpkg-query >/dev/null; then
        dpkg-query -W -f='${Version}' rabbitmq-server 2>/dev/null | sed 's/-.*//' || true
    fi
}

version_at_least_3_11() {
    local major minor
    IFS=. read -r major minor _ <<<"$1"
    [ -n "$major" ] && { [ "$major" -gt 3 ] || { [ "$major" -eq 3 ] && [ "${minor:-0}" -ge 11 ]; }; }
}

in_chroot() { as_root chroot "$ROOTFS" /usr/bin/env HOME=/var/lib/rabbitmq "$@"; }

chroot_up() {
    if [ ! -x "$ROOTFS/usr/sbin/rabbitmq-server" ]; then
        command -v debootstrap >/dev/null || apt_install debootstrap
        say "building a Debian trixie root with RabbitMQ in $ROOTFS (once, about a minute)"
        local tmp="$ROOTFS.partial"
        as_root rm -rf "$tmp"
        mkdir -p "$CACHE"
        as_root debootstrap --variant=minbase --include=rabbitmq-server trixie "$tmp" >"$CACHE/debootstrap.log" 2>&1 \
            || die "debootstrap failed; see $CACHE/debootstrap.log"
        as_root mv "$tmp" "$ROOTFS"
    fi
    mountpoint -q "$ROOTFS/proc" || as_root mount -t proc proc "$ROOTFS/proc"
    echo '[rabbitmq_stream,rabbitmq_management].' | as_root tee "$ROOTFS/etc/rabbitmq/enabled_plugins" >/dev/null
    printf 'loopback_users.guest = false\nstream.advertised_host = localhost\n' \
        | as_root tee "$ROOTFS/etc/rabbitmq/rabbitmq.conf" >/dev/null
    say "starting RabbitMQ $(in_chroot dpkg-query -W -f='${Version}' rabbitmq-server) in the chroot"
    in_chroot /bin/sh -c 'rabbitmq-server -detached' >/dev/null 2>&1 || true
    echo chroot >"$STATE"
    local waited=0
    until in_chroot rabbitmq-diagnostics -q ping >/dev/null 2>&1; do
        [ "$waited" -ge "$START_TIMEOUT_S" ] && die "RabbitMQ in $ROOTFS did not start; see $ROOTFS/var/log/rabbitmq/"
        sleep 1
        waited=$((waited + 1))
    done
    in_chroot rabbitmqctl -q await_startup >/dev/null
    wait_for_port "$PORT" "RabbitMQ (chroot)"
}

chroot_down() {
    in_chroot rabbitmqctl -q stop >/dev/null 2>&1 || true
    in_chroot /bin/sh -c 'epmd -kill' >/dev/null 2>&1 || true
}

system_up() {
    mkdir -p "$SYSTEM_DIR"
    echo '[rabbitmq_stream,rabbitmq_management].' >"$SYSTEM_DIR/enabled_plugins"
    printf 'loopback_users.guest = false\nstream.advertised_host = localhost\n' >"$SYSTEM_DIR/rabbitmq.conf"
    mkdir -p "$SYSTEM_DIR/mnesia" "$SYSTEM_DIR/log"
    say "starting the installed RabbitMQ $(system_rabbitmq_version)"
    system_env "$RABBITMQ_BIN/rabbitmq-server" -detached >/dev/null 2>&1 || true
    echo system >"$STATE"
    wait_for_port "$PORT" "RabbitMQ (installed)"
}

system_down() { system_env "$RABBITMQ_BIN/rabbitmqctl" -q stop >/dev/null 2>&1 || true; }

system_env() {
    HOME="$SYSTEM_DIR" RABBITMQ_CONFIG_FILE="$SYSTEM_DIR/rabbitmq" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$SYSTEM_DIR/enabled_plugins" \
        RABBITMQ_MNESIA_BASE="$SYSTEM_DIR/mnesia" RABBITMQ_LOG_BASE="$SYSTEM_DIR/log" "$@"
}

docker_up() {
    say "starting RabbitMQ with docker compose"
    (cd "$REPO" && compose up -d)
    echo docker >"$STATE"
    wait_for_port "$PORT" "RabbitMQ (docker)"
}

docker_down() { (cd "$REPO" && compose down); }

up() {
    mkdir -p "$CACHE"
    if port_open "$PORT"; then
        say "a broker already answers on localhost:$PORT"
        return 0
    fi
    local mode="${INVSTREAM_BROKER:-}"
    if [ -z "$mode" ]; then
        local installed
        installed="$(system_rabbitmq_version)"
        if docker_available; then mode=docker
        elif [ -n "$installed" ] && version_at_least_3_11 "$installed"; then mode=system
        else
            [ -n "$installed" ] && say "the installed RabbitMQ $installed is too old (the Rust client needs >= 3.11); using a chroot"
            mode=chroot
        fi
    fi
    case "$mode" in
        docker) docker_up ;;
        system) system_up ;;
        chroot) chroot_up ;;
        *) die "INVSTREAM_BROKER must be docker, system or chroot, not '$mode'" ;;
    esac
}

down() {
    local mode
    mode="$(cat "$STATE" 2>/dev/null || true)"
    case "$mode" in
        docker) docker_down ;;
        system) system_down ;;
        chroot) chroot_down ;;
        *) say "no broker was started by this script"; return 0 ;;
    esac
    rm -f "$STATE"
    say "stopped ($mode)"
}

version() {
    case "$(cat "$STATE" 2>/dev/null || true)" in
        chroot) in_chroot dpkg-query -W -f='${Version}\n' rabbitmq-server | sed 's/-.*//' ;;
        system) system_rabbitmq_version; echo ;;
        docker) (cd "$REPO" && compose exec -T rabbitmq rabbitmqctl version) ;;
        *) die "no broker was started by this script" ;;
    esac
}

old_up() {
    if port_open "$OLD_PORT"; then say "a broker already answers on localhost:$OLD_PORT"; return 0; fi
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || apt_install rabbitmq-server
    mkdir -p "$OLD_DIR"
    echo '[rabbitmq_stream].' >"$OLD_DIR/enabled_plugins"
    cat >"$OLD_DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = 5673
stream.listeners.tcp.1 = $OLD_PORT
stream.advertised_port = $OLD_PORT
stream.advertised_host = localhost
loopback_users.guest = false
management.tcp.port = 15673
EOF
    mkdir -p "$OLD_DIR/mnesia" "$OLD_DIR/log"
    say "starting the old RabbitMQ $(system_rabbitmq_version) on localhost:$OLD_PORT"
    old_env "$RABBITMQ_BIN/rabbitmq-server" -detached >/dev/null 2>&1 || true
    wait_for_port "$OLD_PORT" "RabbitMQ (old)"
}

old_env() {
    HOME="$OLD_DIR" RABBITMQ_NODENAME=old310 RABBITMQ_DIST_PORT=25673 RABBITMQ_CONFIG_FILE="$OLD_DIR/rabbitmq" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$OLD_DIR/enabled_plugins" RABBITMQ_MNESIA_BASE="$OLD_DIR/mnesia" \
        RABBITMQ_LOG_BASE="$OLD_DIR/log" "$@"
}

old_down() { old_env "$RABBITMQ_BIN/rabbitmqctl" -q stop >/dev/null 2>&1 || true; say "old broker stopped"; }

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) if port_open "$PORT"; then say "up on localhost:$PORT"; else say "down"; exit 1; fi ;;
    version) version ;;
    old-up) old_up ;;
    old-down) old_down ;;
    *) echo "usage: $0 up|down|status|version|old-up|old-down" >&2; exit 2 ;;
esac
