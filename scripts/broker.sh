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
# Extra nodes for fault tests (broker restarts, crashes, TLS), each a RabbitMQ 4.x of its own in
# the chroot so stopping it disturbs nothing else:
#   scripts/broker.sh node-up NAME PORT [TLS_PORT]   start node NAME: stream on localhost:PORT
#                               (and TLS on TLS_PORT, certificates from tls-certs); fresh data
#   scripts/broker.sh node-stop NAME    stop it cleanly (its data stays)
#   scripts/broker.sh node-kill NAME    kill -9 its Erlang VM (a crash; its data stays)
#   scripts/broker.sh node-start NAME   start it again on its data, wait until it answers
#   scripts/broker.sh node-pause NAME   SIGSTOP its Erlang VM (a stuck broker: connections stay
#                               open, nothing answers); node-resume NAME sends SIGCONT
#   scripts/broker.sh node-down NAME    stop it and delete its data
#   scripts/broker.sh rstream           make a Python virtualenv with rstream (another stream
#                               client, which writes sub-entry batches); print its python
#   scripts/broker.sh tls-certs         make a test CA, a broker certificate for localhost and
#                               a client certificate (once, with openssl); print their directory
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

# Scripts that source this one (scripts/cluster.sh) set SAY_AS to their own name.
say() { echo "${SAY_AS:-broker}: $*" >&2; }
die() { echo "${SAY_AS:-broker}: error: $*" >&2; exit 1; }

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

ensure_rootfs() {
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
}

chroot_up() {
    ensure_rootfs
    echo '[rabbitmq_stream,rabbitmq_management,rabbitmq_stream_management].' | as_root tee "$ROOTFS/etc/rabbitmq/enabled_plugins" >/dev/null
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
    echo '[rabbitmq_stream,rabbitmq_management,rabbitmq_stream_management].' >"$SYSTEM_DIR/enabled_plugins"
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

# `invstream streams info` lists the names a stream tracks through rabbitmq_stream_management:
# a broker this script started before that plugin was in its list gets it, running.
ensure_stream_management() {
    local mode
    mode="$(cat "$STATE" 2>/dev/null || true)"
    case "$mode" in
        chroot)
            grep -q rabbitmq_stream_management "$ROOTFS/etc/rabbitmq/enabled_plugins" 2>/dev/null \
                || in_chroot rabbitmq-plugins -q enable rabbitmq_stream_management >/dev/null 2>&1 || true ;;
        system)
            grep -q rabbitmq_stream_management "$SYSTEM_DIR/enabled_plugins" 2>/dev/null \
                || system_env "$RABBITMQ_BIN/rabbitmq-plugins" -q enable rabbitmq_stream_management >/dev/null 2>&1 || true ;;
    esac
}

