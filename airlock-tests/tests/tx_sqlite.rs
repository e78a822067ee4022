//! Transaction scopes over real SQLite files: after-commit and co-commit,
//! commit, rollback, drop, panic, failed commit, nesting and policies.
#![cfg(feature = "apalis-sqlite")]

use std::time::Duration;

use airlock::queue::SqliteQueue;
use airlock::worker::WorkerOptions;
use airlock::{DiscardReason, DropAll, Durability, Error, Fate, InProcess, Scope, ScopePhase};
use airlock_tests::{record, runs, tag};
use sqlx::SqlitePool;

/// A fresh database with the queue tables and an `orders` table whose
/// `customer` must exist by commit time (a deferred foreign key, so a commit
/// can really fail).
async fn database(dir: &tempfile::TempDir) -> (SqliteQueue, SqlitePool) {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let queue = SqliteQueue::connect(&url)
        .await
        .expect("the database opens");
    let pool = queue.pool().clone();
    for statement in [
        "PRAGMA foreign_keys = ON",
        "CREATE TABLE customers (id INTEGER PRIMARY KEY)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER NOT NULL \
         REFERENCES customers(id) DEFERRABLE INITIALLY DEFERRED)",
        "INSERT INTO customers (id) VALUES (1)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    (queue, pool)
}

async fn scalar(pool: &SqlitePool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn orders(pool: &SqlitePool) -> i64 {
    scalar(pool, "SELECT COUNT(*) FROM orders").await
}

async fn jobs(pool: &SqlitePool) -> i64 {
    scalar(pool, "SELECT COUNT(*) FROM Jobs").await
}

/// Inserts an order for `customer` through `conn`.
async fn insert_order(conn: &mut sqlx::SqliteConnection, customer: i64) -> sqlx::Result<()> {
    // Deferred foreign keys are per connection; pooled connections may not have it.
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO orders (customer) VALUES (?)")
        .bind(customer)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

#[tokio::test]
async fn co_commit_writes_the_jobs_in_the_same_transaction_as_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("co-commit");
    let mut tx = airlock::tx::co_commit(pool.begin().await.unwrap());
    assert_eq!(tx.durability(), Durability::CoCommit);
    let handle = tx.handle();
    insert_order(&mut tx, 1).await.unwrap();
    let seen = tx
        .bind(async {
            record::enqueue(t.clone(), 1)?;
            record::intent(t.clone(), 2)
                .max_attempts(3)
                .priority(5)
                .enqueue()?;
            Ok::<_, Error>(airlock::current().and_then(|scope| scope.durability()))
        })
        .await
        .unwrap();
    assert_eq!(
        seen,
        Some(Durability::CoCommit),
        "introspection shows the mode"
    );
    assert_eq!(jobs(&pool).await, 0, "nothing is written before commit");

    let report = tx.commit().await.unwrap();
    assert_eq!(report.dispatched(), ["record", "record"]);
    assert_eq!(handle.phase(), ScopePhase::Flushed);
    assert_eq!(orders(&pool).await, 1);
    let rows: Vec<(i64, i64)> =
        sqlx::query_as("SELECT max_attempts, priority FROM Jobs ORDER BY priority")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows, [(5, 0), (3, 5)], "options travel into the rows");
    assert!(runs(&t).is_empty(), "queued, not run in process");
}

#[tokio::test]
async fn an_error_in_the_body_rolls_back_data_and_intents() {
    for durability in [Durability::AfterCommit, Durability::CoCommit] {
        let dir = tempfile::tempdir().unwrap();
        let (_queue, pool) = database(&dir).await;
        let t = tag("rollback");
        let tx = pool.begin().await.unwrap();
        let scope = Scope::new().executor(InProcess);
        let tx = match durability {
            Durability::AfterCommit => scope.after_commit(tx),
            _ => scope.co_commit(tx),
        };
        let handle = tx.handle();
        let tc = t.clone();
        let result: Result<(), airlock::BoxError> = tx
            .run(|tx| {
                Box::pin(async move {
                    insert_order(tx, 1).await?;
                    record::enqueue(tc.clone(), 1)?;
                    Err("payment declined".into())
                })
            })
            .await;
        assert_eq!(result.unwrap_err().to_string(), "payment declined");
        assert_eq!(
            orders(&pool).await,
            0,
            "{durability}: the order rolled back"
        );
        assert_eq!(jobs(&pool).await, 0, "{durability}: no job");
        assert!(runs(&t).is_empty(), "{durability}: nothing ran");
        assert_eq!(handle.discard_reason(), Some(DiscardReason::RolledBack));
        assert_eq!(
            handle.records()[0].fate,
            Fate::Discarded(DiscardReason::RolledBack)
        );
    }
}

#[tokio::test]
async fn a_dropped_or_panicking_transaction_scope_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("dropped");

    let mut tx = airlock::tx::co_commit(pool.begin().await.unwrap());
    let dropped = tx.handle();
    insert_order(&mut tx, 1).await.unwrap();
    tx.in_scope_enqueue(&t);
    drop(tx);

    let pool2 = pool.clone();
    let t2 = t.clone();
    let panicked = tokio::spawn(async move {
        let tx = airlock::tx::co_commit(pool2.begin().await.unwrap());
        let _: Result<(), Error> = tx
            .run(|tx| {
                Box::pin(async move {
                    insert_order(tx, 1).await.unwrap();
                    record::enqueue(t2, 2)?;
                    panic!("the handler panicked");
                })
            })
            .await;
    })
    .await;
    assert!(panicked.unwrap_err().is_panic());

    assert_eq!(dropped.discard_reason(), Some(DiscardReason::RolledBack));
    assert_eq!(orders(&pool).await, 0);
    assert_eq!(jobs(&pool).await, 0);
}

