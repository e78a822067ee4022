//! Scopes: flush on success, discard on error or panic, the imperative
//! `ActiveScope` API, reports, nesting, behaviours and detached scopes.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use airlock::{
    AlwaysFlush, BlockTasks, DiscardReason, DropAll, Error, Fate, FlushReport, Intent, Outcome,
    PolicySource, Scope, ScopeBehavior, ScopeHandle, ScopeInfo, ScopePhase, ScopeView,
};
use airlock_tests::{cascade, failed, record, runs, tag, yield_once, AppError};

fn fail_on_purpose() -> AppError {
    failed("the body failed on purpose")
}

fn fates(records: &[airlock::IntentRecord]) -> Vec<Fate> {
    records.iter().map(|r| r.fate.clone()).collect()
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[airlock::scoped(name = "checkout")]
fn checkout(t: String, succeed: bool) -> Result<u64, AppError> {
    record::enqueue(t.clone(), 10)?;
    assert!(runs(&t).is_empty(), "nothing runs inside the scope");
    if succeed {
        Ok(10)
    } else {
        Err(fail_on_purpose())
    }
}

#[airlock::scoped]
fn checkout_panics(t: String) -> airlock::Result<()> {
    record::enqueue(t, 11)?;
    panic!("checkout exploded");
}

#[test]
fn a_scope_flushes_on_ok() {
    let t = tag("flush-ok");
    let mut handle = None;
    let result: airlock::Result<&str> = airlock::scope(|| {
        handle = airlock::current();
        record::enqueue(t.clone(), 1)?;
        record::enqueue(t.clone(), 2)?;
        assert!(runs(&t).is_empty());
        Ok("done")
    });
    assert_eq!(result.unwrap(), "done");
    assert_eq!(runs(&t), ["record(1)", "record(2)"]);
    let handle = handle.unwrap();
    assert_eq!(handle.phase(), ScopePhase::Flushed);
    assert_eq!(handle.discard_reason(), None);
    assert_eq!(
        fates(&handle.records()),
        [Fate::Dispatched, Fate::Dispatched]
    );
    assert!(
        handle.intents().is_empty(),
        "the buffer is empty once flushed"
    );

    let t = tag("scoped-ok");
    assert_eq!(checkout(t.clone(), true).unwrap(), 10);
    assert_eq!(runs(&t), ["record(10)"]);
}

#[test]
fn a_scope_discards_on_err() {
    let t = tag("discard-err");
    let mut handle = None;
    let result: Result<(), AppError> = airlock::scope(|| {
        handle = airlock::current();
        record::enqueue(t.clone(), 1)?;
        Err(fail_on_purpose())
    });
    assert!(matches!(result, Err(AppError::Failed(_))), "{result:?}");
    assert!(runs(&t).is_empty());
    let handle = handle.unwrap();
    assert_eq!(handle.phase(), ScopePhase::Discarded);
    assert_eq!(handle.discard_reason(), Some(DiscardReason::Error));
    assert_eq!(
        fates(&handle.records()),
        [Fate::Discarded(DiscardReason::Error)]
    );

    let t = tag("scoped-err");
    assert!(matches!(
        checkout(t.clone(), false),
        Err(AppError::Failed(_))
    ));
    assert!(runs(&t).is_empty());
}

#[test]
fn a_scope_discards_on_panic_and_the_panic_propagates() {
    let t = tag("discard-panic");
    let handle: Mutex<Option<ScopeHandle>> = Mutex::new(None);
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _: airlock::Result<()> = airlock::scope(|| {
            *handle.lock().unwrap() = airlock::current();
            record::enqueue(t.clone(), 1)?;
            panic!("body exploded");
        });
    }));
    let payload = caught.expect_err("the panic propagates out of the scope");
    assert_eq!(panic_text(&*payload), "body exploded");
    assert!(
        runs(&t).is_empty(),
        "intents of a panicking scope never run"
    );
    let handle = handle.lock().unwrap().take().unwrap();
    assert_eq!(handle.phase(), ScopePhase::Discarded);
    assert_eq!(handle.discard_reason(), Some(DiscardReason::Panic));
    assert_eq!(
        fates(&handle.records()),
        [Fate::Discarded(DiscardReason::Panic)]
    );

    let t = tag("scoped-panic");
    let caught = catch_unwind(|| checkout_panics(t.clone()));
    assert_eq!(panic_text(&*caught.unwrap_err()), "checkout exploded");
    assert!(runs(&t).is_empty());
}

