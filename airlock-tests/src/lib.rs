//! Shared fixture tasks for airlock's integration tests.
//!
//! Every test binary links this crate, so each has the same registry. Tasks
//! record their runs in a process-wide log keyed by a `tag` argument: tests run
//! in parallel threads, and each uses its own tag to read only its own runs.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};

fn log() -> &'static Mutex<HashMap<String, Vec<String>>> {
    static LOG: OnceLock<Mutex<HashMap<String, Vec<String>>>> = OnceLock::new();
    LOG.get_or_init(Default::default)
}

/// Appends `entry` to the runs recorded under `tag`.
pub fn record_run(tag: &str, entry: impl Into<String>) {
    log()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .entry(tag.to_owned())
        .or_default()
        .push(entry.into());
}

/// The runs recorded under `tag`, in order.
pub fn runs(tag: &str) -> Vec<String> {
    log()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(tag)
        .cloned()
        .unwrap_or_default()
}

/// A unique tag for one test.
pub fn tag(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{name}#{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Records `value` under `tag`.
#[airlock::task]
pub fn record(tag: String, value: u64) {
    record_run(&tag, format!("record({value})"));
}

/// Records `value` under `tag`, asynchronously.
#[airlock::task]
pub async fn record_async(tag: String, value: u64) {
    yield_once().await;
    record_run(&tag, format!("record_async({value})"));
}

/// Pending exactly once (waking itself), so the caller really suspends and a
/// multi-threaded runtime may resume it on another worker.
pub async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await;
}

/// Error returned by [`fail()`].
#[derive(Debug)]
pub struct Boom(pub String);

impl std::fmt::Display for Boom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "boom: {}", self.0)
    }
}

impl std::error::Error for Boom {}

/// An application's own error type, as a scope body returns it: airlock's
/// errors (through `?`) or a failure of the application itself. Tests use it
/// where a body must fail on purpose, so their failure stays distinguishable
/// from airlock's.
#[derive(Debug)]
pub enum AppError {
    /// An error from airlock.
    Airlock(airlock::Error),
    /// The application failed on its own.
    Failed(String),
}

/// An [`AppError::Failed`] with the reason `why`.
pub fn failed(why: impl Into<String>) -> AppError {
    AppError::Failed(why.into())
}

impl From<airlock::Error> for AppError {
    fn from(error: airlock::Error) -> Self {
        AppError::Airlock(error)
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppError::Airlock(error) => write!(f, "{error}"),
            AppError::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

impl std::error::Error for AppError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AppError::Airlock(error) => Some(error),
            AppError::Failed(_) => None,
        }
    }
}

/// Always fails (after recording that it ran).
#[airlock::task]
pub fn fail(tag: String) -> Result<(), Boom> {
    record_run(&tag, "fail");
    Err(Boom(tag))
}

/// Always panics (after recording that it ran).
#[airlock::task]
pub fn panics(tag: String) {
    record_run(&tag, "panics");
    panic!("task panicked on purpose");
}

/// Records, then enqueues itself with `remaining - 1` until it reaches 0.
#[airlock::task]
pub fn cascade(tag: String, remaining: u32) -> airlock::Result<()> {
    record_run(&tag, format!("cascade({remaining})"));
    if remaining > 0 {
        cascade::enqueue(tag, remaining - 1)?;
    }
    Ok(())
}

/// Records, then enqueues itself again: a runaway cascade.
#[airlock::task]
pub fn self_loop(tag: String) -> airlock::Result<()> {
    record_run(&tag, "self_loop");
    self_loop::enqueue(tag)?;
    Ok(())
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    /// Stock keeping unit.
    pub sku: String,
    /// How many.
    pub quantity: u32,
}

/// The quickstart's email task.
#[airlock::task]
pub fn send_confirmation_email(order_id: u64) {
    record_run("send_confirmation_email", order_id.to_string());
}

/// The quickstart's warehouse task, with an explicit stable name.
#[airlock::task(name = "warehouse.notify")]
pub async fn notify_warehouse(order_id: u64, lines: Vec<Line>) -> Result<(), Boom> {
    record_run("warehouse.notify", format!("{order_id}:{}", lines.len()));
    Ok(())
}

/// Always panics (after recording that it ran), asynchronously.
#[airlock::task]
pub async fn panics_async(tag: String) {
    yield_once().await;
    record_run(&tag, "panics_async");
    panic!("async task panicked on purpose");
}

/// Records, enqueues `record(tag, value)`, then fails: the intent it enqueued
/// must be discarded with its scope.
#[airlock::task]
pub fn record_then_fail(tag: String, value: u64) -> Result<(), Boom> {
    record_run(&tag, "record_then_fail");
    record::enqueue(tag.clone(), value).map_err(|e| Boom(e.to_string()))?;
    Err(Boom(tag))
}

#[cfg(any(feature = "apalis-sqlite", feature = "apalis-postgres"))]
pub mod crash;
pub mod faults;
pub mod flush_plan;
pub mod logs;
pub mod process;
pub mod servers;
pub mod trials;

/// The file cross-process tests read to see which tasks ran, one line per run
/// (`key pid`): set `AIRLOCK_TEST_LOG` in the worker process's environment.
pub const EXECUTION_LOG_VAR: &str = "AIRLOCK_TEST_LOG";

