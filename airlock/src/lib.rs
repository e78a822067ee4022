//! Buffer side effects anywhere; let the surrounding scope decide when and
//! whether they escape.
//!
//! Code anywhere (a model method, a service, a task) says *"this should
//! happen"* by enqueueing an **intent**. Nothing escapes yet. The surrounding
//! **scope** (a request, a job, a command, a transaction) decides when and
//! whether the intents are dispatched: after success, never after failure,
//! filtered by **policies**, and carried out by an **executor**.
//!
//! ```
//! use airlock::DropAll;
//!
//! /// A task: a registered function whose calls can be buffered.
//! #[airlock::task]
//! fn send_confirmation_email(order_id: u64) -> Result<(), std::io::Error> {
//!     println!("emailing order {order_id}");
//!     Ok(())
//! }
//!
//! fn place_order(order_id: u64) -> airlock::Result<u64> {
//!     // Typed: wrong arguments do not compile. Outside a scope: Err(NoScope).
//!     send_confirmation_email::enqueue(order_id)?;
//!     Ok(order_id)
//! }
//!
//! /// A scope: flushes on Ok, discards on Err or panic.
//! #[airlock::scoped]
//! fn checkout(order_id: u64) -> airlock::Result<u64> {
//!     place_order(order_id) // the email is sent after this returns Ok
//! }
//!
//! /// The same code as a dry run.
//! #[airlock::scoped(policy = DropAll)]
//! fn checkout_dry_run(order_id: u64) -> airlock::Result<u64> {
//!     place_order(order_id) // enqueued, then dropped
//! }
//!
//! checkout(1)?;
//! checkout_dry_run(2)?;
//! assert!(place_order(3).is_err()); // no scope, no silent dispatch
//! # Ok::<(), airlock::Error>(())
//! ```
//!
//! # The data path
//! [`enqueue()`] → the scope's buffer ([`Scope`], [`scope()`]) → policies
//! ([`policy`]) → the flush ([`flush`]) → an executor ([`executor`]). The
//! source follows it: `enqueue.rs` → `buffer.rs`, `scope/` → `policy/` →
//! `flush/` → `executor/`, each importing only what comes before it.
//!
//! * **Tasks** (`#[airlock::task]`): the generated `my_task::enqueue(..)` takes
//!   the function's own parameters; `my_task::intent(..)` returns a builder for
//!   dispatch options (delay, queue, priority). Task names are stable strings
//!   registered process-wide ([`registry()`]); arguments must be owned and
//!   serde-serializable, but are only serialized when an intent leaves the process.
//! * **Scopes** (`#[airlock::scoped]`, [`scope()`], [`scope_async`], [`Scope`]):
//!   a nested scope hands its intents to its parent, so the outermost scope
//!   decides. An async scope travels with its future: it is entered on every
//!   poll, so it is correct on a multi-threaded runtime and never leaks into
//!   other tasks. Spawned tasks do not inherit a scope; carry one explicitly
//!   with [`ScopeHandle::bind`].
//! * **Policies** ([`Policy`]): [`AllowAll`], [`DropAll`], [`AssertNoEffects`],
//!   [`BlockTasks`], [`LogOnFlush`], on a scope or on a block ([`with_policy`]).
//! * **Executors** ([`Executor`]): [`InProcess`] by default; each task it runs
//!   gets its own scope, as on a queue worker.
//! * **Configuration** ([`configure`], [`Settings::from_env`]): defaults for
//!   every scope; explicit settings win.
//! * **Testing** ([`testing`]): capture what code enqueues without dispatching.
//!
//! # `#[airlock::scoped]`
//! The function must return `Result<T, E>` with `E: From<airlock::Error>`, so
//! a failed flush can be reported:
//!
//! ```compile_fail
//! #[airlock::scoped]
//! fn no_result() {} // error: a scope body must return `Result<T, E>`
//! ```
//!
//! # Queues, transactions and workers (cargo features)
//! | feature | gives | guarantee |
//! | --- | --- | --- |
//! | `apalis-sqlite` | `queue::SqliteQueue`: an embedded, file-backed [apalis](https://docs.rs/apalis) queue, no server | a flush is one SQLite transaction: all intents queued or none |
//! | `apalis-postgres` | `queue::PostgresQueue`: a multi-machine queue in PostgreSQL | a flush is one transaction; co-commit into the caller's transaction |
//! | `apalis-redis` | `queue::RedisQueue`: a multi-machine queue in Redis | a flush is one atomic script per queue; after-commit only |
//! | `sqlx` (implied by the SQL queues) | `tx::TxScope`: scopes tied to a sqlx 0.9 transaction | after-commit (any executor) or co-commit (SQL queues) |
//! | `tokio` | `executor::TokioExecutor`: each intent spawned on the runtime | none beyond the process: for work that may be lost |
//!
//! Every queue job carries a versioned `envelope::Envelope` (stable task
//! name, JSON arguments, ULID id, options, origin). A **worker** consumes a
//! queue and runs each job's task by name, in its own scope (so what it
//! enqueues cascades as in process): `queue.monitor(WorkerOptions::new("name"))`
//! returns a supervised apalis `Monitor` (unique worker names, restarted after
//! backend errors) to `.run().await`; `worker::handle` is the bare apalis
//! handler for custom `WorkerBuilder`s. Jobs that can never succeed (not an
//! envelope, unknown task, undecodable arguments, a newer envelope version)
//! are aborted, not retried; task errors and panics fail the job for the queue
//! to retry up to its max attempts (`queue::DEFAULT_MAX_ATTEMPTS` unless the
//! intent says otherwise).
//!
//! **Which durability?** An *after-commit* transaction scope dispatches after
//! `COMMIT`: if the process dies in between, the intents are lost (tested with
//! SIGKILL). A *co-commit* scope writes the jobs into the transaction itself,
//! so they commit with the data and a crash loses nothing. A plain scope
//! (request, job) dispatches when it ends, independent of any transaction.
//! The feature-gated items are documented on docs.rs with all features on.
//!
//! # What a scope guarantees
//! * **A nested scope's policy keeps applying** to the intents it hands to its
//!   parent: a `DropAll` scope inside a request scope is still a dry run. The
//!   report names the dropping policy and the scope it belongs to.
//! * **A policy that rejects at enqueue rejects at enqueue**, on a scope or
//!   on a block (`with_policy(AssertNoEffects, ..)`, a rejecting
//!   `BlockTasks`); a detached scope opened inside such a block is still
//!   under it.
//! * **Tasks run in process run inside their own scope**, exactly as a queue
//!   worker runs them, so a task that enqueues behaves the same in process and
//!   on a queue, and a re-entrant cascade can be stopped with `BlockTasks` (or
//!   hits [`Config::max_cascade_depth`] with an error naming the task).
//! * **Flush has two passes**: every intent is filtered before any is
//!   dispatched, so a policy that panics dispatches nothing
//!   ([`Error::PolicyPanicked`]).
//! * **An ended scope keeps its story**: [`ScopeHandle::records`] and the
//!   [`FlushReport`] say what became of every intent (dispatched, dropped and
//!   by which policy, captured and by whom, failed, not attempted, discarded
//!   and why); a failed dispatch hands the never-attempted intents back.
//! * **Cancellation discards**: an async scope whose future is dropped before
//!   completing discards its intents ([`DiscardReason::Cancelled`]).
//! * **Ending twice does not compile**: `flush`, `discard` and friends consume
//!   the [`ActiveScope`], and an [`EnterGuard`] borrows it,
//!   so a scope cannot end while entered or end twice. Enqueueing into an ended
//!   scope through a handle is [`Error::ScopeClosed`].
//!
//! Coming from the Python library airlock-py? `docs/migrating-from-airlock-py.md`
//! in the repository lists what works differently, and why.
//!
//! # Tasks in another crate
//! `inventory` registers a task only if its crate is linked. If a binary never
//! names anything from the crate defining its tasks (e.g. a worker that runs
//! tasks by name), add `use my_tasks as _;` to the binary.