#[test]
fn active_scope_enter_then_flush() -> airlock::Result<()> {
    let t = tag("active-flush");
    let active = Scope::new().name("import").start();
    assert_eq!(active.info().name.as_deref(), Some("import"));
    assert!(!active.is_nested());
    let handle = active.handle();
    {
        let _entered = active.enter();
        assert_eq!(airlock::current().unwrap().info(), active.info());
        record::enqueue(t.clone(), 1)?;
    }
    // Not entered any more: no scope leaks out of the guard.
    assert!(airlock::current().is_none());
    assert!(matches!(
        record::enqueue(t.clone(), 9),
        Err(Error::NoScope { .. })
    ));
    active.in_scope(|| record::enqueue(t.clone(), 2))?;

    assert_eq!(active.intents().len(), 2);
    assert_eq!(handle.phase(), ScopePhase::Open);
    assert_eq!(fates(&handle.records()), [Fate::Buffered, Fate::Buffered]);
    assert!(active.should_flush(Outcome::Success));
    assert!(!active.should_flush(Outcome::Error));
    assert!(runs(&t).is_empty());

    let report = active.flush()?;
    assert_eq!(report.scope.name.as_deref(), Some("import"));
    assert_eq!(report.dispatched(), ["record", "record"]);
    assert!(report.discarded().is_empty());
    assert_eq!(runs(&t), ["record(1)", "record(2)"]);
    assert_eq!(handle.phase(), ScopePhase::Flushed);
    Ok(())
}

#[test]
fn active_scope_discard_and_end() {
    let t = tag("active-discard");
    let active = Scope::new().start();
    let handle = active.handle();
    active.in_scope(|| record::enqueue(t.clone(), 1)).unwrap();
    let report = active.discard("validation failed");
    assert_eq!(report.discarded(), ["record"]);
    assert!(report.dispatched().is_empty());
    let reason = DiscardReason::Requested("validation failed".into());
    assert_eq!(fates(report.records()), [Fate::Discarded(reason.clone())]);
    assert_eq!(handle.discard_reason(), Some(reason));
    assert_eq!(handle.phase(), ScopePhase::Discarded);
    assert!(runs(&t).is_empty());

    // end() asks the behaviour: an error outcome discards, success flushes.
    let active = Scope::new().start();
    active.in_scope(|| record::enqueue(t.clone(), 2)).unwrap();
    let report = active.end(Outcome::Error).unwrap();
    assert_eq!(
        fates(report.records()),
        [Fate::Discarded(DiscardReason::Error)]
    );
    let active = Scope::new().start();
    active.in_scope(|| record::enqueue(t.clone(), 3)).unwrap();
    let report = active.end(Outcome::Success).unwrap();
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(runs(&t), ["record(3)"]);
}

#[test]
fn prepare_flush_filters_now_and_dispatches_later() {
    let t = tag("prepare");
    let active = Scope::new()
        .policy(BlockTasks::of(&[cascade::TASK]))
        .start();
    let handle = active.handle();
    active
        .in_scope(|| -> airlock::Result<()> {
            record::enqueue(t.clone(), 1)?;
            cascade::enqueue(t.clone(), 0)?;
            record::enqueue(t.clone(), 2)?;
            Ok(())
        })
        .unwrap();

    let prepared = active.prepare_flush().unwrap();
    let survivors: Vec<String> = prepared.intents().map(Intent::to_string).collect();
    assert_eq!(
        survivors,
        [format!("record(\"{t}\", 1)"), format!("record(\"{t}\", 2)")]
    );
    // Logically ended: it refuses new intents, and nothing ran yet.
    assert_eq!(handle.phase(), ScopePhase::Flushing);
    let err = handle
        .in_scope(|| record::enqueue(t.clone(), 3))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ScopeClosed {
                phase: ScopePhase::Flushing,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(runs(&t).is_empty());

    // ... e.g. a transaction commits here ...
    let report = prepared.dispatch().unwrap();
    assert_eq!(report.dispatched(), ["record", "record"]);
    assert_eq!(report.dropped(), ["cascade"]);
    assert_eq!(runs(&t), ["record(1)", "record(2)"]);
    assert_eq!(handle.phase(), ScopePhase::Flushed);
    assert_eq!(
        fates(&handle.records()).len(),
        3,
        "the scope keeps a record of every intent"
    );
}

#[test]
fn dropping_a_prepared_flush_discards_its_survivors() {
    let t = tag("prepare-drop");
    let active = Scope::new()
        .policy(BlockTasks::of(&[cascade::TASK]))
        .start();
    let handle = active.handle();
    active
        .in_scope(|| -> airlock::Result<()> {
            record::enqueue(t.clone(), 1)?;
            cascade::enqueue(t.clone(), 0)?;
            Ok(())
        })
        .unwrap();
    let prepared = active.prepare_flush().unwrap();
    assert_eq!(prepared.intents().len(), 1);
    drop(prepared);

    assert!(runs(&t).is_empty());
    assert_eq!(handle.phase(), ScopePhase::Discarded);
    let Some(DiscardReason::Requested(why)) = handle.discard_reason() else {
        panic!("unexpected reason {:?}", handle.discard_reason());
    };
    assert!(why.contains("dropped before dispatch"), "{why}");
    let records = handle.records();
    assert!(matches!(
        records[0].fate,
        Fate::Discarded(DiscardReason::Requested(_))
    ));
    assert!(
        matches!(&records[1].fate, Fate::Dropped { policy, .. } if &**policy == "BlockTasks(cascade)"),
        "{:?}",
        records[1].fate
    );
}

#[test]
fn dropping_an_unended_active_scope_discards_as_abandoned() {
    let t = tag("abandoned");
    let active = Scope::new().start();
    let handle = active.handle();
    active.in_scope(|| record::enqueue(t.clone(), 1)).unwrap();
    drop(active);
    assert!(runs(&t).is_empty());
    assert_eq!(handle.phase(), ScopePhase::Discarded);
    assert_eq!(handle.discard_reason(), Some(DiscardReason::Abandoned));
    assert_eq!(
        fates(&handle.records()),
        [Fate::Discarded(DiscardReason::Abandoned)]
    );
}

#[test]
fn reports_record_identity_origin_and_fate() {
    let t = tag("report");
    let active = Scope::new().name("reported").start();
    let (line, id) = active.in_scope(|| {
        let line = line!() + 1;
        let id = record::enqueue(t.clone(), 1).unwrap();
        (line, id)
    });
    let handle = active.handle();
    let report = active.flush().unwrap();
    let [rec] = report.records() else {
        panic!("{report}");
    };
    assert_eq!(rec.id, id);
    assert_eq!(rec.task.name(), "record");
    assert_eq!(rec.origin.line(), line);
    assert!(rec.own);
    assert_eq!(rec.fate, Fate::Dispatched);
    // The handle keeps the same records after the scope ended.
    let kept = handle.records();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].id, kept[0].fate.clone()), (id, Fate::Dispatched));
    let text = report.to_string();
    assert!(text.contains("scope `reported`"), "{text}");
    assert!(text.contains("record #"), "{text}");
    assert!(text.contains("dispatched"), "{text}");

    // After a discard the reason is on every record.
    let active = Scope::new().start();
    active.in_scope(|| record::enqueue(t.clone(), 2)).unwrap();
    let report = active.discard("changed my mind");
    assert!(
        report.to_string().contains("discarded (changed my mind)"),
        "{report}"
    );
}

