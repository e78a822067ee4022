//! Transaction scopes: intents tied to a sqlx 0.9 database transaction.
//!
//! A [`TxScope`] owns a [`sqlx::Transaction`] and a scope. Code running inside
//! it writes business rows through the transaction and enqueues intents as
//! anywhere else; what happens to those intents is tied to the transaction's
//! fate, in one of two [`Durability`] modes chosen when the scope starts:
//!
//! | | [`after_commit`] | [`co_commit`] |
//! | --- | --- | --- |
//! | intents go | to the scope's executor, after `COMMIT` succeeded | into the apalis queue table, inside the transaction, before `COMMIT` |
//! | rollback, error, drop | discarded | discarded (the rows roll back) |
//! | process dies after `COMMIT` | **intents lost** | intents delivered (already committed) |
//! | executors | any (Redis, in-process, …) | the transaction's own database: apalis SQLite or PostgreSQL |
//!
//! Either way the scope is a **dispatch boundary**: a transaction scope opened
//! inside a request scope does not hand its intents up to the request (the
//! transaction, not the request, decides), but every policy around it still
//! applies, so a dry-run (`DropAll`) request stays a dry run. Scopes nested
//! inside the transaction scope are captured by it as usual. Once the scope
//! has started committing it takes no more intents ([`Error::ScopeClosed`]).
//! [`ScopeHandle::durability`] tells which mode a scope runs in.
//!
//! # Savepoints
//! A savepoint that may roll back on its own must be a scope too, or the
//! intents enqueued under it would outlive its rollback. [`savepoint`] opens
//! one: its intents join the transaction scope when it is released and are
//! discarded when it rolls back (or is dropped). **A savepoint opened with
//! sqlx's own `begin()` on the transaction is not a scope**: intents enqueued
//! under it belong to the transaction scope and survive the savepoint's
//! rollback — a co-commit job would commit while the row it was about rolled
//! back. Open savepoints with [`savepoint`] whenever code under them
//! enqueues.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), airlock::BoxError> {
//! # #[airlock::task] fn send_receipt(order_id: i64) { let _ = order_id; }
//! # let queue = airlock::queue::SqliteQueue::connect("sqlite::memory:").await?;
//! # let pool = queue.pool().clone();
//! airlock::tx::co_commit(pool.begin().await?)
//!     .run(|tx| Box::pin(async move {
//!         send_receipt::enqueue(1)?;
//!         // A nested attempt that fails: its intents go with its rollback.
//!         let attempt = airlock::tx::savepoint(tx).await?;
//!         let failed: Result<(), airlock::BoxError> = attempt
//!             .run(|_savepoint| Box::pin(async move {
//!                 send_receipt::enqueue(2)?;
//!                 Err("payment declined".into())
//!             }))
//!             .await;
//!         assert!(failed.is_err());
//!         Ok::<_, airlock::BoxError>(())
//!     }))
//!     .await?;
//! let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs").fetch_one(&pool).await?;
//! assert_eq!(jobs, 1, "only the receipt enqueued outside the failed savepoint");
//! # Ok(()) }
//! ```
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), airlock::BoxError> {
//! use airlock::queue::SqliteQueue;
//!
//! #[airlock::task]
//! fn send_receipt(order_id: i64) {
//!     println!("receipt for order {order_id}");
//! }
//!
//! // The queue's tables live in the application's own database.
//! let queue = SqliteQueue::connect("sqlite::memory:").await?;
//! let pool = queue.pool().clone();
//! sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, total INTEGER)")
//!     .execute(&pool)
//!     .await?;
//!
//! let order_id = airlock::tx::co_commit(pool.begin().await?)
//!     .run(|tx| Box::pin(async move {
//!         let id: i64 = sqlx::query_scalar("INSERT INTO orders (total) VALUES (42) RETURNING id")
//!             .fetch_one(&mut **tx)
//!             .await?;
//!         send_receipt::enqueue(id)?; // written into the same transaction
//!         Ok::<_, airlock::BoxError>(id)
//!     }))
//!     .await?;
//!
//! // The order and its job committed together; a worker runs the job.
//! let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs").fetch_one(&pool).await?;
//! assert_eq!((order_id, jobs), (1, 1));
//! # Ok(()) }
//! ```

use std::fmt;
use std::ops::{Deref, DerefMut};

use sqlx::{Database, Transaction};

use crate::error::{BoxError, Error};
use crate::flush::must_finish::MustFinish;
use crate::flush::{FlushReport, PreparedFlush};
use crate::intent::Intent;
use crate::scope::lifecycle::{Ending, Finish, Lifecycle};
use crate::scope::{ActiveScope, DiscardReason, Durability, HandleGuard, Scope, ScopeHandle};
use crate::scope::{Bound, ScopeInfo};
use crate::task::BoxFuture;

/// Writes a flush's intents as queue jobs through a connection, uncommitted.
type PushFn<DB> = for<'c> fn(
    &'c mut <DB as Database>::Connection,
    &'c [Intent],
) -> BoxFuture<'c, Result<(), BoxError>>;

