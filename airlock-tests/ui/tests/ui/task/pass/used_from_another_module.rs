// `use` imports both the fn and its handle (same name, two namespaces).
use std::sync::atomic::{AtomicU64, Ordering};

static DIRECT: AtomicU64 = AtomicU64::new(0);

mod tasks {
    #[airlock::task]
    pub fn ship(order_id: u64) {
        super::DIRECT.fetch_add(order_id, std::sync::atomic::Ordering::SeqCst);
    }
}

mod service {
    use crate::tasks::ship;

    pub fn place(order_id: u64) -> airlock::Result<()> {
        ship::enqueue(order_id)?;
        ship(order_id * 10); // the fn, through the same import
        Ok(())
    }
}

mod renamed {
    use crate::tasks::ship as send;

    pub fn place(order_id: u64) -> airlock::Result<airlock::IntentId> {
        send::enqueue(order_id)
    }
}

mod glob {
    use crate::tasks::*;

    pub fn place(order_id: u64) -> airlock::Result<airlock::IntentId> {
        ship::intent(order_id).priority(3).enqueue()
    }
}

fn main() {
    let captured = airlock::testing::capture(|| -> airlock::Result<()> {
        renamed::place(2)?;
        glob::place(3)?;
        service::place(1)
    });
    captured.value.as_ref().unwrap();
    captured.assert_names(&["ship", "ship", "ship"]);
    let ids: Vec<u64> = captured.args::<tasks::ship>().iter().map(|a| a.order_id).collect();
    assert_eq!(ids, [2, 3, 1]);
    assert_eq!(captured.intents[1].options().priority, Some(3));
    assert_eq!(DIRECT.load(Ordering::SeqCst), 10, "only the direct call ran");
}