#[test]
fn nested_scopes_hand_intents_to_the_parent_own_vs_captured() {
    let t = tag("own-captured");
    let outer = Scope::new().name("outer").start();
    let inner_report: FlushReport = outer.in_scope(|| {
        record::enqueue(t.clone(), 1).unwrap();
        let inner = Scope::new().name("inner").start();
        assert!(inner.is_nested());
        inner.in_scope(|| {
            record::enqueue(t.clone(), 2).unwrap();
            cascade::enqueue(t.clone(), 0).unwrap();
        });
        let report = inner.flush().unwrap();
        record::enqueue(t.clone(), 3).unwrap();
        report
    });
    // The nested flush dispatched nothing: it handed its intents up.
    assert!(runs(&t).is_empty());
    assert_eq!(inner_report.captured(), ["record", "cascade"]);
    for record in inner_report.records().iter() {
        assert!(record.own, "own in the scope that enqueued them");
        assert_eq!(
            record.fate,
            Fate::Captured {
                by: outer.info().clone()
            }
        );
    }

    {
        let intents = outer.intents();
        assert_eq!(intents.names(), ["record", "record", "cascade", "record"]);
        let own: Vec<u64> = intents
            .own()
            .map(|i| i.args::<record>().unwrap().value)
            .collect();
        assert_eq!(own, [1, 3]);
        let captured: Vec<String> = intents.captured().map(Intent::to_string).collect();
        assert_eq!(
            captured,
            [
                format!("record(\"{t}\", 2)"),
                format!("cascade(\"{t}\", 0)")
            ]
        );
    }
    let report = outer.flush().unwrap();
    let own: Vec<bool> = report.records().iter().map(|r| r.own).collect();
    assert_eq!(own, [true, false, false, true]);
    assert_eq!(report.dispatched().len(), 4);
    assert_eq!(
        runs(&t),
        ["record(1)", "record(2)", "cascade(0)", "record(3)"]
    );
}

#[test]
fn always_flush_flushes_on_err() {
    let t = tag("always-err");
    let mut handle = None;
    let result: Result<(), AppError> = Scope::new().behavior(AlwaysFlush).run(|| {
        handle = airlock::current();
        record::enqueue(t.clone(), 1)?;
        Err(fail_on_purpose())
    });
    assert!(
        matches!(&result, Err(AppError::Failed(why)) if why == "the body failed on purpose"),
        "the error is kept: {result:?}"
    );
    assert_eq!(runs(&t), ["record(1)"]);
    assert_eq!(handle.unwrap().phase(), ScopePhase::Flushed);
}

/// `ScopeBehavior::should_flush` documents that returning `true` for
/// `Outcome::Panic` flushes what was buffered before the panic, and
/// `AlwaysFlush` returns `true` for it.
#[test]
fn always_flush_flushes_what_was_buffered_before_a_panic() {
    let t = tag("always-panic");
    assert!(Scope::new()
        .behavior(AlwaysFlush)
        .start()
        .should_flush(Outcome::Panic));
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let _: airlock::Result<()> = Scope::new().behavior(AlwaysFlush).run(|| {
            record::enqueue(t.clone(), 1)?;
            panic!("alert-worthy failure");
        });
    }));
    assert!(caught.is_err(), "the panic still propagates");
    assert_eq!(
        runs(&t),
        ["record(1)"],
        "AlwaysFlush should flush the intents buffered before the panic"
    );
}

