use std::borrow::Cow;

#[airlock::task]
fn greet<'a>(name: Cow<'a, str>) {
    let _ = name;
}

fn main() {}
