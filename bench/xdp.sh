#!/usr/bin/env bash
# AF_XDP beside sockets, in one run, as root: gslbd through AF_XDP and through its sockets, Knot
# through AF_XDP and through sockets, gdnsd through sockets, each answering W1's static name.
# WORKLOAD=w5: bench/run.sh's W5 over the same wire (closest by geography on the full
# GeoLite2-City database, each query with EDNS Client Subnet from another of 4,096 /24s):
# gslbd's `nearest` pool through AF_XDP and through its sockets beside gdnsd's geoip plugin
# (auto_dc_coords) on the same file; Knot has no distance map and is left out.
#
#   bench/xdp.sh                  # 3 interleaved rounds of 10 s; the table at the end
#   WORKLOAD=w5 bench/xdp.sh      # gslbd_xdp gdnsd gslbd on W5
#   REPS=1 DURATION=3 bench/xdp.sh
#   SERVERS="gslbd_xdp knot_xdp" bench/xdp.sh
#   XDP_MODE=generic SERVERS=gslbd_xdp bench/xdp.sh   # gslbd's `xdp: { mode: ... }`
#   DEFER_US=100 SERVERS="gslbd_xdp_defer knot_xdp_defer" bench/xdp.sh   # interrupt deferral
#
# The wire: a veth pair, the client (dnsperf) in a network namespace of its own on CPU 1, the
# server on CPU 0, and the receive work of each end steered to its CPU: RPS (`rps_cpus`) on
# both ends, and, where the server's end runs XDP in its driver (native mode on veth), that
# end's NAPI in a thread of its own (`threaded`) pinned to CPU 0. Capacity is what CPU 0 does:
# queries answered ÷ CPU 0's busy time (wall minus idle, from /proc/stat: the per-process tick
# accounting reads low when softirq work lands on a thread), so every server is charged for the
# kernel work its path causes. Latency: p50/p99 at a fixed LAT_QPS (default 20000), and CPU 0's
# time per query at that rate.
#
# A server named with `_defer` (gslbd_xdp_defer, knot_xdp_defer) runs the same, with interrupt
# deferral on its end's NAPI: napi_defer_hard_irqs = DEFER_IRQS (default 2) and
# gro_flush_timeout = DEFER_US µs (default 20). A poll that found packets then leaves the
# interrupt (veth: the wake-up from the sender) off and looks again after DEFER_US, so packets
# arriving meanwhile are taken in one batch; after DEFER_IRQS empty polls the interrupt is back.
#
# Needs root, 2 CPUs, and the Debian packages dnsperf gdnsd knot iproute2 (installed if missing).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

REPS=${REPS:-3}
DURATION=${DURATION:-10}
LAT_QPS=${LAT_QPS:-20000}
WORKLOAD=${WORKLOAD:-w1}
case $WORKLOAD in
    w1) SERVERS=${SERVERS:-gslbd_xdp knot_xdp gdnsd gslbd knot} ;;
    w5) SERVERS=${SERVERS:-gslbd_xdp gdnsd gslbd} ;;
    *) die "WORKLOAD=$WORKLOAD: w1 or w5" ;;
esac
DEFER_US=${DEFER_US:-20}
DEFER_IRQS=${DEFER_IRQS:-2}
XDP_MODE=${XDP_MODE:-auto}
ZONE=bench.test
NS=gslbd-xdp-bench
HOST_IF=gxb0
PEER_IF=gxb1
SERVER_IP=198.18.200.1
CLIENT_IP=198.18.200.2

[ "$(id -u)" = 0 ] || die "run as root (network namespaces, XDP)"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, client on CPU 1)"
PACKAGES=(dnsperf gdnsd knot iproute2 util-linux)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    for svc in gdnsd knot; do
        systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
    done
fi
exec 9>/tmp/gslb-anchors-bench.lock
flock -w 1800 9 || die "another benchmark holds /tmp/gslb-anchors-bench.lock"
if [ -z "${GSLBD:-}" ]; then
    log "building gslbd (release)"
    GSLBD=$("$REPO/contrib/build-gslbd.sh")
fi