/// Flushes only when the body failed: e.g. a scope whose intents are alerts.
#[derive(Debug)]
struct FlushOnlyOnError;

impl ScopeBehavior for FlushOnlyOnError {
    fn should_flush(&self, outcome: Outcome, _scope: &ScopeView<'_>) -> bool {
        outcome == Outcome::Error
    }
}

#[test]
fn a_custom_should_flush_decides() {
    let t = tag("custom-flush");
    let mut handle = None;
    let result: airlock::Result<()> = Scope::new().behavior(FlushOnlyOnError).run(|| {
        handle = airlock::current();
        record::enqueue(t.clone(), 1)?;
        Ok(())
    });
    result.unwrap();
    assert!(
        runs(&t).is_empty(),
        "success does not flush with this behaviour"
    );
    let Some(DiscardReason::Requested(why)) = handle.unwrap().discard_reason() else {
        panic!("expected a requested discard");
    };
    assert!(why.contains("declined to flush"), "{why}");

    let result: Result<(), AppError> = Scope::new().behavior(FlushOnlyOnError).run(|| {
        record::enqueue(t.clone(), 2)?;
        Err(fail_on_purpose())
    });
    assert!(result.is_err());
    assert_eq!(runs(&t), ["record(2)"]);
}

/// Lets `record` intents of descendants dispatch as soon as the descendant
/// exits; captures everything else. Logs which scope was exiting.
#[derive(Debug, Default)]
struct EarlyRecords {
    asked: Arc<Mutex<Vec<String>>>,
}

impl ScopeBehavior for EarlyRecords {
    fn allow_descendant_dispatch(&self, exiting: &ScopeInfo, intent: &Intent) -> bool {
        self.asked.lock().unwrap().push(format!(
            "{}:{}",
            exiting.name.as_deref().unwrap_or("?"),
            intent.name()
        ));
        intent.is::<record>()
    }
}

#[test]
fn allow_descendant_dispatch_lets_some_nested_intents_out_early() {
    let t = tag("early");
    let behavior = EarlyRecords::default();
    let asked = Arc::clone(&behavior.asked);
    let result: airlock::Result<()> = Scope::new().name("request").behavior(behavior).run(|| {
        let inner: airlock::Result<()> = Scope::new().name("inner").run(|| {
            record::enqueue(t.clone(), 1)?;
            cascade::enqueue(t.clone(), 0)?;
            Ok(())
        });
        inner?;
        // The record went out when the inner scope exited; the outer is still open.
        assert_eq!(runs(&t), ["record(1)"]);
        let outer = airlock::current().unwrap();
        assert_eq!(outer.phase(), ScopePhase::Open);
        assert_eq!(outer.intents().names(), ["cascade"]);
        Ok(())
    });
    result.unwrap();
    assert_eq!(runs(&t), ["record(1)", "cascade(0)"]);
    assert_eq!(*asked.lock().unwrap(), ["inner:record", "inner:cascade"]);
}

/// Lets every descendant's intent out early, and counts the questions.
#[derive(Debug, Default)]
struct LetsAllOut {
    asked: Arc<Mutex<usize>>,
}

impl ScopeBehavior for LetsAllOut {
    fn allow_descendant_dispatch(&self, _: &ScopeInfo, _: &Intent) -> bool {
        *self.asked.lock().unwrap() += 1;
        true
    }
}

/// The hook is a method the user wrote: it is asked about every intent of a
/// nested scope, and its answer is honoured.
#[test]
fn an_outer_behaviour_is_asked_about_every_intent_of_a_nested_scope() {
    let t = tag("lets-all-out");
    let behavior = LetsAllOut::default();
    let asked = Arc::clone(&behavior.asked);
    let result: airlock::Result<()> = Scope::new().behavior(behavior).run(|| {
        let inner: airlock::Result<()> = Scope::new().run(|| {
            record::enqueue(t.clone(), 1)?;
            record::enqueue(t.clone(), 2)?;
            Ok(())
        });
        inner?;
        // Dispatched as the nested scope ended, not captured.
        assert_eq!(runs(&t), ["record(1)", "record(2)"]);
        assert_eq!(airlock::current().unwrap().intents().len(), 0);
        Ok(())
    });
    result.unwrap();
    assert_eq!(*asked.lock().unwrap(), 2);
}

