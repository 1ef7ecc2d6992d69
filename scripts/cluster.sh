#!/usr/bin/env bash
# A 3-node RabbitMQ cluster on this machine, for super streams and failover, without Docker: three
# nodes of the RabbitMQ 4.x in the Debian trixie root that scripts/broker.sh builds (its functions
# are sourced from there), beside the single broker on 5552, which it leaves alone.
#
#   scripts/cluster.sh up            start the three nodes and join them into one cluster; wait until
#                                    all three run, clustered (when already up: check and say so)
#   scripts/cluster.sh down          stop all three and delete their data
#   scripts/cluster.sh status        each node up or down, then the cluster's status (exit 1 if a
#                                    node is down)
#   scripts/cluster.sh stop-node N   stop node N (1-3) cleanly; its data stays
#   scripts/cluster.sh start-node N  start node N again on its data; wait until it is back in the
#                                    cluster and its stream port answers
#   scripts/cluster.sh kill-node N   kill -9 node N's Erlang VM (a crash; its data stays)
#   scripts/cluster.sh pause-node N / resume-node N   SIGSTOP / SIGCONT node N's Erlang VM
#   scripts/cluster.sh wait-node N   wait until node N runs, in the cluster, stream port open
#   scripts/cluster.sh leader STREAM print the node leading STREAM (list_queues through a live node)
#   scripts/cluster.sh streams       list the streams: name, leader, members
#   scripts/cluster.sh uris          print the three nodes' stream URIs, one a line
#   scripts/cluster.sh ctl N ARGS... rabbitmqctl ARGS against node N (also: streams-ctl, diag)
#
# Node i (1-3) is c<i>@<short hostname>: stream port 5560+i (5561-5563), AMQP 5680+i, management
# 15680+i, Erlang distribution 25680+i, advertised as localhost:<its stream port>; user guest/guest.
# Its files are in the chroot under /var/lib/rabbitmq/invstream-nodes/c<i>.
# INVSTREAM_CLUSTER_PORT_BASE moves the stream ports (default 5560: node i listens on BASE+i).
# INVSTREAM_CLUSTER_PLUGINS sets the plugins (default [rabbitmq_stream,rabbitmq_management]).
set -euo pipefail

SAY_AS=cluster
# shellcheck source=broker.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/broker.sh"

NODES=(1 2 3)
HOST="$(hostname -s)"
STREAM_BASE="${INVSTREAM_CLUSTER_PORT_BASE:-5560}"
PLUGINS="${INVSTREAM_CLUSTER_PLUGINS:-[rabbitmq_stream,rabbitmq_management].}"

cname() { echo "c$1"; }
cfull() { echo "c$1@$HOST"; }
cport() { echo $((STREAM_BASE + $1)); }
cdir() { echo "$ROOTFS$(node_dir "$(cname "$1")")"; }

check_n() {
    case "${1:-}" in 1 | 2 | 3) ;; *) die "node number must be 1, 2 or 3, not '${1:-}'" ;; esac
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

ctl() {
    local n=$1
    shift
    node_env "$(cname "$n")" rabbitmqctl -n "$(cname "$n")" "$@"
}

# The PID of node N's Erlang VM, or nothing: the pid file's, if that process is a beam.smp whose
# environment names node cN; else any beam.smp whose environment does (RABBITMQ_NODENAME is
# passed down to the VM; node names do not appear in its arguments).
cpid() {
    local n=$1 want pid
    want="RABBITMQ_NODENAME=$(cname "$n")"
    is_node() {
        [ -r "/proc/$1/environ" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = beam.smp ] &&
            { tr '\0' '\n' <"/proc/$1/environ"; } 2>/dev/null | grep -qx -e "$want" -e "$want@$HOST"
    }
    pid="$(cat "$(cdir "$n")/pid" 2>/dev/null || true)"
    if [ -n "$pid" ] && is_node "$pid"; then
        echo "$pid"
        return 0
    fi
    for pid in $(pgrep -x beam.smp || true); do
        if is_node "$pid"; then
            echo "$pid"
            return 0
        fi
    done
}

running() { [ -n "$(cpid "$1")" ]; }

# How many nodes node N sees running in its cluster (0 if it does not answer).
running_count() {
    ctl "$1" -q eval 'length(rabbit_nodes:list_running()).' 2>/dev/null | tr -dc 0-9 || true
}

