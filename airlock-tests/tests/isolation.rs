//! Isolation: concurrent scopes never see each other's intents, on a
//! work-stealing runtime and on OS threads; spawned tasks do not inherit a
//! scope unless it is bound; cancellation and late enqueues are handled.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use airlock::{DiscardReason, Error, Fate, Scope, ScopeHandle, ScopePhase};
use airlock_tests::{record, record_async, runs, tag};

/// The `(tag, value)` of every intent in the current scope.
fn visible() -> Vec<(String, u64)> {
    visible_now().expect("a scope is current")
}

/// The `(tag, value)` of every intent in the current scope, or `None` outside
/// a scope. Never panics, so a load test can report a mismatch after its
/// barrier instead of leaving the other scopes waiting at it.
fn visible_now() -> Option<Vec<(String, u64)>> {
    let scope = airlock::current()?;
    let intents = scope.intents();
    Some(
        intents
            .iter()
            .map(|i| match i.args::<record>() {
                Some(args) => (args.tag.clone(), args.value),
                None => (format!("not a record intent: {i}"), u64::MAX),
            })
            .collect(),
    )
}

/// What one scope of a load test saw go wrong (empty: nothing).
type Problems = Vec<String>;

/// Enqueues `record(mine, values[step])`, then checks that the current scope
/// is still `scope` and holds exactly `mine`'s values so far.
fn enqueue_and_look(
    mine: &str,
    values: &[u64],
    step: usize,
    scope: Option<airlock::ScopeId>,
    problems: &mut Problems,
) {
    if let Err(error) = record::enqueue(mine.to_owned(), values[step]) {
        problems.push(format!("{mine}: enqueue {step} failed: {error}"));
    }
    look(mine, values, step, scope, problems);
}

fn look(
    mine: &str,
    values: &[u64],
    step: usize,
    scope: Option<airlock::ScopeId>,
    problems: &mut Problems,
) {
    let current = airlock::current().map(|h| h.info().id);
    if current != scope {
        problems.push(format!(
            "{mine}: at step {step} the current scope is {current:?}"
        ));
    }
    let expected: Vec<(String, u64)> = values[..=step]
        .iter()
        .map(|&v| (mine.to_owned(), v))
        .collect();
    let seen = visible_now();
    if seen.as_ref() != Some(&expected) {
        problems.push(format!("{mine}: at step {step} the scope holds {seen:?}"));
    }
}

/// 10,000 scoped futures on a 4-worker runtime, all in flight together: each
/// enqueues its first intent and waits at a barrier until every other one has,
/// then goes on yielding between enqueues (so it is polled wherever the
/// runtime puts it), and waits again before its scope ends, so all of them
/// hold all their intents at once. Each must see only its own intents, in its
/// own scope, before the end and in what is dispatched after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_scoped_futures_in_flight_together_see_only_their_own_intents() {
    const FUTURES: u64 = 10_000;
    const STEPS: usize = 5;
    let base = tag("iso-async");
    let barrier = Arc::new(tokio::sync::Barrier::new(FUTURES as usize));
    let mut joins = Vec::with_capacity(FUTURES as usize);
    for n in 0..FUTURES {
        let mine = format!("{base}/{n}");
        let barrier = Arc::clone(&barrier);
        joins.push(tokio::spawn(airlock::scope_async(async move {
            let handle = airlock::current();
            let scope = handle.as_ref().map(|h| h.info().id);
            let values: Vec<u64> = (0..STEPS as u64).map(|s| n * 100 + s).collect();
            let mut problems = Problems::new();
            let mut threads = HashSet::new();
            for step in 0..STEPS {
                enqueue_and_look(&mine, &values, step, scope, &mut problems);
                threads.insert(std::thread::current().id());
                if step == 0 || step == STEPS - 1 {
                    barrier.wait().await;
                } else {
                    tokio::task::yield_now().await;
                }
                // Possibly on another worker thread now.
                threads.insert(std::thread::current().id());
                look(&mine, &values, step, scope, &mut problems);
            }
            Ok::<_, Error>((handle, problems, threads.len()))
        })));
    }
    let mut ids = HashSet::new();
    let mut moved = 0;
    for (n, join) in joins.into_iter().enumerate() {
        let (handle, problems, threads) = join
            .await
            .expect("no future panicked")
            .expect("no scope failed");
        assert!(problems.is_empty(), "future {n}: {problems:#?}");
        let handle = handle.expect("each future ran in a scope");
        ids.insert(handle.info().id);
        let records = handle.records();
        assert_eq!(records.len(), STEPS, "future {n}");
        assert!(
            records.iter().all(|r| r.own && r.fate == Fate::Dispatched),
            "future {n}: {records:?}"
        );
        moved += usize::from(threads > 1);
    }
    assert_eq!(ids.len() as u64, FUTURES, "each future had its own scope");
    for n in 0..FUTURES {
        let expected: Vec<String> = (0..STEPS as u64)
            .map(|s| format!("record({})", n * 100 + s))
            .collect();
        assert_eq!(runs(&format!("{base}/{n}")), expected);
    }
    // Informative only: how many scopes were polled on more than one thread
    // (how much the runtime moved them is up to its scheduler).
    eprintln!("{moved} of {FUTURES} scoped futures ran on more than one worker thread");
}

