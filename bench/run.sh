#!/usr/bin/env bash
# gslbd beside its peers, on loopback only: each server pinned to CPU 0, dnsperf on CPU 1.
#
#   bench/run.sh                          W1 (static A record): gslbd gdnsd knot nsd, 3 rounds
#   SERVERS="gslbd gdnsd" REPS=5 bench/run.sh
#   QUICK=1 bench/run.sh                  1 round of 3 s (smoke test)
#
# Reports, per server: QPS (dnsperf saturating), the server's CPU share, capacity per server core
# (QPS ÷ CPU share: dnsperf saturates before a fast server does) and, at a fixed offered rate,
# the server's CPU time per answered query (user + kernel). Servers are interleaved
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
SERVERS=${SERVERS:-gslbd gdnsd knot nsd}
DNSPERF_ARGS=(-T 2 -c 4 -q 200 -t 2)

for tool in dnsperf taskset dig cargo; do
    command -v "$tool" >/dev/null || die "missing $tool (apt-get install dnsperf bind9-dnsutils util-linux)"
done
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on CPU 0, load on CPU 1)"
exec 9>/tmp/gslb-anchors-bench.lock
flock -w 1800 9 || die "another benchmark holds /tmp/gslb-anchors-bench.lock"

log "building gslbd (release)"
(cd "$REPO" && cargo build --release --quiet)
GSLBD=$REPO/target/release/gslbd

# The W1 zone of the shared launchers (www 30 A 127.0.1.1, 127.0.1.2), as a gslbd YAML zone.
start_gslbd() { # MODE KIND HC DIR PORT
    local mode=$1 dir=$4 port=$5
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
    GSLBD_LOG=warn $(pin_prefix "$mode") "$GSLBD" serve --zones "$dir/zones" --listen "$ADDR:$port" \
        --udp-threads "$(workers "$mode")" >"$dir/server.log" 2>&1 &
    SPID=$!
}
eval "$(declare -f server_port | sed '1s/server_port/shared_server_port/')"
server_port() { if [ "$1" = gslbd ]; then echo 25310; else shared_server_port "$1"; fi; }

STAMP=$(date +%Y%m%d-%H%M%S)
OUT=$HERE/results/$STAMP
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/gslbd-bench.XXXXXX)
SPID=""
cleanup() { [ -n "${SPID:-}" ] && stop_pid "$SPID"; rm -rf "$WORK"; }
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

echo "server,rep,qps,cpu_pct,qps_per_core,lost,fixed_qps,us_per_query,us_user,us_sys" >"$OUT/raw.csv"
echo "www.$ZONE A" >"$WORK/q.txt"
measure() { # SERVER REP
    local server=$1 rep=$2 dir=$WORK/$1-$2 s0 s1 t0 t1 qps lost cpu per_core us uu usys done_q
    start_server "$server" pinned static default "$dir" || { echo "$server,$rep,,,,,,,," >>"$OUT/raw.csv"; SPID=""; return 0; }
    local lo=(-s "$ADDR" -p "$SPORT" -d "$WORK/q.txt")
    taskset -c 1 dnsperf "${DNSPERF_ARGS[@]}" "${lo[@]}" -l "$WARMUP" >/dev/null 2>&1 || true
    read -r -a s0 < <(cpu_split "$SPID"); t0=$(date +%s.%N)
    taskset -c 1 dnsperf "${DNSPERF_ARGS[@]}" "${lo[@]}" -l "$DURATION" >"$dir/perf.txt" 2>&1 || true
    read -r -a s1 < <(cpu_split "$SPID"); t1=$(date +%s.%N)
    qps=$(dnsperf_field "Queries per second" "$dir/perf.txt")
    lost=$(awk '/Queries lost:/ {print $3}' "$dir/perf.txt")
    cpu=$(awk -v c=$(( s1[0] + s1[1] - s0[0] - s0[1] )) -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", c / (b - a) }')
    per_core=$(awk -v q="$qps" -v c="$cpu" 'BEGIN { if (c > 0) printf "%.0f", q * 100 / c }')
    # fixed offered rate: CPU time per answered query (one tick = 10 ms)
    read -r -a s0 < <(cpu_split "$SPID")
    taskset -c 1 dnsperf "${DNSPERF_ARGS[@]}" "${lo[@]}" -l "$DURATION" -Q "$CPU_QPS" >"$dir/fixed.txt" 2>&1 || true
    read -r -a s1 < <(cpu_split "$SPID")
    done_q=$(awk '/Queries completed:/ {print $3}' "$dir/fixed.txt")
    us=$(awk -v c=$(( s1[0] + s1[1] - s0[0] - s0[1] )) -v n="$done_q" 'BEGIN { if (n > 0) printf "%.2f", c * 10000 / n }')
    uu=$(awk -v c=$(( s1[0] - s0[0] )) -v n="$done_q" 'BEGIN { if (n > 0) printf "%.2f", c * 10000 / n }')
    usys=$(awk -v c=$(( s1[1] - s0[1] )) -v n="$done_q" 'BEGIN { if (n > 0) printf "%.2f", c * 10000 / n }')
    stop_pid "$SPID"; SPID=""
    echo "$server,$rep,$qps,$cpu,$per_core,$lost,$CPU_QPS,$us,$uu,$usys" >>"$OUT/raw.csv"
    log "$server rep$rep: qps=$qps cpu=${cpu}% per-core=$per_core lost=$lost | at ${CPU_QPS}/s: ${us} us/query (user $uu, sys $usys)"
}

for rep in $(seq 1 "$REPS"); do
    for server in $SERVERS; do measure "$server" "$rep"; done
done

# Mean per server, and gslbd's ratio to each peer.
awk -F, 'NR > 1 && $3 != "" { n[$1]++; q[$1] += $3; c[$1] += $4; p[$1] += $5; u[$1] += $8; uu[$1] += $9; us[$1] += $10; order[$1] = order[$1] ? order[$1] : NR }
    END {
        printf "| server | QPS | server CPU %% | QPS per server core | µs CPU/query at fixed rate (user + sys) | gslbd per-core ÷ server |\n"
        printf "|---|---:|---:|---:|---:|---:|\n"
        g = ("gslbd" in n) ? p["gslbd"] / n["gslbd"] : 0
        for (s in n) printf "| %s | %.0f | %.0f | %.0f | %.2f (%.2f + %.2f) | %s |\n", s, q[s]/n[s], c[s]/n[s], p[s]/n[s], u[s]/n[s], uu[s]/n[s], us[s]/n[s], (g && s != "gslbd") ? sprintf("%.2f×", g / (p[s]/n[s])) : "—"
    }' "$OUT/raw.csv" | tee "$OUT/summary.md"
log "raw: $OUT/raw.csv; summary: $OUT/summary.md"
