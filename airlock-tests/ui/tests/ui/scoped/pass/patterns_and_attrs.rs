// Pattern parameters, `mut` bindings, inner attributes and doc comments are kept.
#![deny(unused)]

/// Documented.
#[airlock::scoped]
#[inline]
pub fn sum((a, b): (u32, u32), mut extra: Vec<u32>) -> airlock::Result<u32> {
    #![allow(clippy::needless_collect)]
    extra.push(a + b);
    Ok(extra.iter().sum())
}

#[airlock::scoped]
async fn nested(depth: u32) -> airlock::Result<bool> {
    // A scoped fn called inside another is a nested scope.
    Ok(depth > 0 && airlock::current().unwrap().is_nested())
}

#[airlock::scoped]
async fn outer() -> airlock::Result<bool> {
    nested(1).await
}

fn main() {
    assert_eq!(sum((1, 2), vec![3]).unwrap(), 6);
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert!(rt.block_on(outer()).unwrap());
    assert!(!rt.block_on(nested(1)).unwrap());
}
