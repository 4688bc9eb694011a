//! `create_index`: built `CONCURRENTLY` at start, outside any transaction, so writes go on
//! during the build. An index is invisible to clients except through plans, so both versions
//! use it at once and complete has nothing to do. A failed build leaves an invalid index
//! behind: the step carries a cleanup that drops it before a retry, and rollback (which also
//! runs when start fails at this step) drops it too.
//!
//! Columns (and the predicate) use the new version's names; they are mapped onto the physical
//! columns, so an index over a column renamed or shadowed by this migration follows it.

use crate::expr::rename_column_refs;
use crate::ident::{bounded_name, qualified, quote_ident, MAX_IDENT_BYTES};
use crate::migration::{CreateIndex, IndexColumn};
use crate::ops::{unknown_column, unknown_table, Op};
use crate::plan::{Hazard, Lock, Phase, Step, Tx};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::{self, ConstraintKind, Schema, Table};

/// Index access methods, as PostgreSQL names them.
const METHODS: &[&str] = &["btree", "hash", "gist", "spgist", "gin", "brin"];
const SORTS: &[&str] = &["ASC", "DESC"];
const NULLS: &[&str] = &["FIRST", "LAST"];

impl Op for CreateIndex {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let mut problems = Vec::new();
        problems.extend(check_relation_name(schema, &self.name, "/name", "index"));
        let method = keyword(&self.method, METHODS);
        if self.method.is_some() && method.is_none() {
            problems.push(not_allowed("/method", &self.method, METHODS));
        }
        let method = method.unwrap_or("btree");
        if self.unique.unwrap_or(false) && method != "btree" {
            problems.push(
                Problem::new(
                    "/unique",
                    format!("access method \"{method}\" does not support unique indexes"),
                )
                .with_hint("only btree indexes can be unique"),
            );
        }
        if self.columns.0.is_empty() {
            problems.push(Problem::new(
                "/columns",
                "an index needs at least one column",
            ));
        }
        if self.columns.0.len() > 1 && matches!(method, "hash" | "spgist") {
            problems.push(Problem::new(
                "/columns",
                format!("access method \"{method}\" does not support multicolumn indexes"),
            ));
        }
        for (i, column) in self.columns.0.iter().enumerate() {
            let at = format!("/columns/{i}");
            if column.sort.is_some() && keyword(&column.sort, SORTS).is_none() {
                problems.push(not_allowed(&format!("{at}/sort"), &column.sort, SORTS));
            }
            if column.nulls.is_some() && keyword(&column.nulls, NULLS).is_none() {
                problems.push(not_allowed(&format!("{at}/nulls"), &column.nulls, NULLS));
            }
            if (column.sort.is_some() || column.nulls.is_some()) && method != "btree" {
                problems.push(Problem::new(
                    at.clone(),
                    format!(
                        "access method \"{method}\" does not support ASC/DESC or NULLS FIRST/LAST"
                    ),
                ));
            }
            if let Some(opclass) = &column.opclass {
                if opclass.name.split('.').any(str::is_empty) || opclass.name.split('.').count() > 2
                {
                    problems.push(
                        Problem::new(
                            format!("{at}/opclass/name"),
                            format!("\"{}\" is not an operator class name", opclass.name),
                        )
                        .with_hint("write the name alone (text_pattern_ops) or with its schema (public.my_ops)"),
                    );
                }
            }
            if column.collate.as_deref() == Some("") {
                problems.push(Problem::new(
                    format!("{at}/collate"),
                    "the collation name is empty",
                ));
            }
        }
        let Some(table) = schema.table(&self.table) else {
            problems.push(unknown_table("/table", &self.table, schema));
            return problems;
        };
        for (i, column) in self.columns.0.iter().enumerate() {
            if table.column(&column.column).is_none() {
                problems.push(unknown_column(
                    &format!("/columns/{i}"),
                    table,
                    &column.column,
                ));
            }
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let Some(table) = schema.table(&self.table) else {
            return;
        };
        if cx.before.index(&self.name).is_some() {
            // Dropped earlier in this migration, but only at complete: the name is still taken
            // at start, and rollback's DROP INDEX would hit the old index.
            cx.problem(
                Problem::new(
                    "/name",
                    format!(
                        "index \"{}\" is dropped by this migration only at complete, so its name is still taken",
                        self.name
                    ),
                )
                .with_hint("give the new index another name, or create it in a later migration"),
            );
            return;
        }
        let definition = self.definition(cx.base, table);
        if table.partitioned {
            self.plan_partitioned(schema, cx, table);
        } else {
            self.plan_concurrent_build(cx, table, &self.name, &table.physical);
        }
        let columns = self.columns.0.iter().map(|c| c.column.clone()).collect();
        if let Some(t) = schema.table_mut(&self.table) {
            t.indexes.push(schema::Index {
                name: self.name.clone(),
                columns,
                unique: self.unique.unwrap_or(false),
                primary: false,
                definition,
                constraint: None,
            });
        }
    }
}

