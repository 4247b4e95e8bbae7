#!/usr/bin/env bash
# The delegation lab: a parent authority, a validating recursive resolver, two gslbd name
# servers that form one cluster through etcd, and three web servers, all on loopback, so you
# can watch a delegated, DNSSEC-signed name resolve the way it will in production.
#
#   127.0.53.2:53    NSD, authoritative for example.test, signed with dnssec-signzone; delegates
#                    gslb.example.test (NS ns1 and ns2.gslb.example.test. + glue 127.0.53.1
#                    and .4, and the DS that `gslbd ds` prints) and has
#                    www.example.test CNAME www.gslb.example.test.
#   127.0.53.1:53    gslbd node ns1, authoritative for gslb.example.test (examples/lab/zones,
#                    signed with a key that `gslbd key generate` makes in $LAB_DIR/zones/keys)
#   127.0.53.4:53    gslbd node ns2, the same zone and key; both probe from their own address
#   127.0.53.5:2379  etcd, which the two nodes share overrides and observations through
#   127.0.53.3:53    unbound, recursive and validating (example.test's DS is its trust anchor),
#                    with a stub zone for example.test at NSD
#   127.0.53.11-13   three HTTP servers (python3 -m http.server) on port 8080, checked by gslbd
#
# Usage: examples/lab/lab.sh [demo|up|down]     (default: demo = up, show, down)
# Needs: nsd, unbound, python3, dig, delv, dnssec-signzone, etcd (Debian: apt-get install nsd
# unbound python3 bind9-dnsutils bind9-utils etcd-server)
# and root (or CAP_NET_BIND_SERVICE) for port 53: resolvers only speak to port 53.
# Everything it starts is recorded in $LAB_DIR/pids and stopped by PID on `down` (and when
# `demo` ends or fails). GSLBD=path/to/gslbd picks the binary (default: the release build,
# built by cargo, wherever CARGO_TARGET_DIR puts it; LAB_PROFILE=dev for a debug build). LAB_DIR
# defaults to target/lab.
# unbound runs its ECS cache (subnetcache) and sends EDNS Client Subnet to gslbd, so the lab
# also shows topology answers cached per client subnet (geo.gslb.example.test). With
# GEOIP_DB=path/to/GeoLite2-City.mmdb (GEOIP_DB=$(contrib/geoip-db.sh)) the nodes read it and
# near.gslb.example.test answers from the site nearest the client.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$PWD
LAB_DIR=${LAB_DIR:-$ROOT/target/lab}
GSLBD=${GSLBD:-}
GSLBD_IP=127.0.53.1 NSD_IP=127.0.53.2 RESOLVER_IP=127.0.53.3 GSLBD2_IP=127.0.53.4 ETCD_IP=127.0.53.5
NODES=("ns1 $GSLBD_IP" "ns2 $GSLBD2_IP")
BACKENDS=(127.0.53.11 127.0.53.12 127.0.53.13)

say() { printf '\033[1m%s\033[0m\n' "$*" >&2; }
die() { echo "lab: $*" >&2; exit 1; }

need() {
    for tool in nsd unbound python3 dig delv dnssec-keygen dnssec-signzone dnssec-dsfromkey etcd; do
        command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
            die "$tool is missing (Debian: apt-get install nsd unbound python3 bind9-dnsutils bind9-utils etcd-server)"
    done
    [ "$(id -u)" = 0 ] || die "port 53 needs root (resolvers only query port 53): run with sudo"
}

# Wait (at most ~10 s) until `dig @$1 $2 $3` gives status $4.
wait_dns() {
    for _ in $(seq 1 100); do
        if dig +time=1 +tries=1 +norec @"$1" "$2" "$3" 2>/dev/null | grep -q "status: $4"; then
            return 0
        fi
        sleep 0.1
    done
    die "no $4 answer from $1 for $2 $3 (logs in $LAB_DIR)"
}

