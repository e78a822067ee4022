//! A batch job (airlock-py's management-command case): resend the receipt of
//! every order placed in a period, as one scope. `--dry-run` runs the very same
//! code under `DropAll` and prints what would have been dispatched.
//!
//! ```text
//! cargo run -p airlock-examples --example resend_receipts -- --dry-run
//! cargo run -p airlock-examples --example resend_receipts
//! ```

use std::collections::BTreeMap;

use airlock::{DropAll, Fate, FlushReport, InProcess, Scope};

#[airlock::task]
fn send_receipt(order_id: u64, email: String) {
    println!("    sent receipt for order {order_id} to {email}");
}

#[airlock::task(name = "crm.log_contact")]
fn log_contact(email: String) {
    println!("    logged contact with {email}");
}

/// The domain operation the job repeats: it enqueues, it does not send.
fn resend(order_id: u64, email: &str) -> airlock::Result<()> {
    send_receipt::enqueue(order_id, email.to_owned())?;
    if order_id % 2 == 0 {
        log_contact::enqueue(email.to_owned())?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let dry_run = std::env::args().any(|a| a == "--dry-run");
    let orders = [
        (1, "ada@example.com"),
        (2, "grace@example.com"),
        (3, "alan@example.com"),
        (4, "edsger@example.com"),
    ];

    let mut scope = Scope::new().name("resend_receipts").executor(InProcess);
    if dry_run {
        scope = scope.policy(DropAll);
    }
    let job = scope.start();
    for (order_id, email) in orders {
        job.in_scope(|| resend(order_id, email))?;
    }
    println!(
        "{} {} intents buffered; flushing{}",
        job.info(),
        job.intents().len(),
        if dry_run { " (dry run)" } else { "" }
    );
    let report = job.flush()?;
    print_summary(&report, dry_run);
    Ok(())
}

/// One line per task: how many were dispatched, or would have been.
fn print_summary(report: &FlushReport, dry_run: bool) {
    let mut per_task: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for record in report.records().iter() {
        let entry = per_task.entry(record.task.name()).or_default();
        match record.fate {
            Fate::Dispatched => entry.0 += 1,
            Fate::Dropped { .. } => entry.1 += 1,
            _ => {}
        }
    }
    println!("\nsummary:");
    for (task, (dispatched, dropped)) in per_task {
        if dry_run {
            println!("    {task}: would have dispatched {dropped}");
        } else {
            println!("    {task}: dispatched {dispatched}, dropped {dropped}");
        }
    }
}
