//! The task registry: listing, lookup with suggestions, and decoding
//! arguments back into runnable intents.

use airlock::executor::IntentParts;
use airlock::{ArgsError, Intent, LookupError, TaskKind};
use airlock_tests::{record, runs, tag};

const FIXTURES: &[&str] = &[
    "cascade",
    "fail",
    "panics",
    "panics_async",
    "record",
    "record_async",
    "record_then_fail",
    "self_loop",
    "send_confirmation_email",
    "warehouse.notify",
];

#[test]
fn the_registry_lists_the_fixture_tasks_sorted() {
    let registry = airlock::registry();
    let names: Vec<&str> = registry.names().collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(names, sorted, "sorted, each name once");
    for fixture in FIXTURES {
        assert!(
            names.contains(fixture),
            "{fixture} is not registered: {names:?}"
        );
    }
    assert_eq!(registry.len(), names.len());
    assert!(!registry.is_empty());
    let via_iter: Vec<&str> = registry.iter().map(|def| def.name()).collect();
    assert_eq!(via_iter, names);
    registry
        .validate()
        .expect("no duplicate names in this binary");
}

#[test]
fn get_finds_a_task_by_its_stable_name() {
    let def = airlock::registry().get("warehouse.notify").unwrap();
    assert_eq!(def.name(), "warehouse.notify");
    assert_eq!(def.fn_path(), "airlock_tests::notify_warehouse");
    assert_eq!(def.kind(), TaskKind::Async);
    assert!(
        def.location().contains("airlock-tests/src/lib.rs:"),
        "{}",
        def.location()
    );
    assert!(std::ptr::eq(def, airlock_tests::notify_warehouse::TASK));

    let def = airlock::registry().get("record").unwrap();
    assert!(std::ptr::eq(def, record::TASK));
    assert_eq!(def.kind(), TaskKind::Sync);
    // With an explicit name, the function name is not registered.
    assert!(airlock::registry().get("notify_warehouse").is_err());
}

#[test]
fn an_unknown_name_lists_suggestions_and_every_registered_name() {
    let err = airlock::registry().get("warehouse.notfy").unwrap_err();
    let LookupError::Unknown(unknown) = &err else {
        panic!("expected UnknownTask, got {err:?}");
    };
    assert_eq!(unknown.name, "warehouse.notfy");
    assert_eq!(unknown.suggestions, ["warehouse.notify"]);
    let names: Vec<String> = airlock::registry().names().map(str::to_owned).collect();
    assert_eq!(unknown.known, names);

    let message = err.to_string();
    assert!(message.contains("`warehouse.notfy`"), "{message}");
    assert!(
        message.contains("did you mean `warehouse.notify`?"),
        "{message}"
    );
    // The registered names are listed, in sorted order (after the suggestion).
    let listing = &message[message.find("Registered tasks:").expect(&message)..];
    let positions: Vec<usize> = FIXTURES
        .iter()
        .map(|f| {
            listing
                .find(&format!("`{f}`"))
                .unwrap_or_else(|| panic!("{f} not listed: {message}"))
        })
        .collect();
    let mut sorted = positions.clone();
    sorted.sort_unstable();
    assert_eq!(positions, sorted, "{message}");
    assert!(
        message.contains("use that_crate as _;"),
        "the linking pitfall is explained: {message}"
    );

    let Err(LookupError::Unknown(unknown)) = airlock::registry().get("recor") else {
        panic!("expected UnknownTask");
    };
    assert_eq!(
        unknown.suggestions.first().map(String::as_str),
        Some("record")
    );

    // Nothing close: no suggestion, but still the list.
    let Err(LookupError::Unknown(unknown)) = airlock::registry().get("zzzzzzzzzzzzzzzz") else {
        panic!("expected UnknownTask");
    };
    assert!(unknown.suggestions.is_empty());
    assert!(!unknown.known.is_empty());
    let message = airlock::registry()
        .get("zzzzzzzzzzzzzzzz")
        .unwrap_err()
        .to_string();
    assert!(!message.contains("did you mean"), "{message}");
}

#[test]
fn decoding_bad_json_is_a_decode_error_naming_the_task() {
    let err = record::TASK
        .decode_args(serde_json::json!({ "tag": 5, "value": 1 }))
        .expect_err("a number is not a string");
    let ArgsError::Decode { task, source } = &err else {
        panic!("expected Decode, got {err:?}");
    };
    assert_eq!(*task, "record");
    assert!(source.is_data(), "{source}");
    let message = err.to_string();
    assert!(message.contains("`record`"), "{message}");
    assert!(message.contains("parameter names as keys"), "{message}");

    let missing = record::TASK
        .decode_args(serde_json::json!({ "tag": "x" }))
        .err();
    assert!(
        matches!(&missing, Some(ArgsError::Decode { task: "record", source }) if source.to_string().contains("`value`")),
        "{missing:?}"
    );
}

#[test]
fn decoded_arguments_round_trip_into_a_runnable_intent() {
    let t = tag("round-trip");
    let captured = airlock::testing::capture(|| record::enqueue(t.clone(), 7));
    captured.value.as_ref().unwrap();
    let json = captured.intents[0].args_json().unwrap();

    // As a worker would: look the task up by name, decode, enqueue.
    let def = airlock::registry().get(captured.intents[0].name()).unwrap();
    let args = def.decode_args(json.clone()).unwrap();
    let line = line!() + 1;
    let intent = Intent::from_decoded(def, args);
    assert!(intent.is::<record>());
    assert_eq!(intent.args::<record>().unwrap().value, 7);
    assert_eq!(intent.args_json().unwrap(), json);
    assert_eq!(intent.to_string(), captured.intents[0].to_string());
    assert_eq!(intent.origin().line(), line);

    let result: airlock::Result<()> = airlock::scope(|| airlock::enqueue(intent).map(drop));
    result.unwrap();
    assert_eq!(runs(&t), ["record(7)"]);
}