#[test]
fn early_dispatch_needs_every_ancestor_and_still_passes_their_policies() {
    // The nearest ancestor captures: the record waits for the middle scope.
    let t = tag("early-chain");
    let result: airlock::Result<()> = Scope::new().behavior(EarlyRecords::default()).run(|| {
        Scope::new().name("middle").run(|| {
            Scope::new()
                .name("inner")
                .run(|| record::enqueue(t.clone(), 1).map(drop))?;
            assert!(runs(&t).is_empty(), "the middle scope captured it");
            Ok::<(), Error>(())
        })?;
        assert_eq!(
            runs(&t),
            ["record(1)"],
            "dispatched when the middle scope exited"
        );
        Ok(())
    });
    result.unwrap();
    assert_eq!(runs(&t), ["record(1)"]);

    // Let through early, but the outer scope's policy still drops it.
    let t = tag("early-policy");
    let mut outer_info = None;
    let mut inner_report = None;
    let result: airlock::Result<()> = Scope::new()
        .name("outer")
        .policy(BlockTasks::of(&[record::TASK]))
        .behavior(EarlyRecords::default())
        .run(|| {
            outer_info = airlock::current().map(|h| h.info().clone());
            let inner = Scope::new().name("inner").start();
            inner.in_scope(|| record::enqueue(t.clone(), 1))?;
            inner_report = Some(inner.flush()?);
            Ok(())
        });
    result.unwrap();
    assert!(runs(&t).is_empty());
    let inner_report = inner_report.unwrap();
    assert_eq!(inner_report.dropped(), ["record"]);
    assert_eq!(
        inner_report.records()[0].fate,
        Fate::Dropped {
            policy: "BlockTasks(record)".into(),
            source: PolicySource::Scope(outer_info.unwrap()),
        }
    );
}

/// Unlike airlock-py: an inner `DropAll` scope stays a dry run inside a request
/// scope; its intents are captured and then dropped at the outer flush.
#[test]
fn an_inner_drop_all_scope_drops_its_intents_at_the_outer_flush() {
    let t = tag("inner-dropall");
    let outer = Scope::new().name("request").start();
    let inner_info = outer.in_scope(|| {
        let mut info = None;
        let inner: airlock::Result<()> = Scope::new().name("dry-run").policy(DropAll).run(|| {
            info = airlock::current().map(|h| h.info().clone());
            record::enqueue(t.clone(), 1)?;
            Ok(())
        });
        inner.unwrap();
        record::enqueue(t.clone(), 2).unwrap();
        info.unwrap()
    });
    assert_eq!(outer.intents().captured().count(), 1);

    let report = outer.flush().unwrap();
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(report.dropped(), ["record"]);
    let dropped = report
        .matching(|f| matches!(f, Fate::Dropped { .. }))
        .next()
        .unwrap();
    assert!(!dropped.own);
    assert_eq!(
        dropped.fate,
        Fate::Dropped {
            policy: "DropAll".into(),
            source: PolicySource::Scope(inner_info),
        }
    );
    assert!(
        report
            .to_string()
            .contains("dropped by policy DropAll of scope `dry-run`"),
        "{report}"
    );
    assert_eq!(runs(&t), ["record(2)"]);
}

#[test]
fn capture_is_recursive_through_three_levels() {
    let t = tag("depth3");
    let s1 = Scope::new().name("s1").start();
    let (s2, s3) = s1.in_scope(|| {
        let mut handles = (None, None);
        let r: airlock::Result<()> = Scope::new().name("s2").run(|| {
            handles.0 = airlock::current();
            let r: airlock::Result<()> = Scope::new().name("s3").run(|| {
                handles.1 = airlock::current();
                record::enqueue(t.clone(), 1)?;
                Ok(())
            });
            r?;
            assert_eq!(airlock::current().unwrap().intents().captured().count(), 1);
            Ok(())
        });
        r.unwrap();
        (handles.0.unwrap(), handles.1.unwrap())
    });
    assert!(runs(&t).is_empty());
    assert_eq!(
        fates(&s3.records()),
        [Fate::Captured {
            by: s2.info().clone()
        }]
    );
    let s2_records = s2.records();
    assert_eq!(
        fates(&s2_records),
        [Fate::Captured {
            by: s1.info().clone()
        }]
    );
    assert!(!s2_records[0].own);
    assert_eq!(s1.intents().captured().count(), 1);
    let report = s1.flush().unwrap();
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(runs(&t), ["record(1)"]);

    // When the middle scope fails, what it captured from below is lost with it.
    let t = tag("depth3-middle-fails");
    let s1 = Scope::new().name("s1").start();
    s1.in_scope(|| {
        let r: Result<(), AppError> = Scope::new().name("s2").run(|| {
            Scope::new()
                .name("s3")
                .run(|| record::enqueue(t.clone(), 1).map(drop))?;
            Err(fail_on_purpose())
        });
        assert!(r.is_err());
    });
    assert!(s1.intents().is_empty());
    assert!(s1.flush().unwrap().records().is_empty());
    assert!(runs(&t).is_empty());
}

