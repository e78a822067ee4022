// Every error type that converts into `Box<dyn Error + Send + Sync>` is accepted,
// and a task's `Err` is reported as a dispatch failure carrying that error.
#[derive(Debug, thiserror::Error)]
#[error("out of stock: {0}")]
struct OutOfStock(String);

#[airlock::task]
fn std_error(fail: bool) -> Result<(), std::io::Error> {
    if fail {
        return Err(std::io::Error::other("disk full"));
    }
    Ok(())
}

#[airlock::task]
fn anyhow_error(fail: bool) -> anyhow::Result<()> {
    anyhow::ensure!(!fail, "anyhow says no");
    Ok(())
}

#[airlock::task]
fn string_error(fail: bool) -> Result<(), String> {
    if fail {
        return Err("a string says no".to_owned());
    }
    Ok(())
}

#[airlock::task]
fn static_str_error(fail: bool) -> Result<(), &'static str> {
    if fail {
        return Err("a static str says no");
    }
    Ok(())
}

#[airlock::task]
fn thiserror_error(fail: bool) -> Result<u32, OutOfStock> {
    if fail {
        return Err(OutOfStock("sku-1".to_owned()));
    }
    Ok(3)
}

#[airlock::task]
fn boxed_error(fail: bool) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    if fail {
        return Err("boxed says no".into());
    }
    Ok(String::new())
}

#[airlock::task]
fn airlock_error(fail: bool) -> airlock::Result<()> {
    if fail {
        // An error from airlock itself, met through `?`: no task has this name.
        airlock::registry().get("airlock.says.no")?;
    }
    Ok(())
}

fn flush_error(enqueue: impl FnOnce() -> airlock::Result<airlock::IntentId>) -> String {
    let result: airlock::Result<()> = airlock::scope(|| {
        enqueue()?;
        Ok(())
    });
    match result {
        Ok(()) => "ok".to_owned(),
        Err(airlock::Error::Dispatch(failure)) => {
            let source = std::error::Error::source(&*failure).expect("the task's error");
            source.to_string()
        }
        Err(other) => panic!("unexpected error: {other}"),
    }
}

fn main() {
    assert_eq!(flush_error(|| std_error::enqueue(false)), "ok");
    assert_eq!(flush_error(|| std_error::enqueue(true)), "disk full");
    assert_eq!(flush_error(|| anyhow_error::enqueue(false)), "ok");
    assert_eq!(flush_error(|| anyhow_error::enqueue(true)), "anyhow says no");
    assert_eq!(flush_error(|| string_error::enqueue(false)), "ok");
    assert_eq!(flush_error(|| string_error::enqueue(true)), "a string says no");
    assert_eq!(flush_error(|| static_str_error::enqueue(true)), "a static str says no");
    assert_eq!(flush_error(|| thiserror_error::enqueue(false)), "ok");
    assert_eq!(flush_error(|| thiserror_error::enqueue(true)), "out of stock: sku-1");
    assert_eq!(flush_error(|| boxed_error::enqueue(true)), "boxed says no");
    assert_eq!(flush_error(|| airlock_error::enqueue(false)), "ok");
    assert!(flush_error(|| airlock_error::enqueue(true)).contains("`airlock.says.no`"));
}
