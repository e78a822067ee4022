//! The buffer: a scope's intents in FIFO order, its own and those captured from
//! nested scopes, until the scope ends.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::intent::Intent;

/// FIFO storage of a scope's intents. Captured intents keep the id of the scope
/// they were enqueued in, which is how own and captured ones are told apart.
#[derive(Default)]
pub(crate) struct Buffer {
    intents: Vec<Intent>,
    /// Whether any intent carries a policy chain; when none does, the flush
    /// has nothing to ask and skips filtering.
    policed: bool,
}

impl Buffer {
    /// A buffer holding `intents`.
    pub(crate) fn of(intents: Vec<Intent>) -> Self {
        let policed = intents.iter().any(|i| i.chain.is_some());
        Buffer { intents, policed }
    }

    pub(crate) fn push(&mut self, intent: Intent) {
        self.policed |= intent.chain.is_some();
        if self.intents.capacity() == 0 {
            self.intents = spare();
        }
        self.intents.push(intent);
    }

    /// How many intents the buffer holds.
    pub(crate) fn len(&self) -> usize {
        self.intents.len()
    }

    /// Adds intents handed up by a descendant, keeping FIFO (enqueue) order.
    ///
    /// Usually they were all enqueued after everything buffered here (the
    /// descendant ran inside this scope) and are appended. When the descendant
    /// ran concurrently with this scope's own code (`join!` of two futures),
    /// the two runs interleave and are merged by intent id, which increases
    /// with enqueue order.
    pub(crate) fn capture(&mut self, mut other: Buffer) {
        self.policed |= other.policed;
        match (self.intents.last(), other.intents.first()) {
            (None, _) => {
                std::mem::swap(&mut self.intents, &mut other.intents);
                recycle(other.intents);
            }
            (Some(last), Some(first)) if last.id() > first.id() => {
                self.intents.append(&mut other.intents);
                // Both runs are sorted; the stable sort merges them in O(n).
                self.intents.sort_by_key(Intent::id);
            }
            _ => self.intents.append(&mut other.intents),
        }
    }

    /// Empties the buffer, handing over what it held.
    pub(crate) fn take(&mut self) -> Buffer {
        std::mem::take(self)
    }

    /// Whether any intent carries a policy chain.
    pub(crate) fn is_policed(&self) -> bool {
        self.policed
    }

    pub(crate) fn as_slice(&self) -> &[Intent] {
        &self.intents
    }

    pub(crate) fn into_intents(self) -> Vec<Intent> {
        self.intents
    }
}

/// Emptied vectors kept for reuse on one thread: buffers here, ledgers in
/// [`flush`](crate::flush). A steady stream of scopes then allocates none,
/// and ending a scope frees no large block (which makes glibc's allocator
/// consolidate its free lists, slowing every small allocation after it).
///
/// Bounded: a thread keeps at most [`SPARES`] vectors of at most
/// [`SPARE_CAPACITY`] elements per kind (about 200 KB in all), however large
/// its scopes get.
pub(crate) struct Spares<T>(RefCell<Vec<Vec<T>>>);

const SPARES: usize = 2;
const SPARE_CAPACITY: usize = 1024;

impl<T> Spares<T> {
    pub(crate) const fn new() -> Self {
        Spares(RefCell::new(Vec::new()))
    }
}

/// An empty vector, reused if this thread has one to spare.
pub(crate) fn take_spare<T: 'static>(spares: &'static LocalKey<Spares<T>>) -> Vec<T> {
    spares
        .try_with(|spares| spares.0.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Keeps the allocation of `vec` (emptied first) for reuse on this thread.
pub(crate) fn put_spare<T: 'static>(spares: &'static LocalKey<Spares<T>>, mut vec: Vec<T>) {
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

thread_local! {
    static SPARE_BUFFERS: Spares<Intent> = const { Spares::new() };
}

/// An empty buffer, reused if this thread has one to spare.
pub(crate) fn spare() -> Vec<Intent> {
    take_spare(&SPARE_BUFFERS)
}

/// Keeps the allocation of an emptied buffer for reuse on this thread.
pub(crate) fn recycle(intents: Vec<Intent>) {
    put_spare(&SPARE_BUFFERS, intents);
}
