//! `rename_column`: only the new version's view shows the new name at start; the physical
//! column is renamed at complete. Nothing to roll back.

use crate::migration::RenameColumn;
use crate::ops::{unknown_column, unknown_table, Op};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

impl Op for RenameColumn {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let Some(table) = schema.table(&self.table) else {
            return vec![unknown_table("/table", &self.table, schema)];
        };
        let mut problems = Vec::new();
        if table.column(&self.from).is_none() {
            problems.push(unknown_column("/from", table, &self.from));
        }
        if table.column(&self.to).is_some() {
            problems.push(Problem::new(
                "/to",
                format!(
                    "column \"{}\" already exists on table \"{}\"",
                    self.to, self.table
                ),
            ));
        }
        if self.to.len() > crate::ident::MAX_IDENT_BYTES {
            problems.push(Problem::new(
                "/to",
                "the name is longer than PostgreSQL's 63-byte limit",
            ));
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, _cx: &mut PlanCx) {
        super::alter_column::rename_in_virtual_schema(schema, &self.table, &self.from, &self.to);
    }
}