impl CreateIndex {
    /// `CREATE INDEX CONCURRENTLY name ON relation`: writes go on during the build; a failed
    /// build's invalid index is dropped before a retry, and by rollback.
    fn plan_concurrent_build(&self, cx: &mut PlanCx, table: &Table, name: &str, relation: &str) {
        let index = qualified(cx.base, name);
        let drop = format!("DROP INDEX CONCURRENTLY IF EXISTS {index}");
        let concurrently = self.definition_on(cx.base, table, name, relation).replacen(
            " INDEX ",
            " INDEX CONCURRENTLY ",
            1,
        );
        cx.start(
            Step::sql(
                Phase::Start,
                format!(
                    "build index {} on {} concurrently",
                    quote_ident(name),
                    quote_ident(relation)
                ),
                concurrently,
            )
            .tx(Tx::None)
            .lock(Lock::ShareUpdateExclusive)
            .hazard(Hazard::IndexBuild)
            .cleanup(drop.clone()),
        );
        cx.rollback(
            Step::sql(
                Phase::Rollback,
                format!("drop index {}", quote_ident(name)),
                drop,
            )
            .tx(Tx::None)
            .lock(Lock::ShareUpdateExclusive),
        );
    }

    /// PostgreSQL cannot build an index on a partitioned table `CONCURRENTLY`, so, as its
    /// documentation advises: each partition's index is built concurrently, then the parent's
    /// index is made `ON ONLY` the parent (catalog only) and each partition's is attached,
    /// which makes it valid. Partitions that are partitioned themselves go the same way.
    /// Rollback drops the parent's index (which takes the attached ones along), then any
    /// partition's index a failed start left unattached.
    fn plan_partitioned(&self, schema: &Schema, cx: &mut PlanCx, table: &Table) {
        let group = Tx::Group(format!("attach index {}", self.name));
        self.plan_partitioned_tree(schema, cx, table, &self.name, &table.physical, &group);
    }

    fn plan_partitioned_tree(
        &self,
        schema: &Schema,
        cx: &mut PlanCx,
        table: &Table,
        name: &str,
        relation: &str,
        group: &Tx,
    ) {
        let index = qualified(cx.base, name);
        // Pushed before the partitions' own drops: rollback runs an operation's steps in
        // order, and an attached index can only go with its parent's.
        cx.rollback(
            Step::sql(
                Phase::Rollback,
                format!("drop index {}", quote_ident(name)),
                format!("DROP INDEX IF EXISTS {index}"),
            )
            .tx(Tx::None)
            .lock(Lock::AccessExclusive),
        );
        let children: Vec<(String, bool)> = schema
            .children_of(relation)
            .map(|c| (c.physical.clone(), c.partitioned))
            .collect();
        let mut attach = Vec::new();
        for (child, partitioned) in &children {
            let child_index = bounded_name(&[child, name]);
            if *partitioned {
                self.plan_partitioned_tree(schema, cx, table, &child_index, child, group);
            } else {
                self.plan_concurrent_build(cx, table, &child_index, child);
            }
            attach.push(child_index);
        }
        let only =
            self.definition_on(cx.base, table, name, relation)
                .replacen(" ON ", " ON ONLY ", 1);
        cx.start(
            Step::sql(
                Phase::Start,
                format!(
                    "create index {} on {} alone (no scan)",
                    quote_ident(name),
                    quote_ident(relation)
                ),
                only,
            )
            .tx(group.clone())
            .lock(Lock::Share),
        );
        for child_index in &attach {
            cx.start(
                Step::sql(
                    Phase::Start,
                    format!(
                        "attach index {} to {}",
                        quote_ident(child_index),
                        quote_ident(name)
                    ),
                    format!(
                        "ALTER INDEX {index} ATTACH PARTITION {}",
                        qualified(cx.base, child_index)
                    ),
                )
                .tx(group.clone())
                .lock(Lock::ShareUpdateExclusive),
            );
        }
    }

