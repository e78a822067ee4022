//! Model-based property tests: random *programs* of nested scopes, local
//! policies and enqueues run against airlock for real, and what happened is
//! compared with a small reference model of what must happen.
//!
//! # The programs
//! ```text
//! program := scope                      (the outermost scope; never detached)
//! scope   := Scope { policies: [policy; 0..=2], always_flush, skip_empty,
//!                    lets_through: none | task, detached,
//!                    body: [op], ending: Ok | Err | Panic }
//! op      := Enqueue(task A | B | Fail, value 0..4, via_handle)
//!          | WithPolicy(policy, [op])   (airlock::with_policy / with_policy_async)
//!          | scope                      (a nested scope)
//! policy  := DropAll | AssertNoEffects | BlockTasks(task) (drops at flush)
//!          | BlockTasks(task).reject_at_enqueue()
//!          | RejectValue(v) (custom: on_enqueue refuses value v)
//!          | DropValue(v)   (custom: allows refuses value v)
//!          | PanicOn(v)     (custom: allows panics on value v)
//! ```
//! A scope runs its body, then ends as its `ending` says: `Ok(())`, an
//! `Err(AppError::Failed)` (the application's own error, never one of
//! airlock's), or a panic. Bodies return `Result<(), AppError>`, so airlock's
//! own errors reach the caller as `AppError::Airlock`. User code handles
//! everything: a rejected enqueue is noted and the program goes on, and a
//! nested scope's error or panic is caught by its parent, which goes on. A
//! scope flushes if it ends `Ok`, or whatever its ending if it has the
//! `AlwaysFlush` behaviour; a `skip_empty` scope's behaviour looks at the scope
//! as it decides, and discards instead if the scope holds nothing. An enqueue
//! `via_handle` runs on another thread, through a handle of the current scope
//! (joined at once): the scope's own policies apply, not the `with_policy`
//! blocks of the thread that holds the handle. A scope that `lets_through` a
//! task answers `true` to `allow_descendant_dispatch` for it: a descendant's
//! intent of that task goes past it, to the next ancestor that captures it, or
//! is dispatched early (at the descendant's flush) if every ancestor lets it
//! through.
//!
//! # The reference model
//! [`expect`] is a pure function of the program. For every enqueue it works out
//! the policies in force (innermost first: the enclosing `with_policy` blocks
//! and scope policies; a detached scope keeps only the `with_policy` blocks
//! around it) and the scopes above it, from the scope it was enqueued in up to
//! the outermost scope or the nearest detached one. From that alone:
//! * the enqueue is rejected iff a policy in force rejects it at enqueue, with
//!   a `PolicyViolation` naming the innermost such policy;
//! * an accepted intent climbs: a scope that discards ends its journey; a
//!   scope that flushes hands it to the nearest ancestor that does not let it
//!   through (`Captured`), or, with no such ancestor, is where it is
//!   *dispatched from*: `Dropped` by the innermost refusing policy in force,
//!   else `Dispatched`, exactly once, when that scope ends, in enqueue order
//!   among what that scope dispatches;
//! * so without early dispatch: dispatched iff every scope up to the outermost
//!   (or detached) one flushed and every policy in force allows it;
//! * a scope's flush filters all its candidates before dispatching any: if a
//!   policy panics on one of them (a `PanicOn` reached before any policy
//!   refuses), none is dispatched; they are discarded with the scope
//!   (`PolicyPanicked`), and a body that returned `Ok` gets
//!   `Err(AppError::Airlock(Error::PolicyPanicked))`. What the scope already
//!   handed to its ancestors goes on;
//! * the executor runs a scope's survivors in order and stops at the first
//!   that fails (task `Fail` runs, then returns an error): it is `Failed`, the
//!   rest `NotAttempted` (and handed back in the error), and a body that
//!   returned `Ok` gets `Err(AppError::Airlock(Error::Dispatch))`.
//!
//! The checks then hold the real run to: at most one dispatch per intent, the
//! dispatched set, FIFO order per dispatching scope, rejected enqueues (error
//! variant and policy) never dispatched, each scope's result, phase, discard
//! reason, its buffer at the end of its body and its `records()` fates, and
//! the outermost scope's `FlushReport`.
//!
//! The sync variant runs nested scopes with `Scope::run` and the outermost one
//! with `Scope::start`, `ActiveScope::in_scope` and `ActiveScope::end`, as an
//! integration would. The async variant runs the same grammar with
//! `Scope::run_async` and `with_policy_async`, yielding after every enqueue,
//! and runs two programs at once interleaved on one current-thread runtime;
//! there task B is async (the in-process executor's async path awaits it).
//!
//! 256 cases per property by default (a few seconds). A long run (about a
//! minute and a half of CPU in a debug build):
//! `PROPTEST_CASES=20000 cargo test -p airlock-tests --test model`.
//! A failure is shrunk to a minimal program and its seed saved in
//! `airlock-tests/proptest-regressions/model.txt`, which is replayed first on
//! every later run: commit that file with the fix.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::task::{Context, Poll};

use airlock::{
    AlwaysFlush, AssertNoEffects, BlockTasks, DiscardReason, DropAll, Error, Fate, FlushReport,
    Intent, IntentId, Outcome, Policy, PolicySource, PolicyViolation, Scope, ScopeBehavior,
    ScopeHandle, ScopeId, ScopeInfo, ScopePhase, ScopeView, TaskDef,
};
use airlock_tests::{failed, AppError};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};

// ---------------------------------------------------------------------------
// Tasks: each dispatch appends (task, seq, value) to the log of its run.

type Dispatch = (&'static str, usize, u8);

fn log() -> &'static Mutex<HashMap<u64, Vec<Dispatch>>> {
    static LOG: OnceLock<Mutex<HashMap<u64, Vec<Dispatch>>>> = OnceLock::new();
    LOG.get_or_init(Default::default)
}

fn log_dispatch(run: u64, entry: Dispatch) {
    let mut log = log().lock().unwrap_or_else(|p| p.into_inner());
    log.entry(run).or_default().push(entry);
}

/// Takes (and forgets) what run `run` dispatched, in order.
fn take_log(run: u64) -> Vec<Dispatch> {
    let mut log = log().lock().unwrap_or_else(|p| p.into_inner());
    log.remove(&run).unwrap_or_default()
}

/// Task A of every program.
#[airlock::task(name = "model.a")]
fn probe_a(run: u64, seq: u64, value: u8) {
    log_dispatch(run, ("model.a", seq as usize, value));
}