/// Checks, before an after-commit scope sends `COMMIT`, that its
/// transaction can still commit.
type ProbeFn<DB> =
    for<'c> fn(&'c mut <DB as Database>::Connection) -> BoxFuture<'c, Result<(), sqlx::Error>>;

/// [`ProbeFn`] for any sqlx database. PostgreSQL answers `COMMIT` in a
/// transaction a failed statement aborted (the body swallowed the error)
/// with a rollback *and no error*, so sqlx reports success: an after-commit
/// scope would dispatch the intents of a transaction that rolled back. A
/// statement first fails in such a transaction (25P02), which is the check;
/// it costs one round trip, and runs only when there are intents to
/// dispatch. Other databases have no aborted state to look for.
fn probe<DB: Database>(connection: &mut DB::Connection) -> BoxFuture<'_, Result<(), sqlx::Error>>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    Box::pin(async move {
        if DB::NAME == "PostgreSQL" {
            sqlx::raw_sql("SELECT 1").execute(connection).await?;
        }
        Ok(())
    })
}

/// A database whose transactions can carry queue jobs: the apalis queue
/// tables live in it, so intents commit with the business data.
///
/// Implemented for `sqlx::Sqlite` (feature `apalis-sqlite`) and
/// `sqlx::Postgres` (feature `apalis-postgres`); sealed.
pub trait CoCommitDatabase: Database + sealed::Sealed {
    #[doc(hidden)]
    fn __push<'c>(
        connection: &'c mut Self::Connection,
        intents: &'c [Intent],
    ) -> BoxFuture<'c, Result<(), BoxError>>;
}

// Implemented by the queue backends (`queue::sqlite`, `queue::postgres`),
// which know how to write their jobs; nothing else can.
pub(crate) mod sealed {
    pub trait Sealed {}
}

/// Starts an [after-commit](Durability::AfterCommit) scope on `tx` with the
/// default settings (see [`Scope::after_commit`] to name it or give it a
/// policy or executor).
///
/// The intents go to the scope's executor once `COMMIT` succeeded; here the
/// default [`InProcess`](crate::InProcess) executor runs the task.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), airlock::BoxError> {
/// use std::sync::atomic::{AtomicI64, Ordering};
///
/// static RECEIPT_FOR: AtomicI64 = AtomicI64::new(0);
///
/// #[airlock::task]
/// fn send_receipt(order_id: i64) {
///     RECEIPT_FOR.store(order_id, Ordering::SeqCst);
/// }
///
/// # let queue = airlock::queue::SqliteQueue::connect("sqlite::memory:").await?;
/// # let pool = queue.pool().clone();
/// airlock::tx::after_commit(pool.begin().await?)
///     .run(|tx| Box::pin(async move {
///         sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY)")
///             .execute(&mut **tx)
///             .await?;
///         send_receipt::enqueue(7)?;
///         assert_eq!(RECEIPT_FOR.load(Ordering::SeqCst), 0, "nothing runs before COMMIT");
///         Ok::<_, airlock::BoxError>(())
///     }))
///     .await?;
/// assert_eq!(RECEIPT_FOR.load(Ordering::SeqCst), 7, "dispatched after COMMIT");
/// # Ok(()) }
/// ```
pub fn after_commit<DB: Database>(tx: Transaction<'static, DB>) -> TxScope<DB>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    Scope::new().after_commit(tx)
}

