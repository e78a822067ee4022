//! The cost of `AirlockLayer` on a trivial axum handler: requests per second
//! with and without the layer, in the same run, under load from a separate
//! process (`wrk`, from the Debian package) over loopback.
//!
//! Run: `cargo bench -p airlock --features tower --bench tower_layer`
//!
//! * `plain`: `GET /` answers 200, no layer;
//! * `airlock layer`: the same handler behind `AirlockLayer` (a scope per
//!   request, flushed on the 200);
//! * `airlock layer + enqueue`: the handler also enqueues one intent, which
//!   the in-process executor runs after the response is built.

#![allow(missing_docs)]

use std::process::Command;

use airlock::tower::AirlockLayer;
use airlock::{InProcess, Scope};
use axum::routing::get;
use axum::Router;

#[airlock::task]
fn noop(value: u64) {
    std::hint::black_box(value);
}

async fn plain() -> &'static str {
    "ok"
}

async fn enqueueing() -> &'static str {
    noop::enqueue(1).expect("inside the request scope");
    "ok"
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test --benches`: nothing to time
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        println!(
            "tower_layer: `wrk` not found; install it (apt-get install wrk) to run this benchmark"
        );
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let layer = || AirlockLayer::with_scope(Scope::new().executor(InProcess));
    let apps = [
        ("plain", Router::new().route("/", get(plain))),
        (
            "airlock layer",
            Router::new().route("/", get(plain)).layer(layer()),
        ),
        (
            "airlock layer + enqueue",
            Router::new().route("/", get(enqueueing)).layer(layer()),
        ),
    ];
    let seconds = std::env::var("AIRLOCK_BENCH_SECONDS").unwrap_or_else(|_| "5".into());
    println!("wrk -t1 -c32 -d{seconds}s per row; server: 1 tokio worker thread");
    for round in 1..=3 {
        // Each round compares against its own plain row: the load generator
        // shares the machine, so rounds drift.
        let mut baseline = None;
        println!("round {round}");
        for (label, app) in &apps {
            let listener = runtime
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind");
            let url = format!("http://{}/", listener.local_addr().expect("address"));
            let app = app.clone();
            let server = runtime.spawn(async move { axum::serve(listener, app).await });
            let output = Command::new("wrk")
                .args(["-t1", "-c32", &format!("-d{seconds}s"), &url])
                .output()
                .expect("wrk runs");
            server.abort();
            let text = String::from_utf8_lossy(&output.stdout);
            let rps: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("Requests/sec:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(f64::NAN);
            let base = *baseline.get_or_insert(rps);
            println!(
                "  {label:<26} {rps:>10.0} req/s  {:>6.1}% of plain  (+{:.2} µs/request)",
                100.0 * rps / base,
                1e6 / rps - 1e6 / base
            );
        }
    }
}
