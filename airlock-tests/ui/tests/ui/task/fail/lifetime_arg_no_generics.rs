use std::borrow::Cow;

#[airlock::task]
fn greet(name: Cow<'_, str>) {
    let _ = name;
}

fn main() {}