/// Task B of the sync programs.
#[airlock::task(name = "model.b")]
fn probe_b(run: u64, seq: u64, value: u8) {
    log_dispatch(run, ("model.b", seq as usize, value));
}

/// The task that fails: it runs (and is logged), then returns an error, so
/// the executor stops the flush there.
#[airlock::task(name = "model.fail")]
fn probe_fail(run: u64, seq: u64, value: u8) -> std::io::Result<()> {
    log_dispatch(run, ("model.fail", seq as usize, value));
    Err(std::io::Error::other(TASK_FAILURE))
}

/// What [`probe_fail()`] fails with.
const TASK_FAILURE: &str = "planned task failure";

/// Task B of the async programs: really suspends, so the flush awaits it.
#[airlock::task(name = "model.b_async")]
async fn probe_b_async(run: u64, seq: u64, value: u8) {
    tokio::task::yield_now().await;
    log_dispatch(run, ("model.b_async", seq as usize, value));
}

// ---------------------------------------------------------------------------
// Programs.

/// How many distinct values an enqueue carries (what the value policies test).
const VALUES: u8 = 4;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    A,
    B,
    /// Fails when run.
    Fail,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PolicyKind {
    DropAll,
    AssertNoEffects,
    /// `BlockTasks::of(task)`: drops it at flush.
    Block(Task),
    /// `BlockTasks::of(task).reject_at_enqueue()`.
    BlockAtEnqueue(Task),
    /// Custom: `on_enqueue` refuses this value.
    RejectValue(u8),
    /// Custom: `allows` refuses this value.
    DropValue(u8),
    /// Custom: `allows` panics on this value.
    PanicOn(u8),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Ok,
    Err,
    Panic,
}

#[derive(Debug, Clone)]
enum Op {
    /// `seq` numbers the enqueues of a program in the order they run.
    Enqueue {
        task: Task,
        value: u8,
        seq: usize,
        /// Enqueued from another thread through a handle of the current scope.
        via_handle: bool,
    },
    WithPolicy(PolicyKind, Vec<Op>),
    Scope(ScopeSpec),
}

#[derive(Debug, Clone)]
struct ScopeSpec {
    /// Numbers the scopes of a program in the order they start.
    idx: usize,
    policies: Vec<PolicyKind>,
    always_flush: bool,
    /// Its behaviour discards, rather than flush, a scope holding nothing.
    skip_empty: bool,
    /// Lets descendants' intents of this task go past it (early dispatch).
    lets_through: Option<Task>,
    detached: bool,
    ending: Ending,
    body: Vec<Op>,
}

impl ScopeSpec {
    /// Why the scope discards, when its ending and its behaviour say so;
    /// `holds`: whether it holds any intent as it decides.
    fn discard_reason(&self, holds: bool) -> Option<DiscardReason> {
        let wants = self.ending == Ending::Ok || self.always_flush;
        if wants && (holds || !self.skip_empty) {
            return None;
        }
        Some(match self.ending {
            Ending::Ok => DiscardReason::Requested("the behaviour declined to flush".into()),
            Ending::Err => DiscardReason::Error,
            Ending::Panic => DiscardReason::Panic,
        })
    }
}

/// Numbers enqueues and scopes in execution (pre-)order; returns the counts.
fn number(program: &mut ScopeSpec) -> (usize, usize) {
    fn scope(spec: &mut ScopeSpec, seqs: &mut usize, idxs: &mut usize) {
        spec.idx = *idxs;
        *idxs += 1;
        ops(&mut spec.body, seqs, idxs);
    }
    fn ops(ops_: &mut [Op], seqs: &mut usize, idxs: &mut usize) {
        for op in ops_ {
            match op {
                Op::Enqueue { seq, .. } => {
                    *seq = *seqs;
                    *seqs += 1;
                }
                Op::WithPolicy(_, body) => ops(body, seqs, idxs),
                Op::Scope(spec) => scope(spec, seqs, idxs),
            }
        }
    }
    let (mut seqs, mut idxs) = (0, 0);
    scope(program, &mut seqs, &mut idxs);
    (seqs, idxs)
}

// ---------------------------------------------------------------------------
// Strategies.

fn task() -> impl Strategy<Value = Task> {
    prop_oneof![4 => Just(Task::A), 4 => Just(Task::B), 1 => Just(Task::Fail)]
}

fn policy_kind() -> impl Strategy<Value = PolicyKind> {
    // The all-or-nothing policies are rarer: each one silences its subtree.
    prop_oneof![
        1 => Just(PolicyKind::DropAll),
        1 => Just(PolicyKind::AssertNoEffects),
        2 => task().prop_map(PolicyKind::Block),
        2 => task().prop_map(PolicyKind::BlockAtEnqueue),
        2 => (0..VALUES).prop_map(PolicyKind::RejectValue),
        2 => (0..VALUES).prop_map(PolicyKind::DropValue),
        1 => (0..VALUES).prop_map(PolicyKind::PanicOn),
    ]
}

fn scope_policies() -> impl Strategy<Value = Vec<PolicyKind>> {
    // Mostly none, so that a good share of programs dispatch something.
    prop_oneof![3 => Just(Vec::new()), 2 => vec(policy_kind(), 1..=2)]
}

fn ending() -> impl Strategy<Value = Ending> {
    prop_oneof![4 => Just(Ending::Ok), 1 => Just(Ending::Err), 1 => Just(Ending::Panic)]
}

