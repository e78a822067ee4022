#[airlock::task]
fn ship(callback: fn(u64)) {
    callback(1);
}

fn main() {}
