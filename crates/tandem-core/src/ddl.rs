//! Column and constraint clauses shared by the operations that create them.

use crate::ident::{qualified, quote_ident};
use crate::migration::{CheckConstraint, Column, ColumnReference};
use crate::problem::Problem;
use crate::schema;

pub(crate) const REFERENTIAL_ACTIONS: &[&str] = &[
    "NO ACTION",
    "RESTRICT",
    "CASCADE",
    "SET NULL",
    "SET DEFAULT",
];
pub(crate) const MATCH_TYPES: &[&str] = &["SIMPLE", "FULL", "PARTIAL"];
const IDENTITY_KINDS: &[&str] = &["ALWAYS", "BY DEFAULT"];

/// Keyword-valued fields are checked against their keywords, since they are spliced as SQL.
pub fn check_column(column: &Column, pointer: &str) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(r) = &column.references {
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
    if let Some(identity) = column.generated.as_ref().and_then(|g| g.identity.as_ref()) {
        problems.extend(check_keyword(
            &identity.user_specified_values,
            IDENTITY_KINDS,
            &format!("{pointer}/generated/identity/user_specified_values"),
        ));
    }
    if column.pk.unwrap_or(false) && column.nullable == Some(true) {
        problems.push(Problem::new(
            format!("{pointer}/nullable"),
            "a primary-key column cannot be nullable",
        ));
    }
    problems
}

pub fn check_keyword(value: &Option<String>, allowed: &[&str], pointer: &str) -> Option<Problem> {
    let v = value.as_ref()?;
    let normal = normalise_keyword(v);
    (!allowed.contains(&normal.as_str())).then(|| {
        Problem::new(pointer, format!("\"{v}\" is not one of the allowed values"))
            .with_hint(format!("use one of: {}", allowed.join(", ")))
    })
}

fn normalise_keyword(v: &str) -> String {
    v.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase()
}

/// `"name" type [GENERATED ...] [DEFAULT ...] [NOT NULL]`: the parts of a column that are not
/// named constraints.
pub fn column_definition(column: &Column, nullable: bool) -> String {
    let mut def = format!("{} {}", quote_ident(&column.name), column.type_name);
    if let Some(generated) = &column.generated {
        if let Some(expr) = &generated.expression {
            def.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
        }
        if let Some(identity) = &generated.identity {
            let kind = identity
                .user_specified_values
                .as_deref()
                .map(normalise_keyword)
                .unwrap_or_else(|| "BY DEFAULT".to_string());
            def.push_str(&format!(" GENERATED {kind} AS IDENTITY"));
            if let Some(options) = &identity.sequence_options {
                def.push_str(&format!(" ({options})"));
            }
        }
    }
    if let Some(default) = &column.default {
        def.push_str(&format!(" DEFAULT {default}"));
    }
    if !nullable {
        def.push_str(" NOT NULL");
    }
    def
}

pub fn check_clause(check: &CheckConstraint) -> String {
    let mut clause = format!(
        "CONSTRAINT {} CHECK ({})",
        quote_ident(&check.name),
        check.constraint
    );
    if check.no_inherit.unwrap_or(false) {
        clause.push_str(" NO INHERIT");
    }
    clause
}

/// `FOREIGN KEY (...) REFERENCES ...` for a single-column reference.
/// `"schema"."table" ("col", …)` for a foreign key's target named as the new version sees
/// it: a table or column renamed earlier in the same migration still has its old physical
/// name until complete, and that is what the constraint must point at.
pub fn reference_target(
    base: &str,
    schema: &crate::schema::Schema,
    table: &str,
    columns: &[String],
) -> String {
    let target = schema.table(table);
    let physical_table = target.map_or(table, |t| t.physical.as_str());
    let physical_columns: Vec<String> = columns
        .iter()
        .map(|c| {
            let physical = target
                .and_then(|t| t.column(c))
                .map_or(c.as_str(), |col| col.physical.as_str());
            quote_ident(physical)
        })
        .collect();
    format!(
        "{} ({})",
        qualified(base, physical_table),
        physical_columns.join(", ")
    )
}

pub fn foreign_key_clause(
    base: &str,
    schema: &crate::schema::Schema,
    column: &str,
    r: &ColumnReference,
) -> String {
    let mut clause = format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {}",
        quote_ident(&r.name),
        quote_ident(column),
        reference_target(base, schema, &r.table, std::slice::from_ref(&r.column))
    );
    clause.push_str(&referential_options(
        &r.match_type,
        &r.on_delete,
        &r.on_update,
    ));
    if r.deferrable.unwrap_or(false) {
        clause.push_str(" DEFERRABLE");
        if r.initially_deferred.unwrap_or(false) {
            clause.push_str(" INITIALLY DEFERRED");
        }
    }
    clause
}

pub fn referential_options(
    match_type: &Option<String>,
    on_delete: &Option<String>,
    on_update: &Option<String>,
) -> String {
    let mut s = String::new();
    if let Some(m) = match_type {
        s.push_str(&format!(" MATCH {}", normalise_keyword(m)));
    }
    if let Some(a) = on_delete {
        s.push_str(&format!(" ON DELETE {}", normalise_keyword(a)));
    }
    if let Some(a) = on_update {
        s.push_str(&format!(" ON UPDATE {}", normalise_keyword(a)));
    }
    s
}

/// How the new version will see a column the migration creates.
pub fn schema_column(column: &Column, physical: &str) -> schema::Column {
    let identity = column
        .generated
        .as_ref()
        .and_then(|g| g.identity.as_ref())
        .map(|i| {
            i.user_specified_values
                .as_deref()
                .map(normalise_keyword)
                .unwrap_or_else(|| "BY DEFAULT".to_string())
        });
    schema::Column {
        name: column.name.clone(),
        physical: physical.to_string(),
        type_name: column.type_name.clone(),
        nullable: column.is_nullable(),
        default: column.default.clone(),
        identity,
        generated: column.generated.as_ref().and_then(|g| g.expression.clone()),
        comment: column.comment.clone(),
    }
}
