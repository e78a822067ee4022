// A rejected task still gets its handle (a stub), so code using it reports
// nothing beyond the macro's own errors.
#[airlock::task]
fn greet(name: &str, (first, last): (String, String)) {
    let _ = (name, first, last);
}

fn main() {
    let _ = greet::enqueue("hi", ("Ada".into(), "Lovelace".into()));
    let _ = greet::intent("hi", ("Ada".into(), "Lovelace".into())).priority(1).enqueue();
    let _ = greet::TASK.name();
    let captured = airlock::testing::capture(|| greet::enqueue("hi", Default::default()));
    let _ = captured.args::<greet>();
}
