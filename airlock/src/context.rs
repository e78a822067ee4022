//! The per-thread stack of entered frames: which scope `enqueue` writes to,
//! and which policies an intent enqueued right now must pass.
//!
//! A frame is pushed when a scope or a `with_policy` block is entered and popped
//! when its guard drops. Async code never keeps a frame across `.await`: the
//! future that owns a scope pushes its frame at the start of every `poll` and
//! pops it before returning, so a task that moves between worker threads finds
//! its scope on whichever thread polls it, and two tasks interleaved on one
//! thread never see each other's frames.

use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::policy::chain::PolicyLink;
use crate::scope::core::ScopeCore;
use crate::scope::Scope;

/// One entered frame.
#[derive(Clone)]
pub(crate) struct Frame {
    /// The scope intents go to; `None` for a `with_policy` block outside any scope.
    pub(crate) scope: Option<Arc<ScopeCore>>,
    /// The policies in force here, innermost first.
    pub(crate) chain: Option<Arc<PolicyLink>>,
}

struct Entry {
    id: u64,
    frame: Frame,
    /// Settings of a scope created only when something needs it (see [`push_lazy`]).
    lazy: Option<Scope>,
}

impl Entry {
    /// Creates the lazy scope, if this entry has one that is not created yet.
    fn materialize(&mut self) {
        if let Some(settings) = self.lazy.take() {
            let core = ScopeCore::start(settings);
            self.frame.chain = core.chain.clone();
            self.frame.scope = Some(core);
        }
    }
}

thread_local! {
    static STACK: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

/// Pops its frame when dropped. Not `Send`: a frame belongs to the thread it was pushed on.
pub(crate) struct FrameGuard {
    id: u64,
    _not_send: PhantomData<*const ()>,
}

/// Pushes `frame` on this thread's stack until the guard drops.
pub(crate) fn push(frame: Frame) -> FrameGuard {
    let id = NEXT_ID.with(|next| {
        let id = next.get();
        next.set(id + 1);
        id
    });
    STACK.with(|stack| {
        stack.borrow_mut().push(Entry {
            id,
            frame,
            lazy: None,
        })
    });
    FrameGuard {
        id,
        _not_send: PhantomData,
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        // `try_with`: the guard may drop while thread-locals are being torn down.
        let _ = STACK.try_with(|stack| {
            let mut stack = stack.borrow_mut();
            match stack.last() {
                Some(top) if top.id == self.id => {
                    stack.pop();
                }
                _ => {
                    // Guards dropped out of order (e.g. one was moved or leaked):
                    // remove exactly this frame so the others stay correct.
                    if let Some(pos) = stack.iter().rposition(|e| e.id == self.id) {
                        stack.remove(pos);
                    }
                }
            }
        });
    }
}

/// Pushes a frame for a scope that is created only if something needs it:
/// an enqueue, a nested scope, `current()`. The in-process executor runs every
/// task in its own scope this way, so a task that enqueues nothing costs no
/// allocation. `settings` must be isolated: building it reads no frame.
pub(crate) fn push_lazy(settings: Scope) -> FrameGuard {
    debug_assert!(
        settings.isolated,
        "a lazy scope is built while the stack is borrowed"
    );
    let guard = push(Frame {
        scope: None,
        chain: None,
    });
    STACK.with(|stack| {
        if let Some(entry) = stack.borrow_mut().last_mut() {
            entry.lazy = Some(settings);
        }
    });
    guard
}

/// The scope of `guard`'s frame, if it was created.
pub(crate) fn materialized(guard: &FrameGuard) -> Option<Arc<ScopeCore>> {
    STACK.with(|stack| {
        let stack = stack.borrow();
        let entry = stack.iter().rev().find(|e| e.id == guard.id)?;
        entry.frame.scope.clone()
    })
}

/// A copy of the innermost frame, if any.
pub(crate) fn top() -> Option<Frame> {
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        let entry = stack.last_mut()?;
        entry.materialize();
        Some(entry.frame.clone())
    })
}

/// The scope `enqueue` would write to right now, and the chain it would use.
pub(crate) fn target() -> Option<(Arc<ScopeCore>, Option<Arc<PolicyLink>>)> {
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        let entry = stack.last_mut()?;
        entry.materialize();
        let frame = &entry.frame;
        Some((Arc::clone(frame.scope.as_ref()?), frame.chain.clone()))
    })
}
