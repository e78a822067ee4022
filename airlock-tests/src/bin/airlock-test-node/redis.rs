//! Roles on the Redis queue.
//!
//! * `worker <redis-url> <name> [workers] [queue] [heartbeat-secs]
//!   [missed-heartbeats]`: runs supervised workers on the queue (default
//!   `airlock`) until killed; prints `ready` once connected.

use airlock::queue::RedisQueue;
use anyhow::Context;

pub(crate) async fn main(args: Vec<String>) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("worker") => {
            let url = args.get(1).context("worker: missing <redis-url>")?;
            let options = crate::worker_options(&args[2..])?;
            let queue = RedisQueue::connect(url)
                .await
                .map_err(|e| anyhow::anyhow!("connecting to {url}: {e}"))?;
            println!("ready");
            queue.monitor(options).run().await?;
            Ok(())
        }
        other => anyhow::bail!("redis: unknown role {other:?} (expected `worker`)"),
    }
}
