//! Emptied vectors kept for reuse on one thread: scope buffers and flush
//! ledgers. A steady stream of scopes then allocates none of them, and
//! ending a scope frees no large block, which would make glibc's allocator
//! trim the heap and consolidate its free lists, slowing every allocation
//! after it.
//!
//! It earns its place in `in_process_table`: with it, the "enqueue + flush,
//! in-process, N = 1000" row and the "10,000 scopes x 10 intents" row are
//! each more than a third faster than with a fresh vector per scope
//! (measured when the single buffer landed; see the commit that brought
//! this module back).
//!
//! Bounded: a thread keeps at most [`SPARES`] vectors of at most
//! [`SPARE_CAPACITY`] elements per kind, however large its scopes get.

use std::cell::RefCell;
use std::thread::LocalKey;

/// A thread's spare vectors of one kind.
pub(crate) struct Spares<T>(RefCell<Vec<Vec<T>>>);

const SPARES: usize = 2;
const SPARE_CAPACITY: usize = 1024;

impl<T> Spares<T> {
    pub(crate) const fn new() -> Self {
        Spares(RefCell::new(Vec::new()))
    }
}

/// An empty vector, reused if this thread has one to spare.
pub(crate) fn take<T: 'static>(spares: &'static LocalKey<Spares<T>>) -> Vec<T> {
    spares
        .try_with(|spares| spares.0.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps the allocation of `vec` (emptied first) for reuse on this thread.
pub(crate) fn put<T: 'static>(spares: &'static LocalKey<Spares<T>>, mut vec: Vec<T>) {
    let capacity = vec.capacity();
    if capacity == 0 || capacity > SPARE_CAPACITY {
        return;
    }
    // Dropping leftover elements may run user code (the `Drop` of buffered
    // arguments), which must not find the spares borrowed.
    vec.clear();
    let _ = spares.try_with(|spares| {
        if let Ok(mut spares) = spares.0.try_borrow_mut() {
            if spares.len() < SPARES {
                spares.push(vec);
            }
        }
    });
}