/// Starts a [co-commit](Durability::CoCommit) scope on `tx` with the default
/// settings (see [`Scope::co_commit`]).
///
/// The intents are written as queue jobs into `tx` itself: they commit with
/// it, or roll back with it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), airlock::BoxError> {
/// # #[airlock::task] fn send_receipt(order_id: i64) { let _ = order_id; }
/// // The queue's tables live in the transaction's database.
/// let queue = airlock::queue::SqliteQueue::connect("sqlite::memory:").await?;
/// let pool = queue.pool().clone();
///
/// let declined: Result<(), airlock::BoxError> = airlock::tx::co_commit(pool.begin().await?)
///     .run(|_tx| Box::pin(async move {
///         send_receipt::enqueue(1)?;
///         Err("payment declined".into()) // rolls back: no job
///     }))
///     .await;
/// assert!(declined.is_err());
///
/// airlock::tx::co_commit(pool.begin().await?)
///     .run(|_tx| Box::pin(async move {
///         send_receipt::enqueue(2)?; // committed with the transaction
///         Ok::<_, airlock::BoxError>(())
///     }))
///     .await?;
///
/// let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs").fetch_one(&pool).await?;
/// assert_eq!(jobs, 1);
/// # Ok(()) }
/// ```
pub fn co_commit<DB: CoCommitDatabase>(tx: Transaction<'static, DB>) -> TxScope<DB> {
    Scope::new().co_commit(tx)
}

impl Scope {
    /// Starts this scope bound to `tx`: its intents are dispatched by its
    /// executor after `tx` commits, and discarded if it rolls back.
    pub fn after_commit<DB: Database>(self, tx: Transaction<'static, DB>) -> TxScope<DB>
    where
        for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    {
        TxScope::start(
            self,
            tx,
            Durability::AfterCommit,
            Commit::After(probe::<DB>),
        )
    }

    /// Starts this scope bound to `tx`: on commit its intents are written as
    /// apalis jobs into `tx` itself, then `tx` commits, so data and jobs
    /// commit (or roll back) together. The queue tables must exist in that
    /// database (create them once with
    /// [`SqliteQueue::new`](crate::queue::SqliteQueue::new) or its Postgres
    /// counterpart). The scope's executor is not used.
    pub fn co_commit<DB: CoCommitDatabase>(self, tx: Transaction<'static, DB>) -> TxScope<DB> {
        TxScope::start(self, tx, Durability::CoCommit, Commit::Co(DB::__push))
    }
}

/// A scope tied to a database transaction; see the [module docs](self).
///
/// It dereferences to the transaction's connection, so `&mut *scope` is a sqlx
/// executor. Run code inside it with [`run`](Self::run) (or
/// [`bind`](Self::bind) / [`enter`](Self::enter)), then end it with
/// [`commit`](Self::commit) or [`rollback`](Self::rollback). Dropping it
/// uncommitted rolls the transaction back and discards the intents.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), airlock::BoxError> {
/// # #[airlock::task] fn send_receipt(order_id: i64) { let _ = order_id; }
/// # let queue = airlock::queue::SqliteQueue::connect("sqlite::memory:").await?;
/// # let pool = queue.pool().clone();
/// # sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY)").execute(&pool).await?;
/// let mut scope = airlock::tx::after_commit(pool.begin().await?);
/// sqlx::query("INSERT INTO orders (id) VALUES (1)")
///     .execute(&mut *scope) // the scope is a sqlx executor
///     .await?;
/// scope.bind(async { send_receipt::enqueue(1) }).await?;
///
/// let report = scope.commit().await?; // COMMIT, then dispatch
/// assert_eq!(report.dispatched(), ["send_receipt"]);
/// # Ok(()) }
/// ```
#[must_use = "a TxScope rolls back and discards its intents unless committed"]
pub struct TxScope<DB: Database> {
    // Both are `Some` until `commit`/`rollback` take them (or `Drop` does).
    tx: Option<Transaction<'static, DB>>,
    scope: Option<ActiveScope>,
    handle: ScopeHandle,
    commit: Commit<DB>,
}

/// What a transaction scope does with its intents around `COMMIT`.
enum Commit<DB: Database> {
    /// Dispatch them after `COMMIT`, once the probe says it can commit.
    After(ProbeFn<DB>),
    /// Write them as jobs into the transaction before `COMMIT`.
    Co(PushFn<DB>),
}

// Not derived: the derive would ask `DB: Copy`; the fields are plain `fn`s.
impl<DB: Database> Clone for Commit<DB> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<DB: Database> Copy for Commit<DB> {}

impl<DB: Database> fmt::Debug for TxScope<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxScope")
            .field("scope", self.handle.info())
            .field("durability", &self.durability())
            .field("phase", &self.handle.phase())
            .finish_non_exhaustive()
    }
}

