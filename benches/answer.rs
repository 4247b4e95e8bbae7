//! Micro-benchmarks of the query path and the policy pipeline: `cargo bench --bench answer`.
//!
//! `answer` runs the whole per-query work of a UDP packet (parse, zone lookup, policy order,
//! patch-and-copy of the pre-encoded answer, EDNS/ECS) on a published snapshot; `order` and
//! `publish` are the pipeline's per-query and per-change halves. Divan also counts allocations:
//! the `answer` and `order` rows must show none.

use std::hint::black_box;
use std::net::IpAddr;

use divan::{AllocProfiler, Bencher};
use gslbd::config::{self, Sources};
use gslbd::dns::{MAX_RESPONSE, Transport, answer};
use gslbd::health::Status;
use gslbd::model::{Order, Pool, Zone};
use gslbd::select::pipeline::{self, NoTrace};
use gslbd::select::{self, Family, order};
use gslbd::snapshot::Snapshot;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RecordType};

#[global_allocator]
static ALLOC: AllocProfiler = AllocProfiler::system();

fn main() {
    divan::main();
}

const ZONE: &str = "zone: b.test.
soa: { mname: ns1.b.test., rname: hostmaster.b.test. }
ns: [ns1.b.test.]
records:
  ns1: { A: [192.0.2.53] }
  www: { A: [192.0.2.1, 192.0.2.2], ttl: 30 }
  mail: { MX: ['10 www.b.test.'] }
sites:
  fra: [10.1.0.0/16]
  ber: { nets: [10.2.0.0/16], fallback: [fra] }
pools:
  rr: { max_answers: 3, members: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }] }
  weighted: { policy: weighted, members: [{ address: 192.0.2.1, weight: 3 }, { address: 192.0.2.2 }, { address: 192.0.2.3, weight: 2 }] }
  failover: { policy: failover, members: [{ address: 192.0.2.1, priority: 1 }, { address: 192.0.2.2, priority: 2 }] }
  sticky: { policy: sticky, max_answers: 1, members: [{ address: 192.0.2.1 }, { address: 192.0.2.2 }, { address: 192.0.2.3 }] }
  geo:
    policy: [topology, round-robin]
    members: [{ address: 192.0.2.1, site: fra }, { address: 192.0.2.2, site: ber }, { address: 192.0.2.3, site: ber }]
names:
  rr: { pool: rr }
  weighted: { pool: weighted }
  failover: { pool: failover }
  sticky: { pool: sticky }
  geo: { pool: geo }
";

fn zones(text: &str) -> Vec<Zone> {
    let d = tempfile::tempdir().expect("temp dir");
    std::fs::write(d.path().join("b.test.yaml"), text).expect("write zone");
    config::load(&Sources {
        config: None,
        zones_dir: Some(d.path().to_path_buf()),
    })
    .expect("the bench zone loads")
    .config
    .zones
}

/// A query as a resolver sends it: EDNS with 1232 octets, and ECS when `ecs` is given.
fn query(name: &str, qtype: RecordType, ecs: Option<(&str, u8)>) -> Vec<u8> {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    let mut e = Edns::new();
    e.set_max_payload(1232);
    if let Some((addr, len)) = ecs {
        let addr: IpAddr = addr.parse().expect("address");
        e.options_mut()
            .insert(EdnsOption::Subnet(ClientSubnet::new(addr, len, 0)));
    }
    m.set_edns(e);
    m.to_vec().expect("query encodes")
}

const CASES: &[&str] = &[
    "static A",
    "NXDOMAIN",
    "MX + additional",
    "round-robin pool",
    "weighted pool",
    "failover pool",
    "sticky pool, ECS",
    "topology pool, ECS",
    "REFUSED (other zone)",
];

fn case_query(case: &str) -> Vec<u8> {
    match case {
        "static A" => query("www.b.test.", RecordType::A, None),
        "NXDOMAIN" => query("nope.b.test.", RecordType::A, None),
        "MX + additional" => query("mail.b.test.", RecordType::MX, None),
        "round-robin pool" => query("rr.b.test.", RecordType::A, None),
        "weighted pool" => query("weighted.b.test.", RecordType::A, None),
        "failover pool" => query("failover.b.test.", RecordType::A, None),
        "sticky pool, ECS" => query("sticky.b.test.", RecordType::A, Some(("10.2.3.0", 24))),
        "topology pool, ECS" => query("geo.b.test.", RecordType::A, Some(("10.2.3.0", 24))),
        _ => query("www.example.com.", RecordType::A, None),
    }
}

/// One UDP query answered from the live snapshot, reply written into a reused buffer.
#[divan::bench(args = CASES)]
fn answer_query(bencher: Bencher, case: &str) {
    let snap = Snapshot::build(&zones(ZONE), 1).expect("snapshot");
    let packet = case_query(case);
    let peer: IpAddr = "10.1.0.7".parse().expect("peer");
    let mut out = vec![0u8; MAX_RESPONSE];
    assert!(answer(&snap, &packet, Transport::Udp, peer, &mut out).is_some());
    bencher.bench_local(|| {
        black_box(answer(
            &snap,
            black_box(&packet),
            Transport::Udp,
            peer,
            &mut out,
        ))
    });
}

