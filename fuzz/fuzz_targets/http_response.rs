#![no_main]
//! See gslbd::fuzzing::http_response for what must hold.

libfuzzer_sys::fuzz_target!(|data: &[u8]| gslbd::fuzzing::http_response(data));
