// The stub handle of a rejected generic task keeps the generics, so calls
// that would fit the function type-check too.
#[airlock::task(nme = "greeting")]
fn greet<'a, T: std::fmt::Display>(name: std::borrow::Cow<'a, str>, value: T) {
    let _ = (name, value.to_string());
}

fn main() {
    let _ = greet::enqueue("hi".into(), 5);
    let _ = greet::intent(String::from("hi").into(), "x").enqueue();
}
