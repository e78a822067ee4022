//! How a nested scope flushes: each intent goes to the nearest ancestor that
//! captures it; those every ancestor lets through are dispatched from here.

use std::sync::Arc;

use crate::buffer::{Buffer, Chains};
use crate::error::Error;
use crate::flush::ledger::{Ledger, Positions};
use crate::flush::record::Fate;
use crate::intent::Intent;
use crate::scope::core::{Refused, ScopeCore};
use crate::scope::info::{DiscardReason, ScopePhase};

/// The intents of a nested scope that every ancestor lets through, with
/// their chains and ledger entries: this scope dispatches them itself.
pub(crate) struct Escaped {
    pub(crate) intents: Vec<Intent>,
    pub(crate) chains: Chains,
    pub(crate) positions: Positions,
}

/// Hands each intent of `core` (a nested scope, ending) to the nearest
/// ancestor whose behaviour captures it, noting each in `ledger`.
pub(crate) fn route_to_ancestors(
    core: &Arc<ScopeCore>,
    mut buffer: Buffer,
    ledger: &mut Ledger,
) -> Result<Escaped, Error> {
    let info = &core.info;
    let ancestors: Vec<&Arc<ScopeCore>> = core.ancestors().collect();
    let parent = ancestors[0];
    // Usually (the default behaviour) the parent captures everything, and
    // the buffer goes up whole.
    let first_escape = if parent.behavior.captures_all() {
        None
    } else {
        buffer
            .intents()
            .iter()
            .position(|intent| parent.behavior.allow_descendant_dispatch(info, intent))
    };
    let mut captured: Vec<(Buffer, Vec<usize>)> =
        ancestors.iter().map(|_| Default::default()).collect();
    let mut escaped_buffer = Buffer::default();
    let mut escaped_at = Vec::new();
    if let Some(first_escape) = first_escape {
        let captured_by: Vec<_> = ancestors
            .iter()
            .map(|a| ledger.fate(Fate::Captured { by: a.info.clone() }))
            .collect();
        let buffered = ledger.fate(Fate::Buffered);
        for (k, (at_time, intent, chain)) in buffer.drain_ordered().enumerate() {
            // The nearest ancestor that captures it (`None`: every one lets
            // it through), asking each behaviour once.
            let parent_takes = k < first_escape
                || (k > first_escape && !parent.behavior.allow_descendant_dispatch(info, &intent));
            let taker = if parent_takes {
                Some(0)
            } else {
                ancestors[1..]
                    .iter()
                    .position(|a| !a.behavior.allow_descendant_dispatch(info, &intent))
                    .map(|n| n + 1)
            };
            let fate = taker.map_or(buffered, |a| captured_by[a]);
            let at = ledger.note(&intent, info.id, fate);
            match taker {
                Some(a) => {
                    captured[a].0.push_at(intent, &chain, at_time);
                    captured[a].1.push(at);
                }
                None => {
                    escaped_buffer.push_at(intent, &chain, at_time);
                    escaped_at.push(at);
                }
            }
        }
    } else {
        let by = ledger.fate(Fate::Captured {
            by: parent.info.clone(),
        });
        ledger.note_all(buffer.intents(), info.id, by);
        captured[0] = (buffer, Vec::new());
    }

    let mut lost = Vec::new();
    let mut busy = None;
    for (a, (intents, at)) in captured.into_iter().enumerate() {
        if intents.len() == 0 {
            continue;
        }
        let whole = at.is_empty();
        let Err((refused, why)) = ancestors[a].capture(intents) else {
            continue;
        };
        let reason = match why {
            Refused::Busy => {
                busy.get_or_insert(refused.intents()[0].name());
                busy_reason()
            }
            _ => DiscardReason::ParentClosed,
        };
        let discarded = ledger.fate(Fate::Discarded(reason));
        if whole {
            ledger.set_each(&Positions::First(ledger.len()), discarded);
        } else {
            ledger.set_each(&Positions::Listed(at), discarded);
        }
        lost.extend(refused.intents().iter().map(ToString::to_string));
        tracing::error!(
            target: "airlock::flush",
            scope = %info,
            parent = %ancestors[a].info,
            lost = refused.len(),
            "a nested scope could not hand its intents to an enclosing scope (ended, or borrowed \
             by an IntentsGuard on this thread); they were discarded"
        );
    }
    if !lost.is_empty() {
        // Anything left to dispatch early is discarded too: the boundary that
        // should have decided is gone.
        let reason = match busy {
            Some(_) => busy_reason(),
            None => DiscardReason::ParentClosed,
        };
        let discarded = ledger.fate(Fate::Discarded(reason.clone()));
        ledger.set_each(&Positions::Listed(escaped_at), discarded);
        core.end(ScopePhase::Discarded, std::mem::take(ledger), Some(reason));
        if let Some(task) = busy {
            return Err(Error::ScopeBusy { task });
        }
        return Err(Error::ParentClosed {
            scope: info.clone(),
            parent: ancestors[0].info.clone(),
            lost,
        });
    }
    let (intents, chains) = escaped_buffer.into_parts();
    Ok(Escaped {
        intents,
        chains,
        positions: Positions::Listed(escaped_at),
    })
}

/// Why a nested scope's intents were discarded when an enclosing scope was
/// borrowed for inspection on this thread.
fn busy_reason() -> DiscardReason {
    DiscardReason::Requested(
        "an enclosing scope's intents were borrowed by an IntentsGuard on this thread when \
         this scope ended; drop the guard before ending nested scopes"
            .into(),
    )
}
