//! The checkout service, end to end: an axum app on SQLite where every
//! request is an airlock scope, orders and their jobs co-commit into the
//! embedded apalis queue, and a worker in the same process runs the jobs.
//!
//! ```text
//! cargo run -p airlock-examples --example checkout            # scripted demo, then exit
//! cargo run -p airlock-examples --example checkout -- --serve # keep serving on 127.0.0.1:3000
//! ```
//!
//! With `--serve`, try:
//! `curl -s localhost:3000/orders -H 'content-type: application/json' -d '{"customer":"ada","skus":["mug"]}'`

use std::time::Duration;

use airlock::{Config, Settings};
use airlock_examples::checkout;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let serve = std::env::args().any(|a| a == "--serve");
    let config = Config::from_env()?;
    airlock::configure(config.clone())?;

    // A throwaway database file for the demo; a real service keeps its own.
    let path = std::env::temp_dir().join(format!("airlock-checkout-{}.db", std::process::id()));
    let queue = checkout::open(&format!("sqlite://{}?mode=rwc", path.display())).await?;
    let workers = tokio::spawn(checkout::workers(&queue).run());

    let address = if serve {
        "127.0.0.1:3000"
    } else {
        "127.0.0.1:0"
    };
    let listener = tokio::net::TcpListener::bind(address).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move {
        axum::serve(listener, checkout::app(queue.clone())).await?;
        Ok::<_, std::io::Error>(queue)
    });

    if serve {
        println!("checkout service on {base} (ctrl-c to stop)");
        tokio::signal::ctrl_c().await?;
    } else {
        println!("checkout service on {base}; running the scripted demo over HTTP");
        checkout::demo(&base, |blocked| {
            let mut settings = Settings::default();
            settings.block_tasks = blocked.map(|t| vec![t.to_owned()]).unwrap_or_default();
            airlock::configure(config.clone().with_settings(&settings)?)?;
            Ok(())
        })
        .await?;
        println!("\nthe worker drains the queue:");
        let queue = checkout::open(&format!("sqlite://{}", path.display())).await?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while checkout::unfinished_jobs(&queue).await? > 0 && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let left = checkout::unfinished_jobs(&queue).await?;
        println!("    jobs left: {left}");
        anyhow::ensure!(left == 0, "the worker did not drain the queue");
    }
    server.abort();
    workers.abort();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
