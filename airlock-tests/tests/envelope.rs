//! The wire envelope: round trips, version checks, and running decoded intents
//! exactly as a queue worker would.

use std::time::{Duration, UNIX_EPOCH};

use airlock::envelope::{Envelope, ENVELOPE_VERSION};
use airlock::testing::capture;
use airlock::{ArgsError, Error};
use airlock_tests::{cascade, record, runs, tag};

fn one_envelope(f: impl FnOnce() -> airlock::Result<()>) -> Envelope {
    let captured = capture(f);
    captured.value.expect("enqueue succeeds");
    let [intent] = &captured.intents[..] else {
        panic!("expected one intent, got {:?}", captured.intents);
    };
    Envelope::from_intent(intent, "01JD5Z6QK0000000000000000A").expect("encodes")
}

#[test]
fn an_envelope_round_trips_through_json_and_runs_like_on_a_worker() {
    let t = tag("envelope-roundtrip");
    let envelope = one_envelope(|| record::enqueue(t.clone(), 7).map(drop));
    assert_eq!(envelope.version, ENVELOPE_VERSION);
    assert_eq!(envelope.task, "record");
    assert_eq!(envelope.args, serde_json::json!({ "tag": t, "value": 7 }));
    let origin = envelope.origin.clone().expect("origin recorded");
    assert!(
        origin.starts_with("airlock-tests/tests/envelope.rs:"),
        "{origin}"
    );

    let bytes = envelope.to_json().unwrap();
    let decoded = Envelope::from_json(&bytes).unwrap();
    assert_eq!(decoded, envelope);

    let intent = decoded.into_intent().unwrap();
    assert_eq!(intent.args::<record>().unwrap().value, 7);
    assert!(runs(&t).is_empty(), "decoding runs nothing");

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime
        .block_on(airlock::executor::run_intent(intent))
        .unwrap();
    assert_eq!(runs(&t), ["record(7)"]);
}

#[test]
fn dispatch_options_survive_the_wire() {
    let t = tag("envelope-options");
    let run_at = UNIX_EPOCH + Duration::from_millis(1_900_000_000_123);
    let envelope = one_envelope(|| {
        record::intent(t.clone(), 1)
            .delay(Duration::from_secs(60))
            .run_at(run_at)
            .queue("warehouse")
            .priority(5)
            .max_attempts(3)
            .enqueue()
            .map(drop)
    });
    let json: serde_json::Value = serde_json::from_slice(&envelope.to_json().unwrap()).unwrap();
    assert_eq!(
        json["options"],
        serde_json::json!({
            "delay_ms": 60_000,
            "run_at_ms": 1_900_000_000_123_u64,
            "queue": "warehouse",
            "priority": 5,
            "max_attempts": 3
        })
    );
    let intent = envelope.into_intent().unwrap();
    let options = intent.options();
    assert_eq!(options.delay, Some(Duration::from_secs(60)));
    assert_eq!(options.run_at, Some(run_at));
    assert_eq!(options.queue.as_deref(), Some("warehouse"));
    assert_eq!((options.priority, options.max_attempts), (Some(5), Some(3)));
}

const ID: &str = "01JD5Z6QK0000000000000000A";

/// The one intent `f` enqueues.
fn one_intent(f: impl FnOnce() -> airlock::Result<()>) -> airlock::Intent {
    let captured = capture(f);
    captured.value.expect("enqueue succeeds");
    let mut intents = captured.intents;
    assert_eq!(intents.len(), 1, "{intents:?}");
    intents.remove(0)
}

#[test]
fn the_wire_format_is_pinned() {
    // The exact bytes a queue pushes for a plain intent: these field names,
    // in this order, and nothing for what is empty or zero (no options, a
    // cascade depth of 0). A worker of this build and of every build before
    // it reads them.
    let t = tag("envelope-wire");
    let intent = one_intent(|| record::enqueue(t.clone(), 7).map(drop));
    let bytes = Envelope::encode_intent(&intent, ID).unwrap();
    let expected = format!(
        r#"{{"v":1,"id":"{ID}","task":"record","args":{{"tag":"{t}","value":7}},"origin":"{}"}}"#,
        intent.origin()
    );
    assert_eq!(String::from_utf8(bytes.clone()).unwrap(), expected);

    let decoded = Envelope::from_json(&bytes).unwrap();
    assert_eq!(decoded.id, ID);
    assert_eq!(decoded.cascade_depth, 0);
    assert_eq!(decoded.origin, Some(intent.origin().to_string()));
    let worker = airlock::worker::decode_job(&bytes).expect("a worker reads it");
    assert_eq!(worker.name(), "record");
    assert_eq!(worker.args::<record>().unwrap().value, 7);
    assert_eq!(worker.cascade_depth(), 0);
}

