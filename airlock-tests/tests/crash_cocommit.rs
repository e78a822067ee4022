//! Crash injection: a producer process placing orders is killed with SIGKILL
//! at chosen and at random points, hundreds of times; then workers drain the
//! queue and every order is checked. With co-commit, every committed order's
//! intents ran exactly once and no rolled-back order's intent ran at all.
//!
//! Each trial starts `airlock-test-node <backend> crash-produce` (see
//! `airlock_tests::crash`) and kills it:
//! * at a named point of an order, after 0 to 3 complete orders: `in-body`
//!   (order row and intents buffered), `mid-flush` (some of the order's jobs
//!   written, not all), `in-commit` (inside `COMMIT`), `after-commit`
//!   (committed, nothing else done). The producer stops there, says so, and
//!   the test kills it;
//! * or at a random moment while it streams orders, to reach points nobody
//!   named.
//!
//! Every 200 trials, and after the last one, one worker process per queue
//! drains the jobs; then the test counts, from the `orders` table and the
//! workers' execution log (each intent's key names its order): **lost** intents (their order committed, they never
//! ran), **ghost** ones (they ran, their order did not commit) and
//! **duplicated** ones (ran more than once). The same trials with
//! after-commit scopes show the contrast: a producer killed after its commit
//! loses intents there. The table goes to stdout uncaptured, so it shows in
//! every run.
//!
//! Settings: `AIRLOCK_CRASH_TRIALS` co-commit trials per backend (default
//! 200; after-commit gets a quarter of them), `AIRLOCK_CRASH_SEED` to replay
//! the named points of a run (printed with the table). The long run:
//!
//! ```text
//! AIRLOCK_CRASH_TRIALS=2000 cargo test -p airlock-tests --features apalis-sqlite,apalis-postgres --test crash_cocommit -- --nocapture
//! ```
#![cfg(any(feature = "apalis-sqlite", feature = "apalis-postgres"))]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use airlock_tests::crash::{hang_line, order_intents, order_of, Point, SIDE_QUEUE};
use airlock_tests::process::{eventually_async, Node, START_TIMEOUT};
use airlock_tests::trials::{seed, trials, Rng};
use airlock_tests::EXECUTION_LOG_VAR;

const NODE: &str = env!("CARGO_BIN_EXE_airlock-test-node");

/// Order ids a streaming producer may use (it is killed long before).
const STREAM_ORDERS: i64 = 2_000;

/// The longest random delay between a streaming producer's `ready` and its
/// SIGKILL: up to about two dozen orders on this kind of machine.
const MAX_RANDOM_DELAY: Duration = Duration::from_millis(40);

/// How long the workers get to drain the queue.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// The queue is drained after this many trials (and after the last one):
/// apalis-sqlite 1.0 claims and acknowledges jobs with statements whose cost
/// grows with the pending jobs and with the jobs the worker has done, so one
/// drain of a long run's tens of thousands of jobs would take quadratic time.
const DRAIN_EVERY: usize = 200;

/// The backends take turns: each measures its own wall time, and the
/// machine's cores are not shared between two storms of processes.
static ONE_BACKEND_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    CoCommit,
    AfterCommit,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::CoCommit => "co-commit",
            Mode::AfterCommit => "after-commit",
        }
    }

    /// Whether an order whose producer stopped at `point` has committed.
    fn commits_when_stopped_at(self, point: Point) -> bool {
        match point {
            Point::InBody | Point::InCommit => false,
            // After-commit flushes in a transaction of its own, after COMMIT.
            Point::MidFlush(_) => self == Mode::AfterCommit,
            Point::AfterCommit => true,
        }
    }
}

/// The database under test, seen from the test process.
enum Db {
    #[cfg(feature = "apalis-sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "apalis-postgres")]
    Postgres(sqlx::PgPool),
}

