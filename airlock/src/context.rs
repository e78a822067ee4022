//! The per-thread stack of entered frames: which scope `enqueue` writes to,
//! and which policies an intent enqueued right now must pass.
//!
//! A frame is pushed when a scope or a `with_policy` block is entered and popped
//! when its guard drops. Async code never keeps a frame across `.await`: the
//! future that owns a scope pushes its frame at the start of every `poll` and
//! pops it before returning, so a task that moves between worker threads finds
//! its scope on whichever thread polls it, and two tasks interleaved on one
//! thread never see each other's frames.
//!
//! This is on the hot path of every `enqueue` and every in-process task run,
//! so each operation touches the thread-local once.

use std::any::Any;
use std::borrow::Cow;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;
use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;

use crate::buffer::Buffer;
use crate::error::Error;
use crate::executor::Executor;
use crate::intent::{Intent, IntentId};
use crate::policy::chain::{is_in_policy, PolicyLink};
use crate::scope::active::is_inspecting;
use crate::scope::core::ScopeCore;
use crate::scope::{Scope, ScopePhase};
use crate::task::TaskDef;

/// One entered frame.
#[derive(Clone)]
pub(crate) struct Frame {
    /// The scope intents go to; `None` for a `with_policy` block outside any scope.
    pub(crate) scope: Option<Arc<ScopeCore>>,
    /// The policies in force here, innermost first.
    pub(crate) chain: Option<Arc<PolicyLink>>,
}

/// The settings of the scope a task runs in on the in-process executor,
/// shared between the executor's loop and the frame that creates the scope on
/// first use. The loop points it at each task in turn without touching the
/// thread-local stack, and reads back whether the task created its scope.
pub(crate) struct TaskSlot {
    name: Cell<&'static str>,
    cascade_depth: Cell<u32>,
    executor: Option<Arc<dyn Executor>>,
    created: Cell<bool>,
}

impl TaskSlot {
    fn settings(&self) -> Scope {
        let scope = Scope::new()
            .__isolated()
            .name(Cow::Borrowed(self.name.get()))
            .__cascade_depth(self.cascade_depth.get());
        match &self.executor {
            Some(executor) => scope.shared_executor(Arc::clone(executor)),
            None => scope,
        }
    }
}

struct Entry {
    id: u64,
    frame: Frame,
    /// A task's scope, created only when something needs it (see [`TaskFrame`]).
    lazy: Option<Rc<TaskSlot>>,
    /// Whether the frame was entered by the scope's owner (see [`push_owned`]),
    /// which buffers in `pending`.
    owned: bool,
    /// Intents enqueued through this entry and not yet in the scope's shared
    /// buffer.
    pending: Buffer,
}

impl Entry {
    /// Whether an intent may go to `pending` without the scope's lock: the
    /// owner's frame, whose scope stays open while it is pushed. A leaked
    /// guard (`mem::forget`) can outlive that, so the phase is asked too.
    #[inline]
    fn may_buffer_unlocked(&self) -> bool {
        self.owned
            && self
                .frame
                .scope
                .as_ref()
                .is_some_and(|scope| scope.phase() == ScopePhase::Open)
    }

    /// Creates the lazy scope, if this entry has one that is not created yet.
    #[inline]
    fn materialize(&mut self) {
        if self.lazy.is_some() {
            self.create_task_scope();
        }
    }

    #[cold]
    fn create_task_scope(&mut self) {
        if let Some(slot) = self.lazy.take() {
            slot.created.set(true);
            // Building an isolated scope reads no frame, so this is safe while
            // the stack is borrowed.
            let core = ScopeCore::start(slot.settings());
            self.frame.chain = core.chain.clone();
            self.frame.scope = Some(core);
            // The executor's loop owns the scope: it ends it only after the
            // entry is gone.
            self.owned = true;
        }
    }
}

#[derive(Default)]
struct Stack {
    entries: Vec<Entry>,
    next_id: u64,
}