/// Enqueues `record(tag, 1)` into the transaction scope from synchronous code.
trait EnqueueIn {
    fn in_scope_enqueue(&self, tag: &str);
}

impl<DB: sqlx::Database> EnqueueIn for airlock::tx::TxScope<DB> {
    fn in_scope_enqueue(&self, tag: &str) {
        let _entered = self.enter();
        record::enqueue(tag.to_owned(), 1).unwrap();
    }
}

#[tokio::test]
async fn after_commit_dispatches_only_once_the_commit_succeeded() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("after-commit");
    let tx = Scope::new()
        .executor(InProcess)
        .after_commit(pool.begin().await.unwrap());
    let handle = tx.handle();
    let tc = t.clone();
    let before_commit = tx
        .run(|tx| {
            Box::pin(async move {
                insert_order(tx, 1).await?;
                record::enqueue(tc.clone(), 7)?;
                assert_eq!(
                    airlock::current().and_then(|s| s.durability()),
                    Some(Durability::AfterCommit)
                );
                Ok::<_, airlock::BoxError>(runs(&tc))
            })
        })
        .await
        .unwrap();
    assert!(
        before_commit.is_empty(),
        "nothing ran inside the transaction"
    );
    assert_eq!(runs(&t), ["record(7)"], "ran after the commit");
    assert_eq!(orders(&pool).await, 1);
    assert_eq!(handle.records()[0].fate, Fate::Dispatched);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transactions_intents_are_dispatched_when_the_caller_stops_waiting() {
    // The caller's timeout fires while the after-commit dispatch is still
    // running the task: the transaction committed, so the dispatch must
    // finish anyway.
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("after-commit-abandoned");
    let tx = Scope::new()
        .executor(InProcess)
        .after_commit(pool.begin().await.unwrap());
    let handle = tx.handle();
    let tc = t.clone();
    let commit = tx.run(|tx| {
        Box::pin(async move {
            insert_order(tx, 1).await?;
            airlock_tests::wait_for_open::enqueue(tc)?;
            Ok::<_, airlock::BoxError>(())
        })
    });
    let timed_out = tokio::time::timeout(Duration::from_millis(200), commit).await;
    assert!(timed_out.is_err(), "the dispatch was still running");
    assert_eq!(orders(&pool).await, 1, "committed");
    assert_eq!(runs(&t), ["started"]);
    airlock_tests::record_run(&t, "open");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while handle.phase() != ScopePhase::Flushed && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs(&t), ["started", "open", "finished"]);
    assert_eq!(handle.records()[0].fate, Fate::Dispatched);
}

#[tokio::test]
async fn a_failed_commit_dispatches_and_queues_nothing() {
    for durability in [Durability::AfterCommit, Durability::CoCommit] {
        let dir = tempfile::tempdir().unwrap();
        let (_queue, pool) = database(&dir).await;
        let t = tag("commit-fails");
        let tx = pool.begin().await.unwrap();
        let scope = Scope::new().executor(InProcess);
        let mut tx = match durability {
            Durability::AfterCommit => scope.after_commit(tx),
            _ => scope.co_commit(tx),
        };
        let handle = tx.handle();
        // Customer 99 does not exist: the deferred foreign key fails at COMMIT.
        insert_order(&mut tx, 99).await.unwrap();
        tx.in_scope_enqueue(&t);
        let error = tx.commit().await.unwrap_err();
        assert!(
            matches!(
                error,
                Error::Transaction {
                    action: "commit",
                    ..
                }
            ),
            "{durability}: {error}"
        );
        assert!(error.to_string().contains("rolled back"), "{error}");
        assert!(runs(&t).is_empty(), "{durability}: nothing ran");
        assert_eq!(orders(&pool).await, 0);
        assert_eq!(jobs(&pool).await, 0, "{durability}: no job survived");
        assert!(matches!(
            handle.records()[0].fate,
            Fate::Discarded(DiscardReason::CommitFailed(_))
        ));
    }
}

