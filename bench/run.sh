#!/usr/bin/env bash
# gslbd beside its peers, on loopback only: each server pinned to CPU 0, dnsperf on CPU 1.
#
#   bench/run.sh                          W1 and W2, 3 rounds
#   WORKLOADS=w2 W2_SERVERS="gslbd gdnsd" REPS=5 bench/run.sh
#   QUICK=1 bench/run.sh                  1 round of 3 s (smoke test)
#   WORKLOADS=w2 W2_SERVERS="gslbd gslbd_cluster" bench/run.sh   standalone vs. cluster: on
#   WORKLOADS="w2 w4" W2_SERVERS=gslbd bench/run.sh       DNSSEC: signed pool vs. unsigned W2
#
# W1: a static A record (gslbd gdnsd knot nsd). W2: a name on a health-checked 3-member pool
# (gslbd round-robin with a tcp check; gdnsd multifo with tcp_connect), members are real
# listeners on 127.0.1.1-3:8080, all up; every answer carries the 3 addresses. W3: a topology
# pool queried with EDNS Client Subnet from two subnets by two dnsperf processes (gslbd
# topology over a site map; gdnsd geoip with a `nets` map); 10.1/16 -> 127.0.2.1,
# 10.2/16 -> 127.0.2.2. W4: DNSSEC, queries with DO=1: gslbd_signed answers the W2 pool name
# from a signed zone (3 addresses and the RRSIG of the set, signed when published); knot_signed
# answers W1's static name from the same static zone signed by Knot itself (a combined
# ECDSA P-256 key, as gslbd's), so the pre-signed static answer is the bar to beat. W5:
# closest by geography on the full GeoLite2-City database (contrib/geoip-db.sh): gslbd's
# `nearest` pool beside gdnsd's geoip plugin with auto_dc_coords, each query with EDNS Client
# Subnet from another of W5_CLIENTS /24s (4,096), so the database lookups are not all cached.
# W5 through gslbd's AF_XDP path (as root, on a veth pair): WORKLOAD=w5 bench/xdp.sh.
#
# Reports, per server: QPS (dnsperf saturating), the server's CPU share, capacity per server core
# (QPS ÷ CPU share: dnsperf saturates before a fast server does), at a fixed offered rate
# (CPU_QPS, 80k) the server's CPU time per answered query (user + kernel), the latency p50/p99
# at a fixed LAT_QPS (20k, from dnsperf -v per-query times) and the server's peak RSS (VmHWM
# summed over its processes), with gslbd ÷ peer ratios. Servers are interleaved
# (A B C A B C ...). Peers are launched by ../shared/bench/lib (configs generated in a temp dir);
# needs the Debian packages dnsperf gdnsd knot nsd bind9-dnsutils util-linux iproute2.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
ANCHORS_DIR=${SHARED_BENCH:-$(cd "$REPO/../shared/bench" && pwd)}
export ANCHORS_DIR
source "$ANCHORS_DIR/lib/common.sh"
source "$ANCHORS_DIR/lib/servers.sh"

if [ "${QUICK:-0}" = 1 ]; then REPS=${REPS:-1}; DURATION=${DURATION:-3}; WARMUP=${WARMUP:-1}; fi
REPS=${REPS:-3}
DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
CPU_QPS=${CPU_QPS:-80000}
LAT_QPS=${LAT_QPS:-20000}
WORKLOADS=${WORKLOADS:-w1 w2 w3 w4 w5}
W1_SERVERS=${W1_SERVERS:-gslbd gdnsd knot nsd}
W2_SERVERS=${W2_SERVERS:-gslbd gdnsd}
W3_SERVERS=${W3_SERVERS:-gslbd gdnsd}
W4_SERVERS=${W4_SERVERS:-gslbd_signed knot_signed}
W5_SERVERS=${W5_SERVERS:-gslbd_geo gdnsd_geo}
# W5's clients: W5_CLIENTS distinct ECS /24s spread over the public IPv4 space, one per query
# in turn (bench/ecs-queries.py, dnsperf -B); W5_SUBNETS checked before each round (bench/w5.sh).
W5_CLIENTS=${W5_CLIENTS:-4096}
DNSPERF_HALF_ARGS=(-T 1 -c 2 -q 100 -t 2)
ECS_A=8:000118000a0102   # EDNS Client Subnet 10.1.2.0/24 -> expect 127.0.2.1
ECS_B=8:000118000a0202   # EDNS Client Subnet 10.2.2.0/24 -> expect 127.0.2.2
DNSPERF_ARGS=(-T 2 -c 4 -q 200 -t 2)

