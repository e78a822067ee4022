//! The checkout service: an axum app on SQLite whose domain code enqueues
//! effects, scoped per request by [`AirlockLayer`], co-committed into the
//! embedded apalis SQLite queue, and run by a worker in the same process.

use std::time::Duration;

use airlock::queue::SqliteQueue;
use airlock::tower::AirlockLayer;
use airlock::worker::WorkerOptions;
use airlock::{DropAll, Scope};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

// ---------------------------------------------------------------- effects

/// Emails the customer. Run by the queue's worker, never inside a request.
#[airlock::task]
pub fn send_confirmation_email(order_id: i64, customer: String) {
    println!("    [worker] email to {customer}: order {order_id} confirmed");
}

/// Tells the warehouse to ship, with a stable task name.
#[airlock::task(name = "warehouse.notify")]
pub async fn notify_warehouse(order_id: i64, skus: Vec<String>) {
    println!("    [worker] warehouse: ship {skus:?} for order {order_id}");
}

// ---------------------------------------------------------------- domain

/// A checkout request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewOrder {
    /// Who is buying.
    pub customer: String,
    /// What they buy.
    pub skus: Vec<String>,
}

/// What the service answers: the order, and what became of its effects.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Placed {
    /// The new order's id.
    pub order_id: i64,
    /// Tasks queued with the order (committed in the same transaction).
    pub queued: Vec<String>,
    /// Tasks a policy dropped (dry run, blocked tasks).
    pub dropped: Vec<String>,
}

/// Places an order: the domain code says what should happen and returns.
/// It neither knows nor decides when (or whether) the effects leave.
async fn place(conn: &mut sqlx::SqliteConnection, order: &NewOrder) -> Result<i64, CheckoutError> {
    if order.skus.is_empty() {
        return Err(CheckoutError::Empty);
    }
    let id: i64 =
        sqlx::query_scalar("INSERT INTO orders (customer, lines) VALUES (?, ?) RETURNING id")
            .bind(&order.customer)
            .bind(order.skus.len() as i64)
            .fetch_one(&mut *conn)
            .await?;
    send_confirmation_email::enqueue(id, order.customer.clone())?;
    notify_warehouse::enqueue(id, order.skus.clone())?;
    if order.skus.iter().any(|sku| sku == "out-of-stock") {
        // Fails after enqueueing: the transaction and its intents roll back.
        return Err(CheckoutError::OutOfStock);
    }
    Ok(id)
}

/// Why a checkout failed.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    /// No lines.
    #[error("an order needs at least one line")]
    Empty,
    /// A line cannot be shipped.
    #[error("an item is out of stock")]
    OutOfStock,
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// airlock refused (no scope, a policy, a failed commit).
    #[error(transparent)]
    Airlock(#[from] airlock::Error),
}

impl axum::response::IntoResponse for CheckoutError {
    fn into_response(self) -> axum::response::Response {
        let status = match self {
            CheckoutError::Empty | CheckoutError::OutOfStock => StatusCode::UNPROCESSABLE_ENTITY,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.to_string()).into_response()
    }
}

// ---------------------------------------------------------------- web

/// `POST /orders`: one request scope (the layer), one co-commit transaction.
/// The header `x-dry-run: 1` runs the same code under `DropAll`.
async fn checkout(
    State(queue): State<SqliteQueue>,
    headers: HeaderMap,
    Json(order): Json<NewOrder>,
) -> Result<Json<Placed>, CheckoutError> {
    let dry_run = headers.get("x-dry-run").is_some_and(|v| v == "1");
    let work = async {
        let mut tx = Scope::new()
            .name("checkout tx")
            .co_commit(queue.pool().begin().await?);
        let handle = tx.handle();
        let order_id = handle.bind(place(&mut tx, &order)).await;
        let order_id = match order_id {
            Ok(id) => id,
            Err(error) => {
                tx.rollback().await?;
                return Err(error);
            }
        };
        let report = tx.commit().await?;
        Ok(Placed {
            order_id,
            queued: report.dispatched().iter().map(|s| s.to_string()).collect(),
            dropped: report.dropped().iter().map(|s| s.to_string()).collect(),
        })
    };
    let placed = if dry_run {
        airlock::with_policy_async(DropAll, work).await?
    } else {
        work.await?
    };
    Ok(Json(placed))
}

