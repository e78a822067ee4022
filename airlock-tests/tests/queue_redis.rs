//! Dispatch through apalis-redis, and workers that run jobs by task name,
//! against a real `redis-server` started by the harness. Each test gets its
//! own Redis database (see `airlock_tests::servers::redis`), so it uses the
//! default queue `airlock` and may count every key it sees.
#![cfg(feature = "apalis-redis")]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock::queue::apalis::prelude::{Task, TaskBuilder, TaskSink};
use airlock::queue::{apalis_redis, RedisQueue};
use airlock::worker::WorkerOptions;
use airlock::{DropAll, Error, Scope};
use airlock_tests::{execution_pids, executions, fail, fail_until, log_execution, panics};
use airlock_tests::{record, runs, tag, AppError, EXECUTION_LOG_VAR};
use redis::aio::ConnectionManager;

/// The Redis keys of the default queue.
const SCHEDULED: &str = "airlock:scheduled";
const ACTIVE: &str = "airlock:active";
const DATA: &str = "airlock:data";
const DONE: &str = "airlock:done";
const DEAD: &str = "airlock:dead";

/// A queue on a database of its own, and its URL.
async fn queue(server: &airlock_tests::servers::redis::RedisServer) -> (RedisQueue, String) {
    let url = server.fresh_database();
    let queue = RedisQueue::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    (queue, url)
}

fn conn(queue: &RedisQueue) -> ConnectionManager {
    queue.connection().clone()
}

async fn scard(queue: &RedisQueue, key: &str) -> usize {
    redis::cmd("SCARD")
        .arg(key)
        .query_async(&mut conn(queue))
        .await
        .expect("SCARD")
}

async fn zcard(queue: &RedisQueue, key: &str) -> usize {
    redis::cmd("ZCARD")
        .arg(key)
        .query_async(&mut conn(queue))
        .await
        .expect("ZCARD")
}

async fn llen(queue: &RedisQueue, key: &str) -> usize {
    redis::cmd("LLEN")
        .arg(key)
        .query_async(&mut conn(queue))
        .await
        .expect("LLEN")
}

/// How many keys the test's database holds.
async fn dbsize(queue: &RedisQueue) -> usize {
    redis::cmd("DBSIZE")
        .query_async(&mut conn(queue))
        .await
        .expect("DBSIZE")
}

/// The ids of every job pushed to the queue.
async fn job_ids(queue: &RedisQueue) -> Vec<String> {
    redis::cmd("HKEYS")
        .arg(DATA)
        .query_async(&mut conn(queue))
        .await
        .expect("HKEYS")
}

/// A job's metadata hash: `status`, `attempts`, `result`, ...
async fn meta(queue: &RedisQueue, id: &str) -> HashMap<String, String> {
    redis::cmd("HGETALL")
        .arg(format!("airlock:meta:{id}"))
        .query_async(&mut conn(queue))
        .await
        .expect("HGETALL")
}

/// The jobs in the scheduled set, with the second each is due.
async fn scheduled(queue: &RedisQueue) -> Vec<(String, u64)> {
    redis::cmd("ZRANGE")
        .arg(SCHEDULED)
        .arg(0)
        .arg(-1)
        .arg("WITHSCORES")
        .query_async(&mut conn(queue))
        .await
        .expect("ZRANGE")
}

/// The workers registered on the queue that are restarts of a worker that
/// stopped on an error (`RedisQueue::monitor` renames those).
async fn restarted_workers(queue: &RedisQueue) -> Vec<String> {
    let workers: Vec<String> = redis::cmd("ZRANGE")
        .arg("airlock:workers")
        .arg(0)
        .arg(-1)
        .query_async(&mut conn(queue))
        .await
        .expect("ZRANGE");
    assert!(!workers.is_empty(), "a worker registered");
    workers
        .into_iter()
        .filter(|w| w.contains("-restart"))
        .collect()
}

