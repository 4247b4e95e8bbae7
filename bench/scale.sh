#!/usr/bin/env bash
# Scale figures for gslbd, on loopback only (issue 7):
#   1. memory: 10,000 pooled names on 10,000 members (no checks) — RSS after load
#   2. load and reload of 100,000 static names — `gslbd check` time, start-up time, and a reload
#      through the API while dnsperf queries: lost queries and SERVFAILs during it
#   3. probing 10,000 members every second (tcp checks, refused at once on 127.1.x.y) — the
#      server's CPU share and the query latency with and without it
#   4. DNSSEC: 1,000 pools of 4 members answering 2 (4 signed sets each), signed and unsigned —
#      start-up (load, sign, publish), a reload, one pool re-published after a drain, and the
#      memory per signed set
# Needs: dnsperf, curl (Debian: apt-get install dnsperf curl), python3. Results on stdout.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
WORK=$(mktemp -d)
# Servers are started inside $(...), so their PIDs go to a file, not a variable.
cleanup() {
    local p
    for p in $(cat "$WORK/pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
say() { printf '%s\n' "$*" >&2; }

# GSLBD=path/to/gslbd measures that binary (e.g. an older build, to compare); default: build.
GSLBD=${GSLBD:-$("$REPO/contrib/build-gslbd.sh")}

# zone DIR NAMES POOLED CHECKED [SIZE]: a zone with NAMES static names, or POOLED names on POOLED
# members 127.1.x.y, in pools of SIZE members (default 1: a pool per name; else names are spread
# over POOLED / SIZE pools), with a tcp check every second if CHECKED.
zone() {
    mkdir -p "$1/zones"
    python3 - "$1/zones/scale.yaml" "$2" "$3" "$4" "${5:-1}" <<'PY'
import sys
path, static, pooled, checked = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1"
size = int(sys.argv[5])
with open(path, "w") as f:
    f.write("zone: scale.test.\nsoa: { mname: ns1.scale.test., rname: hostmaster.scale.test. }\n")
    f.write("ns: [ns1.scale.test.]\nrecords:\n  ns1: { A: [127.0.0.1] }\n  www: { A: [127.0.0.1] }\n")
    for i in range(static):
        f.write(f"  s{i}: {{ A: [10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}] }}\n")
    if pooled:
        if checked:
            f.write("checks:\n  port: { tcp: { port: 9 }, interval: 1s, timeout: 500ms }\n")
        f.write("pools:\n")
        pools = pooled // size
        for p in range(pools):
            chk = "checks: [port], " if checked else ""
            members = ", ".join(
                f"{{ address: 127.1.{i // 250}.{i % 250 + 1} }}" for i in range(p * size, (p + 1) * size)
            )
            f.write(f"  p{p}: {{ {chk}members: [{members}] }}\n")
        f.write("names:\n")
        for i in range(pooled):
            f.write(f"  n{i}: {{ pool: p{i % pools} }}\n")
PY
}

# serve DIR PORT API [CPUS]: start gslbd in DIR on CPUS (default 0: the server's one core, dnsperf
# on the other), wait for its admin API; echo its PID.
serve() {
    (cd "$1" && exec taskset -c "${4:-0}" "$GSLBD" serve --listen "127.0.0.1:$2" --api "127.0.0.1:$3" >"$1/log" 2>&1) &
    local pid=$!
    echo "$pid" >>"$WORK/pids"
    for _ in $(seq 1 600); do
        grep -q "admin API on" "$1/log" 2>/dev/null && { echo "$pid"; return; }
        sleep 0.1
    done
    say "gslbd did not start: $(tail -5 "$1/log")"; exit 1
}

# latency PORT LABEL: 5 s at 20k qps of n1.scale.test; average, p50 and p99 of every answer.
latency() {
    taskset -c 1 dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/q" -l 5 -Q 20000 -v 2>/dev/null |
        awk '$1 == ">" && $NF ~ /^[0-9.]+$/ { print $NF * 1e6 }' | sort -n |
        awk -v label="$2" '{ v[NR] = $1; s += $1 } END { if (NR) printf "%s: %d answers, latency avg %.0f us, p50 %.0f us, p99 %.0f us\n", label, NR, s / NR, v[int(NR * 0.5 + 0.5)], v[int(NR * 0.99 + 0.5)] }'
}

rss_mib() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

PARTS=${PARTS:-1 2 3 4}
if [[ " $PARTS " == *" 1 "* ]]; then
say "1. memory with 10,000 pooled names on 10,000 members"
# memory DIR PORT API LABEL: RSS once serving (every name asked for 3 s at 20k qps, so the
# query path's buffers and code are in), and again after a reload through the API.
memory() {
    local pid
    pid=$(serve "$1" "$2" "$3")
    python3 -c 'import sys; [print(f"n{i}.scale.test A") for i in range(10000)]' >"$WORK/qm"
    taskset -c 1 dnsperf -s 127.0.0.1 -p "$2" -d "$WORK/qm" -l 3 -Q 20000 >"$WORK/dnsperf.m" 2>&1
    echo "memory: $4: RSS $(rss_mib "$pid") MiB serving ($(grep -E 'Queries completed' "$WORK/dnsperf.m" | tr -s ' ' | sed 's/^ //'))"
    curl -sf -X POST "http://127.0.0.1:$3/v1/reload" >/dev/null
    sleep 1
    echo "memory: $4: RSS $(rss_mib "$pid") MiB after a reload"
    kill "$pid"
}
zone "$WORK/m" 0 10000 0
memory "$WORK/m" 15301 18301 "10,000 pooled names on 10,000 one-member pools"
zone "$WORK/m100" 0 10000 0 100
memory "$WORK/m100" 15305 18305 "10,000 pooled names on 100 pools of 100 members (10,000 members)"
fi

if [[ " $PARTS " == *" 2 "* ]]; then
say "2. load and reload of 100,000 names"
zone "$WORK/l" 100000 0 0
t0=$(date +%s.%N); "$GSLBD" check --zones "$WORK/l/zones" >/dev/null; t1=$(date +%s.%N)
echo "load: gslbd check of 100,000 names: $(echo "$t1 - $t0" | bc) s"
t0=$(date +%s.%N); pid=$(serve "$WORK/l" 15302 18302); t1=$(date +%s.%N)
echo "start: serving 100,000 names after $(echo "$t1 - $t0" | bc) s, RSS $(rss_mib "$pid") MiB"
kill "$pid"
printf 'www.scale.test A\n' >"$WORK/q"
# Three reloads 3 s apart while dnsperf asks 20k qps: gslbd on its one core (the pinned setup of
# the other figures), then free to use both cores as a server would be.
for cpus in 0 0,1; do
    pid=$(serve "$WORK/l" 15302 18302 "$cpus")
    taskset -c 1 dnsperf -s 127.0.0.1 -p 15302 -d "$WORK/q" -l 12 -Q 20000 >"$WORK/dnsperf.reload" 2>&1 &
    dp=$!
    sleep 1
    times=()
    for _ in 1 2 3; do
        t0=$(date +%s.%N); curl -sf -X POST "http://127.0.0.1:18302/v1/reload" >/dev/null; t1=$(date +%s.%N)
        times+=("$(echo "$t1 - $t0" | bc)")
        sleep 2
    done
    wait "$dp"
    echo "reload (gslbd on CPU $cpus): 100,000 names live again after ${times[*]} s, queried at 20k qps meanwhile: $(grep -E 'Queries lost|Response codes' "$WORK/dnsperf.reload" | tr -s ' ' | paste -sd';')"
    kill "$pid"; sleep 1
done
fi

if [[ " $PARTS " == *" 3 "* ]]; then
say "3. probing 10,000 members every second"
zone "$WORK/p" 0 10000 1
pid=$(serve "$WORK/p" 15303 18303)
sleep 3
c0=$(cpu_ticks "$pid"); sleep 10; c1=$(cpu_ticks "$pid")
hz=$(getconf CLK_TCK)
echo "probing: 10,000 members every second: gslbd CPU $(echo "scale=1; ($c1 - $c0) * 100 / $hz / 10" | bc) % of one core (idle otherwise)"
printf 'n1.scale.test A\n' >"$WORK/q"
latency 15303 "with probing"
kill "$pid"
zone "$WORK/q2" 0 10000 0
pid=$(serve "$WORK/q2" 15304 18304)
sleep 1
latency 15304 "without probing"
fi

if [[ " $PARTS " == *" 4 "* ]]; then
say "4. DNSSEC: 1,000 signed pools"
# signed_zone DIR SIGNED: 1,000 pools of 4 members (127.1.x.y) answering 2, a name each; with
# SIGNED=1 the zone is signed (a new ECDSA P-256 key): each name has 4 answer sets (the
# rotations), so 4,000 pool sets are signed at every full publish.
signed_zone() {
    mkdir -p "$1/zones"
    python3 - "$1/zones/scale.yaml" <<'PY'
import sys
with open(sys.argv[1], "w") as f:
    f.write("zone: scale.test.\nsoa: { mname: ns1.scale.test., rname: hostmaster.scale.test. }\n")
    f.write("ns: [ns1.scale.test.]\nrecords:\n  ns1: { A: [127.0.0.1] }\n  www: { A: [127.0.0.1] }\npools:\n")
    for p in range(1000):
        members = ", ".join(f"{{ address: 127.1.{i // 250}.{i % 250 + 1} }}" for i in range(p * 4, p * 4 + 4))
        f.write(f"  p{p}: {{ max_answers: 2, members: [{members}] }}\n")
    f.write("names:\n")
    for p in range(1000):
        f.write(f"  n{p}: {{ pool: p{p} }}\n")
PY
    if [ "$2" = 1 ]; then
        echo "dnssec: { keys: keys }" >>"$1/zones/scale.yaml"
        "$GSLBD" key generate --zone scale.test --keys "$1/zones/keys" >/dev/null 2>&1
    fi
}
declare -A RSS_OF
for signed in 0 1; do
    label=unsigned; [ "$signed" = 1 ] && label=signed
    signed_zone "$WORK/d$signed" "$signed"
    t0=$(date +%s.%N); pid=$(serve "$WORK/d$signed" 1531$((6 + signed)) 1831$((6 + signed))); t1=$(date +%s.%N)
    api=127.0.0.1:1831$((6 + signed))
    python3 -c 'import sys; [print(f"n{i}.scale.test A") for i in range(1000)]' >"$WORK/qd"
    taskset -c 1 dnsperf -s 127.0.0.1 -p "1531$((6 + signed))" -d "$WORK/qd" -l 3 -Q 20000 -D >/dev/null 2>&1
    RSS_OF[$signed]=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
    echo "dnssec: 1,000 pools $label: serving after $(echo "$t1 - $t0" | bc) s, RSS $(rss_mib "$pid") MiB"
    t0=$(date +%s.%N); curl -sf -X POST "http://$api/v1/reload" >/dev/null; t1=$(date +%s.%N)
    echo "dnssec: 1,000 pools $label: a reload (everything built and published again) in $(echo "$t1 - $t0" | bc) s"
    # One pool re-published: drain a member and time the API's answer (it returns once the
    # change is published), five times.
    times=()
    for i in 1 2 3 4 5; do
        t0=$(date +%s.%N)
        curl -sf -X POST "http://$api/v1/members/127.1.0.$i/drain" >/dev/null
        t1=$(date +%s.%N)
        curl -sf -X POST "http://$api/v1/members/127.1.0.$i/undrain" >/dev/null
        times+=("$(echo "($t1 - $t0) * 1000" | bc | xargs printf '%.1f')")
    done
    echo "dnssec: 1,000 pools $label: a drain published in ${times[*]} ms (API round trip)"
    kill "$pid"; sleep 1
done
echo "dnssec: memory per signed set: $(( (RSS_OF[1] - RSS_OF[0]) * 1024 / 4000 )) bytes (RSS difference over 4,000 sets; an RRSIG is about 100 octets on the wire)"
fi
