//! The buffer: a scope's intents in FIFO order, its own and those captured
//! from nested scopes, each with the policies it was enqueued under, until
//! the scope ends.

use std::sync::Arc;

use crate::intent::{tick, Intent, IntentId};
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
    /// `order[k]`: when `intents[k]` was buffered, on the clock intent ids
    /// are drawn from (`intent::tick`), shared by every scope, so a nested
    /// scope that ran beside its parent's own code (`join!`) merges into the
    /// parent in enqueue order. It is the intent's id only for an intent
    /// built as it is buffered ([`push_with`](Self::push_with)): another may
    /// be built long before it is enqueued.
    order: Vec<u64>,
    chains: Chains,
}

/// The chain of each intent of a buffer, stored once per run of intents
/// enqueued under the same chain: the intents of a scope usually share one
/// (none, or the scope's policy), and then nothing is stored per intent,
/// not even a reference count (`in_process_table`'s DropAll rows).
#[derive(Default)]
pub(crate) struct Chains {
    /// `(first, chain)`: intents from index `first` up to the next run's
    /// `first` have `chain`. Intents before the first run have none.
    runs: Vec<(usize, Chain)>,
}

impl Chains {
    /// Notes that intent `index` (the next one) has `chain`.
    fn push(&mut self, index: usize, chain: &Chain) {
        let last = self.runs.last().map_or(&None, |(_, chain)| chain);
        let same = match (last, chain) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if !same {
            self.runs.push((index, chain.clone()));
        }
    }

    /// The chain of intent `index`.
    pub(crate) fn at(&self, index: usize) -> &Chain {
        let run = self.runs.partition_point(|(first, _)| *first <= index);
        match run {
            0 => &None,
            run => &self.runs[run - 1].1,
        }
    }

    /// The chain of `intent`, one of `intents` (the intents these chains
    /// belong to), found by id.
    pub(crate) fn of(&self, intents: &[Intent], intent: &Intent) -> Option<&Chain> {
        let k = intents.iter().position(|i| i.id() == intent.id())?;
        Some(self.at(k))
    }

    /// Whether no intent has a policy to pass.
    pub(crate) fn none(&self) -> bool {
        self.runs.iter().all(|(_, chain)| chain.is_none())
    }

    /// Appends `other`'s runs, for intents placed from index `offset` on.
    fn append(&mut self, other: Chains, offset: usize) {
        // `other`'s intents before its first run have no chain.
        self.push(offset, &None);
        for (first, chain) in other.runs {
            self.push(first + offset, &chain);
        }
    }
}

impl Buffer {
    pub(crate) fn push(&mut self, intent: Intent, chain: &Chain) {
        self.push_at(intent, chain, tick());
    }

    /// Appends `intent`, buffered at `at` on the shared clock (it keeps
    /// the time it was first buffered when a nested scope hands it up).
    pub(crate) fn push_at(&mut self, intent: Intent, chain: &Chain, at: u64) {
        self.note_next(chain);
        self.intents.push(intent);
        self.order.push(at);
    }

    /// Notes the chain of the intent about to be pushed, first giving an
    /// unused buffer its storage (spare, if this thread has some).
    fn note_next(&mut self, chain: &Chain) {
        if self.intents.capacity() == 0 {
            self.intents = spares::take(&SPARE_INTENTS);
            self.order = spares::take(&SPARE_ORDER);
        }
        self.chains.push(self.intents.len(), chain);
    }

