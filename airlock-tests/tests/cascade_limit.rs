//! A runaway cascade under the largest configurable depth ends in an error,
//! never in a stack overflow (which aborts the process). A test binary of
//! its own: it changes the process-wide configuration.

use airlock::{Config, MAX_CASCADE_DEPTH};
use airlock_tests::{runs, self_loop, tag};

#[test]
fn a_runaway_cascade_at_the_largest_depth_fails_instead_of_overflowing_a_2_mib_stack() {
    // Clamped: asking for more than the stack can hold gives the maximum.
    airlock::configure(Config::new().max_cascade_depth(u32::MAX)).unwrap();
    let config = format!("{:?}", airlock::configuration());
    assert!(
        config.contains(&format!("max_cascade_depth: {MAX_CASCADE_DEPTH},")),
        "{config}"
    );
    let t = tag("runaway");
    let t2 = t.clone();
    // tokio's worker and blocking threads have 2 MiB stacks, as here.
    let result = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || airlock::scope(|| self_loop::enqueue(t2).map(drop)))
        .unwrap()
        .join()
        .expect("the thread ends without overflowing its stack");
    let error = result.expect_err("the cascade hits the limit").to_string();
    assert!(
        error.contains(&format!("(limit {MAX_CASCADE_DEPTH})")),
        "{}",
        &error[error.len().saturating_sub(300)..]
    );
    assert_eq!(
        runs(&t).len(),
        MAX_CASCADE_DEPTH as usize,
        "one run per level"
    );

    // The async path nests futures: each level is polled inside the one above.
    let t = tag("runaway-async");
    let t2 = t.clone();
    let result = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
                .block_on(airlock::scope_async(async move {
                    self_loop_async::enqueue(t2).map(drop)
                }))
        })
        .unwrap()
        .join()
        .expect("the thread ends without overflowing its stack");
    assert!(result.is_err(), "the async cascade hits the limit too");
    assert_eq!(runs(&t).len(), MAX_CASCADE_DEPTH as usize);
    airlock::reset_configuration();
}

/// Records, then enqueues itself again, asynchronously: a runaway cascade
/// whose levels are nested futures.
#[airlock::task]
async fn self_loop_async(tag: String) -> airlock::Result<()> {
    airlock_tests::record_run(&tag, "self_loop_async");
    airlock_tests::yield_once().await;
    self_loop_async::enqueue(tag)?;
    Ok(())
}
