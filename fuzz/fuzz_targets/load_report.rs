#![no_main]
//! See gslbd::fuzzing::load_report for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gslbd::fuzzing::load_report(data));
