use airlock::{DropAll, Scope};
use airlock_tests::{record, runs, tag};

#[test]
fn flushes_on_ok() {
    let t = tag("smoke");
    let r: airlock::Result<()> = airlock::scope(|| {
        record::enqueue(t.clone(), 1)?;
        record::enqueue(t.clone(), 2)?;
        assert!(runs(&t).is_empty());
        Ok(())
    });
    r.unwrap();
    assert_eq!(runs(&t), ["record(1)", "record(2)"]);
    let r: airlock::Result<()> = Scope::new().policy(DropAll).run(|| {
        record::enqueue(t.clone(), 3)?;
        Ok(())
    });
    r.unwrap();
    assert_eq!(runs(&t).len(), 2);
    let c = airlock::testing::capture(|| record::enqueue(t.clone(), 9));
    println!("{:?} / {}", c.intents[0], c.intents[0]);
}