# Waits until node N has booted, its stream port answers and it sees every node whose VM is alive.
wait_node() {
    local n=$1 want waited=0 have
    node_await "$(cname "$n")"
    while :; do
        want=0
        for i in "${NODES[@]}"; do running "$i" && want=$((want + 1)); done
        have="$(running_count "$n")"
        [ "${have:-0}" -ge "$want" ] && break
        [ "$waited" -ge "$START_TIMEOUT_S" ] && die "node $(cfull "$n") sees ${have:-0} running nodes, not $want"
        sleep 1
        waited=$((waited + 1))
    done
}

conf() {
    local n=$1
    cat <<EOF
loopback_users.guest = false
listeners.tcp.default = $((5680 + n))
management.tcp.port = $((15680 + n))
stream.listeners.tcp.1 = $(cport "$n")
stream.advertised_host = localhost
stream.advertised_port = $(cport "$n")
EOF
}

joined() { for n in "${NODES[@]}"; do [ -f "$(cdir "$n")/joined" ] || return 1; done; }

up() {
    local t0 n
    t0="$(now)"
    ensure_rootfs
    if joined; then
        local started=()
        for n in "${NODES[@]}"; do
            if ! running "$n"; then
                node_launch "$(cname "$n")"
                started+=("$n")
            fi
        done
        if [ "${#started[@]}" -eq 0 ]; then
            say "already up: checking"
        else
            say "starting node(s) ${started[*]} on their data"
        fi
        for n in "${NODES[@]}"; do wait_node "$n"; done
    else
        for n in "${NODES[@]}"; do
            if port_open "$(cport "$n")"; then
                die "localhost:$(cport "$n") is taken by another broker (a node-up node of a test?); set INVSTREAM_CLUSTER_PORT_BASE"
            fi
        done
        say "starting $(cfull 1), $(cfull 2), $(cfull 3) (fresh data)"
        for n in "${NODES[@]}"; do
            conf "$n" | DIST_PORT=$((25680 + n)) node_init "$(cname "$n")" "$(cport "$n")" "$PLUGINS"
        done
        for n in "${NODES[@]}"; do node_launch "$(cname "$n")"; done
        for n in "${NODES[@]}"; do node_await "$(cname "$n")"; done
        say "all three booted after $(since "$t0")s; joining 2 and 3 to $(cfull 1)"
        for n in 2 3; do
            ctl "$n" -q stop_app >/dev/null
            ctl "$n" -q join_cluster "$(cfull 1)" >/dev/null
            ctl "$n" -q start_app >/dev/null
        done
        for n in "${NODES[@]}"; do wait_node "$n"; done
        for n in "${NODES[@]}"; do as_root touch "$(cdir "$n")/joined"; done
    fi
    say "up: 3 nodes running, clustered, stream on localhost:$(cport 1), $(cport 2), $(cport 3) (after $(since "$t0")s)"
}

down() {
    local n pids=()
    for n in "${NODES[@]}"; do
        [ -d "$(cdir "$n")" ] || continue
        { node_stop "$(cname "$n")" 2>/dev/null; kill_node "$n" quiet; } &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || true; done
    for n in "${NODES[@]}"; do as_root rm -rf "$(cdir "$n")"; done
    say "down: the three nodes are stopped, their data deleted"
}

status() {
    local n all=0 live=
    for n in "${NODES[@]}"; do
        local pid
        pid="$(cpid "$n")"
        if [ -n "$pid" ] && [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = T ]; then
            echo "$(cfull "$n"): paused (SIGSTOP, pid $pid; resume-node $n)"
            all=1
        elif [ -n "$pid" ] && port_open "$(cport "$n")"; then
            echo "$(cfull "$n"): up (stream localhost:$(cport "$n"), pid $pid)"
            live="${live:-$n}"
        elif [ -n "$pid" ]; then
            echo "$(cfull "$n"): starting or stuck (pid $pid, localhost:$(cport "$n") does not answer)"
            all=1
        else
            echo "$(cfull "$n"): down"
            all=1
        fi
    done
    if [ -n "$live" ]; then
        echo
        # The membership sections of cluster_status, not its feature flags and listeners.
        ctl "$live" cluster_status 2>&1 | awk '/^(Basics|Disk Nodes|Running Nodes|Network Partitions|Alarms)$/ {p = 1} /^(Versions|Maintenance status|Listeners|Feature flags|CPU Cores)/ {p = 0} p'
    fi
    return "$all"
}

