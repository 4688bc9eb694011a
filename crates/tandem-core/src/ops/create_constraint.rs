//! `create_constraint`: unique, check, foreign key or primary key over one or more columns.
//! On an existing table the columns are copied into shadow columns (filled by the per-column
//! `up`/`down`) and the constraint is built on the copies: CHECK and FOREIGN KEY `NOT VALID`
//! and validated at complete; UNIQUE and PRIMARY KEY as unique indexes built `CONCURRENTLY`
//! and attached with `USING INDEX` at complete.

use crate::ddl::{check_keyword, referential_options, MATCH_TYPES, REFERENTIAL_ACTIONS};
use crate::expr::rename_column_refs;
use crate::ident::{qualified, quote_ident};
use crate::migration::{ConstraintType, CreateConstraint};
use crate::ops::shadow::{shadow_column, validate, ShadowSpec};
use crate::ops::{unknown_column, unknown_table, Op};
use crate::plan::{Hazard, Lock, Phase, Step, Tx};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::{self, ConstraintKind, Schema};

impl Op for CreateConstraint {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let Some(table) = schema.table(&self.table) else {
            return vec![unknown_table("/table", &self.table, schema)];
        };
        let mut problems = Vec::new();
        if table.constraint(&self.name).is_some() || schema.index(&self.name).is_some() {
            problems.push(Problem::new(
                "/name",
                format!(
                    "a constraint or index named \"{}\" already exists",
                    self.name
                ),
            ));
        }
        let columns = self.columns.clone().unwrap_or_default();
        if columns.is_empty() {
            problems.push(Problem::new(
                "/columns",
                "the constraint needs at least one column",
            ));
        }
        for (i, c) in columns.iter().enumerate() {
            if table.column(c).is_none() {
                problems.push(unknown_column(&format!("/columns/{i}"), table, c));
            }
        }
        // As in pgroll: copied unchanged, an old-version value could break the new constraint,
        // so each column says how it is made to fit (`down` defaults to a copy: the old
        // columns have no such constraint).
        let ups = self.up.as_ref();
        for c in &columns {
            let given = ups.and_then(|m| m.get(c)).map(String::as_str);
            if super::given(given).is_none() && table.column(c).is_some() {
                problems.push(
                    Problem::new(
                        if ups.is_some() { "/up" } else { "" },
                        format!("`up` has no expression for column \"{c}\" of the constraint"),
                    )
                    .with_hint(format!(
                        "add \"{c}\" to `up`: an SQL expression over the old row that makes the value fit (e.g. the column itself, \"{c}\")"
                    )),
                );
            }
        }
        for (field, map) in [("up", &self.up), ("down", &self.down)] {
            for key in map.iter().flat_map(|m| m.keys()) {
                if !columns.contains(key) {
                    problems.push(Problem::new(
                        format!("/{field}/{}", crate::problem::pointer_token(key)),
                        format!("\"{key}\" is not one of the constraint's columns"),
                    ));
                }
            }
        }
        match self.kind {
            ConstraintType::Check if self.check.is_none() => {
                problems.push(Problem::new("/check", "a check constraint needs `check`"))
            }
            ConstraintType::ForeignKey => match &self.references {
                None => problems.push(Problem::new(
                    "/references",
                    "a foreign key needs `references`",
                )),
                Some(r) => {
                    match schema.table(&r.table) {
                        None => problems.push(unknown_table("/references/table", &r.table, schema)),
                        Some(t) => {
                            for (i, c) in r.columns.iter().enumerate() {
                                if t.column(c).is_none() {
                                    problems.push(unknown_column(
                                        &format!("/references/columns/{i}"),
                                        t,
                                        c,
                                    ));
                                }
                            }
                        }
                    }
                    if r.columns.len() != columns.len() {
                        problems.push(Problem::new(
                            "/references/columns",
                            "a foreign key references as many columns as it has",
                        ));
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
            },
            ConstraintType::PrimaryKey if !table.primary_key.is_empty() => {
                problems.push(Problem::new(
                    "/type",
                    format!("table \"{}\" already has a primary key", self.table),
                ))
            }
            _ => {}
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let Some(table) = schema.table(&self.table) else {
            return;
        };
        let physical_table = table.physical.clone();
        let columns = self.columns.clone().unwrap_or_default();
        let added = columns.iter().find(|c| {
            table
                .column(c)
                .is_some_and(|col| cx.added_here(&physical_table, &col.physical))
        });
        if let (Some(c), false) = (added, cx.created_here(&physical_table)) {
            cx.problem(super::added_here_problem(c));
            return;
        }
        let physical: Vec<String> = if cx.created_here(&physical_table) {
            columns
                .iter()
                .filter_map(|c| table.column(c).map(|col| col.physical.clone()))
                .collect()
        } else {
            columns
                .iter()
                .map(|c| {
                    let spec = ShadowSpec {
                        up: self.up.as_ref().and_then(|m| m.get(c)).map(String::as_str),
                        down: self
                            .down
                            .as_ref()
                            .and_then(|m| m.get(c))
                            .map(String::as_str),
                        nullable: (self.kind == ConstraintType::PrimaryKey).then_some(false),
                        ..ShadowSpec::default()
                    };
                    shadow_column(schema, cx, &self.table, c, &spec)
                })
                .collect()
        };
        // A referenced table or column renamed earlier in this migration keeps its physical
        // name until complete: the constraint points at that.
        let references = self
            .references
            .as_ref()
            .map(|r| crate::ddl::reference_target(cx.base, schema, &r.table, &r.columns))
            .unwrap_or_default();
        if cx.created_here(&physical_table) {
            self.add_directly(cx, &physical_table, &references, &columns, &physical);
        } else {
            self.add_on_shadows(cx, &physical_table, &references, &columns, &physical);
        }
        if let Some(t) = schema.table_mut(&self.table) {
            if self.kind == ConstraintType::PrimaryKey {
                t.primary_key.clone_from(&columns);
                for c in t.columns.iter_mut().filter(|c| columns.contains(&c.name)) {
                    c.nullable = false;
                }
            }
            t.constraints.push(schema::Constraint {
                name: self.name.clone(),
                kind: match self.kind {
                    ConstraintType::Unique => ConstraintKind::Unique,
                    ConstraintType::Check => ConstraintKind::Check,
                    ConstraintType::ForeignKey => ConstraintKind::ForeignKey,
                    ConstraintType::PrimaryKey => ConstraintKind::PrimaryKey,
                },
                columns,
                definition: String::new(),
                validated: true,
            });
        }
    }
}

impl CreateConstraint {
    /// The constraint's body over `physical` columns, e.g. `CHECK (...)` or `FOREIGN KEY (...) ...`.
    fn body(&self, references: &str, columns: &[String], physical: &[String]) -> String {
        let list = |names: &[String]| {
            names
                .iter()
                .map(|n| quote_ident(n))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self.kind {
            ConstraintType::Check => {
                let mut expr = self.check.clone().unwrap_or_default();
                for (logical, phys) in columns.iter().zip(physical) {
                    expr = rename_column_refs(&expr, logical, phys);
                }
                let no_inherit = if self.no_inherit.unwrap_or(false) {
                    " NO INHERIT"
                } else {
                    ""
                };
                format!("CHECK ({expr}){no_inherit}")
            }
            ConstraintType::ForeignKey => {
                let r = self.references.as_ref().expect("checked");
                let mut s = format!("FOREIGN KEY ({}) REFERENCES {}", list(physical), references);
                s.push_str(&referential_options(
                    &r.match_type,
                    &r.on_delete,
                    &r.on_update,
                ));
                if self.deferrable.unwrap_or(false) {
                    s.push_str(" DEFERRABLE");
                    if self.initially_deferred.unwrap_or(false) {
                        s.push_str(" INITIALLY DEFERRED");
                    }
                }
                s
            }
            ConstraintType::Unique => format!("UNIQUE{} ({})", self.nulls_clause(), list(physical)),
            ConstraintType::PrimaryKey => format!("PRIMARY KEY ({})", list(physical)),
        }
    }

    fn nulls_clause(&self) -> &'static str {
        if self.nulls_not_distinct.unwrap_or(false) {
            " NULLS NOT DISTINCT"
        } else {
            ""
        }
    }

    /// A table created by this migration is empty and unseen: the constraint goes on at once.
    fn add_directly(
        &self,
        cx: &mut PlanCx,
        physical_table: &str,
        references: &str,
        columns: &[String],
        physical: &[String],
    ) {
        let target = qualified(cx.base, physical_table);
        cx.start(
            Step::sql(
                Phase::Start,
                format!("add constraint {}", quote_ident(&self.name)),
                format!(
                    "ALTER TABLE {target} ADD CONSTRAINT {} {}",
                    quote_ident(&self.name),
                    self.body(references, columns, physical)
                ),
            )
            .lock(Lock::AccessExclusive),
        );
    }

    fn add_on_shadows(
        &self,
        cx: &mut PlanCx,
        physical_table: &str,
        references: &str,
        columns: &[String],
        physical: &[String],
    ) {
        let target = qualified(cx.base, physical_table);
        let name = quote_ident(&self.name);
        match self.kind {
            ConstraintType::Check | ConstraintType::ForeignKey => {
                cx.start_after_sync(
                    Step::sql(
                        Phase::Start,
                        format!("add constraint {name} NOT VALID"),
                        format!(
                            "ALTER TABLE {target} ADD CONSTRAINT {name} {} NOT VALID",
                            self.body(references, columns, physical)
                        ),
                    )
                    .lock(Lock::AccessExclusive),
                );
                validate(cx, physical_table, &self.name);
            }
            ConstraintType::Unique | ConstraintType::PrimaryKey => {
                let cols = physical
                    .iter()
                    .map(|n| quote_ident(n))
                    .collect::<Vec<_>>()
                    .join(", ");
                cx.start_after_sync(
                    Step::sql(
                        Phase::Start,
                        format!("build unique index {name} concurrently"),
                        format!(
                            "CREATE UNIQUE INDEX CONCURRENTLY {name} ON {target} ({cols}){}",
                            self.nulls_clause()
                        ),
                    )
                    .tx(Tx::None)
                    .lock(Lock::ShareUpdateExclusive)
                    .hazard(Hazard::IndexBuild)
                    .cleanup(format!(
                        "DROP INDEX CONCURRENTLY IF EXISTS {}",
                        qualified(cx.base, &self.name)
                    )),
                );
                let kind = if self.kind == ConstraintType::Unique {
                    "UNIQUE"
                } else {
                    "PRIMARY KEY"
                };
                cx.contract(
                    physical_table,
                    Step::sql(
                        Phase::Complete,
                        format!("attach index {name} as the {kind} constraint"),
                        format!(
                            "ALTER TABLE {target} ADD CONSTRAINT {name} {kind} USING INDEX {name}"
                        ),
                    )
                    .lock(Lock::AccessExclusive),
                );
            }
        }
    }
}
