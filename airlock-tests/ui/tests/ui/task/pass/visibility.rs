// pub, pub(crate), pub(super) and private tasks; the handle has the fn's visibility.
mod orders {
    pub mod tasks {
        #[airlock::task]
        pub fn public_task(order_id: u64) {
            let _ = order_id;
        }

        #[airlock::task]
        pub(crate) fn crate_task(order_id: u64) {
            let _ = order_id;
        }

        #[airlock::task]
        pub(super) fn parent_task(order_id: u64) {
            let _ = order_id;
        }

        #[airlock::task]
        fn private_task(order_id: u64) {
            let _ = order_id;
        }

        pub fn enqueue_private(order_id: u64) -> airlock::Result<airlock::IntentId> {
            private_task::enqueue(order_id)
        }
    }

    pub fn enqueue_parent(order_id: u64) -> airlock::Result<airlock::IntentId> {
        tasks::parent_task::enqueue(order_id)
    }
}

fn main() {
    let captured = airlock::testing::capture(|| -> airlock::Result<()> {
        orders::tasks::public_task::enqueue(1)?;
        orders::tasks::crate_task::enqueue(2)?;
        orders::enqueue_parent(3)?;
        orders::tasks::enqueue_private(4)?;
        orders::tasks::public_task::intent(5).queue("slow").enqueue()?;
        Ok(())
    });
    captured.value.as_ref().unwrap();
    captured.assert_names(&["public_task", "crate_task", "parent_task", "private_task", "public_task"]);
    let ids: Vec<u64> = captured
        .args::<orders::tasks::public_task>()
        .iter()
        .map(|a| a.order_id)
        .collect();
    assert_eq!(ids, [1, 5]);
    assert_eq!(captured.args::<orders::tasks::crate_task>()[0].order_id, 2);
}