    /// The statement without `CONCURRENTLY`, in `pg_get_indexdef`'s shape and with physical
    /// names, as the schema model keeps it (a later shadow column copies the index from it).
    fn definition(&self, base: &str, table: &Table) -> String {
        self.definition_on(base, table, &self.name, &table.physical)
    }

    /// [`CreateIndex::definition`] named `name`, on `relation` (the table or a partition of
    /// it, whose columns are the table's).
    fn definition_on(&self, base: &str, table: &Table, name: &str, relation: &str) -> String {
        let unique = if self.unique.unwrap_or(false) {
            "UNIQUE "
        } else {
            ""
        };
        let method = keyword(&self.method, METHODS).unwrap_or("btree");
        let columns: Vec<String> = self
            .columns
            .0
            .iter()
            .map(|c| column_clause(c, table))
            .collect();
        let mut sql = format!(
            "CREATE {unique}INDEX {} ON {} USING {method} ({})",
            quote_ident(name),
            qualified(base, relation),
            columns.join(", ")
        );
        if let Some(parameters) = &self.storage_parameters {
            sql.push_str(&format!(" WITH ({parameters})"));
        }
        if let Some(predicate) = &self.predicate {
            sql.push_str(&format!(" WHERE {}", physical_refs(predicate, table)));
        }
        sql
    }
}

/// `"col" [COLLATE "c"] [opclass [(params)]] [ASC|DESC] [NULLS FIRST|LAST]`.
fn column_clause(c: &IndexColumn, table: &Table) -> String {
    let physical = table
        .column(&c.column)
        .map_or(c.column.as_str(), |col| col.physical.as_str());
    let mut sql = quote_ident(physical);
    if let Some(collate) = &c.collate {
        sql.push_str(&format!(" COLLATE {}", quote_ident(collate)));
    }
    if let Some(opclass) = &c.opclass {
        let name: Vec<String> = opclass.name.split('.').map(quote_ident).collect();
        sql.push(' ');
        sql.push_str(&name.join("."));
        if let Some(params) = opclass.params.as_ref().filter(|p| !p.is_empty()) {
            sql.push_str(&format!(" ({})", params.join(", ")));
        }
    }
    if let Some(sort) = keyword(&c.sort, SORTS) {
        sql.push(' ');
        sql.push_str(sort);
    }
    if let Some(nulls) = keyword(&c.nulls, NULLS) {
        sql.push_str(" NULLS ");
        sql.push_str(nulls);
    }
    sql
}

/// `sql` (in the new version's column names) with every column pointed at its physical
/// column. Through placeholders first, so that two swapped names do not chase each other.
fn physical_refs(sql: &str, table: &Table) -> String {
    let renames: Vec<(&str, &str)> = table
        .columns
        .iter()
        .filter(|c| c.name != c.physical)
        .map(|c| (c.name.as_str(), c.physical.as_str()))
        .collect();
    let placeholder = |i: usize| format!("\u{1}tandem_ref_{i}");
    let mut out = sql.to_string();
    for (i, (logical, _)) in renames.iter().enumerate() {
        out = rename_column_refs(&out, logical, &placeholder(i));
    }
    for (i, (_, physical)) in renames.iter().enumerate() {
        out = rename_column_refs(&out, &placeholder(i), physical);
    }
    out
}

