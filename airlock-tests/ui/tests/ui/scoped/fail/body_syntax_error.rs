// A syntax error in the body is reported once, by the compiler, where it is:
// the macro passes the body through unparsed and adds no error of its own.
#[airlock::scoped]
fn checkout(order_id: u64) -> airlock::Result<u64> {
    let total = order_id +;
    Ok(total)
}

fn main() {
    let _ = checkout(1);
}