stop_node() {
    local n=$1 t0 pid
    t0="$(now)"
    pid="$(cpid "$n")"
    [ -n "$pid" ] || { say "node $(cfull "$n") is not running"; return 0; }
    ctl "$n" -q stop >/dev/null 2>&1 || true
    while [ -d "/proc/$pid" ]; do sleep 0.1; done
    say "node $(cfull "$n") stopped (after $(since "$t0")s; its data stays)"
}

start_node() {
    local n=$1 t0
    t0="$(now)"
    [ -d "$(cdir "$n")" ] || die "no node $n: scripts/cluster.sh up first"
    if running "$n"; then
        say "node $(cfull "$n") is already running"
    else
        node_launch "$(cname "$n")"
    fi
    wait_node "$n"
    say "node $(cfull "$n") is back in the cluster, stream on localhost:$(cport "$n") (after $(since "$t0")s)"
}

kill_node() {
    local n=$1 quiet=${2:-} pid
    pid="$(cpid "$n")"
    if [ -z "$pid" ]; then
        [ -n "$quiet" ] || say "node $(cfull "$n") is not running"
        return 0
    fi
    as_root kill -9 "$pid" 2>/dev/null || true
    while [ -d "/proc/$pid" ]; do sleep 0.1; done
    [ -n "$quiet" ] || say "node $(cfull "$n") killed (kill -9 of beam.smp pid $pid; its data stays)"
}

signal_node() {
    local n=$1 sig=$2 pid
    pid="$(cpid "$n")"
    [ -n "$pid" ] || die "node $(cfull "$n") is not running"
    as_root kill "-$sig" "$pid"
    say "node $(cfull "$n"): sent SIG$sig to pid $pid"
}

# A node that answers, for cluster-wide queries.
live_node() {
    local n
    for n in "${NODES[@]}"; do
        if running "$n" && port_open "$(cport "$n")"; then
            echo "$n"
            return 0
        fi
    done
    die "no node of the cluster is up"
}

streams() {
    ctl "$(live_node)" -q list_queues name type leader members --no-table-headers | awk '$2 == "stream" { $2 = ""; sub("  ", " "); print }'
}

leader() {
    local stream=$1 line
    line="$(ctl "$(live_node)" -q list_queues name type leader --no-table-headers | awk -v s="$stream" '$1 == s && $2 == "stream" { print $3 }')"
    [ -n "$line" ] || die "no stream '$stream'"
    echo "$line"
}

cmd="${1:-}"
case "$cmd" in
    up) up ;;
    down) down ;;
    status) status ;;
    stop-node | start-node | kill-node | pause-node | resume-node | wait-node | ctl | streams-ctl | diag) check_n "${2:-}" ;;
    leader) [ -n "${2:-}" ] || die "usage: leader STREAM" ;;
    streams | uris) ;;
    *)
        echo "usage: $0 up|down|status|stop-node N|start-node N|kill-node N|pause-node N|resume-node N|wait-node N|leader STREAM|streams|uris|ctl N ARGS...|streams-ctl N ARGS...|diag N ARGS..." >&2
        exit 2
        ;;
esac
case "$cmd" in
    stop-node) stop_node "$2" ;;
    start-node) start_node "$2" ;;
    kill-node) kill_node "$2" ;;
    pause-node) signal_node "$2" STOP ;;
    resume-node) signal_node "$2" CONT ;;
    wait-node) wait_node "$2" ;;
    leader) leader "$2" ;;
    streams) streams ;;
    uris) for n in "${NODES[@]}"; do echo "rabbitmq-stream://guest:guest@localhost:$(cport "$n")/%2f"; done ;;
    ctl) n=$2; shift 2; ctl "$n" "$@" ;;
    streams-ctl) n=$2; shift 2; node_env "$(cname "$n")" "$RABBITMQ_BIN/rabbitmq-streams" -n "$(cname "$n")" "$@" ;;
    diag) n=$2; shift 2; node_env "$(cname "$n")" "$RABBITMQ_BIN/rabbitmq-diagnostics" -n "$(cname "$n")" "$@" ;;
esac
