# W5, closest by geography, as bench/run.sh and bench/xdp.sh both run it (sourced by them):
# three sites with coordinates, fra, iad and sin, on the full GeoLite2-City database
# (contrib/geoip-db.sh): gslbd's `nearest` pool, and gdnsd's geoip plugin with auto_dc_coords
# (distance only, as gdnsd does it) on the same file.

# The database's path: GEOIP_DB, else contrib/geoip-db.sh's download (kept in target/geoip).
w5_db() {
    [ -n "${GEOIP_DB:-}" ] || GEOIP_DB=$("$REPO/contrib/geoip-db.sh")
    echo "$GEOIP_DB"
}

# Checked before each round: /24s in Germany, the US, Singapore and Brazil (by the 2018
# GeoLite2-City) answered from the nearest of fra, iad and sin by every server.
W5_SUBNETS=(80.128.0.0/24 8.8.8.0/24 202.56.128.0/24 177.0.0.0/24)
W5_EXPECT=(127.0.3.1 127.0.3.2 127.0.3.3 127.0.3.2)

# The sites, the pool and the name `near`, for the end of a gslbd zone file.
w5_gslbd_zone() {
    cat <<YAML
sites:
  fra: { coordinates: [50.11, 8.68] }
  iad: { coordinates: [38.95, -77.45] }
  sin: { coordinates: [1.35, 103.82] }
pools:
  near:
    policy: [nearest, round-robin]
    ttl: 30
    members: [{ address: 127.0.3.1, site: fra }, { address: 127.0.3.2, site: iad }, { address: 127.0.3.3, site: sin }]
names:
  near: { pool: near }
YAML
}

# gdnsd's `plugins` block for `near 30 DYNA geoip!near`, reading geoip/GeoLite2-City.mmdb.
w5_gdnsd_plugin() {
    cat <<EOF
plugins => {
    geoip => {
        maps => {
            world => {
                geoip2_db => GeoLite2-City.mmdb
                datacenters => [ fra, iad, sin ]
                auto_dc_coords => { fra => [ 50.11, 8.68 ], iad => [ 38.95, -77.45 ], sin => [ 1.35, 103.82 ] }
            }
        }
        resources => {
            near => {
                map => world
                service_types => up
                dcmap => { fra => 127.0.3.1, iad => 127.0.3.2, sin => 127.0.3.3 }
            }
        }
    }
}
EOF
}