# One command on a fresh machine: install what is missing (Debian), and keep the packages' own
# services from holding ports.
PACKAGES=(dnsperf gdnsd knot nsd bind9-dnsutils util-linux iproute2)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
    [ "$(id -u)" = 0 ] || die "missing ${missing[*]}: run as root to install them, or apt-get install them"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    for svc in gdnsd knot nsd; do
        systemctl stop "$svc" >/dev/null 2>&1 || service "$svc" stop >/dev/null 2>&1 || true
    done
fi
for tool in dnsperf taskset dig cargo; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install dnsperf bind9-dnsutils util-linux)"
done
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, load on CPU 1)"
exec 9>/tmp/gslb-anchors-bench.lock
flock -w 1800 9 || die "another benchmark holds /tmp/gslb-anchors-bench.lock"

# GSLBD=path/to/gslbd measures that binary (e.g. an older build, to compare); default: build.
if [ -z "${GSLBD:-}" ]; then
    log "building gslbd (release)"
    GSLBD=$("$REPO/contrib/build-gslbd.sh")
fi

# The W1 zone of the shared launchers (www 30 A 127.0.1.1, 127.0.1.2), as a gslbd YAML zone.
start_gslbd() { # MODE KIND HC DIR PORT
    local mode=$1 kind=$2 dir=$4 port=$5 every=10s
    # Probe as often as gdnsd does with the same HC setting (its default interval is 10 s).
    [ "$3" = fast ] && every=2s
    mkdir -p "$dir/zones"
    cat >"$dir/zones/$ZONE.yaml" <<YAML
zone: $ZONE.
soa: { mname: ns1.$ZONE., rname: hostmaster.$ZONE., serial: 1, minimum: 30 }
ns: [ns1.$ZONE.]
ttl: 300
records:
  ns1: { A: [127.0.0.1] }
  www: { A: [127.0.1.1, 127.0.1.2], ttl: 30 }
YAML
    if [ -n "${SIGNED:-}" ]; then
        echo "dnssec: { keys: keys }" >>"$dir/zones/$ZONE.yaml"
        "$GSLBD" key generate --zone "$ZONE" --keys "$dir/zones/keys" >"$dir/keygen.log" 2>&1 ||
            die "gslbd key generate failed: $(cat "$dir/keygen.log")"
    fi
    if [ "$kind" = dyn ]; then
        cat >>"$dir/zones/$ZONE.yaml" <<YAML
checks:
  tcp8080: { tcp: { port: $BACKEND_PORT }, interval: $every, timeout: 1s }
pools:
  pool:
    checks: [tcp8080]
    ttl: 30
    max_answers: 3
    members: [{ address: ${BACKENDS[0]} }, { address: ${BACKENDS[1]} }, { address: ${BACKENDS[2]} }]
  geo:
    policy: topology
    ttl: 30
    members: [{ address: 127.0.2.1, site: dc1 }, { address: 127.0.2.2, site: dc2 }, { address: 127.0.2.3, site: dc3 }]
sites:
  dc1: { nets: [10.1.0.0/16], fallback: [dc3] }
  dc2: { nets: [10.2.0.0/16], fallback: [dc3] }
  dc3: []
names:
  pool: { pool: pool }
  geo: { pool: geo }
YAML
    fi
    local config=()
    if [ -n "${CLUSTER:-}" ]; then
        # One node of a cluster: its etcd task and the writer's cluster work run beside the
        # query path, pinned with it.
        cat >"$dir/gslbd.yaml" <<YAML
state_dir: $dir/state
cluster: { node: bench, etcd: ["http://$ETCD_ADDR"], prefix: /bench/, quorum: majority }
YAML
        config=(--config "$dir/gslbd.yaml")
    fi
    GSLBD_LOG=warn $(pin_prefix "$mode") "$GSLBD" serve "${config[@]}" --zones "$dir/zones" --listen "$ADDR:$port" \
        --udp-threads "$(workers "$mode")" >"$dir/server.log" 2>&1 &
    SPID=$!
}

