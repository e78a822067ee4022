//! Process-unique ids without an atomic operation per id: each thread takes
//! a block of ids from one process-wide counter and hands them out itself.
//! Ids from blocks increase per thread, not across threads.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::LocalKey;

/// How many ids a thread takes from the process-wide counter at a time.
const BLOCK: u64 = 1024;

// One kind of id is a pair of statics: the process-wide counter (every id
// handed out so far, or in a block claimed so far, is below it) and a
// thread-local block (the next id to hand out and the end of the block).
// They are passed in rather than held in a struct so each call site names
// its statics directly and the thread-local access is inlined.

/// The next id of this thread's block, first moving this thread to a new
/// block if its ids are below `at_least`. A new block starts above every
/// claimed one, so `u64::MAX` asks for an id above every id handed out so
/// far, on any thread.
#[inline(always)]
pub(crate) fn next(
    next_block: &'static AtomicU64,
    local: &'static LocalKey<Cell<(u64, u64)>>,
    at_least: u64,
) -> u64 {
    local
        .try_with(|ids| {
            let (next, end) = ids.get();
            if next >= at_least && next < end {
                ids.set((next + 1, end));
                next
            } else {
                let start = next_block.fetch_add(BLOCK, Ordering::Relaxed);
                ids.set((start + 1, start + BLOCK));
                start
            }
        })
        // The thread-local is gone (thread teardown).
        .unwrap_or_else(|_| next_block.fetch_add(1, Ordering::Relaxed))
}

/// The bound below every id handed out on this thread so far.
pub(crate) fn clock(local: &'static LocalKey<Cell<(u64, u64)>>) -> u64 {
    local.try_with(|ids| ids.get().0).unwrap_or(0)
}