impl Stack {
    fn push(&mut self, frame: Frame, lazy: Option<Rc<TaskSlot>>, owned: bool) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            frame,
            lazy,
            owned,
            pending: Buffer::default(),
        });
        id
    }

    /// Removes the entry `id`: the top one, unless guards were dropped out of
    /// order (one was moved or leaked), in which case exactly that entry goes so
    /// the others stay correct.
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = match self.entries.last() {
            Some(top) if top.id == id => self.entries.pop(),
            _ => {
                let pos = self.entries.iter().rposition(|e| e.id == id)?;
                Some(self.entries.remove(pos))
            }
        }?;
        Some(entry)
    }
}

thread_local! {
    static STACK: RefCell<Stack> = const {
        RefCell::new(Stack { entries: Vec::new(), next_id: 0 })
    };
}

/// Pops its frame when dropped. Not `Send`: a frame belongs to the thread it was pushed on.
pub(crate) struct FrameGuard {
    id: u64,
    _not_send: PhantomData<*const ()>,
}

/// Pushes `frame` on this thread's stack until the guard drops.
pub(crate) fn push(frame: Frame) -> FrameGuard {
    let id = STACK.with(|stack| stack.borrow_mut().push(frame, None, false));
    FrameGuard {
        id,
        _not_send: PhantomData,
    }
}

/// Pushes the frame of a scope entered by its owner, which cannot end the
/// scope until the guard drops (an `EnterGuard` borrows the `ActiveScope`; a
/// scoped future enters its own scope only while polling).
///
/// Intents enqueued through such a frame are buffered in the frame itself,
/// with no lock (the common case costs no atomic operation), and join the
/// scope's shared buffer when the guard drops, or earlier when this thread
/// reads the scope's intents. Until then other threads holding a
/// [`ScopeHandle`](crate::ScopeHandle) do not see them. Merging keeps FIFO
/// order, by intent id, with what arrived meanwhile (nested scopes ending,
/// other threads enqueueing through handles).
pub(crate) fn push_owned(frame: Frame) -> FrameGuard {
    let id = STACK.with(|stack| stack.borrow_mut().push(frame, None, true));
    FrameGuard {
        id,
        _not_send: PhantomData,
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        // `try_with`: the guard may drop while thread-locals are being torn down.
        // The entry is dropped after the borrow ends: dropping its scope may
        // run user code (the `Drop` of buffered arguments).
        let entry = STACK
            .try_with(|stack| stack.borrow_mut().remove(self.id))
            .ok()
            .flatten();
        if let Some(entry) = entry {
            if let (true, Some(scope)) = (entry.owned, &entry.frame.scope) {
                scope.owner_left();
            }
            entry.publish();
        }
    }
}

impl FrameGuard {
    /// Pops the frame of a scope whose owner ends it right away, handing
    /// over what it buffered instead of publishing it: the scope takes it
    /// as it closes, without locking twice.
    pub(crate) fn into_pending(self) -> Buffer {
        let id = self.id;
        std::mem::forget(self);
        let entry = STACK
            .try_with(|stack| stack.borrow_mut().remove(id))
            .ok()
            .flatten();
        // The entry (and its reference to the scope) drops here, outside
        // the stack's borrow.
        entry
            .map(|mut entry| entry.pending.take())
            .unwrap_or_default()
    }
}

impl Entry {
    /// Moves the intents buffered in this entry into its scope's buffer.
    fn publish(mut self) {
        if self.pending.is_empty() {
            return;
        }
        if let Some(scope) = self.frame.scope.as_ref() {
            scope.publish(self.pending.take());
        }
    }
}

/// Moves the intents this thread's frames hold for `scope` into its shared
/// buffer, so reading or ending the scope sees all of them.
pub(crate) fn publish_pending(scope: &Arc<ScopeCore>) {
    let pending: Vec<Buffer> = STACK
        .try_with(|stack| {
            let mut stack = stack.borrow_mut();
            if stack.entries.is_empty() {
                // The usual case: the scope ends after its frame is popped.
                return Vec::new();
            }
            stack
                .entries
                .iter_mut()
                .filter(|e| {
                    e.frame
                        .scope
                        .as_ref()
                        .is_some_and(|s| Arc::ptr_eq(s, scope))
                })
                .filter(|e| !e.pending.is_empty())
                .map(|e| e.pending.take())
                .collect()
        })
        .unwrap_or_default();
    for pending in pending {
        scope.publish(pending);
    }
}

