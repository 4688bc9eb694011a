//! `create_table`: the table is created at start (invisible to old versions, which have no
//! view of it), kept at complete, dropped by rollback.

use crate::ddl::{
    check_clause, check_column, check_keyword, column_definition, foreign_key_clause,
    referential_options, schema_column, MATCH_TYPES, REFERENTIAL_ACTIONS,
};
use crate::ident::{qualified, quote_ident, quote_literal};
use crate::migration::{CreateTable, IndexParameters, TableConstraint, TableConstraintType};
use crate::ops::{unknown_table, Op};
use crate::plan::{Lock, Phase, Step, Tx};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::{self, Schema, Table};

impl Op for CreateTable {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let mut problems = Vec::new();
        if schema.table(&self.name).is_some() {
            problems.push(Problem::new(
                "/name",
                format!("table \"{}\" already exists", self.name),
            ));
        }
        for (i, column) in self.columns.iter().enumerate() {
            let pointer = format!("/columns/{i}");
            problems.extend(check_column(column, &pointer));
            if self.columns[..i].iter().any(|c| c.name == column.name) {
                problems.push(Problem::new(
                    format!("{pointer}/name"),
                    format!("column \"{}\" appears twice", column.name),
                ));
            }
            if let Some(r) = &column.references {
                if r.table != self.name && schema.table(&r.table).is_none() {
                    problems.push(unknown_table(
                        &format!("{pointer}/references/table"),
                        &r.table,
                        schema,
                    ));
                }
            }
        }
        for (i, c) in self.constraints.iter().flatten().enumerate() {
            problems.extend(self.check_constraint(c, &format!("/constraints/{i}"), schema));
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let table = qualified(cx.base, &self.name);
        let group = Tx::Group(format!("create table {}", self.name));
        cx.start(
            Step::sql(
                Phase::Start,
                format!("create table {}", quote_ident(&self.name)),
                format!(
                    "CREATE TABLE {table} ({})",
                    self.definitions(cx.base, schema).join(", ")
                ),
            )
            .tx(group.clone()),
        );
        if let Some(comment) = &self.comment {
            cx.start(
                Step::sql(
                    Phase::Start,
                    "comment on the table",
                    format!("COMMENT ON TABLE {table} IS {}", quote_literal(comment)),
                )
                .tx(group.clone()),
            );
        }
        for column in &self.columns {
            if let Some(comment) = &column.comment {
                cx.start(
                    Step::sql(
                        Phase::Start,
                        format!("comment on column {}", quote_ident(&column.name)),
                        format!(
                            "COMMENT ON COLUMN {table}.{} IS {}",
                            quote_ident(&column.name),
                            quote_literal(comment)
                        ),
                    )
                    .tx(group.clone()),
                );
            }
        }
        cx.rollback(
            Step::sql(
                Phase::Rollback,
                format!("drop table {}", quote_ident(&self.name)),
                format!("DROP TABLE IF EXISTS {table}"),
            )
            .lock(Lock::AccessExclusive),
        );
        cx.physical_table_created(
            &self.name,
            self.columns.iter().map(|c| c.name.clone()).collect(),
        );
        // As PostgreSQL does for the table, its view gets what ALTER DEFAULT PRIVILEGES says.
        let grants = schema.default_grants.clone();
        schema.tables.push(self.virtual_table(grants));
    }
}

impl CreateTable {
    fn check_constraint(
        &self,
        c: &TableConstraint,
        pointer: &str,
        schema: &Schema,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (j, name) in c.columns.iter().flatten().enumerate() {
            if !self.columns.iter().any(|col| &col.name == name) {
                problems.push(Problem::new(
                    format!("{pointer}/columns/{j}"),
                    format!("column \"{name}\" is not a column of the new table"),
                ));
            }
        }
        let needs = |ok: bool, field: &str| {
            (!ok).then(|| {
                Problem::new(
                    pointer.to_string(),
                    format!("a constraint of this type needs `{field}`"),
                )
            })
        };
        match c.kind {
            TableConstraintType::Check => problems.extend(needs(c.check.is_some(), "check")),
            TableConstraintType::Exclude => problems.extend(needs(c.exclude.is_some(), "exclude")),
            TableConstraintType::ForeignKey => {
                problems.extend(needs(c.references.is_some(), "references"));
                if let Some(r) = &c.references {
                    if r.table != self.name && schema.table(&r.table).is_none() {
                        problems.push(unknown_table(
                            &format!("{pointer}/references/table"),
                            &r.table,
                            schema,
                        ));
                    }
                    problems.extend(check_keyword(
                        &r.on_delete,
                        REFERENTIAL_ACTIONS,
                        &format!("{pointer}/references/on_delete"),
                    ));
                    problems.extend(check_keyword(
                        &r.on_update,
                        REFERENTIAL_ACTIONS,
                        &format!("{pointer}/references/on_update"),
                    ));
                    problems.extend(check_keyword(
                        &r.match_type,
                        MATCH_TYPES,
                        &format!("{pointer}/references/match_type"),
                    ));
                }
            }
            TableConstraintType::Unique | TableConstraintType::PrimaryKey => problems.extend(
                needs(c.columns.as_ref().is_some_and(|v| !v.is_empty()), "columns"),
            ),
        }
        problems
    }

