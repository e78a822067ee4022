#[airlock::task]
fn upload(bytes: &[u8]) {
    let _ = bytes;
}

fn main() {}
