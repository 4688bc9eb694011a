//! `sql`: raw SQL, run at start (or at complete with `onComplete`); `down` undoes it on
//! rollback. tandem cannot see what it changes, so the version schema's views are built from
//! the live schema after it ran.

use crate::migration::Sql;
use crate::ops::Op;
use crate::plan::{Hazard, Phase, Step};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

impl Op for Sql {
    fn check(&self, _schema: &Schema) -> Vec<Problem> {
        if self.up.trim().is_empty() {
            return vec![Problem::new("/up", "`up` is empty")];
        }
        Vec::new()
    }

    fn plan(&self, _schema: &mut Schema, cx: &mut PlanCx) {
        let step = |phase, what: &str, sql: &str| {
            Step::sql(phase, what, sql).hazard(Hazard::RunsArbitrarySql)
        };
        if self.on_complete.unwrap_or(false) {
            cx.complete_after(step(Phase::Complete, "run the migration's SQL", &self.up));
            cx.views_from_live_schema_after_complete();
            return;
        }
        cx.start(step(Phase::Start, "run the migration's SQL", &self.up));
        cx.views_from_live_schema();
        match self.down.as_deref().filter(|d| !d.trim().is_empty()) {
            Some(down) => cx.rollback_of_last_start(step(
                Phase::Rollback,
                "run the migration's down SQL",
                down,
            )),
            None => cx.irreversible_last_start(
                "its raw SQL has no `down`: what it did stays after rollback",
            ),
        }
    }
}