impl Db {
    fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "apalis-sqlite")]
            Db::Sqlite(_) => "sqlite",
            #[cfg(feature = "apalis-postgres")]
            Db::Postgres(_) => "postgres",
        }
    }

    async fn committed_orders(&self) -> BTreeSet<i64> {
        let ids: Vec<i64> = match self {
            #[cfg(feature = "apalis-sqlite")]
            Db::Sqlite(pool) => sqlx::query_scalar("SELECT id FROM orders")
                .fetch_all(pool)
                .await
                .unwrap(),
            #[cfg(feature = "apalis-postgres")]
            Db::Postgres(pool) => sqlx::query_scalar("SELECT id FROM orders")
                .fetch_all(pool)
                .await
                .unwrap(),
        };
        ids.into_iter().collect()
    }

    /// How many jobs are in each status.
    async fn job_statuses(&self) -> BTreeMap<String, i64> {
        let rows: Vec<(String, i64)> = match self {
            #[cfg(feature = "apalis-sqlite")]
            Db::Sqlite(pool) => sqlx::query_as("SELECT status, COUNT(*) FROM Jobs GROUP BY status")
                .fetch_all(pool)
                .await
                .unwrap(),
            #[cfg(feature = "apalis-postgres")]
            Db::Postgres(pool) => {
                sqlx::query_as("SELECT status, COUNT(*) FROM apalis.jobs GROUP BY status")
                    .fetch_all(pool)
                    .await
                    .unwrap()
            }
        };
        rows.into_iter().collect()
    }

    /// Ends what a killed producer left behind. A SQLite file needs nothing
    /// (the kernel drops the dead process's locks); a PostgreSQL server keeps
    /// the dead client's server process until it notices, maybe asleep in a
    /// trigger: terminate it, so its transaction is over (committed if its
    /// COMMIT had arrived, else rolled back) before anything is counted.
    async fn end_producer_sessions(&self) {
        match self {
            #[cfg(feature = "apalis-sqlite")]
            Db::Sqlite(_) => {}
            #[cfg(feature = "apalis-postgres")]
            Db::Postgres(pool) => {
                let gone = eventually_async(START_TIMEOUT, || async {
                    let left: i64 = sqlx::query_scalar(
                        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
                         WHERE application_name = $1 AND datname = current_database()",
                    )
                    .bind(airlock_tests::crash::PRODUCER_APPLICATION_NAME)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                    left == 0
                })
                .await;
                assert!(gone, "the killed producer's server processes ended");
            }
        }
    }
}

/// One `airlock-test-node` command.
fn node(backend: &str, args: &[&str], log: &Path) -> Command {
    let mut command = Command::new(NODE);
    command.arg(backend).args(args).env(EXECUTION_LOG_VAR, log);
    command
}

/// What the trials of one backend and mode came to.
struct Outcome {
    backend: &'static str,
    mode: Mode,
    trials: usize,
    kills: BTreeMap<&'static str, usize>,
    /// Random kills that landed while an order was under way.
    random_mid_order: usize,
    /// Of those, the ones whose order committed all the same (the kill came
    /// between `COMMIT` and the producer hearing of it).
    random_in_doubt: usize,
    committed: usize,
    rolled_back: usize,
    jobs_run: usize,
    lost: usize,
    ghost: usize,
    duplicated: usize,
    wall: Duration,
    /// What went wrong, if anything (asserted after the table is printed).
    problems: Vec<String>,
}

impl Outcome {
    fn header() -> String {
        "| backend | mode | trials | kills per point | orders committed | rolled back \
         | jobs run | lost | ghost | duplicated | wall |\n\
         | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            .to_owned()
    }

    fn row(&self) -> String {
        let kills: Vec<String> = self
            .kills
            .iter()
            .map(|(point, n)| match *point {
                "random" => format!(
                    "random {n} ({} mid-order, {} of them committed)",
                    self.random_mid_order, self.random_in_doubt
                ),
                _ => format!("{point} {n}"),
            })
            .collect();
        format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} s |\n",
            self.backend,
            self.mode.arg(),
            self.trials,
            kills.join(", "),
            self.committed,
            self.rolled_back,
            self.jobs_run,
            self.lost,
            self.ghost,
            self.duplicated,
            self.wall.as_secs_f64()
        )
    }
}

/// Runs one worker process per queue until no job is left to run, then
/// checks that every job succeeded.
async fn drain(db: &Db, url: &str, log: &Path) {
    let backend = db.backend();
    let workers: Vec<Node> = [airlock::queue::DEFAULT_QUEUE, SIDE_QUEUE]
        .into_iter()
        .map(|queue| {
            let name = format!("crash-{}", queue.replace('.', "-"));
            let args = ["worker", url, &name, "1", queue];
            Node::start(node(backend, &args, log), "ready")
        })
        .collect();
    let final_states = ["Done", "Failed", "Killed"];
    let drained = eventually_async(DRAIN_LIMIT, || async {
        let statuses = db.job_statuses().await;
        statuses
            .iter()
            .all(|(status, _)| final_states.contains(&status.as_str()))
    })
    .await;
    drop(workers);
    let statuses = db.job_statuses().await;
    assert!(drained, "{backend}: the queue drained: {statuses:?}");
    let jobs: i64 = statuses.values().sum();
    assert_eq!(
        statuses.get("Done").copied().unwrap_or(0),
        jobs,
        "{backend}: every job succeeded: {statuses:?}"
    );
}

