//! The expression rules: `up`/`down`/`check`/`default`/`predicate` of the operations other
//! than `sql`, parsed as `SELECT <expr>`. Warnings only: tandem does not resolve these
//! (PostgreSQL compiles them into the trigger function), and DESIGN §2 never lets the lint
//! reject a valid pgroll file.

use std::collections::HashSet;

use crate::hazard::{Finding, Hazard};
use crate::position::line_column;
use crate::tree;

/// An expression to check, and what its bare names may refer to.
pub struct Expression<'a> {
    pub pointer: String,
    pub text: &'a str,
    /// The table's column names in either version; `None` when they are unknown (or the
    /// expression may name no column, like a default), and names are then not checked.
    pub columns: Option<&'a HashSet<String>>,
}

/// Put around the expression to parse it, as the backfill does (`SET col = (up)`): so an
/// expression may also be a `SELECT …` of its own. Positions are shifted back by the prefix;
/// the newline keeps a trailing `-- comment` from swallowing the parenthesis.
const PREFIX: &str = "SELECT (";
const SUFFIX: &str = "\n)";

pub fn lint_expression(e: &Expression) -> Vec<Finding> {
    let sql = format!("{PREFIX}{}{SUFFIX}", e.text);
    let parsed = match pg_query::parse(&sql, pg_query::ParserOptions::DEFAULT) {
        Ok(p) => p,
        Err(error) => return vec![invalid(e, &sql, &error)],
    };
    let Some(columns) = e.columns else {
        return Vec::new();
    };
    let tree = tree::json(&parsed.protobuf.stmts);
    let mut unknown: Vec<String> = tree::plain_column_refs(&tree)
        .into_iter()
        .filter(|name| !columns.contains(name))
        .collect();
    unknown.dedup();
    unknown
        .into_iter()
        .map(|name| {
            finding(
                e,
                Hazard::UnknownColumn,
                0,
                unknown_column(&name),
                UNKNOWN_HINT,
            )
        })
        .collect()
}

const UNKNOWN_HINT: &str = "name a column of the table (a bare name is that column's value in the row being written), or use a subquery";

fn unknown_column(name: &str) -> String {
    format!("\"{name}\" is not a column of the table in either version; the trigger would fail to compile")
}

fn invalid(e: &Expression, sql: &str, error: &pg_query::Error) -> Finding {
    let at = crate::position::error_offset(sql)
        .unwrap_or(0)
        .saturating_sub(PREFIX.len());
    let message = match error {
        pg_query::Error::Parse(m) => m.clone(),
        other => other.to_string(),
    };
    finding(
        e,
        Hazard::InvalidExpression,
        at,
        format!("PostgreSQL's parser rejects this expression: {message}"),
        "write one SQL expression (e.g. lower(name), or (SELECT … ) for a subquery); psql's SELECT <expr> shows the same error",
    )
}

fn finding(e: &Expression, hazard: Hazard, at: usize, message: String, hint: &str) -> Finding {
    let (line, column) = line_column(e.text, at);
    Finding {
        hazard,
        severity: hazard.severity(),
        pointer: e.pointer.clone(),
        statement: e.text.trim().to_string(),
        line,
        column,
        message,
        hint: hint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lint(text: &str, columns: Option<&HashSet<String>>) -> Vec<Finding> {
        lint_expression(&Expression {
            pointer: "/operations/0/add_column/up".into(),
            text,
            columns,
        })
    }

    fn columns(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_parse_error_is_a_located_warning() {
        let found = lint("lower(name", None);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].hazard, Hazard::InvalidExpression);
        assert!(!found[0].is_refusal());
        assert_eq!((found[0].line, found[0].column), (1, 11));
        assert!(lint("lower(name) || '@example.com'", None).is_empty());
        // pgroll's files write `up` as a SELECT of its own, too.
        assert!(lint("SELECT CASE WHEN name IS NULL THEN 'x' ELSE name END", None).is_empty());
    }

    #[test]
    fn an_unknown_column_is_a_warning() {
        let known = columns(&["id", "name"]);
        let found = lint("lower(nmae)", Some(&known));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].hazard, Hazard::UnknownColumn);
        assert!(found[0].message.contains("\"nmae\""));
        assert!(!found[0].is_refusal());
        assert!(lint("lower(name) || id::text", Some(&known)).is_empty());
    }

    #[test]
    fn names_inside_subqueries_and_qualified_names_are_not_checked() {
        let known = columns(&["id"]);
        assert!(lint(
            "(SELECT email FROM accounts a WHERE a.id = id)",
            Some(&known)
        )
        .is_empty());
        assert!(lint("accounts.email", Some(&known)).is_empty());
        // A SELECT without FROM still names the row's columns.
        assert_eq!(
            lint("SELECT CASE WHEN nmae IS NULL THEN 'x' END", Some(&known)).len(),
            1
        );
        assert!(lint(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM users WHERE users.id = user_id) THEN id END",
            Some(&known)
        )
        .is_empty());
    }
}
