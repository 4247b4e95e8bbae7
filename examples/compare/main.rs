//! Round robin versus health-aware DNS, measured on this machine:
//!
//! ```sh
//! cargo run --release --example compare [-- [--out DIR] [--quick]]
//! ```
//! Three backends on 127.0.60.1-3, one gslbd serving the same three addresses four ways (round
//! robin; health-aware; health-aware with `fast_interval`; one-strike, `fall: 1`), 60
//! clients per way that resolve (caching for the TTL) and connect to the first address, and
//! backend 2 down from t=5 s to t=20 s. Prints a table per mode and writes `compare.svg`
//! (failed connects per second) to DIR (default `target/compare`; README's chart is
//! `--out docs`).

mod sim;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;

fn main() -> ExitCode {
    let (out_dir, plan) = match sim::args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => return usage(&e),
    };
    let Some(bin) = gslbd_binary() else {
        eprintln!("compare: cannot find or build the gslbd binary");
        return ExitCode::FAILURE;
    };
    eprintln!(
        "compare: {} clients per mode, backend 2 of 3 down from t={} s to t={} s, TTL {} s, checks every {} ms (fall {}, rise {}; fast_interval {} ms)",
        plan.clients,
        plan.outage_start.as_secs(),
        plan.outage_end.as_secs(),
        plan.ttl,
        plan.interval.as_millis(),
        plan.fall,
        plan.rise,
        plan.fast_interval.as_millis()
    );
    let progress = |t: Duration, failed: [usize; 4]| {
        eprint!(
            "\r  t={:>5.1} s  failed connects: round robin {:>5}, health-aware {:>5}, fast {:>5}, one-strike {:>5} ",
            t.as_secs_f64(),
            failed[0],
            failed[1],
            failed[2],
            failed[3]
        );
        let _ = std::io::stderr().flush();
    };
    let outcome = match sim::run(&bin, &plan, &progress) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("\ncompare: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!();
    print!("{}", sim::table(&outcome));
    let (w0, w1) = outcome.settled_window();
    println!(
        "(\"outage\" column: connects from detection + one TTL to the end of the outage, t={:.1}..{:.0} s)",
        w0.as_secs_f64(),
        w1.as_secs_f64()
    );
    if let Err(e) = std::fs::create_dir_all(&out_dir) {
        eprintln!("compare: cannot create {}: {e}", out_dir.display());
        return ExitCode::FAILURE;
    }
    let chart = out_dir.join("compare.svg");
    if let Err(e) = std::fs::write(&chart, sim::svg(&outcome)) {
        eprintln!("compare: cannot write {}: {e}", chart.display());
        return ExitCode::FAILURE;
    }
    println!("chart: {}", chart.display());
    ExitCode::SUCCESS
}

fn usage(msg: &str) -> ExitCode {
    eprintln!(
        "compare: {msg}\nusage: cargo run --release --example compare [-- [--out DIR] [--quick]]"
    );
    ExitCode::from(2)
}

/// The gslbd binary of the same build profile; built first when run through cargo (examples
/// do not get the package's binaries built for them).
fn gslbd_binary() -> Option<PathBuf> {
    let bin = sim::sibling_binary()?;
    if let Some(cargo) = std::env::var_os("CARGO") {
        let profile_dir = bin.parent()?;
        let profile = match profile_dir.file_name()?.to_str()? {
            "debug" => "dev".to_string(),
            p => p.to_string(),
        };
        let status = Command::new(cargo)
            .args(["build", "--quiet", "--bin", "gslbd", "--profile", &profile])
            .status()
            .ok()?;
        if !status.success() {
            return None;
        }
    }
    bin.exists().then_some(bin)
}
