// A scoped async fn whose body holds a non-Send value across an await is not Send.
use std::rc::Rc;

#[airlock::scoped]
async fn checkout() -> airlock::Result<()> {
    let shared = Rc::new(1);
    std::future::ready(()).await;
    let _ = shared;
    Ok(())
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    assert_send(&checkout());
}
