//! tandem-lint: the raw SQL of `sql` operations, and the expressions of the others, read with
//! PostgreSQL's own grammar (libpg_query) for statements that lock or rewrite a live table or
//! destroy data. No I/O: given a migration (and, when known, the live schema), it returns
//! findings; the CLI prints them and refuses to start while a refusal remains.

pub mod convert;
mod expr;
mod hazard;
mod position;
mod sql;
mod tree;

use std::collections::{HashMap, HashSet};

use tandem_core::migration::{Migration, Operation};
use tandem_core::problem::pointer_token;
use tandem_core::schema::Schema;

pub use hazard::{Finding, Hazard, Severity};

use expr::{lint_expression, Expression};
use sql::{lint_sql, Fresh};

/// Every finding of `migration`, in file order. `schema` is the live schema when known; it
/// lets the lint tell unknown column names in expressions.
pub fn lint(migration: &Migration, schema: Option<&Schema>) -> Vec<Finding> {
    let columns = known_columns(migration, schema);
    let mut fresh = Fresh::default();
    let mut findings = Vec::new();
    for (i, op) in migration.operations.iter().enumerate() {
        let at = format!("/operations/{i}/{}", op.key());
        if let Operation::Sql(s) = op {
            findings.extend(lint_sql(&s.up, &format!("{at}/up"), &mut fresh));
            if let Some(down) = &s.down {
                // `down` runs after `up`: what `up` created is fresh for it (the undo).
                findings.extend(lint_sql(down, &format!("{at}/down"), &mut fresh.clone()));
            }
            continue;
        }
        for e in expressions(op, &at, &columns) {
            findings.extend(lint_expression(&e));
        }
        record_created_by_operation(op, &mut fresh);
    }
    findings
}

/// The findings that stop a start: refusals whose hazard `allowed` does not name.
pub fn refusals<'a>(findings: &'a [Finding], allowed: &[Hazard]) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| f.is_refusal() && !allowed.contains(&f.hazard))
        .collect()
}

/// Tables and indexes the migration's own operations create: raw SQL on them is safe.
fn record_created_by_operation(op: &Operation, fresh: &mut Fresh) {
    match op {
        Operation::CreateTable(t) => fresh.add(&t.name),
        Operation::CreateIndex(i) => fresh.add(&i.name),
        _ => {}
    }
}

/// For each table, every column name it has in either version: the live schema's, and every
/// name the migration gives it. Only tables whose columns are fully known (live, or created
/// by the migration) are listed.
fn known_columns(
    migration: &Migration,
    schema: Option<&Schema>,
) -> HashMap<String, HashSet<String>> {
    let mut known: HashMap<String, HashSet<String>> = HashMap::new();
    for table in schema.map(|s| s.tables.as_slice()).unwrap_or_default() {
        known
            .entry(table.name.clone())
            .or_default()
            .extend(table.columns.iter().map(|c| c.name.clone()));
    }
    let mut renames = Vec::new();
    for op in &migration.operations {
        match op {
            Operation::CreateTable(t) => {
                known
                    .entry(t.name.clone())
                    .or_default()
                    .extend(t.columns.iter().map(|c| c.name.clone()));
            }
            Operation::RenameTable(r) => renames.push((r.from.clone(), r.to.clone())),
            _ => {}
        }
        for (table, column) in column_names(op) {
            if let Some(names) = known.get_mut(table) {
                names.insert(column.to_string());
            }
        }
    }
    // A renamed table answers to both names, with the columns of both.
    for (from, to) in renames {
        let mut both = known.get(&from).cloned().unwrap_or_default();
        both.extend(known.get(&to).cloned().unwrap_or_default());
        if !both.is_empty() {
            known.insert(from, both.clone());
            known.insert(to, both);
        }
    }
    known
}