#![doc(html_root_url = "https://docs.rs/airlock/0.1.0")]
// On docs.rs (nightly, `--cfg docsrs`): label each feature-gated item with
// the cargo feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc(test(attr(deny(warnings))))]

// Lets the macros' `::airlock::…` paths resolve inside this crate's own tests.
#[allow(unused_extern_crates)]
extern crate self as airlock;

mod buffer;
mod clipped;
mod config;
mod context;
mod enqueue;
pub mod envelope;
mod error;
pub mod executor;
pub mod flush;
mod intent;
pub mod policy;
#[cfg(feature = "_queue")]
// `_queue` without a backend (the fuzz targets' build) leaves the backends'
// helpers unused.
#[cfg_attr(
    not(any(
        feature = "apalis-sqlite",
        feature = "apalis-postgres",
        feature = "apalis-redis"
    )),
    allow(dead_code)
)]
// On docs.rs: labelled with the backend features users enable, not the
// internal `_queue` feature they turn on.
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "apalis-sqlite",
        feature = "apalis-postgres",
        feature = "apalis-redis"
    )))
)]
pub mod queue;
mod registry;
mod scope;
mod spares;
mod task;
pub mod testing;
#[cfg(feature = "tower")]
pub mod tower;
#[cfg(feature = "sqlx")]
pub mod tx;
#[cfg(feature = "_queue")]
// `_queue` without a backend (the fuzz targets' build) leaves the backends'
// helpers unused.
#[cfg_attr(
    not(any(
        feature = "apalis-sqlite",
        feature = "apalis-postgres",
        feature = "apalis-redis"
    )),
    allow(dead_code)
)]
#[cfg_attr(
    docsrs,
    doc(cfg(any(
        feature = "apalis-sqlite",
        feature = "apalis-postgres",
        feature = "apalis-redis"
    )))
)]
pub mod worker;

