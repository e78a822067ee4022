//! `Config::forbid_in_process`: a server that forbids in-process dispatch
//! never runs an intent inside a request by accident; the flush fails with
//! a typed source and hands every intent back. Its own test binary: it
//! changes the process-wide configuration.
#![cfg(feature = "tower")]

use std::sync::{Arc, Mutex};

use airlock::executor::{DispatchError, Executor, InProcessForbidden};
use airlock::tower::AirlockLayer;
use airlock::{Config, Error, Intent, Scope};
use airlock_tests::{record, runs, tag};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;

/// An executor that only records what it was given (a queue stands here).
#[derive(Debug, Default, Clone)]
struct Recording(Arc<Mutex<Vec<String>>>);

impl Executor for Recording {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        let mut seen = self.0.lock().unwrap();
        seen.extend(intents.iter().map(ToString::to_string));
        Ok(())
    }
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

async fn handler(Path(tag): Path<String>) -> StatusCode {
    record::enqueue(tag, 1).expect("the request scope is current");
    StatusCode::OK
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_forbids_in_process_dispatch_runs_nothing_inline() {
    airlock::configure(Config::new().forbid_in_process()).unwrap();

    // A plain scope on the default executor: refused, nothing run, the
    // intent handed back.
    let t = tag("forbid-plain");
    let result: airlock::Result<()> = airlock::scope(|| record::enqueue(t.clone(), 1).map(drop));
    let Err(Error::Dispatch(failure)) = result else {
        panic!("the flush is refused: {result:?}");
    };
    assert!(
        failure.source.is::<InProcessForbidden>(),
        "{}",
        failure.source
    );
    assert!(
        failure.to_string().contains("forbid_in_process"),
        "{failure}"
    );
    assert_eq!(failure.not_attempted.len(), 1, "handed back, not lost");
    assert!(runs(&t).is_empty());

    // A request scope left on the default executor, over real HTTP: the
    // response is served, the intent is not run inside the request.
    let base = serve(
        Router::new()
            .route("/default/{tag}", get(handler))
            .layer(AirlockLayer::new()),
    )
    .await;
    let t = tag("forbid-request").replace('#', "_");
    let response = reqwest::get(format!("{base}/default/{t}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(runs(&t).is_empty(), "nothing ran inside the request");

    // The same request scope pointed at a queue-like executor: dispatched there.
    let queue = Recording::default();
    let base = serve(Router::new().route("/queued/{tag}", get(handler)).layer(
        AirlockLayer::with_scope(Scope::new().name("request").executor(queue.clone())),
    ))
    .await;
    let t = tag("forbid-queued").replace('#', "_");
    let response = reqwest::get(format!("{base}/queued/{t}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(*queue.0.lock().unwrap(), [format!("record({t:?}, 1)")]);
    assert!(runs(&t).is_empty(), "the queue, not the request, runs it");

    airlock::reset_configuration();
}
