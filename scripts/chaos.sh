#!/usr/bin/env bash
# Jepsen-style faults (issue 23) on a 3-node RabbitMQ cluster whose nodes each live in a network
# namespace of their own, so that a partition is a real one: the RabbitMQ 4.x of the trixie root that
# scripts/broker.sh builds (its functions are sourced from there). The brokers on localhost (5552,
# 5553, scripts/cluster.sh's 5561-5563) are left alone. Needs root.
#
#   up                  namespaces, bridge, 3 nodes joined into a cluster; wait healthy (idempotent)
#   down                stop the nodes; delete the namespaces, the nodes' data, the hosts lines
#   status              each node up, paused or down, then the cluster's status (exit 1 if one is not up)
#   uris                the three stream URIs, comma-separated, for invstream's --uri
#   exec CMD ARGS       run CMD in the client namespace (where invstream runs)
#   ctl N ARGS          rabbitmqctl ARGS against node N (also streams-ctl N, diag N)
#   leader STREAM       the number (1-3) of the node leading STREAM
#   wait-healthy [STREAM]  until all 3 run, clustered, no partition, no alarm, autoheal idle, each
#                       stream port reachable from the client (and STREAM has a leader, 3 members);
#                       repairs a node stuck in a partition (app restart) or out of the cluster
#                       (node restart), logged as "repair" events
#   selftest            node 2's app stopped behind its back: wait-healthy must restart node 2
#   fault NAME [NODE|STREAM]  inject; return once in effect; print the node hit (NODE: 1-3, or
#                       leader:STREAM, the node leading it now)
#   heal NAME [NODE|STREAM]   undo it; return once undone (NODE: by default the one `fault` hit)
#   nemesis [--faults LIST|all] [--interval S] [--duration S | --rounds N] [--seed N] [--stream S]
#           [--target leader|random] [--log FILE] [--dry-run]
#
# Faults: kill N (kill -9; heal: start on its data), stop N (clean stop), pause N (SIGSTOP/SIGCONT;
# the nemesis holds pause-short 6 s, under net_ticktime, pause-long 25 s, over it), isolate N (switch
# port down: cut off from peers and client), isolate-peers N (nft drops: cut off from the peers only),
# leader-move STREAM (restart_stream, another preferred leader), rolling-restart, disk-alarm N (disk
# free limit above the free space), conn-cut (client connections to 5552 killed by ss -K; nft resets).
# Nemesis: LIST in a seeded shuffle, each once before any repeats; a fault starts INTERVAL s after
# the previous one started (at once if that took longer), none after DURATION (--rounds N: stop
# after N times LIST instead; --rounds 1 --interval 0: each fault once, back to back); each hits the
# leader of STREAM (or a seeded random node), is held (hold_s), healed, waited healthy. FILE gets
# JSON lines {"t":1733400000.123,"event":"fault","fault":"kill","node":2,...}, "heal", "healthy",
# also "start" (seed), "repair", "end"/"stopped". SIGTERM/SIGINT: heal, wait healthy, log "stopped",
# exit 143/130.
#
# Node i: xi@invchaos-ni, namespace invchaos-ni, 10.77.0.i:5552; client: invchaos-client, 10.77.0.100;
# bridge br0 in invchaos-sw; data: the chroot's /var/lib/rabbitmq/invstream-nodes/xi. net_ticktime = 10
# (a paused or cut-off node is declared down after 10-14 s, not 60-75) and cluster_partition_handling
# = autoheal: with `ignore`, a SIGSTOP or a cut over net_ticktime leaves a partition that never heals
# (docs/investigations/hung-leader.md).
# CHAOS_NET=loopback: where network namespaces are not to be had (a container without
# CAP_NET_ADMIN), the same cluster on 127.0.0.1 (nodes xlN@HOST, stream ports 5631-5633), with every
# fault but those that need a network of its own: isolate, isolate-peers, conn-cut. Every command
# then needs CHAOS_NET=loopback too (scripts/chaos-run.sh falls back to it by itself).
# Exit codes: 1 error, 2 usage, 3 no network namespaces (not root, no `ip`, `ip netns add` fails).
set -euo pipefail

SAY_AS=chaos
# shellcheck source=broker.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/broker.sh"

NODES=(1 2 3)
SW=invchaos-sw
CLIENT=invchaos-client
SPORT=5552
STATE_DIR="$CACHE/chaos"
CTL_TIMEOUT=15
HEALTHY_TIMEOUT_S="${CHAOS_HEALTHY_TIMEOUT_S:-300}"
LOG=/dev/null
ALL_FAULTS=kill,stop,pause-short,pause-long,isolate,isolate-peers,leader-move,rolling-restart,disk-alarm,conn-cut
# The faults that need the nodes in namespaces of their own.
NET_FAULTS=isolate,isolate-peers,conn-cut
NET="${CHAOS_NET:-netns}"
case "$NET" in
    netns) ;;
    loopback)
        ALL_FAULTS=kill,stop,pause-short,pause-long,leader-move,rolling-restart,disk-alarm
        STATE_DIR="$CACHE/chaos-loopback" HOST="$(hostname -s)" ;;
    *) echo "chaos: error: CHAOS_NET is netns (the default) or loopback, not '$NET'" >&2; exit 2 ;;
