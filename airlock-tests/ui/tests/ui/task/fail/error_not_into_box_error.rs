struct NotAnError;

#[airlock::task]
fn ship(order_id: u64) -> Result<(), NotAnError> {
    let _ = order_id;
    Ok(())
}

fn main() {}
