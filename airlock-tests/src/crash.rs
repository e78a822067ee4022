//! What the crash-injection test (`tests/crash_cocommit.rs`) and its producer
//! process (`airlock-test-node <backend> crash-produce`) agree on: the intents
//! of each order, the points where the producer can be told to stop, and the
//! schema that lets a PostgreSQL server stop it there.
//!
//! Each order is one transaction scope that inserts a row into `orders` and
//! enqueues two or three [`log_execution`](fn@crate::log_execution) intents
//! whose keys name the order (`o{order}.{letter}`), so the execution log
//! proves which intent of which order ran, and how often.

use std::fmt;
use std::str::FromStr;

/// The queue the third intent of an order goes to, so that a flush writes to
/// two queues (two statements on PostgreSQL).
pub const SIDE_QUEUE: &str = "crash.side";

/// The keys of `order`'s intents with their queues: `a` and `b` on the
/// default queue, and for even orders also `c` on [`SIDE_QUEUE`].
pub fn order_intents(order: i64) -> Vec<(String, &'static str)> {
    let mut intents = vec![
        (format!("o{order}.a"), airlock::queue::DEFAULT_QUEUE),
        (format!("o{order}.c"), SIDE_QUEUE),
        (format!("o{order}.b"), airlock::queue::DEFAULT_QUEUE),
    ];
    if order % 2 != 0 {
        intents.remove(1);
    }
    intents
}

/// The order an intent key (see [`order_intents`]) belongs to.
pub fn order_of(key: &str) -> Option<i64> {
    key.strip_prefix('o')?.split_once('.')?.0.parse().ok()
}

/// Enqueues `order`'s intents in the current scope.
///
/// # Errors
/// If there is no scope to take them.
pub fn enqueue_order_intents(order: i64) -> airlock::Result<()> {
    for (key, queue) in order_intents(order) {
        crate::log_execution::intent(key).queue(queue).enqueue()?;
    }
    Ok(())
}

/// Where the producer stops (and waits for its SIGKILL) while placing an
/// order, from the earliest to the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Point {
    /// Inside the transaction: the order row is inserted and its intents are
    /// enqueued, but the scope has not started committing.
    InBody,
    /// Inside the flush, after this many (at least one, not all) of the
    /// order's jobs were written. Co-commit: inside the order's transaction;
    /// after-commit: inside the dispatch's own transaction, after the order
    /// committed.
    MidFlush(u32),
    /// Inside `COMMIT` of the order's transaction, every job written
    /// (co-commit), before the commit is durable.
    InCommit,
    /// The order's transaction committed; nothing after it happened
    /// (after-commit: the dispatch has not pushed anything).
    AfterCommit,
}

impl Point {
    /// The point's name without its argument, for tables.
    pub fn name(self) -> &'static str {
        match self {
            Point::InBody => "in-body",
            Point::MidFlush(_) => "mid-flush",
            Point::InCommit => "in-commit",
            Point::AfterCommit => "after-commit",
        }
    }
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::MidFlush(written) => write!(f, "mid-flush:{written}"),
            other => f.write_str(other.name()),
        }
    }
}

impl FromStr for Point {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "in-body" => Ok(Point::InBody),
            "in-commit" => Ok(Point::InCommit),
            "after-commit" => Ok(Point::AfterCommit),
            _ => s
                .strip_prefix("mid-flush:")
                .and_then(|n| n.parse().ok())
                .filter(|&n| n > 0)
                .map(Point::MidFlush)
                .ok_or_else(|| format!("unknown injection point {s:?}")),
        }
    }
}

/// The line the producer prints when it stops at a point: `hang {point} {order}`.
pub fn hang_line(point: Point, order: i64) -> String {
    format!("hang {point} {order}")
}

/// The `application_name` of the producer's PostgreSQL connections, so the
/// test can end the server side of a killed producer.
pub const PRODUCER_APPLICATION_NAME: &str = "airlock-crash-producer";

/// The session setting that arms the PostgreSQL hang triggers: the
/// [`Point`] to stop at (`mid-flush:N` or `in-commit`).
pub const HANG_SETTING: &str = "airlock_crash.hang";

/// The crash test's schema on PostgreSQL (after the queue tables exist):
/// the `orders` table, and two triggers that sleep for an hour when the
/// producer's session armed them through [`HANG_SETTING`]:
/// * before the insert of a job row, once `N` rows were inserted in the
///   transaction (`mid-flush:N`);
/// * at `COMMIT` of a transaction that inserted an order (`in-commit`,
///   through a deferred constraint trigger).
///
/// The sleep is interrupted when the test terminates the killed producer's
/// server process; its transaction never commits.
pub const POSTGRES_SCHEMA: &str = r#"
CREATE TABLE orders (id BIGINT PRIMARY KEY);

CREATE FUNCTION crash_mid_flush() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    written int := coalesce(nullif(current_setting('airlock_crash.written', true), ''), '0')::int;
BEGIN
    IF current_setting('airlock_crash.hang', true) = 'mid-flush:' || written THEN
        PERFORM pg_sleep(3600);
    END IF;
    PERFORM set_config('airlock_crash.written', (written + 1)::text, true);
    RETURN NEW;
END $$;

CREATE TRIGGER crash_mid_flush BEFORE INSERT ON apalis.jobs
    FOR EACH ROW EXECUTE FUNCTION crash_mid_flush();

CREATE FUNCTION crash_in_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('airlock_crash.hang', true) = 'in-commit' THEN
        PERFORM pg_sleep(3600);
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER crash_in_commit AFTER INSERT ON orders
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION crash_in_commit();
"#;

/// The crash test's `orders` table on SQLite (the producer stops itself
/// through SQLite's update and commit hooks instead of triggers).
pub const SQLITE_SCHEMA: &str = "CREATE TABLE orders (id INTEGER PRIMARY KEY)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_round_trip_and_keys_name_their_order() {
        for point in [
            Point::InBody,
            Point::MidFlush(2),
            Point::InCommit,
            Point::AfterCommit,
        ] {
            assert_eq!(point.to_string().parse::<Point>(), Ok(point));
        }
        assert!("mid-flush:0".parse::<Point>().is_err());
        assert_eq!(order_intents(7).len(), 2);
        assert_eq!(order_intents(8).len(), 3);
        assert!(order_intents(8).iter().all(|(k, _)| order_of(k) == Some(8)));
    }
}