#[test]
fn older_payloads_with_every_field_written_still_decode() {
    // Builds before this one always wrote `cascade_depth`, 0 included, and
    // jobs they queued may still wait in a queue.
    for depth in [0, 3] {
        let payload = serde_json::json!({
            "v": 1, "id": ID, "task": "record",
            "args": { "tag": "old", "value": 4 },
            "options": { "queue": "warehouse", "max_attempts": 2 },
            "origin": "src/old.rs:1:2",
            "cascade_depth": depth,
        })
        .to_string();
        let envelope = Envelope::from_json(payload.as_bytes()).unwrap();
        assert_eq!(envelope.cascade_depth, depth);
        for intent in [
            envelope.into_intent().unwrap(),
            airlock::worker::decode_job(payload.as_bytes()).expect("a worker reads it"),
        ] {
            assert_eq!(intent.cascade_depth(), depth);
            assert_eq!(intent.args::<record>().unwrap().value, 4);
            assert_eq!(intent.options().queue.as_deref(), Some("warehouse"));
            assert_eq!(intent.options().max_attempts, Some(2));
        }
    }
}

#[test]
fn the_queue_encoding_is_the_envelopes_json_and_decodes_to_the_same_intent() {
    // `encode_intent` (what the queues push) writes straight from the intent;
    // it must give exactly `from_intent` + `to_json`, for every kind of field.
    let t = tag("envelope-direct");
    let run_at = UNIX_EPOCH + Duration::from_millis(1_900_000_000_123);
    let mut intents = vec![
        one_intent(|| record::enqueue(t.clone(), 1).map(drop)),
        one_intent(|| {
            record::intent("quote \" backslash \\ é \u{1}".to_owned(), u64::MAX)
                .delay(Duration::from_secs(60))
                .run_at(run_at)
                .queue("warehouse")
                .priority(-5)
                .max_attempts(3)
                .enqueue()
                .map(drop)
        }),
        one_intent(|| measure::enqueue(vec![0.1, -0.0, f64::MAX, 5e-324], 0.3).map(drop)),
        one_intent(|| carry::enqueue(nested(10)).map(drop)),
        one_intent(|| {
            carry::enqueue(serde_json::json!({ "b": [1, {"z": null, "a": true}], "a": "x" }))
                .map(drop)
        }),
    ];
    // A cascade depth other than 0, as a worker decodes one.
    let mut deep = one_envelope(|| cascade::enqueue(t.clone(), 2).map(drop));
    deep.cascade_depth = 9;
    intents.push(deep.into_intent().unwrap());

    for intent in &intents {
        let direct = Envelope::encode_intent(intent, ID).unwrap();
        let via_envelope = Envelope::from_intent(intent, ID)
            .unwrap()
            .to_json()
            .unwrap();
        assert_eq!(
            String::from_utf8(direct.clone()).unwrap(),
            String::from_utf8(via_envelope).unwrap()
        );
        let decoded = airlock::worker::decode_job(&direct).expect("a worker reads it");
        assert_eq!(decoded.name(), intent.name());
        assert_eq!(decoded.args_json().unwrap(), intent.args_json().unwrap());
        assert_eq!(decoded.options(), intent.options());
        assert_eq!(decoded.cascade_depth(), intent.cascade_depth());
    }
    let text = String::from_utf8(Envelope::encode_intent(&intents[5], ID).unwrap()).unwrap();
    assert!(text.ends_with(r#","cascade_depth":9}"#), "{text}");
}

#[test]
fn an_envelope_without_options_stays_small() {
    let t = tag("envelope-small");
    let envelope = one_envelope(|| record::enqueue(t.clone(), 1).map(drop));
    let json: serde_json::Value = serde_json::from_slice(&envelope.to_json().unwrap()).unwrap();
    assert!(json.get("options").is_none(), "{json}");
}

#[test]
fn a_newer_envelope_version_is_refused_with_what_to_do() {
    let payload = serde_json::json!({ "v": 2, "id": "x", "task": "record", "args": {} });
    let error = Envelope::from_json(payload.to_string().as_bytes()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::EnvelopeVersion {
                found: 2,
                supported: 1
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("version 2") && message.contains("deploy"),
        "{message}"
    );
}

#[test]
fn payloads_that_are_not_envelopes_are_refused_clearly() {
    for (payload, expected) in [
        (&b"not json"[..], "not JSON"),
        (&br#"{"task":"record"}"#[..], "no version field `v`"),
        (&br#"{"v":"one"}"#[..], "must be a number"),
        (&br#"{"v":1,"task":"record"}"#[..], "malformed envelope"),
    ] {
        let error = Envelope::from_json(payload).unwrap_err();
        assert!(matches!(error, Error::Envelope { .. }), "{error:?}");
        assert!(error.to_string().contains(expected), "{error}");
    }
}

#[test]
fn an_unknown_task_name_lists_the_registered_ones() {
    let payload = serde_json::json!({ "v": 1, "id": "x", "task": "recrod", "args": {} });
    let error = Envelope::from_json(payload.to_string().as_bytes())
        .unwrap()
        .into_intent()
        .unwrap_err();
    let Error::UnknownTask(unknown) = &error else {
        panic!("expected UnknownTask, got {error:?}");
    };
    assert_eq!(
        unknown.suggestions.first().map(String::as_str),
        Some("record")
    );
    assert!(unknown.known.iter().any(|k| k == "warehouse.notify"));
}

#[test]
fn undecodable_arguments_name_the_task() {
    let payload = serde_json::json!({ "v": 1, "id": "x", "task": "record", "args": { "tag": 5 } });
    let error = Envelope::from_json(payload.to_string().as_bytes())
        .unwrap()
        .into_intent()
        .unwrap_err();
    assert!(
        matches!(error, Error::Args(ArgsError::Decode { task: "record", .. })),
        "{error:?}"
    );
}

#[test]
fn the_cascade_depth_travels_so_a_runaway_cascade_stops_across_processes() {
    let t = tag("envelope-depth");
    let mut envelope = one_envelope(|| cascade::enqueue(t.clone(), 5).map(drop));
    // As if 31 task executions had already led here (the default limit is 32).
    envelope.cascade_depth = 31;
    let intent = Envelope::from_json(&envelope.to_json().unwrap())
        .unwrap()
        .into_intent()
        .unwrap();
    assert_eq!(intent.cascade_depth(), 31);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let error = runtime
        .block_on(airlock::executor::run_intent(intent))
        .unwrap_err()
        .to_string();
    // Depth 32 runs; the intent it enqueues would be 33 levels deep.
    assert_eq!(runs(&t), ["cascade(5)"]);
    assert!(error.contains("levels deep"), "{error}");
}

/// A task with float arguments; never run, only encoded and decoded.
#[airlock::task(name = "envelope.measure")]
fn measure(values: Vec<f64>, ratio: f32) {
    let _ = (values, ratio);
}

#[test]
fn float_arguments_reach_the_worker_bit_for_bit() {
    // Found by the worker fuzz target (airlock/fuzz, seed
    // regress-f64-second-hop.json): serde_json's default float parser is only
    // "best effort", and read the producer's `1.7976931348623155e308` (the
    // largest f64 but one) back as f64::MAX.
    let values = vec![
        f64::from_bits(0x7fef_ffff_ffff_fffe),
        f64::MAX,
        f64::MIN_POSITIVE,
        5e-324,
        0.1 + 0.2,
        -0.0,
        1.0 / 3.0,
    ];
    let ratio = f32::from_bits(0x7f7f_fffe);
    let sent = values.clone();
    let envelope = one_envelope(move || measure::enqueue(sent, ratio).map(drop));
    let intent = Envelope::from_json(&envelope.to_json().unwrap())
        .unwrap()
        .into_intent()
        .unwrap();
    let args = intent.args::<measure>().unwrap();
    let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&args.values), bits(&values));
    assert_eq!(args.ratio.to_bits(), ratio.to_bits());
}

#[test]
fn a_run_at_past_the_platform_clock_is_refused_not_a_panic() {
    // `UNIX_EPOCH + Duration` panics past the latest representable time: on
    // Windows from the year 30828 on, where a worker would have crashed on
    // this job. Linux represents it, so there the job decodes.
    let payload = serde_json::json!({
        "v": 1, "id": "x", "task": "record",
        "args": { "tag": "t", "value": 1 },
        "options": { "run_at_ms": u64::MAX },
    });
    let decoded = Envelope::from_json(payload.to_string().as_bytes())
        .unwrap()
        .into_intent();
    match UNIX_EPOCH.checked_add(Duration::from_millis(u64::MAX)) {
        Some(at) => assert_eq!(decoded.unwrap().options().run_at, Some(at)),
        None => assert!(
            matches!(decoded, Err(Error::Envelope { ref reason }) if reason.contains("run_at_ms")),
            "{decoded:?}"
        ),
    }
}

/// A task taking any JSON, to nest arguments at will.
#[airlock::task(name = "envelope.carry")]
fn carry(payload: serde_json::Value) {
    let _ = payload;
}

/// `levels` nested arrays around `0`.
fn nested(levels: usize) -> serde_json::Value {
    (0..levels).fold(serde_json::json!(0), |inner, _| serde_json::json!([inner]))
}

#[test]
fn arguments_nested_deeper_than_a_worker_reads_are_refused_by_the_producer() {
    // Found by the structured worker fuzz target: serde_json writes any depth
    // but parses at most 127 levels, so a producer queued jobs every worker
    // aborted as "not JSON". `{"payload": nested(n)}` nests n + 1 levels.
    let deepest = nested(airlock::envelope::MAX_ARGS_DEPTH - 1);
    let envelope = one_envelope(|| carry::enqueue(deepest.clone()).map(drop));
    let intent = Envelope::from_json(&envelope.to_json().unwrap())
        .expect("the deepest allowed arguments parse on a worker")
        .into_intent()
        .unwrap();
    assert_eq!(intent.args::<carry>().unwrap().payload, deepest);

    let too_deep = nested(airlock::envelope::MAX_ARGS_DEPTH);
    let captured = capture(|| carry::enqueue(too_deep).map(drop));
    let error = Envelope::from_intent(&captured.intents[0], "01JD5Z6QK0000000000000000A")
        .expect_err("one level more is refused");
    assert!(
        matches!(
            error,
            Error::Args(ArgsError::Encode {
                task: "envelope.carry",
                ..
            })
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("127 levels deep"), "{error}");

    // The queues' direct encoding applies the same limit.
    let error = Envelope::encode_intent(&captured.intents[0], "01JD5Z6QK0000000000000000A")
        .expect_err("one level more is refused");
    assert!(
        matches!(
            error,
            Error::Args(ArgsError::Encode {
                task: "envelope.carry",
                ..
            })
        ),
        "{error:?}"
    );
    let deepest =
        one_intent(|| carry::enqueue(nested(airlock::envelope::MAX_ARGS_DEPTH - 1)).map(drop));
    let bytes = Envelope::encode_intent(&deepest, "01JD5Z6QK0000000000000000A").unwrap();
    airlock::worker::decode_job(&bytes).expect("the deepest allowed arguments run on a worker");
}

#[test]
fn the_depth_limit_counts_the_deepest_branch_wherever_it_is() {
    // One deep branch among flat siblings, in arrays and objects, first or
    // last: the producer's walk skips scalars, so it must still find it.
    let limit = airlock::envelope::MAX_ARGS_DEPTH;
    let deep = |levels| nested(levels);
    for (payload, nests) in [
        (serde_json::json!([1, "x", deep(limit - 2), null]), limit),
        (
            serde_json::json!({ "a": 1, "b": [[], {}], "c": deep(limit - 2) }),
            limit,
        ),
        (serde_json::json!([deep(limit - 2), 2]), limit),
        (
            serde_json::json!([1, "x", deep(limit - 1), null]),
            limit + 1,
        ),
        (
            serde_json::json!({ "a": [], "z": { "y": deep(limit - 2) } }),
            limit + 1,
        ),
        (serde_json::json!([[], [[]], {}]), 4),
    ] {
        // `carry`'s arguments object adds one level.
        let intent = one_intent(|| carry::enqueue(payload.clone()).map(drop));
        let encoded = Envelope::encode_intent(&intent, ID);
        if nests <= limit {
            let bytes = encoded.unwrap_or_else(|e| panic!("{nests} levels: {e}"));
            airlock::worker::decode_job(&bytes).expect("a worker reads it");
        } else {
            let error = encoded.expect_err("too deep");
            assert!(
                error.to_string().contains(&format!("{nests} levels deep")),
                "{error}"
            );
        }
    }
}
