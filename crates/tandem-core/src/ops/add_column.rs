//! `add_column`: the column is added at start under its final name (no view of an old version
//! lists it, so old clients never see it), filled for existing rows and old-version writes by
//! `up`. NOT NULL without a default is enforced by a `NOT VALID` check until complete, where
//! the validated check lets `SET NOT NULL` skip its scan.

use crate::ddl::{
    check_clause, check_column, column_definition, foreign_key_clause, schema_column,
};
use crate::expr::calls_volatile_function;
use crate::ident::{bounded_name, qualified, quote_ident, quote_literal};
use crate::migration::AddColumn;
use crate::ops::{unknown_table, Op};
use crate::plan::{Hazard, Lock, Phase, Step, Tx};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

impl Op for AddColumn {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        let Some(table) = schema.table(&self.table) else {
            return vec![unknown_table("/table", &self.table, schema)];
        };
        let mut problems = check_column(&self.column, "/column");
        if table.column(&self.column.name).is_some() {
            problems.push(Problem::new(
                "/column/name",
                format!(
                    "column \"{}\" already exists on table \"{}\"",
                    self.column.name, self.table
                ),
            ));
        }
        let needs_up = !self.column.is_nullable()
            && self.column.default.is_none()
            && self.column.generated.is_none()
            && serial_base(&self.column.type_name).is_none();
        if needs_up && super::given(self.up.as_deref()).is_none() {
            problems.push(
                Problem::new("/up", format!("column \"{}\" is NOT NULL without a default, so existing rows need a value", self.column.name))
                    .with_hint("add `up` (an SQL expression over the old row), a `default`, or set `nullable: true`"),
            );
        }
        if let (Some(default), Some(up)) = (
            self.column
                .default
                .as_deref()
                .filter(|d| calls_volatile_function(d)),
            super::given(self.up.as_deref()),
        ) {
            if default.trim() != up.trim() {
                problems.push(
                    Problem::new("/up", format!("column \"{}\" has a volatile default ({default}), which new rows get row by row, so existing rows must get it too", self.column.name))
                        .with_hint("leave `up` out (existing rows then get the default, computed for each), or make `up` the same expression"),
                );
            }
        }
        if self.column.is_pk() {
            problems.push(
                Problem::new("/column/pk", "add_column cannot add a primary-key column")
                    .with_hint("use create_constraint of type primary_key"),
            );
        }
        if let Some(r) = &self.column.references {
            match schema.table(&r.table) {
                None => problems.push(unknown_table("/column/references/table", &r.table, schema)),
                Some(t) if t.column(&r.column).is_none() => problems.push(super::unknown_column(
                    "/column/references/column",
                    t,
                    &r.column,
                )),
                Some(_) => {}
            }
        }
        problems
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let Some(table) = schema.table(&self.table) else {
            return;
        };
        let physical_table = table.physical.clone();
        let physical = free_physical_name(cx, &physical_table, &self.column.name);
        let target = qualified(cx.base, &physical_table);
        let column = quote_ident(&physical);
        let group = Tx::Group(format!("add column {}", self.column.name));
        cx.physical_column_added(&physical_table, &physical);
        let mut spec = self.column.clone();
        spec.name = physical.clone();
        // A serial column's default (nextval) is volatile: added with the column, it would
        // rewrite the table under ACCESS EXCLUSIVE. So the sequence and the default come
        // after the bare column, and the backfill numbers the existing rows.
        let serial = serial_base(&self.column.type_name).map(|base_type| {
            let sequence = bounded_name(&[&physical_table, &self.column.name, "seq"]);
            let nextval = format!(
                "nextval({}::regclass)",
                quote_literal(&qualified(cx.base, &sequence))
            );
            spec.type_name = base_type.to_string();
            (base_type, sequence, nextval)
        });
        // The same goes for any volatile default: the column comes bare, the default after
        // (for new rows), and the backfill computes it for each existing row.
        let volatile_default = self
            .column
            .default
            .clone()
            .filter(|d| calls_volatile_function(d));
        if volatile_default.is_some() {
            spec.default = None;
        }
        if let Some((base_type, sequence, _)) = &serial {
            cx.start(
                Step::sql(
                    Phase::Start,
                    format!("create sequence {}", quote_ident(sequence)),
                    format!(
                        "CREATE SEQUENCE {} AS {base_type}",
                        qualified(cx.base, sequence)
                    ),
                )
                .tx(group.clone()),
            );
        }
        // A NOT NULL column with a default can be NOT NULL at once: every row gets the default.
        let not_null_now = !self.column.is_nullable()
            && self.column.default.is_some()
            && !self
                .column
                .default
                .as_deref()
                .is_some_and(calls_volatile_function);
        let mut add = Step::sql(
            Phase::Start,
            format!(
                "add column {} to {}",
                quote_ident(&self.column.name),
                quote_ident(&self.table)
            ),
            format!(
                "ALTER TABLE {target} ADD COLUMN {}",
                column_definition(&spec, !not_null_now)
            ),
        )
        .lock(Lock::AccessExclusive)
        .tx(group.clone());
        if self.column.generated.is_some() {
            add = add.hazard(Hazard::TableRewrite);
        }
        cx.start(add);
        let late_default = serial
            .as_ref()
            .map(|(_, _, nextval)| nextval.clone())
            .or_else(|| volatile_default.clone());
        if let Some(default) = &late_default {
            cx.start(
                Step::sql(
                    Phase::Start,
                    "give new rows the default (existing rows get it from the backfill)",
                    format!("ALTER TABLE {target} ALTER COLUMN {column} SET DEFAULT {default}"),
                )
                .lock(Lock::AccessExclusive)
                .tx(group.clone()),
            );
        }
        if let Some((_, sequence, _)) = &serial {
            cx.start(
                Step::sql(
                    Phase::Start,
                    "the column owns its sequence",
                    format!(
                        "ALTER SEQUENCE {} OWNED BY {target}.{column}",
                        qualified(cx.base, sequence)
                    ),
                )
                .tx(group.clone()),
            );
        }
        if let Some(comment) = &self.column.comment {
            cx.start(
                Step::sql(
                    Phase::Start,
                    "comment on the new column",
                    format!(
                        "COMMENT ON COLUMN {target}.{column} IS {}",
                        quote_literal(comment)
                    ),
                )
                .tx(group.clone()),
            );
        }
        if let Some(check) = &self.column.check {
            self.add_not_valid(
                cx,
                &target,
                &physical_table,
                &check_clause(check),
                &check.name,
                &group,
            );
        }
        if let Some(r) = &self.column.references {
            self.add_not_valid(
                cx,
                &target,
                &physical_table,
                &foreign_key_clause(cx.base, schema, &physical, r),
                &r.name,
                &group,
            );
        }
        if !self.column.is_nullable() && !not_null_now {
            super::shadow::not_null_via_check(cx, &physical_table, &physical, &group);
        }
        if self.column.is_unique() {
            self.add_unique(cx, &target, &physical_table, &physical);
        }
        if let Some(up) = super::given(self.up.as_deref()) {
            let up = match schema.table(&self.table) {
                Some(t) => cx.up_in_old_names(t, up),
                None => up.to_string(),
            };
            cx.sync_up(&physical_table, &physical, &up);
            cx.backfill(&physical_table, &physical, &up);
        } else if let Some(default) = &late_default {
            // Old-version inserts take the table's default; existing rows get it computed
            // for each of them.
            cx.backfill(&physical_table, &physical, default);
        }
        cx.rollback(
            Step::sql(
                Phase::Rollback,
                format!(
                    "drop column {} of {}",
                    quote_ident(&physical),
                    quote_ident(&physical_table)
                ),
                format!("ALTER TABLE {target} DROP COLUMN IF EXISTS {column}"),
            )
            .lock(Lock::AccessExclusive),
        );
        if let Some(t) = schema.table_mut(&self.table) {
            let mut col = schema_column(&self.column, &physical);
            col.nullable = self.column.is_nullable();
            if let Some((base_type, _, nextval)) = &serial {
                col.type_name = base_type.to_string();
                col.default = Some(nextval.clone());
            }
            t.columns.push(col);
        }
    }
}