esac
loopback() { [ "$NET" = loopback ]; }

xns() { echo "invchaos-n$1"; }
xname() { if loopback; then echo "xl$1"; else echo "x$1"; fi; }
xfull() { if loopback; then echo "xl$1@$HOST"; else echo "x$1@invchaos-n$1"; fi; }
xaddr() { if loopback; then echo 127.0.0.1; elif [ "$1" = client ]; then echo 10.77.0.100; else echo "10.77.0.$1"; fi; }
# Node N's stream port: each node has its own address in namespaces, its own port on loopback.
xport() { if loopback; then echo $((5630 + $1)); else echo "$SPORT"; fi; }
xdist() { if loopback; then echo $((25630 + $1)); else echo 25672; fi; }
xdir() { node_dir "$(xname "$1")"; }
now() { date +%s.%3N; }
since() { awk -v a="$1" -v b="${2:-$(now)}" 'BEGIN { printf "%.1f", b - a }'; }
check_n() { case "${1:-}" in 1 | 2 | 3) ;; *) die "node must be 1, 2, 3 or leader:STREAM, not '${1:-}'" ;; esac; }
no_netns() { echo "chaos: error: network namespaces unavailable ($1); CHAOS_NET=loopback runs the cluster on 127.0.0.1 instead (no partition faults)" >&2; exit 3; }
have_ns() { [ -e "/run/netns/$1" ]; }
# nsx NS CMD...: CMD in namespace NS (on loopback: as it is, as root).
nsx() { local ns=$1; shift; if loopback; then as_root "$@"; else as_root ip netns exec "$ns" "$@"; fi; }
need_up() {
    if loopback; then joined || die "the loopback chaos cluster is not up: CHAOS_NET=loopback scripts/chaos.sh up first"
    else have_ns "$CLIENT" || die "the chaos cluster is not up: scripts/chaos.sh up first"; fi
}
# reach NS ADDR PORT: a TCP connection from namespace NS to ADDR:PORT opens within 1 s.
reach() { nsx "$1" timeout 1 bash -c "exec 3<>/dev/tcp/$2/$3" 2>/dev/null; }
# poll SECS WHAT CMD...: run CMD until it succeeds; after SECS s die saying WHAT.
poll() { local t0=$SECONDS s=$1 what=$2; shift 2; until "$@"; do [ $((SECONDS - t0)) -lt "$s" ] || die "$what after ${s}s"; sleep 0.2; done; }

add_ns() { have_ns "$1" || as_root ip netns add "$1" 2>/dev/null || no_netns "'ip netns add $1' failed"; }
# attach WHO (1-3 or client): its namespace, a veth pair eth0 <-> port pWHO on the bridge, its address.
attach() {
    local who=$1 ns port=p$1
    if [ "$who" = client ]; then ns=$CLIENT; else ns="$(xns "$who")"; fi
    add_ns "$ns"
    if ! nsx "$SW" ip link show "$port" >/dev/null 2>&1; then
        nsx "$ns" ip link del eth0 2>/dev/null || true
        as_root ip link add "$port" netns "$SW" type veth peer name eth0 netns "$ns"
        nsx "$ns" ip addr add "$(xaddr "$who")/24" dev eth0
    fi
    nsx "$SW" ip link set "$port" master br0 up; nsx "$ns" ip link set lo up; nsx "$ns" ip link set eth0 up
}

