//! Human and JSON output. Progress goes to stderr; results to stdout.

use tandem_core::plan::{Action, Hazard, Plan, Step};
use tandem_pg::executor::Event;
use tandem_pg::session::Status;

pub fn progress(json: bool) -> impl Fn(Event) + Send + Sync {
    let progress = crate::progress::Progress::new(json);
    move |event| progress.show(event)
}

/// An event in plain words (the lines to print).
pub fn event_text(event: &Event) -> String {
    match event {
        Event::Step { description } => format!("  - {description}"),
        Event::LockRetry { description, attempt, lock_timeout, wait, blockers } => format!(
            "  ! could not get the lock to {description} within {} ms (attempt {attempt}); retrying in {} ms; blocking: {blockers}",
            lock_timeout.as_millis(),
            wait.as_millis()
        ),
        Event::BackfillProgress { table, rows, estimate, batch_size } => {
            format!("    {}", crate::progress::describe(table, *rows, *estimate, 0.0, *batch_size))
        }
                Event::BackfillWaiting { table, reason } => format!("    backfill of \"{table}\" waits: {reason}"),
                Event::BackfillNotice { table, message } => format!("    backfill of \"{table}\": {message}"),
        Event::BackfillLag { table, behind } => format!("    backfill of \"{table}\" still waits: {behind}"),
        Event::BackfillTriggersFire { table, triggers, why } => format!(
            "    warning: backfill of \"{table}\": {}",
            tandem_pg::backfill::firing_text(triggers, why.as_deref())
        ),
                Event::StepDone { description, held, .. } => format!("    done in {} ms: {description}", held.as_millis()),
        Event::BackfillDone { table, rows, took, longest_batch, largest_batch, workers, .. } => format!(
            "    backfilled {rows} rows of \"{table}\" in {} ms (longest batch {} ms, largest {largest_batch} rows, {workers} worker{})",
            took.as_millis(),
            longest_batch.as_millis(),
            if *workers == 1 { "" } else { "s" }
        ),
    }
}

pub fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::Step { description } => {
            serde_json::json!({"event": "step", "description": description})
        }
        Event::LockRetry {
            description,
            attempt,
            lock_timeout,
            wait,
            blockers,
        } => serde_json::json!({
            "event": "lock_retry", "description": description, "attempt": attempt,
            "lock_timeout_ms": lock_timeout.as_millis() as u64,
            "wait_ms": wait.as_millis() as u64, "blockers": blockers}),
        Event::BackfillProgress {
            table,
            rows,
            estimate,
            batch_size,
        } => serde_json::json!({
            "event": "backfill_progress", "table": table, "rows": rows,
            "estimate": estimate, "batch_size": batch_size}),
        Event::StepDone {
            description,
            lock,
            held,
        } => serde_json::json!({
            "event": "step_done", "description": description, "lock": lock,
            "held_ms": held.as_secs_f64() * 1000.0}),
        Event::BackfillWaiting { table, reason } => {
            serde_json::json!({"event": "backfill_waiting", "table": table, "reason": reason})
        }
        Event::BackfillNotice { table, message } => {
            serde_json::json!({"event": "backfill_notice", "table": table, "message": message})
        }
        Event::BackfillLag { table, behind } => {
            serde_json::json!({"event": "backfill_lag", "table": table, "behind": behind})
        }
        Event::BackfillTriggersFire {
            table,
            triggers,
            why,
        } => serde_json::json!({
            "event": "backfill_triggers_fire", "table": table, "triggers": triggers,
            "why": why}),
        Event::BackfillDone {
            table,
            rows,
            took,
            longest_batch,
            largest_batch,
            triggers_skipped,
            workers,
        } => serde_json::json!({
            "event": "backfill_done", "table": table, "rows": rows,
            "took_ms": took.as_secs_f64() * 1000.0,
            "longest_batch_ms": longest_batch.as_secs_f64() * 1000.0,
            "largest_batch_rows": largest_batch,
            "triggers_skipped": triggers_skipped, "workers": workers}),
    }
}

/// The plan in plain words; `estimates` gives the rows each backfill step will touch.
pub fn plan_text(plan: &Plan, estimates: &tandem_pg::stats::PlanEstimates) -> String {
    let mut out = format!(
        "migration \"{}\" on schema \"{}\" → version schema \"{}\"\n",
        plan.migration, plan.schema, plan.version_schema
    );
    for (title, steps, rows) in [
        ("start", &plan.start, &estimates.start[..]),
        ("complete", &plan.complete, &estimates.complete[..]),
        ("rollback", &plan.rollback, &[][..]),
    ] {
        out.push_str(&format!("\n{title}:\n"));
        for (i, step) in steps.iter().enumerate() {
            out.push_str(&step_text(i + 1, step, rows.get(i).copied().flatten()));
        }
        if title == "start" && plan.views_from_live_schema {
            out.push_str(
                "  then: create the version schema's views from the schema the SQL leaves\n",
            );
        }
    }
    for i in &plan.irreversible {
        out.push_str(&format!("  cannot undo: {}: {}\n", i.pointer, i.what));
    }
    if plan.views_from_live_schema_after_complete {
        out.push_str("\n  after complete: rebuild the version schema's views from the schema the SQL leaves\n");
    }
    out.push_str(&dependents_text(plan));
    out
}

/// The objects outside tandem that depend on what complete drops, and what happens to each.
fn dependents_text(plan: &Plan) -> String {
    if plan.dependents.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "
objects that depend on what complete drops:
",
    );
    for d in &plan.dependents {
        let fate = match d.fate {
            tandem_core::dependents::Fate::Rebuilt => {
                "rebuilt over the new columns inside the contract transaction"
            }
            tandem_core::dependents::Fate::Blocks => "blocks the contract",
        };
        out.push_str(&format!("  {} (uses {}): {fate}\n", d.object, d.depends_on));
    }
    out
}

fn step_text(n: usize, step: &Step, estimated_rows: Option<i64>) -> String {
    let tx = match &step.tx {
        tandem_core::plan::Tx::Own => "own transaction".to_string(),
        tandem_core::plan::Tx::None => "no transaction".to_string(),
        tandem_core::plan::Tx::Group(g) => format!("transaction \"{g}\""),
    };
    let hazards = if step.hazards.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = step
            .hazards
            .iter()
            .map(|h| {
                let name = serde_json::to_value(h)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default();
                match (h, &step.action) {
                    (Hazard::Backfill, Action::Backfill(_)) => {
                        format!("{name} {}", crate::plan::rows_text(estimated_rows))
                    }
                    _ => name,
                }
            })
            .collect();
        format!(", hazards: {}", names.join(", "))
    };
    let lock = serde_json::to_value(step.lock)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let mut s = format!("  {n:>2}. {} [{lock}, {tx}{hazards}]\n", step.description);
    match &step.action {
        Action::Sql { sql } => s.push_str(&indent(sql)),
        Action::Backfill(b) => s.push_str(&indent(&format!("batches of: {}", b.update_blocks))),
    }
    s
}

fn indent(sql: &str) -> String {
    sql.lines().map(|l| format!("        {l}\n")).collect()
}

pub fn status_text(status: &Status) -> String {
    crate::status::table(status, crate::style::Paint::stdout())
}
