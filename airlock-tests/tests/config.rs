//! Process-wide configuration: defaults, explicit settings winning, settings
//! from the environment and from serde, and the configured policy stopping a
//! cascade. `configure` is process-wide, so this file is its own test binary
//! and its tests run one at a time.

use std::sync::{Arc, Mutex, MutexGuard};

use airlock::{
    AllowAll, AlwaysFlush, BlockTasks, Config, ConfigError, DefaultBehavior, DispatchError,
    DropAll, Error, Executor, Fate, InProcess, Intent, PolicyName, PolicySource, Scope, Settings,
};
use airlock_tests::{cascade, fail, failed, record, runs, self_loop, tag, AppError};

/// Serializes the tests of this binary and restores the defaults around each.
struct Exclusive(#[allow(dead_code)] MutexGuard<'static, ()>);

fn exclusive() -> Exclusive {
    static LOCK: Mutex<()> = Mutex::new(());
    let guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    airlock::reset_configuration();
    Exclusive(guard)
}

impl Drop for Exclusive {
    fn drop(&mut self) {
        airlock::reset_configuration();
    }
}

fn policy_names() -> Vec<String> {
    airlock::configuration()
        .policies()
        .map(|p| p.name())
        .collect()
}

/// Looks variables up in a fixed list instead of the process environment.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |key| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

/// Collects what it is asked to dispatch, runs nothing.
#[derive(Debug, Default, Clone)]
struct Collecting(Arc<Mutex<Vec<String>>>);

impl Executor for Collecting {
    fn dispatch(&self, intents: Vec<Intent>) -> Result<(), DispatchError> {
        self.0
            .lock()
            .unwrap()
            .extend(intents.iter().map(Intent::to_string));
        Ok(())
    }
}

fn run_records(scope: Scope, t: &str, values: &[u64]) -> airlock::Result<airlock::FlushReport> {
    let active = scope.start();
    active.in_scope(|| -> airlock::Result<()> {
        for &value in values {
            record::enqueue(t.to_owned(), value)?;
        }
        Ok(())
    })?;
    active.flush()
}

#[test]
fn configure_configuration_and_reset() {
    let _x = exclusive();
    let t = tag("configure");
    assert!(
        policy_names().is_empty(),
        "the built-in default has no policy"
    );

    airlock::configure(Config::new().policy(DropAll)).unwrap();
    assert_eq!(policy_names(), ["DropAll"]);
    let report = run_records(Scope::new(), &t, &[1]).unwrap();
    assert_eq!(report.dropped(), ["record"]);
    assert!(matches!(
        &report.records()[0].fate,
        Fate::Dropped { policy, source: PolicySource::Scope(s) } if &**policy == "DropAll" && *s == report.scope
    ));
    assert!(runs(&t).is_empty());

    airlock::reset_configuration();
    assert!(policy_names().is_empty());
    let report = run_records(Scope::new(), &t, &[2]).unwrap();
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(runs(&t), ["record(2)"]);

    // The executor and behaviour defaults too.
    let collected = Collecting::default();
    airlock::configure(
        Config::new()
            .executor(collected.clone())
            .behavior(AlwaysFlush),
    )
    .unwrap();
    assert!(
        format!("{:?}", airlock::configuration().executor_ref()).contains("Collecting"),
        "{:?}",
        airlock::configuration()
    );
    let result: Result<(), AppError> = airlock::scope(|| {
        record::enqueue(t.clone(), 3)?;
        Err(failed("fails, but AlwaysFlush flushes"))
    });
    assert!(result.is_err());
    assert_eq!(
        *collected.0.lock().unwrap(),
        [format!("record(\"{t}\", 3)")]
    );
    assert_eq!(
        runs(&t),
        ["record(2)"],
        "the configured executor ran nothing"
    );
}

#[test]
fn configured_max_cascade_depth_limits_cascades() {
    let _x = exclusive();
    let t = tag("depth");
    airlock::configure(Config::new().max_cascade_depth(3)).unwrap();
    let result: airlock::Result<()> = airlock::scope(|| cascade::enqueue(t.clone(), 5).map(drop));
    let Err(Error::Dispatch(failure)) = result else {
        panic!("expected the cascade to hit the limit: {result:?}");
    };
    assert_eq!(runs(&t), ["cascade(5)", "cascade(4)", "cascade(3)"]);
    assert!(failure.to_string().contains("limit 3"), "{failure}");
}

#[airlock::scoped(policy = AllowAll, executor = InProcess, behavior = DefaultBehavior)]
fn explicit_everything(t: String, succeed: bool) -> Result<(), AppError> {
    record::enqueue(t, 1)?;
    if succeed {
        Ok(())
    } else {
        Err(failed("failed"))
    }
}

#[test]
fn explicit_scope_settings_win_over_configured_defaults() {
    let _x = exclusive();
    let collected = Collecting::default();
    airlock::configure(
        Config::new()
            .policy(DropAll)
            .executor(collected.clone())
            .behavior(AlwaysFlush),
    )
    .unwrap();

    let t = tag("explicit");
    let report = run_records(Scope::new().policy(AllowAll).executor(InProcess), &t, &[1]).unwrap();
    assert_eq!(report.dispatched(), ["record"]);
    assert_eq!(runs(&t), ["record(1)"]);

    let result: Result<(), AppError> = Scope::new()
        .policy(AllowAll)
        .executor(InProcess)
        .behavior(DefaultBehavior)
        .run(|| {
            record::enqueue(t.clone(), 2)?;
            Err(failed("discard, whatever the configuration says"))
        });
    assert!(result.is_err());
    assert_eq!(runs(&t), ["record(1)"]);

    explicit_everything(t.clone(), true).unwrap();
    assert!(explicit_everything(t.clone(), false).is_err());
    assert_eq!(runs(&t), ["record(1)", "record(1)"]);

    // Unset settings still come from the configuration.
    let report = run_records(Scope::new().executor(InProcess), &t, &[3]).unwrap();
    assert_eq!(report.dropped(), ["record"]);
    assert!(collected.0.lock().unwrap().is_empty());
}

#[test]
fn the_configured_policy_applies_once_at_the_outermost_scope() {
    let _x = exclusive();
    airlock::configure(Config::new().policy(BlockTasks::of(&[record::TASK]))).unwrap();

    // An explicit outer policy replaces the default; a nested scope without
    // one does not bring the default back.
    let t = tag("outermost");
    let result: airlock::Result<()> = Scope::new()
        .policy(AllowAll)
        .run(|| airlock::scope(|| record::enqueue(t.clone(), 1).map(drop)));
    result.unwrap();
    assert_eq!(runs(&t), ["record(1)"]);

    // An explicit inner policy does not escape the outer scope's default.
    let outer = Scope::new().start();
    outer.in_scope(|| {
        let r: airlock::Result<()> = Scope::new()
            .policy(AllowAll)
            .run(|| record::enqueue(t.clone(), 2).map(drop));
        r.unwrap();
    });
    let report = outer.flush().unwrap();
    assert_eq!(report.dropped(), ["record"]);
    assert_eq!(runs(&t), ["record(1)"]);
}

#[test]
fn settings_from_lookup_build_a_blocking_policy() {
    let _x = exclusive();
    let settings = Settings::from_lookup(env(&[("AIRLOCK_BLOCK_TASKS", "record, fail,")])).unwrap();
    assert_eq!(settings.block_tasks, ["record", "fail"]);
    assert!(!settings.block_tasks_at_enqueue);
    let config = Config::new().with_settings(&settings).unwrap();
    let policies: Vec<_> = config.policies().cloned().collect();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].name(), "BlockTasks(fail, record)");

    let t = tag("from-lookup");
    let active = Scope::new().shared_policy(Arc::clone(&policies[0])).start();
    active
        .in_scope(|| -> airlock::Result<()> {
            record::enqueue(t.clone(), 1)?;
            fail::enqueue(t.clone())?;
            cascade::enqueue(t.clone(), 0)?;
            Ok(())
        })
        .unwrap();
    let report = active.flush().unwrap();
    assert_eq!(report.dropped(), ["record", "fail"]);
    assert_eq!(runs(&t), ["cascade(0)"]);

    // At enqueue, with the other variables.
    let settings = Settings::from_lookup(env(&[
        ("AIRLOCK_BLOCK_TASKS", "record"),
        ("AIRLOCK_BLOCK_TASKS_AT_ENQUEUE", "true"),
        ("AIRLOCK_LOG_ON_FLUSH", "1"),
        ("AIRLOCK_POLICY", "allow_all"),
        ("AIRLOCK_MAX_CASCADE_DEPTH", "7"),
        ("AIRLOCK_FORBID_IN_PROCESS", "false"),
    ]))
    .unwrap();
    assert!(settings.block_tasks_at_enqueue && settings.log_on_flush);
    assert!(!settings.forbid_in_process);
    assert_eq!(settings.policy, Some(PolicyName::AllowAll));
    assert_eq!(settings.max_cascade_depth, Some(7));
    airlock::configure(Config::new().with_settings(&settings).unwrap()).unwrap();
    assert_eq!(policy_names(), ["BlockTasks(record)", "LogOnFlush"]);
    let err = airlock::scope(|| record::enqueue(t.clone(), 2).map(drop)).unwrap_err();
    assert!(
        matches!(&err, Error::PolicyViolation(v) if v.policy == "BlockTasks(record)"),
        "{err:?}"
    );

    // Forbidding in-process dispatch from the environment: the flush is
    // refused, its intent handed back.
    let settings = Settings::from_lookup(env(&[("AIRLOCK_FORBID_IN_PROCESS", "1")])).unwrap();
    assert!(settings.forbid_in_process);
    airlock::configure(Config::new().with_settings(&settings).unwrap()).unwrap();
    let err = airlock::scope(|| record::enqueue(t.clone(), 3).map(drop)).unwrap_err();
    assert!(
        matches!(&err, Error::Dispatch(f) if f.source.is::<airlock::executor::InProcessForbidden>()
            && f.not_attempted.len() == 1),
        "{err:?}"
    );
    assert_eq!(runs(&t), ["cascade(0)"], "nothing more ran");

    // Nothing set: nothing changes.
    let settings = Settings::from_lookup(|_| None).unwrap();
    assert!(Config::new()
        .with_settings(&settings)
        .unwrap()
        .policies()
        .next()
        .is_none());
    let settings = Settings::from_lookup(env(&[("AIRLOCK_POLICY", "drop_all")])).unwrap();
    let config = Config::new().with_settings(&settings).unwrap();
    let names: Vec<String> = config.policies().map(|p| p.name()).collect();
    assert_eq!(names, ["DropAll"]);
}

