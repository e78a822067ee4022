//! Request scopes for [tower](https://docs.rs/tower) services and axum
//! routers (feature `tower`).
//!
//! [`AirlockLayer`] runs every request in its own scope. The scope is entered
//! on every poll of the handler's future, so it is correct on tokio's
//! multi-thread runtime, where a request may move between threads at each
//! `.await`. When the response is ready its status decides:
//!
//! * `1xx`, `2xx`, `3xx`: the intents are flushed (dispatched before the
//!   response is handed on, so a queue has them before the client sees
//!   success). Once the response is a success the flush always finishes: if
//!   the response future is dropped meanwhile (the client went away, a
//!   timeout layer outside fired), the flush goes on as a tokio task;
//! * `4xx`, `5xx`, an error from the service, a panic in the handler (with or
//!   without `tower_http::catch_panic` outside this layer), or a request
//!   future dropped because the client went away: the intents are discarded.
//!
//! Override the rule with [`AirlockLayer::flush_when`] (a closure or a
//! [`FlushRule`]). Policy, executor and name come from the global
//! configuration unless given through [`AirlockLayer::with_scope`]. The
//! request's [`ScopeHandle`] is in its extensions (axum:
//! `Extension<airlock::ScopeHandle>`), and [`current()`](crate::current) works
//! anywhere inside the handler.
//!
//! A handler that opens a [transaction scope](crate::tx) inside the request
//! scope lets the transaction decide its own intents: co-commit keeps them
//! even if the client disconnects after the commit; a pure request scope
//! would discard them with the dropped request.
//!
//! ```
//! use airlock::tower::AirlockLayer;
//! use axum::{routing::post, Router};
//!
//! #[airlock::task]
//! fn send_confirmation_email(order_id: u64) {
//!     println!("email for order {order_id}");
//! }
//!
//! async fn checkout() -> Result<&'static str, axum::http::StatusCode> {
//!     send_confirmation_email::enqueue(42)
//!         .map_err(|_| axum::http::StatusCode::INTERNAL_SERVER_ERROR)?;
//!     Ok("ordered") // 200: the email is dispatched
//! }
//!
//! let app: Router = Router::new()
//!     .route("/checkout", post(checkout))
//!     .layer(AirlockLayer::new());
//! # let _ = app;
//! ```

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response, Uri};
use pin_project_lite::pin_project;

use crate::error::Error;
use crate::flush::must_finish::MustFinish;
use crate::flush::FlushReport;
use crate::scope::lifecycle::{Ending, Finish, Lifecycle};
use crate::scope::{ActiveScope, DiscardReason, Outcome, Scope, ScopeHandle};

/// What a [`FlushRule`] may look at of the request (captured before the
/// handler consumes it).
#[derive(Debug, Clone)]
pub struct RequestHead {
    /// The request method.
    pub method: Method,
    /// The request URI.
    pub uri: Uri,
}

/// Decides, from the request and the response head, whether a request's
/// intents are flushed (`true`) or discarded.
pub trait FlushRule: Send + Sync + 'static {
    /// Whether to flush for this response.
    fn should_flush(&self, request: &RequestHead, response: &http::response::Parts) -> bool;
}

/// The default rule: flush on `1xx`–`3xx`, discard on `4xx` and `5xx`.
#[derive(Debug, Clone, Copy, Default)]
pub struct StatusRule;

impl FlushRule for StatusRule {
    fn should_flush(&self, _request: &RequestHead, response: &http::response::Parts) -> bool {
        !(response.status.is_client_error() || response.status.is_server_error())
    }
}

impl<F> FlushRule for F
where
    F: Fn(&RequestHead, &http::response::Parts) -> bool + Send + Sync + 'static,
{
    fn should_flush(&self, request: &RequestHead, response: &http::response::Parts) -> bool {
        self(request, response)
    }
}

/// A tower [`Layer`](tower_layer::Layer) that gives every request its own
/// scope; see the [module docs](self).
#[derive(Clone)]
pub struct AirlockLayer {
    scope: Scope,
    rule: Arc<dyn FlushRule>,
}

impl fmt::Debug for AirlockLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AirlockLayer")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

impl Default for AirlockLayer {
    fn default() -> Self {
        AirlockLayer::new()
    }
}

impl AirlockLayer {
    /// Request scopes with every setting from the global configuration and
    /// the [`StatusRule`].
    pub fn new() -> Self {
        AirlockLayer::with_scope(Scope::new().name("request"))
    }

    /// Request scopes built from `scope` (its policies, executor, behaviour
    /// and name), started afresh for each request.
    pub fn with_scope(scope: Scope) -> Self {
        AirlockLayer {
            scope,
            rule: Arc::new(StatusRule),
        }
    }

