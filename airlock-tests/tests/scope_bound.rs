//! `Config::max_intents_per_scope` on every enqueue lane. A test binary of
//! its own: it changes the process-wide configuration.

use airlock::{BlockTasks, Config, Error, Scope};
use airlock_tests::{cascade, record, runs, tag};

fn is_full(result: &airlock::Result<airlock::IntentId>) -> bool {
    matches!(result, Err(Error::ScopeFull { limit: 4, .. }))
}

#[test]
fn a_full_scope_refuses_more_on_every_lane_and_keeps_what_it_holds() {
    airlock::configure(Config::new().max_intents_per_scope(4)).unwrap();

    // The owner's lane, then a handle on another thread.
    let t = tag("bound-owner");
    Scope::new()
        .run(|| -> airlock::Result<()> {
            for value in 0..3 {
                record::enqueue(t.clone(), value)?;
            }
            let handle = airlock::current().unwrap();
            let t2 = t.clone();
            std::thread::spawn(move || {
                handle.in_scope(|| {
                    record::enqueue(t2.clone(), 3).unwrap();
                    let refused = record::enqueue(t2, 4);
                    assert!(is_full(&refused), "{refused:?}");
                })
            })
            .join()
            .unwrap();
            let refused = record::enqueue(t.clone(), 5);
            assert!(is_full(&refused), "{refused:?}");
            let message = refused.unwrap_err().to_string();
            assert!(message.contains("max_intents_per_scope"), "{message}");
            Ok(())
        })
        .unwrap();
    assert_eq!(
        runs(&t).len(),
        4,
        "what it held was flushed: {:?}",
        runs(&t)
    );

    // The checked lane (a policy that looks at every enqueue).
    let t = tag("bound-checked");
    Scope::new()
        .policy(BlockTasks::of(&[cascade::TASK]).reject_at_enqueue())
        .run(|| -> airlock::Result<()> {
            for value in 0..4 {
                record::enqueue(t.clone(), value)?;
            }
            let refused = record::enqueue(t.clone(), 4);
            assert!(is_full(&refused), "{refused:?}");
            Ok(())
        })
        .unwrap();
    assert_eq!(runs(&t).len(), 4);

    // Captured intents count: a nested scope's four fill its parent.
    let t = tag("bound-captured");
    Scope::new()
        .run(|| -> airlock::Result<()> {
            Scope::new().run(|| -> airlock::Result<()> {
                for value in 0..4 {
                    record::enqueue(t.clone(), value)?;
                }
                Ok(())
            })?;
            let refused = record::enqueue(t.clone(), 4);
            assert!(is_full(&refused), "{refused:?}");
            Ok(())
        })
        .unwrap();
    assert_eq!(runs(&t).len(), 4);

    // A loop opening a nested scope per iteration fills the enclosing scope
    // one capture at a time, and hits the bound inside the nested scope.
    let t = tag("bound-loop");
    let mut refusals = 0;
    Scope::new()
        .run(|| -> airlock::Result<()> {
            for value in 0..10 {
                let nested = Scope::new().run(|| record::enqueue(t.clone(), value).map(drop));
                if let Err(Error::ScopeFull { .. }) = nested {
                    refusals += 1;
                }
            }
            Ok(())
        })
        .unwrap();
    assert_eq!(runs(&t).len(), 4, "{:?}", runs(&t));
    assert_eq!(refusals, 6);

    airlock::reset_configuration();
}
