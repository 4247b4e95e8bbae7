#![no_main]
//! See gslbd::fuzzing::zone_file for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gslbd::fuzzing::zone_file(data));
