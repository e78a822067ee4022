//! Roles on the PostgreSQL queue.
//!
//! * `worker <database-url> <name> [workers]`: runs supervised workers on the
//!   queue until killed.

use airlock::queue::PostgresQueue;
use airlock::worker::WorkerOptions;
use anyhow::Context;

pub(crate) async fn main(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("worker") => {
            let url = args.get(1).context("worker: missing <database-url>")?;
            let name = args.get(2).context("worker: missing <name>")?;
            let workers = args.get(3).map_or(Ok(1), |n| n.parse())?;
            let queue = PostgresQueue::connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to {url}: {e}"))?;
            let options = WorkerOptions::new(name.clone())
                .workers(workers)
                .poll_interval(std::time::Duration::from_millis(20));
            println!("ready");
            queue.monitor(options).run().await?;
            Ok(())
        }
        other => anyhow::bail!("postgres: unknown role {other:?} (expected `worker`)"),
    }
}
