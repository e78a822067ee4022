//! The ledger: what became of each intent of a scope, kept compactly until
//! someone reads it.
//!
//! A flush notes every intent it handles, and most of those notes are never
//! read: `airlock::scope(..)` throws its report away unless the dispatch
//! fails. So an entry is 32 bytes of plain data (id, task, origin, whether the
//! intent was the scope's own, and a fate number), each distinct [`Fate`] is
//! stored once however many intents share it, and the public
//! [`IntentRecord`]s are built on the first read.

use std::fmt;
use std::panic::Location;
use std::sync::{Arc, OnceLock};

use crate::flush::record::{Fate, IntentRecord};
use crate::intent::{Intent, IntentId};
use crate::scope::info::ScopeId;
use crate::spares::{self, Spares};
use crate::task::TaskDef;

/// The ledger of one scope; see the module docs.
#[derive(Default)]
pub(crate) struct Ledger {
    entries: Vec<Entry>,
    /// When set, the fate of every entry, whatever the entry says: a flush
    /// where all intents share a fate (the usual case: all dispatched) then
    /// changes it in one write instead of one per entry.
    all: Option<FateRef>,
    fates: Vec<Fate>,
    records: OnceLock<Arc<[IntentRecord]>>,
}

#[derive(Clone, Copy)]
struct Entry {
    id: IntentId,
    task: &'static TaskDef,
    origin: &'static Location<'static>,
    fate: FateRef,
    own: bool,
}

/// A fate stored in a ledger ([`Ledger::fate`]), to set on entries.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct FateRef(u32);

impl FateRef {
    /// The fates that carry no data, numbered by their position here; the
    /// ledger's stored fates are numbered after them.
    const PLAIN: [Fate; 4] = [
        Fate::Buffered,
        Fate::Dispatched,
        Fate::NotAttempted,
        Fate::Interrupted,
    ];

    #[inline]
    fn plain(fate: &Fate) -> Option<FateRef> {
        let n = Self::PLAIN.iter().position(|plain| plain == fate)?;
        Some(FateRef(n as u32))
    }
}