fn spec(
    detached: impl Strategy<Value = bool>,
    body: impl Strategy<Value = Vec<Op>>,
) -> impl Strategy<Value = ScopeSpec> {
    (
        scope_policies(),
        prop::bool::weighted(0.2),
        prop::bool::weighted(0.2),
        prop_oneof![4 => Just(None), 1 => task().prop_map(Some)],
        detached,
        ending(),
        body,
    )
        .prop_map(
            |(policies, always_flush, skip_empty, lets_through, detached, ending, body)| {
                ScopeSpec {
                    idx: 0,
                    policies,
                    always_flush,
                    skip_empty,
                    lets_through,
                    detached,
                    ending,
                    body,
                }
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let enqueue =
        (task(), 0..VALUES, prop::bool::weighted(0.25)).prop_map(|(task, value, via_handle)| {
            Op::Enqueue {
                task,
                value,
                seq: 0,
                via_handle,
            }
        });
    // Up to 4 levels of blocks and scopes, about 48 nodes, 4 ops per body.
    enqueue.prop_recursive(4, 48, 4, |inner| {
        prop_oneof![
            (policy_kind(), vec(inner.clone(), 0..5))
                .prop_map(|(policy, body)| Op::WithPolicy(policy, body)),
            spec(prop::bool::weighted(0.2), vec(inner, 0..5)).prop_map(Op::Scope),
        ]
    })
}

fn program() -> impl Strategy<Value = ScopeSpec> {
    spec(Just(false), vec(op(), 0..6)).prop_map(|mut program| {
        number(&mut program);
        program
    })
}

// ---------------------------------------------------------------------------
// The reference model: a pure function of the program.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Local,
    Scope(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    kind: PolicyKind,
    source: Source,
}

impl PolicyKind {
    fn rejects(self, task: Task, value: u8) -> bool {
        match self {
            PolicyKind::AssertNoEffects => true,
            PolicyKind::BlockAtEnqueue(blocked) => task == blocked,
            PolicyKind::RejectValue(v) => value == v,
            _ => false,
        }
    }

    fn allows(self, task: Task, value: u8) -> bool {
        match self {
            PolicyKind::DropAll | PolicyKind::AssertNoEffects => false,
            PolicyKind::Block(blocked) | PolicyKind::BlockAtEnqueue(blocked) => task != blocked,
            PolicyKind::DropValue(v) => value != v,
            _ => true,
        }
    }

    fn panics(self, value: u8) -> bool {
        self == PolicyKind::PanicOn(value)
    }
}

/// The message a `PanicOn` policy panics with.
fn policy_panic_message(value: u8) -> String {
    format!("planned policy panic on value {value}")
}

/// Where one enqueue happened.
#[derive(Debug)]
struct EnqueueCtx {
    task: Task,
    value: u8,
    /// The policies in force, innermost first.
    chain: Vec<Link>,
    /// The scopes it may climb: the one it was enqueued in first, the
    /// outermost (or the nearest detached) scope last.
    path: Vec<usize>,
}

#[derive(Debug, Clone, PartialEq)]
enum ModelFate {
    Dispatched,
    Failed,
    NotAttempted,
    Dropped(Link),
    Captured { by: usize },
    Discarded(DiscardReason),
}

/// What the model says about one program.
#[derive(Debug)]
struct Expected {
    /// Per seq: `None` if accepted, else the policy that rejects it.
    rejected_by: Vec<Option<Link>>,
    /// Per seq: the scope that ran it (dispatched it, or saw it fail), if any.
    dispatched_by: Vec<Option<usize>>,
    /// The seqs, in the order they are dispatched.
    log: Vec<usize>,
    /// Per scope: `(seq, own, fate)` of every intent it held, in order.
    records: Vec<Vec<(usize, bool, ModelFate)>>,
    /// Per scope: why it discarded, if it did.
    discarded: Vec<Option<DiscardReason>>,
    /// Per scope: the seqs its failed dispatch never attempted, if it failed.
    dispatch_failed: Vec<Option<Vec<usize>>>,
    /// Per scope, its spec.
    scopes: Vec<ScopeSpec>,
}

fn expect(program: &ScopeSpec) -> Expected {
    // One walk collects the context of every enqueue, the scopes, and the
    // order in which scopes end (post-order).
    struct Walk {
        enqueues: Vec<EnqueueCtx>,
        scopes: Vec<ScopeSpec>,
        ends: Vec<usize>,
    }
    fn scope(spec: &ScopeSpec, chain: &[Link], path: &[usize], w: &mut Walk) {
        // A detached scope starts a new path and keeps only the local blocks.
        let base: Vec<Link> = if spec.detached {
            chain
                .iter()
                .copied()
                .filter(|l| l.source == Source::Local)
                .collect()
        } else {
            chain.to_vec()
        };
        let mut own_chain: Vec<Link> = spec
            .policies
            .iter()
            .map(|&kind| Link {
                kind,
                source: Source::Scope(spec.idx),
            })
            .collect();
        own_chain.extend(base);
        let mut own_path = vec![spec.idx];
        if !spec.detached {
            own_path.extend_from_slice(path);
        }
        w.scopes.push(spec.clone());
        ops(&spec.body, &own_chain, &own_chain, &own_path, w);
        w.ends.push(spec.idx);
    }
    /// `scope_chain`: the chain of the current scope itself, which a handle
    /// enqueues under (without the `with_policy` blocks opened inside it).
    fn ops(body: &[Op], chain: &[Link], scope_chain: &[Link], path: &[usize], w: &mut Walk) {
        for op in body {
            match op {
                Op::Enqueue {
                    task,
                    value,
                    seq,
                    via_handle,
                } => {
                    assert_eq!(*seq, w.enqueues.len(), "enqueues are numbered in order");
                    let chain = if *via_handle { scope_chain } else { chain };
                    w.enqueues.push(EnqueueCtx {
                        task: *task,
                        value: *value,
                        chain: chain.to_vec(),
                        path: path.to_vec(),
                    });
                }
                Op::WithPolicy(kind, inner) => {
                    let mut local = vec![Link {
                        kind: *kind,
                        source: Source::Local,
                    }];
                    local.extend_from_slice(chain);
                    ops(inner, &local, scope_chain, path, w);
                }
                Op::Scope(spec) => scope(spec, chain, path, w),
            }
        }
    }
    let mut w = Walk {
        enqueues: Vec::new(),
        scopes: Vec::new(),
        ends: Vec::new(),
    };
    scope(program, &[], &[], &mut w);
    w.scopes.sort_by_key(|s| s.idx);
    let rejected_by: Vec<Option<Link>> = w
        .enqueues
        .iter()
        .map(|e| {
            e.chain
                .iter()
                .copied()
                .find(|l| l.kind.rejects(e.task, e.value))
        })
        .collect();
    // The nearest scope above `path[k]` on an intent's path that does not
    // let its task through: the one that takes it when `path[k]` flushes.
    let taker = |e: &EnqueueCtx, k: usize| {
        (k + 1..e.path.len()).find(|&a| w.scopes[e.path[a]].lets_through != Some(e.task))
    };
    // Whether each scope discards, decided in the order scopes end: a
    // `skip_empty` scope's decision depends on what reached it, which
    // depends only on the decisions of the scopes below it, taken before.
    let mut discards: Vec<Option<DiscardReason>> = vec![None; w.scopes.len()];
    for &s in &w.ends {
        let holds = w.enqueues.iter().enumerate().any(|(seq, e)| {
            let mut k = 0;
            rejected_by[seq].is_none()
                && e.path.contains(&s)
                && loop {
                    if e.path[k] == s {
                        break true;
                    }
                    if discards[e.path[k]].is_some() {
                        break false;
                    }
                    match taker(e, k) {
                        Some(next) => k = next,
                        None => break false,
                    }
                }
        });
        discards[s] = w.scopes[s].discard_reason(holds);
    }

    let mut expected = Expected {
        rejected_by: Vec::new(),
        dispatched_by: Vec::new(),
        log: Vec::new(),
        records: w.scopes.iter().map(|_| Vec::new()).collect(),
        discarded: discards.clone(),
        dispatch_failed: vec![None; w.scopes.len()],
        scopes: w.scopes.clone(),
    };
    // Per scope: the intents its flush filters, as (seq, index of the record).
    let mut candidates: Vec<Vec<(usize, usize)>> = vec![Vec::new(); expected.scopes.len()];
    for (seq, e) in w.enqueues.iter().enumerate() {
        let rejected_by = rejected_by[seq];
        // An accepted intent climbs from the scope it was enqueued in,
        // `path[0]`, until a scope discards it or filters it.
        let mut at = Some(0).filter(|_| rejected_by.is_none());
        while let Some(k) = at {
            let s = e.path[k];
            // The nearest ancestor that does not let it through takes it.
            let taker = taker(e, k);
            let fate = if let Some(reason) = discards[s].clone() {
                at = None;
                ModelFate::Discarded(reason)
            } else if let Some(taker) = taker {
                at = Some(taker);
                ModelFate::Captured { by: e.path[taker] }
            } else {
                at = None;
                candidates[s].push((seq, expected.records[s].len()));
                ModelFate::Dispatched // until the filter below says otherwise
            };
            expected.records[s].push((seq, k == 0, fate));
        }
        expected.rejected_by.push(rejected_by);
        expected.dispatched_by.push(None);
    }
    // Each scope's flush filters its candidates, all of them before it
    // dispatches any: the first policy (innermost first) that refuses or
    // panics decides for an intent; one panic and the whole flush is off.
    for (s, candidates) in candidates.iter().enumerate() {
        let verdict = |seq: usize| {
            let e = &w.enqueues[seq];
            e.chain
                .iter()
                .copied()
                .find(|l| l.kind.panics(e.value) || !l.kind.allows(e.task, e.value))
        };
        let panic = candidates.iter().find_map(|&(seq, _)| match verdict(seq) {
            Some(link) if link.kind.panics(w.enqueues[seq].value) => {
                Some(policy_panic_message(w.enqueues[seq].value))
            }
            _ => None,
        });
        for &(seq, record) in candidates {
            let failed = &mut expected.dispatch_failed[s];
            let fate = match (&panic, verdict(seq)) {
                (Some(message), _) => {
                    ModelFate::Discarded(DiscardReason::PolicyPanicked(message.clone()))
                }
                (None, Some(link)) => ModelFate::Dropped(link),
                // The executor stopped at an earlier failure.
                (None, None) if failed.is_some() => {
                    failed.as_mut().expect("checked").push(seq);
                    ModelFate::NotAttempted
                }
                (None, None) => {
                    expected.dispatched_by[seq] = Some(s);
                    if w.enqueues[seq].task == Task::Fail {
                        *failed = Some(Vec::new());
                        ModelFate::Failed
                    } else {
                        ModelFate::Dispatched
                    }
                }
            };
            expected.records[s][record].2 = fate;
        }
        if let Some(message) = panic {
            expected.discarded[s] = Some(DiscardReason::PolicyPanicked(message));
        }
    }
    // A scope dispatches when it ends, in enqueue order.
    for &s in &w.ends {
        expected
            .log
            .extend((0..w.enqueues.len()).filter(|&seq| expected.dispatched_by[seq] == Some(s)));
    }
    expected
}

// ---------------------------------------------------------------------------
// Running a program for real.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sync,
    Async,
}

fn task_def(task: Task, mode: Mode) -> &'static TaskDef {
    match (task, mode) {
        (Task::A, _) => probe_a::TASK,
        (Task::Fail, _) => probe_fail::TASK,
        (Task::B, Mode::Sync) => probe_b::TASK,
        (Task::B, Mode::Async) => probe_b_async::TASK,
    }
}

