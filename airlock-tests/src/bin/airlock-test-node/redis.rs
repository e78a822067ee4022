//! Roles on the Redis queue.
//!
//! * `worker <redis-url> <name> [workers] [queue]`: runs supervised workers on
//!   the queue (default `airlock`) until killed; prints `ready` once connected.

use airlock::queue::RedisQueue;
use airlock::worker::WorkerOptions;
use anyhow::Context;

pub(crate) async fn main(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("worker") => {
            let url = args.get(1).context("worker: missing <redis-url>")?;
            let name = args.get(2).context("worker: missing <name>")?;
            let workers = args.get(3).map_or(Ok(1), |n| n.parse())?;
            let queue_name = args
                .get(4)
                .map_or(airlock::queue::DEFAULT_QUEUE, String::as_str);
            let queue = RedisQueue::connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to {url}: {e}"))?;
            let options = WorkerOptions::new(name.clone())
                .workers(workers)
                .queue(queue_name)
                .poll_interval(std::time::Duration::from_millis(20));
            println!("ready");
            queue.monitor(options).run().await?;
            Ok(())
        }
        other => anyhow::bail!("redis: unknown role {other:?} (expected `worker`)"),
    }
}