WORK=$(mktemp -d /tmp/gslbd-xdp-bench.XXXXXX)
OUT=${OUT:-$REPO/bench/results/xdp-$WORKLOAD-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$OUT"
SPID=""
stop_server() {
    [ -n "$SPID" ] || return 0
    kill -TERM "$SPID" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
    SPID=""
    # knotd leaves its XDP program attached when it stops; the next server must find none.
    ip link set dev "$HOST_IF" xdp off 2>/dev/null || true
}
cleanup() {
    stop_server
    ip link del "$HOST_IF" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The wire, made afresh (a leftover of an interrupted run is removed first).
ip link del "$HOST_IF" 2>/dev/null || true
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip link add "$HOST_IF" type veth peer name "$PEER_IF"
ip link set "$PEER_IF" netns "$NS"
ip addr add "$SERVER_IP/24" dev "$HOST_IF"
ip link set "$HOST_IF" up
ip netns exec "$NS" ip addr add "$CLIENT_IP/24" dev "$PEER_IF"
ip netns exec "$NS" ip link set "$PEER_IF" up
ip netns exec "$NS" ip link set lo up
echo 1 >"/sys/class/net/$HOST_IF/queues/rx-0/rps_cpus"
ip netns exec "$NS" sh -c "echo 2 >/sys/class/net/$PEER_IF/queues/rx-0/rps_cpus"
in_ns() { ip netns exec "$NS" "$@"; }

# The zone: www with two addresses, as bench/run.sh's W1.
write_zone_file() { # FILE
    cat >"$1" <<EOF
\$ORIGIN $ZONE.
\$TTL 300
@    IN SOA ns1.$ZONE. hostmaster.$ZONE. 1 3600 600 86400 30
@    IN NS  ns1.$ZONE.
ns1  IN A   $SERVER_IP
www  30 IN A 127.0.1.1
www  30 IN A 127.0.1.2
EOF
}

# W5: bench/w5.sh (sites, pool, gdnsd's plugin, the subnets checked before each round).
# shellcheck source=bench/w5.sh
. "$HERE/w5.sh"
if [ "$WORKLOAD" = w5 ]; then
    case " $SERVERS " in *" knot"*) die "Knot has no distance map for W5: SERVERS without knot" ;; esac
    GEOIP_DB=$(w5_db)
fi

start_server() { # NAME DIR
    local name=${1%_defer} defer=0 dir=$2
    [ "$name" != "$1" ] && defer=1
    mkdir -p "$dir"
    case $name in
        gslbd | gslbd_xdp)
            mkdir -p "$dir/zones"
            cat >"$dir/zones/$ZONE.yaml" <<EOF
zone: $ZONE.
soa: { mname: ns1.$ZONE., rname: hostmaster.$ZONE., minimum: 30 }
ns: [ns1.$ZONE.]
records:
  ns1: { A: [$SERVER_IP] }
  www: { A: [127.0.1.1, 127.0.1.2], ttl: 30 }
EOF
            [ "$WORKLOAD" = w5 ] && w5_gslbd_zone >>"$dir/zones/$ZONE.yaml"
            {
                echo "listen: [\"$SERVER_IP:53\"]"
                echo "zones_dir: zones"
                echo "state_dir: state"
                echo "api: { listen: \"127.0.0.1:18053\" }"
                echo "rrl: { responses_per_second: 0 }"
                [ "$WORKLOAD" = w5 ] && echo "geoip: { database: $GEOIP_DB }"
                [ "$name" = gslbd_xdp ] && echo "xdp: { interface: $HOST_IF, addresses: [$SERVER_IP], mode: $XDP_MODE }"
            } >"$dir/gslbd.yaml"
            (cd "$dir" && exec taskset -c 0 "$GSLBD" serve --config gslbd.yaml --udp-threads 1 >"$dir/server.log" 2>&1) &
            SPID=$!
            ;;
        knot | knot_xdp)
            mkdir -p "$dir/db"
            write_zone_file "$dir/$ZONE.zone"
            {
                echo "server:"
                echo "    rundir: \"$dir\""
                echo "    listen: $SERVER_IP@53"
                echo "    udp-workers: 1"
                echo "    tcp-workers: 1"
                echo "    background-workers: 1"
                if [ "$name" = knot_xdp ]; then
                    echo "xdp:"
                    echo "    listen: $HOST_IF@53"
                    echo "    udp: on"
                fi
                echo "control:"
                echo "    listen: \"$dir/knot.sock\""
                echo "database:"
                echo "    storage: \"$dir/db\""
                echo "log:"
                echo "  - target: stderr"
                echo "    any: notice"
                echo "zone:"
                echo "  - domain: $ZONE"
                echo "    file: \"$dir/$ZONE.zone\""
                echo "    journal-content: none"
                echo "    zonefile-sync: -1"
            } >"$dir/knot.conf"
            taskset -c 0 knotd -c "$dir/knot.conf" >"$dir/server.log" 2>&1 &
            SPID=$!
            ;;
        gdnsd)
            mkdir -p "$dir/etc/zones" "$dir/etc/geoip" "$dir/run" "$dir/state"
            write_zone_file "$dir/etc/zones/$ZONE"
            cat >"$dir/etc/config" <<EOF