/// The value of an intent of any probe task.
fn value_of(intent: &Intent) -> Option<u8> {
    intent
        .args::<probe_a>()
        .map(|a| a.value)
        .or_else(|| intent.args::<probe_b>().map(|a| a.value))
        .or_else(|| intent.args::<probe_b_async>().map(|a| a.value))
        .or_else(|| intent.args::<probe_fail>().map(|a| a.value))
}

/// Refuses intents carrying this value at enqueue.
#[derive(Debug)]
struct RejectValue(u8);

impl Policy for RejectValue {
    fn on_enqueue(&self, intent: &Intent) -> Result<(), PolicyViolation> {
        if value_of(intent) == Some(self.0) {
            return Err(airlock::policy::violation(self, intent, "value refused"));
        }
        Ok(())
    }
}

/// Drops intents carrying this value at flush.
#[derive(Debug)]
struct DropValue(u8);

impl Policy for DropValue {
    fn allows(&self, intent: &Intent) -> bool {
        value_of(intent) != Some(self.0)
    }
}

/// Panics at flush on intents carrying this value.
#[derive(Debug)]
struct PanicOn(u8);

impl Policy for PanicOn {
    fn allows(&self, intent: &Intent) -> bool {
        if value_of(intent) == Some(self.0) {
            std::panic::panic_any(policy_panic_message(self.0));
        }
        true
    }
}

fn make_policy(kind: PolicyKind, mode: Mode) -> Arc<dyn Policy> {
    match kind {
        PolicyKind::DropAll => Arc::new(DropAll),
        PolicyKind::AssertNoEffects => Arc::new(AssertNoEffects),
        PolicyKind::Block(task) => Arc::new(BlockTasks::of(&[task_def(task, mode)])),
        PolicyKind::BlockAtEnqueue(task) => {
            Arc::new(BlockTasks::of(&[task_def(task, mode)]).reject_at_enqueue())
        }
        PolicyKind::RejectValue(v) => Arc::new(RejectValue(v)),
        PolicyKind::DropValue(v) => Arc::new(DropValue(v)),
        PolicyKind::PanicOn(v) => Arc::new(PanicOn(v)),
    }
}

