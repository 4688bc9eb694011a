//! `alter_column`: every sub-change, alone or several at once on one column. Changes old
//! versions must not see (type, nullability, unique, check, foreign key) go into a shadow
//! column; a default or comment change and a rename need no copy.

use crate::ddl::{check_keyword, foreign_key_clause, MATCH_TYPES, REFERENTIAL_ACTIONS};
use crate::expr::rename_column_refs;
use crate::ident::{qualified, quote_ident, quote_literal, MAX_IDENT_BYTES};
use crate::migration::AlterColumn;
use crate::ops::shadow::{shadow_column, validate, ShadowSpec};
use crate::ops::{unknown_column, unknown_table, Op};
use crate::plan::{Hazard, Lock, Phase, Step, Tx};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

impl Op for AlterColumn {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let Some(table) = schema.table(&self.table) else {
            return vec![unknown_table("/table", &self.table, schema)];
        };
        let Some(column) = table.column(&self.column) else {
            return vec![unknown_column("/column", table, &self.column)];
        };
        let mut problems = Vec::new();
        let changes_something = self.name.is_some()
            || self.type_name.is_some()
            || self.nullable.is_some()
            || self.default.is_some()
            || self.comment.is_some()
            || self.unique.is_some()
            || self.check.is_some()
            || self.references.is_some();
        if !changes_something {
            problems.push(Problem::new("", "alter_column changes nothing").with_hint("set at least one of name, type, nullable, default, comment, unique, check, references"));
        }
        if let Some(name) = &self.name {
            if name != &self.column && table.column(name).is_some() {
                problems.push(Problem::new(
                    "/name",
                    format!(
                        "column \"{name}\" already exists on table \"{}\"",
                        self.table
                    ),
                ));
            }
            if name.len() > MAX_IDENT_BYTES {
                problems.push(Problem::new(
                    "/name",
                    "the name is longer than PostgreSQL's 63-byte limit",
                ));
            }
        }
        if self.needs_shadow()
            && table.primary_key.contains(&self.column)
            && self.nullable == Some(true)
        {
            problems.push(Problem::new(
                "/nullable",
                format!(
                    "column \"{}\" is part of the primary key, which cannot hold NULL",
                    self.column
                ),
            ));
        }
        if self.needs_shadow() && (column.identity.is_some() || column.generated.is_some()) {
            problems.push(Problem::new("/column", format!("column \"{}\" is an identity or generated column; altering it is not supported yet", self.column)));
        }
        // As in pgroll, a change to what the column already is is refused: it would copy
        // the column for nothing.
        match self.nullable {
            Some(true) if column.nullable => problems.push(
                Problem::new(
                    "/nullable",
                    format!("column \"{}\" is already nullable", self.column),
                )
                .with_hint("remove `nullable`"),
            ),
            Some(false) if !column.nullable => problems.push(
                Problem::new(
                    "/nullable",
                    format!("column \"{}\" is already NOT NULL", self.column),
                )
                .with_hint("remove `nullable`"),
            ),
            _ => {}
        }
        let new_constraints = [
            ("/unique/name", self.unique.as_ref().map(|u| &u.name)),
            ("/check/name", self.check.as_ref().map(|c| &c.name)),
            (
                "/references/name",
                self.references.as_ref().map(|r| &r.name),
            ),
        ];
        for (pointer, name) in new_constraints {
            let Some(name) = name else { continue };
            if table.constraint(name).is_some() || schema.index(name).is_some() {
                problems.push(Problem::new(
                    pointer,
                    format!("a constraint or index named \"{name}\" already exists"),
                ));
            }
        }
        if self.nullable == Some(false)
            && column.nullable
            && super::given(self.up.as_deref()).is_none()
        {
            problems.push(
                Problem::new(
                    "/up",
                    format!(
                        "making \"{}\" NOT NULL needs `up` to give existing NULLs a value",
                        self.column
                    ),
                )
                .with_hint("e.g. up: COALESCE(column, 'default')"),
            );
        }
        if self.nullable == Some(true)
            && !column.nullable
            && super::given(self.down.as_deref()).is_none()
        {
            // As in pgroll: copied unchanged, a NULL the new version writes would break the
            // old version's NOT NULL column.
            problems.push(
                Problem::new(
                    "/down",
                    format!(
                        "making \"{}\" nullable needs `down` to give the old version a value for NULLs",
                        self.column
                    ),
                )
                .with_hint("e.g. down: COALESCE(column, 'default')"),
            );
        }
        if let Some(r) = &self.references {
            match schema.table(&r.table) {
                None => problems.push(unknown_table("/references/table", &r.table, schema)),
                // As in pgroll: the referenced column must exist too.
                Some(t) if t.column(&r.column).is_none() => {
                    problems.push(unknown_column("/references/column", t, &r.column))
                }
                Some(_) => {}
            }
            problems.extend(check_keyword(
                &r.on_delete,
                REFERENTIAL_ACTIONS,
                "/references/on_delete",
            ));
            problems.extend(check_keyword(
                &r.on_update,
                REFERENTIAL_ACTIONS,
                "/references/on_update",
            ));
            problems.extend(check_keyword(
                &r.match_type,
                MATCH_TYPES,
                "/references/match_type",
            ));
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let Some(table) = schema.table(&self.table) else {
            return;
        };
        let physical_table = table.physical.clone();
        if let Some(column) = table.column(&self.column) {
            if self.needs_shadow()
                && cx.added_here(&physical_table, &column.physical)
                && !cx.created_here(&physical_table)
            {
                cx.problem(super::added_here_problem(&self.column));
                return;
            }
        }
        if cx.created_here(&physical_table) {
            self.alter_in_place(schema, cx, &physical_table);
        } else if self.needs_shadow() {
            self.alter_through_shadow(schema, cx, &physical_table);
        } else {
            self.alter_visible_parts(schema, cx, &physical_table);
        }
        if let Some(name) = &self.name {
            rename_in_virtual_schema(schema, &self.table, &self.column, name);
        }
    }
}

