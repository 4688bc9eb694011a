//! `rename_constraint`: as in pgroll, the constraint is renamed at complete (a catalog-only
//! change), so the old version, which may name it (in its error handling, say), keeps seeing
//! the name it knows until then; rollback has nothing to undo. A constraint of a table this
//! migration creates is renamed at once: no old version sees it. PostgreSQL renames the index
//! behind a unique, primary-key or exclusion constraint with it.

use crate::ident::{qualified, quote_ident, MAX_IDENT_BYTES};
use crate::migration::RenameConstraint;
use crate::ops::create_index::check_relation_name;
use crate::ops::shadow::if_constraint_exists;
use crate::ops::{unknown_table, Op};
use crate::plan::{Lock, Phase, Step};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::{ConstraintKind, ReplicaIdentity, Schema, Table};

impl Op for RenameConstraint {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let Some(table) = schema.table(&self.table) else {
            return vec![unknown_table("/table", &self.table, schema)];
        };
        let mut problems = Vec::new();
        if table.constraint(&self.from).is_none() {
            let names: Vec<&str> = table.constraints.iter().map(|c| c.name.as_str()).collect();
            problems.push(
                Problem::new(
                    "/from",
                    format!(
                        "constraint \"{}\" does not exist on table \"{}\"",
                        self.from, self.table
                    ),
                )
                .with_hint(if names.is_empty() {
                    "the table has no constraints".to_string()
                } else {
                    format!("its constraints: {}", names.join(", "))
                }),
            );
        }
        if table.constraint(&self.to).is_some() {
            problems.push(Problem::new(
                "/to",
                format!(
                    "constraint \"{}\" already exists on table \"{}\"",
                    self.to, self.table
                ),
            ));
        } else if self.to.is_empty() || self.to.len() > MAX_IDENT_BYTES {
            problems.push(Problem::new(
                "/to",
                format!("a constraint name is 1 to {MAX_IDENT_BYTES} bytes long"),
            ));
        } else if has_index(table, &self.from) {
            // The index takes the new name too, in the schema-wide namespace of relations.
            problems.extend(check_relation_name(schema, &self.to, "/to", "constraint"));
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let Some(table) = schema.table_mut(&self.table) else {
            return;
        };
        let Some(constraint) = table.constraint(&self.from) else {
            return;
        };
        // Constraints over a column this migration shadows are copied onto the shadow under
        // their name from before the migration, and renamed back to it at complete.
        let shadowed = constraint.columns.iter().any(|c| {
            table.column(c).is_some_and(|col| {
                cx.shadows
                    .contains(&(table.physical.clone(), col.physical.clone()))
            })
        });
        if shadowed {
            cx.problem(
                Problem::new(
                    "/from",
                    format!(
                        "constraint \"{}\" is on a column this migration rebuilds",
                        self.from
                    ),
                )
                .with_hint("rename the constraint in a migration of its own"),
            );
            return;
        }
        // A constraint or index this migration drops keeps its name until complete.
        let still_taken = cx
            .before
            .table_by_physical(&table.physical)
            .is_some_and(|t| t.constraint(&self.to).is_some())
            || (has_index(table, &self.from) && cx.before.index(&self.to).is_some());
        if still_taken {
            cx.problem(
                Problem::new(
                    "/to",
                    format!(
                        "\"{}\" is dropped by this migration only at complete, so the name is still taken",
                        self.to
                    ),
                )
                .with_hint("rename the constraint in a later migration"),
            );
            return;
        }
        let target = qualified(cx.base, &table.physical);
        let rename = |phase: Phase, from: &str, to: &str| {
            Step::sql(
                phase,
                format!(
                    "rename constraint {} of {} to {}",
                    quote_ident(from),
                    quote_ident(&table.physical),
                    quote_ident(to)
                ),
                format!(
                    "ALTER TABLE {target} RENAME CONSTRAINT {} TO {}",
                    quote_ident(from),
                    quote_ident(to)
                ),
            )
            .lock(Lock::AccessExclusive)
        };
        if cx.created_here(&table.physical) {
            cx.start(rename(Phase::Start, &self.from, &self.to));
        } else {
            // In the table's contract transaction. A constraint that went with an old column
            // replaced by a shadow has nothing left to rename (its copy gets the name).
            let sql = format!(
                "ALTER TABLE {target} RENAME CONSTRAINT {} TO {}",
                quote_ident(&self.from),
                quote_ident(&self.to)
            );
            let guarded = if_constraint_exists(cx.base, &table.physical, &self.from, &sql);
            let step = Step::sql(
                Phase::Complete,
                format!(
                    "rename constraint {} of {} to {}",
                    quote_ident(&self.from),
                    quote_ident(&table.physical),
                    quote_ident(&self.to)
                ),
                guarded,
            )
            .lock(Lock::AccessExclusive);
            let physical = table.physical.clone();
            cx.contract(&physical, step);
        }
        for constraint in table.constraints.iter_mut().filter(|c| c.name == self.from) {
            constraint.name = self.to.clone();
        }
        for index in table
            .indexes
            .iter_mut()
            .filter(|i| i.constraint.as_deref() == Some(self.from.as_str()))
        {
            index.constraint = Some(self.to.clone());
            if index.name == self.from {
                if matches!(&table.replica_identity, Some(ReplicaIdentity::Index { index: replica }) if *replica == self.from)
                {
                    table.replica_identity = Some(ReplicaIdentity::Index {
                        index: self.to.clone(),
                    });
                }
                index.name = self.to.clone();
            }
        }
    }
}

/// Whether the constraint is backed by an index, which PostgreSQL renames along with it.
fn has_index(table: &Table, constraint: &str) -> bool {
    table
        .indexes
        .iter()
        .any(|i| i.constraint.as_deref() == Some(constraint))
        || table.constraint(constraint).is_some_and(|c| {
            matches!(
                c.kind,
                ConstraintKind::PrimaryKey | ConstraintKind::Unique | ConstraintKind::Exclude
            )
        })
}
