#[airlock::task]
fn ship(lines: Vec<&'static str>) {
    let _ = lines;
}

fn main() {}
