//! Savepoints that are scopes: intents enqueued under a savepoint share its
//! fate, in both durabilities, on a real SQLite file (and on PostgreSQL when
//! the server is there).
#![cfg(feature = "apalis-sqlite")]

use airlock::queue::SqliteQueue;
use airlock::{Error, InProcess, Scope};
use airlock_tests::{record, runs, tag};
use sqlx::{Sqlite, SqlitePool, Transaction};

async fn database(dir: &tempfile::TempDir) -> (SqliteQueue, SqlitePool) {
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let queue = SqliteQueue::connect(&url)
        .await
        .expect("the database opens");
    let pool = queue.pool().clone();
    sqlx::query("CREATE TABLE rows (label TEXT NOT NULL)")
        .execute(&pool)
        .await
        .unwrap();
    (queue, pool)
}

async fn insert(tx: &mut Transaction<'_, Sqlite>, label: &str) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO rows (label) VALUES (?)")
        .bind(label)
        .execute(&mut **tx)
        .await
        .map(drop)
}

async fn labels(pool: &SqlitePool) -> Vec<String> {
    sqlx::query_scalar("SELECT label FROM rows ORDER BY label")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// The `value` argument of every queued `record` job, sorted.
async fn queued_values(pool: &SqlitePool) -> Vec<i64> {
    sqlx::query_scalar(
        "SELECT json_extract(CAST(job AS TEXT), '$.args.value') FROM Jobs ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// Writes row `a` and enqueues 1; a savepoint writes `b`, enqueues 2 and
/// fails; a savepoint writes `c`, enqueues 3 and succeeds; a savepoint
/// inside a released one writes `d`, enqueues 4 and is dropped unreleased.
async fn body(tx: &mut Transaction<'static, Sqlite>, t: String) -> Result<(), airlock::BoxError> {
    insert(tx, "a").await?;
    record::enqueue(t.clone(), 1)?;

    let t2 = t.clone();
    let failed: Result<(), airlock::BoxError> = airlock::tx::savepoint(tx)
        .await?
        .run(|sp| {
            Box::pin(async move {
                insert(sp, "b").await?;
                record::enqueue(t2, 2)?;
                Err("declined".into())
            })
        })
        .await;
    assert!(failed.is_err());

    let t3 = t.clone();
    airlock::tx::savepoint(tx)
        .await?
        .run(|sp| {
            Box::pin(async move {
                insert(sp, "c").await?;
                record::enqueue(t3.clone(), 3)?;
                let mut inner = airlock::tx::savepoint(sp).await?;
                insert(inner.transaction(), "d").await?;
                inner.in_scope_enqueue(t3, 4)?;
                drop(inner); // unreleased: rolled back, intents discarded
                Ok::<_, airlock::BoxError>(())
            })
        })
        .await?;
    Ok(())
}

/// Enqueues through a savepoint's scope without a body future.
trait EnqueueIn {
    fn in_scope_enqueue(&self, tag: String, value: u64) -> airlock::Result<()>;
}

impl<DB: sqlx::Database> EnqueueIn for airlock::tx::Savepoint<'_, DB> {
    fn in_scope_enqueue(&self, tag: String, value: u64) -> airlock::Result<()> {
        let _entered = self.enter();
        record::enqueue(tag, value).map(drop)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn co_commit_queues_only_the_jobs_of_savepoints_that_were_released() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("savepoint-co");
    let tc = t.clone();
    airlock::tx::co_commit(pool.begin().await.unwrap())
        .run(|tx| Box::pin(body(tx, tc)))
        .await
        .expect("the transaction commits");
    assert_eq!(labels(&pool).await, ["a", "c"]);
    assert_eq!(
        queued_values(&pool).await,
        [1, 3],
        "jobs share their rows' fate"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_commit_dispatches_only_the_intents_of_savepoints_that_were_released() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("savepoint-after");
    let tc = t.clone();
    Scope::new()
        .executor(InProcess)
        .after_commit(pool.begin().await.unwrap())
        .run(|tx| Box::pin(body(tx, tc)))
        .await
        .expect("the transaction commits");
    assert_eq!(labels(&pool).await, ["a", "c"]);
    assert_eq!(runs(&t), ["record(1)", "record(3)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_outside_any_scope_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let mut tx = pool.begin().await.unwrap();
    let error = airlock::tx::savepoint(&mut tx)
        .await
        .expect_err("no scope to join");
    assert!(
        matches!(error, Error::Savepoint { action: "open", .. }),
        "{error}"
    );
    assert!(error.to_string().contains("transaction scope"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_is_refused_outside_a_transaction_scope_too() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let mut tx = pool.begin().await.unwrap();
    // A plain scope (a request, say): its intents follow its own outcome,
    // not the transaction's, so a savepoint cannot share a fate with it.
    let error = Scope::new()
        .run_async(async { airlock::tx::savepoint(&mut tx).await.map(drop) })
        .await
        .expect_err("not inside a transaction scope");
    assert!(
        matches!(error, Error::Savepoint { action: "open", .. }),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_around_a_savepoint_still_applies_to_its_intents() {
    let dir = tempfile::tempdir().unwrap();
    let (_queue, pool) = database(&dir).await;
    let t = tag("savepoint-dry-run");
    let tc = t.clone();
    airlock::tx::co_commit(pool.begin().await.unwrap())
        .run(|tx| {
            Box::pin(async move {
                insert(tx, "a").await?;
                airlock::with_policy_async(airlock::DropAll, async {
                    airlock::tx::savepoint(tx)
                        .await?
                        .run(|sp| {
                            Box::pin(async move {
                                insert(sp, "b").await?;
                                record::enqueue(tc, 1)?;
                                Ok::<_, airlock::BoxError>(())
                            })
                        })
                        .await
                })
                .await?;
                Ok::<_, airlock::BoxError>(())
            })
        })
        .await
        .expect("the transaction commits");
    assert_eq!(labels(&pool).await, ["a", "b"]);
    assert!(
        queued_values(&pool).await.is_empty(),
        "DropAll dropped the job"
    );
    assert!(runs(&t).is_empty());
}
