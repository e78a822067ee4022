//! What airlock reports through `tracing`: enqueue, policy drops (naming the
//! policy), flushes, discards (how many intents and why) and dispatch failures.
//! Its own binary, so the capturing subscriber sees only these tests' events.

use airlock::{DropAll, Scope};
use airlock_tests::logs::LogSink;
use airlock_tests::{fail, failed, record, tag, AppError};

/// Runs `f` with every airlock event down to TRACE captured; returns the log.
fn logged(f: impl FnOnce()) -> String {
    let sink = LogSink::default();
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    sink.text()
}

fn line_with<'a>(log: &'a str, needle: &str) -> &'a str {
    log.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{log}"))
}

#[test]
fn enqueue_and_flush_are_traced() {
    let t = tag("trace-flush");
    let log = logged(|| {
        Scope::new()
            .name("checkout")
            .run(|| record::enqueue(t.clone(), 1).map(drop))
            .unwrap();
    });
    let enqueued = line_with(&log, "intent enqueued");
    assert!(
        enqueued.contains("TRACE") && enqueued.contains("task=\"record\""),
        "{log}"
    );
    assert!(enqueued.contains("scope `checkout`"), "{log}");
    let flushed = line_with(&log, "scope flushed");
    assert!(
        flushed.contains("dispatched=1") && flushed.contains("total=1"),
        "{log}"
    );
    // The dispatch runs inside a span naming the scope and the batch size.
    let span = line_with(&log, "airlock.dispatch");
    assert!(
        span.contains("scope `checkout`") && span.contains("intents=1"),
        "{log}"
    );
}

#[test]
fn a_policy_drop_names_the_policy() {
    let t = tag("trace-drop");
    let log = logged(|| {
        Scope::new()
            .policy(DropAll)
            .run(|| record::enqueue(t.clone(), 2).map(drop))
            .unwrap();
    });
    let dropped = line_with(&log, "intent dropped by policy");
    assert!(dropped.contains("policy=DropAll"), "{log}");
    assert!(dropped.contains(&format!("record(\"{t}\", 2)")), "{log}");
}

#[test]
fn a_discard_says_how_many_intents_were_lost_and_why() {
    let t = tag("trace-discard");
    let log = logged(|| {
        let result: Result<(), AppError> = airlock::scope(|| {
            record::enqueue(t.clone(), 1)?;
            record::enqueue(t.clone(), 2)?;
            Err(failed("the handler failed"))
        });
        assert!(result.is_err());
    });
    let discarded = line_with(&log, "scope discarded its intents");
    assert!(discarded.contains("lost=2"), "{log}");
    assert!(discarded.contains("the scope returned an error"), "{log}");
}

#[test]
fn a_dispatch_failure_is_an_error_event() {
    let t = tag("trace-fail");
    let log = logged(|| {
        let result: airlock::Result<()> = airlock::scope(|| {
            fail::enqueue(t.clone())?;
            record::enqueue(t.clone(), 1)?;
            Ok(())
        });
        assert!(result.is_err());
    });
    let failed = line_with(&log, "dispatch failed");
    assert!(failed.contains("ERROR"), "{log}");
    assert!(
        failed.contains("at `fail`") && failed.contains(&format!("boom: {t}")),
        "{log}"
    );
    assert!(failed.contains("not attempted"), "{log}");
}

#[test]
fn enqueue_outside_a_scope_is_traced_too() {
    let log = logged(|| {
        assert!(record::enqueue("nowhere".into(), 0).is_err());
    });
    let line = line_with(&log, "enqueue outside a scope");
    assert!(line.contains("task=\"record\""), "{log}");
}
