//! Pass 1 of the flush: every policy on every candidate's chain is asked,
//! innermost first, before anything is dispatched, so a policy that panics
//! dispatches nothing.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::buffer::Chains;
use crate::error::Error;
use crate::flush::ledger::{FateRef, Ledger, Positions};
use crate::flush::panic_message;
use crate::flush::prepared::PreparedFlush;
use crate::flush::record::Fate;
use crate::intent::Intent;
use crate::policy::chain::{in_policy, PolicyLink};
use crate::scope::core::ScopeCore;
use crate::scope::info::{DiscardReason, ScopePhase};

/// Filters `intents` (whose ledger entries are at `positions`), keeping the
/// ones every policy allows, in order.
pub(crate) fn filter(
    core: Arc<ScopeCore>,
    mut ledger: Ledger,
    intents: Vec<Intent>,
    chains: Chains,
    positions: Positions,
) -> Result<PreparedFlush, Error> {
    if chains.none() {
        return Ok(PreparedFlush::new(core, ledger, intents, positions));
    }
    // Where the refusing link sits in each intent's chain, if one refuses.
    let asked = std::panic::catch_unwind(AssertUnwindSafe(|| {
        in_policy(|| {
            intents
                .iter()
                .enumerate()
                .map(|(k, intent)| PolicyLink::first_refusal_at(chains.at(k).as_ref(), intent))
                .collect::<Vec<_>>()
        })
    }));
    let refusals = match asked {
        Ok(refusals) => refusals,
        Err(panic) => {
            let message = panic_message(&*panic);
            let reason = DiscardReason::PolicyPanicked(message.clone());
            let discarded = ledger.fate(Fate::Discarded(reason.clone()));
            ledger.set_each(&positions, discarded);
            tracing::error!(
                target: "airlock::flush",
                scope = %core.info,
                lost = intents.len(),
                %message,
                "a policy panicked while filtering; nothing was dispatched"
            );
            core.end(ScopePhase::Discarded, ledger, Some(reason));
            return Err(Error::PolicyPanicked {
                scope: core.info.clone(),
                message,
            });
        }
    };
    // Each refused intent gets the fate its policy gives (found by identity:
    // a policy usually drops many intents); the survivors stay in place.
    let mut dropped_by: Vec<(Arc<PolicyLink>, FateRef)> = Vec::new();
    let mut kept = Vec::with_capacity(refusals.iter().filter(|r| r.is_none()).count());
    let mut intents = intents;
    let mut k = 0;
    intents.retain(|intent| {
        let (at, chain) = (refusals[k], chains.at(k));
        let position = positions.get(k);
        k += 1;
        let Some(at) = at else {
            kept.push(position);
            return true;
        };
        let link = PolicyLink::nth(chain.as_ref(), at).expect("the refusing link is in the chain");
        tracing::debug!(target: "airlock::policy", %intent, policy = %link.name, "intent dropped by policy");
        let fate = match dropped_by.iter().find(|(l, _)| Arc::ptr_eq(l, link)) {
            Some(&(_, fate)) => fate,
            None => {
                let fate = ledger.fate(Fate::Dropped {
                    policy: Arc::clone(&link.name),
                    source: link.source.clone(),
                });
                dropped_by.push((Arc::clone(link), fate));
                fate
            }
        };
        ledger.set(position, fate);
        false
    });
    Ok(PreparedFlush::new(
        core,
        ledger,
        intents,
        Positions::Listed(kept),
    ))
}