/// A behaviour that flushes on success or always, may decline to flush a
/// scope holding nothing (it looks at the scope), and may let descendants'
/// intents of one task dispatch early (as far as this scope is concerned).
#[derive(Debug)]
struct ModelBehavior {
    always_flush: bool,
    skip_empty: bool,
    lets_through: Option<&'static TaskDef>,
}

impl ScopeBehavior for ModelBehavior {
    fn should_flush(&self, outcome: Outcome, scope: &ScopeView<'_>) -> bool {
        let wants =
            outcome == Outcome::Success || (self.always_flush && outcome != Outcome::Cancelled);
        wants && !(self.skip_empty && scope.intents().is_empty())
    }

    fn allow_descendant_dispatch(&self, _: &ScopeInfo, intent: &Intent) -> bool {
        self.lets_through == Some(intent.task())
    }
}

fn settings(spec: &ScopeSpec, mode: Mode) -> Scope {
    let mut scope = Scope::new().name(format!("s{}", spec.idx));
    for &kind in &spec.policies {
        scope = scope.shared_policy(make_policy(kind, mode));
    }
    match (spec.always_flush, spec.skip_empty, spec.lets_through) {
        (false, false, None) => {}
        // The built-in where it fits, so it is what gets tested.
        (true, false, None) => scope = scope.behavior(AlwaysFlush),
        (always_flush, skip_empty, lets_through) => {
            scope = scope.behavior(ModelBehavior {
                always_flush,
                skip_empty,
                lets_through: lets_through.map(|task| task_def(task, mode)),
            });
        }
    }
    if spec.detached {
        scope = scope.detached();
    }
    scope
}

fn enqueue(task: Task, mode: Mode, run: u64, seq: usize, value: u8) -> airlock::Result<IntentId> {
    let seq = seq as u64;
    match (task, mode) {
        (Task::A, _) => probe_a::enqueue(run, seq, value),
        (Task::Fail, _) => probe_fail::enqueue(run, seq, value),
        (Task::B, Mode::Sync) => probe_b::enqueue(run, seq, value),
        (Task::B, Mode::Async) => probe_b_async::enqueue(run, seq, value),
    }
}

/// The payload of a planned panic: which scope's body panicked.
#[derive(Debug)]
struct PlannedPanic(usize);

/// Ends a scope's body as the program says.
fn end_body(spec: &ScopeSpec) -> Result<(), AppError> {
    match spec.ending {
        Ending::Ok => Ok(()),
        Ending::Err => Err(failed(format!("planned error in s{}", spec.idx))),
        Ending::Panic => std::panic::panic_any(PlannedPanic(spec.idx)),
    }
}

/// How a scope's `run` returned to its caller.
#[derive(Debug)]
enum Returned {
    Ok,
    Err(AppError),
    Panicked(Option<usize>),
}

fn returned(result: std::thread::Result<Result<(), AppError>>) -> Returned {
    match result {
        Ok(Ok(())) => Returned::Ok,
        Ok(Err(error)) => Returned::Err(error),
        Err(payload) => Returned::Panicked(payload.downcast_ref::<PlannedPanic>().map(|p| p.0)),
    }
}

/// What one run of a program left behind.
struct Trace {
    run: u64,
    mode: Mode,
    /// Per seq, what `enqueue` returned.
    enqueued: Vec<Option<airlock::Result<IntentId>>>,
    /// Per scope, its handle (taken first thing in its body).
    handles: Vec<Option<ScopeHandle>>,
    /// Per scope, the ids in its buffer at the end of its body.
    buffers: Vec<Option<Vec<IntentId>>>,
    /// Per scope, how its `run` returned.
    returned: Vec<Option<Returned>>,
    /// The report the outermost scope's `ActiveScope::end` returned, when it
    /// ran that way (sync programs) and the end returned one.
    report: Option<FlushReport>,
}

impl Trace {
    fn new(program: &ScopeSpec, mode: Mode) -> Self {
        static RUNS: AtomicU64 = AtomicU64::new(0);
        let mut copy = program.clone();
        let (seqs, scopes) = number(&mut copy);
        Trace {
            run: RUNS.fetch_add(1, Ordering::Relaxed),
            mode,
            enqueued: (0..seqs).map(|_| None).collect(),
            handles: vec![None; scopes],
            buffers: vec![None; scopes],
            returned: (0..scopes).map(|_| None).collect(),
            report: None,
        }
    }

    fn enter_body(&mut self, spec: &ScopeSpec) {
        self.handles[spec.idx] = airlock::current();
    }

    fn leave_body(&mut self, spec: &ScopeSpec) {
        let scope = airlock::current().expect("inside the scope's body");
        let ids = scope.intents().iter().map(Intent::id).collect();
        self.buffers[spec.idx] = Some(ids);
    }

    fn enqueue(&mut self, task: Task, value: u8, seq: usize, via_handle: bool) {
        let (mode, run) = (self.mode, self.run);
        let result = if via_handle {
            let handle = airlock::current().expect("ops run inside a scope");
            std::thread::spawn(move || handle.in_scope(|| enqueue(task, mode, run, seq, value)))
                .join()
                .expect("enqueue does not panic")
        } else {
            enqueue(task, mode, run, seq, value)
        };
        self.enqueued[seq] = Some(result);
    }
}

fn run_sync(program: &ScopeSpec) -> Trace {
    fn scope(spec: &ScopeSpec, trace: &mut Trace) {
        let result = catch_unwind(AssertUnwindSafe(|| {
            settings(spec, Mode::Sync).run(|| {
                trace.enter_body(spec);
                ops(&spec.body, trace);
                trace.leave_body(spec);
                end_body(spec)
            })
        }));
        trace.returned[spec.idx] = Some(returned(result));
    }
    fn ops(body: &[Op], trace: &mut Trace) {
        for op in body {
            match op {
                Op::Enqueue {
                    task,
                    value,
                    seq,
                    via_handle,
                } => trace.enqueue(*task, *value, *seq, *via_handle),
                Op::WithPolicy(kind, inner) => {
                    airlock::with_policy(make_policy(*kind, Mode::Sync), || ops(inner, trace));
                }
                Op::Scope(spec) => scope(spec, trace),
            }
        }
    }
    // The outermost scope through the imperative API, the way integrations
    // (middleware, transactions) end scopes, so its FlushReport can be checked.
    let mut trace = Trace::new(program, Mode::Sync);
    let active = settings(program, Mode::Sync).start();
    let body = catch_unwind(AssertUnwindSafe(|| {
        active.in_scope(|| {
            trace.enter_body(program);
            ops(&program.body, &mut trace);
            trace.leave_body(program);
            end_body(program)
        })
    }));
    let outcome = match &body {
        Ok(Ok(())) => Outcome::Success,
        Ok(Err(_)) => Outcome::Error,
        Err(_) => Outcome::Panic,
    };
    let end = active.end(outcome);
    // What `Scope::run` would have returned: a flush error replaces an `Ok`,
    // converted into the body's error type.
    let returned = match (body, end) {
        (Ok(Ok(())), Err(error)) => Returned::Err(AppError::from(error)),
        (body, end) => {
            trace.report = end.ok();
            returned(body)
        }
    };
    trace.returned[program.idx] = Some(returned);
    trace
}

