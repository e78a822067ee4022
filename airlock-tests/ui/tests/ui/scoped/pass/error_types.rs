// Every E: From<airlock::Error> is accepted: airlock::Error, anyhow, boxed errors,
// thiserror enums with `#[from]`. A flush failure becomes Err(E::from(..)).
#[airlock::task]
fn fails() -> Result<(), String> {
    Err("task failed".into())
}

#[derive(Debug, thiserror::Error)]
enum AppError {
    #[error("not found")]
    NotFound,
    #[error(transparent)]
    Airlock(#[from] airlock::Error),
}

#[airlock::scoped]
fn with_thiserror(found: bool) -> Result<(), AppError> {
    if !found {
        Err(AppError::NotFound)?;
    }
    fails::enqueue()?;
    Ok(())
}

#[airlock::scoped]
fn with_anyhow() -> anyhow::Result<()> {
    fails::enqueue()?;
    Ok(())
}

#[airlock::scoped]
fn with_box() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    fails::enqueue()?;
    Ok(())
}

#[airlock::scoped]
fn with_airlock() -> airlock::Result<()> {
    fails::enqueue()?;
    Ok(())
}

fn main() {
    assert!(matches!(with_thiserror(false), Err(AppError::NotFound)));
    assert!(matches!(with_thiserror(true), Err(AppError::Airlock(airlock::Error::Dispatch(_)))));
    assert!(with_anyhow().unwrap_err().downcast_ref::<airlock::Error>().is_some());
    assert!(with_box().unwrap_err().downcast_ref::<airlock::Error>().is_some());
    assert!(matches!(with_airlock(), Err(airlock::Error::Dispatch(_))));
}