/// `(table, column)` for every column name an operation mentions.
fn column_names(op: &Operation) -> Vec<(&str, &str)> {
    match op {
        Operation::AddColumn(a) => vec![(a.table.as_str(), a.column.name.as_str())],
        Operation::AlterColumn(a) => {
            let mut names = vec![(a.table.as_str(), a.column.as_str())];
            names.extend(a.name.as_deref().map(|n| (a.table.as_str(), n)));
            names
        }
        Operation::RenameColumn(r) => vec![
            (r.table.as_str(), r.from.as_str()),
            (r.table.as_str(), r.to.as_str()),
        ],
        Operation::DropColumn(d) => vec![(d.table.as_str(), d.column.as_str())],
        _ => Vec::new(),
    }
}

/// The SQL expressions of one (non-`sql`) operation, each with its pointer.
fn expressions<'a>(
    op: &'a Operation,
    at: &str,
    columns: &'a HashMap<String, HashSet<String>>,
) -> Vec<Expression<'a>> {
    let mut list = Expressions {
        at,
        items: Vec::new(),
    };
    match op {
        Operation::CreateTable(t) => {
            let names = columns.get(&t.name);
            for (i, c) in t.columns.iter().enumerate() {
                list.column(&format!("/columns/{i}"), c, names);
            }
            for (i, c) in t.constraints.iter().flatten().enumerate() {
                list.push(
                    &format!("/constraints/{i}/check"),
                    c.check.as_deref(),
                    names,
                );
            }
        }
        Operation::AddColumn(a) => {
            let names = columns.get(&a.table);
            list.push("/up", a.up.as_deref(), names);
            list.column("/column", &a.column, names);
        }
        Operation::AlterColumn(a) => {
            let names = columns.get(&a.table);
            list.push("/up", a.up.as_deref(), names);
            list.push("/down", a.down.as_deref(), names);
            list.push(
                "/default",
                a.default.as_ref().and_then(|d| d.as_deref()),
                None,
            );
            list.push(
                "/check/constraint",
                a.check.as_ref().map(|c| c.constraint.as_str()),
                names,
            );
        }
        Operation::DropColumn(d) => list.push("/down", d.down.as_deref(), columns.get(&d.table)),
        Operation::CreateIndex(i) => {
            list.push("/predicate", i.predicate.as_deref(), columns.get(&i.table))
        }
        Operation::CreateConstraint(c) => {
            let names = columns.get(&c.table);
            list.push("/check", c.check.as_deref(), names);
            list.map("/up", c.up.as_ref(), names);
            list.map("/down", c.down.as_ref(), names);
        }
        Operation::DropConstraint(d) => {
            let names = columns.get(&d.table);
            list.push("/up", d.up.as_deref(), names);
            list.push("/down", d.down.as_deref(), names);
        }
        Operation::DropMulticolumnConstraint(d) => {
            let names = columns.get(&d.table);
            list.map("/up", d.up.as_ref(), names);
            list.map("/down", d.down.as_ref(), names);
        }
        _ => {}
    }
    list.items
}

/// Collects an operation's expressions under its pointer.
struct Expressions<'a, 'p> {
    at: &'p str,
    items: Vec<Expression<'a>>,
}

impl<'a> Expressions<'a, '_> {
    fn push(&mut self, path: &str, text: Option<&'a str>, columns: Option<&'a HashSet<String>>) {
        if let Some(text) = text {
            self.items.push(Expression {
                pointer: format!("{}{path}", self.at),
                text,
                columns,
            });
        }
    }

    fn map(
        &mut self,
        path: &str,
        map: Option<&'a std::collections::BTreeMap<String, String>>,
        columns: Option<&'a HashSet<String>>,
    ) {
        for (column, text) in map.into_iter().flatten() {
            let path = format!("{path}/{}", pointer_token(column));
            self.push(&path, Some(text), columns);
        }
    }

    /// A column definition's expressions: a default names no column, a check names the
    /// table's, a generated column the table's.
    fn column(
        &mut self,
        path: &str,
        c: &'a tandem_core::migration::Column,
        columns: Option<&'a HashSet<String>>,
    ) {
        self.push(&format!("{path}/default"), c.default.as_deref(), None);
        self.push(
            &format!("{path}/check/constraint"),
            c.check.as_ref().map(|k| k.constraint.as_str()),
            columns,
        );
        self.push(
            &format!("{path}/generated/expression"),
            c.generated.as_ref().and_then(|g| g.expression.as_deref()),
            columns,
        );
    }
}
