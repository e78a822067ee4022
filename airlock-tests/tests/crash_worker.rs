//! Crash and stall injection on *worker* processes: queue workers are killed
//! with SIGKILL, or frozen with SIGSTOP, while they run jobs, hundreds of
//! times; then every job's runs are counted from the workers' logs.
//! (`crash_cocommit.rs` does the same to producers.)
//!
//! Every job is `airlock_tests::slow_log(key, millis)`: it logs
//! `{key}:start {pid}`, sleeps 20 to 80 ms, then logs `{key}:done {pid}`.
//! Each worker process (`airlock-test-node <backend> worker`) logs to a file
//! of its own, so a line tells which process ran what, with no doubt from
//! reused pids.
//!
//! * **SIGKILL** (per trial): queue 8 jobs, start a worker, wait until it
//!   starts a job, wait 0 to 100 ms more, kill it. A fresh worker per trial.
//!   Then one worker with a short orphan window (1 s heartbeat × 2 missed)
//!   drains the queue: it re-runs what the killed workers held. Asserted: no
//!   job is lost (each key has a `done` line and each job row is `Done`),
//!   and every extra run is explained by a kill: all runs of a job but its
//!   last were in workers that were killed, at most one per worker.
//!   At-least-once delivery allows those re-runs; the table counts them.
//! * **SIGSTOP** (per trial): two workers share the queue with an orphan
//!   window of 1 s × 5 missed (generous: SQLite records heartbeats to the
//!   second); queue 16 jobs, wait until a worker runs one, freeze one of the
//!   workers that run one for 100 to 500 ms, well inside the window, then
//!   `SIGCONT` it. Asserted: every job ran exactly once (one `start`, one
//!   `done`) and none is lost: a stall shorter than the window must not
//!   hand a job to the other worker.
//!
//! Each test writes one line to stderr, past libtest's capture (so it shows
//! in every run): trials, jobs, lost, re-runs or duplicates, how many kills
//! or stops landed while a job was between its `start` and its `done`, and
//! the wall time.
//!
//! Settings: `AIRLOCK_CRASH_TRIALS` trials per phase and backend (default
//! 40, about 20 s per backend in a debug build; shared with
//! `crash_cocommit.rs`), `AIRLOCK_CRASH_SEED` to replay a run's random
//! delays (printed with the line). The long run:
//!
//! ```text
//! AIRLOCK_CRASH_TRIALS=200 cargo test -p airlock-tests --all-features --test crash_worker
//! ```
//!
//! PostgreSQL runs on the shared throwaway server
//! (`airlock_tests::servers::postgres`): without its binaries the tests say
//! SKIPPED loudly, or fail under `AIRLOCK_REQUIRE_SERVERS=1`.
#![cfg(any(feature = "apalis-sqlite", feature = "apalis-postgres"))]

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock::queue::DEFAULT_QUEUE;
use airlock::Scope;
use airlock_tests::faults::{is_stopped, signal};
use airlock_tests::process::{eventually, eventually_async, Node};
use airlock_tests::trials::{seed, trials, Rng};
use airlock_tests::{slow_log, EXECUTION_LOG_VAR};

const NODE: &str = env!("CARGO_BIN_EXE_airlock-test-node");

/// Trials per phase and backend when `AIRLOCK_CRASH_TRIALS` is not set.
const DEFAULT_TRIALS: usize = 40;

/// Jobs queued before each SIGKILL trial: as many as a worker runs at once
/// (`WorkerOptions`'s default concurrency), so they all start together.
const JOBS_PER_KILL: usize = 8;

/// Jobs queued before each SIGSTOP trial: enough for both workers.
const JOBS_PER_STOP: usize = 16;

/// How long each job sleeps between its `start` and its `done`, in ms.
const TASK_MILLIS: (u64, u64) = (20, 80);

/// The longest random delay between a worker's first `start` and its SIGKILL.
const MAX_KILL_DELAY: Duration = Duration::from_millis(100);

/// The longest random delay between seeing a job under way and the SIGSTOP.
const MAX_STOP_DELAY: Duration = Duration::from_millis(20);

/// How long a worker stays frozen, in ms: far inside [`STALL_WINDOW`].
const PAUSE_MILLIS: (u64, u64) = (100, 500);

