//! The comparison of `cargo run --example compare`, shortened, with its shape asserted: while
//! backend 2 of 3 is down, round robin keeps failing about a third of the connects; health-aware
//! answers fail only until the check notices and the TTL runs out.

#[path = "../examples/compare/sim.rs"]
mod sim;

use std::path::Path;
use std::time::Duration;

#[test]
fn health_aware_stops_failing_after_detection_and_round_robin_does_not() {
    let plan = sim::Plan {
        duration: Duration::from_secs(14),
        outage_start: Duration::from_secs(3),
        outage_end: Duration::from_secs(11),
        clients: 30,
        pause: Duration::from_millis(300),
        ttl: 1,
        interval: Duration::from_millis(500),
        net: 61,
        ..sim::Plan::default()
    };
    let o = sim::run(Path::new(env!("CARGO_BIN_EXE_gslbd")), &plan, &|_, _| {}).unwrap();
    let table = sim::table(&o);
    let rows = o.rows();
    let (rr, ha, fast, one) = (&rows[0], &rows[1], &rows[2], &rows[3]);
    assert_eq!(
        (rr.mode, ha.mode, fast.mode, one.mode),
        (
            sim::Mode::RoundRobin,
            sim::Mode::HealthAware,
            sim::Mode::Fast,
            sim::Mode::OneStrike
        )
    );

    // Detection within fall (2) probes plus a probe interval of slack and jitter; recovery
    // within rise (2) probes likewise.
    let detect = ha
        .detect
        .expect("health-aware answers never dropped backend 2");
    assert!(detect <= Duration::from_secs(3), "{table}");
    let recover = ha
        .recover
        .expect("health-aware answers never took backend 2 back");
    assert!(recover <= Duration::from_secs(3), "{table}");
    // With fast_interval (200 ms), the second failure comes within a fast probe of the first:
    // about as soon as a one-strike checker notices.
    for r in [fast, one] {
        let detect = r.detect.expect("never dropped backend 2");
        assert!(detect <= Duration::from_millis(1500), "{table}");
        assert!(r.after_detection <= 0.01, "{table}");
    }

    // Enough connects in the settled part of the outage to judge a 1 % rate.
    assert!(ha.after_detection_attempts >= 200, "{table}");
    assert!(ha.after_detection <= 0.01, "{table}");
    assert!(rr.after_detection >= 0.20, "{table}");
    // Outside the outage nobody fails: round robin's failures are all inside it.
    let (start, end) = (plan.outage_start, plan.outage_end);
    let outside = o
        .attempts
        .iter()
        .filter(|a| !a.ok && (a.at < start || a.at >= end + Duration::from_millis(500)))
        .count();
    assert_eq!(outside, 0, "{table}");

    // The chart has one line per mode and the shaded outage.
    let svg = sim::svg(&o);
    assert_eq!(svg.matches("<polyline").count(), 4);
    for m in sim::MODES {
        assert!(svg.contains(m.label()), "{}", m.label());
    }
    assert!(svg.contains(r##"fill="#bbbbbb""##));
}

/// The command lines the example's doc comment and README show are accepted.
#[test]
fn the_documented_command_lines_parse() {
    let parse = |a: &[&str]| sim::args(a.iter().map(|s| s.to_string()));
    let (out, plan) = parse(&[]).unwrap();
    assert_eq!(out, Path::new("target/compare"));
    assert_eq!(plan.duration, Duration::from_secs(30));
    let (out, plan) = parse(&["--out", "docs", "--quick"]).unwrap();
    assert_eq!(out, Path::new("docs"));
    assert_eq!(plan.duration, Duration::from_secs(15));
    assert_eq!(parse(&["--quick"]).unwrap().1.ttl, 2);
    // `cargo run --example compare -- --out d -- --quick` hands the program a second `--`.
    assert!(
        parse(&["--out", "d", "--", "--quick"])
            .unwrap_err()
            .contains("one `--`")
    );
    assert!(parse(&["--out"]).is_err());
}