# Wait (at most ~10 s) until $1:$2 accepts TCP connections.
wait_tcp() {
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    die "nothing listens on $1:$2 (logs in $LAB_DIR)"
}

# Wait (at most ~15 s) until gslbd at $2 answers www with exactly $1 members at the full TTL
# (10 s; it is halved while a member is down).
wait_pool() {
    for _ in $(seq 1 150); do
        n=$(dig +norec +noall +answer @"$2" www.gslb.example.test A 2>/dev/null | awk '$2 == 10' | wc -l)
        [ "$n" = "$1" ] && return 0
        sleep 0.1
    done
    die "gslbd at $2 never answered www with $1 healthy members (see $LAB_DIR/gslbd-*.log)"
}

# `GET $3` of $1:$2 answers 200 (at most ~10 s). The request runs in a subshell: an
# `exec 2>/dev/null` here would silence the script for good.
wait_http() {
    for _ in $(seq 1 100); do
        status=$( (exec 3<>"/dev/tcp/$1/$2" &&
            printf 'GET %s HTTP/1.0\r\nHost: lab\r\n\r\n' "$3" >&3 &&
            head -1 <&3) 2>/dev/null) || true
        case $status in *" 200"*) return 0 ;; esac
        sleep 0.1
    done
    die "$1:$2$3 never answered 200 (logs in $LAB_DIR)"
}

# Wait until gslbd at $1 says its first probe round is done (/readyz): before that, members
# not yet probed are answered (fail open), so an answer says nothing about health.
wait_ready() { wait_http "$1" 8053 /readyz; }

start() { # name, then the command; records the PID
    local name=$1; shift
    "$@" >"$LAB_DIR/$name.log" 2>&1 &
    echo "$! $name" >>"$LAB_DIR/pids"
}

# Build with cargo and print the binary's path. Under sudo, as the user who ran sudo: root
# often has no cargo, and a root-owned target/ would break that user's later builds.
build() {
    if [ "$(id -u)" = 0 ] && [ -n "${SUDO_USER:-}" ] && [ "$SUDO_USER" != root ]; then
        sudo -u "$SUDO_USER" -H bash -lc \
            '[ -z "$2" ] || export CARGO_TARGET_DIR="$2"; exec "$1/contrib/build-gslbd.sh" "$3"' \
            build "$ROOT" "${CARGO_TARGET_DIR:-}" "${LAB_PROFILE:-release}"
    else
        "$ROOT/contrib/build-gslbd.sh" "${LAB_PROFILE:-release}"
    fi
}