impl<DB: Database> TxScope<DB> {
    fn start(
        mut settings: Scope,
        tx: Transaction<'static, DB>,
        durability: Durability,
        commit: Commit<DB>,
    ) -> Self {
        settings.nesting = crate::scope::settings::Nesting::Boundary;
        settings.durability = Some(durability);
        let scope = settings.start();
        let handle = scope.handle();
        tracing::debug!(target: "airlock::tx", scope = %handle.info(), %durability, "transaction scope started");
        TxScope {
            tx: Some(tx),
            scope: Some(scope),
            handle,
            commit,
        }
    }

    /// The scope's identity.
    pub fn info(&self) -> &ScopeInfo {
        self.handle.info()
    }

    /// How the intents leave relative to the commit.
    pub fn durability(&self) -> Durability {
        self.handle
            .durability()
            .expect("a transaction scope always has a durability")
    }

    /// A handle to the scope (to inspect its intents, or carry it into a
    /// spawned task).
    pub fn handle(&self) -> ScopeHandle {
        self.handle.clone()
    }

    /// Makes the scope current on this thread until the guard drops (for
    /// synchronous code; the guard does not borrow `self`).
    pub fn enter(&self) -> HandleGuard {
        self.handle.enter()
    }

    /// Runs `future` with the scope current on every poll.
    pub fn bind<F: std::future::Future>(&self, future: F) -> Bound<F> {
        self.handle.bind(future)
    }

    /// Opens a [savepoint](savepoint()) nested in this transaction scope.
    ///
    /// # Errors
    /// As [`savepoint()`].
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_, DB>, Error> {
        let handle = self.handle.clone();
        handle.bind(savepoint(self.transaction())).await
    }

