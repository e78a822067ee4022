//! The checkout example end to end: a real server on 127.0.0.1, the scripted
//! demo over HTTP, and the in-process worker draining what was co-committed.

use std::time::Duration;

use airlock::{Config, Settings};
use airlock_examples::checkout;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scripted_demo_queues_drops_and_runs_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("shop.db").display());
    let queue = checkout::open(&url).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = checkout::app(queue.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let steps = checkout::demo(&base, |blocked| {
        let mut settings = Settings::default();
        settings.block_tasks = blocked.map(|t| vec![t.to_owned()]).unwrap_or_default();
        airlock::configure(Config::new().with_settings(&settings)?)?;
        Ok(())
    })
    .await
    .unwrap();

    let summary: Vec<(u16, Vec<String>, Vec<String>)> = steps
        .iter()
        .map(|s| {
            let placed = s.placed.clone();
            (
                s.status,
                placed
                    .as_ref()
                    .map(|p| p.queued.clone())
                    .unwrap_or_default(),
                placed.map(|p| p.dropped).unwrap_or_default(),
            )
        })
        .collect();
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        summary,
        [
            (
                200,
                names(&["send_confirmation_email", "warehouse.notify"]),
                names(&[])
            ),
            (422, names(&[]), names(&[])),
            (
                200,
                names(&[]),
                names(&["send_confirmation_email", "warehouse.notify"])
            ),
            (
                200,
                names(&["warehouse.notify"]),
                names(&["send_confirmation_email"])
            ),
        ]
    );

    let count = |sql: &'static str| {
        let pool = queue.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        count("SELECT COUNT(*) FROM orders").await,
        3,
        "the failed order rolled back"
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM Jobs").await,
        3,
        "only the committed jobs exist"
    );

    let workers = tokio::spawn(checkout::workers(&queue).run());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while checkout::unfinished_jobs(&queue).await.unwrap() > 0
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    workers.abort();
    assert_eq!(
        count("SELECT COUNT(*) FROM Jobs WHERE status = 'Done'").await,
        3
    );
}