up() {
    need
    if [ -z "$GSLBD" ]; then
        say "building gslbd"
        GSLBD=$(build) || die "cannot build gslbd (or set GSLBD=path/to/gslbd)"
    fi
    [ -x "$GSLBD" ] || die "GSLBD=$GSLBD is not an executable"
    [ ! -s "$LAB_DIR/pids" ] || die "already up (examples/lab/lab.sh down first)"
    rm -rf "$LAB_DIR/zones" "$LAB_DIR/nsd"
    mkdir -p "$LAB_DIR/www" "$LAB_DIR/nsd" "$LAB_DIR/unbound" "$LAB_DIR/zones"
    : >"$LAB_DIR/pids"

    say "signing gslb.example.test: a key from gslbd key generate, its DS for the parent"
    cp "$ROOT/examples/lab/zones/gslb.example.test.yaml" "$LAB_DIR/zones/"
    printf '\ndnssec: { keys: keys }\n' >>"$LAB_DIR/zones/gslb.example.test.yaml"
    local geoip=""
    if [ -n "${GEOIP_DB:-}" ]; then
        # Closest by geography: near.gslb.example.test answers from the site nearest the
        # client (Germany: fra by country; the Americas: iad by continent; else by distance).
        [ -s "$GEOIP_DB" ] || die "GEOIP_DB=$GEOIP_DB is not a database (contrib/geoip-db.sh makes one)"
        say "GeoIP: $GEOIP_DB; near.gslb.example.test is a nearest pool"
        geoip="geoip: { database: $GEOIP_DB }"
        sed -i \
            -e '/^sites:/a\  fra: { countries: [DE], coordinates: [50.11, 8.68] }\n  iad: { continents: [NA, SA], coordinates: [38.95, -77.45] }\n  sin: { coordinates: [1.35, 103.82] }' \
            -e '/^pools:/a\  near:\n    policy: [nearest, round-robin]\n    ttl: 30\n    max_answers: 3\n    members:\n      - { address: 192.0.2.11, site: fra }\n      - { address: 192.0.2.12, site: iad }\n      - { address: 192.0.2.13, site: sin }' \
            -e '/^names:/a\  near: { pool: near }' \
            "$LAB_DIR/zones/gslb.example.test.yaml"
    fi
    "$GSLBD" key generate --zone gslb.example.test --keys "$LAB_DIR/zones/keys" >/dev/null
    local ds
    ds=$("$GSLBD" ds --zone gslb.example.test --keys "$LAB_DIR/zones/keys")

    say "web servers on ${BACKENDS[*]} port 8080"
    echo ok >"$LAB_DIR/www/health"
    for ip in "${BACKENDS[@]}"; do
        start "www-$ip" python3 -m http.server --bind "$ip" --directory "$LAB_DIR/www" 8080
    done
    for ip in "${BACKENDS[@]}"; do wait_tcp "$ip" 8080; done

    say "etcd on $ETCD_IP:2379 (the cluster's shared store)"
    start etcd etcd --name lab --data-dir "$LAB_DIR/etcd" \
        --listen-client-urls "http://$ETCD_IP:2379" --advertise-client-urls "http://$ETCD_IP:2379" \
        --listen-peer-urls "http://$ETCD_IP:2380" --initial-advertise-peer-urls "http://$ETCD_IP:2380" \
        --initial-cluster "lab=http://$ETCD_IP:2380" --log-level warn --logger zap
    wait_http "$ETCD_IP" 2379 /health

    for node in "${NODES[@]}"; do
        read -r name ip <<<"$node"
        say "gslbd $name on $ip:53 (gslb.example.test), probing from $ip"
        cat >"$LAB_DIR/gslbd-$name.yaml" <<YAML
listen: ["$ip:53"]
zones_dir: $LAB_DIR/zones
state_dir: $LAB_DIR/state-$name
api: { listen: "$ip:8053" }
cluster:
  node: $name
  etcd: ["http://$ETCD_IP:2379"]
  prefix: /lab/
  probe_source: $ip
  quorum: majority
$geoip
YAML
        start "gslbd-$name" "$GSLBD" serve --config "$LAB_DIR/gslbd-$name.yaml"
    done

    say "NSD on $NSD_IP:53 (example.test, delegating gslb.example.test)"
    cat >"$LAB_DIR/nsd/example.test.zone" <<ZONE
\$ORIGIN example.test.
\$TTL 3600
@       IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 300
@       IN NS  ns.example.test.
ns      IN A   $NSD_IP
; the delegation: NS and glue for the subzone the two gslbd nodes serve
gslb    IN NS  ns1.gslb.example.test.
gslb    IN NS  ns2.gslb.example.test.
ns1.gslb IN A  $GSLBD_IP
ns2.gslb IN A  $GSLBD2_IP
; the subzone is signed: its DS, as gslbd ds prints it
$ds
; the public name points into the subzone
www     IN CNAME www.gslb.example.test.
ZONE
    # The parent is signed too (one combined key, NSEC), and its DS is the resolver's anchor.
    local parent_key
    parent_key=$(dnssec-keygen -q -a ECDSAP256SHA256 -f KSK -K "$LAB_DIR/nsd" example.test)
    dnssec-signzone -q -z -S -K "$LAB_DIR/nsd" -d "$LAB_DIR/nsd" -o example.test \
        -f "$LAB_DIR/nsd/example.test.zone.signed" "$LAB_DIR/nsd/example.test.zone" >/dev/null
    local anchor
    anchor=$(dnssec-dsfromkey -2 "$LAB_DIR/nsd/$parent_key.key")
    # The same anchor for delv (BIND's validating lookup): `delv -a $LAB_DIR/anchor.conf`.
    read -r _ _ _ tag alg dtype digest <<<"$anchor"
    printf 'trust-anchors { example.test. static-ds %s %s %s "%s"; };\n' \
        "$tag" "$alg" "$dtype" "$digest" >"$LAB_DIR/anchor.conf"
    cat >"$LAB_DIR/nsd/nsd.conf" <<CONF
server:
    ip-address: $NSD_IP
    port: 53
    username: ""
    chroot: ""
    zonesdir: "$LAB_DIR/nsd"
    database: ""
    zonelistfile: "$LAB_DIR/nsd/zone.list"
    xfrdfile: "$LAB_DIR/nsd/xfrd.state"
    xfrdir: "$LAB_DIR/nsd"
    pidfile: "$LAB_DIR/nsd/nsd.pid"
    server-count: 1
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: example.test
    zonefile: example.test.zone.signed
CONF
    start nsd nsd -d -c "$LAB_DIR/nsd/nsd.conf"

    say "unbound on $RESOLVER_IP:53 (recursive and validating; example.test via NSD)"
    cat >"$LAB_DIR/unbound/unbound.conf" <<CONF
server:
    interface: $RESOLVER_IP
    port: 53
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    directory: "$LAB_DIR/unbound"
    pidfile: "$LAB_DIR/unbound/unbound.pid"
    use-syslog: no
    logfile: ""
    do-ip6: no
    do-not-query-localhost: no
    module-config: "subnetcache validator iterator"
    # Validation: example.test's DS is the one trust anchor (no root anchor in a lab).
    trust-anchor: "$anchor"
    val-log-level: 2
    # EDNS Client Subnet towards gslbd (RFC 7871), with answers cached per the scope it returns.
    send-client-subnet: $GSLBD_IP
    send-client-subnet: $GSLBD2_IP
    max-client-subnet-ipv4: 24
    local-zone: "test." nodefault
    verbosity: 1
stub-zone:
    name: "example.test"
    stub-addr: $NSD_IP
remote-control:
    control-enable: no
CONF
    start unbound unbound -d -c "$LAB_DIR/unbound/unbound.conf"

    for ip in "$GSLBD_IP" "$GSLBD2_IP"; do
        wait_dns "$ip" www.gslb.example.test A NOERROR
        wait_ready "$ip"
        wait_pool 3 "$ip"
    done
    wait_dns "$NSD_IP" example.test SOA NOERROR
    wait_dns "$RESOLVER_IP" . NS 'NOERROR\|SERVFAIL\|REFUSED'
    say "up; stop with: examples/lab/lab.sh down"
}