/// Appends `key pid` to the file named by `AIRLOCK_TEST_LOG`: how a test in
/// another process sees that (and where) a task ran.
#[airlock::task(name = "test.log_execution")]
pub fn log_execution(key: String) -> std::io::Result<()> {
    append_to_execution_log(&key)
}

/// Appends `{entry} {pid}` to the file named by `AIRLOCK_TEST_LOG`, in one
/// write.
fn append_to_execution_log(entry: &str) -> std::io::Result<()> {
    use std::io::Write;
    let path = std::env::var(EXECUTION_LOG_VAR)
        .map_err(|_| std::io::Error::other(format!("{EXECUTION_LOG_VAR} is not set")))?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    // One write per line: appends of a short line are atomic across processes.
    file.write_all(format!("{entry} {}\n", std::process::id()).as_bytes())
}

/// A task that takes a while: logs `{key}:start {pid}` like
/// [`log_execution()`], sleeps `millis` (asynchronously), then logs
/// `{key}:done {pid}`. A process killed in between leaves a `start` without
/// its `done`: the crash test reads from the log which runs were cut off, and
/// where each job ran.
#[airlock::task(name = "test.slow_log")]
pub async fn slow_log(key: String, millis: u64) -> std::io::Result<()> {
    append_to_execution_log(&format!("{key}:start"))?;
    tokio::time::sleep(std::time::Duration::from_millis(millis)).await;
    append_to_execution_log(&format!("{key}:done"))
}

/// Logs the attempt like [`log_execution()`], then fails while fewer than
/// `failures + 1` attempts of `key` are logged: succeeds on attempt
/// `failures + 1`.
#[airlock::task(name = "test.fail_until")]
pub fn fail_until(key: String, failures: u32) -> Result<(), Boom> {
    log_execution(key.clone()).map_err(|e| Boom(e.to_string()))?;
    let path = std::env::var(EXECUTION_LOG_VAR).unwrap_or_default();
    let attempts = executions(std::path::Path::new(&path), &key);
    if attempts <= failures as usize {
        return Err(Boom(format!("{key}: attempt {attempts} fails on purpose")));
    }
    Ok(())
}

/// How many runs of `key` the execution log at `path` holds.
pub fn executions(path: &std::path::Path, key: &str) -> usize {
    execution_pids(path, key).len()
}

/// The pid of each logged run of `key`, in order.
pub fn execution_pids(path: &std::path::Path, key: &str) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(k, _)| *k == key)
        .filter_map(|(_, pid)| pid.parse().ok())
        .collect()
}

/// How long [`block_until_released()`] and [`release()`] wait for each other
/// before giving up: a bound for a failing test, not a timing under test.
const HANDSHAKE_LIMIT: std::time::Duration = std::time::Duration::from_secs(10);

/// A sync task that blocks its thread until [`release()`] of the same `tag`
/// has run (polling with `std::thread::sleep`, as blocking code does), then
/// records whether it was released or gave up after 10 s.
#[airlock::task(name = "test.block_until_released")]
pub fn block_until_released(tag: String) {
    record_run(&tag, "blocker started");
    let deadline = std::time::Instant::now() + HANDSHAKE_LIMIT;
    while !runs(&tag).iter().any(|run| run == "release") {
        if std::time::Instant::now() > deadline {
            return record_run(&tag, "blocker timed out");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    record_run(&tag, "blocker released");
}

/// An async task that waits (without blocking) until
/// [`block_until_released()`] of the same `tag` has started, then records
/// `release`: it can only finish while the blocker still holds its thread
/// if the blocker's thread is not the one this task needs.
#[airlock::task(name = "test.release")]
pub async fn release(tag: String) {
    let deadline = tokio::time::Instant::now() + HANDSHAKE_LIMIT;
    while !runs(&tag).iter().any(|run| run == "blocker started") {
        if tokio::time::Instant::now() > deadline {
            return record_run(&tag, "release gave up");
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    record_run(&tag, "release");
}

/// An argument whose `Deserialize` panics on the text `"panic"`: user decoding
/// code that unwraps, as a worker meets it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Picky(pub String);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        assert_ne!(text, "panic", "Picky refuses to decode \"panic\"");
        Ok(Picky(text))
    }
}

/// Records the text of its [`Picky`] argument.
#[airlock::task(name = "test.picky")]
pub fn picky(tag: String, value: Picky) {
    record_run(&tag, format!("picky({})", value.0));
}

/// Records how long its text argument is.
#[airlock::task(name = "test.echo")]
pub fn echo(tag: String, text: String) {
    record_run(&tag, format!("echo({} bytes)", text.len()));
}

/// Records `started`, waits (asynchronously, up to 10 s) until the test
/// records `open` under the same `tag`, then records `finished`: a task whose
/// run spans whatever the test does in between.
#[airlock::task(name = "test.wait_for_open")]
pub async fn wait_for_open(tag: String) {
    record_run(&tag, "started");
    let deadline = tokio::time::Instant::now() + HANDSHAKE_LIMIT;
    while !runs(&tag).iter().any(|run| run == "open") {
        if tokio::time::Instant::now() > deadline {
            return record_run(&tag, "gave up");
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    record_run(&tag, "finished");
}
