//! The code behind the runnable examples, in a library so that tests can
//! drive it end to end. Start with `examples/checkout.rs`.

pub mod checkout;