need_netns() {
    [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null || no_netns "not root, and no password-less sudo"
    command -v ip >/dev/null || no_netns "no 'ip' command: apt-get install iproute2"
}
net_up() {
    command -v nft >/dev/null || apt_install nftables
    add_ns "$SW"
    nsx "$SW" ip link show br0 >/dev/null 2>&1 || nsx "$SW" ip link add br0 type bridge
    nsx "$SW" ip link set lo up; nsx "$SW" ip link set br0 up
    local who line
    for who in "${NODES[@]}" client; do attach "$who"; done
    for who in "${NODES[@]}"; do
        line="$(xaddr "$who") $(xns "$who") # invchaos"
        grep -qxF "$line" "$ROOTFS/etc/hosts" || echo "$line" | as_root tee -a "$ROOTFS/etc/hosts" >/dev/null
    done
}

xenv() {
    local n=$1 d
    d="$(xdir "$1")"; shift
    nsx "$(xns "$n")" chroot "$ROOTFS" /usr/bin/env HOME=/var/lib/rabbitmq \
        RABBITMQ_NODENAME="$(xfull "$n")" RABBITMQ_CONFIG_FILE="$d/rabbitmq" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_MNESIA_BASE="$d/mnesia" \
        RABBITMQ_LOG_BASE="$d/log" RABBITMQ_PID_FILE="$d/pid" RABBITMQ_DIST_PORT="$(xdist "$n")" "$@"
}
# The CLI tools run as root (not through Debian's su wrapper), so that `timeout` ends them for good.
tool() { local t=$1 n=$2; shift 2; xenv "$n" timeout "$CTL_TIMEOUT" "$RABBITMQ_BIN/$t" -n "$(xfull "$n")" "$@"; }
ctl() { tool rabbitmqctl "$@"; }

# The PID of node N's Erlang VM (its pid file's, if a live beam.smp in N's namespace, or on
# loopback one whose environment names N), or nothing.
xpid() {
    local pid; pid="$(cat "$ROOTFS$(xdir "$1")/pid" 2>/dev/null || true)"
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = beam.smp ] || return 0
    if loopback; then
        if as_root cat "/proc/$pid/environ" 2>/dev/null | tr '\0' '\n' | grep -qx "RABBITMQ_NODENAME=$(xfull "$1")"; then echo "$pid"; fi
    elif [ "$(as_root ip netns identify "$pid" 2>/dev/null)" = "$(xns "$1")" ]; then echo "$pid"; fi
}
running() { [ -n "$(xpid "$1")" ]; }
paused() { local p; p="$(xpid "$1")"; [ -n "$p" ] && [ "$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null)" = T ]; }
resumed() { ! paused "$1"; }
need_running() { running "$1" || die "node $(xfull "$1") is not running: scripts/chaos.sh up"; }
conf() {
    printf '%s\n' "listeners.tcp = none" "stream.listeners.tcp.1 = $(xport "$1")" "stream.advertised_host = $(xaddr "$1")" \
        "stream.advertised_port = $(xport "$1")" "loopback_users.guest = false" "net_ticktime = 10" "cluster_partition_handling = autoheal"
}
launch() { xenv "$1" /bin/sh -c 'rabbitmq-server -detached' >/dev/null 2>&1 || true; }
await_boot() {
    local n=$1 t0=$SECONDS log; log="$ROOTFS$(xdir "$n")/log"
    until ctl "$n" -q await_startup --timeout 5 >/dev/null 2>&1; do
        if [ $((SECONDS - t0)) -ge "$START_TIMEOUT_S" ] || grep -qs "BOOT FAILED" "$log"/*.log; then
            grep -hs "\[error\]" "$log"/*.log | head -5 >&2; die "node $(xfull "$n") did not start; see $log/"
        fi
        sleep 1
    done
}
start_node() { running "$1" || launch "$1"; await_boot "$1"; }

# Stops node N cleanly; kills it if it has not stopped within 30 s (and says so).
stop_node() {
    local n=$1 pid t0=$SECONDS; pid="$(xpid "$n")"
    [ -n "$pid" ] || return 0
    ctl "$n" -q stop >/dev/null 2>&1 || true
    while [ -d "/proc/$pid" ]; do
        [ $((SECONDS - t0)) -lt 30 ] || { say "node $(xfull "$n") did not stop within 30s: kill -9"; as_root kill -9 "$pid"; }
        sleep 0.1
    done
}
kill_node() { local pid; pid="$(xpid "$1")"; as_root kill -9 "$pid"; while [ -d "/proc/$pid" ]; do sleep 0.1; done; }
joined() { local n; for n in "${NODES[@]}"; do [ -f "$ROOTFS$(xdir "$n")/joined" ] || return 1; done; }

fresh_cluster() {
    local n
    for n in "${NODES[@]}"; do
        as_root rm -rf "$ROOTFS$(xdir "$n")"
        conf "$n" | DIST_PORT="$(xdist "$n")" node_init "$(xname "$n")" "$(xport "$n")" '[rabbitmq_stream].'
    done
    for n in "${NODES[@]}"; do launch "$n"; done; for n in "${NODES[@]}"; do await_boot "$n"; done
    say "all three booted; joining 2 and 3 to $(xfull 1)"
    for n in 2 3; do ctl "$n" -q stop_app; ctl "$n" -q join_cluster "$(xfull 1)"; ctl "$n" -q start_app; done >/dev/null
    for n in "${NODES[@]}"; do as_root touch "$ROOTFS$(xdir "$n")/joined"; done
}

# every_node ARGS...: `ctl N ARGS...` on every running, unpaused node at once (list_queues hangs
# while a member is paused: each is bounded by CTL_TIMEOUT); "N<TAB>line" for each line answered.
every_node() {
    local n dir; dir="$(mktemp -d)"
    for n in "${NODES[@]}"; do
        if running "$n" && ! paused "$n"; then { ctl "$n" "$@" >"$dir/$n" 2>/dev/null || rm -f "$dir/$n"; } & fi
    done
    wait
    for n in "${NODES[@]}"; do [ ! -s "$dir/$n" ] || sed "s/^/$n\t/" "$dir/$n"; done
    rm -rf "$dir"
}
# stream_row STREAM: "LEADER MEMBERS" (leader's number, member count) as the first node answering sees it.
stream_row() {
    every_node -q list_queues name type leader members --no-table-headers |
        awk -v s="$1" '$2 == s && $3 == "stream" { l = $4; sub(/^xl?/, "", l); sub(/@.*/, "", l); print l, gsub(/@/, "@") - 1; exit }'
}
leader() { local row; row="$(stream_row "$1")"; [ -n "$row" ] || die "no stream '$1' (or no node answered)"; echo "${row%% *}"; }
resolve() { case "${1:-}" in leader:*) leader "${1#leader:}" ;; *) check_n "${1:-}"; echo "$1" ;; esac; }
# Per node: running nodes, partitions, local alarms, autoheal idle. Healthy: {3,[],[],true}.
HEALTH='{length(rabbit_nodes:list_running()), rabbit_node_monitor:partitions(), rabbit_alarm:get_local_alarms(),
  lists:member(not_healing, tuple_to_list(sys:get_state(rabbit_node_monitor, 5000)))}.'