/// The frame tasks run in on the in-process executor, one after another. Each
/// task gets its own outermost scope, but only if it needs one (it enqueues,
/// opens a scope, asks for `current()`), so a task with no effects of its own
/// costs no scope and no allocation; and the frame is reused from task to
/// task until one of them creates its scope.
pub(crate) struct TaskFrame {
    slot: Rc<TaskSlot>,
    guard: Option<FrameGuard>,
}

impl TaskFrame {
    /// A frame whose task scopes dispatch with `executor` (the configured one
    /// when `None`). Nothing is pushed until [`enter`](Self::enter).
    pub(crate) fn new(executor: Option<Arc<dyn Executor>>) -> Self {
        let spare = match executor {
            None => SPARE_SLOT.try_with(Cell::take).ok().flatten(),
            Some(_) => None,
        };
        let slot = spare.unwrap_or_else(|| {
            Rc::new(TaskSlot {
                name: Cell::new(""),
                cascade_depth: Cell::new(0),
                executor,
                created: Cell::new(false),
            })
        });
        TaskFrame { slot, guard: None }
    }

    /// Makes the frame current for the task `name`, `cascade_depth` levels deep.
    pub(crate) fn enter(&mut self, name: &'static str, cascade_depth: u32) {
        self.slot.name.set(name);
        self.slot.cascade_depth.set(cascade_depth);
        if self.guard.is_none() {
            let frame = Frame {
                scope: None,
                chain: None,
            };
            let slot = Some(Rc::clone(&self.slot));
            let id = STACK.with(|stack| stack.borrow_mut().push(frame, slot, false));
            self.guard = Some(FrameGuard {
                id,
                _not_send: PhantomData,
            });
        }
    }

    /// After a task: the scope it created, if any, and what the task
    /// buffered in it, with the frame popped so the scope can end outside it.
    /// Otherwise the frame stays for the next task.
    pub(crate) fn leave(&mut self) -> Option<(Arc<ScopeCore>, Buffer)> {
        if !self.slot.created.replace(false) {
            return None;
        }
        let guard = self.guard.take()?;
        let id = guard.id;
        std::mem::forget(guard);
        let mut entry = STACK.with(|stack| stack.borrow_mut().remove(id))?;
        let scope = entry.frame.scope.take()?;
        Some((scope, entry.pending.take()))
    }
}

impl Drop for TaskFrame {
    fn drop(&mut self) {
        // Pop the frame first: its entry holds the other reference to the slot.
        drop(self.guard.take());
        if self.slot.executor.is_none() && Rc::strong_count(&self.slot) == 1 {
            self.slot.created.set(false);
            let slot = Rc::clone(&self.slot);
            let _ = SPARE_SLOT.try_with(|spare| spare.set(Some(slot)));
        }
    }
}

thread_local! {
    /// The slot of the last dispatch loop on this thread that used the
    /// configured executor, kept so the next one allocates none (a stream of
    /// small scopes runs one loop each).
    static SPARE_SLOT: Cell<Option<Rc<TaskSlot>>> = const { Cell::new(None) };
}

/// A copy of the innermost frame, if any.
pub(crate) fn top() -> Option<Frame> {
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        let entry = stack.entries.last_mut()?;
        entry.materialize();
        Some(entry.frame.clone())
    })
}

/// Where `enqueue` put an intent, or why it could not.
pub(crate) enum Target {
    /// No scope is current.
    NoScope,
    /// This thread is inspecting the current scope's intents.
    Busy,
    /// Buffered in the current scope.
    Pushed(IntentId),
    /// The current scope has ended, or is full.
    Closed(Error),
    /// A policy in force checks intents at enqueue (or trace logging is on):
    /// it must see the intent before it is buffered, and policy (or
    /// subscriber) code may touch this stack, so the caller finishes with the
    /// stack released.
    Deferred(Arc<ScopeCore>),
}