type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Catches a panic while polling, as `catch_unwind` does for a closure.
struct CatchUnwind<'a, T>(LocalBoxFuture<'a, T>);

impl<T> Future for CatchUnwind<'_, T> {
    type Output = std::thread::Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.0.as_mut();
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

fn scope_async<'a>(spec: &'a ScopeSpec, trace: &'a RefCell<Trace>) -> LocalBoxFuture<'a, ()> {
    Box::pin(async move {
        let body = settings(spec, Mode::Async).run_async(async move {
            trace.borrow_mut().enter_body(spec);
            ops_async(&spec.body, trace).await;
            trace.borrow_mut().leave_body(spec);
            end_body(spec)
        });
        let result = CatchUnwind(Box::pin(body)).await;
        trace.borrow_mut().returned[spec.idx] = Some(returned(result));
    })
}

fn ops_async<'a>(body: &'a [Op], trace: &'a RefCell<Trace>) -> LocalBoxFuture<'a, ()> {
    Box::pin(async move {
        for op in body {
            match op {
                Op::Enqueue {
                    task,
                    value,
                    seq,
                    via_handle,
                } => {
                    trace.borrow_mut().enqueue(*task, *value, *seq, *via_handle);
                    // Lets the other program run in between, on this thread.
                    tokio::task::yield_now().await;
                }
                Op::WithPolicy(kind, inner) => {
                    let policy = make_policy(*kind, Mode::Async);
                    airlock::with_policy_async(policy, ops_async(inner, trace)).await;
                }
                Op::Scope(spec) => scope_async(spec, trace).await,
            }
        }
    })
}