impl Ledger {
    /// An empty ledger with room for `capacity` entries.
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        let mut entries = Vec::new();
        if capacity > 0 {
            entries = spares::take(&SPARE_ENTRIES);
            entries.reserve(capacity);
        }
        Ledger {
            entries,
            all: None,
            fates: Vec::new(),
            records: OnceLock::new(),
        }
    }

    /// Stores `fate` (once: setting it on many entries costs a number each).
    /// The fates without data are fixed numbers and stored nowhere, so a
    /// flush where nothing goes wrong allocates no fate.
    #[inline]
    pub(crate) fn fate(&mut self, fate: Fate) -> FateRef {
        match FateRef::plain(&fate) {
            Some(plain) => plain,
            None => self.store(fate),
        }
    }

    #[inline(never)]
    fn store(&mut self, fate: Fate) -> FateRef {
        // Flushes use a handful of fates, usually asked for in runs.
        let stored = match self.fates.iter().rposition(|f| *f == fate) {
            Some(i) => i,
            None => {
                self.fates.push(fate);
                self.fates.len() - 1
            }
        };
        FateRef(FateRef::PLAIN.len() as u32 + stored as u32)
    }

    /// The fate `fate` stands for.
    fn fate_of(&self, fate: FateRef) -> Fate {
        match FateRef::PLAIN.get(fate.0 as usize) {
            Some(plain) => plain.clone(),
            None => self.fates[fate.0 as usize - FateRef::PLAIN.len()].clone(),
        }
    }

    /// Notes `intents` (in a scope whose id is `scope`) with `fate`.
    pub(crate) fn note_all(&mut self, intents: &[Intent], scope: ScopeId, fate: FateRef) {
        // New entries carry `fate`; a shared fate still holds if it is the same.
        if self.all.is_some_and(|all| all != fate) {
            self.spell_out();
        }
        self.entries
            .extend(intents.iter().map(|intent| Entry::of(intent, scope, fate)));
    }

    /// Notes one intent with `fate`; returns its position.
    pub(crate) fn note(&mut self, intent: &Intent, scope: ScopeId, fate: FateRef) -> usize {
        self.spell_out();
        self.entries.push(Entry::of(intent, scope, fate));
        self.entries.len() - 1
    }

    /// Sets the fate of the entry at `position`.
    pub(crate) fn set(&mut self, position: usize, fate: FateRef) {
        self.spell_out();
        self.entries[position].fate = fate;
    }

    /// Sets `fate` on the entries at `positions`.
    pub(crate) fn set_each(&mut self, positions: &Positions, fate: FateRef) {
        match positions {
            Positions::First(n) if *n == self.entries.len() => self.all = Some(fate),
            Positions::First(n) => {
                self.spell_out();
                self.entries[..*n].iter_mut().for_each(|e| e.fate = fate);
            }
            Positions::Listed(list) => {
                self.spell_out();
                list.iter().for_each(|&i| self.entries[i].fate = fate);
            }
        }
    }

    /// Writes the shared fate (if any) into every entry, before entries
    /// get fates of their own.
    fn spell_out(&mut self) {
        if let Some(fate) = self.all.take() {
            self.entries.iter_mut().for_each(|e| e.fate = fate);
        }
    }

    /// The fate of entry `e`.
    fn fate_ref(&self, e: &Entry) -> FateRef {
        self.all.unwrap_or(e.fate)
    }

    /// How many intents are noted.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The task names of the entries whose fate matches `pred`, in order,
    /// without building records.
    pub(crate) fn names(&self, pred: impl Fn(&Fate) -> bool) -> Vec<&'static str> {
        let plain = FateRef::PLAIN.iter();
        let matching: Vec<bool> = plain.chain(&self.fates).map(pred).collect();
        self.entries
            .iter()
            .filter(|e| matching[self.fate_ref(e).0 as usize])
            .map(|e| e.task.name())
            .collect()
    }

    /// The records, built on the first call.
    pub(crate) fn records(&self) -> &Arc<[IntentRecord]> {
        self.records.get_or_init(|| {
            self.entries
                .iter()
                .map(|e| IntentRecord {
                    id: e.id,
                    task: e.task,
                    origin: e.origin,
                    own: e.own,
                    fate: self.fate_of(self.fate_ref(e)),
                })
                .collect()
        })
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        spares::put(&SPARE_ENTRIES, std::mem::take(&mut self.entries));
    }
}

thread_local! {
    static SPARE_ENTRIES: Spares<Entry> = const { Spares::new() };
}

impl Entry {
    fn of(intent: &Intent, scope: ScopeId, fate: FateRef) -> Self {
        Entry {
            id: intent.id(),
            task: intent.task(),
            origin: intent.origin(),
            fate,
            own: intent.scope == Some(scope),
        }
    }
}

impl fmt::Debug for Ledger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.records().iter()).finish()
    }
}

/// Which ledger entries a list of intents stands for, in order: usually
/// simply the first `n` (nothing was routed elsewhere or dropped), which
/// needs no list.
#[derive(Debug)]
pub(crate) enum Positions {
    /// Entries `0..n`.
    First(usize),
    /// These entries.
    Listed(Vec<usize>),
}

impl Default for Positions {
    fn default() -> Self {
        Positions::First(0)
    }
}

impl Positions {
    pub(crate) fn len(&self) -> usize {
        match self {
            Positions::First(n) => *n,
            Positions::Listed(list) => list.len(),
        }
    }

    /// The position of the `k`-th listed entry.
    pub(crate) fn get(&self, k: usize) -> usize {
        match self {
            Positions::First(_) => k,
            Positions::Listed(list) => list[k],
        }
    }

    /// Appends `other`'s positions.
    pub(crate) fn chain(self, other: Positions) -> Positions {
        let mut list: Vec<usize> = (0..self.len()).map(|k| self.get(k)).collect();
        list.extend((0..other.len()).map(|k| other.get(k)));
        Positions::Listed(list)
    }
}

#[cfg(test)]
mod tests {
    /// A ledger entry is what every flushed intent costs after its flush;
    /// keep it plain data of 32 bytes.
    #[test]
    fn an_entry_stays_32_bytes() {
        assert!(std::mem::size_of::<crate::flush::ledger::Entry>() <= 32);
    }
}
