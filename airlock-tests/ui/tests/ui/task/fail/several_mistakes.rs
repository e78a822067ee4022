// Every independent mistake is reported, each on its own token.
#[airlock::task(nam = "x")]
const fn ship(name: &str, (a, b): (u8, u8)) {
    let _ = (name, a, b);
}

fn main() {}