/// Every key of the test's database and what it holds, for failure messages.
async fn dump(queue: &RedisQueue) -> String {
    let mut conn = conn(queue);
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    keys.sort();
    let mut out = String::from("Redis database:\n");
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        let command: &[&str] = match kind.as_str() {
            "hash" => &["HGETALL"],
            "set" => &["SMEMBERS"],
            "zset" => &["ZRANGE", "0", "-1", "WITHSCORES"],
            "list" => &["LRANGE", "0", "-1"],
            _ => &["GET"],
        };
        let mut cmd = redis::cmd(command[0]);
        cmd.arg(&key).arg(&command[1..]);
        let value: redis::Value = cmd.query_async(&mut conn).await.expect("read a key");
        out.push_str(&format!("  {key} ({kind}): {value:?}\n"));
    }
    out
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_secs()
}

/// Polls `done` every 20 ms until it holds, at most `limit`; whether it held.
async fn eventually<F, Fut>(limit: Duration, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if done().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs one supervised in-process worker (`RedisQueue::monitor`) until `done`
/// holds, at most 30 s, then stops it gracefully.
async fn work_until<F, Fut>(queue: &RedisQueue, name: &str, done: F)
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let stop = async move {
        eventually(Duration::from_secs(30), done).await;
        Ok::<(), std::io::Error>(())
    };
    queue
        .monitor(WorkerOptions::new(name).poll_interval(Duration::from_millis(20)))
        .run_with_signal(stop)
        .await
        .expect("the workers run and stop cleanly");
}

/// Reads the server's `MONITOR` feed until `marker` is echoed on database
/// `db`, and returns the commands clients (not scripts) ran on `db`.
struct CommandFeed {
    reader: std::thread::JoinHandle<Vec<String>>,
    marker: String,
}

impl CommandFeed {
    fn start(port: u16, db: &str) -> Self {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("a read timeout");
        stream.write_all(b"MONITOR\r\n").expect("send MONITOR");
        let mut lines = BufReader::new(stream);
        let mut ok = String::new();
        lines.read_line(&mut ok).expect("the MONITOR reply");
        assert_eq!(ok.trim_end(), "+OK", "MONITOR is refused");
        let marker = format!("airlock-feed-end-{}", tag("feed").replace('#', "-"));
        let (end, client) = (marker.clone(), format!("[{db} 127.0.0.1:"));
        let reader = std::thread::spawn(move || {
            let mut commands = Vec::new();
            for line in lines.lines() {
                let line = line.expect("a MONITOR line (none within 30 s?)");
                if !line.contains(&client) {
                    continue; // another database, or a command a script ran
                }
                if line.contains(&end) {
                    break;
                }
                commands.push(line);
            }
            commands
        });
        CommandFeed { reader, marker }
    }

    /// Ends the feed with an `ECHO` on `queue`'s database; the client commands
    /// seen before it.
    async fn finish(self, queue: &RedisQueue) -> Vec<String> {
        let _: String = redis::cmd("ECHO")
            .arg(&self.marker)
            .query_async(&mut conn(queue))
            .await
            .expect("ECHO");
        tokio::task::spawn_blocking(move || self.reader.join().expect("the feed reader"))
            .await
            .expect("joining the feed reader")
    }
}