/// 16 OS threads, each running 500 sync scopes one after another; at every
/// scope all 16 threads meet at a barrier while their scopes hold intents, so
/// 16 scopes are always open together.
#[test]
fn sixteen_threads_of_sync_scopes_see_only_their_own_intents() {
    const THREADS: u64 = 16;
    const SCOPES: u64 = 500;
    const STEPS: usize = 5;
    let base = tag("iso-threads");
    let barrier = std::sync::Barrier::new(THREADS as usize);
    let problems: Vec<Problems> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..THREADS)
            .map(|th| {
                let (base, barrier) = (base.clone(), &barrier);
                s.spawn(move || {
                    let mut problems = Problems::new();
                    for sc in 0..SCOPES {
                        let mine = format!("{base}/{th}/{sc}");
                        let values: Vec<u64> = (0..STEPS as u64).collect();
                        let result: airlock::Result<()> = airlock::scope(|| {
                            let scope = airlock::current().map(|h| h.info().id);
                            for step in 0..STEPS {
                                enqueue_and_look(&mine, &values, step, scope, &mut problems);
                                if step == 0 {
                                    barrier.wait();
                                } else {
                                    std::thread::yield_now();
                                }
                                look(&mine, &values, step, scope, &mut problems);
                            }
                            Ok(())
                        });
                        if let Err(error) = result {
                            problems.push(format!("{mine}: the scope failed: {error}"));
                        }
                        if airlock::current().is_some() {
                            problems.push(format!("{mine}: a scope leaked past its end"));
                        }
                    }
                    problems
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("no thread panicked"))
            .collect()
    });
    for (th, problems) in problems.iter().enumerate() {
        assert!(problems.is_empty(), "thread {th}: {problems:#?}");
    }
    let expected: Vec<String> = (0..STEPS).map(|v| format!("record({v})")).collect();
    for th in 0..THREADS {
        for sc in 0..SCOPES {
            assert_eq!(runs(&format!("{base}/{th}/{sc}")), expected);
        }
    }
}

async fn spawned_task_does_not_inherit_the_scope() {
    let t = tag("spawn-no-inherit");
    let t2 = t.clone();
    let result: airlock::Result<()> = airlock::scope_async(async move {
        record::enqueue(t2.clone(), 1)?;
        let t3 = t2.clone();
        let (had_scope, enqueued) = tokio::spawn(async move {
            tokio::task::yield_now().await;
            (airlock::current().is_some(), record::enqueue(t3, 2))
        })
        .await
        .expect("the spawned task did not panic");
        assert!(
            !had_scope,
            "a spawned task must not see the spawner's scope"
        );
        assert!(
            matches!(enqueued, Err(Error::NoScope { task: "record" })),
            "{enqueued:?}"
        );
        assert_eq!(visible(), [(t2.clone(), 1)]);
        Ok(())
    })
    .await;
    result.unwrap();
    assert_eq!(runs(&t), ["record(1)"]);
}

