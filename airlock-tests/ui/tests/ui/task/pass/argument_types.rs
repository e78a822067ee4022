// Owned serde types of every shape are accepted, including `'static` lifetimes
// and `mut` bindings.
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Line {
    sku: String,
    quantity: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
enum Carrier {
    Post,
    Courier { name: String },
}

#[airlock::task]
fn ship(
    mut lines: Vec<Line>,
    carrier: Carrier,
    note: Option<String>,
    label: Cow<'static, str>,
    dims: (u32, u32, u32),
    tags: HashSet<String>,
    meta: BTreeMap<String, serde_json::Value>,
    boxed: Box<[u8]>,
    array: [i16; 3],
) {
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    let _ = (lines, carrier, note, label, dims, tags, meta, boxed, array);
}

fn main() {
    let lines = vec![Line { sku: "b".into(), quantity: 1 }];
    let captured = airlock::testing::capture(|| {
        ship::enqueue(
            lines.clone(),
            Carrier::Courier { name: "fast".into() },
            None,
            Cow::Borrowed("fragile"),
            (1, 2, 3),
            HashSet::new(),
            BTreeMap::new(),
            vec![1u8].into_boxed_slice(),
            [1, -2, 3],
        )
    });
    captured.value.as_ref().unwrap();
    let args = captured.args::<ship>()[0];
    assert_eq!(args.lines, lines);
    assert_eq!(args.carrier, Carrier::Courier { name: "fast".into() });
    assert_eq!(args.label, "fragile");
    assert_eq!(args.array, [1, -2, 3]);

    // Round trip through JSON, as when an intent crosses a process boundary.
    let json = captured.intents[0].args_json().unwrap();
    assert_eq!(json["dims"], serde_json::json!([1, 2, 3]));
    let decoded = ship::TASK.decode_args(json).unwrap();
    let intent = <airlock::Intent as airlock::executor::IntentParts>::from_decoded(ship::TASK, decoded);
    assert_eq!(intent.args::<ship>().unwrap().lines, lines);

    // And the task runs with them.
    let result: airlock::Result<()> = airlock::scope(|| {
        ship::enqueue(
            lines.clone(),
            Carrier::Post,
            Some("n".into()),
            Cow::Owned("x".into()),
            (0, 0, 0),
            HashSet::from(["t".to_owned()]),
            BTreeMap::new(),
            Box::new([]),
            [0; 3],
        )?;
        Ok(())
    });
    result.unwrap();
}
