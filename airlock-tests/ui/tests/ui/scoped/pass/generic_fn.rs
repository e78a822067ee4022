// Generic #[scoped] fns (type params, where clauses, lifetimes, impl Trait args).
use std::fmt::Display;

#[airlock::task]
fn log(line: String) {
    let _ = line;
}

#[airlock::scoped]
fn log_all<T: Display>(items: &[T]) -> airlock::Result<usize> {
    for item in items {
        log::enqueue(item.to_string())?;
    }
    Ok(items.len())
}

#[airlock::scoped]
fn first<'a, T>(items: &'a [T]) -> airlock::Result<Option<&'a T>>
where
    T: PartialEq,
{
    Ok(items.first())
}

#[airlock::scoped]
async fn log_async<T, E>(value: T, err: Option<E>) -> Result<String, E>
where
    T: Display + Send,
    E: From<airlock::Error>,
{
    if let Some(e) = err {
        return Err(e);
    }
    log::enqueue(value.to_string())?;
    Ok(value.to_string())
}

#[airlock::scoped]
fn with_impl_arg(value: impl Into<String>) -> airlock::Result<String> {
    Ok(value.into())
}

fn main() {
    let captured = airlock::testing::capture(|| log_all(&[1, 2, 3]));
    assert_eq!(*captured.value.as_ref().unwrap(), 3);
    // A nested scope hands its intents up to the capturing scope.
    assert_eq!(captured.names(), ["log", "log", "log"]);
    let lines: Vec<&str> = captured.args::<log>().iter().map(|a| a.line.as_str()).collect();
    assert_eq!(lines, ["1", "2", "3"]);

    assert_eq!(first(&["a", "b"]).unwrap(), Some(&"a"));
    assert_eq!(with_impl_arg("x").unwrap(), "x");

    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(rt.block_on(log_async::<_, airlock::Error>(5, None)).unwrap(), "5");
    let err = rt.block_on(log_async(5, Some(anyhow::anyhow!("no")))).unwrap_err();
    assert_eq!(err.to_string(), "no");
}
