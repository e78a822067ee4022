//! Dispatch through the apalis PostgreSQL queue, and workers (in this process
//! and in separate processes) that run jobs by task name. A real PostgreSQL
//! server started by the harness; every test has its own database.
#![cfg(feature = "apalis-postgres")]

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use airlock::queue::apalis::prelude::{MonitorError, TaskBuilder};
use airlock::queue::{apalis_postgres, PostgresQueue, DEFAULT_MAX_ATTEMPTS};
use airlock::worker::WorkerOptions;
use airlock::{DropAll, Error, Scope};
use airlock_tests::servers::postgres::{postgres, PostgresServer};
use airlock_tests::{
    execution_pids, executions, fail_until, log_execution, panics, record, runs, tag, AppError,
    EXECUTION_LOG_VAR,
};

/// How long any wait for the queue may take before the test gives up.
const WAIT: Duration = Duration::from_secs(30);

async fn queue(server: &PostgresServer) -> PostgresQueue {
    let url = server.fresh_database().await;
    PostgresQueue::connect(&url)
        .await
        .expect("the queue database sets up")
}

/// How many jobs of queue `airlock` are in `status`.
async fn count(queue: &PostgresQueue, status: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = 'airlock' AND status = $1",
    )
    .bind(status)
    .fetch_one(queue.pool())
    .await
    .expect("count jobs")
}

/// How many jobs the database holds, in any queue.
async fn total(queue: &PostgresQueue) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs")
        .fetch_one(queue.pool())
        .await
        .expect("count jobs")
}

/// The job whose envelope carries `key` (as the `key` argument): its status
/// and attempts.
async fn job_by_key(queue: &PostgresQueue, key: &str) -> (String, i32) {
    sqlx::query_as(
        "SELECT status, attempts FROM apalis.jobs \
         WHERE convert_from(job, 'UTF8')::jsonb #>> '{args,key}' = $1",
    )
    .bind(key)
    .fetch_one(queue.pool())
    .await
    .expect("the job is in the table")
}

/// Whether a job in `status` failed and will not run again: `Failed` with no
/// attempts left (apalis's retry bound), or `Killed` (where the worker aborts
/// a job's last failed attempt itself).
fn failed_for_good(status: &str) -> bool {
    matches!(status, "Failed" | "Killed")
}

/// The status and attempts of every job, in no particular order.
async fn jobs(queue: &PostgresQueue) -> Vec<(String, i32)> {
    sqlx::query_as("SELECT status, attempts FROM apalis.jobs")
        .fetch_all(queue.pool())
        .await
        .expect("list jobs")
}

