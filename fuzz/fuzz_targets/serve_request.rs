#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| macbridge_fuzz::serve_request(data));