/// Runs `trials` trials of `mode` against `db` (at `url`, its queue tables
/// and `orders` table created), drains the queue and counts.
async fn run_trials(db: &Db, url: &str, mode: Mode, trials: usize, rng: &mut Rng) -> Outcome {
    let started = Instant::now();
    let backend = db.backend();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("executions.log");
    let mut next_order: i64 = 1;
    let mut begun = BTreeSet::new();
    let mut stops: Vec<(Point, i64)> = Vec::new();
    let mut kills = BTreeMap::new();
    let mut random_mid_order: Vec<i64> = Vec::new();
    for trial in 0..trials {
        let lines = match trial % 6 {
            4 | 5 => {
                let first = next_order.to_string();
                next_order += STREAM_ORDERS;
                let args = [
                    "crash-produce",
                    url,
                    mode.arg(),
                    &first,
                    &STREAM_ORDERS.to_string(),
                    "stream",
                ];
                let producer = Node::start(node(backend, &args, &log), "ready");
                let delay = rng.below(MAX_RANDOM_DELAY.as_micros() as u64);
                std::thread::sleep(Duration::from_micros(delay));
                let lines = producer.kill();
                *kills.entry("random").or_default() += 1;
                // The order under way when the kill came, if any: begun,
                // and `run` had not returned (it may still have committed).
                let last = lines.iter().rev().find(|l| l.starts_with("begin "));
                if let Some(begin) = last {
                    if !lines.contains(&begin.replacen("begin", "committed", 1)) {
                        let order = begin["begin ".len()..].parse().expect("an order id");
                        random_mid_order.push(order);
                    }
                }
                lines
            }
            kind => {
                let complete = rng.below(4) as i64;
                let order = next_order + complete;
                let point = match kind {
                    0 => Point::InBody,
                    1 => {
                        let intents = order_intents(order).len() as u64;
                        Point::MidFlush(1 + rng.below(intents - 1) as u32)
                    }
                    2 => Point::InCommit,
                    _ => Point::AfterCommit,
                };
                let args = [
                    "crash-produce",
                    url,
                    mode.arg(),
                    &next_order.to_string(),
                    &complete.to_string(),
                    &point.to_string(),
                ];
                next_order = order + 1;
                let mut producer = Node::spawn(node(backend, &args, &log));
                let stopped = producer.wait_for(|l| l.starts_with("hang "), START_TIMEOUT);
                let expected = hang_line(point, order);
                assert_eq!(
                    stopped.as_deref(),
                    Some(expected.as_str()),
                    "{backend} {mode:?} trial {trial}: the producer did not stop at {point}; \
                     it printed {:?}",
                    producer.lines()
                );
                *kills.entry(point.name()).or_default() += 1;
                stops.push((point, order));
                producer.kill()
            }
        };
        begun.extend(
            lines
                .iter()
                .filter_map(|l| l.strip_prefix("begin "))
                .map(|n| n.parse::<i64>().expect("an order id")),
        );
        db.end_producer_sessions().await;
        if (trial + 1) % DRAIN_EVERY == 0 {
            drain(db, url, &log).await;
        }
    }

    if trials % DRAIN_EVERY != 0 {
        drain(db, url, &log).await;
    }
    let statuses = db.job_statuses().await;
    let jobs: i64 = statuses.values().sum();

    // Count.
    let committed = db.committed_orders().await;
    let unbegun: Vec<_> = committed.difference(&begun).collect();
    assert!(
        unbegun.is_empty(),
        "orders committed without a `begin`: {unbegun:?}"
    );
    let mut runs: HashMap<String, usize> = HashMap::new();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    for line in text.lines() {
        let (key, _pid) = line.split_once(' ').expect("`key pid` lines");
        *runs.entry(key.to_owned()).or_default() += 1;
    }
    let expected: Vec<String> = committed
        .iter()
        .flat_map(|&order| order_intents(order).into_iter().map(|(key, _)| key))
        .collect();
    let mut lost: Vec<&String> = expected.iter().filter(|k| !runs.contains_key(*k)).collect();
    let mut ghosts = Vec::new();
    let mut duplicated = Vec::new();
    for (key, &n) in &runs {
        let order = order_of(key).unwrap_or_else(|| panic!("a log key that names no order: {key}"));
        if !committed.contains(&order) {
            ghosts.push((key, n));
        }
        if n > 1 {
            duplicated.push((key, n));
        }
    }

    // Each named stop left its order as designed: the kills landed where
    // they were aimed, and the loss counter sees a loss where there is one.
    let mut problems = Vec::new();
    for &(point, order) in &stops {
        let commits = mode.commits_when_stopped_at(point);
        if committed.contains(&order) != commits {
            problems.push(format!(
                "order {order} stopped at {point}: committed should be {commits}"
            ));
        }
        if mode == Mode::AfterCommit && commits {
            let ran: Vec<String> = order_intents(order)
                .into_iter()
                .map(|(key, _)| key)
                .filter(|key| runs.contains_key(key))
                .collect();
            if !ran.is_empty() {
                problems.push(format!(
                    "order {order} stopped at {point}, before its push, yet {ran:?} ran"
                ));
            }
        }
    }
    lost.sort();
    ghosts.sort();
    duplicated.sort();
    let some = |what: &str, list: &dyn std::fmt::Debug, n: usize| {
        format!("{n} {what}, for example {list:?}")
    };
    if !ghosts.is_empty() {
        let first: Vec<_> = ghosts.iter().take(10).collect();
        problems.push(some(
            "ghost intents (ran, order not committed)",
            &first,
            ghosts.len(),
        ));
    }
    if !duplicated.is_empty() {
        let first: Vec<_> = duplicated.iter().take(10).collect();
        problems.push(some(
            "duplicated intents (ran more than once)",
            &first,
            duplicated.len(),
        ));
    }
    if mode == Mode::CoCommit {
        if !lost.is_empty() {
            let first: Vec<_> = lost.iter().take(10).collect();
            problems.push(some(
                "lost intents (order committed, never ran)",
                &first,
                lost.len(),
            ));
        }
        if jobs as usize != expected.len() {
            problems.push(format!(
                "{jobs} jobs for {} intents of committed orders: a job must exist if and \
                 only if its order committed",
                expected.len()
            ));
        }
    }
    Outcome {
        backend,
        mode,
        trials,
        kills,
        random_mid_order: random_mid_order.len(),
        random_in_doubt: random_mid_order
            .iter()
            .filter(|order| committed.contains(order))
            .count(),
        committed: committed.len(),
        rolled_back: begun.len() - committed.len(),
        jobs_run: runs.values().sum(),
        lost: lost.len(),
        ghost: ghosts.len(),
        duplicated: duplicated.len(),
        wall: started.elapsed(),
        problems,
    }
}