/// Polls `check` every 20 ms until it holds or [`WAIT`] passes; the caller
/// asserts on what it finds either way.
async fn eventually<F, Fut>(check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A [`PostgresQueue::monitor`] with one worker on queue `airlock`, running
/// in this process; counts the times a worker stopped on an error (the
/// monitor restarts it, which would hide that).
struct Workers {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    run: tokio::task::JoinHandle<Result<(), MonitorError>>,
    restarts: Arc<AtomicUsize>,
}

impl Workers {
    fn start(queue: &PostgresQueue, name: &str) -> Self {
        let restarts = Arc::new(AtomicUsize::new(0));
        let counted = restarts.clone();
        let monitor = queue
            .monitor(WorkerOptions::new(name).poll_interval(Duration::from_millis(20)))
            .should_restart(move |_, error| {
                eprintln!("worker stopped on an error: {error}");
                counted.fetch_add(1, Ordering::SeqCst);
                true
            });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(monitor.run_with_signal(async move {
            let _ = stopped.await;
            Ok(())
        }));
        Workers {
            stop: Some(stop),
            run,
            restarts,
        }
    }

    /// How many times a worker stopped on an error so far.
    fn restarts(&self) -> usize {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Stops the workers and returns how the monitor ended.
    async fn stop(mut self) -> Result<(), MonitorError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(WAIT, &mut self.run)
            .await
            .expect("the workers stop")
            .expect("the monitor task does not panic")
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.run.abort();
    }
}

/// A worker process (`airlock-test-node postgres worker`), killed on drop.
struct Node {
    child: Child,
}

impl Node {
    /// Starts `workers` workers in a new process, logging task runs to `log`,
    /// and waits until it says `ready`.
    fn start(url: &str, name: &str, workers: usize, log: &Path) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_airlock-test-node"))
            .args(["postgres", "worker", url, name, &workers.to_string()])
            .env(EXECUTION_LOG_VAR, log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the test node starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut node = Node { child };
        let (lines, ready) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        loop {
            match ready.recv_timeout(WAIT) {
                Ok(line) if line == "ready" => return node,
                Ok(_) => continue,
                Err(_) => panic!(
                    "worker node {name} never said ready (exit status: {:?})",
                    node.child.try_wait()
                ),
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still alive (a worker node runs until killed).
    fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_is_one_transaction_and_a_worker_runs_each_job_once() {
    let Some(server) = postgres() else { return };
    let queue = queue(server).await;
    let t = tag("pg-flush");
    let report = Scope::new().executor(queue.clone()).start();
    report
        .in_scope(|| -> airlock::Result<()> {
            record::enqueue(t.clone(), 1)?;
            record::intent(t.clone(), 2).queue("other").enqueue()?;
            record::enqueue(t.clone(), 3)?;
            Ok(())
        })
        .unwrap();
    let report = report.flush_async().await.unwrap();
    assert_eq!(report.dispatched(), ["record", "record", "record"]);
    assert!(runs(&t).is_empty(), "queued, not run in process");
    assert_eq!(count(&queue, "Pending").await, 2);
    let other: Vec<(String, String)> =
        sqlx::query_as("SELECT job_type, status FROM apalis.jobs WHERE job_type <> 'airlock'")
            .fetch_all(queue.pool())
            .await
            .unwrap();
    assert_eq!(other, [("other".to_owned(), "Pending".to_owned())]);
    // Rows written by one transaction share its id (xmin).
    let transactions: i64 =
        sqlx::query_scalar("SELECT COUNT(DISTINCT xmin::text) FROM apalis.jobs")
            .fetch_one(queue.pool())
            .await
            .unwrap();
    assert_eq!(transactions, 1, "the whole flush is one transaction");

    let worker = Workers::start(&queue, "pg-flush-1");
    eventually(|| async { count(&queue, "Done").await == 2 }).await;
    assert_eq!(worker.restarts(), 0, "no worker stopped on an error");
    worker.stop().await.expect("the workers shut down cleanly");
    let mut ran = runs(&t);
    ran.sort();
    assert_eq!(
        ran,
        ["record(1)", "record(3)"],
        "each job of queue airlock ran once"
    );
    assert_eq!(count(&queue, "Done").await, 2);
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempts FROM apalis.jobs WHERE job_type = 'airlock'")
            .fetch_all(queue.pool())
            .await
            .unwrap();
    assert_eq!(attempts, [1, 1], "each job was attempted once");
    let other: Vec<String> =
        sqlx::query_scalar("SELECT status FROM apalis.jobs WHERE job_type = 'other'")
            .fetch_all(queue.pool())
            .await
            .unwrap();
    assert_eq!(
        other,
        ["Pending"],
        "a worker on `airlock` leaves `other` alone"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_dry_run_scope_queues_nothing() {
    let Some(server) = postgres() else { return };
    let queue = queue(server).await;
    let t = tag("pg-discard");
    let failed: Result<(), AppError> = Scope::new()
        .executor(queue.clone())
        .run_async(async {
            record::enqueue(t.clone(), 1)?;
            Err(AppError::Failed("the handler failed".into()))
        })
        .await;
    assert!(failed.is_err());
    Scope::new()
        .executor(queue.clone())
        .policy(DropAll)
        .run_async(async { record::enqueue(t.clone(), 2).map(drop) })
        .await
        .unwrap();
    assert_eq!(total(&queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_the_database_refuses_queues_nothing_and_hands_every_intent_back() {
    let Some(server) = postgres() else { return };
    let queue = queue(server).await;
    let t = tag("pg-refused");
    // Refuse one row of the second queue's INSERT: the first queue's INSERT
    // has already succeeded inside the transaction by then.
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_value_3() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           IF convert_from(NEW.job, 'UTF8')::jsonb #>> '{args,value}' = '3' THEN \
             RAISE EXCEPTION 'refused on purpose'; \
           END IF; \
           RETURN NEW; \
         END $$; \
         CREATE TRIGGER refuse_value_3 BEFORE INSERT ON apalis.jobs \
           FOR EACH ROW EXECUTE FUNCTION refuse_value_3();",
    )
    .execute(queue.pool())
    .await
    .unwrap();
    let result: airlock::Result<()> = Scope::new()
        .executor(queue.clone())
        .run_async(async {
            record::enqueue(t.clone(), 1)?;
            record::enqueue(t.clone(), 2)?;
            record::intent(t.clone(), 3).queue("other").enqueue()?;
            Ok(())
        })
        .await;
    let Err(Error::Dispatch(failure)) = result else {
        panic!("expected a dispatch failure, got {result:?}");
    };
    assert_eq!(
        failure.not_attempted.len(),
        3,
        "every intent is handed back"
    );
    assert!(
        failure.to_string().contains("refused on purpose")
            || failure.source.to_string().contains("refused on purpose"),
        "the database's reason is kept: {failure} / {}",
        failure.source
    );
    assert_eq!(total(&queue).await, 0, "the whole flush rolled back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_options_land_in_the_job_row() {
    let Some(server) = postgres() else { return };
    let queue = queue(server).await;
    let t = tag("pg-options");
    let in_two_hours = SystemTime::now() + Duration::from_secs(7200);
    Scope::new()
        .executor(queue.clone())
        .run_async(async {
            record::intent(t.clone(), 1)
                .delay(Duration::from_secs(3600))
                .priority(7)
                .max_attempts(9)
                .enqueue()?;
            record::intent(t.clone(), 2).priority(-3).enqueue()?;
            record::intent(t.clone(), 3)
                .run_at(in_two_hours)
                .enqueue()?;
            Ok::<(), Error>(())
        })
        .await
        .unwrap();
    type Row = (i64, String, String, i32, i32, f64, String);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT (convert_from(job, 'UTF8')::jsonb #>> '{args,value}')::int8, \
                id, convert_from(job, 'UTF8')::jsonb ->> 'id', \
                priority, max_attempts, \
                EXTRACT(EPOCH FROM run_at - now())::float8, status \
         FROM apalis.jobs ORDER BY 1",
    )
    .fetch_all(queue.pool())
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    for (_, row_id, envelope_id, .., status) in &rows {
        assert_eq!(row_id, envelope_id, "the envelope carries the job's id");
        assert_eq!(row_id.len(), 26, "a ULID: {row_id}");
        assert_eq!(status, "Pending");
    }
    let (_, _, _, priority, max_attempts, run_in, _) = &rows[0];
    assert_eq!((*priority, *max_attempts), (7, 9));
    assert!(
        (3500.0..3700.0).contains(run_in),
        "delay of an hour: runs in {run_in} s"
    );
    let (_, _, _, priority, max_attempts, run_in, _) = &rows[1];
    assert_eq!(
        *priority, 0,
        "negative priorities run last (apalis's lowest)"
    );
    assert_eq!(*max_attempts as u32, DEFAULT_MAX_ATTEMPTS);
    assert!(*run_in <= 1.0, "no delay: due now, runs in {run_in} s");
    let (_, _, _, _, _, run_in, _) = &rows[2];
    assert!(
        (7100.0..7300.0).contains(run_in),
        "run_at in two hours: runs in {run_in} s"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_can_never_succeed_are_aborted_and_the_worker_keeps_going() {
    let Some(server) = postgres() else { return };
    let queue = queue(server).await;
    let t = tag("pg-bad");
    // Raw rows, as a foreign or buggy producer might write them: a wrong
    // envelope version, an unknown task, arguments that do not decode, and
    // an envelope that is no envelope at all.
    let bad = [
        serde_json::json!({ "v": 99, "id": "x", "task": "record", "args": { "tag": "t", "value": 1 } }),
        serde_json::json!({ "v": 1, "id": "y", "task": "no_such_task", "args": {} }),
        serde_json::json!({ "v": 1, "id": "z", "task": "record", "args": { "tag": 1 } }),
        serde_json::json!({ "hello": "world" }),
    ];
    let tasks = bad
        .iter()
        .map(|job| TaskBuilder::new(serde_json::to_vec(job).unwrap()).build())
        .collect();
    let mut connection = queue.pool().acquire().await.unwrap();
    apalis_postgres::queries::push_tasks(&mut *connection, "airlock", tasks)
        .await
        .unwrap();
    drop(connection);

    let worker = Workers::start(&queue, "pg-bad-1");
    eventually(|| async { count(&queue, "Killed").await == 4 }).await;
    assert_eq!(count(&queue, "Killed").await, 4, "bad jobs are aborted");
    // A good job queued after them still runs on the same worker.
    Scope::new()
        .executor(queue.clone())
        .run_async(async { record::enqueue(t.clone(), 7).map(drop) })
        .await
        .unwrap();
    eventually(|| async { count(&queue, "Done").await == 1 }).await;
    assert_eq!(worker.restarts(), 0, "the worker survived the bad jobs");
    worker.stop().await.expect("the workers shut down cleanly");
    assert_eq!(runs(&t), ["record(7)"]);
    assert_eq!(count(&queue, "Done").await, 1);
    let attempts: Vec<i32> =
        sqlx::query_scalar("SELECT attempts FROM apalis.jobs WHERE status = 'Killed'")
            .fetch_all(queue.pool())
            .await
            .unwrap();
    assert_eq!(attempts, [1, 1, 1, 1], "aborted jobs are never retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_is_not_json_is_aborted_without_stopping_the_worker() {
    let Some(server) = postgres() else { return };
    let queue = queue(server).await;
    let t = tag("pg-not-json");
    // In one push, so one fetch claims both: apalis's own JSON codec would
    // stop the worker on the first and strand the second as `Queued`.
    let good = serde_json::json!({ "v": 1, "id": "g", "task": "record", "args": { "tag": t, "value": 5 } });
    let tasks = vec![
        TaskBuilder::new(b"not json at all".to_vec()).build(),
        TaskBuilder::new(serde_json::to_vec(&good).unwrap()).build(),
    ];
    let mut connection = queue.pool().acquire().await.unwrap();
    apalis_postgres::queries::push_tasks(&mut *connection, "airlock", tasks)
        .await
        .unwrap();
    drop(connection);

    let workers = Workers::start(&queue, "pg-not-json");
    eventually(|| async { count(&queue, "Killed").await == 1 && count(&queue, "Done").await == 1 })
        .await;
    // And a job queued afterwards runs too.
    Scope::new()
        .executor(queue.clone())
        .run_async(async { record::enqueue(t.clone(), 6).map(drop) })
        .await
        .unwrap();
    eventually(|| async { count(&queue, "Done").await == 2 }).await;
    let restarts = workers.restarts();
    workers.stop().await.expect("the workers shut down cleanly");

    assert_eq!(
        count(&queue, "Killed").await,
        1,
        "the bad payload is aborted"
    );
    assert_eq!(count(&queue, "Done").await, 2);
    let mut ran = runs(&t);
    ran.sort();
    assert_eq!(ran, ["record(5)", "record(6)"]);
    assert_eq!(restarts, 0, "no worker stopped on the bad payload");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_fails_its_job_and_the_worker_keeps_going() {
    let Some(server) = postgres() else { return };
    let queue = queue(server).await;
    let t = tag("pg-panic");
    Scope::new()
        .executor(queue.clone())
        .run_async(async {
            panics::intent(t.clone())
                .max_attempts(1)
                .enqueue()
                .map(drop)
        })
        .await
        .unwrap();
    let worker = Workers::start(&queue, "pg-panic-1");
    eventually(|| async { jobs(&queue).await.iter().all(|(s, _)| failed_for_good(s)) }).await;
    assert_eq!(runs(&t), ["panics"]);
    let panicked = jobs(&queue).await;
    assert_eq!(panicked.len(), 1);
    assert!(
        failed_for_good(&panicked[0].0) && panicked[0].1 == 1,
        "the panic failed the job after one attempt (not left Running): {panicked:?}"
    );
    Scope::new()
        .executor(queue.clone())
        .run_async(async { record::enqueue(t.clone(), 9).map(drop) })
        .await
        .unwrap();
    eventually(|| async { count(&queue, "Done").await == 1 }).await;
    assert_eq!(worker.restarts(), 0, "the worker survived the panic");
    worker.stop().await.expect("the workers shut down cleanly");
    assert_eq!(runs(&t), ["panics", "record(9)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_tasks_are_retried_until_they_succeed_or_reach_max_attempts() {
    let Some(server) = postgres() else { return };
    let url = server.fresh_database().await;
    let queue = PostgresQueue::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("executions.log");
    let (flaky, broken) = (tag("pg-flaky"), tag("pg-broken"));
    Scope::new()
        .executor(queue.clone())
        .run_async(async {
            // Fails twice, succeeds on the third attempt.
            fail_until::intent(flaky.clone(), 2)
                .max_attempts(3)
                .enqueue()?;
            // Would succeed on the 100th: never gets there.
            fail_until::intent(broken.clone(), 99)
                .max_attempts(3)
                .enqueue()?;
            Ok::<(), Error>(())
        })
        .await
        .unwrap();

    let mut node = Node::start(&url, "pg-retry", 1, &log);
    eventually(|| async {
        let (status, attempts) = job_by_key(&queue, &broken).await;
        job_by_key(&queue, &flaky).await.0 == "Done" && failed_for_good(&status) && attempts == 3
    })
    .await;
    assert!(node.is_running(), "the worker process is still up");
    drop(node);
    assert_eq!(job_by_key(&queue, &flaky).await, ("Done".to_owned(), 3));
    assert_eq!(executions(&log, &flaky), 3, "two failures, then success");
    let (status, attempts) = job_by_key(&queue, &broken).await;
    assert!(
        failed_for_good(&status) && attempts == 3,
        "failed for good after 3 attempts: {status}, {attempts}"
    );
    assert_eq!(executions(&log, &broken), 3, "stopped at max_attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_run_each_of_300_jobs_exactly_once() {
    const JOBS: usize = 300;
    let Some(server) = postgres() else { return };
    let url = server.fresh_database().await;
    let queue = PostgresQueue::connect(&url).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("executions.log");
    let run = tag("pg-two-nodes");
    let keys: Vec<String> = (0..JOBS).map(|i| format!("{run}/{i}")).collect();

    let mut first = Node::start(&url, "pg-node-a", 2, &log);
    let mut second = Node::start(&url, "pg-node-b", 2, &log);
    Scope::new()
        .executor(queue.clone())
        .run_async(async {
            for key in &keys {
                log_execution::enqueue(key.clone())?;
            }
            Ok::<(), Error>(())
        })
        .await
        .unwrap();
    eventually(|| async { count(&queue, "Done").await == JOBS as i64 }).await;
    assert!(
        first.is_running() && second.is_running(),
        "both nodes are up"
    );
    let pids = [first.pid(), second.pid()];
    drop((first, second));

    assert_eq!(count(&queue, "Done").await, JOBS as i64);
    let mut per_process = [0usize; 2];
    for key in &keys {
        let ran_in = execution_pids(&log, key);
        assert_eq!(ran_in.len(), 1, "{key} ran {} times", ran_in.len());
        let process = pids
            .iter()
            .position(|pid| *pid == ran_in[0])
            .unwrap_or_else(|| panic!("{key} ran in an unknown process {}", ran_in[0]));
        per_process[process] += 1;
    }
    assert_eq!(per_process.iter().sum::<usize>(), JOBS);
    eprintln!(
        "two worker processes ran {JOBS} jobs: {} in pid {}, {} in pid {}",
        per_process[0], pids[0], per_process[1], pids[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_wakes_when_a_job_is_committed_not_at_its_next_poll() {
    // The worker polls once an hour: only the commit's notification can
    // start the job within the test's bound.
    let Some(server) = postgres() else { return };
    let queue = queue(server).await;
    let t = tag("pg-notify");
    let monitor =
        queue.monitor(WorkerOptions::new("pg-notify").poll_interval(Duration::from_secs(3600)));
    let run = tokio::spawn(monitor.run_with_signal(async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    }));
    // Idle first: registered, and past its first (empty) fetch.
    let registered = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM apalis.workers")
            .fetch_one(queue.pool())
            .await
            .unwrap_or(0)
            > 0
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !registered().await && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = tokio::time::Instant::now();
    Scope::new()
        .executor(queue.clone())
        .run_async(async { record::enqueue(t.clone(), 1).map(drop) })
        .await
        .unwrap();
    let deadline = started + Duration::from_secs(20);
    while runs(&t).is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("committed job started after {:?}", started.elapsed());
    assert_eq!(
        runs(&t),
        ["record(1)"],
        "the notification woke the idle worker"
    );
    run.abort();
}

#[test]
fn a_sync_scope_cannot_push_and_hands_every_intent_back() {
    let Some(server) = postgres() else { return };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let queue = runtime.block_on(queue(server));
    let t = tag("pg-sync");
    let result: airlock::Result<()> = Scope::new().executor(queue.clone()).run(|| {
        record::enqueue(t.clone(), 1)?;
        record::enqueue(t.clone(), 2)?;
        Ok(())
    });
    let Err(Error::Dispatch(failure)) = result else {
        panic!("expected a dispatch failure, got {result:?}");
    };
    assert_eq!(failure.not_attempted.len(), 2);
    let message = format!("{failure}: {}", failure.source);
    assert!(message.contains("async scope"), "{message}");
    assert!(message.contains("PostgresQueue"), "{message}");
    assert_eq!(runtime.block_on(total(&queue)), 0);
}
