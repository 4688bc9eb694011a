//! One file per operation, all behind [`Op`].

use crate::migration::Operation;
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

mod add_column;
mod alter_column;
mod create_constraint;
mod create_index;
mod create_table;
mod drop_column;
mod drop_constraint;
mod drop_index;
mod drop_multicolumn_constraint;
mod drop_table;
mod rename_column;
mod rename_constraint;
mod rename_table;
mod set_replica_identity;
mod shadow;
mod sql;

pub(crate) use shadow::{copy_onto_shadows, unless_it_raises};

/// An operation of a migration file.
pub trait Op {
    /// Semantic checks against the schema as the earlier operations left it. Pointers are
    /// relative to the operation's body (`/column/name`).
    fn check(&self, schema: &Schema) -> Vec<Problem>;

    /// Emits this operation's start, complete and rollback steps into `cx`, and applies the
    /// operation to `schema`, the virtual schema the new version will see. Only called when
    /// [`Op::check`] found nothing.
    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx);
}

pub fn op_for(operation: &Operation) -> &dyn Op {
    match operation {
        Operation::CreateTable(o) => o,
        Operation::AddColumn(o) => o,
        Operation::DropColumn(o) => o,
        Operation::RenameColumn(o) => o,
        Operation::RenameTable(o) => o,
        Operation::DropTable(o) => o,
        Operation::Sql(o) => o,
        Operation::AlterColumn(o) => o,
        Operation::CreateIndex(o) => o,
        Operation::DropIndex(o) => o,
        Operation::CreateConstraint(o) => o,
        Operation::DropConstraint(o) => o,
        Operation::DropMulticolumnConstraint(o) => o,
        Operation::RenameConstraint(o) => o,
        Operation::SetReplicaIdentity(o) => o,
    }
}

/// An `up` or `down` as the file gives it: an empty (or blank) one is the same as none, as in
/// pgroll, where the default then applies.
pub(crate) fn given(expr: Option<&str>) -> Option<&str> {
    expr.filter(|e| !e.trim().is_empty())
}

/// The problem every operation reports for a table that is not there.
pub(crate) fn unknown_table(pointer: &str, table: &str, schema: &Schema) -> Problem {
    Problem::new(
        pointer,
        format!(
            "table \"{table}\" does not exist in schema \"{}\"",
            schema.name
        ),
    )
    .with_hint(known_names(
        "existing tables",
        schema.tables.iter().map(|t| t.name.as_str()),
    ))
}

pub(crate) fn unknown_column(pointer: &str, table: &crate::schema::Table, column: &str) -> Problem {
    Problem::new(
        pointer,
        format!(
            "column \"{column}\" does not exist on table \"{}\"",
            table.name
        ),
    )
    .with_hint(known_names(
        "its columns",
        table.columns.iter().map(|c| c.name.as_str()),
    ))
}

fn known_names<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        format!("there are no {what}")
    } else {
        format!("{what}: {}", names.join(", "))
    }
}

/// Changing a column that an earlier operation of the same migration added would need a
/// shadow of a column no old version has: the add_column should say what is wanted.
pub(crate) fn added_here_problem(column: &str) -> crate::problem::Problem {
    crate::problem::Problem::new(
        "",
        format!("column \"{column}\" is added earlier in this same migration"),
    )
    .with_hint("give the add_column operation the column's final definition instead")
}