    /// The transaction itself.
    pub fn transaction(&mut self) -> &mut Transaction<'static, DB> {
        self.tx
            .as_mut()
            .expect("the transaction is only taken by commit/rollback, which consume the scope")
    }

    /// Runs `body` inside the scope with the transaction, then commits if it
    /// returns `Ok` and rolls back if it returns `Err` (or panics: dropping
    /// the scope rolls back). A failed commit turns `Ok` into
    /// `Err(E::from(error))`.
    ///
    /// `body` returns a boxed future (`|tx| Box::pin(async move { .. })`, as
    /// sqlx's own `Connection::transaction` does) so that the whole call stays
    /// `Send` for `tokio::spawn` and web handlers; an `async` closure would
    /// not, with today's compiler.
    ///
    /// # Errors
    /// The body's error, or the commit's ([`Error::Transaction`],
    /// [`Error::Dispatch`] for an after-commit dispatch failure).
    pub async fn run<T, E, F>(mut self, body: F) -> Result<T, E>
    where
        F: for<'t> FnOnce(&'t mut Transaction<'static, DB>) -> BoxFuture<'t, Result<T, E>>,
        E: From<Error>,
    {
        let (scope, mut tx) = self.take();
        let ending = ByTransaction {
            handle: self.handle.clone(),
            commit: self.commit,
        };
        // The body borrows the transaction; the future owns it and hands it
        // back with the body's result, for the commit or the rollback.
        let body = async move {
            let result = body(&mut tx).await;
            (result, tx)
        };
        Lifecycle::started(scope, body, ending).await
    }

    /// Ends the scope and commits the transaction; see the
    /// [module docs](self) for what each durability does with the intents.
    /// If anything fails before `COMMIT` succeeded, the transaction rolls back
    /// and no intent is dispatched.
    ///
    /// Once the scope has ended the work is finished even if this future is
    /// dropped (a request timeout, a client gone): the commit and the
    /// dispatch go on as a tokio task, so a committed transaction's intents
    /// are dispatched whoever stopped waiting.
    ///
    /// # Errors
    /// [`Error::Transaction`] if the jobs could not be written (co-commit) or
    /// the database refused the commit; [`Error::TransactionInDoubt`] if the
    /// connection failed after `COMMIT` was sent (the intents are reported
    /// interrupted, never dispatched); [`Error::PolicyPanicked`] if a policy panicked while
    /// filtering (the transaction then rolls back); [`Error::Dispatch`] if the
    /// after-commit dispatch failed (the data is committed; the error hands
    /// back the intents that were not dispatched).
    pub async fn commit(mut self) -> Result<FlushReport, Error> {
        let (scope, mut tx) = self.take();
        // Logical end first: nothing can be enqueued once committing starts.
        let mut prepared = scope.prepare_flush()?;
        let info = prepared.scope().clone();
        // Either way the survivors leave the prepared flush before COMMIT:
        // a flush dropped from here on reports them interrupted (COMMIT may
        // be on the wire, or done), never discarded.
        let intents = prepared.take_survivors();
        // Co-commit writes the jobs first; after-commit checks the
        // transaction can commit. Until COMMIT is sent, a caller that stops
        // waiting rolls everything back, as it always could.
        let co_commit = matches!(self.commit, Commit::Co(_));
        if let Commit::After(probe) = self.commit {
            if !intents.is_empty() {
                if let Err(error) = probe(&mut tx).await {
                    if let Err(rollback) = tx.rollback().await {
                        tracing::warn!(target: "airlock::tx", scope = %info, error = %rollback, "rollback failed");
                    }
                    prepared.abort(DiscardReason::CommitFailed(error.to_string()));
                    return Err(transaction_error(info, "commit", error));
                }
            }
        }
        if let Commit::Co(push) = self.commit {
            if !intents.is_empty() {
                if let Err(error) = push(&mut tx, &intents).await {
                    if let Err(rollback) = tx.rollback().await {
                        tracing::warn!(target: "airlock::tx", scope = %info, error = %rollback, "rollback failed");
                    }
                    prepared.abort(DiscardReason::RolledBack);
                    return Err(transaction_error(
                        info,
                        "queue its intents",
                        format!(
                            "{error} (co-commit writes into the apalis queue tables of the \
                             transaction's own database: create them once with the queue's `new`)"
                        ),
                    ));
                }
            }
        }
        // From COMMIT on, the caller going away must not decide the intents'
        // fate: the commit and the dispatch finish in the background.
        MustFinish::new(
            Box::pin(commit_then_dispatch(prepared, tx, intents, co_commit)),
            "a transaction scope's commit and flush",
        )
        .await
    }

    /// Discards the intents and rolls the transaction back.
    ///
    /// # Errors
    /// [`Error::Transaction`] if the database reported an error while rolling
    /// back (the intents are discarded regardless).
    pub async fn rollback(mut self) -> Result<FlushReport, Error> {
        let (scope, tx) = self.take();
        let info = scope.info().clone();
        let report = scope.discard_with(DiscardReason::RolledBack);
        tx.rollback()
            .await
            .map_err(|error| transaction_error(info, "roll back", error))?;
        Ok(report)
    }

    fn take(&mut self) -> (ActiveScope, Transaction<'static, DB>) {
        let taken = self.scope.take().zip(self.tx.take());
        taken.expect("commit/rollback consume the scope, so it is still open")
    }
}

/// The ending of [`TxScope::run`]: commit on `Ok`, roll back on `Err`; a
/// panic or a dropped future rolls back too (the transaction drops with the
/// body). A failed commit replaces an `Ok` with its error; a failed rollback
/// is logged, and the body's own error is returned.
struct ByTransaction<DB: Database> {
    handle: ScopeHandle,
    commit: Commit<DB>,
}