# gslbd with `cluster:` on, against an etcd on 127.0.0.1:23790 (started once, on CPU 1 with
# the load, stopped on exit).
ETCD_ADDR=127.0.0.1:23790
ETCD_PID=""
start_gslbd_cluster() {
    if [ -z "$ETCD_PID" ]; then
        command -v etcd >/dev/null || die "gslbd_cluster needs etcd (apt-get install etcd-server)"
        taskset -c 1 etcd --name bench --data-dir "$WORK/etcd" \
            --listen-client-urls "http://$ETCD_ADDR" --advertise-client-urls "http://$ETCD_ADDR" \
            --listen-peer-urls http://127.0.0.1:23800 --initial-advertise-peer-urls http://127.0.0.1:23800 \
            --initial-cluster bench=http://127.0.0.1:23800 --log-level warn --logger zap >"$WORK/etcd.log" 2>&1 &
        ETCD_PID=$!
        sleep 2
    fi
    CLUSTER=1 start_gslbd "$@"
}
# W5: bench/w5.sh (sites, pool, gdnsd's plugin, the subnets checked before each round).
# shellcheck source=bench/w5.sh
. "$HERE/w5.sh"
start_gslbd_geo() { # MODE KIND HC DIR PORT
    local mode=$1 dir=$4 port=$5
    mkdir -p "$dir/zones"
    cat >"$dir/zones/$ZONE.yaml" <<YAML
zone: $ZONE.
soa: { mname: ns1.$ZONE., rname: hostmaster.$ZONE., serial: 1, minimum: 30 }
ns: [ns1.$ZONE.]
records:
  ns1: { A: [127.0.0.1] }
  www: { A: [127.0.1.1, 127.0.1.2], ttl: 30 }
YAML
    w5_gslbd_zone >>"$dir/zones/$ZONE.yaml"
    echo "geoip: { database: $(w5_db) }" >"$dir/gslbd.yaml"
    GSLBD_LOG=warn $(pin_prefix "$mode") "$GSLBD" serve --config "$dir/gslbd.yaml" --zones "$dir/zones" \
        --listen "$ADDR:$port" --udp-threads "$(workers "$mode")" >"$dir/server.log" 2>&1 &
    SPID=$!
}
start_gdnsd_geo() { # MODE KIND HC DIR PORT
    local mode=$1 dir=$4 port=$5
    mkdir -p "$dir/etc/zones" "$dir/etc/geoip" "$dir/run" "$dir/state"
    write_static_zone "$dir/etc/zones/$ZONE"
    echo "near 30 DYNA geoip!near" >>"$dir/etc/zones/$ZONE"
    ln -sf "$(w5_db)" "$dir/etc/geoip/GeoLite2-City.mmdb"
    cat >"$dir/etc/config" <<EOF
options => {
    listen => { $ADDR:$port => { udp_threads => $(workers "$mode"), tcp_threads => 1 } }
    run_dir => $dir/run
    state_dir => $dir/state
}
EOF
    w5_gdnsd_plugin >>"$dir/etc/config"
    $(pin_prefix "$mode") gdnsd -c "$dir/etc" start >"$dir/server.log" 2>&1 &
    SPID=$!
}

# W4: gslbd with the zone signed (a key made by `gslbd key generate`).
start_gslbd_signed() { SIGNED=1 start_gslbd "$@"; }

# W4's peer: Knot with the W1 zone, signed by Knot when it loads it (a combined ECDSA P-256
# key, NSEC), one UDP worker as the shared launcher's Knot.
start_knot_signed() { # MODE KIND HC DIR PORT
    local mode=$1 dir=$4 port=$5
    mkdir -p "$dir/db"
    write_static_zone "$dir/$ZONE.zone"
    cat >"$dir/knot.conf" <<CONF
server:
    rundir: "$dir"
    listen: $ADDR@$port
    udp-workers: $(workers "$mode")
    tcp-workers: 1
    background-workers: 1
control:
    listen: "$dir/knot.sock"
database:
    storage: "$dir/db"
log:
  - target: stderr
    any: notice
policy:
  - id: csk
    algorithm: ecdsap256sha256
    single-type-signing: on
zone:
  - domain: $ZONE
    file: "$dir/$ZONE.zone"
    journal-content: none
    zonefile-sync: -1
    dnssec-signing: on
    dnssec-policy: csk
CONF
    $(pin_prefix "$mode") knotd -c "$dir/knot.conf" >"$dir/server.log" 2>&1 &
    SPID=$!
}

