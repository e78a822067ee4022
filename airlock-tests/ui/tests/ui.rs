//! Compile-time tests of `#[airlock::task]` and `#[airlock::scoped]`.
//!
//! Every `pass` file must compile (and its `main` runs); every `fail` file must
//! fail with exactly the diagnostics in its `.stderr`. Regenerate those with
//! `TRYBUILD=overwrite cargo test -p airlock-ui-tests --test ui`, then read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/task/pass/*.rs");
    t.pass("tests/ui/scoped/pass/*.rs");
    t.compile_fail("tests/ui/task/fail/*.rs");
    t.compile_fail("tests/ui/scoped/fail/*.rs");
}
