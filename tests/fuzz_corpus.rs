//! Every input the fuzzers kept (`fuzz/corpus/<target>/`), and every crash they found
//! (`fuzz/regressions/<target>/`), run through the same entry points as the fuzz targets. CI
//! runs this on stable Rust; the fuzzers themselves need nightly (see fuzz/README.md).

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let r = std::panic::catch_unwind(|| run(&data));
            assert!(r.is_ok(), "{target}: {} panicked", path.display());
            count += 1;
        }
    }
    assert!(count > 0, "no corpus for {target}");
    eprintln!("{target}: {count} inputs");
}

#[test]
fn query_corpus() {
    replay("query", gslbd::fuzzing::query);
}

#[test]
fn zone_file_corpus() {
    replay("zone_file", gslbd::fuzzing::zone_file);
}

#[test]
fn load_report_corpus() {
    replay("load_report", gslbd::fuzzing::load_report);
}

#[test]
fn http_response_corpus() {
    replay("http_response", gslbd::fuzzing::http_response);
}