/// Runs both modes on fresh databases from `fresh` and prints the table.
async fn crash_both_modes<F, Fut>(mut fresh: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (Db, String)>,
{
    let trials = trials(200);
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut table = Outcome::header();
    let mut problems = Vec::new();
    for (mode, trials) in [
        (Mode::CoCommit, trials),
        (Mode::AfterCommit, trials.div_ceil(4)),
    ] {
        let (db, url) = fresh().await;
        let outcome = run_trials(&db, &url, mode, trials, &mut rng).await;
        table.push_str(&outcome.row());
        problems.extend(
            (outcome.problems.iter()).map(|p| format!("{} {}: {p}", outcome.backend, mode.arg())),
        );
    }
    // Straight to stdout, past the test harness's capture: the table shows in
    // every run, passing or failing.
    let report = format!("\ncrash injection (AIRLOCK_CRASH_SEED={seed}):\n\n{table}\n");
    std::io::stdout().write_all(report.as_bytes()).unwrap();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[cfg(feature = "apalis-sqlite")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_co_commit_survives_sigkill_anywhere() {
    let _turn = ONE_BACKEND_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let mut next = 0;
    crash_both_modes(|| {
        next += 1;
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join(format!("crash-{next}.db")).display()
        );
        async move {
            let queue = airlock::queue::SqliteQueue::connect(&url).await.unwrap();
            let pool = queue.pool().clone();
            sqlx::query(airlock_tests::crash::SQLITE_SCHEMA)
                .execute(&pool)
                .await
                .unwrap();
            (Db::Sqlite(pool), url)
        }
    })
    .await;
}

#[cfg(feature = "apalis-postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_co_commit_survives_sigkill_anywhere() {
    let Some(server) = airlock_tests::servers::postgres::postgres() else {
        return;
    };
    let _turn = ONE_BACKEND_AT_A_TIME.lock().await;
    crash_both_modes(|| async {
        let url = server.fresh_database().await;
        let queue = airlock::queue::PostgresQueue::connect(&url).await.unwrap();
        let pool = queue.pool().clone();
        sqlx::raw_sql(airlock_tests::crash::POSTGRES_SCHEMA)
            .execute(&pool)
            .await
            .unwrap();
        (Db::Postgres(pool), url)
    })
    .await;
}