/// The allowed keyword `value` stands for, whatever its case, or `None`.
pub(crate) fn keyword(value: &Option<String>, allowed: &[&'static str]) -> Option<&'static str> {
    let value = value.as_deref()?.trim();
    allowed
        .iter()
        .copied()
        .find(|k| k.eq_ignore_ascii_case(value))
}

pub(crate) fn not_allowed(pointer: &str, value: &Option<String>, allowed: &[&str]) -> Problem {
    Problem::new(
        pointer,
        format!(
            "\"{}\" is not one of the allowed values",
            value.as_deref().unwrap_or_default()
        ),
    )
    .with_hint(format!("use one of: {}", allowed.join(", ")))
}

/// Index names share one namespace with tables and the indexes behind constraints, and
/// PostgreSQL would silently truncate a longer name.
pub(crate) fn check_relation_name(
    schema: &Schema,
    name: &str,
    pointer: &str,
    what: &str,
) -> Option<Problem> {
    if name.is_empty() {
        return Some(Problem::new(pointer, format!("the {what} name is empty")));
    }
    if name.len() > MAX_IDENT_BYTES {
        return Some(Problem::new(
            pointer,
            format!(
                "the {what} name is {} bytes long; PostgreSQL allows {MAX_IDENT_BYTES}",
                name.len()
            ),
        ));
    }
    let taken = schema.index(name).is_some()
        || schema
            .tables
            .iter()
            .any(|t| t.name == name || t.physical == name)
        || schema.tables.iter().any(|t| {
            t.constraints.iter().any(|c| {
                c.name == name
                    && matches!(
                        c.kind,
                        ConstraintKind::PrimaryKey
                            | ConstraintKind::Unique
                            | ConstraintKind::Exclude
                    )
            })
        });
    taken.then(|| {
        Problem::new(
            pointer,
            format!(
                "a relation named \"{name}\" already exists in schema \"{}\"",
                schema.name
            ),
        )
        .with_hint("index names are unique across the schema's tables and indexes")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::OpClass;
    use crate::schema::Column;

    fn table() -> Table {
        let column = |name: &str, physical: &str| Column {
            name: name.to_string(),
            physical: physical.to_string(),
            type_name: "text".to_string(),
            ..Column::default()
        };
        Table {
            name: "Users".to_string(),
            physical: "users".to_string(),
            columns: vec![
                column("a", "b"),
                column("b", "a"),
                column("email", "_tandem_new_email"),
            ],
            ..Table::default()
        }
    }

    fn index(json: &str) -> CreateIndex {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn definition_uses_physical_names_and_canonical_keywords() {
        let op = index(
            r#"{"name": "Idx", "table": "Users", "unique": true, "method": "BTree",
                "columns": [{"column": "email", "collate": "C", "sort": "desc", "nulls": "first",
                             "opclass": {"name": "pg_catalog.text_pattern_ops"}}, "a"],
                "storage_parameters": "fillfactor = 70", "predicate": "a > b AND email <> 'a'"}"#,
        );
        assert_eq!(
            op.definition("public", &table()),
            r#"CREATE UNIQUE INDEX "Idx" ON "public"."users" USING btree ("_tandem_new_email" COLLATE "C" "pg_catalog"."text_pattern_ops" DESC NULLS FIRST, "b") WITH (fillfactor = 70) WHERE "b" > "a" AND "_tandem_new_email" <> 'a'"#
        );
    }

    #[test]
    fn opclass_parameters_follow_the_name() {
        let c = IndexColumn {
            column: "a".to_string(),
            collate: None,
            sort: None,
            nulls: None,
            opclass: Some(OpClass {
                name: "gist_trgm_ops".to_string(),
                params: Some(vec!["siglen = 32".to_string()]),
            }),
        };
        assert_eq!(
            column_clause(&c, &table()),
            r#""b" "gist_trgm_ops" (siglen = 32)"#
        );
    }

    #[test]
    fn keywords_are_checked_before_they_reach_sql() {
        let schema = Schema {
            name: "public".to_string(),
            tables: vec![table()],
            ..Schema::default()
        };
        let op = index(
            r#"{"name": "i", "table": "Users", "method": "btree; DROP TABLE x",
                "columns": [{"column": "a", "sort": "DESC NULLS", "nulls": "x"}]}"#,
        );
        let pointers: Vec<String> = op.check(&schema).into_iter().map(|p| p.pointer).collect();
        assert_eq!(pointers, ["/method", "/columns/0/sort", "/columns/0/nulls"]);
        let op = index(r#"{"name": "users", "table": "Users", "columns": ["nope"]}"#);
        let pointers: Vec<String> = op.check(&schema).into_iter().map(|p| p.pointer).collect();
        assert_eq!(pointers, ["/name", "/columns/0"]);
    }
}