/// The name of a client command in a MONITOR line (`EVALSHA`, `HGETALL`, ...).
fn command_name(line: &str) -> String {
    line.split("] \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_default()
        .to_ascii_uppercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_is_one_push_and_a_worker_runs_each_job_once() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, url) = queue(server).await;
    // Load apalis's push script first, so the push below is not preceded by a
    // NOSCRIPT round trip.
    Scope::new()
        .executor(queue.clone())
        .run_async(async { record::enqueue(tag("redis-warmup"), 0).map(drop) })
        .await
        .unwrap();
    let db = url.rsplit('/').next().expect("a database index");

    let t = tag("redis-flush");
    let feed = CommandFeed::start(server.port(), db);
    let report = Scope::new().executor(queue.clone()).start();
    report
        .in_scope(|| -> airlock::Result<()> {
            for value in 1..=5 {
                record::enqueue(t.clone(), value)?;
            }
            Ok(())
        })
        .unwrap();
    let report = report.flush_async().await.unwrap();
    let commands = feed.finish(&queue).await;
    assert_eq!(report.dispatched(), ["record"; 5]);
    assert!(runs(&t).is_empty(), "queued, not run in process");

    let pushes: Vec<_> = commands.iter().filter(|c| c.contains(&t)).collect();
    assert_eq!(
        pushes.len(),
        1,
        "the flush is one command on the server: {commands:#?}"
    );
    assert!(
        matches!(command_name(pushes[0]).as_str(), "EVALSHA" | "EVAL"),
        "the flush is one script call: {}",
        pushes[0]
    );
    assert_eq!(
        pushes[0].matches(t.as_str()).count(),
        5,
        "the one call carries all five jobs"
    );
    assert_eq!(zcard(&queue, SCHEDULED).await, 6, "warm-up job plus five");

    let seen = t.clone();
    let watched = queue.clone();
    work_until(&queue, "redis-flush", move || {
        let ran = runs(&seen).len() >= 5;
        let queue = watched.clone();
        async move { ran && scard(&queue, DONE).await == 6 }
    })
    .await;
    let mut ran = runs(&t);
    ran.sort();
    assert_eq!(
        ran,
        [
            "record(1)",
            "record(2)",
            "record(3)",
            "record(4)",
            "record(5)"
        ]
    );
    assert_eq!(scard(&queue, DONE).await, 6, "every job is done");
    assert_eq!(zcard(&queue, SCHEDULED).await, 0);
    assert_eq!(llen(&queue, ACTIVE).await, 0);
    for id in job_ids(&queue).await {
        let meta = meta(&queue, &id).await;
        assert_eq!(meta["status"], "Done", "{id}: {meta:?}");
        assert_eq!(meta["attempts"], "1", "{id} ran once: {meta:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_or_dry_run_scope_pushes_nothing() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    let t = tag("redis-discard");
    let failed: Result<(), AppError> = Scope::new()
        .executor(queue.clone())
        .run_async(async {
            record::enqueue(t.clone(), 1)?;
            Err(AppError::Failed("the handler failed".into()))
        })
        .await;
    assert!(failed.is_err());
    let report = Scope::new().executor(queue.clone()).policy(DropAll).start();
    report
        .in_scope(|| record::enqueue(t.clone(), 2).map(drop))
        .unwrap();
    let report = report.flush_async().await.unwrap();
    assert!(report.dispatched().is_empty(), "{report:?}");
    assert_eq!(dbsize(&queue).await, 0, "nothing reached Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_push_reports_what_was_queued_and_hands_back_the_rest() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    // Queue `broken`'s job hash is a string, so Redis refuses the push script
    // for that queue (WRONGTYPE) while queue `ok` works.
    let _: () = redis::cmd("SET")
        .arg("broken:data")
        .arg("not a hash")
        .query_async(&mut conn(&queue))
        .await
        .expect("SET");
    let t = tag("redis-partial");
    let result: airlock::Result<()> = Scope::new()
        .executor(queue.clone())
        .run_async(async {
            record::intent(t.clone(), 1).queue("ok").enqueue()?;
            record::intent(t.clone(), 2).queue("ok").enqueue()?;
            record::intent(t.clone(), 3).queue("broken").enqueue()?;
            record::intent(t.clone(), 4).queue("ok").enqueue()?;
            Ok(())
        })
        .await;
    let Err(Error::Dispatch(failure)) = result else {
        panic!("expected a dispatch failure, got {result:?}");
    };
    // The first push (queue `ok`, two intents) went through; the second
    // (queue `broken`) failed, so it and everything after it come back.
    assert_eq!(
        failure.report.dispatched(),
        ["record", "record"],
        "{failure}"
    );
    let handed_back: Vec<u64> = failure
        .not_attempted
        .iter()
        .map(|i| i.args::<record>().expect("record args").value)
        .collect();
    assert_eq!(handed_back, [3, 4], "{failure}");
    assert!(failure.to_string().contains("`broken`"), "{failure}");
    let queued: usize = redis::cmd("HLEN")
        .arg("ok:data")
        .query_async(&mut conn(&queue))
        .await
        .expect("HLEN");
    assert_eq!(queued, 2, "exactly the reported intents are in Redis");
    assert_eq!(zcard(&queue, "ok:scheduled").await, 2);
    assert_eq!(zcard(&queue, "broken:scheduled").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_job_waits_in_the_scheduled_set() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    let t = tag("redis-delay");
    let before = now_secs();
    Scope::new()
        .executor(queue.clone())
        .run_async(async {
            record::intent(t.clone(), 1)
                .delay(Duration::from_secs(3600))
                .enqueue()?;
            record::enqueue(t.clone(), 2).map(drop)
        })
        .await
        .unwrap();
    let jobs = scheduled(&queue).await;
    assert_eq!(jobs.len(), 2, "every push lands in the scheduled set");
    let delayed: Vec<_> = jobs
        .iter()
        .filter(|(_, due)| *due >= before + 3600)
        .collect();
    assert_eq!(delayed.len(), 1, "one job is due in an hour: {jobs:?}");
    let delayed_id = delayed[0].0.clone();

    // A worker runs the job that is due, several polls go by, and the delayed
    // one is still waiting.
    let seen = t.clone();
    let watched = queue.clone();
    work_until(&queue, "redis-delay", move || {
        let ran = !runs(&seen).is_empty();
        let queue = watched.clone();
        async move { ran && scard(&queue, DONE).await == 1 }
    })
    .await;
    assert_eq!(runs(&t), ["record(2)"], "the delayed job did not run");
    assert_eq!(scard(&queue, DONE).await, 1);
    let jobs = scheduled(&queue).await;
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].0, delayed_id, "the delayed job is still scheduled");
    assert!(jobs[0].1 >= before + 3600, "still due in an hour: {jobs:?}");
    assert_eq!(meta(&queue, &delayed_id).await["status"], "Pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_that_can_never_succeed_are_aborted_and_the_worker_keeps_going() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    let t = tag("redis-bad");
    let mut storage = queue.storage("airlock");
    let bad = [
        // Not an envelope (JSON, but not an object with `v`).
        serde_json::json!("plain text"),
        serde_json::json!({ "hello": "world" }),
        // A version this build does not read.
        serde_json::json!({ "v": 99, "id": "w", "task": "record", "args": {} }),
        // An unknown task.
        serde_json::json!({ "v": 1, "id": "x", "task": "no_such_task", "args": {} }),
        // Arguments that do not decode.
        serde_json::json!({ "v": 1, "id": "y", "task": "record", "args": { "tag": 1 } }),
    ];
    for job in bad.clone() {
        storage.push(job).await.unwrap();
    }
    // A good job queued after them still runs.
    Scope::new()
        .executor(queue.clone())
        .run_async(async { record::enqueue(t.clone(), 7).map(drop) })
        .await
        .unwrap();

    let seen = t.clone();
    let watched = queue.clone();
    work_until(&queue, "redis-bad", move || {
        let ran = !runs(&seen).is_empty();
        let queue = watched.clone();
        async move { ran && scard(&queue, DEAD).await == 5 }
    })
    .await;
    assert_eq!(runs(&t), ["record(7)"]);
    assert_eq!(scard(&queue, DEAD).await, 5, "bad jobs are aborted");
    assert_eq!(scard(&queue, DONE).await, 1);
    assert_eq!(zcard(&queue, SCHEDULED).await, 0, "none is scheduled again");
    assert_eq!(llen(&queue, ACTIVE).await, 0);
    for id in job_ids(&queue).await {
        let meta = meta(&queue, &id).await;
        if meta["status"] == "Done" {
            continue;
        }
        assert_eq!(meta["status"], "Killed", "{id}: {meta:?}");
        assert_eq!(meta["attempts"], "1", "{id} was tried once: {meta:?}");
    }
    assert_eq!(
        restarted_workers(&queue).await,
        Vec::<String>::new(),
        "the worker never stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_that_is_not_json_does_not_stop_the_queue() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    let t = tag("redis-garbage");
    // Bytes that are not JSON, pushed the way apalis stores any job.
    let garbage: Task<Vec<u8>> = TaskBuilder::new(b"\xffnot json".to_vec()).build();
    apalis_redis::queries::push_tasks(
        &mut conn(&queue),
        &apalis_redis::Config::default().queue("airlock"),
        &[garbage],
    )
    .await
    .unwrap();
    Scope::new()
        .executor(queue.clone())
        .run_async(async { record::enqueue(t.clone(), 8).map(drop) })
        .await
        .unwrap();

    let seen = t.clone();
    let watched = queue.clone();
    work_until(&queue, "redis-garbage", move || {
        let ran = !runs(&seen).is_empty();
        let queue = watched.clone();
        async move { ran && scard(&queue, DEAD).await == 1 }
    })
    .await;
    assert_eq!(runs(&t), ["record(8)"], "the good job ran");
    assert_eq!(scard(&queue, DEAD).await, 1, "the garbage job is aborted");
    assert_eq!(scard(&queue, DONE).await, 1);
    let dead: Vec<String> = redis::cmd("SMEMBERS")
        .arg(DEAD)
        .query_async(&mut conn(&queue))
        .await
        .expect("SMEMBERS");
    let meta = meta(&queue, &dead[0]).await;
    assert_eq!(meta["status"], "Killed", "{meta:?}");
    assert_eq!(meta["attempts"], "1", "{meta:?}");
    assert!(meta["result"].contains("not JSON"), "{meta:?}");
    assert_eq!(
        restarted_workers(&queue).await,
        Vec::<String>::new(),
        "the worker never stopped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_always_fails_runs_exactly_max_attempts_times() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    let t = tag("redis-fail");
    Scope::new()
        .executor(queue.clone())
        .run_async(async { fail::intent(t.clone()).max_attempts(2).enqueue().map(drop) })
        .await
        .unwrap();
    let watched = queue.clone();
    work_until(&queue, "redis-fail", move || {
        let queue = watched.clone();
        async move { scard(&queue, DEAD).await == 1 }
    })
    .await;
    assert_eq!(runs(&t), ["fail", "fail"], "attempted max_attempts times");
    let ids = job_ids(&queue).await;
    assert_eq!(ids.len(), 1);
    let meta = meta(&queue, &ids[0]).await;
    assert_eq!(meta["status"], "Killed", "{meta:?}");
    assert_eq!(meta["attempts"], "2", "{meta:?}");
    assert!(
        meta["result"].contains("attempts are exhausted"),
        "the job says why it stopped: {meta:?}"
    );
    assert_eq!(scard(&queue, DEAD).await, 1, "dead, not retried");
    assert_eq!(zcard(&queue, SCHEDULED).await, 0, "no retry is scheduled");
    assert_eq!(llen(&queue, ACTIVE).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_fails_its_job_and_the_worker_keeps_going() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    let t = tag("redis-panic");
    Scope::new()
        .executor(queue.clone())
        .run_async(async {
            panics::intent(t.clone()).max_attempts(2).enqueue()?;
            record::enqueue(t.clone(), 9).map(drop)
        })
        .await
        .unwrap();
    let watched = queue.clone();
    work_until(&queue, "redis-panic", move || {
        let queue = watched.clone();
        async move { scard(&queue, DEAD).await == 1 && scard(&queue, DONE).await == 1 }
    })
    .await;
    let mut ran = runs(&t);
    ran.sort();
    assert_eq!(
        ran,
        ["panics", "panics", "record(9)"],
        "the panic was a failure, retried once; the other job ran"
    );
    for id in job_ids(&queue).await {
        let meta = meta(&queue, &id).await;
        if meta["status"] == "Done" {
            continue;
        }
        assert_eq!(meta["status"], "Killed", "{meta:?}");
        assert_eq!(meta["attempts"], "2", "{meta:?}");
        assert!(meta["result"].contains("panicked"), "{meta:?}");
    }
}

/// Worker processes (`airlock-test-node redis worker ...`), killed on drop.
struct Nodes(Vec<Child>);

impl Nodes {
    /// Starts `count` worker processes on `url`, logging runs to `log`, and
    /// waits until each says `ready`.
    fn start(count: usize, url: &str, log: &Path, name: &str) -> Self {
        let mut nodes = Nodes(Vec::new());
        for i in 0..count {
            let child = Command::new(env!("CARGO_BIN_EXE_airlock-test-node"))
                .args(["redis", "worker", url, &format!("{name}-{i}"), "2"])
                .env(EXECUTION_LOG_VAR, log)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("start airlock-test-node");
            nodes.0.push(child);
            let stdout = nodes.0[i].stdout.take().expect("a piped stdout");
            let mut line = String::new();
            BufReader::new(stdout)
                .read_line(&mut line)
                .expect("read the node's stdout");
            assert_eq!(line.trim_end(), "ready", "worker node {i} did not start");
        }
        nodes
    }

    fn pids(&self) -> Vec<u32> {
        self.0.iter().map(Child::id).collect()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_task_is_retried_until_it_succeeds() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, url) = queue(server).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let key = tag("redis-retry");
    Scope::new()
        .executor(queue.clone())
        .run_async(async { fail_until::enqueue(key.clone(), 2).map(drop) })
        .await
        .unwrap();
    let _nodes = Nodes::start(1, &url, &log, "redis-retry");
    let done = eventually(Duration::from_secs(30), || {
        let queue = queue.clone();
        async move { scard(&queue, DONE).await == 1 }
    })
    .await;
    assert!(
        done,
        "the job succeeded within 30 s; runs: {}; now {}; {}",
        executions(&log, &key),
        now_secs(),
        dump(&queue).await
    );
    assert_eq!(executions(&log, &key), 3, "two failures, then success");
    let ids = job_ids(&queue).await;
    let meta = meta(&queue, &ids[0]).await;
    assert_eq!(meta["status"], "Done", "{meta:?}");
    assert_eq!(meta["attempts"], "3", "{meta:?}");
    assert_eq!(scard(&queue, DEAD).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_run_each_job_exactly_once() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    const JOBS: usize = 300;
    let (queue, url) = queue(server).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let nodes = Nodes::start(2, &url, &log, "redis-pair");
    let prefix = tag("redis-pair");
    let keys: Vec<String> = (0..JOBS).map(|i| format!("{prefix}-{i}")).collect();
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
    let done = eventually(Duration::from_secs(60), || {
        let queue = queue.clone();
        async move { scard(&queue, DONE).await == JOBS }
    })
    .await;
    assert!(
        done,
        "{} of {JOBS} jobs done within 60 s",
        scard(&queue, DONE).await
    );

    let mut per_process: BTreeMap<u32, usize> = BTreeMap::new();
    for key in &keys {
        let pids = execution_pids(&log, key);
        assert_eq!(pids.len(), 1, "{key} ran exactly once: {pids:?}");
        *per_process.entry(pids[0]).or_default() += 1;
    }
    let node_pids = nodes.pids();
    assert!(
        per_process.keys().all(|pid| node_pids.contains(pid)),
        "only the worker processes {node_pids:?} ran jobs: {per_process:?}"
    );
    assert_eq!(scard(&queue, DEAD).await, 0);
    eprintln!("jobs run per worker process (pid: jobs): {per_process:?}");
}

#[test]
fn a_sync_scope_cannot_push_and_hands_every_intent_back() {
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (queue, _) = runtime.block_on(queue(server));
    let t = tag("redis-sync");
    let result: airlock::Result<()> = Scope::new().executor(queue.clone()).run(|| {
        record::enqueue(t.clone(), 1)?;
        Ok(())
    });
    let Err(Error::Dispatch(failure)) = result else {
        panic!("expected a dispatch failure, got {result:?}");
    };
    assert_eq!(failure.not_attempted.len(), 1);
    let message = failure.to_string();
    assert!(
        message.contains("RedisQueue") && message.contains("async scope"),
        "{message}"
    );
    assert_eq!(runtime.block_on(dbsize(&queue)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_starts_are_counted_and_one_whose_runs_were_all_cut_off_is_not_run_again() {
    // apalis-redis hands a job out again after its worker died without
    // counting an attempt, so only airlock's count of starts can end a job
    // whose every run crashes its worker.
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    let (fresh, cut_off) = (tag("redis-last-fresh"), tag("redis-last-cut"));
    Scope::new()
        .executor(queue.clone())
        .run_async(async {
            record::intent(fresh.clone(), 1).max_attempts(1).enqueue()?;
            record::intent(cut_off.clone(), 2)
                .max_attempts(1)
                .enqueue()?;
            Ok::<_, Error>(())
        })
        .await
        .unwrap();
    // The second one started before, on a worker that died.
    let mut ids = Vec::new();
    for id in job_ids(&queue).await {
        let job: String = redis::cmd("HGET")
            .arg(DATA)
            .arg(&id)
            .query_async(&mut conn(&queue))
            .await
            .expect("HGET");
        ids.push((id, job.contains(&cut_off)));
    }
    let (cut_id, _) = ids.iter().find(|(_, cut)| *cut).expect("the cut-off job");
    let _: () = redis::cmd("HSET")
        .arg(format!("airlock:meta:{cut_id}"))
        .arg(airlock::worker::STARTS)
        .arg(1)
        .query_async(&mut conn(&queue))
        .await
        .expect("HSET");

    let q = queue.clone();
    let cut = cut_id.clone();
    work_until(&queue, "redis-last-attempt", move || {
        let q = q.clone();
        let cut = cut.clone();
        async move {
            meta(&q, &cut)
                .await
                .get("status")
                .is_some_and(|s| s == "Killed")
        }
    })
    .await;
    assert_eq!(runs(&fresh), ["record(1)"], "a first last attempt runs");
    assert!(
        runs(&cut_off).is_empty(),
        "a cut-off last attempt is not run again"
    );
    let cut_meta = meta(&queue, cut_id).await;
    assert_eq!(
        cut_meta.get("status").map(String::as_str),
        Some("Killed"),
        "{cut_meta:?}"
    );
    let (fresh_id, _) = ids.iter().find(|(_, cut)| !*cut).expect("the fresh job");
    assert_eq!(
        meta(&queue, fresh_id)
            .await
            .get(airlock::worker::STARTS)
            .map(String::as_str),
        Some("1"),
        "the fresh job's start was counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_drains_a_due_batch_larger_than_apalis_redis_can_move_at_once() {
    // apalis-redis's fetch moves every due job in one `RPUSH` of all their
    // ids, which Redis refuses above about 8,000 arguments: every fetch then
    // failed, and the batch was never drained.
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    const JOBS: u64 = 10_000;
    let t = tag("redis-big-batch");
    Scope::new()
        .executor(queue.clone())
        .run_async(async {
            for value in 0..JOBS {
                record::enqueue(t.clone(), value)?;
            }
            Ok::<_, Error>(())
        })
        .await
        .expect("one flush queues the batch");
    drain_batch(&queue, "redis-big-batch", &t, JOBS, async {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_falls_due_while_workers_run_is_drained_each_job_once() {
    // The batch is scheduled a few seconds ahead and falls due under running
    // workers, all in the same second: promoted in chunks every poll
    // interval, it drains. (A fetch that meets it whole before the promoter
    // stops its worker once, which restarts after promoting; apalis-redis's
    // own promotion is the limit.)
    let Some(server) = airlock_tests::servers::redis::redis() else {
        return;
    };
    let (queue, _) = queue(server).await;
    const JOBS: u64 = 10_000;
    let t = tag("redis-due-later");
    let (seen, q) = (t.clone(), queue.clone());
    let queue_batch = async move {
        // Queued once the worker runs, due 3 s later.
        tokio::time::sleep(Duration::from_millis(300)).await;
        Scope::new()
            .executor(q)
            .run_async(async {
                for value in 0..JOBS {
                    record::intent(seen.clone(), value)
                        .delay(Duration::from_secs(3))
                        .enqueue()?;
                }
                Ok::<_, Error>(())
            })
            .await
            .expect("one flush queues the batch");
    };
    drain_batch(&queue, "redis-due-later", &t, JOBS, queue_batch).await;
    eprintln!(
        "a due batch of {JOBS} under running workers: worker restarts {:?}",
        restarted_workers(&queue).await
    );
}

/// Runs `queue`'s monitor (workers named `name`, 64 jobs at once, polling
/// every 20 ms) while `queue_batch` runs, until `jobs` runs under tag `t`
/// are logged (at most 120 s); then checks every job ran, each once.
async fn drain_batch(
    queue: &RedisQueue,
    name: &str,
    t: &str,
    jobs: u64,
    queue_batch: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let seen = t.to_owned();
    let stop = async move {
        queue_batch.await;
        eventually(Duration::from_secs(120), || {
            let done = runs(&seen).len() as u64 >= jobs;
            async move { done }
        })
        .await;
        Ok::<(), std::io::Error>(())
    };
    queue
        .monitor(
            WorkerOptions::new(name)
                .concurrency(64)
                .poll_interval(Duration::from_millis(20)),
        )
        .run_with_signal(stop)
        .await
        .expect("the workers run and stop cleanly");
    let mut ran = runs(t);
    let total = ran.len();
    ran.sort();
    ran.dedup();
    assert_eq!(total as u64, jobs, "every job ran");
    assert_eq!(ran.len() as u64, jobs, "each once");
}
