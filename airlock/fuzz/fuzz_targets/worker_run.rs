//! Raw bytes as a job payload, decoded *and run* by the worker's handler
//! (`airlock::worker::handle_bytes`, the code `worker::handle` runs) on the
//! registered fuzz tasks, at an arbitrary attempt of an arbitrary budget;
//! then the checks in `airlock_fuzz::check_run`. Covers what decoding alone
//! does not: the cascade depth from the wire, the attempt budget, the run.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Run<'a> {
    attempt: u8,
    max_attempts: Option<u8>,
    payload: &'a [u8],
}

fuzz_target!(|run: Run<'_>| {
    airlock_fuzz::check_run(
        run.payload,
        usize::from(run.attempt),
        run.max_attempts.map(usize::from),
    );
});
