//! Transaction scopes on a real PostgreSQL server: co-commit writes the jobs
//! into the caller's transaction; rollback and failed commits leave nothing.
#![cfg(feature = "apalis-postgres")]

use airlock::queue::PostgresQueue;
use airlock::{DiscardReason, Durability, Error, Fate, InProcess, Scope};
use airlock_tests::{record, runs, tag};
use sqlx::PgPool;

/// A fresh database with the queue tables, a customer and an `orders` table
/// whose foreign key is checked at commit time (so a commit can really fail).
async fn database() -> Option<PgPool> {
    let server = airlock_tests::servers::postgres::postgres()?;
    let url = server.fresh_database().await;
    let queue = PostgresQueue::connect(&url)
        .await
        .expect("the database opens");
    let pool = queue.pool().clone();
    for statement in [
        "CREATE TABLE customers (id BIGINT PRIMARY KEY)",
        "CREATE TABLE orders (id BIGSERIAL PRIMARY KEY, customer BIGINT NOT NULL \
         REFERENCES customers(id) DEFERRABLE INITIALLY DEFERRED)",
        "INSERT INTO customers (id) VALUES (1)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    Some(pool)
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

async fn insert_order(conn: &mut sqlx::PgConnection, customer: i64) -> sqlx::Result<()> {
    sqlx::query("INSERT INTO orders (customer) VALUES ($1)")
        .bind(customer)
        .execute(conn)
        .await
        .map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn co_commit_commits_the_jobs_with_the_data() {
    let Some(pool) = database().await else { return };
    let t = tag("pg-co-commit");
    let tc = t.clone();
    let tx = airlock::tx::co_commit(pool.begin().await.unwrap());
    assert_eq!(tx.durability(), Durability::CoCommit);
    let handle = tx.handle();
    tx.run(|tx| {
        Box::pin(async move {
            insert_order(tx, 1).await?;
            record::enqueue(tc.clone(), 1)?;
            record::intent(tc, 2).queue("other").enqueue()?;
            Ok::<_, airlock::BoxError>(())
        })
    })
    .await
    .unwrap();
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders").await, 1);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM apalis.jobs").await, 2);
    assert_eq!(
        count(
            &pool,
            "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = 'other'"
        )
        .await,
        1,
        "each intent lands in its own queue"
    );
    assert!(handle.records().iter().all(|r| r.fate == Fate::Dispatched));
    assert!(runs(&t).is_empty(), "queued, not run in process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_and_failed_commits_leave_neither_data_nor_jobs() {
    let Some(pool) = database().await else { return };
    for durability in [Durability::AfterCommit, Durability::CoCommit] {
        let t = tag("pg-rollback");
        // The body fails: rolled back.
        let tc = t.clone();
        let tx = pool.begin().await.unwrap();
        let scope = Scope::new().executor(InProcess);
        let tx = match durability {
            Durability::AfterCommit => scope.after_commit(tx),
            _ => scope.co_commit(tx),
        };
        let rolled_back = tx.handle();
        let result: Result<(), airlock::BoxError> = tx
            .run(|tx| {
                Box::pin(async move {
                    insert_order(tx, 1).await?;
                    record::enqueue(tc, 1)?;
                    Err("payment declined".into())
                })
            })
            .await;
        assert!(result.is_err());
        assert_eq!(
            rolled_back.discard_reason(),
            Some(DiscardReason::RolledBack)
        );

        // The commit itself fails (customer 99 does not exist).
        let tx = pool.begin().await.unwrap();
        let scope = Scope::new().executor(InProcess);
        let mut tx = match durability {
            Durability::AfterCommit => scope.after_commit(tx),
            _ => scope.co_commit(tx),
        };
        insert_order(&mut tx, 99).await.unwrap();
        tx.bind(async { record::enqueue(t.clone(), 2) })
            .await
            .unwrap();
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

        assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders").await, 0);
        assert_eq!(count(&pool, "SELECT COUNT(*) FROM apalis.jobs").await, 0);
        assert!(runs(&t).is_empty(), "{durability}: nothing ran");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_commit_runs_only_after_the_postgres_commit() {
    let Some(pool) = database().await else { return };
    let t = tag("pg-after-commit");
    let tc = t.clone();
    let before = Scope::new()
        .executor(InProcess)
        .after_commit(pool.begin().await.unwrap())
        .run(|tx| {
            Box::pin(async move {
                insert_order(tx, 1).await?;
                record::enqueue(tc.clone(), 3)?;
                Ok::<_, airlock::BoxError>(runs(&tc))
            })
        })
        .await
        .unwrap();
    assert!(before.is_empty());
    assert_eq!(runs(&t), ["record(3)"]);
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_savepoint_takes_its_co_committed_jobs_with_it() {
    let Some(pool) = database().await else { return };
    let t = tag("pg-savepoint");
    let tc = t.clone();
    airlock::tx::co_commit(pool.begin().await.unwrap())
        .run(|tx| {
            Box::pin(async move {
                insert_order(tx, 1).await?;
                record::enqueue(tc.clone(), 1)?;
                let t2 = tc.clone();
                let failed: Result<(), airlock::BoxError> = airlock::tx::savepoint(tx)
                    .await?
                    .run(|sp| {
                        Box::pin(async move {
                            insert_order(sp, 1).await?;
                            record::enqueue(t2, 2)?;
                            Err("declined".into())
                        })
                    })
                    .await;
                assert!(failed.is_err());
                let t3 = tc.clone();
                airlock::tx::savepoint(tx)
                    .await?
                    .run(|sp| {
                        Box::pin(async move {
                            insert_order(sp, 1).await?;
                            record::enqueue(t3, 3)?;
                            Ok::<_, airlock::BoxError>(())
                        })
                    })
                    .await?;
                Ok::<_, airlock::BoxError>(())
            })
        })
        .await
        .unwrap();
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders").await, 2);
    let mut values: Vec<i64> = sqlx::query_scalar(
        "SELECT (convert_from(job, 'UTF8')::jsonb -> 'args' ->> 'value')::bigint \
         FROM apalis.jobs ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    values.sort_unstable();
    assert_eq!(
        values,
        [1, 3],
        "the declined savepoint's job rolled back with it"
    );
    assert!(runs(&t).is_empty(), "queued, not run in process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_after_commit_whose_transaction_a_swallowed_error_aborted_dispatches_nothing() {
    // PostgreSQL answers COMMIT in an aborted transaction with a rollback
    // and no error: without a check, the intents of a transaction that
    // rolled back would be dispatched.
    let Some(pool) = database().await else { return };
    let t = tag("pg-aborted");
    let tc = t.clone();
    let tx = Scope::new()
        .executor(InProcess)
        .after_commit(pool.begin().await.unwrap());
    let handle = tx.handle();
    let result = tx
        .run(|tx| {
            Box::pin(async move {
                insert_order(tx, 1).await?;
                record::enqueue(tc, 1)?;
                // A failed statement whose error the body swallows.
                let _ = sqlx::query("SELECT 1 / 0").execute(&mut **tx).await;
                Ok::<_, airlock::BoxError>(())
            })
        })
        .await;
    let error = result.expect_err("the transaction could not commit");
    assert!(error.to_string().contains("failed to commit"), "{error}");
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders").await, 0);
    assert!(
        runs(&t).is_empty(),
        "nothing dispatched for a rolled-back transaction"
    );
    assert!(matches!(
        handle.records()[0].fate,
        Fate::Discarded(DiscardReason::CommitFailed(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_whose_release_fails_keeps_its_jobs_out_of_the_transaction() {
    // The savepoint's body swallows a failed statement, so RELEASE fails;
    // the caller recovers and commits the rest: the savepoint's job must not
    // commit with it.
    let Some(pool) = database().await else { return };
    let t = tag("pg-release-fails");
    let tc = t.clone();
    airlock::tx::co_commit(pool.begin().await.unwrap())
        .run(|tx| {
            Box::pin(async move {
                insert_order(tx, 1).await?;
                record::enqueue(tc.clone(), 1)?;
                let t2 = tc.clone();
                let released: Result<(), airlock::BoxError> = airlock::tx::savepoint(tx)
                    .await?
                    .run(|sp| {
                        Box::pin(async move {
                            insert_order(sp, 1).await?;
                            record::enqueue(t2, 2)?;
                            let _ = sqlx::query("SELECT 1 / 0").execute(&mut **sp).await;
                            Ok::<_, airlock::BoxError>(())
                        })
                    })
                    .await;
                let error = released.expect_err("RELEASE fails in an aborted savepoint");
                assert!(error.to_string().contains("release"), "{error}");
                Ok::<_, airlock::BoxError>(())
            })
        })
        .await
        .expect("the rest commits");
    assert_eq!(count(&pool, "SELECT COUNT(*) FROM orders").await, 1);
    let values: Vec<i64> = sqlx::query_scalar(
        "SELECT (convert_from(job, 'UTF8')::jsonb -> 'args' ->> 'value')::bigint \
         FROM apalis.jobs ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(values, [1], "the failed savepoint's job stayed out");
}
