//! Request scopes over a real HTTP connection: an axum server bound on
//! 127.0.0.1 with `AirlockLayer`, driven by a reqwest client.
#![cfg(feature = "tower")]

use std::sync::Arc;
use std::time::Duration;

use airlock::tower::AirlockLayer;
use airlock::{DiscardReason, InProcess, Scope, ScopeHandle, ScopePhase};
use airlock_tests::{record, runs, tag, wait_for_open};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Extension, Router};
use tokio::sync::{mpsc, Barrier};

/// Serves `app` on a free loopback port; returns its base URL.
async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

/// A unique tag that is safe in a URL path (`tag` uses `#`).
fn url_tag(name: &str) -> String {
    tag(name).replace('#', "_")
}

fn layer() -> AirlockLayer {
    AirlockLayer::with_scope(Scope::new().name("request").executor(InProcess))
}

/// Enqueues `record(tag, 1)`, then answers with `status`.
async fn respond(Path((tag, status)): Path<(String, u16)>) -> StatusCode {
    record::enqueue(tag, 1).expect("the request scope is current");
    StatusCode::from_u16(status).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_response_status_decides_flush_or_discard() {
    let base = serve(
        Router::new()
            .route("/{tag}/{status}", get(respond))
            .layer(layer()),
    )
    .await;
    let client = reqwest::Client::new();
    for (status, flushed) in [
        (200, true),
        (201, true),
        (302, true),
        (404, false),
        (422, false),
        (500, false),
        (503, false),
    ] {
        let t = url_tag(&format!("status-{status}"));
        let response = client
            .get(format!("{base}/{t}/{status}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status);
        let expected: &[&str] = if flushed { &["record(1)"] } else { &[] };
        assert_eq!(runs(&t), expected, "status {status}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_custom_rule_can_flush_on_errors() {
    let app = Router::new()
        .route("/{tag}/{status}", get(respond))
        .layer(
            layer().flush_when(|request: &airlock::tower::RequestHead, response: &Parts2| {
                request.uri.path().contains("audit") || response.status.is_success()
            }),
        );
    let base = serve(app).await;
    let t = url_tag("audit");
    let response = reqwest::get(format!("{base}/{t}/500")).await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(runs(&t), ["record(1)"], "the rule flushed despite the 500");
}

type Parts2 = axum::http::response::Parts;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_handler_discards_behind_catch_panic() {
    async fn panics(Path(tag): Path<String>) -> StatusCode {
        record::enqueue(tag, 1).unwrap();
        panic!("the handler panicked");
    }
    let app = Router::new()
        .route("/{tag}", get(panics))
        .layer(layer())
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    let base = serve(app).await;
    let t = url_tag("panic");
    let response = reqwest::get(format!("{base}/{t}")).await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert!(
        runs(&t).is_empty(),
        "the panicking request's intent was discarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_handler_discards_without_catch_panic_too() {
    let (seen, mut scopes) = mpsc::unbounded_channel::<ScopeHandle>();
    let app = Router::new()
        .route(
            "/{tag}",
            get(
                |Path(tag): Path<String>,
                 Extension(scope): Extension<ScopeHandle>,
                 State(seen): State<mpsc::UnboundedSender<ScopeHandle>>| async move {
                    record::enqueue(tag, 1).unwrap();
                    seen.send(scope).unwrap();
                    if seen.is_closed() {
                        return StatusCode::OK; // never: keeps the handler's type
                    }
                    panic!("the handler panicked, and nothing catches it");
                },
            ),
        )
        .with_state(seen)
        .layer(layer());
    let base = serve(app).await;
    let t = url_tag("uncaught");
    // Without CatchPanicLayer the connection dies with the panicking task.
    assert!(reqwest::get(format!("{base}/{t}")).await.is_err());
    let scope = scopes.recv().await.expect("the handler ran");
    assert_eq!(scope.phase(), ScopePhase::Discarded);
    assert_eq!(scope.discard_reason(), Some(DiscardReason::Panic));
    assert!(runs(&t).is_empty());
}

/// A request scope follows its scope's behaviour on every outcome, a panic
/// included: an `AlwaysFlush` request scope (alerts, audit logs) flushes what
/// a panicking handler enqueued, as `#[scoped]` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_panicking_handler_under_always_flush_flushes() {
    async fn panics(Path(tag): Path<String>) -> StatusCode {
        record::enqueue(tag, 1).unwrap();
        panic!("the handler panicked");
    }
    let always = AirlockLayer::with_scope(
        Scope::new()
            .name("request")
            .executor(InProcess)
            .behavior(airlock::AlwaysFlush),
    );
    let app = Router::new()
        .route("/{tag}", get(panics))
        .layer(always)
        .layer(tower_http::catch_panic::CatchPanicLayer::new());
    let base = serve(app).await;
    let t = url_tag("always-panic");
    let response = reqwest::get(format!("{base}/{t}")).await.unwrap();
    assert_eq!(response.status().as_u16(), 500);
    assert_eq!(
        runs(&t),
        ["record(1)"],
        "AlwaysFlush flushed after the panic"
    );
}

/// Enqueues `record(tag, 2)` when dropped, keeping what `enqueue` said.
struct EnqueueOnDrop {
    tag: String,
    result: Arc<std::sync::Mutex<Option<airlock::Result<airlock::IntentId>>>>,
}

impl Drop for EnqueueOnDrop {
    fn drop(&mut self) {
        let result = record::enqueue(self.tag.clone(), 2);
        *self.result.lock().unwrap() = Some(result);
    }
}

/// A response future that is ready at once but holds `guard` until it is
/// dropped, as hand-written futures may.
struct ReadyHolding {
    guard: Option<EnqueueOnDrop>,
}

impl std::future::Future for ReadyHolding {
    type Output = Result<axum::http::Response<()>, std::convert::Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let _ = &self.guard;
        std::task::Poll::Ready(Ok(axum::http::Response::new(())))
    }
}

struct HoldingService {
    tag: String,
    result: Arc<std::sync::Mutex<Option<airlock::Result<airlock::IntentId>>>>,
}

impl tower_service::Service<axum::http::Request<()>> for HoldingService {
    type Response = axum::http::Response<()>;
    type Error = std::convert::Infallible;
    type Future = ReadyHolding;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: axum::http::Request<()>) -> ReadyHolding {
        record::enqueue(self.tag.clone(), 1).unwrap();
        ReadyHolding {
            guard: Some(EnqueueOnDrop {
                tag: self.tag.clone(),
                result: Arc::clone(&self.result),
            }),
        }
    }
}

/// The inner service's future is dropped as soon as it is ready, with the
/// request scope current: what its destructor enqueues goes to the request
/// scope and shares its fate, instead of failing for want of a scope after
/// the response left.
#[tokio::test]
async fn the_inner_future_is_dropped_inside_the_request_scope() {
    use tower_layer::Layer;
    use tower_service::Service;
    let t = tag("drop-inside");
    let result = Arc::new(std::sync::Mutex::new(None));
    let mut service = layer().layer(HoldingService {
        tag: t.clone(),
        result: Arc::clone(&result),
    });
    let response = service.call(axum::http::Request::new(())).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let enqueued = result
        .lock()
        .unwrap()
        .take()
        .expect("the future was dropped");
    assert!(enqueued.is_ok(), "{enqueued:?}");
    assert_eq!(runs(&t), ["record(1)", "record(2)"]);
}

/// An extractor that enqueues, then rejects the request with a 500.
struct Audited;

impl<S: Send + Sync> FromRequestParts<S> for Audited {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, StatusCode> {
        let t = parts.uri.path().trim_start_matches('/').to_owned();
        record::enqueue(t, 2).map_err(|_| StatusCode::BAD_GATEWAY)?;
        Err(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_500_from_an_extractor_rejection_discards() {
    async fn never(_: Audited) -> StatusCode {
        StatusCode::OK
    }
    let base = serve(Router::new().route("/{tag}", get(never)).layer(layer())).await;
    let t = url_tag("rejected");
    let response = reqwest::get(format!("{base}/{t}")).await.unwrap();
    assert_eq!(
        response.status().as_u16(),
        500,
        "the extractor ran inside the scope and rejected"
    );
    assert!(runs(&t).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_goes_away_discards_the_request_intents() {
    let (seen, mut scopes) = mpsc::unbounded_channel::<ScopeHandle>();
    let app = Router::new()
        .route(
            "/{tag}",
            get(
                |Path(tag): Path<String>,
                 Extension(scope): Extension<ScopeHandle>,
                 State(seen): State<mpsc::UnboundedSender<ScopeHandle>>| async move {
                    record::enqueue(tag, 1).unwrap();
                    seen.send(scope).unwrap();
                    // Slower than the client is willing to wait.
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                    StatusCode::OK
                },
            ),
        )
        .with_state(seen)
        .layer(layer());
    let base = serve(app).await;
    let t = url_tag("disconnect");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client.get(format!("{base}/{t}")).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let scope = scopes.recv().await.expect("the handler ran");
    // hyper drops the request future once it notices the closed connection.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while scope.phase() == ScopePhase::Open && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(scope.phase(), ScopePhase::Discarded);
    assert_eq!(scope.discard_reason(), Some(DiscardReason::Cancelled));
    assert!(runs(&t).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_goes_away_during_the_flush_of_a_success_loses_nothing() {
    // The handler returned 200, so its intents must be dispatched; the
    // client gives up while the flush is still running the task.
    let (seen, mut scopes) = mpsc::unbounded_channel::<ScopeHandle>();
    let app = Router::new()
        .route(
            "/{tag}",
            get(
                |Path(tag): Path<String>,
                 Extension(scope): Extension<ScopeHandle>,
                 State(seen): State<mpsc::UnboundedSender<ScopeHandle>>| async move {
                    wait_for_open::enqueue(tag).unwrap();
                    seen.send(scope).unwrap();
                    StatusCode::OK
                },
            ),
        )
        .with_state(seen)
        .layer(layer());
    let base = serve(app).await;
    let t = url_tag("gone-mid-flush");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let error = client.get(format!("{base}/{t}")).send().await.unwrap_err();
    assert!(error.is_timeout(), "{error}");
    let scope = scopes.recv().await.expect("the handler ran");
    assert_eq!(runs(&t), ["started"], "the flush was under way");
    // Let hyper notice the closed connection and drop the response future
    // before the task may finish.
    tokio::time::sleep(Duration::from_millis(200)).await;
    airlock_tests::record_run(&t, "open");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while scope.phase() != ScopePhase::Flushed && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(runs(&t), ["started", "open", "finished"]);
    assert_eq!(scope.phase(), ScopePhase::Flushed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_concurrent_requests_never_see_each_others_intents() {
    const N: usize = 1000;
    let barrier = Arc::new(Barrier::new(N));
    let app = Router::new()
        .route(
            "/{tag}/{i}",
            get(
                |Path((tag, i)): Path<(String, u64)>,
                 State(barrier): State<Arc<Barrier>>| async move {
                    record::enqueue(tag, i).unwrap();
                    // Every request is in flight at once here, on any worker thread.
                    barrier.wait().await;
                    tokio::task::yield_now().await;
                    let scope = airlock::current().expect("the request scope is current");
                    let mine: Vec<u64> = scope
                        .intents()
                        .own()
                        .map(|intent| intent.args::<record>().expect("record args").value)
                        .collect();
                    if mine == [i] {
                        StatusCode::OK
                    } else {
                        StatusCode::CONFLICT
                    }
                },
            ),
        )
        .with_state(barrier)
        .layer(layer());
    let base = serve(app).await;
    let t = url_tag("concurrent");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let requests: Vec<_> = (0..N)
        .map(|i| {
            let request = client.get(format!("{base}/{t}/{i}"));
            tokio::spawn(async move { request.send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), 200);
    }
    assert_eq!(
        runs(&t).len(),
        N,
        "every request flushed its own intent once"
    );
}
