//! `tandem plan FILE`: the steps of start, complete and rollback with their locks, hazards and,
//! for backfills, the rows the statistics expect. Reads the database, never changes it.

use std::path::Path;

use tandem_core::plan::{Action, Plan, Step};
use tandem_pg::backfill::{plan_triggers, PlanTriggers};
use tandem_pg::executor::db_message;
use tandem_pg::stats::{plan_estimates, PlanEstimates};

use tandem_pg::introspect::read_schema;
use tandem_pg::session::Error;

use crate::args::Global;
use crate::lint::FileFindings;
use crate::{bad_input, connect, files, render, Failure};

pub async fn run(g: &Global, file: &Path, json: bool) -> Result<(), Failure> {
    let migration = files::load(file).map_err(|p| bad_input(&p))?;
    let session = connect(g).await?;
    let plan = session.plan(&migration).await?;
    let schema = read_schema(session.client(), &g.schema)
        .await
        .map_err(Error::from)?;
    let found = FileFindings::of(&file.display().to_string(), &migration, Some(&schema));
    let estimates = plan_estimates(session.client(), &plan)
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("cannot read the table statistics: {}", db_message(&e)),
        })?;
    let triggers = plan_triggers(session.client(), &plan, !g.backfill_fire_triggers)
        .await
        .map_err(|e| Failure {
            code: 1,
            message: format!("cannot read the tables' triggers: {}", db_message(&e)),
        })?;
    if json {
        let mut value = plan_json(&plan, &estimates);
        add_triggers_json(&mut value, &triggers);
        value["findings"] = found.json().into();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", render::plan_text(&plan, &estimates));
        print!("{}", warnings_text(&plan, &triggers));
        print!("{}", findings_text(&found));
    }
    Ok(())
}

/// Each backfill step's `backfill_triggers` (whether its batches run in replica mode, the
/// application triggers that fire for it and why), and the top-level `warnings`: one line per
/// backfill that fires application triggers.
fn add_triggers_json(value: &mut serde_json::Value, triggers: &PlanTriggers) {
    let mut warnings = Vec::new();
    for (phase, found) in [("start", &triggers.start), ("complete", &triggers.complete)] {
        for (i, t) in found.iter().enumerate() {
            let Some(t) = t else { continue };
            if let Some(object) = value[phase][i].as_object_mut() {
                // The step is flattened: its action's fields are the step's.
                let table = object.get("table").cloned().unwrap_or_default();
                object.insert(
                    "backfill_triggers".into(),
                    serde_json::to_value(t).unwrap_or_default(),
                );
                if let Some(w) = t.warning() {
                    warnings.push(serde_json::json!({
                        "phase": phase, "step": i + 1, "table": table, "message": w,
                        "triggers": t.firing.iter().map(|f| f.name.clone()).collect::<Vec<_>>(),
                    }));
                }
            }
        }
    }
    value["warnings"] = warnings.into();
}

/// `warnings:` under the plan: each backfill that fires application triggers.
fn warnings_text(plan: &Plan, triggers: &PlanTriggers) -> String {
    let mut out = String::new();
    for (phase, steps, found) in [
        ("start", &plan.start, &triggers.start),
        ("complete", &plan.complete, &triggers.complete),
    ] {
        for (i, (step, t)) in steps.iter().zip(found).enumerate() {
            if let (Some(w), Action::Backfill(b)) =
                (t.as_ref().and_then(|t| t.warning()), &step.action)
            {
                out.push_str(&format!(
                    "  - {phase} step {}, backfill of \"{}\": {w}\n",
                    i + 1,
                    b.table
                ));
            }
        }
    }
    if out.is_empty() {
        return out;
    }
    format!("\nwarnings:\n{out}")
}

/// The lint's findings under the plan (nothing when there are none); `start` refuses while a
/// refusal among them remains.
fn findings_text(found: &FileFindings) -> String {
    if found.findings.is_empty() {
        return String::new();
    }
    format!("\nlint:\n{}", found.text(&[]))
}

/// The plan as JSON, each backfill step with its `estimated_rows` (null when the statistics
/// cannot tell).
pub fn plan_json(plan: &Plan, estimates: &PlanEstimates) -> serde_json::Value {
    let mut value = serde_json::to_value(plan).unwrap_or_default();
    for (phase, steps, rows) in [
        ("start", &plan.start, &estimates.start),
        ("complete", &plan.complete, &estimates.complete),
    ] {
        for (i, step) in steps.iter().enumerate() {
            if !is_backfill(step) {
                continue;
            }
            if let Some(object) = value[phase][i].as_object_mut() {
                object.insert(
                    "estimated_rows".into(),
                    rows.get(i).copied().flatten().into(),
                );
            }
        }
    }
    value
}

fn is_backfill(step: &Step) -> bool {
    matches!(step.action, Action::Backfill(_))
}

/// `~12,345 rows`, or why there is no number.
pub fn rows_text(estimate: Option<i64>) -> String {
    match estimate {
        Some(1) => "~1 row".to_string(),
        Some(n) => format!("~{} rows", thousands(n)),
        None => "(rows unknown: the table was never analysed)".to_string(),
    }
}

/// `12345` → `12,345`.
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_counts_read_easily() {
        assert_eq!(rows_text(Some(12345)), "~12,345 rows");
        assert_eq!(rows_text(Some(0)), "~0 rows");
        assert_eq!(rows_text(Some(1)), "~1 row");
        assert_eq!(rows_text(Some(999)), "~999 rows");
        assert_eq!(rows_text(Some(1_000_000)), "~1,000,000 rows");
        assert_eq!(
            rows_text(None),
            "(rows unknown: the table was never analysed)"
        );
    }
}
