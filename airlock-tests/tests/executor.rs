//! Executors: the in-process executor (inline, FIFO, fail-fast, panics,
//! async tasks, cascades) and custom executors.

use std::sync::{Arc, Mutex};

use airlock::{
    BlockTasks, DispatchError, DispatchFailure, DropAll, Error, Executor, Fate, Intent, Scope,
};
use airlock_tests::{
    cascade, fail, panics, panics_async, record, record_async, record_then_fail, runs, self_loop,
    tag,
};

/// Unwraps the dispatch failure of a flush.
fn dispatch_failure<T: std::fmt::Debug>(result: airlock::Result<T>) -> Box<DispatchFailure> {
    match result {
        Err(Error::Dispatch(failure)) => failure,
        other => panic!("expected Error::Dispatch, got {other:?}"),
    }
}

fn fates(failure: &DispatchFailure) -> Vec<Fate> {
    failure
        .report
        .records()
        .iter()
        .map(|r| r.fate.clone())
        .collect()
}

#[test]
fn in_process_runs_sync_tasks_inline_in_fifo_order() {
    let t = tag("inline");
    let result: airlock::Result<()> = airlock::scope(|| {
        record::enqueue(t.clone(), 1)?;
        cascade::enqueue(t.clone(), 0)?;
        record::enqueue(t.clone(), 2)?;
        assert!(runs(&t).is_empty());
        Ok(())
    });
    result.unwrap();
    // Inline: everything ran before `scope` returned.
    assert_eq!(runs(&t), ["record(1)", "cascade(0)", "record(2)"]);
}