    /// Appends the intent `make` builds, which must be a new one (its id is
    /// taken as the time it was buffered), with `chain`; returns its id.
    /// Building it only once there is room lets the compiler write it
    /// straight into the vector (see [`enqueue_new`](crate::enqueue)).
    #[inline]
    pub(crate) fn push_with(&mut self, make: impl FnOnce() -> Intent, chain: &Chain) -> IntentId {
        self.note_next(chain);
        // With room known, the compiler writes the intent in place.
        if self.intents.len() < self.intents.capacity() {
            self.intents.push(make());
        } else {
            self.push_growing(make());
        }
        // Built just now, its id was drawn from the buffering clock at this
        // moment: it serves as the time it was buffered (no second draw).
        let id = self.intents.last().expect("just pushed").id();
        self.order.push(id.get());
        id
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
            (self.order.last(), other.order.first()),
            (Some(last), Some(first)) if last > first
        );
        if self.intents.is_empty() {
            *self = other;
            return;
        }
        if interleaved {
            let mut all: Vec<(u64, Intent, Chain)> = self.drain_ordered().collect();
            all.extend(other.drain_ordered());
            // Both runs are sorted; the stable sort merges them in O(n).
            all.sort_by_key(|(at, _, _)| *at);
            for (at, intent, chain) in all {
                self.push_at(intent, &chain, at);
            }
            return;
        }
        let offset = self.intents.len();
        self.chains
            .append(std::mem::take(&mut other.chains), offset);
        self.intents.append(&mut other.intents);
        self.order.append(&mut other.order);
        spares::put(&SPARE_INTENTS, std::mem::take(&mut other.intents));
        spares::put(&SPARE_ORDER, std::mem::take(&mut other.order));
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
        self.chains.of(&self.intents, intent)
    }

    /// The intents, with when each was buffered and its chain, in order.
    pub(crate) fn drain_ordered(&mut self) -> impl Iterator<Item = (u64, Intent, Chain)> + '_ {
        let chains = std::mem::take(&mut self.chains);
        self.order
            .drain(..)
            .zip(self.intents.drain(..))
            .enumerate()
            .map(move |(k, (at, intent))| (at, intent, chains.at(k).clone()))
    }

    /// The intents and their chains.
    pub(crate) fn into_parts(mut self) -> (Vec<Intent>, Chains) {
        spares::put(&SPARE_ORDER, std::mem::take(&mut self.order));
        (self.intents, self.chains)
    }
}

thread_local! {
    static SPARE_INTENTS: Spares<Intent> = const { Spares::new() };
    static SPARE_ORDER: Spares<u64> = const { Spares::new() };
}

/// Keeps the allocation of an emptied vector of intents (a buffer an
/// executor has drained) for the next scope on this thread; see
/// [`spares`](crate::spares).
pub(crate) fn recycle(intents: Vec<Intent>) {
    spares::put(&SPARE_INTENTS, intents);
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Chain, Chains};
    use crate::policy::chain::{HeldPolicy, PolicyLink, PolicySource};
    use crate::DropAll;

    fn chain() -> Chain {
        PolicyLink::extend(None, &[HeldPolicy::new(DropAll)], &PolicySource::Local)
    }

    fn same(a: &Chain, b: &Chain) -> bool {
        match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    #[test]
    fn runs_give_each_intent_its_own_chain() {
        let (a, b) = (chain(), chain());
        let per_intent = [
            None,
            a.clone(),
            a.clone(),
            None,
            b.clone(),
            b.clone(),
            a.clone(),
        ];
        let mut chains = Chains::default();
        for (k, c) in per_intent.iter().enumerate() {
            chains.push(k, c);
        }
        // One run per change, not one per intent.
        assert_eq!(chains.runs.len(), 4);
        for (k, c) in per_intent.iter().enumerate() {
            assert!(same(chains.at(k), c), "intent {k}");
        }
    }

    #[test]
    fn appended_intents_without_a_chain_do_not_inherit_the_last_run() {
        let a = chain();
        let mut own = Chains::default();
        own.push(0, &a);
        let mut nested = Chains::default();
        nested.push(1, &a);
        // The nested scope's intent 0 has none, its intent 1 has `a`.
        own.append(nested, 1);
        assert!(same(own.at(0), &a));
        assert!(same(own.at(1), &None));
        assert!(same(own.at(2), &a));
    }
}