# healthy: all 3 up, no partition, no alarm, autoheal idle, each stream port reachable from the client.
# Sets STUCK to "N:ANSWER" of nodes that see 3 running, no alarm, but a partition or a busy autoheal,
# and DEAF to the numbers of running, unpaused nodes that do not answer or whose stream port the
# client does not reach.
healthy() {
    local n want=0 ans ok=1; STUCK='' DEAF=''
    for n in "${NODES[@]}"; do running "$n" && ! paused "$n" && want=$((want + 1)); done
    [ "$want" -eq 3 ] || return 1
    ans="$(every_node -q eval "$HEALTH")"
    STUCK="$(awk '$2 ~ /^\{3,.*,\[\],(true|false)\}$/ && $2 != "{3,[],[],true}" { printf "%s:%s ", $1, $2 }' <<<"$ans")"
    [ "$(grep -c $'\t{3,\\[\\],\\[\\],true}$' <<<"$ans")" -eq 3 ] || ok=0
    for n in "${NODES[@]}"; do
        grep -q "^$n"$'\t' <<<"$ans" && reach "$CLIENT" "$(xaddr "$n")" "$(xport "$n")" || { DEAF+="$n "; ok=0; }
    done
    [ "$ok" -eq 1 ]
}

# Seen with RabbitMQ 4.0.5: the autoheal winner can miss the loser's stop and wait forever (then it
# blocks the next heal), and after two overlapping autoheal rounds a node can list a partition with
# a node that is back. A node stuck so for 30 s has its app restarted (a "repair" event).
unstick() {
    local s n
    for s in $1; do
        n=${s%%:*}; log_event repair node="$n" state="${s#*:}" action=app-restart
        { ctl "$n" -q stop_app; ctl "$n" -q start_app; } >/dev/null 2>&1 || true
    done
}
# Seen once in CI (seed 23, after an isolate): the app restart above left the node running but out
# of the cluster, its stream port closed, for the 300 s that followed. A node that has not answered,
# or whose stream port is closed, for DEAF_RESTART_S is restarted whole: a new VM rejoins on its data
# (a "repair" event with action node-restart).
DEAF_RESTART_S="${CHAOS_DEAF_RESTART_S:-60}"
restart_deaf() {
    log_event repair node="$1" state=deaf action=node-restart
    stop_node "$1"; start_node "$1"
}

wait_healthy() {
    local stream=${1:-} t0=$SECONDS since='' n
    local -A deaf_since=()
    until healthy; do
        [ $((SECONDS - t0)) -lt "$HEALTHY_TIMEOUT_S" ] || { status >&2 || true; die "not healthy after ${HEALTHY_TIMEOUT_S}s"; }
        if [ -z "$STUCK" ]; then since=''
        elif [ -z "$since" ]; then since=$SECONDS
        elif [ $((SECONDS - since)) -ge 30 ]; then unstick "$STUCK"; since=''; fi
        for n in "${NODES[@]}"; do
            if [[ " $DEAF" != *" $n "* ]]; then unset "deaf_since[$n]"
            elif [ -z "${deaf_since[$n]:-}" ]; then deaf_since[$n]=$SECONDS
            elif [ $((SECONDS - deaf_since[$n])) -ge "$DEAF_RESTART_S" ]; then restart_deaf "$n"; unset "deaf_since[$n]"; fi
        done
        sleep 1
    done
    [ -z "$stream" ] || poll "$HEALTHY_TIMEOUT_S" "stream '$stream' has no leader and 3 members" three_members "$stream"
}
three_members() { local row; row="$(stream_row "$1")" && [ "${row#* }" = 3 ]; }

