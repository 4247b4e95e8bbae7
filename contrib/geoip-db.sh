#!/usr/bin/env bash
# A real, full-size GeoIP database for the tests, the lab and the benchmark: GeoLite2-City
# (MaxMind, CC BY-SA 4.0, the 2018-07-03 build in GeoIP2's layout) as the Python package
# maxminddb-geolite2 carries it on PyPI. Downloaded once from the package registry (never from
# elsewhere at run time) into a cache directory; prints the path of the .mmdb file.
#
#   contrib/geoip-db.sh            # -> target/geoip/GeoLite2-City.mmdb
#   GEOIP_CACHE=/some/dir contrib/geoip-db.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CACHE=${GEOIP_CACHE:-$PWD/target/geoip}
DB=$CACHE/GeoLite2-City.mmdb
if [ ! -s "$DB" ]; then
    mkdir -p "$CACHE/download"
    if command -v pip3 >/dev/null; then PIP=(pip3); else PIP=(python3 -m pip); fi
    "${PIP[@]}" download --quiet --no-deps --no-binary :all: --dest "$CACHE/download" \
        'maxminddb-geolite2==2018.703' >&2
    tar -xzf "$CACHE"/download/maxminddb-geolite2-2018.703.tar.gz -C "$CACHE/download" \
        --wildcards '*/GeoLite2-City.mmdb'
    mv "$CACHE"/download/maxminddb-geolite2-2018.703/_maxminddb_geolite2/GeoLite2-City.mmdb "$DB.tmp"
    mv "$DB.tmp" "$DB"
    rm -rf "$CACHE/download"
fi
echo "$DB"
