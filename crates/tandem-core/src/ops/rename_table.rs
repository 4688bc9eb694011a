//! `rename_table`: the new version's view has the new name at start; the table is renamed at
//! complete. Nothing to roll back.

use crate::migration::RenameTable;
use crate::ops::{unknown_table, Op};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

impl Op for RenameTable {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let mut problems = Vec::new();
        if schema.table(&self.from).is_none() {
            problems.push(unknown_table("/from", &self.from, schema));
        }
        if schema.table(&self.to).is_some() {
            problems.push(Problem::new(
                "/to",
                format!("table \"{}\" already exists", self.to),
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
        if let Some(table) = schema.table_mut(&self.from) {
            table.name.clone_from(&self.to);
        }
    }
}