# nft_drop NS RULES: table inet invchaos in namespace NS with input and output rules (nothing: delete it).
nft_drop() {
    nsx "$1" nft delete table inet invchaos 2>/dev/null || true
    [ -z "${2:-}" ] || nsx "$1" nft -f - <<<"table inet invchaos {
        chain in { type filter hook input priority 0; $2; }
        chain out { type filter hook output priority 0; $3; }
    }"
}

isolate_peers() {
    local n=$1 set p
    set="{ $(for p in "${NODES[@]}"; do [ "$p" = "$n" ] || printf '%s,' "$(xaddr "$p")"; done) }"
    nft_drop "$(xns "$n")" "ip saddr $set drop" "ip daddr $set drop"
    for p in "${NODES[@]}"; do [ "$p" = "$n" ] || ! reach "$(xns "$n")" "$(xaddr "$p")" 4369 || die "isolate-peers: node $n reaches $p"; done
    reach "$CLIENT" "$(xaddr "$n")" 4369 || die "isolate-peers: the client does not reach node $n"
}
client_conns() { nsx "$CLIENT" ss -Htn state established "( dport = :$SPORT )" | wc -l; }
no_client_conns() { [ "$(client_conns)" -eq 0 ]; }

conn_cut() {
    local before; before="$(client_conns)"
    nft_drop "$CLIENT" "tcp sport $SPORT reject with tcp reset" "tcp dport $SPORT reject with tcp reset"
    nsx "$CLIENT" ss -K -tn state established "( dport = :$SPORT )" >/dev/null 2>&1 || true
    poll 3 "conn-cut: client connections to port $SPORT survived" no_client_conns
    say "conn-cut: $before client connection(s) to port $SPORT reset"
}
# disk_alarm N raised|cleared: whether node N's disk alarm is so.
disk_alarm() {
    local have=cleared
    if ctl "$1" -q eval 'rabbit_alarm:get_local_alarms().' 2>/dev/null | grep -q disk; then have=raised; fi
    [ "$have" = "$2" ]
}
# disk_limit N LIMIT raised|cleared: set node N's disk free limit, wait until its disk alarm is so.
disk_limit() { ctl "$1" -q set_disk_free_limit "$2" >/dev/null; poll 30 "disk-alarm: node $1's alarm is not $3" disk_alarm "$1" "$3"; }
led_by_other() { [ "$(leader "$1" 2>/dev/null)" != "$2" ]; }
# restart_stream's preferred leader is a hint (it may elect the old one again): up to 6 restarts, a
# preferred leader alternating between the two others, until it names another leader.
leader_move() {
    local stream=$1 old new='' try to; old="$(leader "$stream")"
    for try in 1 2 3 4 5 6; do
        to=$(((old + try % 2) % 3 + 1))
        new="$(tool rabbitmq-streams "$to" -q restart_stream "$stream" --preferred-leader-node "$(xfull "$to")" | sed -n 's/^xl\{0,1\}\([1-3]\)@.*/\1/p' || true)"
        [ -z "$new" ] || [ "$new" = "$old" ] || break
        sleep 2
    done
    poll 30 "leader-move: '$stream' is still led by node $old ($try restarts)" led_by_other "$stream" "$old"
    say "leader-move: '$stream' led by node $(leader "$stream") (was $old; $try restart(s))"
}

rolling_restart() {
    local n
    for n in "${NODES[@]}"; do stop_node "$n"; start_node "$n"; wait_healthy; say "rolling-restart: node $n back"; done
}
node_fault() { case "$1" in kill | stop | pause* | isolate | isolate-peers | disk-alarm) return 0 ;; esac; return 1; }

# inject NAME ARG (a node number; for leader-move the stream): returns once the fault is in effect.
inject() {
    local f=$1 a=${2:-} avail
    case "$f" in kill | pause* | disk-alarm) need_running "$a" ;; esac
    ! loopback || [[ ",$NET_FAULTS," != *",$f,"* ]] || die "fault $f needs the nodes in network namespaces: not on the loopback cluster (CHAOS_NET=loopback)"
    case "$f" in
        kill) kill_node "$a" ;;
        stop) stop_node "$a" ;;
        pause | pause-short | pause-long) as_root kill -STOP "$(xpid "$a")"; poll 5 "pause: node $a not stopped" paused "$a" ;;
        isolate)
            nsx "$SW" ip link set "p$a" down
            ! reach "$CLIENT" "$(xaddr "$a")" 4369 || die "isolate: the client still reaches node $a" ;;
        isolate-peers) isolate_peers "$a" ;;
        leader-move) leader_move "$a" ;;
        rolling-restart) rolling_restart ;;
        disk-alarm)
            avail="$(df -B1 --output=avail "$ROOTFS" | tail -1 | tr -dc 0-9)"
            disk_limit "$a" "$((avail * 2 + 1000000000))" raised ;;
        conn-cut) conn_cut ;;
        *) die "unknown fault '$f' (one of: ${ALL_FAULTS//,/, }, pause)" ;;
    esac
}