up() {
    mkdir -p "$CACHE"
    if port_open "$PORT"; then
        say "a broker already answers on localhost:$PORT"
        ensure_stream_management
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

TLS_DIR="$CACHE/tls"

tls_certs() {
    if [ ! -s "$TLS_DIR/client.key" ]; then
        command -v openssl >/dev/null || apt_install openssl
        local tmp="$TLS_DIR.partial"
        rm -rf "$tmp" && mkdir -p "$tmp"
        (
            cd "$tmp"
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=invstream test CA" \
                -keyout ca.key -out ca.pem
            for who in server client; do
                openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$who.key.tmp" -out "$who.csr"
                printf 'subjectAltName = DNS:localhost, IP:127.0.0.1\nextendedKeyUsage = %s\n' \
                    "$([ "$who" = server ] && echo serverAuth || echo clientAuth)" >"$who.ext"
                openssl x509 -req -in "$who.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
                    -extfile "$who.ext" -out "$who.pem"
                # PKCS#8 ("BEGIN PRIVATE KEY"): the only key format the Rust client reads.
                openssl pkcs8 -topk8 -nocrypt -in "$who.key.tmp" -out "$who.key"
                rm -f "$who.key.tmp" "$who.csr" "$who.ext"
            done
        ) >"$CACHE/openssl.log" 2>&1 || die "openssl failed; see $CACHE/openssl.log"
        rm -rf "$TLS_DIR" && mv "$tmp" "$TLS_DIR"
    fi
    echo "$TLS_DIR"
}

PYENV="$CACHE/pyenv"

rstream_python() {
    if ! "$PYENV/bin/python" -c "import rstream" >/dev/null 2>&1; then
        python3 -m venv "$PYENV" >/dev/null 2>&1 || { apt_install python3-venv; python3 -m venv "$PYENV" >/dev/null; }
        "$PYENV/bin/pip" install -q "rstream==1.1.1" >&2 || die "pip could not install rstream"
    fi
    echo "$PYENV/bin/python"
}

# Extra nodes live in the chroot under /var/lib/rabbitmq/invstream-nodes/NAME.
node_dir() { echo "/var/lib/rabbitmq/invstream-nodes/$1"; }

node_env() {
    local name=$1 dir
    dir="$(node_dir "$name")"
    shift
    in_chroot RABBITMQ_NODENAME="$name" RABBITMQ_CONFIG_FILE="$dir/rabbitmq" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins" RABBITMQ_MNESIA_BASE="$dir/mnesia" \
        RABBITMQ_LOG_BASE="$dir/log" RABBITMQ_PID_FILE="$dir/pid" \
        RABBITMQ_DIST_PORT="$(cat "$ROOTFS$dir/dist_port")" "$@"
}

node_port() { cat "$ROOTFS$(node_dir "$1")/port"; }

# node_init NAME PORT PLUGINS: a fresh directory for node NAME (an old one is stopped and removed),
# stream port PORT, Erlang distribution port $DIST_PORT (default PORT + 20000), enabled plugins
# PLUGINS (an Erlang list); its rabbitmq.conf is read from stdin.
node_init() {
    local name=$1 port=$2 plugins=$3 dir conf
    conf="$(cat)"
    ensure_rootfs
    dir="$(node_dir "$name")"
    [ -d "$ROOTFS$dir" ] && node_down "$name"
    as_root mkdir -p "$ROOTFS$dir/mnesia" "$ROOTFS$dir/log"
    echo "$port" | as_root tee "$ROOTFS$dir/port" >/dev/null
    echo "${DIST_PORT:-$((port + 20000))}" | as_root tee "$ROOTFS$dir/dist_port" >/dev/null
    echo "$plugins" | as_root tee "$ROOTFS$dir/enabled_plugins" >/dev/null
    echo "$conf" | as_root tee "$ROOTFS$dir/rabbitmq.conf" >/dev/null
    # Debian's rabbitmq-server runs the node as the rabbitmq user.
    in_chroot chown -R rabbitmq:rabbitmq "$dir"
}

# node_up NAME PORT [TLS_PORT [require-client-cert]]: with require-client-cert the TLS listener
# refuses a client without a certificate the test CA signed. ADVERTISED_PORT (default PORT) is
# the stream port the node tells clients to use (a test's proxy in front of it).
node_up() {
    local name=$1 port=$2 tls_port=${3:-} client_cert=${4:-} dir
    [ -n "$name" ] && [ -n "$port" ] || die "usage: node-up NAME PORT [TLS_PORT [require-client-cert]]"
    case "$client_cert" in
        ""|require-client-cert) ;;
        *) die "node-up: the 4th argument is require-client-cert or nothing, not '$client_cert'" ;;
    esac
    dir="$(node_dir "$name")"
    local certs=
    if [ -n "$tls_port" ]; then
        certs="$(tls_certs)"
    fi
    {
        echo "listeners.tcp = none"
        echo "stream.listeners.tcp.1 = $port"
        echo "stream.advertised_host = localhost"
        echo "stream.advertised_port = ${ADVERTISED_PORT:-$port}"
        echo "loopback_users.guest = false"
        if [ -n "$tls_port" ]; then
            echo "stream.listeners.ssl.1 = $tls_port"
            echo "stream.advertised_tls_port = $tls_port"
            echo "ssl_options.cacertfile = $dir/tls/ca.pem"
            echo "ssl_options.certfile = $dir/tls/server.pem"
            echo "ssl_options.keyfile = $dir/tls/server.key"
            echo "ssl_options.verify = verify_peer"
            if [ -n "$client_cert" ]; then
                echo "ssl_options.fail_if_no_peer_cert = true"
            else
                echo "ssl_options.fail_if_no_peer_cert = false"
            fi
        fi
    } | node_init "$name" "$port" '[rabbitmq_stream].'
    if [ -n "$tls_port" ]; then
        as_root mkdir -p "$ROOTFS$dir/tls"
        as_root cp "$certs/ca.pem" "$certs/server.pem" "$certs/server.key" "$ROOTFS$dir/tls/"
        in_chroot chown -R rabbitmq:rabbitmq "$dir/tls"
    fi
    node_start "$name"
}

