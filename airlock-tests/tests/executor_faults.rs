//! Executor faults that need no server: how a flush reports an executor that
//! could not tell whether its broker took some intents (the queue backends'
//! own fault tests are `executor_faults_{redis,postgres,sqlite}.rs`), and the
//! tokio executor without a runtime, or with one that has shut down.

use std::sync::Mutex;

use airlock::executor::{DispatchError, Executor};
use airlock::{Error, Fate, Intent, Scope};
use airlock_tests::{record, tag};

/// Takes `dispatched` intents, then says the broker never answered about the
/// next `in_doubt`, and hands the rest back.
#[derive(Debug)]
struct LostAnswer {
    dispatched: usize,
    in_doubt: usize,
    taken: Mutex<Vec<u64>>,
}

impl Executor for LostAnswer {
    fn dispatch(&self, mut intents: Vec<Intent>) -> Result<(), DispatchError> {
        let mut rest = intents.split_off(self.dispatched);
        let after = rest.split_off(self.in_doubt);
        self.taken.lock().unwrap().extend(
            intents
                .iter()
                .map(|i| i.args::<record>().expect("record").value),
        );
        Err(DispatchError::in_doubt_at(
            self.dispatched,
            "the broker never answered",
            rest,
            after,
        ))
    }
}

fn values(intents: &[Intent]) -> Vec<u64> {
    intents
        .iter()
        .map(|i| i.args::<record>().expect("record").value)
        .collect()
}

#[test]
fn intents_in_doubt_are_reported_interrupted_and_handed_back_apart() {
    let executor = std::sync::Arc::new(LostAnswer {
        dispatched: 2,
        in_doubt: 2,
        taken: Mutex::new(Vec::new()),
    });
    let t = tag("in-doubt");
    let result = Scope::new().executor(executor.clone()).run(|| {
        for value in 1..=5 {
            record::enqueue(t.clone(), value)?;
        }
        Ok::<(), Error>(())
    });
    let Err(Error::Dispatch(failure)) = result else {
        panic!("expected a dispatch failure, got {result:?}");
    };
    let fates: Vec<_> = failure.report.records().iter().map(|r| &r.fate).collect();
    assert_eq!(
        fates,
        [
            &Fate::Dispatched,
            &Fate::Dispatched,
            &Fate::Interrupted,
            &Fate::Interrupted,
            &Fate::NotAttempted,
        ]
    );
    assert_eq!(*executor.taken.lock().unwrap(), [1, 2]);
    assert_eq!(values(&failure.in_doubt), [3, 4]);
    assert_eq!(values(&failure.not_attempted), [5]);
    let message = failure.to_string();
    assert!(
        message.contains("in_doubt") && message.contains("may or may not"),
        "the message says what is in doubt: {message}"
    );
}

#[cfg(feature = "tokio")]
mod tokio_executor {
    use airlock::executor::TokioExecutor;
    use airlock::{Error, Fate, Scope};
    use airlock_tests::{record, runs, tag};

    #[test]
    fn no_runtime_reports_nothing_dispatched_and_hands_every_intent_back() {
        let t = tag("tokio-no-runtime");
        let executor = TokioExecutor::new();
        let scope = Scope::new().executor(executor.clone()).start();
        let handle = scope.handle();
        scope.in_scope(|| {
            record::enqueue(t.clone(), 1).unwrap();
            record::enqueue(t.clone(), 2).unwrap();
        });
        let Err(Error::Dispatch(failure)) = scope.flush() else {
            panic!("no runtime, no dispatch");
        };
        assert!(handle
            .records()
            .iter()
            .all(|r| r.fate == Fate::NotAttempted));
        assert_eq!(failure.not_attempted.len(), 2);
        assert_eq!(executor.in_flight(), 0, "nothing is counted as running");
        // A retry where there is a runtime runs each once.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(async {
            Scope::new()
                .executor(executor.clone())
                .run_async(async {
                    for intent in failure.not_attempted {
                        airlock::enqueue(intent)?;
                    }
                    Ok::<(), Error>(())
                })
                .await
                .unwrap();
            executor.wait_idle().await;
        });
        assert_eq!(runs(&t), ["record(1)", "record(2)"]);
    }

    #[test]
    fn a_runtime_that_has_shut_down_runs_nothing_and_the_flush_says_so() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .build()
            .unwrap();
        let executor = TokioExecutor::on(runtime.handle().clone());
        drop(runtime);
        let t = tag("tokio-shut-down");
        let result = Scope::new().executor(executor.clone()).run(|| {
            record::enqueue(t.clone(), 1)?;
            record::enqueue(t.clone(), 2)?;
            Ok::<(), Error>(())
        });
        let Err(Error::Dispatch(failure)) = result else {
            panic!("a runtime that has shut down runs nothing, so the flush must fail: {result:?}");
        };
        assert!(
            failure
                .report
                .records()
                .iter()
                .all(|r| r.fate == Fate::NotAttempted),
            "{failure}"
        );
        assert_eq!(failure.not_attempted.len(), 2, "{failure}");
        assert!(failure.to_string().contains("shut down"), "{failure}");
        assert_eq!(
            executor.in_flight(),
            0,
            "wait_idle would wait forever on a task that will never run"
        );
        assert!(runs(&t).is_empty());
    }
}