/// Runs two programs at once, interleaved on one current-thread runtime.
fn run_async_pair(first: &ScopeSpec, second: &ScopeSpec) -> (Trace, Trace) {
    let traces = (
        RefCell::new(Trace::new(first, Mode::Async)),
        RefCell::new(Trace::new(second, Mode::Async)),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(async {
        tokio::join!(
            scope_async(first, &traces.0),
            scope_async(second, &traces.1)
        );
    });
    (traces.0.into_inner(), traces.1.into_inner())
}

// ---------------------------------------------------------------------------
// Checking a run against the model.

/// A fate in terms both the model and a real record can be put in.
#[derive(Debug, PartialEq)]
enum SeenFate {
    Dispatched,
    Failed(String),
    NotAttempted,
    /// The policy's name; `None` for a local block, else the scope's index.
    Dropped(String, Option<usize>),
    Captured(usize),
    Discarded(DiscardReason),
    Unexpected(String),
}

fn check(program: &ScopeSpec, trace: &Trace) -> Result<(), TestCaseError> {
    let expected = expect(program);
    let dispatched = take_log(trace.run);
    let mode = trace.mode;

    let mut seq_of: HashMap<IntentId, usize> = HashMap::new();
    for (seq, result) in trace.enqueued.iter().enumerate() {
        let result = result.as_ref().expect("every enqueue of the program ran");
        match (result, expected.rejected_by[seq]) {
            (Ok(id), None) => {
                seq_of.insert(*id, seq);
            }
            (Err(Error::PolicyViolation(violation)), Some(link)) => {
                prop_assert_eq!(
                    &violation.policy,
                    &make_policy(link.kind, mode).name(),
                    "seq {} was rejected by the wrong policy",
                    seq
                );
            }
            (other, rejected_by) => {
                return Err(TestCaseError::fail(format!(
                    "seq {seq}: enqueue returned {other:?}, the model expects rejection by \
                     {rejected_by:?}"
                )))
            }
        }
    }

    // The properties, one by one, so a failure names the one that broke.
    let seqs: Vec<usize> = dispatched.iter().map(|d| d.1).collect();
    let unique: BTreeSet<usize> = seqs.iter().copied().collect();
    prop_assert_eq!(
        unique.len(),
        seqs.len(),
        "an intent was dispatched twice: {:?}",
        seqs
    );
    for &seq in &seqs {
        prop_assert!(
            expected.rejected_by.get(seq) == Some(&None),
            "rejected (or unknown) seq {} was dispatched",
            seq
        );
    }
    let should: BTreeSet<usize> = (0..expected.dispatched_by.len())
        .filter(|&seq| expected.dispatched_by[seq].is_some())
        .collect();
    prop_assert_eq!(
        &unique,
        &should,
        "ran iff every scope on the way flushed, every policy allows, and no earlier \
         intent of the same flush failed"
    );
    // FIFO, from what airlock itself reports: the intents a scope's records
    // say ran (dispatched, or failed) are in enqueue order, and ran in that
    // order; and no intent is reported run by two scopes.
    let mut reported = BTreeSet::new();
    for handle in trace.handles.iter().flatten() {
        let mine: Vec<usize> = handle
            .records()
            .iter()
            .filter(|r| matches!(r.fate, Fate::Dispatched | Fate::Failed { .. }))
            .map(|r| seq_of.get(&r.id).copied().unwrap_or(usize::MAX))
            .collect();
        prop_assert!(
            mine.windows(2).all(|w| w[0] < w[1]),
            "{} dispatched out of enqueue order: {:?}",
            handle.info(),
            mine
        );
        let ran: Vec<usize> = seqs.iter().copied().filter(|s| mine.contains(s)).collect();
        prop_assert_eq!(
            &ran,
            &mine,
            "{} ran its intents out of order",
            handle.info()
        );
        for seq in mine {
            prop_assert!(
                reported.insert(seq),
                "seq {} reported dispatched twice",
                seq
            );
        }
    }
    prop_assert_eq!(&reported, &unique, "the records report what ran");
    // Exactly the model's log: also when each scope dispatched (nothing after
    // a discard, a detached or early dispatch at its own end) and the arguments.
    let expected_log: Vec<Dispatch> = expected
        .log
        .iter()
        .map(|&seq| {
            let (task, value) = enqueue_args(program, seq);
            (task_def(task, mode).name(), seq, value)
        })
        .collect();
    prop_assert_eq!(&dispatched, &expected_log);

    // Every scope: how its run returned, its phase, its buffer, its records.
    let index_of: HashMap<ScopeId, usize> = trace
        .handles
        .iter()
        .enumerate()
        .map(|(idx, h)| (h.as_ref().expect("every scope's body ran").info().id, idx))
        .collect();
    for (idx, spec) in expected.scopes.iter().enumerate() {
        let handle = trace.handles[idx].as_ref().expect("handle taken");
        prop_assert_eq!(handle.is_nested(), idx != 0 && !spec.detached);
        let ret = trace.returned[idx].as_ref().expect("every scope returned");
        let discarded = &expected.discarded[idx];
        let policy_panicked = match discarded {
            Some(DiscardReason::PolicyPanicked(message)) => Some(message),
            _ => None,
        };
        let ok = match (spec.ending, ret) {
            // A flush error replaces only an `Ok`.
            (
                Ending::Ok,
                Returned::Err(AppError::Airlock(Error::PolicyPanicked { scope, message })),
            ) => policy_panicked == Some(message) && scope.id == handle.info().id,
            (Ending::Ok, Returned::Err(AppError::Airlock(Error::Dispatch(failure)))) => {
                let handed_back: Vec<usize> = failure
                    .not_attempted
                    .iter()
                    .map(|i| seq_of.get(&i.id()).copied().unwrap_or(usize::MAX))
                    .collect();
                failure.report.scope.id == handle.info().id
                    && expected.dispatch_failed[idx].as_ref() == Some(&handed_back)
            }
            (Ending::Ok, Returned::Ok) => {
                policy_panicked.is_none() && expected.dispatch_failed[idx].is_none()
            }
            (Ending::Err, Returned::Err(AppError::Failed(message))) => {
                *message == format!("planned error in s{idx}")
            }
            (Ending::Panic, Returned::Panicked(Some(p))) => *p == idx,
            _ => false,
        };
        prop_assert!(
            ok,
            "s{} ended {:?} but its run returned {:?}",
            idx,
            spec.ending,
            ret
        );

        let phase = if discarded.is_some() {
            ScopePhase::Discarded
        } else {
            ScopePhase::Flushed
        };
        prop_assert_eq!(handle.phase(), phase, "phase of s{}", idx);
        prop_assert_eq!(
            &handle.discard_reason(),
            discarded,
            "discard reason of s{}",
            idx
        );

        let want: Vec<(usize, bool, SeenFate)> = expected.records[idx]
            .iter()
            .map(|(seq, own, fate)| {
                let fate = match fate {
                    ModelFate::Dispatched => SeenFate::Dispatched,
                    ModelFate::Failed => SeenFate::Failed(TASK_FAILURE.to_owned()),
                    ModelFate::NotAttempted => SeenFate::NotAttempted,
                    ModelFate::Dropped(link) => SeenFate::Dropped(
                        make_policy(link.kind, mode).name(),
                        match link.source {
                            Source::Local => None,
                            Source::Scope(s) => Some(s),
                        },
                    ),
                    ModelFate::Captured { by } => SeenFate::Captured(*by),
                    ModelFate::Discarded(reason) => SeenFate::Discarded(reason.clone()),
                };
                (*seq, *own, fate)
            })
            .collect();
        let scope_index = |id: ScopeId| index_of.get(&id).copied().unwrap_or(usize::MAX);
        let got: Vec<(usize, bool, SeenFate)> = handle
            .records()
            .iter()
            .map(|r| {
                let fate = match &r.fate {
                    Fate::Dispatched => SeenFate::Dispatched,
                    Fate::Failed { error } => SeenFate::Failed(error.clone()),
                    Fate::NotAttempted => SeenFate::NotAttempted,
                    Fate::Dropped { policy, source } => SeenFate::Dropped(
                        policy.to_string(),
                        match source {
                            PolicySource::Local => None,
                            PolicySource::Scope(info) => Some(scope_index(info.id)),
                        },
                    ),
                    Fate::Captured { by } => SeenFate::Captured(scope_index(by.id)),
                    Fate::Discarded(reason) => SeenFate::Discarded(reason.clone()),
                    other => SeenFate::Unexpected(format!("{other:?}")),
                };
                (
                    seq_of.get(&r.id).copied().unwrap_or(usize::MAX),
                    r.own,
                    fate,
                )
            })
            .collect();
        prop_assert_eq!(&got, &want, "records of s{}", idx);

        // The outermost scope's FlushReport (sync programs) says the same as
        // its handle; `end` returns one unless the flush failed.
        if idx == 0 && mode == Mode::Sync {
            let flush_failed = policy_panicked.is_some() || expected.dispatch_failed[0].is_some();
            prop_assert_eq!(
                trace.report.is_some(),
                !flush_failed,
                "a FlushReport iff no flush error"
            );
        }
        if let (0, Some(report)) = (idx, &trace.report) {
            let summary = |records: &[airlock::IntentRecord]| -> Vec<(IntentId, bool, Fate)> {
                records
                    .iter()
                    .map(|r| (r.id, r.own, r.fate.clone()))
                    .collect()
            };
            prop_assert_eq!(&report.scope, handle.info());
            prop_assert_eq!(summary(report.records()), summary(&handle.records()));
        }

        let buffer: Vec<usize> = trace.buffers[idx]
            .as_ref()
            .expect("every body reached its end")
            .iter()
            .map(|id| seq_of.get(id).copied().unwrap_or(usize::MAX))
            .collect();
        let held: Vec<usize> = want.iter().map(|r| r.0).collect();
        prop_assert_eq!(buffer, held, "buffer of s{} at the end of its body", idx);
    }
    Ok(())
}

/// The task and value of enqueue `seq` of the program.
fn enqueue_args(program: &ScopeSpec, seq: usize) -> (Task, u8) {
    fn find(body: &[Op], seq: usize) -> Option<(Task, u8)> {
        body.iter().find_map(|op| match op {
            Op::Enqueue {
                task,
                value,
                seq: s,
                ..
            } if *s == seq => Some((*task, *value)),
            Op::Enqueue { .. } => None,
            Op::WithPolicy(_, inner) => find(inner, seq),
            Op::Scope(spec) => find(&spec.body, seq),
        })
    }
    find(&program.body, seq).expect("seq belongs to the program")
}

// ---------------------------------------------------------------------------
// The properties.

/// Keeps the planned panics of the programs (bodies and `PanicOn` policies)
/// off stderr; any other panic (a failed assertion) is reported as usual.
fn quiet_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let planned = payload.is::<PlannedPanic>()
                || payload
                    .downcast_ref::<String>()
                    .is_some_and(|m| m.starts_with("planned policy panic"));
            if !planned {
                default(info);
            }
        }));
    });
}

