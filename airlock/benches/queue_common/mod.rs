//! What the three queue benchmarks share: the workload (10k `bump` intents),
//! the engine's baseline job, airlock's own envelopes for the same-payload
//! row, and the per-round report and summary.

use std::time::Duration;

use airlock::envelope::Envelope;

/// Intents per measurement.
pub(crate) const N: u64 = 10_000;
/// Jobs of the untimed warm-up before the first round.
pub(crate) const WARM_UP: u64 = 1_000;

#[airlock::task]
pub(crate) fn bump(value: u64) {
    std::hint::black_box(value);
}

pub(crate) fn envelope(i: u64) -> serde_json::Value {
    serde_json::json!({ "v": 1, "id": "", "task": "bump", "args": { "value": i } })
}

/// Rounds to run: `AIRLOCK_BENCH_ROUNDS`, or `default` (CI runs one).
pub(crate) fn rounds(default: usize) -> usize {
    std::env::var("AIRLOCK_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub(crate) fn report(label: &str, elapsed: Duration) {
    let per_second = N as f64 / elapsed.as_secs_f64();
    println!(
        "{label:<24} {:>10.1} ms  {per_second:>12.0} intents/s",
        elapsed.as_secs_f64() * 1e3
    );
}

pub(crate) const LABELS: [&str; 4] = [
    "airlock_flush_batch",
    "apalis_push_bulk",
    "apalis_bulk_same_payload",
    "apalis_single_pushes",
];

/// One round's times, in `LABELS` order (`None`: skipped).
pub(crate) type Round = [Option<Duration>; 4];

/// Prints each variant's fastest round and airlock's rate over the bulk
/// pushes' (above 1: airlock is faster): from the fastest rounds, and the
/// median and range of the same-round ratios, which a busy machine disturbs
/// less.
pub(crate) fn summary(rounds: &[Round]) {
    let fastest = |column: usize| rounds.iter().filter_map(|round| round[column]).min();
    println!("fastest of {} rounds, {N} intents each:", rounds.len());
    for (column, label) in LABELS.iter().enumerate() {
        if let Some(elapsed) = fastest(column) {
            println!(
                "  {label:<26} {:>12.0} intents/s",
                N as f64 / elapsed.as_secs_f64()
            );
        }
    }
    for (column, label) in [
        (1, "apalis bulk"),
        (2, "apalis bulk, same payload"),
        (3, "single pushes"),
    ] {
        let (Some(airlock), Some(other)) = (fastest(0), fastest(column)) else {
            continue;
        };
        let mut ratios: Vec<f64> = rounds
            .iter()
            .filter_map(|round| Some(round[column]?.as_secs_f64() / round[0]?.as_secs_f64()))
            .collect();
        ratios.sort_by(f64::total_cmp);
        println!(
            "  airlock / {label:<26} {:>5.2}x fastest, {:.2}x median per round ({:.2}-{:.2})",
            other.as_secs_f64() / airlock.as_secs_f64(),
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1],
        );
    }
}

/// The envelopes airlock writes for the benchmark's 10k intents (to `queue`,
/// or the default one), as the JSON values the engine's storage takes, encoded
/// outside any timing.
pub(crate) fn airlock_payloads(queue: Option<&str>) -> Vec<serde_json::Value> {
    let captured = airlock::testing::capture(|| {
        (0..N).try_for_each(|i| match queue {
            Some(queue) => bump::intent(i).queue(queue.to_owned()).enqueue().map(drop),
            None => bump::enqueue(i).map(drop),
        })
    });
    captured.value.expect("the enqueues succeed");
    captured
        .intents
        .iter()
        .map(|intent| {
            let id = ulid::Ulid::generate().to_string();
            let bytes = Envelope::from_intent(intent, id)
                .and_then(|envelope| envelope.to_json())
                .expect("the envelope encodes");
            let value: serde_json::Value =
                serde_json::from_slice(&bytes).expect("the envelope is JSON");
            // The storage's codec writes the value again: same fields, so the
            // same size as what airlock pushes.
            assert_eq!(serde_json::to_vec(&value).unwrap().len(), bytes.len());
            value
        })
        .collect()
}