#[test]
fn a_detached_scope_dispatches_on_its_own() {
    let t = tag("detached");
    let result: Result<(), AppError> = airlock::scope(|| {
        let outer = airlock::current().unwrap();
        let detached = Scope::new().detached().start();
        assert!(!detached.is_nested());
        detached.in_scope(|| record::enqueue(t.clone(), 1))?;
        let report = detached.flush()?;
        assert_eq!(report.dispatched(), ["record"]);
        assert_eq!(runs(&t), ["record(1)"], "ran at the detached flush");
        assert!(outer.intents().is_empty(), "the outer scope saw nothing");

        let r: airlock::Result<()> = Scope::new().detached().run(|| {
            record::enqueue(t.clone(), 2)?;
            Ok(())
        });
        r?;
        record::enqueue(t.clone(), 3)?;
        // The outer scope fails: only its own intent is discarded.
        Err(fail_on_purpose())
    });
    assert!(result.is_err());
    assert_eq!(runs(&t), ["record(1)", "record(2)"]);
}

/// `IntentsGuard` promises that `enqueue` on its thread fails with `ScopeBusy`
/// "instead of deadlocking"; reading the same scope's phase, records or intents
/// while holding it must not deadlock either.
#[test]
fn inspecting_a_scope_while_holding_its_intents_does_not_deadlock() {
    // Like a `RefCell` borrow: while this thread holds the IntentsGuard, the
    // phase stays readable, and a second borrow of the buffer panics with a
    // message saying what to do, instead of deadlocking.
    let t = tag("inspect-twice");
    let (tx, rx) = mpsc::channel();
    // On its own thread: if it deadlocks, the test fails instead of hanging.
    std::thread::spawn(move || {
        let active = Scope::new().start();
        active.in_scope(|| record::enqueue(t, 1)).unwrap();
        let handle = active.handle();
        let intents = handle.intents();
        let phase = handle.phase();
        let second =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handle.records().len()));
        let message = match second {
            Ok(_) => String::from("no panic"),
            Err(panic) => panic.downcast_ref::<String>().cloned().unwrap_or_default(),
        };
        let seen = (intents.len(), phase, message);
        drop(intents);
        let after = handle.records().len();
        let _ = tx.send((seen, after));
    });
    let ((len, phase, message), after) = rx
        .recv_timeout(Duration::from_secs(5))
        .expect("reading a scope while holding its IntentsGuard deadlocked");
    assert_eq!((len, phase, after), (1, ScopePhase::Open, 1));
    assert!(
        message.contains("already borrowed on this thread") && message.contains("drop the guard"),
        "{message}"
    );
}

// The owner's frame buffers its intents locally (no lock per enqueue) and
// hands them to the scope when it leaves. What a user can observe must not
// change: FIFO order with nested scopes and handles, inspection, leaked guards.

#[test]
fn intents_of_the_owner_and_of_a_nested_scope_keep_fifo_order() -> airlock::Result<()> {
    let t = tag("owner-fifo");
    let scope = Scope::new().start();
    {
        let _entered = scope.enter();
        record::enqueue(t.clone(), 1)?;
        airlock::scope(|| record::enqueue(t.clone(), 2).map(drop))?;
        record::enqueue(t.clone(), 3)?;
        // Read on the owner's thread while still inside: everything is there.
        let values: Vec<u64> = scope
            .intents()
            .iter()
            .map(|i| i.args::<record>().expect("a record intent").value)
            .collect();
        assert_eq!(values, [1, 2, 3]);
        record::enqueue(t.clone(), 4)?;
    }
    let report = scope.flush()?;
    assert_eq!(
        runs(&t),
        ["record(1)", "record(2)", "record(3)", "record(4)"]
    );
    let own: Vec<bool> = report.records().iter().map(|r| r.own).collect();
    assert_eq!(own, [true, false, true, true]);
    Ok(())
}

#[test]
fn a_handle_on_another_thread_interleaves_by_enqueue_order() -> airlock::Result<()> {
    let t = tag("owner-handle");
    let scope = Scope::new().start();
    let handle = scope.handle();
    {
        let _entered = scope.enter();
        record::enqueue(t.clone(), 1)?;
        let (t2, h2) = (t.clone(), handle.clone());
        std::thread::spawn(move || h2.in_scope(|| record::enqueue(t2, 2)))
            .join()
            .expect("the thread does not panic")?;
        record::enqueue(t.clone(), 3)?;
    }
    // After the owner left, a handle on any thread sees every intent, in order.
    let seen = std::thread::spawn(move || {
        handle
            .records()
            .iter()
            .map(|r| (r.id, r.task.name()))
            .collect::<Vec<_>>()
    })
    .join()
    .expect("the thread does not panic");
    assert_eq!(seen.len(), 3);
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0),
        "FIFO by id: {seen:?}"
    );
    scope.flush()?;
    assert_eq!(runs(&t), ["record(1)", "record(2)", "record(3)"]);
    Ok(())
}

/// Polls `future` once on this thread.
fn poll_once<F: std::future::Future + ?Sized>(
    future: std::pin::Pin<&mut F>,
) -> std::task::Poll<F::Output> {
    future.poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
}

