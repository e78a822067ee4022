//! Policies: the built-ins, composition, local `with_policy` blocks, and what
//! happens when a policy misbehaves (enqueues, panics).

use std::sync::{Arc, Mutex};

use airlock::{
    AllowAll, AssertNoEffects, BlockTasks, ConfigError, DiscardReason, DropAll, Error, Fate,
    FlushReport, Intent, LogOnFlush, Policies, Policy, PolicySource, PolicyViolation, Scope,
    ScopeHandle, ScopeInfo, ScopePhase,
};
use airlock_tests::logs::LogSink;
use airlock_tests::{cascade, fail, record, record_run, runs, tag};

/// Runs `body` in a scope with `policy` and returns the scope's report, its
/// identity and the body's result.
fn run_with(
    policy: impl Policy,
    body: impl FnOnce() -> airlock::Result<()>,
) -> (FlushReport, ScopeInfo) {
    let active = Scope::new().name("policed").policy(policy).start();
    let info = active.info().clone();
    active.in_scope(body).expect("the body succeeds");
    (active.flush().expect("the flush succeeds"), info)
}

fn dropped_by(report: &FlushReport) -> Vec<(String, PolicySource)> {
    report
        .records()
        .iter()
        .filter_map(|r| match &r.fate {
            Fate::Dropped { policy, source } => Some((policy.to_string(), source.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn drop_all_buffers_everything_and_dispatches_nothing() {
    let t = tag("dropall");
    let (report, info) = run_with(DropAll, || {
        record::enqueue(t.clone(), 1)?;
        cascade::enqueue(t.clone(), 0)?;
        // Still buffered: the scope lists what it would have dispatched.
        assert_eq!(airlock::current().unwrap().intents().len(), 2);
        Ok(())
    });
    assert_eq!(report.dropped(), ["record", "cascade"]);
    assert!(report.dispatched().is_empty());
    assert_eq!(
        dropped_by(&report),
        [
            ("DropAll".to_owned(), PolicySource::Scope(info.clone())),
            ("DropAll".to_owned(), PolicySource::Scope(info)),
        ]
    );
    assert!(runs(&t).is_empty());
}

#[test]
fn assert_no_effects_rejects_at_enqueue_and_buffers_nothing() {
    let t = tag("no-effects");
    let mut handle = None;
    let result: airlock::Result<()> = Scope::new().policy(AssertNoEffects).run(|| {
        handle = airlock::current();
        let line = line!() + 1;
        let err = record::enqueue(t.clone(), 1).unwrap_err();
        let Error::PolicyViolation(violation) = &err else {
            panic!("expected a PolicyViolation, got {err:?}");
        };
        assert_eq!(violation.policy, "AssertNoEffects");
        assert_eq!(violation.task, "record");
        assert!(
            violation
                .origin
                .contains(&format!("tests/policies.rs:{line}:")),
            "{}",
            violation.origin
        );
        assert!(
            err.to_string().contains("must not have side effects"),
            "{err}"
        );
        assert!(airlock::current().unwrap().intents().is_empty());
        Err(err)
    });
    assert!(matches!(result, Err(Error::PolicyViolation(_))));
    assert!(handle.unwrap().records().is_empty(), "nothing was buffered");
    assert!(runs(&t).is_empty());
}

#[test]
fn assert_no_effects_lets_nothing_through_a_flush_either() {
    // Its flush filter is the last line for an intent that reached a scope
    // without its enqueue check: it must allow nothing.
    let t = tag("no-effects-filter");
    let captured = airlock::testing::capture(|| record::enqueue(t.clone(), 1));
    assert!(!AssertNoEffects.allows(&captured.intents[0]));
}

#[test]
fn block_tasks_drops_at_flush_by_default() {
    let t = tag("block-flush");
    let (report, info) = run_with(BlockTasks::of(&[fail::TASK]), || {
        record::enqueue(t.clone(), 1)?;
        // Accepted at enqueue, buffered...
        fail::enqueue(t.clone())?;
        assert_eq!(
            airlock::current().unwrap().intents().names(),
            ["record", "fail"]
        );
        Ok(())
    });
    // ... and dropped at flush, so it never ran.
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(report.dropped(), ["fail"]);
    assert_eq!(
        dropped_by(&report),
        [("BlockTasks(fail)".to_owned(), PolicySource::Scope(info))]
    );
    assert_eq!(runs(&t), ["record(1)"]);
}

#[test]
fn block_tasks_reject_at_enqueue_refuses_the_enqueue() {
    let t = tag("block-enqueue");
    let policy = BlockTasks::of(&[fail::TASK]).reject_at_enqueue();
    assert!(policy.blocks("fail") && !policy.blocks("record"));
    let (report, _) = run_with(policy, || {
        record::enqueue(t.clone(), 1)?;
        let err = fail::enqueue(t.clone()).unwrap_err();
        match &err {
            Error::PolicyViolation(PolicyViolation {
                policy,
                task,
                reason,
                ..
            }) => {
                assert_eq!(policy, "BlockTasks(fail)");
                assert_eq!(*task, "fail");
                assert!(reason.contains("blocked"), "{reason}");
            }
            other => panic!("expected a PolicyViolation, got {other:?}"),
        }
        assert_eq!(airlock::current().unwrap().intents().names(), ["record"]);
        Ok(())
    });
    assert_eq!(report.dispatched(), ["record"]);
    assert!(
        report.dropped().is_empty(),
        "the rejected intent was never buffered"
    );
    assert_eq!(runs(&t), ["record(1)"]);
}

#[test]
fn block_tasks_names_checks_the_registry_and_suggests() {
    let err = BlockTasks::names(["record", "recrod"]).unwrap_err();
    let ConfigError::UnknownTask {
        setting,
        lookup: source,
    } = &err
    else {
        panic!("expected UnknownTask, got {err:?}");
    };
    assert_eq!(setting, "BlockTasks::names");
    assert_eq!(source.name, "recrod");
    assert_eq!(
        source.suggestions.first().map(String::as_str),
        Some("record")
    );
    let registered: Vec<String> = airlock::registry().names().map(str::to_owned).collect();
    assert_eq!(source.known, registered, "every registered name is listed");
    let mut sorted = source.known.clone();
    sorted.sort();
    assert_eq!(source.known, sorted, "listed sorted");
    for fixture in ["cascade", "fail", "record", "warehouse.notify"] {
        assert!(
            source.known.iter().any(|k| k == fixture),
            "{fixture} missing"
        );
    }
    let message = err.to_string();
    assert!(message.contains("`recrod`"), "{message}");
    assert!(message.contains("did you mean `record`"), "{message}");
    assert!(message.contains("`warehouse.notify`"), "{message}");
    assert!(message.contains("BlockTasks::names"), "{message}");

    let err = BlockTasks::names(["warehouse.notfy"]).unwrap_err();
    assert!(
        err.to_string().contains("did you mean `warehouse.notify`"),
        "{err}"
    );

    let ok = BlockTasks::names(["record", "warehouse.notify"]).unwrap();
    assert!(ok.blocks("record") && ok.blocks("warehouse.notify") && !ok.blocks("fail"));
    assert_eq!(ok.name(), "BlockTasks(record, warehouse.notify)");
}

#[test]
fn typed_block_tasks_blocks_exactly_the_named_tasks() {
    let t = tag("typed-block");
    let policy = BlockTasks::of(&[record::TASK, fail::TASK]);
    assert!(policy.blocks("record") && policy.blocks("fail"));
    assert!(!policy.blocks("cascade") && !policy.blocks("record_async"));
    let (report, _) = run_with(policy, || {
        record::enqueue(t.clone(), 1)?;
        fail::enqueue(t.clone())?;
        cascade::enqueue(t.clone(), 0)?;
        Ok(())
    });
    assert_eq!(report.dropped(), ["record", "fail"]);
    assert_eq!(report.dispatched(), ["cascade"]);
    assert_eq!(runs(&t), ["cascade(0)"]);
}

#[test]
fn log_on_flush_logs_each_intent_and_lets_it_through() {
    let t = tag("log-on-flush");
    let sink = LogSink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let report = tracing::subscriber::with_default(subscriber, || {
        run_with(LogOnFlush, || {
            record::enqueue(t.clone(), 1)?;
            cascade::enqueue(t.clone(), 0)?;
            Ok(())
        })
        .0
    });
    assert_eq!(report.dispatched(), ["record", "cascade"]);
    assert_eq!(runs(&t), ["record(1)", "cascade(0)"]);

    let log = sink.text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("flushing intent"))
        .collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(lines[0].contains("INFO"), "{log}");
    assert!(lines[0].contains("airlock::flush"), "{log}");
    assert!(lines[0].contains(&format!("record(\"{t}\", 1)")), "{log}");
    assert!(
        lines[0].contains("tests/policies.rs:"),
        "the origin is logged: {log}"
    );
    assert!(lines[1].contains(&format!("cascade(\"{t}\", 0)")), "{log}");
}

#[test]
fn policies_compose_with_two_policy_calls() {
    let t = tag("compose-two");
    let active = Scope::new()
        .policy(BlockTasks::of(&[fail::TASK]))
        .policy(BlockTasks::of(&[cascade::TASK]))
        .start();
    let info = active.info().clone();
    active
        .in_scope(|| -> airlock::Result<()> {
            record::enqueue(t.clone(), 1)?;
            fail::enqueue(t.clone())?;
            cascade::enqueue(t.clone(), 0)?;
            Ok(())
        })
        .unwrap();
    let report = active.flush().unwrap();
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(
        dropped_by(&report),
        [
            (
                "BlockTasks(fail)".to_owned(),
                PolicySource::Scope(info.clone())
            ),
            ("BlockTasks(cascade)".to_owned(), PolicySource::Scope(info)),
        ]
    );
    assert_eq!(runs(&t), ["record(1)"]);

    // Applied in order: the first refusing policy is the one reported.
    let t = tag("compose-order");
    let active = Scope::new()
        .policy(DropAll)
        .policy(BlockTasks::of(&[fail::TASK]))
        .start();
    active.in_scope(|| fail::enqueue(t.clone())).unwrap();
    let report = active.flush().unwrap();
    assert_eq!(dropped_by(&report)[0].0, "DropAll");
}

#[test]
fn policies_set_composes_as_one_policy() {
    let t = tag("compose-set");
    let set = Policies::new()
        .with(BlockTasks::of(&[fail::TASK]))
        .with(BlockTasks::of(&[cascade::TASK]));
    assert_eq!(set.iter().count(), 2);
    assert!(!set.is_empty() && Policies::new().is_empty());
    assert_eq!(set.name(), "[BlockTasks(fail), BlockTasks(cascade)]");
    let (report, _) = run_with(set, || {
        record::enqueue(t.clone(), 1)?;
        fail::enqueue(t.clone())?;
        cascade::enqueue(t.clone(), 0)?;
        Ok(())
    });
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(report.dropped(), ["fail", "cascade"]);
    assert_eq!(runs(&t), ["record(1)"]);

    // Every member's on_enqueue runs too.
    let t = tag("compose-set-enqueue");
    let set = Policies::new().with(LogOnFlush).with(AssertNoEffects);
    let r: airlock::Result<()> = Scope::new().policy(set).run(|| {
        let err = record::enqueue(t.clone(), 1).unwrap_err();
        assert!(
            matches!(&err, Error::PolicyViolation(v) if v.policy == "AssertNoEffects"),
            "{err:?}"
        );
        Ok(())
    });
    r.unwrap();
    assert!(runs(&t).is_empty());
}

/// Counts `on_enqueue` calls.
#[derive(Debug)]
struct CountEnqueues {
    calls: Arc<Mutex<usize>>,
}

impl Policy for CountEnqueues {
    fn on_enqueue(&self, _: &Intent) -> Result<(), PolicyViolation> {
        *self.calls.lock().unwrap() += 1;
        Ok(())
    }
    fn allows(&self, intent: &Intent) -> bool {
        intent.name() != "cascade"
    }
}

/// A policy's `on_enqueue` is a method the user wrote: it is called for
/// every intent, on every path into a buffer, with nothing to opt into.
#[test]
fn on_enqueue_is_called_on_every_path_into_a_buffer() {
    let t = tag("checks-enqueue");
    let calls = Arc::new(Mutex::new(0));
    let policy = CountEnqueues {
        calls: Arc::clone(&calls),
    };
    // On the scope, in a local block, and from a handle on another thread.
    let (report, _) = run_with(policy, || {
        record::enqueue(t.clone(), 1)?;
        cascade::enqueue(t.clone(), 0)?;
        let local = CountEnqueues {
            calls: Arc::clone(&calls),
        };
        airlock::with_policy(local, || record::enqueue(t.clone(), 2))?;
        let handle = airlock::current().unwrap();
        let t2 = t.clone();
        std::thread::spawn(move || handle.in_scope(|| record::enqueue(t2, 3)))
            .join()
            .unwrap()?;
        Ok(())
    });
    assert_eq!(report.dispatched(), ["record", "record", "record"]);
    assert_eq!(report.dropped(), ["cascade"]);
    assert_eq!(runs(&t), ["record(1)", "record(2)", "record(3)"]);
    // 4 intents, one of them under two such policies.
    assert_eq!(*calls.lock().unwrap(), 5);
}

#[test]
fn local_policies_apply_innermost_first_then_the_scope_policy() {
    let t = tag("local");
    let active = Scope::new()
        .name("scoped-block")
        .policy(BlockTasks::of(&[record::TASK]))
        .start();
    let info = active.info().clone();
    active
        .in_scope(|| -> airlock::Result<()> {
            airlock::with_policy(DropAll, || record::enqueue(t.clone(), 1))?;
            record::enqueue(t.clone(), 2)?;
            airlock::with_policy(BlockTasks::of(&[cascade::TASK]), || {
                airlock::with_policy(DropAll, || cascade::enqueue(t.clone(), 5))?;
                cascade::enqueue(t.clone(), 6)
            })?;
            airlock::with_policy(AllowAll, || cascade::enqueue(t.clone(), 0))?;
            Ok(())
        })
        .unwrap();

    {
        let intents = active.intents();
        let local: Vec<Vec<String>> = intents
            .iter()
            .map(|i| intents.local_policies(i).map(|p| p.name()).collect())
            .collect();
        assert_eq!(
            local,
            [
                vec!["DropAll".to_owned()],
                vec![],
                vec!["DropAll".to_owned(), "BlockTasks(cascade)".to_owned()],
                vec!["BlockTasks(cascade)".to_owned()],
                vec!["AllowAll".to_owned()],
            ]
        );
        let passes: Vec<bool> = intents
            .iter()
            .map(|i| intents.passes_local_policies(i))
            .collect();
        assert_eq!(passes, [false, true, false, false, true]);
    }

    let report = active.flush().unwrap();
    assert_eq!(
        dropped_by(&report),
        [
            ("DropAll".to_owned(), PolicySource::Local),
            ("BlockTasks(record)".to_owned(), PolicySource::Scope(info)),
            ("DropAll".to_owned(), PolicySource::Local),
            ("BlockTasks(cascade)".to_owned(), PolicySource::Local),
        ]
    );
    assert_eq!(report.dispatched(), ["cascade"]);
    assert_eq!(runs(&t), ["cascade(0)"]);
    assert!(
        report
            .to_string()
            .contains("dropped by local policy DropAll"),
        "{report}"
    );
}

#[test]
fn a_local_policy_follows_intents_into_nested_scopes() {
    let t = tag("local-nested");
    let outer = Scope::new().start();
    outer.in_scope(|| {
        airlock::with_policy(DropAll, || {
            let r: airlock::Result<()> = airlock::scope(|| {
                record::enqueue(t.clone(), 1)?;
                Ok(())
            });
            r.unwrap();
        });
        record::enqueue(t.clone(), 2).unwrap();
    });
    let report = outer.flush().unwrap();
    assert_eq!(
        dropped_by(&report),
        [("DropAll".to_owned(), PolicySource::Local)]
    );
    assert_eq!(runs(&t), ["record(2)"]);

    // A block outside any scope adds a policy but no scope.
    let err = airlock::with_policy(AllowAll, || record::enqueue(t.clone(), 3)).unwrap_err();
    assert!(matches!(err, Error::NoScope { .. }), "{err:?}");
}

/// `with_policy` attaches its policy "to every intent enqueued inside it",
/// whatever scope they land in: a detached scope opened inside the block is no
/// exception, or a library that opens one could bypass a caller's
/// `AssertNoEffects` block and dispatch anyway.
#[test]
fn a_local_policy_also_applies_inside_a_detached_scope() {
    let t = tag("local-detached");
    let result: airlock::Result<()> = airlock::scope(|| {
        let rejected = airlock::with_policy(AssertNoEffects, || {
            Scope::new()
                .detached()
                .run(|| record::enqueue(t.clone(), 1).map(drop))
        });
        assert!(
            matches!(&rejected, Err(Error::PolicyViolation(v)) if v.policy == "AssertNoEffects"),
            "an enqueue inside an AssertNoEffects block was accepted: {rejected:?}"
        );
        let dropped: airlock::Result<()> = airlock::with_policy(DropAll, || {
            Scope::new()
                .detached()
                .run(|| record::enqueue(t.clone(), 2).map(drop))
        });
        dropped?;
        Ok(())
    });
    result.unwrap();
    assert!(
        runs(&t).is_empty(),
        "intents enqueued inside with_policy blocks escaped them: {:?}",
        runs(&t)
    );
}

#[test]
fn a_local_assert_no_effects_rejects_at_enqueue() {
    let t = tag("local-no-effects");
    let result: airlock::Result<()> = airlock::scope(|| {
        let err =
            airlock::with_policy(AssertNoEffects, || record::enqueue(t.clone(), 1)).unwrap_err();
        assert!(
            matches!(&err, Error::PolicyViolation(v) if v.policy == "AssertNoEffects" && v.task == "record"),
            "{err:?}"
        );
        assert!(airlock::current().unwrap().intents().is_empty());
        // Outside the block, enqueue works again.
        record::enqueue(t.clone(), 2)?;
        Ok(())
    });
    result.unwrap();
    assert_eq!(runs(&t), ["record(2)"]);
}

#[tokio::test]
async fn with_policy_async_applies_across_awaits() {
    let t = tag("local-async");
    let t2 = t.clone();
    let result: airlock::Result<()> = airlock::scope_async(async move {
        airlock::with_policy_async(DropAll, async {
            tokio::task::yield_now().await;
            record::enqueue(t2.clone(), 1)?;
            tokio::task::yield_now().await;
            record::enqueue(t2.clone(), 2)
        })
        .await?;
        record::enqueue(t2.clone(), 3)?;
        let scope = airlock::current().unwrap();
        let intents = scope.intents();
        let passes: Vec<bool> = intents
            .iter()
            .map(|i| intents.passes_local_policies(i))
            .collect();
        drop(intents);
        assert_eq!(passes, [false, false, true]);
        Ok(())
    })
    .await;
    result.unwrap();
    assert_eq!(runs(&t), ["record(3)"]);
}

/// A policy that tries to enqueue from both hooks and keeps the results.
#[derive(Debug)]
struct Meddler {
    tag: String,
    attempts: Arc<Mutex<Vec<String>>>,
}

impl Meddler {
    fn attempt(&self, hook: &str) {
        let result = record::enqueue(self.tag.clone(), 100);
        let outcome = match result {
            Err(Error::PolicyEnqueue { task }) => format!("PolicyEnqueue({task})"),
            other => format!("{other:?}"),
        };
        self.attempts
            .lock()
            .unwrap()
            .push(format!("{hook}: {outcome}"));
    }
}

impl Policy for Meddler {
    fn on_enqueue(&self, _: &Intent) -> Result<(), PolicyViolation> {
        self.attempt("on_enqueue");
        Ok(())
    }
    fn allows(&self, _: &Intent) -> bool {
        self.attempt("allows");
        true
    }
}

#[test]
fn enqueue_from_inside_a_policy_is_policy_enqueue() {
    let t = tag("meddler");
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let meddler = Meddler {
        tag: t.clone(),
        attempts: Arc::clone(&attempts),
    };
    let (report, _) = run_with(meddler, || {
        record::enqueue(t.clone(), 1)?;
        Ok(())
    });
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(
        *attempts.lock().unwrap(),
        [
            "on_enqueue: PolicyEnqueue(record)",
            "allows: PolicyEnqueue(record)"
        ]
    );
    assert_eq!(
        runs(&t),
        ["record(1)"],
        "the policy's enqueues went nowhere"
    );
    let message = Error::PolicyEnqueue { task: "record" }.to_string();
    assert!(message.contains("from inside a policy"), "{message}");

    // As a local policy, through passes_local_policies, too.
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let captured = airlock::testing::capture(|| {
        airlock::with_policy(
            Meddler {
                tag: t.clone(),
                attempts: Arc::clone(&attempts),
            },
            || record::enqueue(t.clone(), 2),
        )
    });
    captured.value.as_ref().unwrap();
    assert!(captured.passes_local_policies(&captured.intents[0]));
    assert_eq!(
        *attempts.lock().unwrap(),
        [
            "on_enqueue: PolicyEnqueue(record)",
            "allows: PolicyEnqueue(record)"
        ]
    );
    // Outside the policy, enqueue is allowed again on this thread.
    let r: airlock::Result<()> = airlock::scope(|| record::enqueue(t.clone(), 3).map(drop));
    r.unwrap();
    assert_eq!(runs(&t), ["record(1)", "record(3)"]);
}

/// Panics in `allows` for the `record` intent with this value.
#[derive(Debug)]
struct PanicsOn(u64);

impl Policy for PanicsOn {
    fn allows(&self, intent: &Intent) -> bool {
        if intent.args::<record>().map(|a| a.value) == Some(self.0) {
            panic!("policy exploded on {}", self.0);
        }
        true
    }
}

#[test]
fn a_policy_panicking_in_allows_dispatches_nothing_and_discards_the_scope() {
    let t = tag("policy-panics");
    let mut handle: Option<ScopeHandle> = None;
    let result: airlock::Result<()> = Scope::new().name("fragile").policy(PanicsOn(2)).run(|| {
        handle = airlock::current();
        record::enqueue(t.clone(), 1)?;
        record::enqueue(t.clone(), 2)?;
        record::enqueue(t.clone(), 3)?;
        Ok(())
    });
    let err = result.unwrap_err();
    match &err {
        Error::PolicyPanicked { scope, message } => {
            assert_eq!(scope.name.as_deref(), Some("fragile"));
            assert_eq!(message, "policy exploded on 2");
        }
        other => panic!("expected PolicyPanicked, got {other:?}"),
    }
    assert!(err.to_string().contains("none were dispatched"), "{err}");
    // Not even the intent before the panicking one ran.
    assert!(runs(&t).is_empty());
    let handle = handle.unwrap();
    assert_eq!(handle.phase(), ScopePhase::Discarded);
    let reason = DiscardReason::PolicyPanicked("policy exploded on 2".into());
    assert_eq!(handle.discard_reason(), Some(reason.clone()));
    let fates: Vec<Fate> = handle.records().iter().map(|r| r.fate.clone()).collect();
    assert_eq!(fates, vec![Fate::Discarded(reason); 3]);

    // The thread is not left "inside a policy".
    let r: airlock::Result<()> = airlock::scope(|| record::enqueue(t.clone(), 4).map(drop));
    r.unwrap();
    assert_eq!(runs(&t), ["record(4)"]);
}

/// Logs each `allows` call under the intent's tag, in the same log the tasks use.
#[derive(Debug)]
struct Spy;

impl Policy for Spy {
    fn allows(&self, intent: &Intent) -> bool {
        let args = intent.args::<record>().expect("only record intents here");
        record_run(&args.tag, format!("allows({})", args.value));
        true
    }
}

#[test]
fn flush_asks_every_policy_about_every_intent_before_running_any() {
    let t = tag("two-pass");
    let (report, _) = run_with(Spy, || {
        for value in 1..=3 {
            record::enqueue(t.clone(), value)?;
        }
        Ok(())
    });
    assert_eq!(report.dispatched().len(), 3);
    assert_eq!(
        runs(&t),
        [
            "allows(1)",
            "allows(2)",
            "allows(3)",
            "record(1)",
            "record(2)",
            "record(3)"
        ]
    );
}