/// Step 5–6 per query: order N members and take `max_answers` (3).
#[divan::bench(args = [3, 16, 64])]
fn order_round_robin(bencher: Bencher, n: usize) {
    let weights = vec![1u32; n];
    let mut rng = fastrand::Rng::with_seed(7);
    bencher.bench_local(|| order::pick(Order::RoundRobin, black_box(&weights), 3, &mut rng));
}

#[divan::bench(args = [3, 16, 64])]
fn order_weighted(bencher: Bencher, n: usize) {
    let weights: Vec<u32> = (1..=n as u32).collect();
    let mut rng = fastrand::Rng::with_seed(7);
    bencher.bench_local(|| order::pick(Order::Weighted, black_box(&weights), 3, &mut rng));
}

#[divan::bench(args = [3, 16, 64])]
fn order_sticky(bencher: Bencher, n: usize) {
    let members: Vec<(u64, u32)> = (0..n)
        .map(|i| (order::member_key(&IpAddr::from([192, 0, 2, i as u8])), 1))
        .collect();
    let client = [10u8, 2, 3, 24];
    bencher.bench_local(|| order::sticky(&members, black_box(&client), 1));
}

/// Steps 1–3 at publish time, for a pool of N members of which every fourth is down.
#[divan::bench(args = [3, 64, 1000])]
fn publish_eligible(bencher: Bencher, n: usize) {
    let mut text = String::from(
        "zone: b.test.\nsoa: { mname: ns1.b.test., rname: hostmaster.b.test. }\nns: [ns1.b.test.]\nrecords:\n  ns1: { A: [192.0.2.53] }\npools:\n  big:\n    policy: failover\n    members:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "      - {{ address: 10.{}.{}.{}, priority: {} }}\n",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255,
            i % 3
        ));
    }
    let zones = zones(&text);
    let pool: &Pool = &zones[0].pools[0];
    bencher.bench_local(|| {
        pipeline::family(black_box(pool), Family::V4, &EveryFourthDown, &mut NoTrace)
    });
}

/// Every fourth member down, nothing drained, weights as configured.
struct EveryFourthDown;

impl pipeline::Judge for EveryFourthDown {
    fn status(&self, pool: &Pool, member: usize) -> Status {
        match pool.members[member].address {
            IpAddr::V4(a) if a.octets()[3].is_multiple_of(4) => Status::Down,
            _ => Status::Up,
        }
    }
    fn drained(&self, _: &select::Candidate) -> bool {
        false
    }
    fn weight(&self, _: &Pool, c: &select::Candidate) -> u32 {
        c.weight
    }
    fn pool(&self, _: &str) -> Option<&Pool> {
        None
    }
}

/// A whole publish: the snapshot of the bench zone, encoded (what a health change costs).
#[divan::bench]
fn publish_snapshot(bencher: Bencher) {
    let zones = zones(ZONE);
    bencher.bench_local(|| Snapshot::build(black_box(&zones), 2).expect("snapshot"));
}

/// The writer's extra work per observation with `cluster:`: another node's view of one probe
/// changes (a remote vantage set, the quorum taken, the pool republished), for a checked pool
/// of N members. The query path does none of it.
#[divan::bench(args = [3, 100])]
fn cluster_observation(bencher: Bencher, n: usize) {
    use gslbd::cluster::ProbeName;
    use gslbd::health::State;
    use gslbd::model::{Config, Quorum, Server};
    use gslbd::writer::Table;
    let mut text = String::from(
        "zone: b.test.\nsoa: { mname: ns1.b.test., rname: hostmaster.b.test. }\nns: [ns1.b.test.]\nrecords:\n  ns1: { A: [192.0.2.53] }\nchecks:\n  web: { tcp: { port: 80 } }\npools:\n  web:\n    checks: [web]\n    max_answers: 3\n    members:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "      - {{ address: 10.0.{}.{} }}\n",
            i >> 8,
            i & 255
        ));
    }
    text.push_str("names:\n  www: { pool: web }\n");
    let config = Config {
        server: Server::default(),
        zones: zones(&text),
        geo: None,
    };
    let now = std::time::Instant::now();
    let mut table = Table::new(config, &|_| None, now, Default::default()).expect("table");
    table.join_cluster("ns1", Quorum::Majority);
    let key = table.probes().next().expect("a probe").0.clone();
    let probe = ProbeName::of(&key);
    let ns2 = table.vantage("ns2").expect("a cluster");
    let ns3 = table.vantage("ns3").expect("a cluster");
    let ns2_down = Some(State::reported(Status::Down, String::new(), now));
    table.set_vantage(&probe, ns2, ns2_down, now);
    let mut down = false;
    bencher.bench_local(|| {
        // ns3 flips: with ns2 down and ns1 not voting, 2 of 2 down is a majority and 1 of 2
        // is not, so every call changes the probe's status and republishes its pool.
        down = !down;
        let status = if down { Status::Down } else { Status::Up };
        let state = Some(State::reported(status, String::new(), now));
        black_box(table.set_vantage(&probe, ns3, state, now))
    });
}