eval "$(declare -f server_port | sed '1s/server_port/shared_server_port/')"
server_port() {
    case $1 in
        gslbd) echo 25310 ;;
        gslbd_cluster) echo 25311 ;;
        gslbd_signed) echo 25312 ;;
        knot_signed) echo 25313 ;;
        gslbd_geo) echo 25314 ;;
        gdnsd_geo) echo 25315 ;;
        *) shared_server_port "$1" ;;
    esac
}

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/$STAMP
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gslbd-bench.XXXXXX)
SPID=""
cleanup() {
    [ -n "${SPID:-}" ] && stop_pid "$SPID"
    [ -n "${ETCD_PID:-}" ] && stop_pid "$ETCD_PID"
    stop_backends
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cpu_split() { # PID -> "user_ticks sys_ticks" over the process tree
    local u=0 s=0 p a
    for p in $(tree_pids "$1"); do
        read -r -a a < <(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        u=$((u + ${a[11]:-0})); s=$((s + ${a[12]:-0}))
    done
    echo "$u $s"
}
dnsperf_field() { awk -v k="$1" '$0 ~ k { for (i = 1; i <= NF; i++) if ($i ~ /^[0-9.]+$/) { print $i; exit } }' "$2"; }

echo "workload,server,rep,qps,cpu_pct,qps_per_core,lost,fixed_qps,us_per_query,us_user,us_sys,check,lat_qps,p50_us,p99_us,lat_answered,peak_rss_kib" >"$OUT/raw.csv"
echo "www.$ZONE A" >"$WORK/q-w1.txt"
echo "pool.$ZONE A" >"$WORK/q-w2.txt"
echo "geo.$ZONE A" >"$WORK/q-w3.txt"
"$HERE/ecs-queries.py" "near.$ZONE" "$W5_CLIENTS" "$WORK/q-w5.bin"
echo "pool.$ZONE A" >"$WORK/q-w4-gslbd_signed.txt"
echo "www.$ZONE A" >"$WORK/q-w4-knot_signed.txt"
measure() { # WORKLOAD SERVER REP
    local wl=$1 server=$2 rep=$3 dir=$WORK/$1-$2-$3 s0 s1 t0 t1 qps lost cpu per_core us uu usys done_q kind=static check=ok
    [ "$wl" != w1 ] && kind=dyn
    start_server "$server" pinned "$kind" default "$dir" || { echo "$wl,$server,$rep,,,,,,,,,start-failed" >>"$OUT/raw.csv"; SPID=""; return 0; }
    if [ "$wl" = w2 ] || [ "$server" = gslbd_signed ]; then
        # every answer must carry the three healthy members before we measure
        wait_answer "$SPORT" "pool.$ZONE" A '127\.0\.1\.3' 10 || true
        [ "$(answer_addrs "$SPORT" "pool.$ZONE")" = "127.0.1.1 127.0.1.2 127.0.1.3" ] || check="pool=$(answer_addrs "$SPORT" "pool.$ZONE")"
    fi
    if [ "$wl" = w3 ]; then
        local a b
        a=$(answer_addrs "$SPORT" "geo.$ZONE" +subnet=10.1.2.0/24)
        b=$(answer_addrs "$SPORT" "geo.$ZONE" +subnet=10.2.2.0/24)
        [ "$a" = 127.0.2.1 ] && [ "$b" = 127.0.2.2 ] || check="geo10.1=$a;geo10.2=$b"
    fi
    local lo=(-s "$ADDR" -p "$SPORT" -d "$WORK/q-$wl.txt")
    [ "$wl" = w5 ] && lo=(-s "$ADDR" -p "$SPORT" -B -d "$WORK/q-w5.bin")
    if [ "$wl" = w4 ]; then
        # DO=1, and the answer must carry an RRSIG (Knot signs in the background after loading)
        lo=(-s "$ADDR" -p "$SPORT" -d "$WORK/q-w4-$server.txt" -D)
        local qname
        qname=$(cut -d' ' -f1 "$WORK/q-w4-$server.txt")
        for _ in $(seq 1 50); do
            dig +dnssec +norec -p "$SPORT" @"$ADDR" "$qname" A | grep -q RRSIG && break
            sleep 0.2
        done
        dig +dnssec +norec -p "$SPORT" @"$ADDR" "$qname" A | grep -q RRSIG || check=unsigned
    fi
    if [ "$wl" = w5 ]; then
        # each subnet answered from its nearest site; gslbd and gdnsd must agree (W5_EXPECT)
        local i got
        for i in "${!W5_SUBNETS[@]}"; do
            got=$(answer_addrs "$SPORT" "near.$ZONE" "+subnet=${W5_SUBNETS[$i]}")
            [ "$got" = "${W5_EXPECT[$i]}" ] || check="near ${W5_SUBNETS[$i]}=$got"
        done
    fi
    if [ "$wl" = w3 ]; then
        # one client per subnet, sharing the load
        local ecs_list=("$ECS_A" "$ECS_B") pids=() e i files=()
        for e in "${ecs_list[@]}"; do
            taskset -c 1 dnsperf "${DNSPERF_HALF_ARGS[@]}" "${lo[@]}" -l "$WARMUP" -E "$e" >/dev/null 2>&1 &
            pids+=($!)
        done
        wait "${pids[@]}" || true  # only the dnsperf jobs: a bare wait would wait for the server too
        read -r -a s0 < <(cpu_split "$SPID"); t0=$(date +%s.%N)
        pids=(); i=0
        for e in "${ecs_list[@]}"; do
            taskset -c 1 dnsperf "${DNSPERF_HALF_ARGS[@]}" "${lo[@]}" -l "$DURATION" -E "$e" >"$dir/perf-$i.txt" 2>&1 &
            pids+=($!); files+=("$dir/perf-$i.txt"); i=$((i + 1))
        done
        wait "${pids[@]}" || true
        read -r -a s1 < <(cpu_split "$SPID"); t1=$(date +%s.%N)
        qps=$(awk '/Queries per second/ { s += $4 } END { printf "%.0f", s }' "${files[@]}")
        lost=$(awk '/Queries lost:/ { s += $3 } END { print s }' "${files[@]}")
    else
        taskset -c 1 dnsperf "${DNSPERF_ARGS[@]}" "${lo[@]}" -l "$WARMUP" >/dev/null 2>&1 || true
        read -r -a s0 < <(cpu_split "$SPID"); t0=$(date +%s.%N)
        taskset -c 1 dnsperf "${DNSPERF_ARGS[@]}" "${lo[@]}" -l "$DURATION" >"$dir/perf.txt" 2>&1 || true
        read -r -a s1 < <(cpu_split "$SPID"); t1=$(date +%s.%N)
        qps=$(dnsperf_field "Queries per second" "$dir/perf.txt")
        lost=$(awk '/Queries lost:/ {print $3}' "$dir/perf.txt")
    fi
    cpu=$(awk -v c=$(( s1[0] + s1[1] - s0[0] - s0[1] )) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", c / (b - a) }')
    per_core=$(awk -v q="$qps" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", q * 100 / c }')
    # fixed offered rate: CPU time per answered query (one tick = 10 ms)
    local ecs=()
    [ "$wl" = w3 ] && ecs=(-E "$ECS_A")
    read -r -a s0 < <(cpu_split "$SPID")
    taskset -c 1 dnsperf "${DNSPERF_ARGS[@]}" "${lo[@]}" "${ecs[@]}" -l "$DURATION" -Q "$CPU_QPS" >"$dir/fixed.txt" 2>&1 || true
    read -r -a s1 < <(cpu_split "$SPID")
    done_q=$(awk '/Queries completed:/ {print $3}' "$dir/fixed.txt")
    # latency at a fixed LAT_QPS: every answered query's time, from dnsperf -v (seconds)
    local p50 p99 answered rss
    taskset -c 1 dnsperf -T 1 -c 1 -q 100 -t 2 "${lo[@]}" "${ecs[@]}" -l "$DURATION" -Q "$LAT_QPS" -v 2>/dev/null |
        awk '$1 == ">" && $NF ~ /^[0-9.]+$/ { print $NF * 1e6 }' | sort -n >"$dir/lat.txt" || true
    answered=$(wc -l <"$dir/lat.txt")
    p50=$(awk -v n="$answered" 'NR == int(n * 0.50 + 0.5) { printf "%.0f", $1 }' "$dir/lat.txt")
    p99=$(awk -v n="$answered" 'NR == int(n * 0.99 + 0.5) { printf "%.0f", $1 }' "$dir/lat.txt")
    rm -f "$dir/lat.txt"
    read -r rss _ < <(mem_of "$SPID")
    us=$(awk -v c=$(( s1[0] + s1[1] - s0[0] - s0[1] )) -v n="$done_q" 'BEGIN { if (n > 0) printf "%.2f", c * 10000 / n }')
    uu=$(awk -v c=$(( s1[0] - s0[0] )) -v n="$done_q" 'BEGIN { if (n > 0) printf "%.2f", c * 10000 / n }')
    usys=$(awk -v c=$(( s1[1] - s0[1] )) -v n="$done_q" 'BEGIN { if (n > 0) printf "%.2f", c * 10000 / n }')
    stop_pid "$SPID"; SPID=""
    echo "$wl,$server,$rep,$qps,$cpu,$per_core,$lost,$CPU_QPS,$us,$uu,$usys,$check,$LAT_QPS,$p50,$p99,$answered,$rss" >>"$OUT/raw.csv"
    log "$wl $server rep$rep: qps=$qps cpu=${cpu}% per-core=$per_core lost=$lost check=$check | at ${CPU_QPS}/s: ${us} us/query (user $uu, sys $usys) | at ${LAT_QPS}/s: p50 ${p50} us p99 ${p99} us ($answered answered) | peak RSS ${rss} KiB"
}

case " $WORKLOADS " in *" w2 "* | *" w4 "*) log "starting W2 backends ${BACKENDS[*]}:$BACKEND_PORT"; start_backends ;; esac
for rep in $(seq 1 "$REPS"); do
    for wl in $WORKLOADS; do
        case $wl in
            w1) servers=$W1_SERVERS ;; w2) servers=$W2_SERVERS ;; w3) servers=$W3_SERVERS ;;
            w4) servers=$W4_SERVERS ;; *) servers=$W5_SERVERS ;;
        esac
        for server in $servers; do measure "$wl" "$server" "$rep"; done
    done
