//! `drop_column`: the new version's view omits the column at start; the column itself stays
//! (old versions still read and write it) and is filled by `down` for new-version writes.
//! Complete drops it; rollback has nothing physical to undo but the trigger.

use crate::migration::DropColumn;
use crate::ops::{unknown_column, unknown_table, Op};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

impl Op for DropColumn {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let Some(table) = schema.table(&self.table) else {
            return vec![unknown_table("/table", &self.table, schema)];
        };
        let Some(column) = table.column(&self.column) else {
            return vec![unknown_column("/column", table, &self.column)];
        };
        let mut problems = Vec::new();
        if table.primary_key.contains(&self.column) {
            problems.push(
                Problem::new(
                    "/column",
                    format!(
                        "column \"{}\" is part of the primary key of \"{}\"",
                        self.column, self.table
                    ),
                )
                .with_hint("drop or change the primary key first"),
            );
        }
        let fillable = column.nullable
            || column.default.is_some()
            || column.identity.is_some()
            || column.generated.is_some();
        if !fillable && super::given(self.down.as_deref()).is_none() {
            problems.push(
                Problem::new("/down", format!("column \"{}\" is NOT NULL without a default: rows the new version inserts would have no value for old versions", self.column))
                    .with_hint("add `down`: an SQL expression over the new row that fills the old column"),
            );
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let Some(table) = schema.table_mut(&self.table) else {
            return;
        };
        let Some(position) = table.columns.iter().position(|c| c.name == self.column) else {
            return;
        };
        let physical_table = table.physical.clone();
        let physical = table.columns[position].physical.clone();
        // A column added earlier in this migration simply never shows: no version sees it,
        // and complete drops it (pgroll runs the pair the same way).
        if !cx.created_here(&physical_table)
            && cx.shadows.contains(&(physical_table.clone(), physical))
        {
            cx.problem(
                crate::problem::Problem::new(
                    "",
                    format!(
                        "column \"{}\" is changed earlier in this same migration",
                        self.column
                    ),
                )
                .with_hint("drop it without changing it first, or change it in a later migration"),
            );
            return;
        }
        let column = table.columns.remove(position);
        if let Some(down) = super::given(self.down.as_deref()) {
            cx.sync_down(&physical_table, &column.physical, down);
        }
    }
}