#[test]
fn fail_fast_stops_at_the_first_failure_and_hands_back_the_rest() {
    let t = tag("fail-fast");
    let result: airlock::Result<()> = airlock::scope(|| {
        record::enqueue(t.clone(), 1)?;
        fail::enqueue(t.clone())?;
        record::enqueue(t.clone(), 3)?;
        Ok(())
    });
    let failure = dispatch_failure(result);
    assert_eq!(runs(&t), ["record(1)", "fail"]);
    assert_eq!(
        fates(&failure),
        [
            Fate::Dispatched,
            Fate::Failed {
                error: format!("boom: {t}")
            },
            Fate::NotAttempted,
        ]
    );
    assert_eq!(failure.report.dispatched(), ["record"]);
    assert_eq!(failure.source.to_string(), format!("boom: {t}"));
    let [rest] = &failure.not_attempted[..] else {
        panic!(
            "expected one intent handed back: {:?}",
            failure.not_attempted
        );
    };
    assert_eq!(rest.args::<record>().unwrap().value, 3);
    let message = failure.to_string();
    assert!(message.contains(&format!("boom: {t}")), "{message}");
    assert!(
        message.contains(
            r#"not attempted, handed back in DispatchFailure::not_attempted: ["record"]"#
        ),
        "{message}"
    );
    assert!(message.contains("at `fail`"), "{message}");
    assert!(
        message.contains(r#"dispatched before the failure: ["record"]"#),
        "{message}"
    );

    // The handed-back intents can be retried in a new scope.
    let retry: airlock::Result<()> = airlock::scope(|| {
        for intent in failure.not_attempted {
            airlock::enqueue(intent)?;
        }
        Ok(())
    });
    retry.unwrap();
    assert_eq!(runs(&t), ["record(1)", "fail", "record(3)"]);
}

/// An application error that can carry a flush failure.
#[derive(Debug, thiserror::Error)]
enum CheckoutError {
    #[error("out of stock")]
    OutOfStock,
    #[error(transparent)]
    Airlock(#[from] airlock::Error),
}

#[airlock::scoped]
fn checkout(t: String) -> Result<u32, CheckoutError> {
    record::enqueue(t.clone(), 1)?;
    fail::enqueue(t)?;
    Ok(42)
}

#[airlock::scoped]
fn checkout_out_of_stock(t: String) -> Result<u32, CheckoutError> {
    fail::enqueue(t)?;
    Err(CheckoutError::OutOfStock)
}

#[test]
fn a_failed_flush_turns_the_scope_result_into_err() {
    let t = tag("scoped-flush-err");
    match checkout(t.clone()) {
        Err(CheckoutError::Airlock(Error::Dispatch(failure))) => {
            assert_eq!(failure.report.dispatched(), ["record"]);
        }
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
    assert_eq!(runs(&t), ["record(1)", "fail"]);

    // The body's own error wins (and nothing is dispatched).
    let t = tag("scoped-body-err");
    assert!(matches!(
        checkout_out_of_stock(t.clone()),
        Err(CheckoutError::OutOfStock)
    ));
    assert!(runs(&t).is_empty());

    // Same through Scope::run.
    let t = tag("run-flush-err");
    let result: Result<&str, CheckoutError> = Scope::new().run(|| {
        fail::enqueue(t.clone())?;
        Ok("body succeeded")
    });
    assert!(
        matches!(result, Err(CheckoutError::Airlock(Error::Dispatch(_)))),
        "{result:?}"
    );
}

#[test]
fn a_panicking_task_is_a_failure_not_a_crash() {
    let t = tag("panicking-task");
    let result: airlock::Result<()> = airlock::scope(|| {
        record::enqueue(t.clone(), 1)?;
        panics::enqueue(t.clone())?;
        record::enqueue(t.clone(), 2)?;
        Ok(())
    });
    let failure = dispatch_failure(result);
    assert_eq!(runs(&t), ["record(1)", "panics"]);
    let fates = fates(&failure);
    assert_eq!(fates[0], Fate::Dispatched);
    let Fate::Failed { error } = &fates[1] else {
        panic!("{fates:?}");
    };
    assert!(error.contains("task `panics` panicked"), "{error}");
    assert!(error.contains("task panicked on purpose"), "{error}");
    assert_eq!(fates[2], Fate::NotAttempted);
    assert_eq!(failure.not_attempted.len(), 1);
}

#[test]
fn intents_a_failing_task_enqueued_are_discarded_with_it() {
    let t = tag("task-scope-discard");
    let result: airlock::Result<()> = airlock::scope(|| {
        record_then_fail::enqueue(t.clone(), 5)?;
        Ok(())
    });
    let failure = dispatch_failure(result);
    assert!(matches!(fates(&failure)[0], Fate::Failed { .. }));
    // The task ran (and enqueued record(5) in its own scope), then failed: its
    // scope discarded the record.
    assert_eq!(runs(&t), ["record_then_fail"]);
}

#[tokio::test]
async fn async_tasks_are_awaited_in_an_async_scope() {
    let t = tag("async");
    let t2 = t.clone();
    let result: airlock::Result<()> = airlock::scope_async(async move {
        record_async::enqueue(t2.clone(), 1)?;
        tokio::task::yield_now().await;
        record::enqueue(t2.clone(), 2)?;
        record_async::enqueue(t2.clone(), 3)?;
        Ok(())
    })
    .await;
    result.unwrap();
    assert_eq!(
        runs(&t),
        ["record_async(1)", "record(2)", "record_async(3)"]
    );
}

#[airlock::scoped]
async fn notify_later(t: String) -> airlock::Result<()> {
    tokio::task::yield_now().await;
    record_async::enqueue(t, 7)?;
    Ok(())
}

#[tokio::test]
async fn a_scoped_async_fn_awaits_async_tasks() {
    let t = tag("scoped-async");
    notify_later(t.clone()).await.unwrap();
    assert_eq!(runs(&t), ["record_async(7)"]);
}

#[tokio::test]
async fn a_panicking_async_task_is_a_failure() {
    let t = tag("async-panic");
    let t2 = t.clone();
    let result: airlock::Result<()> = airlock::scope_async(async move {
        panics_async::enqueue(t2.clone())?;
        record_async::enqueue(t2.clone(), 2)?;
        Ok(())
    })
    .await;
    let failure = dispatch_failure(result);
    assert_eq!(runs(&t), ["panics_async"]);
    let Fate::Failed { error } = &fates(&failure)[0] else {
        panic!("{failure}");
    };
    assert!(
        error.contains("task `panics_async` panicked: async task panicked on purpose"),
        "{error}"
    );
    assert_eq!(fates(&failure)[1], Fate::NotAttempted);
}

#[test]
fn an_async_task_flushed_from_a_sync_scope_fails_clearly() {
    let t = tag("async-in-sync");
    let result: airlock::Result<()> = airlock::scope(|| {
        record::enqueue(t.clone(), 1)?;
        record_async::enqueue(t.clone(), 2)?;
        Ok(())
    });
    let failure = dispatch_failure(result);
    assert_eq!(runs(&t), ["record(1)"]);
    let Fate::Failed { error } = &fates(&failure)[1] else {
        panic!("{failure}");
    };
    assert!(error.contains("`record_async` is async"), "{error}");
    assert!(
        error.contains("cannot be awaited from a synchronous scope"),
        "{error}"
    );
    assert!(error.contains("scope_async"), "the fix is named: {error}");
}

#[test]
fn a_task_that_enqueues_runs_its_intents_in_its_own_scope() {
    let t = tag("cascade");
    let active = Scope::new().start();
    active.in_scope(|| cascade::enqueue(t.clone(), 3)).unwrap();
    let report = active.flush().unwrap();
    assert_eq!(
        runs(&t),
        ["cascade(3)", "cascade(2)", "cascade(1)", "cascade(0)"]
    );
    // The outer scope dispatched one intent; the rest were the tasks' own.
    assert_eq!(report.dispatched(), ["cascade"]);
}

#[test]
fn a_runaway_cascade_is_stopped_by_the_depth_limit() {
    let t = tag("self-loop");
    let result: airlock::Result<()> = airlock::scope(|| {
        self_loop::enqueue(t.clone())?;
        Ok(())
    });
    let failure = dispatch_failure(result);
    // The default limit is 32 levels: 32 runs, then the 33rd is refused.
    assert_eq!(runs(&t), vec!["self_loop"; 32]);
    let message = failure.to_string();
    assert!(message.contains("33 levels deep"), "{message}");
    assert!(message.contains("limit 32"), "{message}");
    assert!(message.contains("re-enqueues itself"), "{message}");
    assert!(
        message.contains("BlockTasks"),
        "the fix is named: {message}"
    );
    assert!(message.contains("max_cascade_depth"), "{message}");
}

/// Records each batch it receives instead of running anything.
#[derive(Debug, Default, Clone)]
struct Collecting {
    batches: Arc<Mutex<Vec<Vec<String>>>>,
}

impl Executor for Collecting {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        let batch = intents.iter().map(Intent::to_string).collect();
        self.batches.lock().unwrap().push(batch);
        Ok(())
    }
}

#[test]
fn a_custom_executor_receives_the_survivors_of_each_flush_in_order() {
    let t = tag("custom-executor");
    let executor = Collecting::default();
    let batches = Arc::clone(&executor.batches);
    let result: airlock::Result<()> = Scope::new()
        .executor(executor.clone())
        .policy(BlockTasks::of(&[fail::TASK]))
        .run(|| {
            record::enqueue(t.clone(), 1)?;
            fail::enqueue(t.clone())?;
            // Nested scopes hand their intents to this one, so they reach the
            // same executor in the same batch.
            airlock::scope(|| record_async::enqueue(t.clone(), 2).map(drop))?;
            record::enqueue(t.clone(), 3)?;
            Ok(())
        });
    result.unwrap();
    assert!(runs(&t).is_empty(), "the custom executor ran nothing");
    assert_eq!(
        *batches.lock().unwrap(),
        [vec![
            format!("record(\"{t}\", 1)"),
            format!("record_async(\"{t}\", 2)"),
            format!("record(\"{t}\", 3)"),
        ]]
    );

    // A flush with no survivors does not call the executor.
    let result: airlock::Result<()> = Scope::new()
        .executor(executor.clone())
        .policy(DropAll)
        .run(|| record::enqueue(t.clone(), 4).map(drop));
    result.unwrap();
    assert_eq!(batches.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_custom_executor_without_dispatch_async_serves_async_scopes() {
    let t = tag("custom-executor-async");
    let executor = Collecting::default();
    let batches = Arc::clone(&executor.batches);
    let t2 = t.clone();
    let result: airlock::Result<()> = Scope::new()
        .executor(executor)
        .run_async(async move {
            record_async::enqueue(t2, 1)?;
            Ok(())
        })
        .await;
    result.unwrap();
    assert_eq!(
        *batches.lock().unwrap(),
        [vec![format!("record_async(\"{t}\", 1)")]]
    );
    assert!(runs(&t).is_empty());
}

#[test]
fn a_prepared_flush_can_be_dispatched_with_another_executor() {
    let t = tag("dispatch-with");
    let active = Scope::new().start();
    active.in_scope(|| record::enqueue(t.clone(), 1)).unwrap();
    let executor = Collecting::default();
    let report = active
        .prepare_flush()
        .unwrap()
        .dispatch_with(&executor)
        .unwrap();
    assert_eq!(report.dispatched(), ["record"]);
    assert!(runs(&t).is_empty(), "the scope's own executor was not used");
    assert_eq!(executor.batches.lock().unwrap().len(), 1);
}

/// Accepts the first `accept` intents of a batch, then fails: either on the
/// next one (`failed_at`) or refusing the rest unattempted (`stopped_at`).
#[derive(Debug)]
struct Flaky {
    accept: usize,
    attempted: bool,
    received: Arc<Mutex<usize>>,
}

impl Executor for Flaky {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        *self.received.lock().unwrap() += intents.len();
        let rest: Vec<Intent> = intents.into_iter().skip(self.accept).collect();
        if self.attempted {
            Err(DispatchError::failed_at(
                self.accept,
                "task failed",
                rest.into_iter().skip(1).collect(),
            ))
        } else {
            Err(DispatchError::stopped_at(self.accept, "broker down", rest))
        }
    }
}

#[test]
fn executor_failures_map_to_fates_and_hand_back_intents() {
    let t = tag("flaky");
    let received = Arc::new(Mutex::new(0));
    let result: airlock::Result<()> = Scope::new()
        .executor(Flaky {
            accept: 1,
            attempted: false,
            received: Arc::clone(&received),
        })
        .run(|| {
            for value in 1..=3 {
                record::enqueue(t.clone(), value)?;
            }
            Ok(())
        });
    let failure = dispatch_failure(result);
    assert_eq!(*received.lock().unwrap(), 3);
    assert_eq!(
        fates(&failure),
        [Fate::Dispatched, Fate::NotAttempted, Fate::NotAttempted]
    );
    let back: Vec<u64> = failure
        .not_attempted
        .iter()
        .map(|i| i.args::<record>().unwrap().value)
        .collect();
    assert_eq!(back, [2, 3]);
    assert_eq!(failure.source.to_string(), "broker down");

    let result: airlock::Result<()> = Scope::new()
        .executor(Flaky {
            accept: 1,
            attempted: true,
            received,
        })
        .run(|| {
            for value in 1..=3 {
                record::enqueue(t.clone(), value)?;
            }
            Ok(())
        });
    let failure = dispatch_failure(result);
    assert_eq!(
        fates(&failure),
        [
            Fate::Dispatched,
            Fate::Failed {
                error: "task failed".into()
            },
            Fate::NotAttempted
        ]
    );
    assert_eq!(failure.not_attempted.len(), 1);
    assert!(runs(&t).is_empty());
}