/// The service: routes, the request-scope layer, and the queue as state.
pub fn app(queue: SqliteQueue) -> Router {
    Router::new()
        .route("/orders", post(checkout))
        .layer(AirlockLayer::new())
        .with_state(queue)
}

/// Opens (creating) the shop database with the queue tables.
///
/// # Errors
/// If the database cannot be opened or migrated.
pub async fn open(url: &str) -> anyhow::Result<SqliteQueue> {
    let queue = SqliteQueue::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("opening {url}: {e}"))?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders \
         (id INTEGER PRIMARY KEY, customer TEXT NOT NULL, lines INTEGER NOT NULL)",
    )
    .execute(queue.pool())
    .await?;
    Ok(queue)
}

/// Supervised workers for both queues the tasks use, in this process.
pub fn workers(queue: &SqliteQueue) -> airlock::queue::apalis::prelude::Monitor {
    queue.monitor(
        WorkerOptions::new("checkout")
            .workers(2)
            .poll_interval(Duration::from_millis(50)),
    )
}

/// Jobs not finished yet.
///
/// # Errors
/// If the database fails.
pub async fn unfinished_jobs(queue: &SqliteQueue) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE status NOT IN ('Done', 'Killed')")
            .fetch_one(queue.pool())
            .await?,
    )
}

// ---------------------------------------------------------------- the demo

/// One step of the scripted demo and what the service answered.
#[derive(Debug)]
pub struct Step {
    /// What the step shows.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// The answer, when the order was placed.
    pub placed: Option<Placed>,
}

/// Drives the service at `base` through the scripted demo over HTTP,
/// printing each step. `block` reconfigures airlock between steps (the
/// blocked-task step), as `AIRLOCK_BLOCK_TASKS` would at startup.
///
/// # Errors
/// If a request fails to complete.
pub async fn demo(
    base: &str,
    block: impl Fn(Option<&str>) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<Step>> {
    let client = reqwest::Client::new();
    let order = |skus: &[&str]| NewOrder {
        customer: "ada@example.com".into(),
        skus: skus.iter().map(|s| s.to_string()).collect(),
    };
    let script: [(&'static str, NewOrder, bool, Option<&str>); 4] = [
        (
            "a successful checkout: the order and its two jobs commit together",
            order(&["mug", "tea"]),
            false,
            None,
        ),
        (
            "a failing checkout (out of stock, after enqueueing): nothing is queued",
            order(&["mug", "out-of-stock"]),
            false,
            None,
        ),
        (
            "a dry run (x-dry-run: 1): the same code, every effect dropped",
            order(&["mug"]),
            true,
            None,
        ),
        (
            "AIRLOCK_BLOCK_TASKS=send_confirmation_email: the email is blocked",
            order(&["tea"]),
            false,
            Some("send_confirmation_email"),
        ),
    ];
    let mut steps = Vec::new();
    for (n, (title, body, dry_run, blocked)) in script.into_iter().enumerate() {
        block(blocked)?;
        println!("\n{}. {title}", n + 1);
        let mut request = client.post(format!("{base}/orders")).json(&body);
        if dry_run {
            request = request.header("x-dry-run", "1");
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let placed = if response.status().is_success() {
            let placed: Placed = response.json().await?;
            println!(
                "    {status}: order {} queued {:?}, dropped {:?}",
                placed.order_id, placed.queued, placed.dropped
            );
            Some(placed)
        } else {
            println!("    {status}: {}; nothing queued", response.text().await?);
            None
        };
        steps.push(Step {
            title,
            status,
            placed,
        });
    }
    block(None)?;
    Ok(steps)
}