/// Takes the intent in `slot` into the current scope: fills in what it
/// inherits from the scope (scope id, policy chain, cascade depth) and, in the
/// common case of no enqueue-time policy check and no trace logging (policies
/// that only filter at flush are fine), buffers it without leaving
/// the borrow (no reference count bumped, one thread-local access per
/// enqueue). Unless it was buffered, the intent is left in `slot` (its
/// arguments are dropped by the caller, outside the stack's borrow); passing
/// a slot rather than the intent saves copying it in and out.
pub(crate) fn enqueue_target(slot: &mut Option<Intent>) -> Target {
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        let Some(entry) = stack.entries.last_mut() else {
            return Target::NoScope;
        };
        entry.materialize();
        let frame = &entry.frame;
        let Some(scope) = frame.scope.as_ref() else {
            return Target::NoScope;
        };
        if is_inspecting(scope.info.id) {
            return Target::Busy;
        }
        let Some(intent) = slot.as_mut() else {
            return Target::NoScope;
        };
        intent.chain = frame.chain.clone();
        intent.scope = Some(scope.info.id);
        intent.cascade_depth = scope.cascade_depth;
        if frame.chain.as_ref().is_some_and(|c| c.checks_enqueue) || trace_enabled() {
            return Target::Deferred(Arc::clone(scope));
        }
        if entry.may_buffer_unlocked() {
            if scope.is_full(entry.pending.as_slice().len()) {
                return Target::Closed(scope.full_error(intent));
            }
            scope.order(intent);
            let id = intent.id();
            entry.pending.push(slot.take().expect("checked above"));
            scope.note_owner_pending(entry.pending.as_slice().len());
            return Target::Pushed(id);
        }
        match scope.try_push(slot.take().expect("checked above")) {
            Ok(id) => Target::Pushed(id),
            Err((refused, intent)) => {
                let error = scope.refusal_error(refused, &intent);
                *slot = Some(intent);
                Target::Closed(error)
            }
        }
    })
}

/// The common case of [`enqueue_target`], for an intent not built yet: when
/// the current frame is its scope owner's, nothing checks intents at enqueue
/// and trace logging is off, builds the intent right in the frame's buffer
/// and returns its id. Otherwise hands the arguments back for the general
/// path, which decides (and says why it refuses).
///
/// Generic over the arguments so they are boxed only here, just before the
/// intent is written: a freshly made `Box<dyn Any>` handed through a few
/// calls is copied with loads wider than the stores that made it, which
/// stalls the CPU on every enqueue (failed store forwarding).
#[inline]
pub(crate) fn buffer_new<A: Any + Send + Sync>(
    task: &'static TaskDef,
    args: A,
    origin: &'static Location<'static>,
) -> Result<IntentId, A> {
    if is_in_policy() || trace_enabled() {
        return Err(args);
    }
    STACK.with(|stack| {
        let mut stack = stack.borrow_mut();
        let Some(entry) = stack.entries.last_mut() else {
            return Err(args);
        };
        entry.materialize();
        let Some(scope) = entry.frame.scope.as_ref() else {
            return Err(args);
        };
        if !entry.may_buffer_unlocked()
            || entry.frame.chain.as_ref().is_some_and(|c| c.checks_enqueue)
            || is_inspecting(scope.info.id)
            || scope.is_full(entry.pending.as_slice().len())
        {
            return Err(args);
        }
        let id = scope.next_id();
        let chain = entry.frame.chain.clone();
        let scope = (scope.info.id, scope.cascade_depth);
        let core = entry.frame.scope.as_ref().expect("checked above");
        entry
            .pending
            .push_with(|| Intent::buffered(id, task, Box::new(args), origin, chain, scope));
        core.note_owner_pending(entry.pending.as_slice().len());
        Ok(id)
    })
}

/// Whether trace logging is on anywhere; `level_enabled!` reads only the
/// global maximum level, no subscriber code.
#[inline]
fn trace_enabled() -> bool {
    tracing::level_enabled!(tracing::Level::TRACE)
}