options => {
    listen => { $SERVER_IP:53 => { udp_threads => 1, tcp_threads => 1 } }
    run_dir => $dir/run
    state_dir => $dir/state
}
EOF
            if [ "$WORKLOAD" = w5 ]; then
                echo "near 30 DYNA geoip!near" >>"$dir/etc/zones/$ZONE"
                ln -sf "$GEOIP_DB" "$dir/etc/geoip/GeoLite2-City.mmdb"
                w5_gdnsd_plugin >>"$dir/etc/config"
            fi
            taskset -c 0 gdnsd -c "$dir/etc" start >"$dir/server.log" 2>&1 &
            SPID=$!
            ;;
        *) die "unknown server $name" ;;
    esac
    # Answering from the client's namespace?
    for _ in $(seq 1 100); do
        in_ns dig +short +tries=1 +time=1 @"$SERVER_IP" "www.$ZONE" A 2>/dev/null | grep -q 127.0.1.1 && break
        sleep 0.1
    done
    in_ns dig +short +tries=1 +time=1 @"$SERVER_IP" "www.$ZONE" A | grep -q 127.0.1.1 || {
        cat "$dir/server.log" >&2
        return 1
    }
    # An XDP server answers through its sockets before its program is attached: wait for it.
    if [ "${name%_xdp}" != "$name" ]; then
        for _ in $(seq 1 100); do
            ip link show "$HOST_IF" | grep -q "prog/xdp" && break
            sleep 0.1
        done
        ip link show "$HOST_IF" | grep -q "prog/xdp" || { log "$name attached no XDP program"; return 1; }
    fi
    # A native XDP program on the veth: its NAPI in a thread of its own, on the server's CPU.
    # Without that the XDP work would run on the client's CPU, and CPU 0 would look cheap.
    if ip link show "$HOST_IF" | grep -q "prog/xdp" && ! ip link show "$HOST_IF" | grep -qw xdpgeneric; then
        echo 1 >"/sys/class/net/$HOST_IF/threaded" || { log "no threaded NAPI on $HOST_IF"; return 1; }
        local pinned=0
        for p in $(pgrep "napi/$HOST_IF" || true); do taskset -p 1 "$p" >/dev/null && pinned=1; done
        [ "$pinned" = 1 ] || { log "no NAPI thread of $HOST_IF to pin"; return 1; }
        # Interrupt deferral for the _defer runs; off (the kernel's default) for the others.
        if [ "$defer" = 1 ]; then
            echo "$DEFER_IRQS" >"/sys/class/net/$HOST_IF/napi_defer_hard_irqs"
            echo $((DEFER_US * 1000)) >"/sys/class/net/$HOST_IF/gro_flush_timeout"
        else
            echo 0 >"/sys/class/net/$HOST_IF/napi_defer_hard_irqs"
            echo 0 >"/sys/class/net/$HOST_IF/gro_flush_timeout"
        fi
    elif [ "$defer" = 1 ]; then
        log "$1: no NAPI on $HOST_IF to defer interrupts of"
        return 1
    fi
}

xdp_mode() { # -> the path queries take, and the XDP program's name
    local l name
    l=$(ip -d link show "$HOST_IF")
    name=$(printf '%s\n' "$l" | sed -n 's/.*prog\/xdp[a-z]* id [0-9]* name \([^ ]*\).*/\1/p' | head -1)
    case $l in
        *"xdpgeneric"*) echo "AF_XDP generic mode ($name)" ;;
        *"prog/xdp"*) echo "AF_XDP native mode ($name)" ;;
        *) echo "UDP sockets" ;;
    esac
}

cpu0_busy() { # -> busy ticks, total ticks of CPU 0
    awk '$1 == "cpu0" { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat
}

# W1: the static name; W5: a query per ECS /24 in turn, in dnsperf's binary format (-B)
if [ "$WORKLOAD" = w5 ]; then
    "$HERE/ecs-queries.py" "near.$ZONE" 4096 "$WORK/q.bin"
    QUERIES=(-B -d "$WORK/q.bin")
else
    echo "www.$ZONE A" >"$WORK/q.txt"
    QUERIES=(-d "$WORK/q.txt")
