//! The flush: how a scope's buffer becomes dispatched work, in two passes.
//!
//! 1. **Prepare** (logical end): the scope closes, so nothing can be added. A
//!    nested scope routes each intent to the ancestor that captures it. The
//!    outermost scope (and any intent every ancestor lets through early) is then
//!    *filtered*: every policy on the intent's chain is asked, innermost first.
//!    Filtering finishes for every intent before anything is dispatched, so a
//!    policy that panics dispatches nothing.
//! 2. **Dispatch** (physical): the survivors go to the executor in FIFO order.
//!    The two steps are separate ([`PreparedFlush`]) so an integration can end a
//!    scope now and dispatch later, e.g. after a transaction commits.
//!
//! Afterwards the scope keeps a compact ledger entry per intent saying what became
//! of it, read as [`IntentRecord`]s in the [`FlushReport`].

mod filter;
pub(crate) mod ledger;
#[cfg(any(feature = "tower", feature = "sqlx"))]
pub(crate) mod must_finish;
mod prepared;
pub(crate) mod record;
pub(crate) mod report;
mod route;

use std::sync::Arc;

use crate::context;
use crate::error::Error;
use crate::flush::ledger::{Ledger, Positions};
use crate::intent::Intent;
use crate::scope::core::{Current, ScopeCore};
use crate::scope::info::{DiscardReason, ScopePhase};

pub use prepared::PreparedFlush;
pub use record::{Fate, IntentRecord};
pub use report::{DispatchFailure, FlushReport};

/// Ends `core` logically and filters it (pass 1 of 2; see the module docs).
pub(crate) fn prepare(core: Arc<ScopeCore>) -> Result<PreparedFlush, Error> {
    let buffer = core.close()?;
    let mut ledger = Ledger::with_capacity(buffer.len());
    if core.parent.is_some() {
        let escaped = route::route_to_ancestors(&core, buffer, &mut ledger)?;
        filter::filter(
            core,
            ledger,
            escaped.intents,
            escaped.chains,
            escaped.positions,
        )
    } else {
        let buffered = ledger.fate(Fate::Buffered);
        ledger.note_all(buffer.intents(), core.info.id, buffered);
        let positions = Positions::First(buffer.len());
        let (intents, chains) = buffer.into_parts();
        filter::filter(core, ledger, intents, chains, positions)
    }
}

/// Ends `core` by discarding everything it buffered.
pub(crate) fn discard(core: &Arc<ScopeCore>, reason: DiscardReason) -> FlushReport {
    let (intents, _chains) = match core.close_for_discard() {
        Ok(buffer) => buffer.into_parts(),
        Err(ledger) => return FlushReport::new(core.info.clone(), ledger),
    };
    if intents.is_empty() {
        tracing::trace!(target: "airlock::scope", scope = %core.info, %reason, "scope discarded");
    } else {
        tracing::debug!(
            target: "airlock::scope",
            scope = %core.info,
            lost = intents.len(),
            %reason,
            "scope discarded its intents"
        );
    }
    let ledger = end_discarded(core, &intents, reason);
    // The arguments' `Drop` is user code: it runs outside the lock, with the
    // discarded scope current, so what it enqueues is refused (the scope has
    // ended) rather than slipping into the parent scope.
    let _entered = context::push(Current {
        scope: Some(Arc::clone(core)),
        chain: core.chain.clone(),
    });
    drop(intents);
    FlushReport::new(core.info.clone(), ledger)
}

/// Ends `core` as discarded, noting `intents` (taken from its buffer) as
/// discarded for `reason`.
pub(crate) fn end_discarded(
    core: &ScopeCore,
    intents: &[Intent],
    reason: DiscardReason,
) -> Arc<Ledger> {
    let mut ledger = Ledger::with_capacity(intents.len());
    let discarded = ledger.fate(Fate::Discarded(reason.clone()));
    ledger.note_all(intents, core.info.id, discarded);
    core.end(ScopePhase::Discarded, ledger, Some(reason))
}

pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic payload".to_owned())
}

#[cfg(test)]
mod tests {
    /// Every buffered intent costs this much memory; keep it from growing by
    /// accident (a field added inline instead of boxed).
    #[test]
    fn buffered_intents_stay_small() {
        assert!(std::mem::size_of::<crate::Intent>() <= 64);
    }
}