#[test]
fn an_unknown_name_in_airlock_block_tasks_suggests_the_close_one() {
    let _x = exclusive();
    let settings =
        Settings::from_lookup(env(&[("AIRLOCK_BLOCK_TASKS", "record,self_lop")])).unwrap();
    let err = Config::new().with_settings(&settings).unwrap_err();
    let ConfigError::UnknownTask { setting, lookup } = &err else {
        panic!("expected UnknownTask, got {err:?}");
    };
    assert_eq!(setting, "AIRLOCK_BLOCK_TASKS");
    assert_eq!(lookup.name, "self_lop");
    assert_eq!(
        lookup.suggestions.first().map(String::as_str),
        Some("self_loop")
    );
    let message = err.to_string();
    assert!(message.contains("AIRLOCK_BLOCK_TASKS"), "{message}");
    assert!(message.contains("did you mean `self_loop`"), "{message}");
    assert!(
        message.contains("`warehouse.notify`"),
        "lists the registered names: {message}"
    );

    // From a config file, the setting is named as the file spells it.
    let settings: Settings = serde_json::from_str(r#"{ "block_tasks": ["recrod"] }"#).unwrap();
    let err = Config::new().with_settings(&settings).unwrap_err();
    assert!(
        matches!(&err, ConfigError::UnknownTask { setting, lookup } if setting == "block_tasks" && lookup.suggestions[0] == "record"),
        "{err:?}"
    );
}

#[test]
fn invalid_values_name_the_variable() {
    let _x = exclusive();
    let err = Settings::from_lookup(env(&[("AIRLOCK_POLICY", "dropall")])).unwrap_err();
    let ConfigError::InvalidValue {
        setting,
        value,
        expected,
    } = &err
    else {
        panic!("expected InvalidValue, got {err:?}");
    };
    assert_eq!(setting, "AIRLOCK_POLICY");
    assert_eq!(value, "dropall");
    assert!(expected.contains("drop_all"), "{expected}");
    let message = err.to_string();
    assert!(
        message.contains("AIRLOCK_POLICY") && message.contains("\"dropall\""),
        "{message}"
    );

    for (var, bad) in [
        ("AIRLOCK_LOG_ON_FLUSH", "maybe"),
        ("AIRLOCK_BLOCK_TASKS_AT_ENQUEUE", "2"),
        ("AIRLOCK_MAX_CASCADE_DEPTH", "deep"),
        // Deeper than a thread's stack can hold an in-process cascade.
        ("AIRLOCK_MAX_CASCADE_DEPTH", "100000"),
        ("AIRLOCK_MAX_PAYLOAD_BYTES", "a lot"),
        ("AIRLOCK_FORBID_IN_PROCESS", "sometimes"),
    ] {
        let err = Settings::from_lookup(env(&[(var, bad)])).unwrap_err();
        assert!(
            matches!(&err, ConfigError::InvalidValue { setting, value, .. } if setting == var && value == bad),
            "{var}: {err:?}"
        );
    }
}

#[test]
fn settings_deserialize_from_json_and_reject_unknown_fields() {
    let _x = exclusive();
    let settings: Settings = serde_json::from_str(
        r#"{
            "policy": "drop_all",
            "block_tasks": ["fail"],
            "block_tasks_at_enqueue": true,
            "log_on_flush": true,
            "max_cascade_depth": 4
        }"#,
    )
    .unwrap();
    assert_eq!(settings.policy, Some(PolicyName::DropAll));
    assert_eq!(settings.block_tasks, ["fail"]);
    assert!(settings.block_tasks_at_enqueue && settings.log_on_flush);
    assert_eq!(settings.max_cascade_depth, Some(4));
    let config = Config::new().with_settings(&settings).unwrap();
    let names: Vec<String> = config.policies().map(|p| p.name()).collect();
    assert_eq!(names, ["DropAll", "BlockTasks(fail)", "LogOnFlush"]);

    // Every field is optional.
    let empty: Settings = serde_json::from_str("{}").unwrap();
    assert!(empty.policy.is_none() && empty.block_tasks.is_empty());

    let err = serde_json::from_str::<Settings>(r#"{ "polcy": "drop_all" }"#).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("unknown field `polcy`"), "{message}");
    assert!(
        message.contains("`policy`"),
        "the accepted fields are listed: {message}"
    );

    let err = serde_json::from_str::<Settings>(r#"{ "policy": "drop" }"#).unwrap_err();
    assert!(err.to_string().contains("unknown variant `drop`"), "{err}");
}

#[test]
fn configured_block_tasks_stops_a_reentrant_cascade_after_one_run() {
    let _x = exclusive();
    airlock::configure(Config::new().policy(BlockTasks::of(&[self_loop::TASK]))).unwrap();
    let t = tag("self-loop-blocked");
    // The outer scope sets its own policy, so only the tasks' own scopes get
    // the configured one.
    let active = Scope::new().policy(AllowAll).start();
    active.in_scope(|| self_loop::enqueue(t.clone())).unwrap();
    let report = active.flush().unwrap();
    assert_eq!(report.dispatched(), ["self_loop"]);
    assert_eq!(runs(&t), ["self_loop"]);

    // Rejecting at enqueue instead: the task's own enqueue fails, so it fails.
    airlock::configure(
        Config::new().policy(BlockTasks::of(&[self_loop::TASK]).reject_at_enqueue()),
    )
    .unwrap();
    let t = tag("self-loop-rejected");
    let result: airlock::Result<()> = Scope::new()
        .policy(AllowAll)
        .run(|| self_loop::enqueue(t.clone()).map(drop));
    let Err(Error::Dispatch(failure)) = result else {
        panic!("expected the task to fail: {result:?}");
    };
    assert!(
        failure
            .to_string()
            .contains("BlockTasks(self_loop) rejected `self_loop`"),
        "{failure}"
    );
    assert_eq!(runs(&t), ["self_loop"]);
}
