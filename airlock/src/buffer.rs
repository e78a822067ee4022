//! The buffer: a scope's intents in FIFO order, its own and those captured
//! from nested scopes, each with the policies it was enqueued under, until
//! the scope ends.

use std::sync::Arc;

use crate::intent::{Intent, IntentId};
use crate::policy::chain::PolicyLink;
use crate::spares::{self, Spares};

/// The policies an intent must pass at flush: the chain in force where it
/// was enqueued (`None`: no policy at all).
pub(crate) type Chain = Option<Arc<PolicyLink>>;

/// FIFO storage of a scope's intents. Captured intents keep the id of the
/// scope they were enqueued in, which is how own and captured ones are told
/// apart.
///
/// The chains are kept beside the intents, not in them: where an intent was
/// enqueued is the buffer's business, and an [`Intent`] stays plain data an
/// executor can take.
#[derive(Default)]
pub(crate) struct Buffer {
    intents: Vec<Intent>,
    /// `chains[k]` is the chain of `intents[k]`; empty while no intent has
    /// one (no policy in force, the common case), so such a scope stores
    /// no chains at all.
    chains: Vec<Chain>,
}

impl Buffer {
    pub(crate) fn push(&mut self, intent: Intent, chain: Chain) {
        if self.intents.capacity() == 0 {
            self.intents = spares::take(&SPARE_INTENTS);
        }
        if chain.is_some() || !self.chains.is_empty() {
            self.chains.resize(self.intents.len(), None);
            self.chains.push(chain);
        }
        self.intents.push(intent);
    }

    /// Appends the intent `make` builds, with no chain; returns its id.
    /// Building it only once there is room lets the compiler write it
    /// straight into the vector (see [`enqueue_new`](crate::enqueue)).
    #[inline]
    pub(crate) fn push_with(&mut self, make: impl FnOnce() -> Intent) -> IntentId {
        if self.intents.capacity() == 0 {
            self.intents = spares::take(&SPARE_INTENTS);
        }
        if !self.chains.is_empty() {
            self.chains.resize(self.intents.len() + 1, None);
        }
        // With room known, the compiler writes the intent in place.
        if self.intents.len() < self.intents.capacity() {
            self.intents.push(make());
        } else {
            self.push_growing(make());
        }
        self.intents.last().expect("just pushed").id()
    }

    #[cold]
    #[inline(never)]
    fn push_growing(&mut self, intent: Intent) {
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
    /// with the order intents were built.
    pub(crate) fn capture(&mut self, mut other: Buffer) {
        let interleaved = matches!(
            (self.intents.last(), other.intents.first()),
            (Some(last), Some(first)) if last.id() > first.id()
        );
        if self.intents.is_empty() {
            *self = other;
            return;
        }
        if !self.chains.is_empty() || !other.chains.is_empty() {
            self.chains.resize(self.intents.len(), None);
            other.chains.resize(other.intents.len(), None);
            self.chains.append(&mut other.chains);
        }
        self.intents.append(&mut other.intents);
        spares::put(&SPARE_INTENTS, std::mem::take(&mut other.intents));
        if interleaved {
            let mut pairs: Vec<(Intent, Chain)> = self.drain().collect();
            // Both runs are sorted; the stable sort merges them in O(n).
            pairs.sort_by_key(|(intent, _)| intent.id());
            for (intent, chain) in pairs {
                self.push(intent, chain);
            }
        }
    }

    /// Empties the buffer, handing over what it held.
    pub(crate) fn take(&mut self) -> Buffer {
        std::mem::take(self)
    }

    pub(crate) fn intents(&self) -> &[Intent] {
        &self.intents
    }

    /// The chain of `intent`, one of the buffered ones (found by id).
    pub(crate) fn chain_of(&self, intent: &Intent) -> Option<&Chain> {
        let k = self.intents.iter().position(|i| i.id() == intent.id())?;
        Some(self.chains.get(k).unwrap_or(&None))
    }

    /// The intents and their chains, in order.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = (Intent, Chain)> + '_ {
        self.chains.resize(self.intents.len(), None);
        self.intents.drain(..).zip(self.chains.drain(..))
    }

    /// The intents, and their chains: as many as intents, or none when no
    /// intent has one.
    pub(crate) fn into_parts(self) -> (Vec<Intent>, Vec<Chain>) {
        (self.intents, self.chains)
    }
}

thread_local! {
    static SPARE_INTENTS: Spares<Intent> = const { Spares::new() };
}

/// Keeps the allocation of an emptied vector of intents (a buffer an
/// executor has drained) for the next scope on this thread; see
/// [`spares`](crate::spares).
pub(crate) fn recycle(intents: Vec<Intent>) {
    spares::put(&SPARE_INTENTS, intents);
}