/// The integer type a `serial` shorthand stands for.
fn serial_base(type_name: &str) -> Option<&'static str> {
    match type_name.trim().to_ascii_lowercase().as_str() {
        "serial" | "serial4" => Some("integer"),
        "bigserial" | "serial8" => Some("bigint"),
        "smallserial" | "serial2" => Some("smallint"),
        _ => None,
    }
}

impl AddColumn {
    /// Adds a constraint `NOT VALID` at start (no scan under the lock) and validates it at
    /// complete, before the contract's exclusive lock.
    fn add_not_valid(
        &self,
        cx: &mut PlanCx,
        target: &str,
        physical_table: &str,
        clause: &str,
        name: &str,
        group: &Tx,
    ) {
        cx.start_after_sync(
            Step::sql(
                Phase::Start,
                format!("add constraint {} NOT VALID", quote_ident(name)),
                format!("ALTER TABLE {target} ADD {clause} NOT VALID"),
            )
            .lock(Lock::AccessExclusive)
            .tx(group.clone()),
        );
        super::shadow::validate(cx, physical_table, name);
    }

    /// Builds the unique index without blocking writes, and attaches it as a constraint at
    /// complete (a catalog-only change).
    fn add_unique(&self, cx: &mut PlanCx, target: &str, physical_table: &str, physical: &str) {
        let index = bounded_name(&[physical_table, &self.column.name, "key"]);
        cx.start_after_sync(
            Step::sql(
                Phase::Start,
                format!("build unique index {} concurrently", quote_ident(&index)),
                format!(
                    "CREATE UNIQUE INDEX CONCURRENTLY {} ON {target} ({})",
                    quote_ident(&index),
                    quote_ident(physical)
                ),
            )
            .tx(Tx::None)
            .lock(Lock::ShareUpdateExclusive)
            .hazard(Hazard::IndexBuild),
        );
        cx.contract(
            physical_table,
            Step::sql(
                Phase::Complete,
                format!(
                    "attach unique index {} as a constraint",
                    quote_ident(&index)
                ),
                format!(
                    "ALTER TABLE {target} ADD CONSTRAINT {} UNIQUE USING INDEX {}",
                    quote_ident(&index),
                    quote_ident(&index)
                ),
            )
            .lock(Lock::AccessExclusive),
        );
        cx.rollback(
            Step::sql(
                Phase::Rollback,
                format!("drop index {}", quote_ident(&index)),
                format!(
                    "DROP INDEX CONCURRENTLY IF EXISTS {}",
                    qualified(cx.base, &index)
                ),
            )
            .tx(Tx::None),
        );
    }
}

/// The column's own name when the table has no physical column of that name (one dropped in
/// this migration still exists until complete), else a shadow name.
fn free_physical_name(cx: &PlanCx, physical_table: &str, name: &str) -> String {
    if cx.has_physical_column(physical_table, name) {
        bounded_name(&["_tandem_new", name])
    } else {
        name.to_string()
    }
}