#[tokio::test]
async fn a_spawned_task_does_not_inherit_the_scope_current_thread() {
    spawned_task_does_not_inherit_the_scope().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_spawned_task_does_not_inherit_the_scope_multi_thread() {
    spawned_task_does_not_inherit_the_scope().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bind_carries_a_scope_into_a_spawned_task() {
    let t = tag("bind");
    let t2 = t.clone();
    let result: airlock::Result<()> = airlock::scope_async(async move {
        let scope = airlock::current().unwrap();
        let t3 = t2.clone();
        let id = tokio::spawn(scope.bind(async move {
            tokio::task::yield_now().await;
            record::enqueue(t3, 1)
        }))
        .await
        .unwrap()?;
        // The spawned task's intent is in this scope, not dispatched yet.
        let ids: Vec<_> = scope.intents().iter().map(|i| i.id()).collect();
        assert_eq!(ids, [id]);
        assert!(runs(&t2).is_empty());
        Ok(())
    })
    .await;
    result.unwrap();
    assert_eq!(runs(&t), ["record(1)"]);
}

/// Enqueues `record(tag, value)` when dropped and keeps what `enqueue` returned.
struct EnqueueOnDrop {
    tag: String,
    value: u64,
    result: Arc<Mutex<Option<airlock::Result<airlock::IntentId>>>>,
}

impl Drop for EnqueueOnDrop {
    fn drop(&mut self) {
        let result = record::enqueue(self.tag.clone(), self.value);
        *self.result.lock().unwrap() = Some(result);
    }
}

#[tokio::test]
async fn dropping_a_scoped_future_discards_it_as_cancelled() {
    let t = tag("cancel");
    let inner_handle: Arc<Mutex<Option<ScopeHandle>>> = Arc::default();
    let dropped_result: Arc<Mutex<Option<airlock::Result<airlock::IntentId>>>> = Arc::default();
    let (t2, slot, dropped) = (
        t.clone(),
        Arc::clone(&inner_handle),
        Arc::clone(&dropped_result),
    );

    let result: airlock::Result<()> = airlock::scope_async(async move {
        let t3 = t2.clone();
        let inner = Scope::new().name("inner").run_async(async move {
            *slot.lock().unwrap() = airlock::current();
            let _guard = EnqueueOnDrop {
                tag: t3.clone(),
                value: 2,
                result: dropped,
            };
            record::enqueue(t3.clone(), 1)?;
            std::future::pending::<()>().await;
            Ok::<(), Error>(())
        });
        // Poll the inner future once (it stays pending), then drop it.
        tokio::select! {
            biased;
            _ = inner => unreachable!("the inner scope never completes"),
            _ = tokio::task::yield_now() => {}
        }
        // The destructor's intent went to the discarded inner scope, not here.
        assert!(visible().is_empty(), "{:?}", visible());
        record::enqueue(t2.clone(), 3)?;
        Ok(())
    })
    .await;
    result.unwrap();

    assert_eq!(runs(&t), ["record(3)"]);
    let inner = inner_handle
        .lock()
        .unwrap()
        .take()
        .expect("the inner scope started");
    assert!(inner.is_nested());
    assert_eq!(inner.phase(), ScopePhase::Discarded);
    assert_eq!(inner.discard_reason(), Some(DiscardReason::Cancelled));
    let dropped_id = dropped_result
        .lock()
        .unwrap()
        .take()
        .expect("the destructor ran")
        .expect("the destructor's enqueue was accepted by the inner scope");
    let records = inner.records();
    let ids: Vec<_> = records.iter().map(|r| r.id).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(ids[1], dropped_id);
    for record in records.iter() {
        assert_eq!(record.fate, Fate::Discarded(DiscardReason::Cancelled));
    }
}

/// A scoped future dropped while its async flush is running: the scope has
/// ended, so no record may still say `Buffered`, and the scope must not claim
/// it was dropped "before dispatch" when a task already ran.
#[tokio::test]
async fn cancelling_a_scope_during_its_async_flush_leaves_no_intent_buffered() {
    let t = tag("cancel-flush");
    let slot: Arc<Mutex<Option<ScopeHandle>>> = Arc::default();
    let (t2, s2) = (t.clone(), Arc::clone(&slot));
    let scoped = airlock::scope_async(async move {
        *s2.lock().unwrap() = airlock::current();
        record_async::enqueue(t2.clone(), 1)?;
        record_async::enqueue(t2.clone(), 2)?;
        Ok::<(), Error>(())
    });
    // Poll 1: the body completes and the flush starts; record_async(1)
    // suspends once. Poll 2: it finishes, record_async(2) suspends. Then the
    // other branch is ready and the scoped future is dropped mid-flush.
    tokio::select! {
        biased;
        _ = scoped => panic!("the flush cannot finish in two polls"),
        _ = tokio::task::yield_now() => {}
    }
    assert_eq!(
        runs(&t),
        ["record_async(1)"],
        "the first task ran, the second did not"
    );

    let handle = slot.lock().unwrap().take().unwrap();
    let phase = handle.phase();
    assert!(
        phase == ScopePhase::Discarded || phase == ScopePhase::Flushed,
        "{phase:?}"
    );
    let records = handle.records();
    assert_eq!(records.len(), 2);
    let fates: Vec<&Fate> = records.iter().map(|r| &r.fate).collect();
    assert!(
        records.iter().all(|r| r.fate != Fate::Buffered),
        "an ended scope reports intents as still buffered: {fates:?}"
    );
    if let Some(DiscardReason::Requested(why)) = handle.discard_reason() {
        assert!(
            !why.contains("before dispatch"),
            "the scope claims it was dropped before dispatch, but record_async(1) ran: {why}"
        );
    }
}

#[tokio::test]
async fn a_bound_future_that_enqueues_after_its_scope_ended_gets_scope_closed() {
    let t = tag("bound-late");
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let t2 = t.clone();
    let join = airlock::scope_async(async move {
        let scope = airlock::current().unwrap();
        let join = tokio::spawn(scope.bind(async move {
            wait.await.unwrap();
            record::enqueue(t2, 1)
        }));
        Ok::<_, Error>(join)
    })
    .await
    .unwrap();
    go.send(()).unwrap();
    let err = join.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::ScopeClosed {
                task: "record",
                phase: ScopePhase::Flushed,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(runs(&t).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nested_scope_that_outlives_its_parent_reports_parent_closed() {
    let t = tag("parent-closed");
    let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let t2 = t.clone();
    let (join, parent) = airlock::scope_async(async move {
        let scope = airlock::current().unwrap();
        let child = Scope::new().name("child").run_async(async move {
            record::enqueue(t2, 1)?;
            started_tx.send(()).unwrap();
            wait.await.unwrap();
            Ok::<(), Error>(())
        });
        let join = tokio::spawn(scope.bind(child));
        started_rx.await.unwrap();
        // The parent ends without awaiting the child.
        Ok::<_, Error>((join, scope.info().clone()))
    })
    .await
    .unwrap();
    go.send(()).unwrap();
    let err = join.await.unwrap().unwrap_err();
    match &err {
        Error::ParentClosed {
            scope,
            parent: p,
            lost,
        } => {
            assert_eq!(scope.name.as_deref(), Some("child"));
            assert_eq!(p, &parent);
            assert_eq!(lost, &[format!("record(\"{t}\", 1)")]);
        }
        other => panic!("expected ParentClosed, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains("await the task inside the parent scope"),
        "{err}"
    );
    assert!(runs(&t).is_empty());
}

#[test]
fn a_nested_active_scope_flushed_after_its_parent_reports_parent_closed() {
    let t = tag("parent-closed-sync");
    let parent = Scope::new().name("parent").start();
    let child = parent.in_scope(|| Scope::new().name("child").start());
    assert!(child.is_nested());
    let child_handle = child.handle();
    child.in_scope(|| record::enqueue(t.clone(), 1)).unwrap();
    parent.flush().unwrap();
    let err = child.flush().unwrap_err();
    assert!(
        matches!(&err, Error::ParentClosed { lost, .. } if lost.len() == 1),
        "{err:?}"
    );
    assert_eq!(
        child_handle.discard_reason(),
        Some(DiscardReason::ParentClosed)
    );
    assert_eq!(
        child_handle.records()[0].fate,
        Fate::Discarded(DiscardReason::ParentClosed)
    );
    assert!(runs(&t).is_empty());
}

#[tokio::test]
async fn joined_nested_scopes_stay_separate_and_merge_in_enqueue_order() {
    let t = tag("join");
    let t2 = t.clone();
    // The values in the order they were actually enqueued (join! may poll
    // its futures in any order).
    let order: Arc<Mutex<Vec<u64>>> = Arc::default();
    let log = Arc::clone(&order);
    let result: airlock::Result<()> = airlock::scope_async(async move {
        let child = |first: u64, second: u64| {
            let (t, log) = (t2.clone(), Arc::clone(&log));
            Scope::new().run_async(async move {
                record::enqueue(t.clone(), first)?;
                log.lock().unwrap().push(first);
                tokio::task::yield_now().await;
                assert_eq!(visible(), [(t.clone(), first)], "a child sees only its own");
                record::enqueue(t.clone(), second)?;
                log.lock().unwrap().push(second);
                Ok::<(), Error>(())
            })
        };
        let (a, b) = tokio::join!(child(1, 3), child(2, 4));
        a?;
        b?;
        let values: Vec<u64> = visible().into_iter().map(|(_, v)| v).collect();
        assert_eq!(values, *log.lock().unwrap(), "captured in enqueue order");
        Ok(())
    })
    .await;
    result.unwrap();
    let order = order.lock().unwrap().clone();
    assert_eq!(order.len(), 4);
    let expected: Vec<String> = order.iter().map(|v| format!("record({v})")).collect();
    assert_eq!(runs(&t), expected);
}
