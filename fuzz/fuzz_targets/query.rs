#![no_main]
//! See gslbd::fuzzing::query for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gslbd::fuzzing::query(data));
