// #[scoped] on methods: &self, &mut self, self, async &mut self, and in a trait impl.
use std::sync::atomic::{AtomicU64, Ordering};

static SHIPPED: AtomicU64 = AtomicU64::new(0);

#[airlock::task]
fn ship(order_id: u64) {
    SHIPPED.fetch_add(order_id, Ordering::SeqCst);
}

/// The application's own error: its failures, and airlock's (through `?`).
#[derive(Debug, thiserror::Error)]
enum CartError {
    #[error("empty order")]
    EmptyOrder,
    #[error(transparent)]
    Airlock(#[from] airlock::Error),
}

#[derive(Default)]
struct Cart {
    orders: Vec<u64>,
}

impl Cart {
    #[airlock::scoped]
    fn add(&mut self, order_id: u64) -> Result<usize, CartError> {
        if order_id == 0 {
            return Err(CartError::EmptyOrder);
        }
        self.orders.push(order_id);
        ship::enqueue(order_id)?;
        Ok(self.orders.len())
    }

    #[airlock::scoped]
    async fn add_async(&mut self, order_id: u64) -> airlock::Result<usize> {
        tokio::task::yield_now().await;
        self.orders.push(order_id);
        ship::enqueue(order_id)?;
        Ok(self.orders.len())
    }

    #[airlock::scoped(name = "cart.count")]
    fn count(&self) -> airlock::Result<usize> {
        let name = airlock::current().unwrap().info().name.clone();
        assert_eq!(name.as_deref(), Some("cart.count"));
        Ok(self.orders.len())
    }

    #[airlock::scoped]
    fn into_total(self) -> airlock::Result<u64> {
        Ok(self.orders.iter().sum())
    }
}

trait Checkout {
    fn checkout(&mut self) -> airlock::Result<u64>;
}

impl Checkout for Cart {
    #[airlock::scoped]
    fn checkout(&mut self) -> airlock::Result<u64> {
        for order_id in &self.orders {
            ship::enqueue(*order_id)?;
        }
        Ok(self.orders.len() as u64)
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut cart = Cart::default();
    assert_eq!(cart.add(1).unwrap(), 1);
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 1);
    assert!(matches!(cart.add(0), Err(CartError::EmptyOrder)));
    assert_eq!(cart.add_async(10).await.unwrap(), 2);
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 11);
    assert_eq!(cart.count().unwrap(), 2);
    assert_eq!(cart.checkout().unwrap(), 2);
    assert_eq!(SHIPPED.load(Ordering::SeqCst), 22);
    assert_eq!(cart.into_total().unwrap(), 11);
}