#[test]
fn a_scoped_future_moved_to_a_thread_with_lower_ids_keeps_enqueue_order() {
    let t = tag("moved");
    // A second thread creates an intent first, so its ids come from an
    // earlier, lower block than this thread's.
    type Moved = std::pin::Pin<Box<dyn std::future::Future<Output = airlock::Result<()>> + Send>>;
    let (to_second, received) = mpsc::channel::<Moved>();
    let (ready, second_ready) = mpsc::channel();
    let warm = tag("moved-warm-up");
    let second = std::thread::spawn(move || {
        airlock::scope(|| record::enqueue(warm, 0).map(drop)).unwrap();
        ready.send(()).unwrap();
        let mut future = received.recv().unwrap();
        loop {
            if let std::task::Poll::Ready(result) = poll_once(future.as_mut()) {
                return result;
            }
        }
    });
    second_ready.recv().unwrap();

    let (t1, t2) = (t.clone(), t.clone());
    let mut future: Moved = Box::pin(airlock::scope_async(async move {
        // First poll, here: a nested scope's intent, captured at once.
        airlock::scope_async(async move { record::enqueue(t1, 1).map(drop) }).await?;
        yield_once().await;
        // Second poll, on the other thread, whose own ids are lower.
        record::enqueue(t2, 2)?;
        Ok(())
    }));
    assert!(poll_once(future.as_mut()).is_pending());
    to_second.send(future).unwrap();
    second.join().unwrap().unwrap();
    assert_eq!(runs(&t), ["record(1)", "record(2)"]);
}

#[test]
fn a_leaked_enter_guard_loses_nothing_and_refuses_after_the_end() -> airlock::Result<()> {
    let t = tag("leaked-guard");
    let scope = Scope::new().start();
    std::mem::forget(scope.enter());
    record::enqueue(t.clone(), 1)?;
    let report = scope.flush()?;
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(runs(&t), ["record(1)"]);
    // The leaked frame still names the ended scope: enqueueing through it is
    // refused, not silently buffered.
    let late = record::enqueue(t.clone(), 2);
    assert!(
        matches!(late, Err(Error::ScopeClosed { .. })),
        "got {late:?}"
    );
    assert_eq!(runs(&t), ["record(1)"]);
    Ok(())
}

#[test]
fn into_intents_takes_what_a_leaked_enter_guard_buffered() -> airlock::Result<()> {
    let t = tag("leaked-into");
    let scope = Scope::new().start();
    std::mem::forget(scope.enter());
    record::enqueue(t.clone(), 1)?;
    let intents = scope.into_intents();
    assert_eq!(intents.len(), 1);
    assert_eq!(intents[0].to_string(), format!("record({t:?}, 1)"));
    assert!(runs(&t).is_empty());
    Ok(())
}

#[test]
fn entering_an_entered_scope_again_buffers_each_intent_once() {
    let t = tag("re-enter");
    let scope = Scope::new().start();
    let handle = scope.handle();
    {
        let _outer = scope.enter();
        record::enqueue(t.clone(), 1).unwrap();
        {
            let _again = scope.enter();
            let _and_again = handle.enter();
            record::enqueue(t.clone(), 2).unwrap();
        }
        record::enqueue(t.clone(), 3).unwrap();
    }
    assert_eq!(scope.intents().len(), 3);
    scope.flush().unwrap();
    assert_eq!(runs(&t), ["record(1)", "record(2)", "record(3)"]);
}

/// Flushes only a scope that holds something, and remembers what it saw.
#[derive(Debug, Default)]
struct SkipEmpty {
    seen: std::sync::Mutex<Vec<Vec<&'static str>>>,
}

impl ScopeBehavior for SkipEmpty {
    fn should_flush(&self, outcome: Outcome, scope: &ScopeView<'_>) -> bool {
        let names = scope.intents().names();
        let flush = outcome == Outcome::Success && !names.is_empty();
        self.seen.lock().unwrap().push(names);
        flush
    }
}

#[airlock::scoped(behavior = SkipEmptyShared)]
fn scoped_with_skip_empty(t: String) -> airlock::Result<()> {
    record::enqueue(t, 4).map(drop)
}

/// [`SkipEmpty`] for `#[scoped]`, which builds its behaviour from a path.
#[derive(Debug, Default)]
struct SkipEmptyShared;

