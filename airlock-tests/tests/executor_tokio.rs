//! The tokio executor: flushes spawn tasks and return; `wait_idle` sees every
//! spawned task, cascades included, finish.
#![cfg(feature = "tokio")]

use airlock::executor::TokioExecutor;
use airlock::{Error, Scope};
use airlock_tests::{cascade, fail, panics, record, record_async, runs, tag};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_spawns_and_wait_idle_sees_every_task_finish() {
    let t = tag("tokio");
    let executor = TokioExecutor::new();
    Scope::new()
        .executor(executor.clone())
        .run_async(async {
            for value in 0..100 {
                record_async::enqueue(t.clone(), value)?;
            }
            record::enqueue(t.clone(), 100)?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    executor.wait_idle().await;
    assert_eq!(runs(&t).len(), 101);
    assert_eq!((executor.completed(), executor.failed()), (101, 0));
    assert_eq!(executor.in_flight(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_and_panics_are_counted_and_spare_the_other_tasks() {
    let t = tag("tokio-failures");
    let executor = TokioExecutor::new();
    Scope::new()
        .executor(executor.clone())
        .run_async(async {
            fail::enqueue(t.clone())?;
            panics::enqueue(t.clone())?;
            record::enqueue(t.clone(), 1)?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    executor.wait_idle().await;
    let mut ran = runs(&t);
    ran.sort();
    assert_eq!(ran, ["fail", "panics", "record(1)"]);
    assert_eq!((executor.completed(), executor.failed()), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_task_enqueues_is_spawned_by_the_same_executor() {
    let t = tag("tokio-cascade");
    let executor = TokioExecutor::new();
    Scope::new()
        .executor(executor.clone())
        .run_async(async { cascade::enqueue(t.clone(), 3).map(drop) })
        .await
        .unwrap();
    executor.wait_idle().await;
    assert_eq!(
        runs(&t),
        ["cascade(3)", "cascade(2)", "cascade(1)", "cascade(0)"]
    );
    assert_eq!(executor.completed(), 4, "the cascade ran on this executor");
}

#[test]
fn a_sync_scope_on_a_plain_thread_spawns_onto_a_given_runtime() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let t = tag("tokio-handle");
    let executor = TokioExecutor::on(runtime.handle().clone());
    std::thread::scope(|threads| {
        threads.spawn(|| {
            Scope::new()
                .executor(executor.clone())
                .run(|| record::enqueue(t.clone(), 9).map(drop))
                .unwrap();
        });
    });
    runtime.block_on(executor.wait_idle());
    assert_eq!(runs(&t), ["record(9)"]);
}

#[test]
fn without_a_runtime_the_flush_fails_and_hands_the_intents_back() {
    let t = tag("tokio-none");
    let result = Scope::new()
        .executor(TokioExecutor::new())
        .run(|| record::enqueue(t.clone(), 1).map(drop));
    let Err(Error::Dispatch(failure)) = result else {
        panic!("expected a dispatch error, got {result:?}");
    };
    assert!(
        failure.to_string().contains("no tokio runtime"),
        "{failure}"
    );
    assert_eq!(failure.not_attempted.len(), 1);
    assert!(runs(&t).is_empty());
}