impl<DB: Database, T, E: From<Error>> Ending<(Result<T, E>, Transaction<'static, DB>)>
    for ByTransaction<DB>
{
    type Kept = Result<T, E>;
    type Output = Result<T, E>;

    fn end(
        &mut self,
        scope: ActiveScope,
        output: Option<(Result<T, E>, Transaction<'static, DB>)>,
    ) -> (Option<Result<T, E>>, Option<Finish>) {
        let Some((result, tx)) = output else {
            // The transaction dropped while the panic unwound the body.
            scope.discard_with(DiscardReason::RolledBack);
            return (None, None);
        };
        let tx_scope = TxScope {
            tx: Some(tx),
            scope: Some(scope),
            handle: self.handle.clone(),
            commit: self.commit,
        };
        let finish: Finish = if result.is_ok() {
            Box::pin(tx_scope.commit())
        } else {
            Box::pin(tx_scope.rollback())
        };
        (Some(result), Some(finish))
    }

    fn complete(
        &mut self,
        result: Result<T, E>,
        finished: Option<Result<FlushReport, Error>>,
    ) -> Result<T, E> {
        match (result, finished) {
            (Ok(_), Some(Err(error))) => Err(E::from(error)),
            (Err(error), Some(Err(rollback))) => {
                tracing::warn!(target: "airlock::tx", error = %rollback, "rollback failed");
                Err(error)
            }
            (result, _) => result,
        }
    }

    fn cancel(scope: ActiveScope) {
        // The body, and the transaction it held, dropped with the future.
        tracing::debug!(target: "airlock::tx", scope = %scope.info(), "transaction scope dropped uncommitted; rolled back");
        scope.discard_with(DiscardReason::RolledBack);
    }
}

/// The part of [`TxScope::commit`] that must finish once started: `COMMIT`,
/// then the after-commit dispatch (co-commit's jobs are already written).
///
/// A `COMMIT` the database never answered (the connection failed after
/// sending it) may have committed: its intents are in doubt, reported
/// `Interrupted` and never dispatched, and the error says the outcome is
/// unknown, never that it rolled back.
async fn commit_then_dispatch<DB: Database>(
    prepared: PreparedFlush,
    tx: Transaction<'static, DB>,
    intents: Vec<Intent>,
    co_committed: bool,
) -> Result<FlushReport, Error> {
    let info = prepared.scope().clone();
    if let Err(error) = tx.commit().await {
        if let sqlx::Error::Database(_) = error {
            // The database answered: it refused the commit, so nothing, jobs
            // included, was written.
            prepared.abort(DiscardReason::CommitFailed(error.to_string()));
            return Err(transaction_error(info, "commit", error));
        }
        // No answer: the rows (and co-committed jobs) committed together or
        // not at all, and only the database knows which. The prepared flush
        // holds them in flight: dropping it reports them `Interrupted`.
        drop(prepared);
        // After-commit intents were never dispatched: hand them back, so the
        // caller can check the database and dispatch them itself.
        let in_doubt = if co_committed { Vec::new() } else { intents };
        return Err(Error::TransactionInDoubt {
            scope: info,
            in_doubt,
            source: error.into(),
        });
    }
    if co_committed {
        tracing::debug!(target: "airlock::tx", scope = %info, queued = intents.len(), "co-committed");
        return prepared.complete(Ok(()));
    }
    prepared.dispatch_survivors(intents).await
}

fn transaction_error(scope: ScopeInfo, action: &'static str, source: impl Into<BoxError>) -> Error {
    Error::Transaction {
        scope,
        action,
        source: source.into(),
    }
}

impl<DB: Database> Drop for TxScope<DB> {
    fn drop(&mut self) {
        // Uncommitted: the transaction rolls back as it drops; so do the intents.
        if let Some(scope) = self.scope.take() {
            tracing::debug!(target: "airlock::tx", scope = %scope.info(), "transaction scope dropped uncommitted; rolled back");
            scope.discard_with(DiscardReason::RolledBack);
        }
    }
}

impl<DB: Database> Deref for TxScope<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        self.tx
            .as_ref()
            .expect("the transaction is only taken by commit/rollback, which consume the scope")
    }
}

