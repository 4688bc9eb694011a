//! `drop_multicolumn_constraint`: `drop_constraint` for a constraint over several columns,
//! with `up` and `down` given per column.

use crate::migration::DropMulticolumnConstraint;
use crate::ops::drop_constraint::{check_droppable, drop_directly, forget_constraint};

use crate::ops::shadow::{shadow_column, ShadowSpec};
use crate::ops::{unknown_table, Op};
use crate::planner::PlanCx;
use crate::problem::{pointer_token, Problem};
use crate::schema::Schema;

impl Op for DropMulticolumnConstraint {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let Some(table) = schema.table(&self.table) else {
            return vec![unknown_table("/table", &self.table, schema)];
        };
        let mut problems = check_droppable(table, &self.name, true);
        if let Some(con) = table.constraint(&self.name) {
            for c in &con.columns {
                let down = self
                    .down
                    .as_ref()
                    .and_then(|m| m.get(c))
                    .map(String::as_str);
                if super::given(down).is_none() {
                    problems.push(super::drop_constraint::missing_down(&self.name, Some(c)));
                }
            }
            for (field, map) in [("up", &self.up), ("down", &self.down)] {
                for key in map.iter().flat_map(|m| m.keys()) {
                    if !con.columns.contains(key) {
                        problems.push(Problem::new(
                            format!("/{field}/{}", pointer_token(key)),
                            format!("\"{key}\" is not one of the constraint's columns"),
                        ));
                    }
                }
            }
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
            let spec = ShadowSpec {
                up: self
                    .up
                    .as_ref()
                    .and_then(|m| m.get(column))
                    .map(String::as_str),
                down: self
                    .down
                    .as_ref()
                    .and_then(|m| m.get(column))
                    .map(String::as_str),
                without_constraint: Some(&self.name),
                ..ShadowSpec::default()
            };
            shadow_column(schema, cx, &self.table, column, &spec);
        }
        forget_constraint(schema, &self.table, &self.name);
    }
}
