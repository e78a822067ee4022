//! A separate process for the cross-process queue tests: a worker that runs
//! the fixture tasks from a real queue, or a producer that commits
//! transactions and then waits to be killed (`crash-produce`: wherever the
//! crash-injection test tells it to stop).
//!
//! `airlock-test-node <backend> <role> [args...]`, where each backend module
//! owns its roles and arguments. Tasks log their runs to the file named by
//! `AIRLOCK_TEST_LOG` (see `airlock_tests::log_execution`).
//!
//! Every backend's `worker` role takes the same arguments (see
//! [`worker_options`]):
//! `worker <url> <name> [workers] [queue] [heartbeat-secs] [missed-heartbeats]`.

// The fixture tasks live in the library; linking it registers them.
use airlock_tests as _;

#[cfg(any(feature = "apalis-sqlite", feature = "apalis-postgres"))]
mod crash;
#[cfg(feature = "apalis-postgres")]
mod postgres;
#[cfg(feature = "apalis-redis")]
mod redis;
#[cfg(feature = "apalis-sqlite")]
mod sqlite;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_init();
    let mut args = std::env::args().skip(1);
    let backend = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    match backend.as_str() {
        #[cfg(feature = "apalis-sqlite")]
        "sqlite" => sqlite::main(rest).await,
        #[cfg(feature = "apalis-postgres")]
        "postgres" => postgres::main(rest).await,
        #[cfg(feature = "apalis-redis")]
        "redis" => redis::main(rest).await,
        other => {
            let _ = rest;
            anyhow::bail!(
                "unknown or disabled backend {other:?}: usage `airlock-test-node \
             <sqlite|postgres|redis> <role> [args...]` (each needs its cargo feature)"
            )
        }
    }
}

/// The `WorkerOptions` of the `worker` role, from its arguments after the
/// role name and the URL: `<name> [workers] [queue] [heartbeat-secs]
/// [missed-heartbeats]`. The worker polls every 20 ms; the heartbeat settings
/// left out keep the backend's defaults (the crash test shortens the orphan
/// window with them).
#[cfg(any(
    feature = "apalis-sqlite",
    feature = "apalis-postgres",
    feature = "apalis-redis"
))]
fn worker_options(args: &[String]) -> anyhow::Result<airlock::worker::WorkerOptions> {
    use anyhow::Context as _;

    let name = args.first().context("worker: missing <name>")?;
    let workers = args.get(1).map_or(Ok(1), |n| n.parse())?;
    let queue = args
        .get(2)
        .map_or(airlock::queue::DEFAULT_QUEUE, String::as_str);
    let mut options = airlock::worker::WorkerOptions::new(name.clone())
        .workers(workers)
        .queue(queue)
        .poll_interval(std::time::Duration::from_millis(20));
    if let Some(secs) = args.get(3) {
        let secs = secs
            .parse()
            .context("worker: <heartbeat-secs> is a number")?;
        options = options.heartbeat(std::time::Duration::from_secs(secs));
    }
    if let Some(missed) = args.get(4) {
        let missed = missed
            .parse()
            .context("worker: <missed-heartbeats> is a number")?;
        options = options.missed_heartbeats(missed);
    }
    Ok(options)
}

/// Logs to stderr when `RUST_LOG` is set, so a failing test can show why.
fn tracing_init() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}
