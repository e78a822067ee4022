//! The `crash-produce` role of the SQL backends: a producer that places
//! orders until the crash-injection test kills it (see
//! `airlock_tests::crash` and `tests/crash_cocommit.rs`).
//!
//! `crash-produce <database-url> <co-commit|after-commit> <first-order> <orders> <stream|POINT>`
//!
//! Prints `ready` once connected, then places orders `first-order`,
//! `first-order + 1`, ..., each printing `begin N` before its transaction and
//! `committed N` once `run` returned. Then:
//! * `stream`: after `orders` orders prints `done` and waits; the test kills
//!   it at a random moment, usually long before.
//! * a point (`in-body`, `mid-flush:N`, `in-commit`, `after-commit`): places
//!   `orders` orders normally, then stops at that point of the next one,
//!   prints `hang POINT ORDER` and waits there for its SIGKILL.
//!
//! Where the process stops is the backend's business: `in-body` and
//! `after-commit` are plain code here, `mid-flush` and `in-commit` are
//! SQLite hooks on the producer's connection or PostgreSQL triggers. No test
//! hook lives in the library.

use std::sync::{Arc, Mutex};

use airlock::executor::BoxFuture;
use airlock::{DispatchError, Executor, Intent, Scope};
use airlock_tests::crash::{enqueue_order_intents, hang_line, Point};
use anyhow::Context;
use sqlx::Transaction;

/// Whether each order's intents commit with it or are dispatched after.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    CoCommit,
    AfterCommit,
}

/// The role's arguments (after the role name).
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) url: String,
    pub(crate) mode: Mode,
    first: i64,
    orders: i64,
    hang: Option<Point>,
}

impl Args {
    pub(crate) fn parse(args: &[String]) -> anyhow::Result<Args> {
        let [url, mode, first, orders, plan] = args else {
            anyhow::bail!(
                "crash-produce: expected <database-url> <co-commit|after-commit> \
                 <first-order> <orders> <stream|POINT>, got {args:?}"
            );
        };
        let mode = match mode.as_str() {
            "co-commit" => Mode::CoCommit,
            "after-commit" => Mode::AfterCommit,
            other => anyhow::bail!("crash-produce: unknown mode {other:?}"),
        };
        let hang = match plan.as_str() {
            "stream" => None,
            point => Some(point.parse().map_err(anyhow::Error::msg)?),
        };
        Ok(Args {
            url: url.clone(),
            mode,
            first: first.parse().context("<first-order>")?,
            orders: orders.parse().context("<orders>")?,
            hang,
        })
    }
}

/// What a SQL backend brings to the producer.
pub(crate) trait Backend {
    type Db: airlock::tx::CoCommitDatabase;

    /// The producer's pool: one connection, so every statement of an order
    /// (and of its after-commit dispatch) runs on it.
    fn pool(&self) -> &sqlx::Pool<Self::Db>;

    /// The queue an after-commit scope dispatches to (after-commit mode).
    fn queue(&self) -> Option<Arc<dyn Executor>>;

    /// Inserts the row of `order`.
    fn insert_order<'t>(
        tx: &'t mut Transaction<'static, Self::Db>,
        order: i64,
    ) -> BoxFuture<'t, sqlx::Result<()>>;

    /// Arms the backend's own stop at `point` of the next order (SQLite
    /// hooks read [`armed`]; PostgreSQL sets the session setting its triggers
    /// read, and watches for the sleep to announce it).
    async fn arm(&self, point: Point, order: i64) -> anyhow::Result<()>;

    /// Called before each order's transaction begins.
    fn begin_order(&self) {}
}

static ARMED: Mutex<Option<(Point, i64)>> = Mutex::new(None);

/// The armed point and its order, if `point` is armed.
pub(crate) fn armed(point: impl Fn(Point) -> bool) -> Option<(Point, i64)> {
    let armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
    armed.filter(|(p, _)| point(*p))
}

/// Announces the stop and blocks this thread for good (for hooks that run
/// on a database driver's thread).
#[cfg(feature = "apalis-sqlite")]
pub(crate) fn stop_here_blocking(point: Point, order: i64) -> ! {
    println!("{}", hang_line(point, order));
    loop {
        std::thread::park();
    }
}

/// Announces the stop and never completes.
async fn stop_here(point: Point, order: i64) {
    println!("{}", hang_line(point, order));
    std::future::pending::<()>().await;
}

pub(crate) async fn produce<B: Backend>(backend: B, args: Args) -> anyhow::Result<()>
where
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
{
    println!("ready");
    let last = args.first + args.orders;
    for order in args.first..last {
        place(&backend, args.mode, order).await?;
    }
    let Some(point) = args.hang else {
        println!("done");
        std::future::pending::<()>().await;
        return Ok(());
    };
    *ARMED.lock().unwrap_or_else(|p| p.into_inner()) = Some((point, last));
    backend.arm(point, last).await?;
    place(&backend, args.mode, last).await?;
    anyhow::bail!("placed order {last} without stopping at {point}")
}

async fn place<B: Backend>(backend: &B, mode: Mode, order: i64) -> anyhow::Result<()>
where
    // What after-commit scopes need of a database, as sqlx's generic code does.
    for<'c> &'c mut <B::Db as sqlx::Database>::Connection: sqlx::Executor<'c, Database = B::Db>,
{
    backend.begin_order();
    println!("begin {order}");
    let tx = backend.pool().begin().await?;
    let scope = Scope::new().name("crash-produce");
    let tx = match mode {
        Mode::CoCommit => scope.co_commit(tx),
        Mode::AfterCommit => {
            let queue = backend.queue().context("after-commit needs the queue")?;
            scope.executor(StopBeforePush(queue)).after_commit(tx)
        }
    };
    tx.run(|tx| {
        Box::pin(async move {
            B::insert_order(tx, order).await?;
            enqueue_order_intents(order)?;
            if let Some((point, order)) = armed(|p| p == Point::InBody) {
                stop_here(point, order).await;
            }
            Ok::<_, anyhow::Error>(())
        })
    })
    .await?;
    if mode == Mode::CoCommit {
        if let Some((point, order)) = armed(|p| p == Point::AfterCommit) {
            stop_here(point, order).await;
        }
    }
    println!("committed {order}");
    Ok(())
}

/// The after-commit executor: the queue, except that when `after-commit` is
/// armed it stops before pushing (the order committed, nothing queued).
#[derive(Debug)]
struct StopBeforePush(Arc<dyn Executor>);

impl Executor for StopBeforePush {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        self.0.dispatch(intents)
    }

    fn dispatch_async(&self, intents: Vec<Intent>) -> BoxFuture<'_, Result<(), DispatchError>> {
        match armed(|p| p == Point::AfterCommit) {
            Some((point, order)) => Box::pin(async move {
                stop_here(point, order).await;
                unreachable!("stop_here never completes")
            }),
            None => self.0.dispatch_async(intents),
        }
    }
}