/// The orphan window of the SIGKILL trials and of the drain: 2 s.
const KILL_WINDOW: Window = Window {
    heartbeat_secs: 1,
    missed: 2,
};

/// The orphan window of the SIGSTOP trials: 5 s. A live worker heartbeats
/// every second, so even after a 0.5 s pause its `last_seen` (whole seconds
/// on SQLite) is at most about 2 s old.
const STALL_WINDOW: Window = Window {
    heartbeat_secs: 1,
    missed: 5,
};

/// How long a worker may take to start a job (a bound for a stuck worker,
/// not a timing under test).
const TASK_LIMIT: Duration = Duration::from_secs(20);

/// How long the queue may take to drain.
const DRAIN_LIMIT: Duration = Duration::from_secs(120);

/// One test at a time: each measures its own wall time, and the stall test's
/// timing must not compete with another test's storm of processes.
static ONE_TEST_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A worker's orphan window: `heartbeat_secs × missed`.
#[derive(Debug, Clone, Copy)]
struct Window {
    heartbeat_secs: u64,
    missed: usize,
}

/// The database under test, seen from the test process.
enum Pool {
    #[cfg(feature = "apalis-sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "apalis-postgres")]
    Postgres(sqlx::PgPool),
}

/// A fresh queue database: its URL for the workers, the queue to enqueue
/// with, and a pool to read the job rows.
struct Db {
    backend: &'static str,
    url: String,
    queue: Arc<dyn airlock::Executor>,
    pool: Pool,
}

impl Db {
    #[cfg(feature = "apalis-sqlite")]
    async fn sqlite(dir: &Path) -> Db {
        let url = format!("sqlite://{}?mode=rwc", dir.join("queue.db").display());
        let queue = airlock::queue::SqliteQueue::connect(&url).await.unwrap();
        Db {
            backend: "sqlite",
            url,
            pool: Pool::Sqlite(queue.pool().clone()),
            queue: Arc::new(queue),
        }
    }

    #[cfg(feature = "apalis-postgres")]
    async fn postgres(server: &airlock_tests::servers::postgres::PostgresServer) -> Db {
        let url = server.fresh_database().await;
        let queue = airlock::queue::PostgresQueue::connect(&url).await.unwrap();
        Db {
            backend: "postgres",
            url,
            pool: Pool::Postgres(queue.pool().clone()),
            queue: Arc::new(queue),
        }
    }

    /// Queues `slow_log(key, millis)` for each pair, in one scope.
    async fn enqueue(&self, jobs: Vec<(String, u64)>) {
        Scope::new()
            .shared_executor(Arc::clone(&self.queue))
            .run_async(async move {
                for (key, millis) in jobs {
                    slow_log::enqueue(key, millis)?;
                }
                Ok::<_, airlock::Error>(())
            })
            .await
            .expect("the jobs are queued");
    }

    /// How many jobs are in each status.
    async fn statuses(&self) -> BTreeMap<String, i64> {
        let rows: Vec<(String, i64)> = match &self.pool {
            #[cfg(feature = "apalis-sqlite")]
            Pool::Sqlite(pool) => {
                sqlx::query_as("SELECT status, COUNT(*) FROM Jobs GROUP BY status")
                    .fetch_all(pool)
                    .await
                    .unwrap()
            }
            #[cfg(feature = "apalis-postgres")]
            Pool::Postgres(pool) => {
                sqlx::query_as("SELECT status, COUNT(*) FROM apalis.jobs GROUP BY status")
                    .fetch_all(pool)
                    .await
                    .unwrap()
            }
        };
        rows.into_iter().collect()
    }

