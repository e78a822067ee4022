//! Two tasks registered under one name: the registry reports both
//! definitions, and configuration refuses to start. Its own binary, so the
//! duplicate does not leak into the other tests' registry.

use airlock::{Config, ConfigError, DuplicateTask, Error, LookupError};

// This binary names nothing from the fixture crate; this is the documented
// way to link its tasks anyway.
use airlock_tests as _;

mod billing {
    /// The line of `charge`'s name below.
    pub(super) const LINE: u32 = line!() + 3;

    #[airlock::task(name = "dup.task")]
    pub(super) fn charge(amount: u64) {
        let _ = amount;
    }
}

mod shipping {
    /// The line of `ship`'s name below.
    pub(super) const LINE: u32 = line!() + 3;

    #[airlock::task(name = "dup.task")]
    pub(super) fn ship(parcel: String) {
        let _ = parcel;
    }
}

fn locations() -> [String; 2] {
    let file = file!();
    [
        format!("{file}:{}", billing::LINE),
        format!("{file}:{}", shipping::LINE),
    ]
}

/// Checks a `DuplicateTask` error names "dup.task" and both definitions.
fn assert_duplicate(err: &DuplicateTask) {
    let DuplicateTask {
        name,
        first,
        second,
        ..
    } = err;
    assert_eq!(name, "dup.task");
    let [billing, shipping] = locations();
    // Registration order is up to the linker: accept either order.
    let (a, b) = if first.contains(&billing) {
        (first, second)
    } else {
        (second, first)
    };
    assert!(
        a.contains(&billing),
        "{first} / {second} should name {billing}"
    );
    assert!(a.contains("billing::charge"), "{a}");
    assert!(
        b.contains(&shipping),
        "{first} / {second} should name {shipping}"
    );
    assert!(b.contains("shipping::ship"), "{b}");
    let message = err.to_string();
    assert!(
        message.contains(&billing) && message.contains(&shipping),
        "{message}"
    );
    assert!(
        message.contains("#[airlock::task(name = \"...\")]"),
        "the fix is named: {message}"
    );
}

#[test]
fn validate_reports_both_definitions() {
    let err = airlock::registry().validate().unwrap_err();
    assert_duplicate(&err);
    // Both handles still exist and are distinct definitions.
    assert!(!std::ptr::eq(billing::charge::TASK, shipping::ship::TASK));
}

#[test]
fn get_of_a_duplicated_name_is_an_error() {
    let err = airlock::registry().get("dup.task").unwrap_err();
    let LookupError::Duplicate(duplicate) = &err else {
        panic!("expected LookupError::Duplicate, got {err:?}");
    };
    assert_duplicate(duplicate);
    // As an airlock::Error it is the DuplicateTask variant.
    assert!(matches!(Error::from(err), Error::DuplicateTask(_)));
    // Other names are unaffected (the fixtures are linked by `use ... as _`).
    let record = airlock::registry().get("record");
    assert!(record.is_ok(), "{record:?}");
}

#[test]
fn configure_refuses_a_registry_with_duplicates() {
    let err = airlock::configure(Config::new()).unwrap_err();
    let ConfigError::Registry(inner) = &err else {
        panic!("expected ConfigError::Registry, got {err:?}");
    };
    assert_duplicate(inner);
    assert!(err.to_string().contains("dup.task"), "{err}");
    // Nothing was installed: the defaults are still in force.
    assert_eq!(airlock::configuration().policies().count(), 0);
}
