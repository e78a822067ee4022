#[airlock::task]
fn greet(name: &str) {
    let _ = name;
}

fn main() {}