    /// Replaces the flush rule: a [`FlushRule`] or a closure
    /// `|request: &RequestHead, response: &http::response::Parts| -> bool`.
    ///
    /// ```
    /// use airlock::tower::{AirlockLayer, FlushRule, RequestHead};
    /// use axum::http::{response::Parts, Method, Response, StatusCode};
    /// use axum::{routing::post, Router};
    ///
    /// // Also keep the intents of a `409 Conflict` (the order already exists).
    /// let rule = |_request: &RequestHead, response: &Parts| {
    ///     response.status == StatusCode::CONFLICT || response.status.is_success()
    /// };
    ///
    /// let request = RequestHead { method: Method::POST, uri: "/checkout".parse().unwrap() };
    /// let head = |status| Response::builder().status(status).body(()).unwrap().into_parts().0;
    /// assert!(rule.should_flush(&request, &head(StatusCode::CONFLICT)));
    /// assert!(!rule.should_flush(&request, &head(StatusCode::BAD_REQUEST)));
    ///
    /// let app: Router = Router::new()
    ///     .route("/checkout", post(|| async { StatusCode::CONFLICT }))
    ///     .layer(AirlockLayer::new().flush_when(rule));
    /// # let _ = app;
    /// ```
    pub fn flush_when(mut self, rule: impl FlushRule) -> Self {
        self.rule = Arc::new(rule);
        self
    }
}

impl<S> tower_layer::Layer<S> for AirlockLayer {
    type Service = AirlockService<S>;

    fn layer(&self, inner: S) -> AirlockService<S> {
        AirlockService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`AirlockLayer`] wraps around another.
#[derive(Clone, Debug)]
pub struct AirlockService<S> {
    inner: S,
    layer: AirlockLayer,
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for AirlockService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>>,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let scope = self.layer.scope.clone().start();
        let handle = scope.handle();
        let head = RequestHead {
            method: request.method().clone(),
            uri: request.uri().clone(),
        };
        request.extensions_mut().insert(handle.clone());
        let future = handle.in_scope(|| self.inner.call(request));
        let ending = ByResponse {
            head,
            rule: Arc::clone(&self.layer.rule),
            _response: PhantomData,
        };
        ResponseFuture {
            inner: Lifecycle::started(scope, future, ending),
            handle,
        }
    }
}

/// The ending of a request scope: the [`FlushRule`] tells a successful
/// response from a failed one, the scope's behaviour decides (by default:
/// flush on success), and a flush, once decided, always finishes
/// ([`MustFinish`]), even if nobody waits for the response any more.
struct ByResponse<ResBody> {
    head: RequestHead,
    rule: Arc<dyn FlushRule>,
    _response: PhantomData<fn() -> ResBody>,
}

impl<ResBody, E> Ending<Result<Response<ResBody>, E>> for ByResponse<ResBody> {
    type Kept = Result<Response<ResBody>, E>;
    type Output = Result<Response<ResBody>, E>;

    fn end(
        &mut self,
        scope: ActiveScope,
        output: Option<Self::Kept>,
    ) -> (Option<Self::Kept>, Option<Finish>) {
        let (outcome, output, refused) = match output {
            None => (Outcome::Panic, None, None),
            Some(Err(error)) => (Outcome::Error, Some(Err(error)), None),
            Some(Ok(response)) => {
                let (parts, body) = response.into_parts();
                let success = self.rule.should_flush(&self.head, &parts);
                let refused = (!success).then(|| format!("the response was {}", parts.status));
                let outcome = if success {
                    Outcome::Success
                } else {
                    Outcome::Error
                };
                (
                    outcome,
                    Some(Ok(Response::from_parts(parts, body))),
                    refused,
                )
            }
        };
        if scope.should_flush(outcome) {
            let flush = MustFinish::new(Box::pin(scope.flush_async()), "a request's flush");
            return (output, Some(Box::pin(flush)));
        }
        let reason = match refused {
            Some(status) => DiscardReason::Requested(status.into()),
            None => DiscardReason::from(outcome),
        };
        scope.discard_with(reason);
        (output, None)
    }

    fn complete(
        &mut self,
        output: Self::Kept,
        finished: Option<Result<FlushReport, Error>>,
    ) -> Self::Output {
        if let Some(Err(error)) = finished {
            // The response already exists (and any transaction committed):
            // report the lost dispatch loudly rather than fail the request.
            tracing::error!(target: "airlock::tower", %error, "flushing the request's intents failed");
        }
        output
    }

    fn cancel(scope: ActiveScope) {
        tracing::debug!(target: "airlock::tower", scope = %scope.info(), "request dropped before its response; intents discarded");
        scope.discard_with(DiscardReason::Cancelled);
    }
}

pin_project! {
    /// The response future of [`AirlockService`].
    pub struct ResponseFuture<F: Future, ResBody> {
        #[pin]
        inner: Lifecycle<F, ByResponse<ResBody>, F::Output>,
        handle: ScopeHandle,
    }
}

impl<F: Future, ResBody> fmt::Debug for ResponseFuture<F, ResBody> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("scope", self.handle.info())
            .field("state", &self.inner.stage())
            .finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F, ResBody>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = Result<Response<ResBody>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.project().inner.poll(cx)
    }
}