impl<DB: Database> DerefMut for TxScope<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.transaction()
    }
}

/// Opens a savepoint in `tx` that is also a scope, nested in the current one
/// (the transaction scope, inside [`TxScope::run`]): intents enqueued under
/// it join the enclosing scope when it is [released](Savepoint::release) and
/// are discarded when it [rolls back](Savepoint::rollback) or is dropped, as
/// its writes are. See the [module docs](self#savepoints). To nest one in a
/// savepoint or transaction scope you hold (rather than the current scope),
/// use [`Savepoint::savepoint`] or [`TxScope::savepoint`].
///
/// # Errors
/// [`Error::Savepoint`] if the current scope is not a transaction scope or
/// inside one (a savepoint's intents must share a transaction's fate), or
/// the database refuses the savepoint.
pub async fn savepoint<'t, DB: Database>(
    tx: &'t mut Transaction<'_, DB>,
) -> Result<Savepoint<'t, DB>, Error> {
    let in_transaction = crate::scope::current().is_some_and(|scope| {
        std::iter::once(&scope.0)
            .chain(scope.0.ancestors())
            .any(|core| core.durability.is_some())
    });
    if !in_transaction {
        return Err(Error::Savepoint {
            action: "open",
            reason: "the current scope is not a transaction scope or inside one, so the \
                     savepoint's intents would not share its fate: open savepoints inside a \
                     transaction scope (the body of TxScope::run, or with TxScope::enter/bind)"
                .into(),
        });
    }
    // Started under the current frame: nested in the current scope, under
    // every policy in force here (`with_policy` blocks included).
    let scope = Scope::new().name("savepoint").start();
    let handle = scope.handle();
    match sqlx::Connection::begin(&mut **tx).await {
        Ok(savepoint) => Ok(Savepoint {
            tx: Some(savepoint),
            scope: Some(scope),
            handle,
            releasing: false,
        }),
        Err(error) => {
            scope.discard_with(DiscardReason::RolledBack);
            Err(Error::Savepoint {
                action: "open",
                reason: error.into(),
            })
        }
    }
}

/// A savepoint that is also a scope; see [`savepoint`].
///
/// It dereferences to the connection, so `&mut *savepoint` is a sqlx
/// executor. Dropping it unreleased rolls the savepoint back and discards
/// its intents.
#[must_use = "a Savepoint rolls back and discards its intents unless released"]
pub struct Savepoint<'t, DB: Database> {
    tx: Option<Transaction<'t, DB>>,
    scope: Option<ActiveScope>,
    handle: ScopeHandle,
    /// `RELEASE` is on the wire: dropped now, the intents go up (the
    /// savepoint was released, or the connection broke and the whole
    /// transaction goes with them).
    releasing: bool,
}

impl<DB: Database> fmt::Debug for Savepoint<'_, DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Savepoint")
            .field("scope", self.handle.info())
            .field("phase", &self.handle.phase())
            .finish_non_exhaustive()
    }
}

impl<'t, DB: Database> Savepoint<'t, DB> {
    /// A handle to the savepoint's scope.
    pub fn handle(&self) -> ScopeHandle {
        self.handle.clone()
    }

    /// Makes the savepoint's scope current on this thread until the guard
    /// drops.
    pub fn enter(&self) -> HandleGuard {
        self.handle.enter()
    }

    /// Runs `future` with the savepoint's scope current on every poll.
    pub fn bind<F: std::future::Future>(&self, future: F) -> Bound<F> {
        self.handle.bind(future)
    }

