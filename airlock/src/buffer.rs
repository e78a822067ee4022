//! The buffer: a scope's intents in FIFO order, its own and those captured from
//! nested scopes, until the scope ends.

use crate::intent::Intent;

/// FIFO storage of a scope's intents. Captured intents keep the id of the scope
/// they were enqueued in, which is how own and captured ones are told apart.
#[derive(Default)]
pub(crate) struct Buffer {
    intents: Vec<Intent>,
}

impl Buffer {
    pub(crate) fn push(&mut self, intent: Intent) {
        self.intents.push(intent);
    }

    /// Adds intents handed up by a descendant, keeping FIFO (enqueue) order.
    ///
    /// Usually they were all enqueued after everything buffered here (the
    /// descendant ran inside this scope) and are appended. When the descendant
    /// ran concurrently with this scope's own code (`join!` of two futures),
    /// the two runs interleave and are merged by intent id, which increases
    /// with enqueue order.
    pub(crate) fn capture(&mut self, mut intents: Vec<Intent>) {
        match (self.intents.last(), intents.first()) {
            (None, _) => std::mem::swap(&mut self.intents, &mut intents),
            (Some(last), Some(first)) if last.id() > first.id() => {
                self.intents.append(&mut intents);
                // Both runs are sorted; the stable sort merges them in O(n).
                self.intents.sort_by_key(Intent::id);
            }
            _ => self.intents.append(&mut intents),
        }
    }

    pub(crate) fn take(&mut self) -> Vec<Intent> {
        std::mem::take(&mut self.intents)
    }

    pub(crate) fn as_slice(&self) -> &[Intent] {
        &self.intents
    }
}
