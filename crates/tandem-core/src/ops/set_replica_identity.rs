//! `set_replica_identity`: a catalog-only change of the table both versions share, made at
//! start (as pgroll does); rollback restores the identity the table had before.

use crate::ident::{qualified, quote_ident};
use crate::migration::SetReplicaIdentity;
use crate::ops::create_index::{keyword, not_allowed};
use crate::ops::{unknown_table, Op};
use crate::plan::{Lock, Phase, Step};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::{ReplicaIdentity, Schema, Table};

const TYPES: &[&str] = &["full", "default", "nothing", "index"];

impl Op for SetReplicaIdentity {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let mut problems = Vec::new();
        let kind = keyword(&Some(self.identity.kind.clone()), TYPES);
        if kind.is_none() {
            problems.push(not_allowed(
                "/identity/type",
                &Some(self.identity.kind.clone()),
                TYPES,
            ));
        }
        let Some(table) = schema.table(&self.table) else {
            problems.push(unknown_table("/table", &self.table, schema));
            return problems;
        };
        if kind == Some("index") {
            match &self.identity.index {
                None => problems.push(
                    Problem::new("/identity", "type index needs the name of the index")
                        .with_hint("add `index`: a unique index of the table"),
                ),
                Some(name) => problems.extend(check_index(table, name)),
            }
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let Some(table) = schema.table_mut(&self.table) else {
            return;
        };
        let wanted = match keyword(&Some(self.identity.kind.clone()), TYPES) {
            Some("full") => Some(ReplicaIdentity::Full),
            Some("nothing") => Some(ReplicaIdentity::Nothing),
            Some("index") => Some(ReplicaIdentity::Index {
                index: self.identity.index.clone().unwrap_or_default(),
            }),
            _ => None,
        };
        let target = qualified(cx.base, &table.physical);
        let set = |phase: Phase, identity: &Option<ReplicaIdentity>| {
            let clause = clause(identity);
            Step::sql(
                phase,
                format!(
                    "set replica identity of {} to {clause}",
                    quote_ident(&table.physical)
                ),
                format!("ALTER TABLE {target} REPLICA IDENTITY {clause}"),
            )
            .lock(Lock::AccessExclusive)
        };
        let start = set(Phase::Start, &wanted);
        let rollback = set(Phase::Rollback, &table.replica_identity);
        table.replica_identity = wanted;
        cx.start(start);
        cx.rollback_of_last_start(rollback);
    }
}

fn clause(identity: &Option<ReplicaIdentity>) -> String {
    match identity {
        None => "DEFAULT".to_string(),
        Some(ReplicaIdentity::Full) => "FULL".to_string(),
        Some(ReplicaIdentity::Nothing) => "NOTHING".to_string(),
        Some(ReplicaIdentity::Index { index }) => format!("USING INDEX {}", quote_ident(index)),
    }
}

/// PostgreSQL takes only a unique, non-partial index over plain NOT NULL columns.
fn check_index(table: &Table, name: &str) -> Vec<Problem> {
    let Some(index) = table.indexes.iter().find(|i| i.name == name) else {
        let names: Vec<&str> = table.indexes.iter().map(|i| i.name.as_str()).collect();
        return vec![Problem::new(
            "/identity/index",
            format!(
                "index \"{name}\" does not exist on table \"{}\"",
                table.name
            ),
        )
        .with_hint(if names.is_empty() {
            "the table has no indexes".to_string()
        } else {
            format!("its indexes: {}", names.join(", "))
        })];
    };
    let mut reasons = Vec::new();
    if !index.unique {
        reasons.push("it is not unique".to_string());
    }
    if index.definition.contains(" WHERE ") {
        reasons.push("it is partial".to_string());
    }
    let deferrable = index
        .constraint
        .as_deref()
        .and_then(|c| table.constraint(c))
        .is_some_and(|c| c.definition.contains(" DEFERRABLE"));
    if deferrable {
        reasons.push("its constraint is deferrable".to_string());
    }
    if index.columns.iter().any(String::is_empty) {
        reasons.push("it indexes an expression".to_string());
    }
    let nullable: Vec<&str> = index
        .columns
        .iter()
        .filter(|c| table.column(c).is_some_and(|col| col.nullable))
        .map(String::as_str)
        .collect();
    if !nullable.is_empty() {
        reasons.push(format!("column {} can be NULL", nullable.join(", ")));
    }
    if reasons.is_empty() {
        return Vec::new();
    }
    vec![Problem::new(
        "/identity/index",
        format!(
            "index \"{name}\" cannot be a replica identity: {}",
            reasons.join(", ")
        ),
    )
    .with_hint("use a unique, non-partial index over NOT NULL columns")]
}
