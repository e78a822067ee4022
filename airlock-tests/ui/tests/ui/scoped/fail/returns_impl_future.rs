use std::future::Future;

#[airlock::scoped]
fn checkout() -> impl Future<Output = airlock::Result<()>> {
    async { Ok(()) }
}

fn main() {}