fi
w5_check() { # -> nothing if every W5 subnet is answered from its nearest site, else what was
    local i got
    for i in "${!W5_SUBNETS[@]}"; do
        got=$(in_ns dig +short +tries=1 +time=1 +subnet="${W5_SUBNETS[$i]}" @"$SERVER_IP" "near.$ZONE" A | tr '\n' ' ')
        [ "$got" = "${W5_EXPECT[$i]} " ] || echo "near ${W5_SUBNETS[$i]} -> ${got:-nothing}"
    done
}
echo "server,rep,path,qps,cpu0_busy_pct,capacity,p50_us,p99_us,cpu_us_per_query_at_lat_qps" >"$OUT/raw.csv"
measure() { # SERVER REP
    local server=$1 rep=$2 dir=$WORK/$1-$2 b0 t0 b1 t1 done_q busy pct cap path p50 p99 answered cpq
    start_server "$server" "$dir" || { log "$server did not answer"; stop_server; return 0; }
    if [ "$WORKLOAD" = w5 ]; then
        local wrong
        wrong=$(w5_check)
        [ -z "$wrong" ] || { log "$server answered W5 wrong: $wrong"; stop_server; return 0; }
    fi
    path=$(xdp_mode)
    case $server in
        *_xdp) ;;
        *_xdp_defer) path="$path + interrupts deferred ${DEFER_US} µs" ;;
        *) path="UDP sockets" ;;
    esac
    # warm up, then saturate: dnsperf on CPU 1 in the client's namespace
    in_ns taskset -c 1 dnsperf -s "$SERVER_IP" "${QUERIES[@]}" -l 2 -T 1 -c 8 -q 500 >/dev/null 2>&1 || true
    read -r b0 t0 < <(cpu0_busy)
    in_ns taskset -c 1 dnsperf -s "$SERVER_IP" "${QUERIES[@]}" -l "$DURATION" -T 1 -c 8 -q 500 >"$dir/max.txt" 2>&1 || true
    read -r b1 t1 < <(cpu0_busy)
    done_q=$(awk '/Queries completed:/ {print $3}' "$dir/max.txt")
    busy=$((b1 - b0))
    # of the DURATION seconds of load (dnsperf waits out the timeout of lost queries after it)
    pct=$(awk -v b="$busy" -v d="$DURATION" 'BEGIN { printf "%.0f", b / d }')
    # ticks are 1/100 s (USER_HZ)
    cap=$(awk -v n="$done_q" -v b="$busy" 'BEGIN { if (b > 0) printf "%.0f", n / (b / 100) }')
    read -r b0 t0 < <(cpu0_busy)
    in_ns taskset -c 1 dnsperf -s "$SERVER_IP" "${QUERIES[@]}" -T 1 -c 1 -q 100 -t 2 -l "$DURATION" -Q "$LAT_QPS" -v 2>/dev/null |
        awk '$1 == ">" && $NF ~ /^[0-9.]+$/ { print $NF * 1e6 }' | sort -n >"$dir/lat.txt" || true
    read -r b1 t1 < <(cpu0_busy)
    answered=$(wc -l <"$dir/lat.txt")
    # CPU 0's busy time per answered query at LAT_QPS, in µs (ticks are 10 ms)
    cpq=$(awk -v n="$answered" -v b=$((b1 - b0)) 'BEGIN { if (n > 0) printf "%.2f", b * 10000 / n }')
    p50=$(awk -v n="$answered" 'NR == int(n * 0.50 + 0.5) { printf "%.0f", $1 }' "$dir/lat.txt")
    p99=$(awk -v n="$answered" 'NR == int(n * 0.99 + 0.5) { printf "%.0f", $1 }' "$dir/lat.txt")
    stop_server
    local qps
    qps=$(awk '/Queries per second:/ {printf "%.0f", $4}' "$dir/max.txt")
    echo "$server,$rep,$path,$qps,$pct,$cap,$p50,$p99,$cpq" >>"$OUT/raw.csv"
    log "$server rep$rep ($path): $qps q/s, CPU 0 busy ${pct}%, capacity $cap q/s per core | at $LAT_QPS/s: p50 $p50 us, p99 $p99 us, CPU 0 $cpq us/query"
}

for rep in $(seq 1 "$REPS"); do
    for s in $SERVERS; do measure "$s" "$rep"; done
done

# Medians per server.
{
    echo "| server | path | QPS | CPU 0 busy % | capacity per core | p50 / p99 µs at $LAT_QPS q/s | CPU 0 µs per query at $LAT_QPS q/s |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for s in $SERVERS; do
        awk -F, -v s="$s" 'NR > 1 && $1 == s && $6 != "" { print }' "$OUT/raw.csv" >"$WORK/rows"
        [ -s "$WORK/rows" ] || { echo "| $s | (did not run) | | | | | |"; continue; }
        med() { cut -d, -f"$1" "$WORK/rows" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
        path=$(cut -d, -f3 "$WORK/rows" | head -1)
        echo "| $s | $path | $(med 4) | $(med 5) | $(med 6) | $(med 7) / $(med 8) | $(med 9) |"
    done
} | tee "$OUT/table.md"
log "raw figures: $OUT/raw.csv"