    /// The savepoint's transaction.
    pub fn transaction(&mut self) -> &mut Transaction<'t, DB> {
        self.tx
            .as_mut()
            .expect("the savepoint is only taken by release/rollback, which consume it")
    }

    /// Runs `body` inside the savepoint's scope, then releases the savepoint
    /// if it returns `Ok` and rolls it back if it returns `Err` (or panics:
    /// dropping the savepoint rolls back).
    ///
    /// # Errors
    /// The body's error, or the release's ([`Error::Savepoint`]).
    pub async fn run<T, E, F>(mut self, body: F) -> Result<T, E>
    where
        F: for<'s> FnOnce(&'s mut Transaction<'t, DB>) -> BoxFuture<'s, Result<T, E>>,
        E: From<Error>,
    {
        let handle = self.handle.clone();
        let result = handle.bind(body(self.transaction())).await;
        match result {
            Ok(value) => {
                self.release().await?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback) = self.rollback().await {
                    tracing::warn!(target: "airlock::tx", error = %rollback, "savepoint rollback failed");
                }
                Err(error)
            }
        }
    }

    /// Opens a savepoint inside this one, nested in its scope.
    ///
    /// # Errors
    /// As [`savepoint`].
    pub async fn savepoint(&mut self) -> Result<Savepoint<'_, DB>, Error> {
        let handle = self.handle.clone();
        let tx = self
            .tx
            .as_mut()
            .expect("the savepoint is only taken by release/rollback, which consume it");
        handle.bind(savepoint(tx)).await
    }

    /// Releases the savepoint (its writes join the transaction), then hands
    /// its intents to the enclosing scope.
    ///
    /// # Errors
    /// [`Error::Savepoint`] if `RELEASE` fails. If the database refused it,
    /// the intents are discarded with the savepoint; if no answer came (the
    /// connection failed), they go to the enclosing scope, whose transaction
    /// shares whatever happened.
    pub async fn release(mut self) -> Result<FlushReport, Error> {
        let tx = self
            .tx
            .take()
            .expect("the savepoint is only taken by release/rollback, which consume it");
        self.releasing = true;
        let released = tx.commit().await;
        let scope = self
            .scope
            .take()
            .expect("the scope is only taken by release/rollback, which consume it");
        match released {
            Ok(()) => scope.flush(),
            Err(error @ sqlx::Error::Database(_)) => {
                scope.discard_with(DiscardReason::RolledBack);
                Err(Error::Savepoint {
                    action: "release",
                    reason: error.into(),
                })
            }
            Err(error) => {
                if let Err(flush) = scope.flush() {
                    tracing::error!(target: "airlock::tx", error = %flush, "handing a savepoint's intents up failed");
                }
                Err(Error::Savepoint {
                    action: "release",
                    reason: error.into(),
                })
            }
        }
    }

    /// Discards the savepoint's intents and rolls it back.
    ///
    /// # Errors
    /// [`Error::Savepoint`] if the database reported an error while rolling
    /// back (the intents are discarded regardless).
    pub async fn rollback(mut self) -> Result<FlushReport, Error> {
        let (scope, tx) = self.take();
        let report = scope.discard_with(DiscardReason::RolledBack);
        tx.rollback().await.map_err(|error| Error::Savepoint {
            action: "roll back",
            reason: error.into(),
        })?;
        Ok(report)
    }

    fn take(&mut self) -> (ActiveScope, Transaction<'t, DB>) {
        let taken = self.scope.take().zip(self.tx.take());
        taken.expect("release/rollback consume the savepoint, so it is still open")
    }
}

impl<DB: Database> Drop for Savepoint<'_, DB> {
    fn drop(&mut self) {
        let Some(scope) = self.scope.take() else {
            return;
        };
        if self.releasing {
            // Dropped during RELEASE: released, or the transaction is broken.
            if let Err(error) = scope.flush() {
                tracing::error!(target: "airlock::tx", %error, "handing a savepoint's intents up failed");
            }
            return;
        }
        // Unreleased: sqlx rolls the savepoint back as it drops; so do the intents.
        tracing::debug!(target: "airlock::tx", scope = %scope.info(), "savepoint dropped unreleased; rolled back");
        scope.discard_with(DiscardReason::RolledBack);
    }
}

impl<DB: Database> Deref for Savepoint<'_, DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &DB::Connection {
        self.tx
            .as_ref()
            .expect("the savepoint is only taken by release/rollback, which consume it")
    }
}

impl<DB: Database> DerefMut for Savepoint<'_, DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.transaction()
    }
}