    /// How many jobs may still run: neither done nor failed for good.
    async fn unfinished(&self) -> i64 {
        match &self.pool {
            #[cfg(feature = "apalis-sqlite")]
            Pool::Sqlite(pool) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM Jobs WHERE NOT (status IN ('Done', 'Killed') \
                 OR (status = 'Failed' AND attempts >= max_attempts))",
            )
            .fetch_one(pool)
            .await
            .unwrap(),
            #[cfg(feature = "apalis-postgres")]
            Pool::Postgres(pool) => sqlx::query_scalar(
                "SELECT COUNT(*) FROM apalis.jobs WHERE NOT (status IN ('Done', 'Killed') \
                 OR (status = 'Failed' AND attempts >= max_attempts))",
            )
            .fetch_one(pool)
            .await
            .unwrap(),
        }
    }

    /// Waits (up to [`DRAIN_LIMIT`]) until no job may run any more; then
    /// checks that all `jobs` jobs are done. Problems are pushed.
    async fn wait_until_drained(&self, jobs: usize, problems: &mut Vec<String>) {
        let drained =
            eventually_async(DRAIN_LIMIT, || async { self.unfinished().await == 0 }).await;
        let statuses = self.statuses().await;
        let done = statuses.get("Done").copied().unwrap_or(0);
        if !drained {
            problems.push(format!(
                "the queue did not drain in {DRAIN_LIMIT:?}: {statuses:?}"
            ));
        } else if done != jobs as i64 || statuses.values().sum::<i64>() != jobs as i64 {
            problems.push(format!(
                "{jobs} jobs queued, yet the job rows are {statuses:?}"
            ));
        }
    }
}

/// One worker process of a run and its own log file.
struct Worker {
    node: Option<Node>,
    pid: u32,
    log: PathBuf,
    killed: bool,
}

impl Worker {
    /// Starts `airlock-test-node <backend> worker` named `name` on `db`'s
    /// queue, with `window`, logging to `dir/{name}.log`.
    fn start(db: &Db, dir: &Path, name: &str, window: Window) -> Worker {
        let log = dir.join(format!("{name}.log"));
        let mut command = Command::new(NODE);
        command
            .arg(db.backend)
            .args(["worker", &db.url, name, "1", DEFAULT_QUEUE])
            .args([window.heartbeat_secs.to_string(), window.missed.to_string()])
            .env(EXECUTION_LOG_VAR, &log);
        let node = Node::start(command, "ready");
        Worker {
            pid: node.id(),
            node: Some(node),
            log,
            killed: false,
        }
    }

    /// Kills it with SIGKILL and reaps it: a crash under test.
    fn kill(&mut self) {
        if let Some(node) = self.node.take() {
            node.kill();
            self.killed = true;
        }
    }

    /// Stops it (SIGKILL) once its work is over: not a crash under test.
    fn stop(&mut self) {
        if let Some(node) = self.node.take() {
            node.kill();
        }
    }

    /// The runs in its log, by key.
    fn runs(&self) -> (BTreeMap<String, Vec<bool>>, Vec<String>) {
        read_runs(&self.log)
    }

    /// How many runs it has started and not finished (so far).
    fn under_way(&self) -> usize {
        let (runs, _) = self.runs();
        runs.values().flatten().filter(|done| !**done).count()
    }

    /// Whether it has started any run.
    fn started_any(&self) -> bool {
        !self.runs().0.is_empty()
    }
}

/// The runs in one worker's log, by key, in order: whether each logged its
/// `done`. Also the lines that make no sense (a `done` without its `start`, a
/// malformed line, lines from more than one pid).
fn read_runs(log: &Path) -> (BTreeMap<String, Vec<bool>>, Vec<String>) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut runs: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    let mut odd = Vec::new();
    let mut pids = std::collections::BTreeSet::new();
    for line in text.lines() {
        let parsed = line.split_once(' ').and_then(|(entry, pid)| {
            let (key, event) = entry.rsplit_once(':')?;
            Some((key, event, pid.parse::<u32>().ok()?))
        });
        match parsed {
            Some((key, "start", pid)) => {
                pids.insert(pid);
                runs.entry(key.to_owned()).or_default().push(false);
            }
            Some((key, "done", pid)) => {
                pids.insert(pid);
                match runs.get_mut(key).and_then(|r| r.last_mut()) {
                    Some(done @ false) => *done = true,
                    _ => odd.push(format!(
                        "{}: `done` without its `start`: {line:?}",
                        log.display()
                    )),
                }
            }
            _ => odd.push(format!("{}: a malformed line: {line:?}", log.display())),
        }
    }
    if pids.len() > 1 {
        odd.push(format!(
            "{}: lines from several pids {pids:?}",
            log.display()
        ));
    }
    (runs, odd)
}