done

# Mean per workload and server, and gslbd's ratios to each peer: capacity per core (higher is
# better for gslbd when > 1), p99 and peak RSS (gslbd's over the peer's: lower is better, < 1).
awk -F, 'NR > 1 && $4 != "" { k = $1 " " $2; if (!(k in n)) keys[++nk] = k; n[k]++; q[k] += $4; c[k] += $5; p[k] += $6; u[k] += $9; uu[k] += $10; us[k] += $11; if ($12 != "ok") bad[k] = $12
        if ($15 != "") { nl[k]++; p50[k] += $14; p99[k] += $15 }; if ($17 != "") { nr[k]++; rss[k] += $17 } }
    function mean(sum, cnt, k) { return (k in cnt) ? sum[k] / cnt[k] : 0 }
    function ratio(num, den) { return (den > 0 && num > 0) ? sprintf("%.2f×", num / den) : "—" }
    END {
        printf "| workload | server | QPS | server CPU %% | QPS per server core | µs CPU/query at %s qps (user + sys) | p50 / p99 µs at %s qps | peak RSS MiB | gslbd per-core ÷ peer | gslbd p99 ÷ peer | gslbd RSS ÷ peer |\n", cq, lq
        printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
        for (i = 1; i <= nk; i++) {
            k = keys[i]; split(k, a, " "); g = a[1] " gslbd"; if (!(g in n)) g = a[1] " gslbd_signed"
            if (!(g in n)) g = a[1] " gslbd_geo"
            peer = (g in n && k != g)
            printf "| %s | %s%s | %.0f | %.0f | %.0f | %.2f (%.2f + %.2f) | %.0f / %.0f | %.1f | %s | %s | %s |\n", a[1], a[2], (k in bad) ? " (CHECK FAILED: " bad[k] ")" : "", q[k]/n[k], c[k]/n[k], p[k]/n[k], u[k]/n[k], uu[k]/n[k], us[k]/n[k], mean(p50, nl, k), mean(p99, nl, k), mean(rss, nr, k) / 1024,
                peer ? ratio(p[g]/n[g], p[k]/n[k]) : "—", peer ? ratio(mean(p99, nl, g), mean(p99, nl, k)) : "—", peer ? ratio(mean(rss, nr, g), mean(rss, nr, k)) : "—"
        }
        sk = "w4 gslbd_signed"; uk = "w2 gslbd"
        if ((sk in n) && (uk in n))
            printf "\ngslbd signed (W4, DO=1) ÷ unsigned (W2) capacity per server core: %s\n", ratio(p[sk]/n[sk], p[uk]/n[uk])
        gk = "w5 gslbd_geo"; tk = "w3 gslbd"
        if ((gk in n) && (tk in n))
            printf "\ngslbd nearest on GeoLite2-City (W5) ÷ CIDR topology (W3) capacity per server core: %s\n", ratio(p[gk]/n[gk], p[tk]/n[tk])
    }' cq="$CPU_QPS" lq="$LAT_QPS" "$OUT/raw.csv" | tee "$OUT/summary.md"
log "raw: $OUT/raw.csv; summary: $OUT/summary.md"
