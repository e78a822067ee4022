//! A separate process for the cross-process queue tests: a worker that runs
//! the fixture tasks from a real queue, or a producer that commits
//! transactions and then waits to be killed (`crash-produce`: wherever the
//! crash-injection test tells it to stop).
//!
//! `airlock-test-node <backend> <role> [args...]`, where each backend module
//! owns its roles and arguments. Tasks log their runs to the file named by
//! `AIRLOCK_TEST_LOG` (see `airlock_tests::log_execution`).

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

/// Logs to stderr when `RUST_LOG` is set, so a failing test can show why.
fn tracing_init() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}