/// 256 cases unless `PROPTEST_CASES` says otherwise (read by
/// `Config::default`); failures are kept where the crate's tests live.
fn config() -> Config {
    Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/proptest-regressions/model.txt"
        )))),
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn sync_programs_behave_as_the_model_says(program in program()) {
        quiet_planned_panics();
        let trace = run_sync(&program);
        check(&program, &trace)?;
        prop_assert!(airlock::current().is_none(), "no scope leaks past the program");
    }

    #[test]
    fn two_async_programs_interleaved_behave_as_the_model_says(
        first in program(),
        second in program(),
    ) {
        quiet_planned_panics();
        let (a, b) = run_async_pair(&first, &second);
        check(&first, &a)?;
        check(&second, &b)?;
        prop_assert!(airlock::current().is_none(), "no scope leaks past the programs");
    }
}

/// The model itself, on a hand-written program whose outcome is known, so a
/// mistake in the model cannot make the properties vacuous.
#[test]
fn the_model_predicts_a_hand_written_program() {
    use Op::Enqueue as E;
    let leaf = |idx, policies, detached, ending, body| {
        Op::Scope(ScopeSpec {
            idx,
            policies,
            always_flush: false,
            skip_empty: false,
            lets_through: None,
            detached,
            ending,
            body,
        })
    };
    let e = |task, value| E {
        task,
        value,
        seq: 0,
        via_handle: false,
    };
    let mut program = ScopeSpec {
        idx: 0,
        policies: vec![PolicyKind::DropValue(3)],
        always_flush: false,
        skip_empty: false,
        lets_through: None,
        detached: false,
        ending: Ending::Ok,
        body: vec![
            e(Task::A, 0),                                            // 0: dispatched at the end
            leaf(1, vec![], false, Ending::Err, vec![e(Task::A, 1)]), // 1: discarded
            Op::WithPolicy(
                PolicyKind::RejectValue(2),
                vec![
                    e(Task::B, 2), // 2: rejected
                    // 3: detached, dispatched first; escapes s0's DropValue(3)
                    // but not the local block's RejectValue(2).
                    leaf(
                        2,
                        vec![],
                        true,
                        Ending::Ok,
                        vec![e(Task::A, 3), e(Task::B, 2)],
                    ),
                ],
            ),
            leaf(
                3,
                vec![PolicyKind::Block(Task::B)],
                false,
                Ending::Ok,
                vec![
                    e(Task::B, 0), // 5: captured, then dropped by s3's BlockTasks
                    e(Task::A, 3), // 6: captured, then dropped by s0's DropValue(3)
                    e(Task::A, 1), // 7: dispatched
                ],
            ),
        ],
    };
    number(&mut program);
    let expected = expect(&program);
    assert_eq!(expected.log, [3, 0, 7]);
    assert_eq!(
        expected.rejected_by,
        [
            None,
            None,
            Some(Link {
                kind: PolicyKind::RejectValue(2),
                source: Source::Local
            }),
            None,
            Some(Link {
                kind: PolicyKind::RejectValue(2),
                source: Source::Local
            }),
            None,
            None,
            None,
        ]
    );
    assert_eq!(
        expected.records[3],
        [
            (5, true, ModelFate::Captured { by: 0 }),
            (6, true, ModelFate::Captured { by: 0 }),
            (7, true, ModelFate::Captured { by: 0 }),
        ]
    );
    assert_eq!(
        expected.records[0]
            .iter()
            .map(|r| (r.0, r.1))
            .collect::<Vec<_>>(),
        [(0, true), (5, false), (6, false), (7, false)]
    );
    assert_eq!(
        expected.records[0][1].2,
        ModelFate::Dropped(Link {
            kind: PolicyKind::Block(Task::B),
            source: Source::Scope(3)
        })
    );
    assert_eq!(
        expected.records[1],
        [(1, true, ModelFate::Discarded(DiscardReason::Error))]
    );

    // And airlock agrees.
    quiet_planned_panics();
    let trace = run_sync(&program);
    check(&program, &trace).unwrap();
}

/// The model on early dispatch, by hand: an intent goes past the ancestors
/// that let its task through, to the first one that captures it, or is
/// dispatched when its own scope ends if all of them let it through.
#[test]
fn the_model_predicts_early_dispatch() {
    let e = |task, value| Op::Enqueue {
        task,
        value,
        seq: 0,
        via_handle: false,
    };
    let plain = |body| ScopeSpec {
        idx: 0,
        policies: Vec::new(),
        always_flush: false,
        skip_empty: false,
        lets_through: None,
        detached: false,
        ending: Ending::Ok,
        body,
    };
    let mut program = ScopeSpec {
        lets_through: Some(Task::A),
        body: vec![
            Op::Scope(ScopeSpec {
                lets_through: Some(Task::B),
                ending: Ending::Err,
                body: vec![Op::Scope(plain(vec![
                    e(Task::B, 0), // 0: past s1, captured by s0: survives s1's error
                    e(Task::A, 0), // 1: captured by s1, discarded with it
                ]))],
                ..plain(Vec::new())
            }),
            Op::Scope(plain(vec![Op::Scope(plain(vec![
                e(Task::A, 1), // 2: captured by s3, dispatched when s3 ends
            ]))])),
        ],
        ..plain(Vec::new())
    };
    number(&mut program);
    let expected = expect(&program);
    assert_eq!(expected.log, [2, 0]);
    assert_eq!(
        expected.records[2],
        [
            (0, true, ModelFate::Captured { by: 0 }),
            (1, true, ModelFate::Captured { by: 1 }),
        ]
    );
    assert_eq!(
        expected.records[1],
        [(1, false, ModelFate::Discarded(DiscardReason::Error))]
    );
    assert_eq!(expected.records[0], [(0, false, ModelFate::Dispatched)]);
    assert_eq!(
        expected.records[4],
        [(2, true, ModelFate::Captured { by: 3 })]
    );
    assert_eq!(expected.records[3], [(2, false, ModelFate::Dispatched)]);

    let trace = run_sync(&program);
    check(&program, &trace).unwrap();
}