impl AlterColumn {
    /// Whether old versions would notice the change if it were made on the column itself.
    fn needs_shadow(&self) -> bool {
        self.type_name.is_some()
            || self.nullable.is_some()
            || self.unique.is_some()
            || self.check.is_some()
            || self.references.is_some()
    }

    fn alter_through_shadow(&self, schema: &mut Schema, cx: &mut PlanCx, physical_table: &str) {
        let spec = ShadowSpec {
            type_name: self.type_name.as_deref(),
            nullable: self.nullable,
            default: self.default.as_ref().map(|d| d.as_deref()),
            comment: self.comment.as_ref().map(|c| c.as_deref()),
            up: self.up.as_deref(),
            down: self.down.as_deref(),
            without_constraint: None,
        };
        let shadow = shadow_column(schema, cx, &self.table, &self.column, &spec);
        let target = qualified(cx.base, physical_table);
        let col = quote_ident(&shadow);
        if let Some(unique) = &self.unique {
            let name = quote_ident(&unique.name);
            cx.start_after_sync(
                Step::sql(
                    Phase::Start,
                    format!("build unique index {name} on the shadow column"),
                    format!("CREATE UNIQUE INDEX CONCURRENTLY {name} ON {target} ({col})"),
                )
                .tx(Tx::None)
                .lock(Lock::ShareUpdateExclusive)
                .hazard(Hazard::IndexBuild)
                .cleanup(format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {}",
                    qualified(cx.base, &unique.name)
                )),
            );
            cx.contract(
                physical_table,
                Step::sql(
                    Phase::Complete,
                    format!("attach unique index {name} as a constraint"),
                    format!("ALTER TABLE {target} ADD CONSTRAINT {name} UNIQUE USING INDEX {name}"),
                )
                .lock(Lock::AccessExclusive),
            );
        }
        if let Some(check) = &self.check {
            let expr = rename_column_refs(&check.constraint, &self.column, &shadow);
            let no_inherit = if check.no_inherit.unwrap_or(false) {
                " NO INHERIT"
            } else {
                ""
            };
            self.add_not_valid(
                cx,
                physical_table,
                &check.name,
                &format!("CHECK ({expr}){no_inherit}"),
            );
        }
        if let Some(r) = &self.references {
            let clause = foreign_key_clause(cx.base, schema, &shadow, r);
            let definition = clause
                .split_once(' ')
                .and_then(|(_, rest)| rest.split_once(' '))
                .map(|(_, def)| def.to_string())
                .unwrap_or_default();
            self.add_not_valid(cx, physical_table, &r.name, &definition);
        }
    }

    /// Adds `CONSTRAINT name <definition> NOT VALID` at start, validated at complete.
    fn add_not_valid(&self, cx: &mut PlanCx, physical_table: &str, name: &str, definition: &str) {
        let target = qualified(cx.base, physical_table);
        cx.start_after_sync(
            Step::sql(
                Phase::Start,
                format!("add constraint {} NOT VALID", quote_ident(name)),
                format!(
                    "ALTER TABLE {target} ADD CONSTRAINT {} {definition} NOT VALID",
                    quote_ident(name)
                ),
            )
            .lock(Lock::AccessExclusive),
        );
        validate(cx, physical_table, name);
    }

    /// Default and comment changes on the column itself: the new version's view gets the new
    /// default at once (views carry their own defaults); the table's changes at complete.
    fn alter_visible_parts(&self, schema: &mut Schema, cx: &mut PlanCx, physical_table: &str) {
        let Some(column) = schema
            .table(&self.table)
            .and_then(|t| t.column(&self.column))
            .cloned()
        else {
            return;
        };
        let target = qualified(cx.base, physical_table);
        let col = quote_ident(&column.physical);
        if let Some(default) = &self.default {
            let sql = match default {
                Some(d) => format!("ALTER TABLE {target} ALTER COLUMN {col} SET DEFAULT {d}"),
                None => format!("ALTER TABLE {target} ALTER COLUMN {col} DROP DEFAULT"),
            };
            cx.contract_on_column(
                physical_table,
                &column.physical,
                Step::sql(Phase::Complete, format!("change the default of {col}"), sql)
                    .lock(Lock::AccessExclusive),
            );
        }
        if let Some(comment) = &self.comment {
            let literal = |c: &Option<String>| {
                c.as_deref()
                    .map(quote_literal)
                    .unwrap_or_else(|| "NULL".into())
            };
            cx.start(Step::sql(
                Phase::Start,
                format!("comment on column {col}"),
                format!("COMMENT ON COLUMN {target}.{col} IS {}", literal(comment)),
            ));
            cx.rollback(Step::sql(
                Phase::Rollback,
                format!("restore the comment of {col}"),
                format!(
                    "COMMENT ON COLUMN {target}.{col} IS {}",
                    literal(&column.comment)
                ),
            ));
        }
        if let Some(c) = schema
            .table_mut(&self.table)
            .and_then(|t| t.column_mut(&self.column))
        {
            if let Some(d) = &self.default {
                c.default.clone_from(d);
            }
            if let Some(cm) = &self.comment {
                c.comment.clone_from(cm);
            }
        }
    }

    /// A table this migration creates is seen by no old version: change it directly.
    fn alter_in_place(&self, schema: &mut Schema, cx: &mut PlanCx, physical_table: &str) {
        let Some(column) = schema
            .table(&self.table)
            .and_then(|t| t.column(&self.column))
            .cloned()
        else {
            return;
        };
        let target = qualified(cx.base, physical_table);
        let col = quote_ident(&column.physical);
        let base = cx.base;
        let mut alter = |what: &str, sql: String| {
            cx.start(Step::sql(Phase::Start, what, sql).lock(Lock::AccessExclusive))
        };
        if let Some(ty) = &self.type_name {
            alter(
                "change the column type",
                format!("ALTER TABLE {target} ALTER COLUMN {col} TYPE {ty}"),
            );
        }
        match self.nullable {
            Some(false) => alter(
                "make the column NOT NULL",
                format!("ALTER TABLE {target} ALTER COLUMN {col} SET NOT NULL"),
            ),
            Some(true) => alter(
                "make the column nullable",
                format!("ALTER TABLE {target} ALTER COLUMN {col} DROP NOT NULL"),
            ),
            None => {}
        }
        match &self.default {
            Some(Some(d)) => alter(
                "set the default",
                format!("ALTER TABLE {target} ALTER COLUMN {col} SET DEFAULT {d}"),
            ),
            Some(None) => alter(
                "drop the default",
                format!("ALTER TABLE {target} ALTER COLUMN {col} DROP DEFAULT"),
            ),
            None => {}
        }
        if let Some(comment) = &self.comment {
            let literal = comment
                .as_deref()
                .map(quote_literal)
                .unwrap_or_else(|| "NULL".into());
            alter(
                "comment on the column",
                format!("COMMENT ON COLUMN {target}.{col} IS {literal}"),
            );
        }
        if let Some(u) = &self.unique {
            alter(
                "add the unique constraint",
                format!(
                    "ALTER TABLE {target} ADD CONSTRAINT {} UNIQUE ({col})",
                    quote_ident(&u.name)
                ),
            );
        }
        if let Some(check) = &self.check {
            let expr = rename_column_refs(&check.constraint, &self.column, &column.physical);
            alter(
                "add the check constraint",
                format!(
                    "ALTER TABLE {target} ADD CONSTRAINT {} CHECK ({expr})",
                    quote_ident(&check.name)
                ),
            );
        }
        if let Some(r) = &self.references {
            alter(
                "add the foreign key",
                format!(
                    "ALTER TABLE {target} ADD {}",
                    foreign_key_clause(base, schema, &column.physical, r)
                ),
            );
        }
        if let Some(c) = schema
            .table_mut(&self.table)
            .and_then(|t| t.column_mut(&self.column))
        {
            if let Some(ty) = &self.type_name {
                c.type_name.clone_from(ty);
            }
            if let Some(n) = self.nullable {
                c.nullable = n;
            }
            if let Some(d) = &self.default {
                c.default.clone_from(d);
            }
        }
    }
}

/// The column's new name, wherever the virtual schema mentions it.
pub(crate) fn rename_in_virtual_schema(schema: &mut Schema, table: &str, from: &str, to: &str) {
    let Some(t) = schema.table_mut(table) else {
        return;
    };
    let names = t
        .primary_key
        .iter_mut()
        .chain(t.constraints.iter_mut().flat_map(|c| c.columns.iter_mut()))
        .chain(t.indexes.iter_mut().flat_map(|i| i.columns.iter_mut()));
    for name in names.filter(|c| *c == from) {
        *name = to.to_string();
    }
    if let Some(c) = t.column_mut(from) {
        c.name = to.to_string();
    }
}