/// The runs of every job over `workers` (in the order the workers ran), as
/// (worker index, logged `done`), by key.
fn all_runs(
    workers: &[Worker],
    problems: &mut Vec<String>,
) -> BTreeMap<String, Vec<(usize, bool)>> {
    let mut all: BTreeMap<String, Vec<(usize, bool)>> = BTreeMap::new();
    for (index, worker) in workers.iter().enumerate() {
        let (runs, odd) = worker.runs();
        problems.extend(odd);
        for (key, runs) in runs {
            let of_key = all.entry(key).or_default();
            of_key.extend(runs.into_iter().map(|done| (index, done)));
        }
    }
    all
}

/// Writes `line` to stderr past libtest's capture, so it shows in every run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// `count` of `total` as a percentage.
fn percent(count: usize, total: usize) -> f64 {
    100.0 * count as f64 / total.max(1) as f64
}

/// The SIGKILL trials on a fresh `db` (see the module docs).
async fn kill_workers_mid_task(db: &Db) {
    let started = Instant::now();
    let trials = trials(DEFAULT_TRIALS);
    let seed = seed();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut workers: Vec<Worker> = Vec::new();
    let mut keys: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    let mut mid_task_kills = 0;
    let mut runs_cut = 0;
    for trial in 0..trials {
        let batch: Vec<(String, u64)> = (0..JOBS_PER_KILL)
            .map(|i| (format!("kill-{trial}-{i}"), rng.between(TASK_MILLIS)))
            .collect();
        keys.extend(batch.iter().map(|(key, _)| key.clone()));
        db.enqueue(batch).await;
        let mut worker = Worker::start(db, dir.path(), &format!("killed-{trial}"), KILL_WINDOW);
        if !eventually(TASK_LIMIT, || worker.started_any()) {
            problems.push(format!(
                "trial {trial}: worker {} started no job in {TASK_LIMIT:?}",
                worker.pid
            ));
        }
        std::thread::sleep(rng.duration_below(MAX_KILL_DELAY));
        worker.kill();
        let cut = worker.under_way();
        if cut > 0 {
            mid_task_kills += 1;
            runs_cut += cut;
        }
        workers.push(worker);
    }

    // The drain: its heartbeat hands it the dead workers' jobs.
    workers.push(Worker::start(db, dir.path(), "drain", KILL_WINDOW));
    db.wait_until_drained(keys.len(), &mut problems).await;
    if let Some(drain) = workers.last_mut() {
        drain.stop();
    }

    // Count.
    let runs = all_runs(&workers, &mut problems);
    let mut lost = Vec::new();
    let mut re_run = 0;
    let mut re_run_after_done = 0;
    let mut extra_runs = 0;
    let mut most_runs = 0;
    for key in &keys {
        let of_key = runs.get(key).map(Vec::as_slice).unwrap_or_default();
        if !of_key.iter().any(|&(_, done)| done) {
            lost.push(key);
            continue;
        }
        if of_key.len() > 1 {
            re_run += 1;
            extra_runs += of_key.len() - 1;
        }
        most_runs = most_runs.max(of_key.len());
        let Some((&(last, last_done), earlier)) = of_key.split_last() else {
            continue;
        };
        if !last_done {
            problems.push(format!(
                "{key}: its last run (in {}) never finished: {of_key:?}",
                workers[last].log.display()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for &(index, done) in earlier {
            if !workers[index].killed {
                problems.push(format!(
                    "{key} ran again after a run in a worker that was not killed ({}): \
                     {of_key:?}",
                    workers[index].log.display()
                ));
            }
            re_run_after_done += usize::from(done);
            if !seen.insert(index) {
                problems.push(format!("{key} ran twice in one worker: {of_key:?}"));
            }
        }
    }
    let unknown: Vec<&String> = runs.keys().filter(|k| !keys.contains(k)).collect();
    if !unknown.is_empty() {
        problems.push(format!("runs of keys never queued: {unknown:?}"));
    }
    if !lost.is_empty() {
        let first: Vec<_> = lost.iter().take(10).collect();
        problems.push(format!("{} lost jobs, for example {first:?}", lost.len()));
    }

    report(&format!(
        "{}: SIGKILL {trials} trials, {} jobs, lost {}, re-run after kill {re_run} ({:.1}%; \
         {extra_runs} extra runs, {re_run_after_done} of them after a kill between `done` and \
         ack; at most {most_runs} runs of one job), kills mid-task {mid_task_kills} of \
         {trials} ({runs_cut} runs cut), wall {:.1} s (AIRLOCK_CRASH_SEED={seed})",
        db.backend,
        keys.len(),
        lost.len(),
        percent(re_run, keys.len()),
        started.elapsed().as_secs_f64()
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(lost.len(), 0, "no job is lost");
    if trials >= 10 {
        assert!(mid_task_kills > 0, "some kills landed mid-task");
    }
}

/// The SIGSTOP trials on a fresh `db` (see the module docs).
async fn stall_workers_mid_task(db: &Db) {
    let started = Instant::now();
    let trials = trials(DEFAULT_TRIALS);
    let seed = seed();
    let mut rng = Rng::new(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut workers = [
        Worker::start(db, dir.path(), "stalled-a", STALL_WINDOW),
        Worker::start(db, dir.path(), "stalled-b", STALL_WINDOW),
    ];
    let mut keys: Vec<String> = Vec::new();
    let mut problems = Vec::new();
    let mut mid_task_stops = 0;
    let mut longest_pause = Duration::ZERO;
    for trial in 0..trials {
        let batch: Vec<(String, u64)> = (0..JOBS_PER_STOP)
            .map(|i| (format!("stop-{trial}-{i}"), rng.between(TASK_MILLIS)))
            .collect();
        keys.extend(batch.iter().map(|(key, _)| key.clone()));
        db.enqueue(batch).await;
        // A victim among the workers running a job, else either.
        let mut busy = Vec::new();
        eventually(TASK_LIMIT, || {
            busy = workers.iter().filter(|w| w.under_way() > 0).collect();
            !busy.is_empty()
        });
        let victim = match busy.as_slice() {
            [] => &workers[rng.between((0, 1)) as usize],
            busy => busy[rng.between((0, busy.len() as u64 - 1)) as usize],
        };
        std::thread::sleep(rng.duration_below(MAX_STOP_DELAY));
        let pause = Duration::from_millis(rng.between(PAUSE_MILLIS));
        assert!(signal(victim.pid, "STOP"), "SIGSTOP delivered");
        let frozen_at = Instant::now();
        if !eventually(TASK_LIMIT, || is_stopped(victim.pid)) {
            problems.push(format!(
                "trial {trial}: worker {} never stopped",
                victim.pid
            ));
        }
        // Frozen: its log holds everything it has written.
        mid_task_stops += usize::from(victim.under_way() > 0);
        std::thread::sleep(pause.saturating_sub(frozen_at.elapsed()));
        assert!(signal(victim.pid, "CONT"), "SIGCONT delivered");
        longest_pause = longest_pause.max(frozen_at.elapsed());
    }
    db.wait_until_drained(keys.len(), &mut problems).await;
    for worker in &mut workers {
        worker.stop();
    }

    // Count.
    let runs = all_runs(&workers, &mut problems);
    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    for key in &keys {
        let of_key = runs.get(key).map(Vec::as_slice).unwrap_or_default();
        match of_key {
            [(_, true)] => {}
            [] | [(_, false)] => lost.push((key, of_key)),
            _ => duplicated.push((key, of_key)),
        }
    }
    let unknown: Vec<&String> = runs.keys().filter(|k| !keys.contains(k)).collect();
    if !unknown.is_empty() {
        problems.push(format!("runs of keys never queued: {unknown:?}"));
    }
    for (what, list) in [("lost", &lost), ("duplicated", &duplicated)] {
        if !list.is_empty() {
            let first: Vec<_> = list.iter().take(10).collect();
            problems.push(format!(
                "{} {what} jobs (runs as (worker, done)), for example {first:?}",
                list.len()
            ));
        }
    }

    report(&format!(
        "{}: SIGSTOP {trials} trials (pauses {}-{} ms, longest {} ms, orphan window {} s), \
         {} jobs, lost {}, duplicated {}, stops mid-task {mid_task_stops} of {trials}, \
         wall {:.1} s (AIRLOCK_CRASH_SEED={seed})",
        db.backend,
        PAUSE_MILLIS.0,
        PAUSE_MILLIS.1,
        longest_pause.as_millis(),
        STALL_WINDOW.heartbeat_secs * STALL_WINDOW.missed as u64,
        keys.len(),
        lost.len(),
        duplicated.len(),
        started.elapsed().as_secs_f64()
    ));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_eq!(
        (lost.len(), duplicated.len()),
        (0, 0),
        "no job lost or run twice"
    );
    if trials >= 10 {
        assert!(mid_task_stops > 0, "some stops landed mid-task");
    }
}

/// A job whose every run is cut off by a SIGKILL (a task that crashes its
/// worker: an out-of-memory kill, an abort) runs at most `max_attempts`
/// times: its last attempt's start is recorded in the job's record, and the
/// run the queue hands out after it is aborted unrun. Without the record the
/// queue would hand it out forever (recovery counts attempts, never checks
/// them).
async fn a_job_that_kills_every_worker_stops_at_its_max_attempts(db: &Db) {
    const MAX_ATTEMPTS: u32 = 2;
    let dir = tempfile::tempdir().unwrap();
    let key = "crash-loop".to_owned();
    Scope::new()
        .shared_executor(Arc::clone(&db.queue))
        .run_async(async {
            slow_log::intent(key.clone(), 60_000)
                .max_attempts(MAX_ATTEMPTS)
                .enqueue()
                .map(drop)
        })
        .await
        .expect("the job is queued");
    let window = Window {
        heartbeat_secs: 1,
        missed: 2,
    };
    let mut workers = Vec::new();
    for round in 0..(MAX_ATTEMPTS + 2) {
        let mut worker = Worker::start(db, dir.path(), &format!("loop-{round}"), window);
        // Until this worker starts the job (then kill it), or the job ends.
        let decided = eventually_async(Duration::from_secs(30), || async {
            worker.started_any() || db.unfinished().await == 0
        })
        .await;
        assert!(decided, "round {round}: the job neither ran nor ended");
        if worker.started_any() {
            worker.kill();
        } else {
            worker.stop();
        }
        workers.push(worker);
        if db.unfinished().await == 0 {
            break;
        }
    }
    let starts: usize = workers
        .iter()
        .map(|worker| worker.runs().0.values().map(Vec::len).sum::<usize>())
        .sum();
    let statuses = db.statuses().await;
    report(&format!(
        "{}: a job killing its worker on every run, max_attempts {MAX_ATTEMPTS}: {starts} runs, \
         then {statuses:?}",
        db.backend
    ));
    assert_eq!(starts, MAX_ATTEMPTS as usize, "one run per allowed attempt");
    assert_eq!(
        statuses.get("Killed"),
        Some(&1),
        "aborted, not handed out again"
    );
}

#[cfg(feature = "apalis-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_job_that_kills_every_worker_stops_at_its_max_attempts() {
    let _turn = ONE_TEST_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    a_job_that_kills_every_worker_stops_at_its_max_attempts(&Db::sqlite(dir.path()).await).await;
}

#[cfg(feature = "apalis-postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_job_that_kills_every_worker_stops_at_its_max_attempts() {
    let Some(server) = airlock_tests::servers::postgres::postgres() else {
        return;
    };
    let _turn = ONE_TEST_AT_A_TIME.lock().await;
    a_job_that_kills_every_worker_stops_at_its_max_attempts(&Db::postgres(server).await).await;
}

#[cfg(feature = "apalis-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_workers_killed_mid_task_lose_no_job() {
    let _turn = ONE_TEST_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    kill_workers_mid_task(&Db::sqlite(dir.path()).await).await;
}

#[cfg(feature = "apalis-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_workers_stalled_inside_the_orphan_window_run_no_job_twice() {
    let _turn = ONE_TEST_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    stall_workers_mid_task(&Db::sqlite(dir.path()).await).await;
}

#[cfg(feature = "apalis-postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workers_killed_mid_task_lose_no_job() {
    let Some(server) = airlock_tests::servers::postgres::postgres() else {
        return;
    };
    let _turn = ONE_TEST_AT_A_TIME.lock().await;
    kill_workers_mid_task(&Db::postgres(server).await).await;
}

#[cfg(feature = "apalis-postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workers_stalled_inside_the_orphan_window_run_no_job_twice() {
    let Some(server) = airlock_tests::servers::postgres::postgres() else {
        return;
    };
    let _turn = ONE_TEST_AT_A_TIME.lock().await;
    stall_workers_mid_task(&Db::postgres(server).await).await;
}