#[doc(hidden)]
pub mod __private;

/// Turns a function into a task that can be enqueued; see the crate docs.
///
/// Generates, next to the function, a handle type of the same name with:
/// * `enqueue(args..) -> airlock::Result<IntentId>`: enqueue into the current scope;
/// * `intent(args..) -> IntentBuilder`: set dispatch options, then `.enqueue()`;
/// * `TASK: &'static TaskDef`: the registry entry (for [`BlockTasks::of`]);
/// * an implementation of [`Task`], whose `Args` struct has one public field per parameter.
///
/// The function stays callable directly. Options: `name = "stable.name"`
/// (default: the function name). `#[serde(rename = "..")]`, `alias` and
/// `default` on a parameter apply to its field in the serialized arguments.
///
/// A task is a free function at module level (not a method). Its handle type
/// shares its name, so an intra-doc link to the function is written
/// ``[`my_task()`]`` or ``[`fn@my_task`]``.
///
/// ```compile_fail
/// #[airlock::task]
/// fn greet(name: &str) {} // error: task arguments must be owned
/// ```
#[doc(inline)]
pub use airlock_macros::task;

/// Runs a function inside its own scope: flush on `Ok`, discard on `Err`,
/// panic or cancellation. Works on `fn` and `async fn`; see the crate docs.
///
/// Options: `policy = expr`, `executor = expr`, `behavior = expr`, `name = "..."`.
///
/// On an `async fn` the scope travels with the future, and async tasks are
/// awaited when it flushes:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> airlock::Result<()> {
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// static SHIPPED: AtomicU64 = AtomicU64::new(0);
///
/// #[airlock::task]
/// async fn notify_warehouse(order_id: u64) -> Result<(), std::io::Error> {
///     SHIPPED.store(order_id, Ordering::SeqCst);
///     Ok(())
/// }
///
/// #[airlock::scoped]
/// async fn checkout(order_id: u64) -> airlock::Result<u64> {
///     tokio::task::yield_now().await;
///     notify_warehouse::enqueue(order_id)?; // buffered until checkout returns Ok
///     assert_eq!(SHIPPED.load(Ordering::SeqCst), 0);
///     Ok(order_id)
/// }
///
/// #[airlock::scoped(policy = airlock::DropAll)]
/// async fn checkout_dry_run(order_id: u64) -> airlock::Result<u64> {
///     checkout(order_id).await // nested: its intents are dropped here
/// }
///
/// checkout_dry_run(1).await?;
/// assert_eq!(SHIPPED.load(Ordering::SeqCst), 0);
/// checkout(2).await?;
/// assert_eq!(SHIPPED.load(Ordering::SeqCst), 2);
/// # Ok(()) }
/// ```
#[doc(inline)]
pub use airlock_macros::scoped;

pub use config::{
    configuration, configure, reset_configuration, Config, PolicyName, Settings,
    DEFAULT_MAX_INTENTS_PER_SCOPE, DEFAULT_MAX_PAYLOAD_BYTES, MAX_CASCADE_DEPTH,
};
pub use enqueue::enqueue;
pub use error::{
    ArgsError, BoxError, ConfigError, DuplicateTask, Error, LookupError, PolicyViolation, Result,
    ScheduleError, UnknownTask,
};
pub use executor::{DispatchError, Executor, InProcess};
pub use flush::{DispatchFailure, Fate, FlushReport, IntentRecord, PreparedFlush};
pub use intent::{DispatchOptions, Intent, IntentBuilder, IntentId, LATEST_SCHEDULE_SECS};
pub use policy::{
    with_policy, with_policy_async, AllowAll, AssertNoEffects, BlockTasks, DropAll, LogOnFlush,
    Policies, Policy, PolicySource,
};
pub use registry::{registry, Registry};
pub use scope::{
    current, scope, scope_async, ActiveScope, AlwaysFlush, Bound, DefaultBehavior, DiscardReason,
    Durability, EnterGuard, HandleGuard, IntentsGuard, Outcome, Scope, ScopeBehavior, ScopeHandle,
    ScopeId, ScopeInfo, ScopeOutput, ScopePhase, ScopeView, ScopedFuture,
};
pub use task::{Task, TaskDef, TaskKind, TaskOutput};

// The README's examples run as doctests (they use the SQLite queue).
#[cfg(all(doctest, feature = "apalis-sqlite", feature = "tower"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