    fn definitions(&self, base: &str, schema: &Schema) -> Vec<String> {
        let mut defs = Vec::new();
        for column in &self.columns {
            let mut def = column_definition(column, column.is_nullable());
            if column.is_unique() {
                def.push_str(" UNIQUE");
            }
            if let Some(check) = &column.check {
                def.push(' ');
                def.push_str(&check_clause(check));
            }
            defs.push(def);
        }
        let pk: Vec<String> = self
            .columns
            .iter()
            .filter(|c| c.is_pk())
            .map(|c| quote_ident(&c.name))
            .collect();
        if !pk.is_empty() {
            defs.push(format!("PRIMARY KEY ({})", pk.join(", ")));
        }
        for column in &self.columns {
            if let Some(r) = &column.references {
                defs.push(foreign_key_clause(base, schema, &column.name, r));
            }
        }
        defs.extend(
            self.constraints
                .iter()
                .flatten()
                .map(|c| constraint_clause(base, schema, c)),
        );
        defs
    }

    fn virtual_table(&self, grants: Vec<schema::Grant>) -> Table {
        let mut primary_key: Vec<String> = self
            .columns
            .iter()
            .filter(|c| c.is_pk())
            .map(|c| c.name.clone())
            .collect();
        let mut constraints = Vec::new();
        for c in self.constraints.iter().flatten() {
            if c.kind == TableConstraintType::PrimaryKey {
                primary_key = c.columns.clone().unwrap_or_default();
            }
            constraints.push(schema::Constraint {
                name: c.name.clone(),
                kind: match c.kind {
                    TableConstraintType::Unique => schema::ConstraintKind::Unique,
                    TableConstraintType::Check => schema::ConstraintKind::Check,
                    TableConstraintType::PrimaryKey => schema::ConstraintKind::PrimaryKey,
                    TableConstraintType::ForeignKey => schema::ConstraintKind::ForeignKey,
                    TableConstraintType::Exclude => schema::ConstraintKind::Exclude,
                },
                columns: c.columns.clone().unwrap_or_default(),
                definition: String::new(),
                validated: true,
            });
        }
        let mut columns: Vec<schema::Column> = self
            .columns
            .iter()
            .map(|c| schema_column(c, &c.name))
            .collect();
        for column in columns.iter_mut().filter(|c| primary_key.contains(&c.name)) {
            column.nullable = false;
        }
        Table {
            name: self.name.clone(),
            physical: self.name.clone(),
            columns,
            primary_key,
            constraints,
            indexes: Vec::new(),
            comment: self.comment.clone(),
            replica_identity: None,
            grants,
            parent: None,
            partitioned: false,
        }
    }
}

fn constraint_clause(base: &str, schema: &Schema, c: &TableConstraint) -> String {
    let columns = |names: &Option<Vec<String>>| {
        names
            .iter()
            .flatten()
            .map(|n| quote_ident(n))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut clause = format!("CONSTRAINT {} ", quote_ident(&c.name));
    match c.kind {
        TableConstraintType::PrimaryKey => {
            clause.push_str(&format!("PRIMARY KEY ({})", columns(&c.columns)));
            clause.push_str(&index_parameters(&c.index_parameters));
        }
        TableConstraintType::Unique => {
            clause.push_str("UNIQUE");
            if c.nulls_not_distinct.unwrap_or(false) {
                clause.push_str(" NULLS NOT DISTINCT");
            }
            clause.push_str(&format!(" ({})", columns(&c.columns)));
            clause.push_str(&index_parameters(&c.index_parameters));
        }
        TableConstraintType::Check => {
            clause.push_str(&format!("CHECK ({})", c.check.as_deref().unwrap_or("true")));
            if c.no_inherit.unwrap_or(false) {
                clause.push_str(" NO INHERIT");
            }
        }
        TableConstraintType::ForeignKey => {
            if let Some(r) = &c.references {
                clause.push_str(&format!(
                    "FOREIGN KEY ({}) REFERENCES {}",
                    columns(&c.columns),
                    crate::ddl::reference_target(base, schema, &r.table, &r.columns)
                ));
                clause.push_str(&referential_options(
                    &r.match_type,
                    &r.on_delete,
                    &r.on_update,
                ));
            }
        }
        TableConstraintType::Exclude => {
            if let Some(x) = &c.exclude {
                let method = x.index_method.as_deref().unwrap_or("btree");
                clause.push_str(&format!(
                    "EXCLUDE USING {} ({})",
                    quote_ident(method),
                    x.elements
                ));
                clause.push_str(&index_parameters(&c.index_parameters));
                if let Some(p) = &x.predicate {
                    clause.push_str(&format!(" WHERE ({p})"));
                }
            }
        }
    }
    if c.deferrable.unwrap_or(false) {
        clause.push_str(" DEFERRABLE");
        if c.initially_deferred.unwrap_or(false) {
            clause.push_str(" INITIALLY DEFERRED");
        }
    }
    clause
}

fn index_parameters(p: &Option<IndexParameters>) -> String {
    let Some(p) = p else { return String::new() };
    let mut s = String::new();
    if let Some(include) = &p.include_columns {
        s.push_str(&format!(
            " INCLUDE ({})",
            include
                .iter()
                .map(|n| quote_ident(n))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    if let Some(storage) = &p.storage_parameters {
        s.push_str(&format!(" WITH ({storage})"));
    }
    if let Some(ts) = &p.tablespace {
        s.push_str(&format!(" USING INDEX TABLESPACE {}", quote_ident(ts)));
    }
    s
}