#[tokio::test]
async fn co_commit_without_queue_tables_rolls_back_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("bare.db").display());
    let pool = SqlitePool::connect(&url).await.unwrap();
    sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    let t = tag("no-tables");
    let mut tx = airlock::tx::co_commit(pool.begin().await.unwrap());
    sqlx::query("INSERT INTO orders (customer) VALUES (1)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.in_scope_enqueue(&t);
    let error = tx.commit().await.unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(
            error,
            Error::Transaction {
                action: "queue its intents",
                ..
            }
        ),
        "{message}"
    );
    assert!(message.contains("create them once"), "{message}");
    let orders: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        orders, 0,
        "the business data rolled back with the failed push"
    );
}

#[tokio::test]
async fn nested_scopes_are_captured_by_the_transaction_scope() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("nested");
    let tx = airlock::tx::co_commit(pool.begin().await.unwrap());
    let handle = tx.handle();
    let tc = t.clone();
    tx.run(|_tx| {
        Box::pin(async move {
            // An inner scope's intents go up to the transaction scope...
            airlock::scope_async(async { record::enqueue(tc.clone(), 1).map(drop) }).await?;
            // ...and an inner dry run stays a dry run.
            Scope::new()
                .policy(DropAll)
                .run_async(async { record::enqueue(tc.clone(), 2).map(drop) })
                .await?;
            Ok::<_, Error>(())
        })
    })
    .await
    .unwrap();
    assert_eq!(jobs(&pool).await, 1);
    let fates: Vec<_> = handle.records().iter().map(|r| r.fate.clone()).collect();
    assert_eq!(fates.len(), 2);
    assert_eq!(fates[0], Fate::Dispatched);
    assert!(matches!(fates[1], Fate::Dropped { .. }), "{:?}", fates[1]);
}

#[tokio::test]
async fn a_transaction_scope_decides_itself_but_stays_under_outer_policies() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("outer");

    // Inside an ordinary (request-like) scope, the transaction commits its
    // jobs itself: the outer scope neither captures nor delays them.
    let outer = Scope::new().start();
    let outer_handle = outer.handle();
    outer
        .handle()
        .bind(async {
            let tc = t.clone();
            airlock::tx::co_commit(pool.begin().await.unwrap())
                .run(|_tx| Box::pin(async move { record::enqueue(tc.clone(), 1).map(drop) }))
                .await
        })
        .await
        .unwrap();
    assert_eq!(jobs(&pool).await, 1, "committed with the transaction");
    let report = outer.discard("the request failed after the commit");
    assert!(
        report.records().is_empty(),
        "the outer scope never held them"
    );
    assert_eq!(outer_handle.phase(), ScopePhase::Discarded);
    assert_eq!(jobs(&pool).await, 1, "committed jobs stay committed");

    // A dry-run outer scope still drops what the transaction enqueues.
    Scope::new()
        .policy(DropAll)
        .run_async(async {
            let tc = t.clone();
            airlock::tx::co_commit(pool.begin().await.unwrap())
                .run(|tx| {
                    Box::pin(async move {
                        insert_order(tx, 1).await.unwrap();
                        record::enqueue(tc.clone(), 2).map(drop)
                    })
                })
                .await
        })
        .await
        .unwrap();
    assert_eq!(orders(&pool).await, 1, "the data committed");
    assert_eq!(jobs(&pool).await, 1, "the dry run queued nothing more");
}

#[tokio::test]
async fn nothing_can_be_enqueued_once_the_transaction_scope_ended() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("late");
    let tx = airlock::tx::co_commit(pool.begin().await.unwrap());
    let handle = tx.handle();
    tx.commit().await.unwrap();
    let late = handle.in_scope(|| record::enqueue(t.clone(), 1));
    assert!(matches!(late, Err(Error::ScopeClosed { .. })), "{late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn co_committed_jobs_run_exactly_once_on_a_worker() {
    let dir = tempfile::tempdir().unwrap();
    let (queue, pool) = database(&dir).await;
    let t = tag("co-commit-worker");
    for value in 0..5 {
        let tc = t.clone();
        airlock::tx::co_commit(pool.begin().await.unwrap())
            .run(|tx| {
                Box::pin(async move {
                    insert_order(tx, 1).await?;
                    record::enqueue(tc.clone(), value)?;
                    Ok::<_, airlock::BoxError>(())
                })
            })
            .await
            .unwrap();
    }
    let monitor = queue.monitor(
        WorkerOptions::new("tx-sqlite")
            .workers(2)
            .poll_interval(Duration::from_millis(20)),
    );
    let done = t.clone();
    let stop = async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while runs(&done).len() < 5 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Let any duplicate run show up before stopping.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(())
    };
    monitor.run_with_signal(stop).await.unwrap();
    let mut ran = runs(&t);
    ran.sort();
    assert_eq!(
        ran,
        [
            "record(0)",
            "record(1)",
            "record(2)",
            "record(3)",
            "record(4)"
        ]
    );
    assert_eq!(
        scalar(&pool, "SELECT COUNT(*) FROM Jobs WHERE status = 'Done'").await,
        5
    );
}
