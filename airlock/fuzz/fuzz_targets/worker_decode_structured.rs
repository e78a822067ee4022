//! Near-valid job payloads: a typed intent for one of the fuzz tasks,
//! encoded by the producer's own `Envelope::from_intent`, then damaged by a
//! few structural mutations (replace, remove, insert or rename a field, nest a
//! value deeply, splice in a tricky number literal) before the bytes go
//! through the worker's decoding.
//!
//! Random bytes rarely get past the JSON parser and the envelope's field
//! checks; starting from valid envelopes puts the fuzzer at the argument
//! decoders at once. Besides `check_payload`'s checks it asserts that
//! * an unmutated envelope decodes to exactly the arguments and options the
//!   producer encoded;
//! * the worker's path and `Envelope::from_json` + `into_intent` (the
//!   documented way to read an envelope) accept exactly the same payloads.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

use airlock::envelope::Envelope;
use airlock::{Intent, IntentBuilder, Task};
use airlock_fuzz::{
    charge, notify, ping, reindex, ship, Amount, Channel, Line, Priority, Recipient, REENCODE_ID,
};
use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};

/// At most this many mutations per case: more rarely keeps anything valid.
const MAX_MUTATIONS: usize = 4;

#[derive(Debug, Arbitrary)]
struct Case {
    job: Job,
    options: Options,
    cascade_depth: u32,
    mutations: Vec<Mutation>,
}

/// A call of one of the fuzz tasks, with typed arguments.
#[derive(Debug, Arbitrary)]
enum Job {
    Charge {
        order_id: u64,
        customer: i32,
        currency: String,
        amount: Amount,
    },
    Ship {
        order_id: u64,
        lines: Vec<Line>,
        note: Option<String>,
        priority: Priority,
        express: bool,
        gift_wrap: bool,
    },
    Notify {
        recipient: Recipient,
        channel: Channel,
        template: String,
        vars: BTreeMap<String, Vec<Option<i16>>>,
        retries_by_hour: BTreeMap<u8, u32>,
        weights: Vec<f64>,
        ratio: f32,
        window: (u16, i8),
        checksum: [u8; 4],
        initial: char,
        sequence: i128,
    },
    Ping,
    Reindex {
        batches: Vec<Vec<u32>>,
        since: Option<u64>,
    },
}

/// Dispatch options in the envelope's own resolution (whole milliseconds),
/// so an unmutated envelope must give them back exactly.
#[derive(Debug, Arbitrary)]
struct Options {
    delay_ms: Option<u64>,
    run_at_ms: Option<u64>,
    queue: Option<String>,
    priority: Option<i32>,
    max_attempts: Option<u32>,
}

impl Options {
    fn apply<T: Task>(&self, mut builder: IntentBuilder<T>) -> IntentBuilder<T> {
        if let Some(ms) = self.delay_ms {
            builder = builder.delay(Duration::from_millis(ms));
        }
        if let Some(at) = self
            .run_at_ms
            .and_then(|ms| UNIX_EPOCH.checked_add(Duration::from_millis(ms)))
        {
            builder = builder.run_at(at);
        }
        if let Some(queue) = &self.queue {
            builder = builder.queue(queue.clone());
        }
        if let Some(priority) = self.priority {
            builder = builder.priority(priority);
        }
        if let Some(attempts) = self.max_attempts {
            builder = builder.max_attempts(attempts);
        }
        builder
    }
}

