//! `tandem plan FILE`: the steps of start, complete and rollback with their locks, hazards and,
//! for backfills, the rows the statistics expect. Reads the database, never changes it.

use std::path::Path;

use tandem_core::plan::{Action, Plan, Step};
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
    if json {
        let mut value = plan_json(&plan, &estimates);
        value["findings"] = found.json().into();
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        print!("{}", render::plan_text(&plan, &estimates));
        print!("{}", findings_text(&found));
    }
    Ok(())
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