# undo NAME ARG: returns once the fault is undone (not yet healthy: wait_healthy).
undo() {
    local f=$1 a=${2:-} p
    case "$f" in
        kill | stop) start_node "$a" ;;
        pause | pause-short | pause-long) as_root kill -CONT "$(xpid "$a")"; poll 5 "pause: node $a still stopped" resumed "$a" ;;
        isolate)
            nsx "$SW" ip link set "p$a" up
            poll 30 "isolate: the client does not reach node $a" reach "$CLIENT" "$(xaddr "$a")" 4369 ;;
        isolate-peers)
            nft_drop "$(xns "$a")"
            for p in "${NODES[@]}"; do poll 30 "isolate-peers: node $a does not reach $p" reach "$(xns "$a")" "$(xaddr "$p")" 4369; done ;;
        leader-move) wait_healthy "$a" ;;
        rolling-restart) ;;
        disk-alarm) disk_limit "$a" 50MB cleared ;;
        conn-cut) nft_drop "$CLIENT" ;;
        *) die "unknown fault '$f'" ;;
    esac
}

fault_cmd() {
    local f=$1 a=${2:-} t0 t1
    t0="$(now)"
    if node_fault "$f"; then a="$(resolve "$a")"; elif [ "$f" = leader-move ] && [ -z "$a" ]; then usage; fi
    t1="$(now)"; inject "$f" "$a"
    mkdir -p "$STATE_DIR"; echo "$a" >"$STATE_DIR/$f"
    say "fault $f${a:+ $a} in effect (after $(since "$t1")s; finding the node took $(since "$t0" "$t1")s)"
    if node_fault "$f"; then echo "$a"; fi
}

heal_cmd() {
    local f=$1 a=${2:-} t0
    t0="$(now)"
    case "$a" in "" | leader:*) a="$(cat "$STATE_DIR/$f" 2>/dev/null || true)" ;; esac
    if node_fault "$f"; then check_n "$a"; fi
    undo "$f" "$a"; rm -f "$STATE_DIR/$f"
    say "fault $f${a:+ $a} healed (after $(since "$t0")s)"
}

