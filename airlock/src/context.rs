//! Which scope and which policies are current: a per-thread stack of frames.
//!
//! A frame is pushed when a scope or a `with_policy` block is entered and
//! popped when its guard drops. Async code never keeps a frame across
//! `.await`: the future that owns a scope pushes its frame at the start of
//! every `poll` and pops it before returning, so a task that moves between
//! worker threads finds its scope on whichever thread polls it, and two tasks
//! interleaved on one thread never see each other's frames.
//!
//! The stack holds no intents: every intent goes straight to its scope's one
//! buffer ([`ScopeCore::push`]).

use std::cell::RefCell;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use crate::scope::core::{Current, ScopeCore};

/// A scope created only when something needs it: the scope a task runs in
/// on the in-process executor, which most tasks never touch (they enqueue
/// nothing, open no scope, never ask for `current()`).
pub(crate) trait LazyScope {
    /// Creates the scope; called at most once per push of the frame.
    fn create(&self) -> Arc<ScopeCore>;
}

struct Entry {
    id: u64,
    /// Shared, not copied, with whoever asks what is current (the enqueue
    /// path while policies run): an `Rc` clone costs no atomic operation,
    /// where copying a [`Current`] costs two.
    current: Rc<Current>,
    /// Creates `current.scope` on first use.
    lazy: Option<Rc<dyn LazyScope>>,
}

#[derive(Default)]
struct Stack {
    entries: Vec<Entry>,
    next_id: u64,
}

impl Stack {
    fn push(&mut self, current: Current, lazy: Option<Rc<dyn LazyScope>>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            current: Rc::new(current),
            lazy,
        });
        id
    }

    /// Removes the entry `id`: the top one, unless guards were dropped out of
    /// order (one was moved or leaked), in which case exactly that entry goes
    /// so the others stay correct.
    fn remove(&mut self, id: u64) -> Option<Entry> {
        match self.entries.last() {
            Some(top) if top.id == id => self.entries.pop(),
            _ => {
                let pos = self.entries.iter().rposition(|e| e.id == id)?;
                Some(self.entries.remove(pos))
            }
        }
    }
}

thread_local! {
    static STACK: RefCell<Stack> = const {
        RefCell::new(Stack { entries: Vec::new(), next_id: 0 })
    };
}

/// Pops its frame when dropped. Not `Send`: a frame belongs to the thread it
/// was pushed on.
pub(crate) struct FrameGuard {
    id: u64,
    _not_send: PhantomData<*const ()>,
}

/// Makes `current` current on this thread until the guard drops.
pub(crate) fn push(current: Current) -> FrameGuard {
    guard(STACK.with(|stack| stack.borrow_mut().push(current, None)))
}

/// Pushes a frame whose scope `lazy` creates on first use.
pub(crate) fn push_lazy(lazy: Rc<dyn LazyScope>) -> FrameGuard {
    guard(STACK.with(|stack| stack.borrow_mut().push(Current::default(), Some(lazy))))
}

fn guard(id: u64) -> FrameGuard {
    FrameGuard {
        id,
        _not_send: PhantomData,
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        // `try_with`: the guard may drop while thread-locals are being torn
        // down. The entry is dropped after the borrow ends: dropping the last
        // reference to its scope may run user code (the `Drop` of buffered
        // arguments), which may push frames of its own.
        let entry = STACK
            .try_with(|stack| stack.borrow_mut().remove(self.id))
            .ok()
            .flatten();
        drop(entry);
    }
}

/// What is current on this thread, if anything.
pub(crate) fn top() -> Option<Rc<Current>> {
    let top = STACK
        .try_with(|stack| {
            let mut stack = stack.borrow_mut();
            let entry = stack.entries.last_mut()?;
            Some(match entry.lazy.take() {
                None => Ok(Rc::clone(&entry.current)),
                Some(lazy) => Err((entry.id, lazy)),
            })
        })
        .ok()
        .flatten()?;
    match top {
        Ok(current) => Some(current),
        Err((id, lazy)) => {
            // Created with the stack released: starting a scope emits a
            // trace event, and a subscriber may look at the stack.
            let scope = lazy.create();
            let current = Rc::new(Current {
                chain: scope.chain.clone(),
                scope: Some(scope),
            });
            STACK.with(|stack| {
                let mut stack = stack.borrow_mut();
                if let Some(entry) = stack.entries.iter_mut().rfind(|e| e.id == id) {
                    entry.current = Rc::clone(&current);
                }
            });
            Some(current)
        }
    }
}

/// Runs `f` on what is current (`None`: nothing) with the stack borrowed,
/// saving the reference counts a [`top`] copy costs: the enqueue path. `f`
/// must run no user code (no policy, no `Drop` of arguments, no tracing
/// event). Keep `R` to two words: a larger result travels through memory,
/// which stalls the CPU on every enqueue (see `enqueue::Step`).
#[inline(always)]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Current>) -> R) -> R {
    let mut f = Some(f);
    let mut run = |current: Option<&Current>| (f.take().expect("called once"))(current);
    let ready = STACK.try_with(|stack| {
        let stack = stack.borrow();
        match stack.entries.last() {
            // A task's scope not created yet: below, with the stack released.
            Some(entry) if entry.lazy.is_some() => None,
            entry => Some(run(entry.map(|entry| &*entry.current))),
        }
    });
    match ready {
        Ok(Some(done)) => done,
        Ok(None) => run(top().as_deref()),
        // The thread is being torn down.
        Err(_) => run(None),
    }
}
