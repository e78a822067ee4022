// Several tasks side by side in one module, each with its own handle and registration.
mod tasks {
    #[airlock::task]
    pub fn one(a: u64) {
        let _ = a;
    }

    #[airlock::task]
    pub fn two(a: u64, b: String) {
        let _ = (a, b);
    }

    #[airlock::task]
    pub async fn three(a: Vec<u64>) {
        let _ = a;
    }

    #[airlock::task]
    pub fn four() {}
}

fn main() {
    let registry = airlock::registry();
    for name in ["one", "two", "three", "four"] {
        let def = registry.get(name).unwrap();
        assert_eq!(def.name(), name);
        assert!(def.fn_path().ends_with(&format!("tasks::{name}")), "{}", def.fn_path());
    }
    assert_eq!(registry.len(), 4);
    registry.validate().unwrap();

    let captured = airlock::testing::capture(|| -> airlock::Result<()> {
        tasks::one::enqueue(1)?;
        tasks::two::enqueue(2, "b".to_owned())?;
        tasks::three::enqueue(vec![3, 4])?;
        tasks::four::enqueue()?;
        Ok(())
    });
    captured.value.as_ref().unwrap();
    captured.assert_names(&["one", "two", "three", "four"]);
    assert_eq!(captured.args::<tasks::two>()[0].b, "b");
    assert_eq!(captured.args::<tasks::three>()[0].a, [3, 4]);
    assert_eq!(captured.intents[1].to_string(), r#"two(2, "b")"#);
    assert_eq!(captured.intents[3].to_string(), "four()");
}