down() {
    [ -f "$LAB_DIR/pids" ] || return 0
    while read -r pid name; do
        kill "$pid" 2>/dev/null && echo "stopped $name ($pid)" >&2 || true
    done <"$LAB_DIR/pids"
    # Bounded wait for them to exit, then the hard way.
    for _ in $(seq 1 50); do
        alive=0
        while read -r pid _; do kill -0 "$pid" 2>/dev/null && alive=1; done <"$LAB_DIR/pids"
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    while read -r pid _; do kill -9 "$pid" 2>/dev/null || true; done <"$LAB_DIR/pids"
    rm -f "$LAB_DIR/pids"
    # The keys and signed zones are made anew by the next `up`.
    rm -rf "$LAB_DIR/zones" "$LAB_DIR/nsd"
}

show() {
    say "\$ dig @$RESOLVER_IP www.example.test A        # through the resolver and the delegation"
    dig @"$RESOLVER_IP" www.example.test A | sed -n '/HEADER/,/^;; Query time/p'
    say "\$ dig +dnssec @$RESOLVER_IP www.example.test A   # validated: the ad flag, and the RRSIGs"
    dig +dnssec @"$RESOLVER_IP" www.example.test A | grep -E 'flags:|^www' || true
    say "\$ dig +dnssec @$RESOLVER_IP nope.gslb.example.test A   # a missing name, validated (compact denial: NOERROR, no answer)"
    dig +dnssec @"$RESOLVER_IP" nope.gslb.example.test A | grep -E 'status|flags:|NSEC' || true
    say "\$ delv @$RESOLVER_IP -a $LAB_DIR/anchor.conf +root=example.test www.gslb.example.test A"
    delv @"$RESOLVER_IP" -a "$LAB_DIR/anchor.conf" +root=example.test www.gslb.example.test A 2>&1 | grep -Ev '^;; (resolution|validating)' | head -8 || true
    say "\$ dig +norec @$NSD_IP www.gslb.example.test A  # the parent refers to gslbd"
    dig +norec @"$NSD_IP" www.gslb.example.test A | sed -n '/HEADER/,/^;; Query time/p'
    say "\$ dig +norec @$GSLBD_IP www.gslb.example.test A # gslbd answers with authority (aa)"
    dig +norec @"$GSLBD_IP" www.gslb.example.test A | sed -n '/HEADER/,/^;; Query time/p'
    say "\$ dig +norec +nsid @$GSLBD2_IP www.gslb.example.test A  # the second node; NSID says which"
    dig +norec +nsid @"$GSLBD2_IP" www.gslb.example.test A | grep -E 'NSID|^www' || true
    say "\$ gslbd ctl --api $GSLBD2_IP:8053 status    # one cluster: both nodes' votes"
    "$GSLBD" ctl --api "$GSLBD2_IP:8053" status || true
    say "\$ dig +norec @$GSLBD_IP +subnet=10.2.7.0/24 geo.gslb.example.test A  # the outer site, valid for 10.2.0.0/15"
    dig +norec @"$GSLBD_IP" +subnet=10.2.7.0/24 geo.gslb.example.test A | grep -E 'CLIENT-SUBNET|^geo' || true
    say "\$ dig @$RESOLVER_IP +subnet=10.2.7.0/24 geo.gslb.example.test A   # through unbound's ECS cache"
    dig @"$RESOLVER_IP" +subnet=10.2.7.0/24 geo.gslb.example.test A | grep '^geo' || true
    say "\$ dig @$RESOLVER_IP +subnet=10.1.7.0/24 geo.gslb.example.test A   # the inner site, not the cached answer"
    dig @"$RESOLVER_IP" +subnet=10.1.7.0/24 geo.gslb.example.test A | grep '^geo' || true
    local pid
    pid=$(awk '$2 == "www-127.0.53.12" { print $1 }' "$LAB_DIR/pids")
    say "stopping the web server on 127.0.53.12 (PID $pid); both nodes see it within interval × fall"
    kill "$pid"
    for ip in "$GSLBD_IP" "$GSLBD2_IP"; do
        for _ in $(seq 1 100); do
            dig +short +norec @"$ip" www.gslb.example.test A | grep -q 127.0.53.12 || break
            sleep 0.1
        done
    done
    grep 'health: 127.0.53.12' "$LAB_DIR/gslbd-ns1.log" | tail -1 | sed 's/^[^ ]* *INFO //; s/ member=.*//' >&2 || true
    for ip in "$GSLBD_IP" "$GSLBD2_IP"; do
        say "\$ dig +norec @$ip www.gslb.example.test A"
        dig +norec @"$ip" www.gslb.example.test A | sed -n '/ANSWER SECTION/,/^$/p'
    done
}

case "${1:-demo}" in
    up) up ;;
    down) down ;;
    demo)
        trap down EXIT
        up
        show
        ;;
    *) die "usage: $0 [demo|up|down]" ;;
esac
