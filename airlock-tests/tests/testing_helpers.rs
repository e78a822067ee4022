//! `airlock::testing`: capture what code enqueues without dispatching it, and
//! readable failures from its assertions.

use std::panic::{catch_unwind, AssertUnwindSafe};

use airlock::testing::{assert_no_effects, capture, capture_async};
use airlock_tests::{cascade, fail, record, runs, tag};

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default()
}

/// Runs `f`, expecting it to panic, and returns the panic message.
fn panic_message_of(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    panic_text(&*payload)
}

fn sign_up(t: &str, user: u64) -> airlock::Result<u64> {
    record::enqueue(t.to_owned(), user)?;
    cascade::enqueue(t.to_owned(), 0)?;
    Ok(user * 2)
}

#[test]
fn capture_returns_the_value_and_the_intents_without_dispatching() {
    let t = tag("capture");
    let captured = capture(|| sign_up(&t, 21));
    assert_eq!(*captured.value.as_ref().unwrap(), 42);
    assert_eq!(captured.names(), ["record", "cascade"]);
    let args = captured.args::<record>();
    assert_eq!(args.len(), 1);
    assert_eq!((args[0].tag.as_str(), args[0].value), (t.as_str(), 21));
    captured.assert_names(&["record", "cascade"]);
    captured.assert_enqueued("cascade");
    assert!(runs(&t).is_empty(), "nothing ran");
    let debug = format!("{captured:?}");
    assert!(
        debug.contains("Captured") && debug.contains("record("),
        "{debug}"
    );

    // Inside another scope, capture still keeps the intents to itself.
    let result: airlock::Result<()> = airlock::scope(|| {
        let inner = capture(|| sign_up(&t, 1));
        assert_eq!(inner.intents.len(), 2);
        assert!(airlock::current().unwrap().intents().is_empty());
        Ok(())
    });
    result.unwrap();
    assert!(runs(&t).is_empty());

    // Code that fails outside a scope works inside capture.
    assert!(sign_up(&t, 1).is_err());
}

#[tokio::test]
async fn capture_async_captures_across_awaits() {
    let t = tag("capture-async");
    let t2 = t.clone();
    let captured = capture_async(async move {
        record::enqueue(t2.clone(), 1)?;
        tokio::task::yield_now().await;
        tokio::spawn(async {}).await.unwrap();
        record::enqueue(t2.clone(), 2)?;
        Ok::<_, airlock::Error>("done")
    })
    .await;
    assert_eq!(captured.value.as_ref().unwrap(), &"done");
    let values: Vec<u64> = captured.args::<record>().iter().map(|a| a.value).collect();
    assert_eq!(values, [1, 2]);
    assert!(runs(&t).is_empty());
    captured.assert_names(&["record", "record"]);
}

#[test]
fn assert_no_effects_returns_the_value_when_nothing_is_enqueued() {
    assert_eq!(assert_no_effects(|| 2 + 2), 4);
    // Failures to enqueue are not effects.
    let t = tag("no-effects-ok");
    let value = assert_no_effects(|| {
        airlock::with_policy(airlock::AssertNoEffects, || record::enqueue(t.clone(), 1))
    });
    assert!(value.is_err());
}

#[test]
fn assert_no_effects_panics_listing_the_intents_with_origins() {
    let t = tag("no-effects");
    let mut lines = Vec::new();
    let message = panic_message_of(|| {
        assert_no_effects(|| -> airlock::Result<()> {
            lines.push(line!() + 1);
            record::enqueue(t.clone(), 1)?;
            lines.push(line!() + 1);
            fail::enqueue(t.clone())?;
            Ok(())
        })
        .unwrap();
    });
    assert!(message.starts_with("expected no side effects"), "{message}");
    assert!(message.contains("2 intent(s) were enqueued"), "{message}");
    let file = file!();
    let listed: Vec<&str> = message.lines().skip(1).map(str::trim).collect();
    assert_eq!(listed.len(), 2, "{message}");
    assert!(
        listed[0].starts_with(&format!("record(\"{t}\", 1) at {file}:{}:", lines[0])),
        "{message}"
    );
    assert!(
        listed[1].starts_with(&format!("fail(\"{t}\") at {file}:{}:", lines[1])),
        "{message}"
    );
    assert!(runs(&t).is_empty(), "nothing ran");
}

#[test]
fn captured_assertions_fail_with_a_readable_listing() {
    let t = tag("assert-names");
    let line = line!() + 1;
    let captured = capture(|| record::enqueue(t.clone(), 5));
    let message = panic_message_of(|| captured.assert_names(&["fail"]));
    assert_eq!(
        message.lines().next().unwrap(),
        r#"expected the intents ["fail"], but 1 intent(s) were enqueued:"#
    );
    let listed = message.lines().nth(1).unwrap_or_default().trim();
    assert!(
        listed.starts_with(&format!("record(\"{t}\", 5) at {}:{line}:", file!())),
        "{message}"
    );

    let message = panic_message_of(|| captured.assert_enqueued("cascade"));
    assert!(
        message.starts_with("expected an intent for `cascade`, but 1 intent(s)"),
        "{message}"
    );
    let message = panic_message_of(|| captured.assert_empty());
    assert!(
        message.starts_with("expected no intents, but 1 intent(s)"),
        "{message}"
    );

    // Nothing enqueued says so.
    let empty = capture(|| ());
    empty.assert_empty();
    let message = panic_message_of(|| empty.assert_names(&["record"]));
    assert_eq!(
        message,
        r#"expected the intents ["record"], but nothing was enqueued"#
    );
}
