// A sync #[scoped] fn: flushes on Ok, discards on Err (early `return` and `?` included).
use std::sync::atomic::{AtomicU64, Ordering};

static SHIPPED: AtomicU64 = AtomicU64::new(0);

#[airlock::task]
fn ship(order_id: u64) {
    SHIPPED.fetch_add(order_id, Ordering::SeqCst);
}

#[derive(Debug)]
struct Invalid;

fn validate(order_id: u64) -> Result<u64, Invalid> {
    if order_id == 0 { Err(Invalid) } else { Ok(order_id) }
}

#[derive(Debug)]
enum CheckoutError {
    Invalid(Invalid),
    Airlock(airlock::Error),
}

impl From<Invalid> for CheckoutError {
    fn from(e: Invalid) -> Self {
        CheckoutError::Invalid(e)
    }
}

impl From<airlock::Error> for CheckoutError {
    fn from(e: airlock::Error) -> Self {
        CheckoutError::Airlock(e)
    }
}

#[airlock::scoped]
fn checkout(order_id: u64, skip: bool) -> Result<u64, CheckoutError> {
    ship::enqueue(order_id)?; // `?` on airlock::Error
    if skip {
        return Ok(0); // early return: still flushes
    }
    let checked = validate(order_id)?; // `?` on another error: discards
    assert_eq!(SHIPPED.load(Ordering::SeqCst) % 1000, 0, "nothing runs inside the scope");
    Ok(checked)
}

#[airlock::scoped]
pub fn nothing_enqueued() -> airlock::Result<&'static str> {
    Ok("done")
}

fn main() {
    assert_eq!(checkout(1000, false).unwrap(), 1000);
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 1000);

    assert_eq!(checkout(2000, true).unwrap(), 0);
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 3000);

    assert!(matches!(checkout(0, false), Err(CheckoutError::Invalid(Invalid))));
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 3000, "discarded on Err");

    assert_eq!(nothing_enqueued().unwrap(), "done");
    assert!(airlock::current().is_none(), "the scope ended with the call");
}
