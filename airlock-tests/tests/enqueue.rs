//! Enqueueing: where intents go, what they record about themselves, and the
//! errors `enqueue` returns instead of dispatching silently.

use std::time::{Duration, SystemTime};

use airlock::{DispatchOptions, Error, Intent, ScopePhase};
use airlock_tests::{cascade, fail, failed, record, runs, tag, AppError};

#[test]
fn enqueue_outside_a_scope_is_no_scope_and_says_how_to_fix_it() {
    let t = tag("no-scope");
    let err = record::enqueue(t.clone(), 1).unwrap_err();
    assert!(
        matches!(err, Error::NoScope { task: "record" }),
        "unexpected error: {err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("`record`"), "{message}");
    assert!(message.contains("no airlock scope is active"), "{message}");
    // The message names the ways to open a scope and to carry one into a task.
    for fix in [
        "#[airlock::scoped]",
        "airlock::scope(",
        "airlock::scope_async(",
        "ScopeHandle::bind",
    ] {
        assert!(message.contains(fix), "message lacks {fix:?}: {message}");
    }
    // The builder path fails the same way, and nothing ran.
    let err = record::intent(t.clone(), 2)
        .queue("q")
        .enqueue()
        .unwrap_err();
    assert!(matches!(err, Error::NoScope { task: "record" }), "{err:?}");
    assert!(runs(&t).is_empty());
}

#[test]
fn intents_are_buffered_and_dispatched_in_fifo_order() {
    let t = tag("fifo");
    let result: airlock::Result<()> = airlock::scope(|| {
        let mut ids = Vec::new();
        for value in [5, 3, 9, 1] {
            ids.push(record::enqueue(t.clone(), value)?);
        }
        ids.push(cascade::enqueue(t.clone(), 0)?);
        ids.push(record::enqueue(t.clone(), 2)?);
        // Ids increase with enqueue order.
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

        let scope = airlock::current().expect("inside a scope");
        let intents = scope.intents();
        assert_eq!(
            intents.names(),
            ["record", "record", "record", "record", "cascade", "record"]
        );
        let buffered: Vec<_> = intents.iter().map(Intent::id).collect();
        assert_eq!(buffered, ids);
        drop(intents);
        // Buffered, not run.
        assert!(runs(&t).is_empty());
        Ok(())
    });
    result.unwrap();
    assert_eq!(
        runs(&t),
        [
            "record(5)",
            "record(3)",
            "record(9)",
            "record(1)",
            "cascade(0)",
            "record(2)"
        ]
    );
}

#[track_caller]
fn enqueue_via_helper(t: String) -> airlock::Result<airlock::IntentId> {
    record::enqueue(t, 99)
}

#[test]
fn origin_is_the_line_of_the_enqueue_call() {
    let t = tag("origin");
    let captured = airlock::testing::capture(|| -> airlock::Result<Vec<u32>> {
        let mut lines = Vec::new();
        lines.push(line!() + 1);
        record::enqueue(t.clone(), 1)?;
        lines.push(line!() + 1);
        record::intent(t.clone(), 2).priority(1).enqueue()?;
        lines.push(line!() + 1);
        airlock::enqueue(Intent::new::<record>(record_args(&t, 3)))?;
        // #[track_caller] propagates through a #[track_caller] helper.
        lines.push(line!() + 1);
        enqueue_via_helper(t.clone())?;
        Ok(lines)
    });
    let lines = captured.value.unwrap();
    assert_eq!(captured.intents.len(), 4);
    for (intent, line) in captured.intents.iter().zip(lines) {
        let origin = intent.origin();
        assert!(
            origin.file().ends_with("tests/enqueue.rs"),
            "origin file of {intent}: {}",
            origin.file()
        );
        assert_eq!(origin.line(), line, "origin line of {intent}");
    }
}

/// Builds `record`'s arguments through a round trip, since the generated
/// struct has no public name.
fn record_args(t: &str, value: u64) -> <record as airlock::Task>::Args {
    let json = serde_json::json!({ "tag": t, "value": value });
    serde_json::from_value(json).unwrap()
}

#[test]
fn display_reads_like_the_call_and_debug_adds_id_origin_and_options() {
    let t = tag("display");
    let captured = airlock::testing::capture(|| -> airlock::Result<()> {
        record::enqueue(t.clone(), 7)?;
        record::intent(t.clone(), 8)
            .queue("slow")
            .priority(-3)
            .enqueue()?;
        fail::enqueue("quote\"d".to_owned())?;
        Ok(())
    });
    captured.value.as_ref().unwrap();
    let [plain, with_options, quoted] = &captured.intents[..] else {
        panic!("expected 3 intents, got {:?}", captured.intents);
    };

    assert_eq!(plain.to_string(), format!("record(\"{t}\", 7)"));
    assert_eq!(with_options.to_string(), format!("record(\"{t}\", 8)"));
    // Arguments are shown as JSON, so strings are quoted and escaped.
    assert_eq!(quoted.to_string(), r#"fail("quote\"d")"#);

    let debug = format!("{plain:?}");
    assert!(debug.starts_with(&plain.to_string()), "{debug}");
    assert!(debug.contains(&plain.id().to_string()), "{debug}");
    assert!(debug.contains(&plain.origin().to_string()), "{debug}");
    assert!(
        !debug.contains("DispatchOptions"),
        "no options were set: {debug}"
    );

    let debug = format!("{with_options:?}");
    assert!(
        debug.contains(&format!("#{}", with_options.id().get())),
        "{debug}"
    );
    assert!(debug.contains("\"slow\""), "{debug}");
    assert!(debug.contains("priority: Some(-3)"), "{debug}");
}

#[test]
fn typed_args_and_task_identity() {
    let t = tag("typed");
    let captured = airlock::testing::capture(|| -> airlock::Result<()> {
        record::enqueue(t.clone(), 42)?;
        fail::enqueue(t.clone())?;
        Ok(())
    });
    captured.value.as_ref().unwrap();
    let (rec, failing) = (&captured.intents[0], &captured.intents[1]);

    let args = rec.args::<record>().expect("a record intent");
    assert_eq!(args.tag, t);
    assert_eq!(args.value, 42);
    assert!(rec.is::<record>());
    assert!(!rec.is::<fail>());
    assert!(rec.args::<fail>().is_none());
    assert_eq!(rec.name(), "record");
    assert!(std::ptr::eq(rec.task(), record::TASK));

    assert_eq!(failing.args::<fail>().unwrap().tag, t);
    assert!(failing.args::<record>().is_none());
    assert_eq!(captured.args::<record>().len(), 1);
    // Enqueued by ordinary code, not by a task.
    assert_eq!(rec.cascade_depth(), 0);
}

#[test]
fn args_json_is_an_object_keyed_by_parameter_name() {
    let t = tag("json");
    let captured = airlock::testing::capture(|| record::enqueue(t.clone(), 7));
    captured.value.as_ref().unwrap();
    let json = captured.intents[0].args_json().unwrap();
    assert_eq!(json, serde_json::json!({ "tag": t, "value": 7 }));

    let captured = airlock::testing::capture(|| {
        airlock_tests::notify_warehouse::enqueue(
            12,
            vec![airlock_tests::Line {
                sku: "A-1".into(),
                quantity: 3,
            }],
        )
    });
    captured.value.as_ref().unwrap();
    assert_eq!(captured.intents[0].name(), "warehouse.notify");
    assert_eq!(
        captured.intents[0].args_json().unwrap(),
        serde_json::json!({ "order_id": 12, "lines": [{ "sku": "A-1", "quantity": 3 }] })
    );
}

#[test]
fn builder_options_are_visible_on_the_intent() {
    let t = tag("options");
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let captured = airlock::testing::capture(|| -> airlock::Result<()> {
        record::intent(t.clone(), 1)
            .delay(Duration::from_secs(60))
            .queue("warehouse")
            .priority(5)
            .max_attempts(3)
            .enqueue()?;
        record::intent(t.clone(), 2).run_at(at).enqueue()?;
        record::enqueue(t.clone(), 3)?;
        // build() makes the intent without enqueueing it.
        let built = record::intent(t.clone(), 4)
            .queue(String::from("owned"))
            .build();
        assert_eq!(built.options().queue.as_deref(), Some("owned"));
        assert_eq!(airlock::current().unwrap().intents().len(), 3);
        Ok(())
    });
    captured.value.as_ref().unwrap();
    let options: Vec<&DispatchOptions> = captured.intents.iter().map(Intent::options).collect();

    assert_eq!(options[0].delay, Some(Duration::from_secs(60)));
    assert_eq!(options[0].queue.as_deref(), Some("warehouse"));
    assert_eq!(options[0].priority, Some(5));
    assert_eq!(options[0].max_attempts, Some(3));
    assert_eq!(options[0].run_at, None);

    assert_eq!(options[1].run_at, Some(at));
    assert_eq!(options[1].delay, None);
    assert_eq!(options[1].queue, None);

    assert_eq!(*options[2], DispatchOptions::default());
    assert_eq!(captured.intents[0].args::<record>().unwrap().value, 1);
}

#[test]
fn enqueue_through_a_handle_after_the_scope_ended_is_scope_closed() {
    let t = tag("closed");
    let mut handle = None;
    let result: airlock::Result<()> = airlock::Scope::new().name("short-lived").run(|| {
        handle = airlock::current();
        record::enqueue(t.clone(), 1)?;
        Ok(())
    });
    result.unwrap();
    let handle = handle.expect("current() inside a scope");
    assert_eq!(handle.phase(), ScopePhase::Flushed);

    let err = handle
        .in_scope(|| record::enqueue(t.clone(), 2))
        .unwrap_err();
    match &err {
        Error::ScopeClosed { task, scope, phase } => {
            assert_eq!(*task, "record");
            assert_eq!(scope, handle.info());
            assert_eq!(*phase, ScopePhase::Flushed);
        }
        other => panic!("expected ScopeClosed, got {other:?}"),
    }
    let message = err.to_string();
    assert!(message.contains("short-lived"), "{message}");
    assert!(message.contains("has already been flushed"), "{message}");
    // Only the first intent ran.
    assert_eq!(runs(&t), ["record(1)"]);
    assert_eq!(handle.records().len(), 1);

    // A discarded scope refuses too, saying so.
    let mut handle = None;
    let result: Result<(), AppError> = airlock::scope(|| {
        handle = airlock::current();
        Err(failed("fail on purpose"))
    });
    assert!(result.is_err());
    let handle = handle.unwrap();
    let err = handle
        .in_scope(|| record::enqueue(t.clone(), 3))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::ScopeClosed {
                phase: ScopePhase::Discarded,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(runs(&t), ["record(1)"]);
}

#[test]
fn enqueue_while_holding_the_intents_guard_is_scope_busy() {
    let t = tag("busy");
    let result: airlock::Result<()> = airlock::scope(|| {
        record::enqueue(t.clone(), 1)?;
        let scope = airlock::current().unwrap();
        {
            let intents = scope.intents();
            assert_eq!(intents.len(), 1);
            let err = record::enqueue(t.clone(), 2).unwrap_err();
            assert!(
                matches!(err, Error::ScopeBusy { task: "record" }),
                "{err:?}"
            );
            assert!(err.to_string().contains("drop the guard"), "{err}");
            // Still one intent: the refused one was not buffered.
            assert_eq!(intents.len(), 1);
        }
        // Once the guard is gone, enqueue works again.
        record::enqueue(t.clone(), 3)?;
        Ok(())
    });
    result.unwrap();
    assert_eq!(runs(&t), ["record(1)", "record(3)"]);
}
