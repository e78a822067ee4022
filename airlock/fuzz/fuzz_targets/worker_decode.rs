//! Raw bytes as a job payload, through the worker's whole decoding path
//! (`airlock::worker::decode_job`: JobCodec's parse, the envelope checks, the
//! registry lookup, the typed arguments), then the checks in
//! `airlock_fuzz::check_payload`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    airlock_fuzz::check_payload(bytes);
});