impl ScopeBehavior for SkipEmptyShared {
    fn should_flush(&self, outcome: Outcome, scope: &ScopeView<'_>) -> bool {
        outcome == Outcome::Success && !scope.intents().is_empty()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_behaviour_sees_every_intent_of_its_scope_however_the_scope_runs() {
    let t = tag("view");
    let behavior = std::sync::Arc::new(SkipEmpty::default());
    let shared = std::sync::Arc::clone(&behavior);

    // Scope::run: the owner's intents, and one from a handle on another thread.
    Scope::new()
        .behavior(ArcBehavior(std::sync::Arc::clone(&shared)))
        .run(|| -> airlock::Result<()> {
            record::enqueue(t.clone(), 1)?;
            let handle = airlock::current().unwrap();
            let t2 = t.clone();
            std::thread::spawn(move || handle.in_scope(|| record::enqueue(t2, 2).map(drop)))
                .join()
                .unwrap()
        })
        .unwrap();
    // An async scope.
    Scope::new()
        .behavior(ArcBehavior(std::sync::Arc::clone(&shared)))
        .run_async(async { record::enqueue(t.clone(), 3).map(drop) })
        .await
        .unwrap();
    // An empty scope is discarded.
    let mut empty = None;
    Scope::new()
        .behavior(ArcBehavior(shared))
        .run(|| -> airlock::Result<()> {
            empty = airlock::current();
            Ok(())
        })
        .unwrap();
    scoped_with_skip_empty(t.clone()).unwrap();

    let seen = behavior.seen.lock().unwrap().clone();
    assert_eq!(seen, [vec!["record", "record"], vec!["record"], vec![]]);
    assert_eq!(empty.unwrap().phase(), ScopePhase::Discarded);
    assert_eq!(
        runs(&t),
        ["record(1)", "record(2)", "record(3)", "record(4)"],
        "every non-empty scope flushed"
    );
}

/// Shares one behaviour between scopes, so the test can read what it saw.
#[derive(Debug)]
struct ArcBehavior(std::sync::Arc<SkipEmpty>);

impl ScopeBehavior for ArcBehavior {
    fn should_flush(&self, outcome: Outcome, scope: &ScopeView<'_>) -> bool {
        self.0.should_flush(outcome, scope)
    }
}

/// One buffer per scope: a handle on another thread sees what the owner
/// enqueued as soon as `enqueue` returned, while the owner is still inside
/// the scope, and the owner sees what the other thread enqueued.
#[test]
fn a_handle_on_another_thread_sees_the_owners_intents_at_once() {
    let t = tag("one-buffer");
    let result: airlock::Result<()> = airlock::scope(|| {
        record::enqueue(t.clone(), 1)?;
        let handle = airlock::current().unwrap();
        let t2 = t.clone();
        let seen = std::thread::spawn(move || {
            let before = handle.intents().names();
            handle.in_scope(|| record::enqueue(t2, 2))?;
            Ok::<_, airlock::Error>(before)
        })
        .join()
        .unwrap()?;
        assert_eq!(seen, ["record"], "the other thread saw the owner's intent");
        let values: Vec<u64> = airlock::current()
            .unwrap()
            .intents()
            .iter()
            .map(|i| i.args::<record>().unwrap().value)
            .collect();
        assert_eq!(values, [1, 2], "FIFO across both threads");
        Ok(())
    });
    result.unwrap();
    assert_eq!(runs(&t), ["record(1)", "record(2)"]);
}

/// An intent's id is given once: `enqueue` returns the id the intent was
/// built with, on the owner's thread and through a handle on another thread,
/// and the buffer, the report and the records all use it.
#[test]
fn an_intent_keeps_the_id_it_was_built_with() {
    let t = tag("stable-id");
    let scope = Scope::new().start();
    let own = record::intent(t.clone(), 1).build();
    let own_id = own.id();
    let handle = scope.handle();
    let t2 = t.clone();
    let (other_id, returned) = std::thread::spawn(move || {
        let other = record::intent(t2, 2).build();
        let id = other.id();
        (id, handle.in_scope(|| airlock::enqueue(other)))
    })
    .join()
    .unwrap();
    assert_eq!(returned.unwrap(), other_id);
    assert_eq!(scope.in_scope(|| airlock::enqueue(own)).unwrap(), own_id);
    let buffered: Vec<_> = scope.intents().iter().map(Intent::id).collect();
    assert_eq!(buffered, [other_id, own_id], "buffered in enqueue order");
    let report = scope.flush().unwrap();
    let reported: Vec<_> = report.records().iter().map(|r| r.id).collect();
    assert_eq!(reported, [other_id, own_id]);
}

/// What a behaviour sees when it decides: every intent of the scope, its
/// owner's, a handle's and a nested scope's, under `Scope::run`.
#[test]
fn should_flush_sees_every_intent_of_the_scope() {
    #[derive(Debug, Default)]
    struct Counts(Arc<Mutex<Vec<usize>>>);
    impl ScopeBehavior for Counts {
        fn should_flush(&self, outcome: Outcome, scope: &ScopeView<'_>) -> bool {
            self.0.lock().unwrap().push(scope.intents().len());
            outcome == Outcome::Success
        }
    }
    let t = tag("sees-all");
    let behavior = Counts::default();
    let seen = Arc::clone(&behavior.0);
    let result: airlock::Result<()> = Scope::new().behavior(behavior).run(|| {
        record::enqueue(t.clone(), 1)?;
        let handle = airlock::current().unwrap();
        let t2 = t.clone();
        std::thread::spawn(move || handle.in_scope(|| record::enqueue(t2, 2)))
            .join()
            .unwrap()?;
        airlock::scope(|| record::enqueue(t.clone(), 3).map(drop))?;
        Ok(())
    });
    result.unwrap();
    // Asked once (the nested scope has the default behaviour), seeing all three.
    assert_eq!(*seen.lock().unwrap(), [3]);
}