# hold_s FAULT: how long the nemesis holds it.
hold_s() { case "$1" in pause-short) echo 6 ;; pause-long) echo 25 ;; isolate*) echo 20 ;; kill | stop) echo 5 ;; disk-alarm) echo 10 ;; conn-cut) echo 1 ;; *) echo 0 ;; esac; }
# log_event EVENT KEY=VALUE...: a JSON line to $LOG (numbers and null bare), a line on stderr.
log_event() {
    local t json kv k v
    t="$(now)"; json="{\"t\":$t,\"event\":\"$1\""; shift
    for kv in "$@"; do
        k=${kv%%=*} v=${kv#*=}
        if [[ "$v" =~ ^(-?[0-9]+(\.[0-9]+)?|null)$ ]]; then json+=",\"$k\":$v"; else json+=",\"$k\":\"$v\""; fi
    done
    echo "$json}" >>"$LOG"
    say "$(date -d "@$t" +%T.%1N) $json}"
}

# nap S: sleep, interruptibly (a trapped signal ends the wait at once).
nap() { sleep "$1" & NAP=$!; wait "$NAP" || true; NAP=''; }
# make_schedule SLOTS: SCHED[k]="FAULT NODE": cycles of a seeded shuffle of FAULTS, seeded random nodes.
make_schedule() {
    local list i j tmp
    IFS=, read -r -a list <<<"$FAULTS"
    SCHED=()
    while [ "${#SCHED[@]}" -lt "$1" ]; do
        for ((i = ${#list[@]} - 1; i > 0; i--)); do j=$((RANDOM % (i + 1))) tmp=${list[i]}; list[i]=${list[j]} list[j]=$tmp; done
        for i in "${list[@]}"; do SCHED+=("$i $((RANDOM % 3 + 1))"); done
    done
}

# target FAULT RANDOM_NODE: what to hit: the stream (leader-move), nothing, the leader, or the node.
target() {
    if [ "$1" = leader-move ]; then echo "$STREAM"
    elif ! node_fault "$1"; then echo ""
    elif [ "$TARGET" = leader ]; then leader "$STREAM" 2>/dev/null || echo "$2"
    else echo "$2"; fi
}

run_fault() {
    local f=$1 a=$2 t0 t1 node=null
    if node_fault "$f"; then node=$a; fi
    t0="$(now)" CUR="$f" CUR_ARG="$a" CUR_NODE=$node
    inject "$f" "$a"
    log_event fault fault="$f" node="$node" t0="$t0" inject_s="$(since "$t0")"
    nap "$(hold_s "$f")"
    t1="$(now)"; undo "$f" "$a"; CUR=''
    log_event heal fault="$f" node="$node" heal_s="$(since "$t1")"
    t1="$(now)"; wait_healthy "$STREAM"
    log_event healthy fault="$f" node="$node" wait_s="$(since "$t1")"
}

on_exit() {
    local rc=$? f=${CUR:-}; CUR=''
    [ -z "${NAP:-}" ] || kill "$NAP" 2>/dev/null || true
    if [ -n "$f" ]; then
        undo "$f" "$CUR_ARG" && log_event heal fault="$f" node="$CUR_NODE"
        wait_healthy "$STREAM" && log_event healthy fault="$f" node="$CUR_NODE"
    fi
    [ "$rc" -eq 0 ] || log_event stopped rc="$rc"
}

dry_run() {
    local k=0 e f
    for e in "${SCHED[@]}"; do
        f=${e% *}
        [ "$ROUNDS" -gt 0 ] || [ $((k * INTERVAL)) -le "$DURATION" ] || break
        printf '%d\t+%ds\t%s\t%s\n' "$k" $((k++ * INTERVAL)) "$f" "$(if [ "$f" = leader-move ]; then echo "$STREAM"; elif ! node_fault "$f"; then echo -
            elif [ "$TARGET" = leader ]; then echo "leader:$STREAM"; else echo "${e#* }"; fi)"
    done
}

nemesis() {
    FAULTS=all INTERVAL=20 DURATION=180 ROUNDS=0 SEED="" STREAM="" TARGET="" LOG=/dev/null
    local dry="" f e start next
    while [ $# -gt 0 ]; do
        case "$1" in
            --dry-run) dry=1; shift; continue ;;
            --faults | --interval | --duration | --rounds | --seed | --stream | --target | --log)
                [ $# -ge 2 ] || die "nemesis: $1 needs a value"; f=${1#--}; printf -v "${f^^}" '%s' "$2" ;;
            *) die "nemesis: unknown option '$1' (--faults --interval --duration --rounds --seed --stream --target --log --dry-run)" ;;
        esac
        shift 2
    done
    [ "$FAULTS" != all ] || FAULTS=$ALL_FAULTS
    [ -n "$STREAM" ] || { FAULTS=$(sed 's/\(^\|,\)leader-move//; s/^,//' <<<"$FAULTS"); TARGET=${TARGET:-random}; }
    TARGET=${TARGET:-leader}
    [[ "$INTERVAL $DURATION $ROUNDS $TARGET" =~ ^[0-9]+\ [0-9]+\ [0-9]+\ (leader|random)$ ]] || die "nemesis: --interval, --duration, --rounds are whole numbers, --target leader or random"
    for f in ${FAULTS//,/ }; do
        ! loopback || [[ ",$NET_FAULTS," != *",$f,"* ]] || die "nemesis: fault $f needs network namespaces; the loopback cluster has $ALL_FAULTS"
        [[ ",$ALL_FAULTS," == *",$f,"* ]] || die "nemesis: unknown fault '$f' (one of $ALL_FAULTS)"
    done
    SEED=${SEED:-$((RANDOM * 32768 + RANDOM))}; RANDOM=$SEED
    make_schedule $((ROUNDS > 0 ? ROUNDS * $(tr -cd , <<<"$FAULTS," | wc -c) : DURATION / (INTERVAL > 0 ? INTERVAL : 1) + 1))
    say "nemesis: seed $SEED; faults $FAULTS; target $TARGET${STREAM:+ of stream $STREAM}"
    if [ -n "$dry" ]; then dry_run; return 0; fi
    need_up
    trap on_exit EXIT; trap 'exit 130' INT; trap 'exit 143' TERM
    log_event start seed="$SEED" faults="$FAULTS" interval="$INTERVAL" duration="$DURATION" stream="$STREAM" target="$TARGET"
    start=$SECONDS next=$SECONDS
    for e in "${SCHED[@]}"; do
        [ "$next" -le "$SECONDS" ] || nap $((next - SECONDS))
        [ "$ROUNDS" -gt 0 ] || [ $((SECONDS - start)) -le "$DURATION" ] || break
        next=$((SECONDS + INTERVAL))
        run_fault "${e% *}" "$(target "${e% *}" "${e#* }")"
    done
    log_event end elapsed_s=$((SECONDS - start))
}

up() {
    local t0 n; t0="$(now)"
    if loopback; then ensure_rootfs; else need_netns; ensure_rootfs; net_up; fi
    if joined; then
        if healthy; then say "already up and healthy: $(uris)"; return 0; fi
        say "starting the nodes that are not running, on their data"
        for n in "${NODES[@]}"; do running "$n" || launch "$n"; done; for n in "${NODES[@]}"; do await_boot "$n"; done
    else
        say "starting $(xfull 1), $(xfull 2), $(xfull 3) (fresh data)"
        fresh_cluster
    fi
    wait_healthy
    if loopback; then say "up: 3 nodes running, clustered, on loopback: stream on 127.0.0.1:$(xport 1)-$(xport 3) (after $(since "$t0")s)"
    else say "up: 3 nodes running, clustered, stream on $(xaddr 1)-3:$SPORT (after $(since "$t0")s); client: scripts/chaos.sh exec CMD"; fi
}

down() {
    local n ns pid
    if loopback; then
        for n in "${NODES[@]}"; do if running "$n"; then as_root kill -CONT "$(xpid "$n")"; stop_node "$n" & fi; done
        wait
        for n in "${NODES[@]}"; do as_root rm -rf "$ROOTFS$(xdir "$n")"; done
        rm -rf "$STATE_DIR"
        say "down: the loopback nodes stopped, their data removed"
        return 0
    fi
    for n in "${NODES[@]}"; do if have_ns "$(xns "$n")" && running "$n" && ! paused "$n"; then stop_node "$n" & fi; done
    wait
    for ns in "$(xns 1)" "$(xns 2)" "$(xns 3)" "$CLIENT" "$SW"; do
        have_ns "$ns" || continue
        for pid in $(as_root ip netns pids "$ns"); do as_root kill -9 "$pid" 2>/dev/null || true; done
        as_root ip netns del "$ns"
    done
    for n in "${NODES[@]}"; do as_root rm -rf "$ROOTFS$(xdir "$n")"; done
    as_root sed -i '/ # invchaos$/d' "$ROOTFS/etc/hosts"
    rm -rf "$STATE_DIR"
    say "down: nodes stopped; namespaces, data and hosts lines removed"
}

status() {
    local n pid rc=0 live=''
    for n in "${NODES[@]}"; do
        pid="$(xpid "$n")"
        if [ -z "$pid" ]; then echo "$(xfull "$n"): down"; rc=1
        elif paused "$n"; then echo "$(xfull "$n"): paused (SIGSTOP, pid $pid)"; rc=1
        elif reach "$CLIENT" "$(xaddr "$n")" "$(xport "$n")"; then echo "$(xfull "$n"): up ($(xaddr "$n"):$(xport "$n"), pid $pid)"; live=${live:-$n}
        else echo "$(xfull "$n"): not reachable from the client (pid $pid)"; rc=1; fi
    done
    [ -z "$live" ] || { echo; ctl "$live" cluster_status 2>&1 | awk '/^(Basics|Disk Nodes|Running Nodes|Network Partitions|Alarms)$/ {p = 1}
        /^(Versions|Maintenance status|Listeners|Feature flags|CPU Cores)/ {p = 0} p' || true; }
    return "$rc"
}
# selftest: node 2's app stopped behind the harness's back (running, out of the cluster, its port
# closed) must be restarted whole by wait_healthy, which then finds the cluster healthy.
selftest() {
    wait_healthy
    LOG="$(mktemp)" DEAF_RESTART_S=10 HEALTHY_TIMEOUT_S=120
    ctl 2 -q stop_app >/dev/null
    wait_healthy
    grep -q '"node":2,"state":"deaf","action":"node-restart"' "$LOG" || die "selftest: node 2's app was stopped, but no node restart was logged ($LOG)"
    rm -f "$LOG"; say "selftest: a node running out of the cluster was restarted whole: ok"
}
uris() { local n out=''; for n in "${NODES[@]}"; do out+="${out:+,}rabbitmq-stream://guest:guest@$(xaddr "$n"):$(xport "$n")/%2f"; done; echo "$out"; }
usage() { echo "usage: $0 up|down|status|uris|exec CMD...|ctl|streams-ctl|diag N ARGS...|leader STREAM|wait-healthy [STREAM]|fault|heal NAME [NODE|STREAM]|nemesis [OPTIONS]|selftest" >&2; exit 2; }

cmd="${1:-}"
[ $# -eq 0 ] || shift
case "$cmd" in
    up | down | uris) "$cmd" ;;
    status) need_up; status ;;
    exec) need_up; [ $# -gt 0 ] || usage; nsx "$CLIENT" "$@" ;;
    ctl) need_up; check_n "${1:-}"; ctl "$@" ;;
    streams-ctl) need_up; check_n "${1:-}"; tool rabbitmq-streams "$@" ;;
    diag) need_up; check_n "${1:-}"; tool rabbitmq-diagnostics "$@" ;;
    leader) need_up; [ -n "${1:-}" ] || usage; leader "$1" ;;
    wait-healthy) need_up; wait_healthy "${1:-}" ;;
    selftest) need_up; selftest ;;
    fault) need_up; [ -n "${1:-}" ] || usage; fault_cmd "$@" ;;
    heal) need_up; [ -n "${1:-}" ] || usage; heal_cmd "$@" ;;
    nemesis) nemesis "$@" ;;
    *) usage ;;
esac