impl Job {
    /// The intent, built with the task's generated `intent(..)` as a producer would.
    fn intent(self, options: &Options) -> Intent {
        match self {
            Job::Charge {
                order_id,
                customer,
                currency,
                amount,
            } => options
                .apply(charge::intent(order_id, customer, currency, amount))
                .build(),
            Job::Ship {
                order_id,
                lines,
                note,
                priority,
                express,
                gift_wrap,
            } => options
                .apply(ship::intent(
                    order_id, lines, note, priority, express, gift_wrap,
                ))
                .build(),
            Job::Notify {
                recipient,
                channel,
                template,
                vars,
                retries_by_hour,
                mut weights,
                ratio,
                window,
                checksum,
                initial,
                sequence,
            } => {
                // serde_json writes NaN and infinities as `null`, which no
                // f64 decodes from: such a job is accepted by the producer
                // and aborted by the worker. A known limitation of JSON, not
                // a decoding bug, so the generator keeps floats finite.
                weights.retain(|w| w.is_finite());
                let ratio = if ratio.is_finite() { ratio } else { 0.0 };
                options
                    .apply(notify::intent(
                        recipient,
                        channel,
                        template,
                        vars,
                        retries_by_hour,
                        weights,
                        ratio,
                        window,
                        checksum,
                        initial,
                        sequence,
                    ))
                    .build()
            }
            Job::Ping => options.apply(ping::intent()).build(),
            Job::Reindex { batches, since } => {
                options.apply(reindex::intent(batches, since)).build()
            }
        }
    }
}

/// Names the decoders look for: envelope fields, task names, parameter and
/// field names, enum tags and variants. Mutations draw keys and strings from
/// here half of the time, so they often hit something the decoder matches on.
const WORDS: &[&str] = &[
    "v",
    "id",
    "task",
    "args",
    "options",
    "origin",
    "cascade_depth",
    "delay_ms",
    "run_at_ms",
    "queue",
    "priority",
    "max_attempts",
    "airlock.undecodable",
    "fuzz.charge",
    "fuzz.ship",
    "fuzz.notify",
    "fuzz.ping",
    "fuzz.reindex",
    "order_id",
    "customer",
    "currency",
    "amount",
    "lines",
    "sku",
    "qty",
    "unit_price",
    "bundle",
    "note",
    "express",
    "express_shipping",
    "gift_wrap",
    "Low",
    "High",
    "Custom",
    "Window",
    "After",
    "at_ms",
    "recipient",
    "kind",
    "email",
    "sms",
    "webhook",
    "address",
    "number",
    "country",
    "url",
    "headers",
    "channel",
    "t",
    "c",
    "Default",
    "Named",
    "Shard",
    "index",
    "template",
    "tmpl",
    "vars",
    "retries_by_hour",
    "weights",
    "ratio",
    "window",
    "checksum",
    "initial",
    "sequence",
    "batches",
    "since",
];

/// Number literals a `serde_json::Value` cannot hold, or that sit on the
/// edge of an integer type, spliced into the JSON text as written.
const RAW_LITERALS: &[&str] = &[
    "18446744073709551616",
    "-9223372036854775809",
    "170141183460469231731687303715884105728",
    "-170141183460469231731687303715884105729",
    "340282366920938463463374607431768211456",
    "1e400",
    "-1e400",
    "1e-400",
    "3.5e38",
    "-3.5e38",
    "-0",
    "-0.0",
    "1.0",
    "1E+2",
    "4294967296",
    "65536",
    "256",
    "-129",
    "9007199254740993",
    "0.1e1",
    "\"\\ud800\"",
    "\"\\u0000\"",
    "\"\\udbff\\udfff\"",
];

/// Where a mutation applies: the n-th node of the envelope in pre-order
/// (modulo the node count, so every value hits some node).
#[derive(Debug, Arbitrary)]
struct At(u16);

#[derive(Debug, Arbitrary)]
enum Mutation {
    /// Replace the node with another value.
    Replace { at: At, with: Json },
    /// Remove one member of an object or element of an array.
    Remove { at: At, which: u8 },
    /// Add a member to an object, or an element to an array.
    Insert { at: At, key: Key, value: Json },
    /// Rename one member of an object.
    Rename { at: At, which: u8, key: Key },
    /// Wrap the node in `depth` arrays or single-member objects: past
    /// serde_json's recursion limit of 128 the JSON no longer parses.
    Nest { at: At, depth: u8, in_object: bool },
    /// Replace the node with a raw literal from [`RAW_LITERALS`].
    Raw { at: At, literal: u8 },
}

