//! Async scopes are `Send` and lazy: the future of a `#[scoped] async fn`, of
//! `scope_async`, `Scope::run_async` (`ScopedFuture`), `ScopeHandle::bind`
//! (`Bound`) and `with_policy_async` can be spawned on a multi-threaded
//! runtime, and calling a `#[scoped] async fn` does nothing until it is polled.

use std::future::Future;
use std::pin::pin;
use std::task::Poll;

use airlock::Bound;
use airlock::{DropAll, Scope, ScopedFuture};
use airlock_tests::{failed, record, record_async, record_run, runs, tag, yield_once, AppError};

fn assert_send<T: Send>(_: &T) {}

/// Type-level form of `assert_send`, for the named future types.
fn assert_send_type<T: Send>() {}

/// Enqueues across several suspension points; everything held across them is `Send`.
#[airlock::scoped]
async fn checkout(tag: String, n: u64) -> Result<u64, AppError> {
    record::enqueue(tag.clone(), n)?;
    yield_once().await;
    tokio::task::yield_now().await;
    // The scope travels with the future, whichever worker polls it now.
    let scope = airlock::current().ok_or_else(|| failed("scope lost across .await"))?;
    if scope.info().name.as_deref() != Some("checkout") {
        return Err(failed(format!("wrong scope: {}", scope.info())));
    }
    record_async::enqueue(tag, n + 1)?;
    yield_once().await;
    Ok(n)
}

#[airlock::scoped]
async fn lazy(tag: String) -> airlock::Result<()> {
    record_run(&tag, "body");
    record::enqueue(tag.clone(), 1)?;
    yield_once().await;
    record_run(&tag, "body-end");
    Ok(())
}

#[test]
fn named_future_types_are_send() {
    type Body = std::future::Ready<airlock::Result<()>>;
    assert_send_type::<ScopedFuture<Body>>();
    assert_send_type::<Bound<Body>>();
    assert_send_type::<airlock::policy::WithPolicy<Body>>();
    assert_send_type::<airlock::ScopeHandle>();
    assert_send_type::<airlock::Intent>();
    assert_send(&airlock::testing::capture_async(std::future::ready(())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scoped_async_fn_future_is_send_and_runs_on_a_multi_thread_runtime() {
    let tags: Vec<String> = (0..16).map(|_| tag("send-checkout")).collect();
    let mut handles = Vec::new();
    for (i, t) in tags.iter().enumerate() {
        let future = checkout(t.clone(), 10 * i as u64);
        assert_send(&future);
        handles.push(tokio::spawn(future));
    }
    for (i, handle) in handles.into_iter().enumerate() {
        assert_eq!(handle.await.unwrap().unwrap(), 10 * i as u64);
    }
    for (i, t) in tags.iter().enumerate() {
        let n = 10 * i as u64;
        assert_eq!(
            runs(t),
            [format!("record({n})"), format!("record_async({})", n + 1)],
            "{t}"
        );
    }
    // No scope leaked into the runtime's threads.
    let leaked = tokio::spawn(async { airlock::current().is_some() })
        .await
        .unwrap();
    assert!(!leaked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scope_async_and_run_async_futures_are_send() {
    let t = tag("send-scope-async");
    let t2 = t.clone();
    let future = airlock::scope_async(async move {
        record::enqueue(t2.clone(), 1)?;
        yield_once().await;
        record_async::enqueue(t2, 2)?;
        Ok::<_, airlock::Error>(())
    });
    assert_send(&future);
    tokio::spawn(future).await.unwrap().unwrap();
    assert_eq!(runs(&t), ["record(1)", "record_async(2)"]);

    let t = tag("send-run-async");
    let t2 = t.clone();
    let future: ScopedFuture<_> = Scope::new()
        .name("dry")
        .policy(DropAll)
        .run_async(async move {
            record::enqueue(t2, 3)?;
            yield_once().await;
            Ok::<_, anyhow::Error>("done")
        });
    assert_send(&future);
    assert_eq!(tokio::spawn(future).await.unwrap().unwrap(), "done");
    assert!(runs(&t).is_empty(), "DropAll dropped it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bound_future_is_send_and_enqueues_into_its_scope() {
    let t = tag("send-bound");
    let active = Scope::new().name("bound").start();
    let t2 = t.clone();
    let bound: Bound<_> = active.handle().bind(async move {
        yield_once().await;
        record::enqueue(t2.clone(), 5)?;
        yield_once().await;
        record_async::enqueue(t2, 6)?;
        Ok::<_, airlock::Error>(())
    });
    assert_send(&bound);
    tokio::spawn(bound).await.unwrap().unwrap();
    assert!(runs(&t).is_empty(), "buffered in the bound scope");
    assert_eq!(active.intents().names(), ["record", "record_async"]);
    active.flush_async().await.unwrap();
    assert_eq!(runs(&t), ["record(5)", "record_async(6)"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_policy_async_future_is_send() {
    let t = tag("send-with-policy");
    let t2 = t.clone();
    let future = airlock::scope_async(async move {
        let blocked = airlock::with_policy_async(DropAll, async {
            yield_once().await;
            record::enqueue(t2.clone(), 7)
        });
        assert_send(&blocked);
        blocked.await?;
        record::enqueue(t2, 8)?;
        Ok::<_, airlock::Error>(())
    });
    assert_send(&future);
    tokio::spawn(future).await.unwrap().unwrap();
    assert_eq!(
        runs(&t),
        ["record(8)"],
        "the local DropAll dropped record(7) only"
    );
}

#[tokio::test]
async fn calling_a_scoped_async_fn_does_nothing_until_polled() {
    // Created and dropped without a poll: the body never runs.
    let t = tag("lazy-dropped");
    drop(lazy(t.clone()));
    assert!(runs(&t).is_empty());

    let t = tag("lazy");
    let captured = airlock::testing::capture_async(async {
        let future = lazy(t.clone());
        assert!(runs(&t).is_empty(), "calling the fn did not run its body");
        let parent = airlock::current().expect("the capturing scope");
        assert!(
            parent.intents().is_empty(),
            "nothing enqueued before the first poll"
        );

        // First poll: the body runs up to its first suspension.
        let mut future = pin!(future);
        let first = std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await;
        assert!(first.is_pending());
        assert_eq!(
            runs(&t),
            ["body"],
            "the body started, its task is still buffered"
        );
        assert!(
            parent.intents().is_empty(),
            "the nested scope has not handed anything up yet"
        );

        future.await
    })
    .await;
    captured.value.as_ref().unwrap();
    // The nested scope flushed into the capturing scope, which dispatches nothing.
    captured.assert_names(&["record"]);
    assert_eq!(runs(&t), ["body", "body-end"]);
}
