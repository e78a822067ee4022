struct Mailer;

impl Mailer {
    #[airlock::task]
    fn send(&self, order_id: u64) {
        let _ = order_id;
    }
}

fn main() {}
