//! `drop_constraint`: the constraint's column is copied into a shadow column without that
//! constraint, so the new version is free of it while old versions keep it; `up`/`down`
//! translate between the two. Complete drops the old column, and the constraint with it.

use crate::ident::{qualified, quote_ident};
use crate::migration::DropConstraint;
use crate::ops::shadow::{shadow_column, ShadowSpec};
use crate::ops::{unknown_table, Op};
use crate::plan::{Lock, Phase, Step};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::{ConstraintKind, Schema};

impl Op for DropConstraint {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let Some(table) = schema.table(&self.table) else {
            return vec![unknown_table("/table", &self.table, schema)];
        };
        let mut problems = check_droppable(table, &self.name, false);
        if problems.is_empty() && super::given(self.down.as_deref()).is_none() {
            problems.push(missing_down(&self.name, None));
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let Some(con) = schema
            .table(&self.table)
            .and_then(|t| t.constraint(&self.name))
            .cloned()
        else {
            return;
        };
        let spec = ShadowSpec {
            up: self.up.as_deref(),
            down: self.down.as_deref(),
            without_constraint: Some(&self.name),
            ..ShadowSpec::default()
        };
        if drop_directly(schema, cx, &self.table, &self.name) {
            return;
        }
        if let Some(t) = schema.table(&self.table) {
            let added = con.columns.iter().find(|c| {
                t.column(c)
                    .is_some_and(|col| cx.added_here(&t.physical, &col.physical))
            });
            if let Some(c) = added {
                cx.problem(super::added_here_problem(c));
                return;
            }
        }
        for column in &con.columns {
            shadow_column(schema, cx, &self.table, column, &spec);
        }
        forget_constraint(schema, &self.table, &self.name);
    }
}

/// Problems with dropping constraint `name` of `table` through shadow columns.
pub(crate) fn check_droppable(
    table: &crate::schema::Table,
    name: &str,
    multicolumn: bool,
) -> Vec<Problem> {
    let Some(con) = table.constraint(name) else {
        let names: Vec<&str> = table.constraints.iter().map(|c| c.name.as_str()).collect();
        return vec![Problem::new(
            "/name",
            format!(
                "constraint \"{name}\" does not exist on table \"{}\"",
                table.name
            ),
        )
        .with_hint(format!("its constraints: {}", names.join(", ")))];
    };
    let mut problems = Vec::new();
    if con.kind == ConstraintKind::PrimaryKey {
        problems.push(Problem::new(
            "/name",
            "dropping a primary key is not supported yet",
        ));
    }
    if !multicolumn && con.columns.len() != 1 {
        problems.push(
            Problem::new(
                "/name",
                format!("constraint \"{name}\" covers {} columns", con.columns.len()),
            )
            .with_hint("use drop_multicolumn_constraint, with `up` and `down` per column"),
        );
    }
    problems
}

/// As in pgroll, dropping a constraint needs `down`: copied unchanged, a value the new version
/// writes could break the constraint the old version's column still has.
pub(crate) fn missing_down(name: &str, column: Option<&str>) -> Problem {
    let (pointer, what) = match column {
        Some(c) => (
            "/down".to_string(),
            format!("`down` has no expression for column \"{c}\""),
        ),
        None => (String::new(), "missing `down`".to_string()),
    };
    Problem::new(
        pointer,
        format!("{what}: the old version's column keeps constraint \"{name}\", which a copied value may break"),
    )
    .with_hint("add `down`: an SQL expression over the new row that gives the old version a value its constraint accepts")
}

pub(crate) fn forget_constraint(schema: &mut Schema, table: &str, name: &str) {
    if let Some(t) = schema.table_mut(table) {
        t.constraints.retain(|c| c.name != name);
        t.indexes.retain(|i| i.constraint.as_deref() != Some(name));
    }
}

/// On a table this migration creates, the constraint is dropped at once.
pub(crate) fn drop_directly(schema: &mut Schema, cx: &mut PlanCx, table: &str, name: &str) -> bool {
    let Some(t) = schema.table(table) else {
        return false;
    };
    if !cx.created_here(&t.physical) {
        return false;
    }
    let sql = format!(
        "ALTER TABLE {} DROP CONSTRAINT {}",
        qualified(cx.base, &t.physical),
        quote_ident(name)
    );
    cx.start(
        Step::sql(
            Phase::Start,
            format!("drop constraint {}", quote_ident(name)),
            sql,
        )
        .lock(Lock::AccessExclusive),
    );
    forget_constraint(schema, table, name);
    true
}
