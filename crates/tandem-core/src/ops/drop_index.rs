//! `drop_index`: the index stays until complete, since the old version's queries may rely on
//! it; complete drops it `CONCURRENTLY`, after the contract. Rollback has nothing to undo.

use crate::ident::{qualified, quote_ident};
use crate::migration::DropIndex;
use crate::ops::Op;
use crate::plan::{Lock, Phase, Step, Tx};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::{ReplicaIdentity, Schema};

impl Op for DropIndex {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let Some((table, index)) = schema.index(&self.name) else {
            let names: Vec<&str> = schema
                .tables
                .iter()
                .flat_map(|t| t.indexes.iter().map(|i| i.name.as_str()))
                .collect();
            let hint = if names.is_empty() {
                "there are no indexes".to_string()
            } else {
                format!("existing indexes: {}", names.join(", "))
            };
            return vec![Problem::new(
                "/name",
                format!(
                    "index \"{}\" does not exist in schema \"{}\"",
                    self.name, schema.name
                ),
            )
            .with_hint(hint)];
        };
        match &index.constraint {
            Some(constraint) => vec![Problem::new(
                "/name",
                format!(
                    "index \"{}\" backs constraint \"{constraint}\" of table \"{}\"",
                    self.name, table.name
                ),
            )
            .with_hint("drop the constraint instead (drop_constraint)")],
            None => Vec::new(),
        }
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let on_partitioned = schema
            .index(&self.name)
            .is_some_and(|(table, _)| table.partitioned);
        // PostgreSQL cannot drop a partitioned table's index concurrently: a plain DROP
        // INDEX, under the lock timeout like any DDL, takes it and its partitions' indexes.
        let (sql, lock) = if on_partitioned {
            (
                format!("DROP INDEX IF EXISTS {}", qualified(cx.base, &self.name)),
                Lock::AccessExclusive,
            )
        } else {
            (
                format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {}",
                    qualified(cx.base, &self.name)
                ),
                Lock::ShareUpdateExclusive,
            )
        };
        cx.complete_after(
            Step::sql(
                Phase::Complete,
                format!("drop index {}", quote_ident(&self.name)),
                sql,
            )
            .tx(Tx::None)
            .lock(lock),
        );
        for table in &mut schema.tables {
            table.indexes.retain(|i| i.name != self.name);
            // A replica identity whose index is dropped behaves as NOTHING, and reads so.
            if matches!(&table.replica_identity, Some(ReplicaIdentity::Index { index }) if *index == self.name)
            {
                table.replica_identity = Some(ReplicaIdentity::Nothing);
            }
        }
    }
}
