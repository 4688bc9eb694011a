//! Partitions and inheritance children follow their parent.
//!
//! PostgreSQL adds, drops and renames an inherited column on every partition (and child) when
//! the parent's changes, and a row written through a partition is a row of the parent. So the
//! new version must see each partition with its parent's columns: the shadow in place of the
//! column it replaces, the new names, the added columns. Otherwise a partition's view reads
//! and writes the old column while the parent's view uses the new one, and writes through the
//! partition are lost at complete. The contract changes inherited columns on the parent only.

use std::collections::BTreeSet;

use crate::planner::PlanCx;
use crate::schema::{Schema, Table};

/// Gives every partition and child in `schema` its parent's columns as the new version sees
/// them (names, types, shadows), keeping a partition's own defaults and stricter NOT NULLs
/// for columns it already had, then the child's own columns.
pub(crate) fn follow_parents(cx: &PlanCx, schema: &mut Schema) {
    let mut order: Vec<(usize, String)> = schema
        .tables
        .iter()
        .filter(|t| t.parent.is_some())
        .map(|t| (depth(schema, t), t.physical.clone()))
        .collect();
    order.sort();
    for (_, physical) in order {
        let Some(child) = schema.table_by_physical(&physical) else {
            continue;
        };
        let Some(parent) = child
            .parent
            .as_deref()
            .and_then(|p| schema.table_by_physical(p))
        else {
            continue;
        };
        let inherited = inherited_columns(cx, schema, child);
        let before = cx.before.table_by_physical(&physical);
        let mut columns = Vec::new();
        for pc in &parent.columns {
            let mut column = pc.clone();
            if let Some(own) = before.and_then(|b| b.column_by_physical(&pc.physical)) {
                column.default = own.default.clone().or(column.default);
                column.nullable = column.nullable && own.nullable;
                column.comment = own.comment.clone();
            }
            columns.push(column);
        }
        columns.extend(
            child
                .columns
                .iter()
                .filter(|c| !inherited.contains(&c.physical))
                .cloned(),
        );
        let renames: Vec<(String, String)> = child
            .columns
            .iter()
            .filter_map(|c| {
                columns
                    .iter()
                    .find(|n| n.physical == c.physical && n.name != c.name)
                    .map(|n| (c.name.clone(), n.name.clone()))
            })
            .collect();
        if let Some(child) = schema.tables.iter_mut().find(|t| t.physical == physical) {
            child.columns = columns;
            for key in &mut child.primary_key {
                if let Some((_, to)) = renames.iter().find(|(from, _)| from == key) {
                    *key = to.clone();
                }
            }
        }
    }
}

/// How many parents up the chain `table` has, so parents are done before their children.
fn depth(schema: &Schema, table: &Table) -> usize {
    let mut depth = 0;
    let mut current = table;
    while let Some(parent) = current
        .parent
        .as_deref()
        .and_then(|p| schema.table_by_physical(p))
    {
        depth += 1;
        current = parent;
        if depth > schema.tables.len() {
            break;
        }
    }
    depth
}

/// The physical columns `table` inherits from its parent once start has run: the parent's
/// columns, with its shadows and added columns. The contract leaves them to the parent.
pub(crate) fn inherited_columns(cx: &PlanCx, schema: &Schema, table: &Table) -> BTreeSet<String> {
    let Some(parent) = table.parent.as_deref() else {
        return BTreeSet::new();
    };
    let mut inherited: BTreeSet<String> = cx
        .physical
        .get(parent)
        .map(|cols| cols.iter().cloned().collect())
        .unwrap_or_default();
    if let Some(p) = schema.table_by_physical(parent) {
        inherited.extend(p.columns.iter().map(|c| c.physical.clone()));
    }
    if let Some(p) = cx.before.table_by_physical(parent) {
        inherited.extend(p.columns.iter().map(|c| c.physical.clone()));
    }
    inherited
}
