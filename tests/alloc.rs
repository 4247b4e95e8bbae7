//! The query path allocates nothing: every kind of answer (static data, referrals, negative
//! answers, CNAME chains, errors, and every pool policy with and without ECS) is produced under
//! a global allocator that counts allocations on this thread.
//!
//! Its own test binary, so the counting allocator sees only this test.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Ask, root};
use gslbd::config::{self, Sources};
use gslbd::dns::{MAX_RESPONSE, Transport, answer};
use gslbd::dnssec::{Algorithm, Key};
use gslbd::snapshot::Snapshot;

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn counting() -> bool {
    COUNTING.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counting() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

#[test]
fn answering_allocates_nothing() {
    let d = tempfile::tempdir().unwrap();
    for f in ["auth.test.yaml", "child.auth.test.yaml"] {
        std::fs::copy(
            root().join("tests/zones/authority").join(f),
            d.path().join(f),
        )
        .unwrap();
    }
    std::fs::copy(
        root().join("tests/zones/pools/p.test.yaml"),
        d.path().join("p.test.yaml"),
    )
    .unwrap();
    // A signed zone beside them: its answers with DO carry signatures and proofs, and a name
    // that does not exist gets one signed on the query path.
    let keys = d.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let zone_name = "sig.test.".parse().unwrap();
    for alg in [Algorithm::EcdsaP256Sha256, Algorithm::Ed25519] {
        let (key, private) = Key::generate(&zone_name, alg).unwrap();
        key.write(&keys, &private, "20261202000000").unwrap();
    }
    std::fs::copy(
        root().join("tests/zones/signed/sig.test.yaml"),
        d.path().join("sig.test.yaml"),
    )
    .unwrap();
    // And a zone placed by GeoIP: nearest and topology pools over the test's databases.
    let g = tempfile::tempdir().unwrap();
    let (server, _, _) = common::geo::world_config(g.path());
    std::fs::write(d.path().join("geo.test.yaml"), common::geo::ZONE).unwrap();
    let loaded = config::load(&Sources {
        config: Some(server),
        zones_dir: Some(d.path().to_path_buf()),
    })
    .expect("zones load");
    let snap = Snapshot::of_config(&loaded.config, 1).unwrap();

    let mut queries: Vec<(Vec<u8>, Transport)> = Vec::new();
    for (name, rtype) in [
        ("www.auth.test.", "A"),
        ("WwW.AuTh.TeSt.", "AAAA"),
        ("auth.test.", "MX"),
        ("auth.test.", "NS"),
        ("auth.test.", "SOA"),
        ("nope.auth.test.", "A"),
        ("www.auth.test.", "TXT"),
        ("host.deep.auth.test.", "A"),
        ("alias.auth.test.", "A"),
        ("dangling.auth.test.", "A"),
        ("x.sub.auth.test.", "A"),
        ("_sip._udp.auth.test.", "SRV"),
        ("www.auth.test.", "ANY"),
        ("big.auth.test.", "TXT"),
        ("www.example.com.", "A"),
        ("auth.test.", "AXFR"),
        ("rr.p.test.", "A"),
        ("rr.p.test.", "AAAA"),
        ("alias.p.test.", "A"),
        ("weighted.p.test.", "A"),
        ("failover.p.test.", "A"),
        ("sticky.p.test.", "A"),
        ("geo.p.test.", "A"),
        ("geo.p.test.", "AAAA"),
        ("geo.p.test.", "MX"),
        ("www.sig.test.", "A"),
        ("www.sig.test.", "MX"),
        ("sig.test.", "DNSKEY"),
        ("nope.sig.test.", "A"),
        ("a.b.nope.sig.test.", "TXT"),
        ("deep.sig.test.", "A"),
        ("web.sig.test.", "A"),
        ("web.sig.test.", "AAAA"),
        ("web.sig.test.", "MX"),
        ("alias.sig.test.", "A"),
        ("gone.sig.test.", "A"),
        ("gone.sig.test.", "AAAA"),
        ("x.child.sig.test.", "A"),
        ("x.secure.sig.test.", "A"),
        ("secure.sig.test.", "DS"),
        ("child.sig.test.", "DS"),
        ("near.geo.test.", "A"),
        ("topo.geo.test.", "A"),
    ] {
        for transport in [Transport::Udp, Transport::Tcp] {
            queries.push((Ask::new(name, rtype).bytes(), transport));
            let mut signed = Ask::new(name, rtype);
            signed.dnssec_ok = true;
            queries.push((signed.bytes(), transport));
            queries.push((signed.clone().ecs("10.2.3.0", 24).bytes(), transport));
            queries.push((signed.bufsize(512).bytes(), transport));
            for subnet in [
                "5.1.2.0",
                "12.34.56.0",
                "177.1.0.0",
                "41.1.1.0",
                "192.168.0.0",
            ] {
                queries.push((Ask::new(name, rtype).ecs(subnet, 24).bytes(), transport));
            }
            queries.push((
                Ask::new(name, rtype).ecs("2001:db8:de::", 56).bytes(),
                transport,
            ));
            queries.push((Ask::new(name, rtype).no_edns().bytes(), transport));
            queries.push((Ask::new(name, rtype).ecs("10.2.3.0", 24).bytes(), transport));
            queries.push((
                Ask::new(name, rtype).ecs("2001:db8:2::", 56).bytes(),
                transport,
            ));
        }
    }
    let mut bad_version = Ask::new("www.auth.test.", "A");
    bad_version.edns_version = 1;
    queries.push((bad_version.bytes(), Transport::Udp));
    // FORMERR (a header that promises a question it lacks) and a dropped response.
    queries.push((
        vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        Transport::Udp,
    ));
    queries.push((
        vec![0x12, 0x34, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        Transport::Udp,
    ));

    let mut out = vec![0u8; MAX_RESPONSE];
    let peers: [IpAddr; 2] = [
        "10.1.0.7".parse().unwrap(),
        "2001:db8:2::7".parse().unwrap(),
    ];
    let mut answered = 0usize;
    let mut run = |out: &mut [u8]| {
        for (q, t) in &queries {
            for peer in peers {
                if answer(&snap, q, *t, peer, out).is_some() {
                    answered += 1;
                }
            }
        }
    };
    // Warm up (thread-local shards, the RNG), then count.
    run(&mut out);
    let n = allocations(|| {
        for _ in 0..20 {
            run(&mut out);
        }
    });
    assert_eq!(n, 0, "the query path allocated {n} times");
    // The counter works: it sees an allocation when there is one.
    assert_eq!(allocations(|| drop(std::hint::black_box(vec![1u8; 16]))), 1);
    assert!(answered > queries.len(), "answered {answered}");
    // The signed answers were made: a missing name's proof has the SOA, the NSEC and an
    // RRSIG of each by each of the two keys.
    let mut nope = Ask::new("nope.sig.test.", "A");
    nope.dnssec_ok = true;
    let n = answer(&snap, &nope.bytes(), Transport::Udp, peers[0], &mut out).unwrap();
    let m = hickory_proto::op::Message::from_vec(&out[..n]).unwrap();
    assert_eq!(m.authorities.len(), 6, "{m:?}");
    // The GeoIP zone placed its clients: a German /24 gets Frankfurt's member, scope /8.
    let q = Ask::new("near.geo.test.", "A").ecs("5.1.2.0", 24).bytes();
    let n = answer(&snap, &q, Transport::Udp, peers[0], &mut out).unwrap();
    let m = hickory_proto::op::Message::from_vec(&out[..n]).unwrap();
    assert_eq!(common::addresses(&m), ["192.0.2.1"]);
    assert_eq!(common::ecs_of(&m).map(|e| e.2), Some(8));
}