/// An object key: usually a known word.
#[derive(Debug)]
struct Key(String);

impl<'a> Arbitrary<'a> for Key {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        word_or_string(u).map(Key)
    }
}

fn word_or_string(u: &mut Unstructured<'_>) -> Result<String> {
    if u.arbitrary()? {
        Ok((*u.choose(WORDS)?).to_owned())
    } else {
        u.arbitrary()
    }
}

/// A JSON value of depth at most [`Json::MAX_DEPTH`], biased to edge-case
/// numbers and known words.
#[derive(Debug)]
struct Json(Value);

impl Json {
    const MAX_DEPTH: u32 = 4;

    fn generate(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
        let kinds = if depth >= Self::MAX_DEPTH { 7 } else { 9 };
        Ok(match u.choose_index(kinds)? {
            0 => Value::Null,
            1 => Value::Bool(u.arbitrary()?),
            2 => Value::from(*u.choose(&[
                0,
                1,
                255,
                256,
                65535,
                65536,
                u64::from(u32::MAX) + 1,
                u64::MAX,
            ])?),
            3 => Value::from(u.arbitrary::<i64>()?),
            4 => Number::from_f64(u.arbitrary()?).map_or(Value::Null, Value::Number),
            5 => Value::String(u.arbitrary()?),
            6 => Value::String(word_or_string(u)?),
            7 => {
                let len = u.int_in_range(0..=4)?;
                Value::Array(
                    (0..len)
                        .map(|_| Self::generate(u, depth + 1))
                        .collect::<Result<_>>()?,
                )
            }
            _ => {
                let len = u.int_in_range(0..=4)?;
                let mut object = Map::new();
                for _ in 0..len {
                    object.insert(word_or_string(u)?, Self::generate(u, depth + 1)?);
                }
                Value::Object(object)
            }
        })
    }
}

impl<'a> Arbitrary<'a> for Json {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Self::generate(u, 0).map(Json)
    }
}

fn children(value: &Value) -> Box<dyn Iterator<Item = &Value> + '_> {
    match value {
        Value::Array(items) => Box::new(items.iter()),
        Value::Object(members) => Box::new(members.values()),
        _ => Box::new(std::iter::empty()),
    }
}

fn node_count(value: &Value) -> usize {
    1 + children(value).map(node_count).sum::<usize>()
}

/// Walks `value` in pre-order, counting `n` down; on reaching 0 leaves the
/// child indices leading to that node in `path` and returns true.
fn find(value: &Value, n: &mut usize, path: &mut Vec<usize>) -> bool {
    if *n == 0 {
        return true;
    }
    *n -= 1;
    for (index, child) in children(value).enumerate() {
        path.push(index);
        if find(child, n, path) {
            return true;
        }
        path.pop();
    }
    false
}

fn node_at<'v>(root: &'v mut Value, at: &At) -> &'v mut Value {
    let mut n = usize::from(at.0) % node_count(root);
    let mut path = Vec::new();
    assert!(find(root, &mut n, &mut path), "n is below the node count");
    let mut node = root;
    for index in path {
        node = match node {
            Value::Array(items) => &mut items[index],
            Value::Object(members) => members.values_mut().nth(index).expect("on the path"),
            _ => unreachable!("only arrays and objects have children"),
        };
    }
    node
}

/// The placeholder a raw literal stands in as until the value is serialized.
fn raw_placeholder(index: usize) -> String {
    format!("\u{1}airlock-fuzz-raw-{index}\u{1}")
}