# node_launch NAME: start node NAME on its data, detached, without waiting.
node_launch() {
    local name=$1
    [ -f "$ROOTFS$(node_dir "$name")/port" ] || die "no node '$name' (node-up NAME PORT first)"
    mountpoint -q "$ROOTFS/proc" || as_root mount -t proc proc "$ROOTFS/proc"
    node_env "$name" /bin/sh -c 'rabbitmq-server -detached' >/dev/null 2>&1 || true
}

# node_await NAME: wait until node NAME has booted and its stream port answers.
node_await() {
    local name=$1 waited=0
    until node_env "$name" rabbitmqctl -q -n "$name" await_startup --timeout 5 >/dev/null 2>&1; do
        if [ "$waited" -ge "$START_TIMEOUT_S" ] || grep -qs "BOOT FAILED" "$ROOTFS$(node_dir "$name")"/log/*.log; then
            grep -hs "\[error\]" "$ROOTFS$(node_dir "$name")"/log/*.log | head -5 >&2
            die "node $name did not start; see $ROOTFS$(node_dir "$name")/log/"
        fi
        sleep 1
        waited=$((waited + 1))
    done
    wait_for_port "$(node_port "$name")" "RabbitMQ node $name"
}

node_start() {
    node_launch "$1"
    node_await "$1"
}

node_stop() {
    local name=$1
    node_env "$name" rabbitmqctl -q -n "$name" stop >/dev/null 2>&1 || true
    say "node $name stopped"
}

node_pid() {
    local pid
    pid="$(cat "$ROOTFS$(node_dir "$1")/pid" 2>/dev/null || true)"
    [ -n "$pid" ] || die "node $1 has no pid file: is it running?"
    echo "$pid"
}

node_signal() {
    as_root kill "-$2" "$(node_pid "$1")"
    say "node $1: sent SIG$2"
}

node_kill() {
    local name=$1 pid
    pid="$(node_pid "$name")"
    as_root kill -9 "$pid" 2>/dev/null || true
    while [ -d "/proc/$pid" ]; do sleep 0.1; done
    say "node $name killed (pid $pid)"
}

node_down() {
    local name=$1
    [ -d "$ROOTFS$(node_dir "$name")" ] || return 0
    node_stop "$name"
    as_root rm -rf "$ROOTFS$(node_dir "$name")"
}

# Sourced (by scripts/cluster.sh): define the functions only.
if [ "${BASH_SOURCE[0]}" != "$0" ]; then return 0; fi

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) if port_open "$PORT"; then say "up on localhost:$PORT"; else say "down"; exit 1; fi ;;
    version) version ;;
    old-up) old_up ;;
    old-down) old_down ;;
    node-up) node_up "${2:-}" "${3:-}" "${4:-}" "${5:-}" ;;
    node-stop) node_stop "${2:?node name}" ;;
    node-kill) node_kill "${2:?node name}" ;;
    node-start) node_start "${2:?node name}" ;;
    node-down) node_down "${2:?node name}" ;;
    node-pause) node_signal "${2:?node name}" STOP ;;
    node-resume) node_signal "${2:?node name}" CONT ;;
    tls-certs) tls_certs ;;
    rstream) rstream_python ;;
    *) echo "usage: $0 up|down|status|version|old-up|old-down|node-up|node-stop|node-kill|node-start|node-pause|node-resume|node-down|tls-certs|rstream" >&2; exit 2 ;;
esac