/// Applies `mutation` to `root`; raw literals are collected in `raws`.
fn mutate(root: &mut Value, mutation: Mutation, raws: &mut Vec<&'static str>) {
    match mutation {
        Mutation::Replace { at, with } => *node_at(root, &at) = with.0,
        Mutation::Remove { at, which } => match node_at(root, &at) {
            Value::Array(items) if !items.is_empty() => {
                items.remove(usize::from(which) % items.len());
            }
            Value::Object(members) if !members.is_empty() => {
                let key = members.keys().nth(usize::from(which) % members.len());
                let key = key.expect("in range").clone();
                members.remove(&key);
            }
            _ => {}
        },
        Mutation::Insert { at, key, value } => match node_at(root, &at) {
            Value::Array(items) => items.push(value.0),
            Value::Object(members) => {
                members.insert(key.0, value.0);
            }
            _ => {}
        },
        Mutation::Rename { at, which, key } => {
            if let Value::Object(members) = node_at(root, &at) {
                if !members.is_empty() {
                    let old = members.keys().nth(usize::from(which) % members.len());
                    let old = old.expect("in range").clone();
                    let value = members.remove(&old).expect("present");
                    members.insert(key.0, value);
                }
            }
        }
        Mutation::Nest {
            at,
            depth,
            in_object,
        } => {
            let node = node_at(root, &at);
            let mut value = node.take();
            for _ in 0..depth {
                value = if in_object {
                    Value::Object(Map::from_iter([("bundle".to_owned(), value)]))
                } else {
                    Value::Array(vec![value])
                };
            }
            *node = value;
        }
        Mutation::Raw { at, literal } => {
            raws.push(RAW_LITERALS[usize::from(literal) % RAW_LITERALS.len()]);
            *node_at(root, &at) = Value::String(raw_placeholder(raws.len() - 1));
        }
    }
}

/// The JSON text of `value`, with each raw placeholder replaced by its literal.
fn to_bytes(value: &Value, raws: &[&str]) -> Vec<u8> {
    let mut text = serde_json::to_string(value).expect("a Value serializes");
    for (index, raw) in raws.iter().enumerate() {
        let placeholder = serde_json::to_string(&raw_placeholder(index)).expect("a string");
        text = text.replace(&placeholder, raw);
    }
    text.into_bytes()
}

fuzz_target!(|case: Case| {
    let intent = case.job.intent(&case.options);
    // An i128 outside the 64-bit range has no JSON number: the producer
    // refuses it when encoding, and there is nothing for a worker to read.
    let pushed = Envelope::encode_intent(&intent, REENCODE_ID);
    let Ok(mut envelope) = Envelope::from_intent(&intent, REENCODE_ID) else {
        assert!(pushed.is_err(), "the queues' encoding accepted what the envelope refused");
        return;
    };
    // What a queue pushes for the intent: the envelope's own JSON.
    assert_eq!(
        pushed.expect("the queues' encoding refused what the envelope accepted"),
        envelope.to_json().expect("an envelope serializes"),
    );
    envelope.cascade_depth = case.cascade_depth;
    let mut value = serde_json::to_value(&envelope).expect("an envelope serializes");
    let mut raws = Vec::new();
    let mutated = !case.mutations.is_empty();
    for mutation in case.mutations.into_iter().take(MAX_MUTATIONS) {
        mutate(&mut value, mutation, &mut raws);
    }
    let bytes = to_bytes(&value, &raws);

    let decoded = airlock_fuzz::check_payload(&bytes);
    let documented = Envelope::from_json(&bytes).and_then(Envelope::into_intent);
    assert_eq!(
        decoded.is_some(),
        documented.is_ok(),
        "the worker and Envelope::from_json disagree on {}: {:?}",
        String::from_utf8_lossy(&bytes),
        documented.err()
    );
    if !mutated {
        let decoded = decoded.unwrap_or_else(|| {
            panic!(
                "a producer's envelope must decode: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(decoded.name(), intent.name());
        assert_eq!(
            decoded.args_json().expect("decoded arguments encode"),
            intent.args_json().expect("the producer encoded them"),
            "arguments changed between producer and worker"
        );
        assert_eq!(decoded.options(), intent.options());
        assert_eq!(decoded.cascade_depth(), case.cascade_depth);
    }
});
