//! Shadow columns: a change old versions must not see happens in a copy of the column,
//! `_tandem_new_<col>`, that carries over everything the column had (default, comment, NOT
//! NULL, checks, foreign keys, indexes), is kept in sync both ways by the trigger, backfilled,
//! and renamed into place at complete. Rollback drops the copy, and everything on it with it.

use crate::expr::{identifiers, rename_column_refs};
use crate::ident::{bounded_name, qualified, quote_ident, quote_literal};
use crate::plan::{Hazard, Lock, Phase, Step, Tx};
use crate::planner::PlanCx;
use crate::schema::{ConstraintKind, Schema, Table};

/// `sql`, skipped where PostgreSQL raises `condition` (an SQLSTATE condition name): pgroll's
/// rule for what a type change drops. Copying a column's default or checks onto a copy of
/// another type, pgroll ignores exactly the errors that say they cannot apply to it
/// (`datatype_mismatch` for a default, `undefined_function` for a check such as
/// `length(age) > 0` on an integer). The planner cannot know the casts and functions of the
/// database, so the step carries the rule and PostgreSQL decides.
pub(crate) fn unless_it_raises(sql: &str, condition: &str) -> String {
    let body = format!("BEGIN\n  {sql};\nEXCEPTION WHEN {condition} THEN NULL;\nEND");
    format!("DO {}", crate::ident::dollar_quote(&body))
}

/// `sql`, run only if constraint `name` of `table` exists (a copy the type change dropped).
pub(crate) fn if_constraint_exists(base: &str, table: &str, name: &str, sql: &str) -> String {
    let body = format!(
        "BEGIN\n  IF EXISTS (SELECT FROM pg_catalog.pg_constraint WHERE conrelid = {}::regclass AND conname = {}) THEN\n    {sql};\n  END IF;\nEND",
        quote_literal(&qualified(base, table)),
        quote_literal(name)
    );
    format!("DO {}", crate::ident::dollar_quote(&body))
}

/// What the copy should look like, where it differs from the column.
#[derive(Default)]
pub(crate) struct ShadowSpec<'a> {
    pub type_name: Option<&'a str>,
    pub nullable: Option<bool>,
    /// `Some(None)` drops the default.
    pub default: Option<Option<&'a str>>,
    pub comment: Option<Option<&'a str>>,
    /// SQL over the old row that computes the new column; the column itself by default.
    pub up: Option<&'a str>,
    /// SQL over the new row that computes the old column; the shadow's value by default.
    pub down: Option<&'a str>,
    /// A constraint (or the index backing it) not to carry over: the one being dropped.
    pub without_constraint: Option<&'a str>,
}

/// The shadow of `column` in `table` (logical names in `schema`), created on first use in this
/// migration. Returns its physical name.
pub(crate) fn shadow_column(
    schema: &mut Schema,
    cx: &mut PlanCx,
    table: &str,
    column: &str,
    spec: &ShadowSpec,
) -> String {
    let t = schema
        .table(table)
        .expect("checked by the operation")
        .clone();
    let c = t.column(column).expect("checked by the operation").clone();
    let existing = cx
        .shadows
        .contains(&(t.physical.clone(), c.physical.clone()));
    let (original, shadow) = if existing {
        let original = cx.shadow_origin(&t.physical, &c.physical);
        (original, c.physical.clone())
    } else {
        let shadow = bounded_name(&["_tandem_new", &c.physical]);
        create(cx, &t, &c.physical, &shadow, spec);
        cx.shadow_created(&t.physical, &c.physical, &shadow);
        if let Some(skip) = spec.without_constraint {
            cx.skip_copy(&t.physical, skip);
        }
        (c.physical.clone(), shadow)
    };
    // An omitted (or empty) `up`/`down` copies the value unchanged, as pgroll's default does,
    // cast to the other side's type when the type changes. A shadow reused by a later
    // operation that gives none and changes no type keeps what the earlier one set.
    let old_type = cx
        .before
        .table_by_physical(&t.physical)
        .and_then(|b| b.column_by_physical(&original))
        .map_or_else(|| c.type_name.clone(), |b| b.type_name.clone());
    let new_type = spec
        .type_name
        .map_or_else(|| c.type_name.clone(), str::to_string);
    let cast = |value: String, to: &str| {
        if old_type == new_type {
            value
        } else {
            format!("CAST({value} AS {})", crate::sync::variable_type(to))
        }
    };
    let keep_earlier = existing && spec.type_name.is_none();
    // The trigger's defaults name the row's fields directly; the backfill's names the table's.
    let up = super::given(spec.up).map(|u| cx.up_in_old_names(&t, u));
    if up.is_some() || !keep_earlier {
        let mut trigger_up = up
            .clone()
            .unwrap_or_else(|| cast(format!("NEW.{}", quote_ident(&original)), &new_type));
        let mut backfill_up = up
            .clone()
            .unwrap_or_else(|| cast(quote_ident(&original), &new_type));
        // Two operations on one column chain, as in pgroll: the later `up` reads the column
        // as the earlier `up` left it.
        if let (true, Some(_)) = (existing, &up) {
            let old_name = cx
                .before
                .table_by_physical(&t.physical)
                .and_then(|b| b.column_by_physical(&original))
                .map_or_else(|| original.clone(), |b| b.name.clone());
            if let Some(earlier) = cx.sync_up_of(&t.physical, &shadow) {
                trigger_up = crate::expr::substitute_column(&trigger_up, &old_name, &earlier);
            }
            if let Some(earlier) = cx.backfill_of(&t.physical, &shadow) {
                backfill_up = crate::expr::substitute_column(&backfill_up, &old_name, &earlier);
            }
        }
        cx.sync_up(&t.physical, &shadow, &trigger_up);
        cx.backfill(&t.physical, &shadow, &backfill_up);
    }
    let down = super::given(spec.down);
    if down.is_some() || !keep_earlier {
        let trigger_down = down
            .map(str::to_string)
            .unwrap_or_else(|| cast(format!("NEW.{}", quote_ident(&shadow)), &old_type));
        cx.sync_down(&t.physical, &original, &trigger_down);
    }
    if let (true, Some(nullable)) = (existing, spec.nullable) {
        cx.shadow_not_null
            .insert((t.physical.clone(), shadow.clone()), !nullable);
    }
    let virtual_table = schema.table_mut(table).expect("checked");
    let mut position = virtual_table
        .columns
        .iter()
        .position(|c| c.name == column)
        .expect("checked");
    // A new shadow is the table's last column once it is renamed into place, and PostgreSQL
    // cannot reorder columns: the new version shows the column where it will stay. A shadow
    // reused by a later operation already sits where it was created, before any column the
    // migration added after it.
    if !existing {
        let moved = virtual_table.columns.remove(position);
        virtual_table.columns.push(moved);
        position = virtual_table.columns.len() - 1;
    }
    let col = &mut virtual_table.columns[position];
    col.physical.clone_from(&shadow);
    if let Some(ty) = spec.type_name {
        col.type_name = ty.to_string();
    }
    if let Some(n) = spec.nullable {
        col.nullable = n;
    }
    if let Some(d) = spec.default {
        col.default = d.map(str::to_string);
    }
    if let Some(c) = spec.comment {
        col.comment = c.map(str::to_string);
    }
    shadow
}

fn create(cx: &mut PlanCx, t: &Table, original: &str, shadow: &str, spec: &ShadowSpec) {
    let c = t.column_by_physical(original).expect("column exists");
    let target = qualified(cx.base, &t.physical);
    let col = quote_ident(shadow);
    let group = Tx::Group(format!("shadow {}.{}", t.physical, original));
    let type_name = spec.type_name.unwrap_or(&c.type_name);
    let step = |what: String, sql: String| Step::sql(Phase::Start, what, sql).tx(group.clone());
    cx.start(
        step(
            format!("add shadow column {col} for {}", quote_ident(original)),
            format!("ALTER TABLE {target} ADD COLUMN {col} {type_name}"),
        )
        .lock(Lock::AccessExclusive),
    );
    cx.physical_column_added(&t.physical, shadow);
    let default = match spec.default {
        Some(d) => d.map(str::to_string),
        None => c.default.clone(),
    };
    // The column's own default, carried onto a copy of another type, may not fit it.
    let retyped = spec.type_name.is_some_and(|t| t != c.type_name);
    let inherited_default = spec.default.is_none() && retyped;
    if let Some(d) = default {
        let sql = format!("ALTER TABLE {target} ALTER COLUMN {col} SET DEFAULT {d}");
        let sql = if inherited_default {
            cx.tolerant_default(&t.physical, shadow);
            unless_it_raises(&sql, "datatype_mismatch")
        } else {
            sql
        };
        cx.start(step("give the shadow column its default".into(), sql));
    }
    let comment = match spec.comment {
        Some(cm) => cm.map(str::to_string),
        None => c.comment.clone(),
    };
    if let Some(cm) = comment {
        cx.start(step(
            "copy the column comment".into(),
            format!("COMMENT ON COLUMN {target}.{col} IS {}", quote_literal(&cm)),
        ));
    }
    cx.shadow_not_null.insert(
        (t.physical.clone(), shadow.to_string()),
        !spec.nullable.unwrap_or(c.nullable),
    );
    cx.rollback(
        Step::sql(
            Phase::Rollback,
            format!("drop shadow column {col}"),
            format!("ALTER TABLE {target} DROP COLUMN IF EXISTS {col}"),
        )
        .lock(Lock::AccessExclusive),
    );
}

/// NOT NULL without a scan under the exclusive lock: a `NOT VALID` check at start, validated
/// at complete, which then lets `SET NOT NULL` skip its own scan.
pub(crate) fn not_null_via_check(cx: &mut PlanCx, physical_table: &str, column: &str, group: &Tx) {
    let target = qualified(cx.base, physical_table);
    let name = bounded_name(&["_tandem_nn", physical_table, column]);
    let col = quote_ident(column);
    cx.start_after_sync(
        Step::sql(
            Phase::Start,
            format!("enforce NOT NULL on {col} for new rows"),
            format!(
                "ALTER TABLE {target} ADD CONSTRAINT {} CHECK ({col} IS NOT NULL) NOT VALID",
                quote_ident(&name)
            ),
        )
        .lock(Lock::AccessExclusive)
        .tx(group.clone()),
    );
    validate(cx, physical_table, &name);
    cx.contract(
        physical_table,
        Step::sql(
            Phase::Complete,
            format!("make {col} NOT NULL (the validated check spares the scan)"),
            format!("ALTER TABLE {target} ALTER COLUMN {col} SET NOT NULL"),
        )
        .lock(Lock::AccessExclusive),
    );
    cx.contract(
        physical_table,
        Step::sql(
            Phase::Complete,
            "drop the temporary NOT NULL check",
            format!(
                "ALTER TABLE {target} DROP CONSTRAINT {}",
                quote_ident(&name)
            ),
        )
        .lock(Lock::AccessExclusive),
    );
}

pub(crate) fn validate(cx: &mut PlanCx, physical_table: &str, constraint: &str) {
    cx.validate_on_complete(
        Step::sql(
            Phase::Complete,
            format!("validate constraint {}", quote_ident(constraint)),
            format!(
                "ALTER TABLE {} VALIDATE CONSTRAINT {}",
                qualified(cx.base, physical_table),
                quote_ident(constraint)
            ),
        )
        .lock(Lock::ShareUpdateExclusive),
    );
}

/// Carries the constraints and indexes over the shadowed columns of every table onto the
/// shadows, once all of a migration's shadows exist: one copy per constraint or index, even
/// when it spans several shadowed columns.
pub(crate) fn copy_onto_shadows(cx: &mut PlanCx, after: &Schema) {
    let not_null: Vec<(String, String)> = cx
        .shadow_not_null
        .iter()
        .filter(|(_, nn)| **nn)
        .map(|(k, _)| k.clone())
        .collect();
    for (table, shadow) in not_null {
        let group = Tx::Group(format!("shadow {table}.{shadow}"));
        not_null_via_check(cx, &table, &shadow, &group);
    }
    for (table, pairs) in cx.shadows_by_table() {
        // The virtual schema's table: what earlier operations created, renamed or dropped
        // (indexes, constraints) is carried over as the new version will have it.
        let Some(t) = after.table_by_physical(&table) else {
            continue;
        };
        let skip = cx.skipped_copies(&table);
        let group = Tx::Group(format!("copy constraints of {table}"));
        copy_constraints(cx, t, &pairs, &skip, &group);
        copy_indexes(cx, t, &pairs, &skip);
    }
}

/// `sql` with every shadowed column pointed at its shadow.
fn onto_shadows(sql: &str, pairs: &[(String, String)]) -> String {
    pairs.iter().fold(sql.to_string(), |s, (original, shadow)| {
        rename_column_refs(&s, original, shadow)
    })
}

/// CHECK and FOREIGN KEY constraints over shadowed columns, re-created `NOT VALID` on the
/// shadows under a temporary name, validated at complete and renamed back once the old
/// columns (and the old constraint with them) are gone.
fn copy_constraints(
    cx: &mut PlanCx,
    t: &Table,
    pairs: &[(String, String)],
    skip: &[String],
    group: &Tx,
) {
    let target = qualified(cx.base, &t.physical);
    for con in &t.constraints {
        // Constraints this migration creates are built on the shadows already.
        if con.definition.is_empty() || skip.contains(&con.name) {
            continue;
        }
        let own_columns = con
            .definition
            .split(" REFERENCES ")
            .next()
            .unwrap_or_default();
        let mentioned = identifiers(own_columns);
        if !pairs.iter().any(|(o, _)| mentioned.contains(o)) {
            continue;
        }
        let definition = match con.kind {
            ConstraintKind::Check => onto_shadows(&con.definition, pairs),
            ConstraintKind::ForeignKey => match con.definition.split_once(" REFERENCES ") {
                Some((cols, rest)) => format!("{} REFERENCES {rest}", onto_shadows(cols, pairs)),
                None => continue,
            },
            _ => continue,
        };
        let definition = definition
            .trim_end()
            .trim_end_matches("NOT VALID")
            .trim_end()
            .to_string();
        let temp = bounded_name(&["_tandem_new", &con.name]);
        // A check over a column whose type changes may not apply to the new type.
        let retyped = con.kind == ConstraintKind::Check
            && pairs.iter().any(|(original, shadow)| {
                mentioned.contains(original) && retyped(cx, t, original, shadow)
            });
        let add = format!(
            "ALTER TABLE {target} ADD CONSTRAINT {} {definition} NOT VALID",
            quote_ident(&temp)
        );
        let rename = format!(
            "ALTER TABLE {target} RENAME CONSTRAINT {} TO {}",
            quote_ident(&temp),
            quote_ident(&con.name)
        );
        let (add, rename) = if retyped {
            (
                unless_it_raises(&add, "undefined_function"),
                if_constraint_exists(cx.base, &t.physical, &temp, &rename),
            )
        } else {
            (add, rename)
        };
        cx.start_after_sync(
            Step::sql(
                Phase::Start,
                format!(
                    "copy constraint {} onto the shadow column",
                    quote_ident(&con.name)
                ),
                add,
            )
            .lock(Lock::AccessExclusive)
            .tx(group.clone()),
        );
        if retyped {
            let sql = format!(
                "ALTER TABLE {target} VALIDATE CONSTRAINT {}",
                quote_ident(&temp)
            );
            cx.validate_on_complete(
                Step::sql(
                    Phase::Complete,
                    format!("validate constraint {}", quote_ident(&temp)),
                    if_constraint_exists(cx.base, &t.physical, &temp, &sql),
                )
                .lock(Lock::ShareUpdateExclusive),
            );
        } else {
            validate(cx, &t.physical, &temp);
        }
        cx.contract(
            &t.physical,
            Step::sql(
                Phase::Complete,
                format!("give constraint {} its name back", quote_ident(&con.name)),
                rename,
            )
            .lock(Lock::AccessExclusive),
        );
    }
}

/// Whether the shadow of `original` has another type than the column it copies.
fn retyped(cx: &PlanCx, t: &Table, original: &str, shadow: &str) -> bool {
    let before = cx
        .before
        .table_by_physical(&t.physical)
        .and_then(|b| b.column_by_physical(original));
    let after = t.column_by_physical(shadow);
    matches!((before, after), (Some(b), Some(a)) if b.type_name != a.type_name)
}

/// Indexes over shadowed columns (plain, unique, partial, expression), built again on the shadows
/// `CONCURRENTLY` under a temporary name; at complete a unique constraint is re-attached to
/// its index and other indexes get their names back.
fn copy_indexes(cx: &mut PlanCx, t: &Table, pairs: &[(String, String)], skip: &[String]) {
    let target = qualified(cx.base, &t.physical);
    for index in &t.indexes {
        let Some((head, tail)) = index.definition.split_once(" USING ") else {
            continue;
        };
        let mentioned = identifiers(tail);
        let mentions = pairs.iter().any(|(o, _)| mentioned.contains(o));
        let skipped = skip.contains(&index.name)
            || index.constraint.as_ref().is_some_and(|c| skip.contains(c));
        if !mentions || skipped {
            continue;
        }
        let temp = bounded_name(&["_tandem_new", &index.name]);
        let unique = if head.starts_with("CREATE UNIQUE") || index.primary {
            "UNIQUE "
        } else {
            ""
        };
        cx.start_after_sync(
            Step::sql(
                Phase::Start,
                format!(
                    "copy index {} onto the shadow column",
                    quote_ident(&index.name)
                ),
                format!(
                    "CREATE {unique}INDEX CONCURRENTLY {} ON {target} USING {}",
                    quote_ident(&temp),
                    onto_shadows(tail, pairs)
                ),
            )
            .tx(Tx::None)
            .lock(Lock::ShareUpdateExclusive)
            .hazard(Hazard::IndexBuild)
            .cleanup(format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                qualified(cx.base, &temp)
            )),
        );
        // A primary key goes over to the unique index on the shadows once the old columns
        // (and the old key with them) are gone; the shadows are NOT NULL by then.
        let finish = match index.constraint.as_deref().and_then(|c| t.constraint(c)) {
            Some(con) if con.kind == ConstraintKind::Unique => format!(
                "ALTER TABLE {target} ADD CONSTRAINT {} UNIQUE USING INDEX {}",
                quote_ident(&con.name),
                quote_ident(&temp)
            ),
            Some(con) if con.kind == ConstraintKind::PrimaryKey => format!(
                "ALTER TABLE {target} ADD CONSTRAINT {} PRIMARY KEY USING INDEX {}",
                quote_ident(&con.name),
                quote_ident(&temp)
            ),
            _ => format!(
                "ALTER INDEX {} RENAME TO {}",
                qualified(cx.base, &temp),
                quote_ident(&index.name)
            ),
        };
        cx.contract(
            &t.physical,
            Step::sql(
                Phase::Complete,
                format!("give index {} its name back", quote_ident(&index.name)),
                finish,
            )
            .lock(Lock::AccessExclusive),
        );
        // The old index took the table's replica identity with it when its column went.
        let identity = crate::schema::ReplicaIdentity::Index {
            index: index.name.clone(),
        };
        if t.replica_identity.as_ref() == Some(&identity) {
            let sql = format!(
                "ALTER TABLE {target} REPLICA IDENTITY USING INDEX {}",
                quote_ident(&index.name)
            );
            cx.contract(
                &t.physical,
                Step::sql(Phase::Complete, "restore the replica identity", sql)
                    .lock(Lock::AccessExclusive),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::load::{load_migration, Format};
    use crate::planner::{plan, PlanInput};
    use crate::schema::{Column, Schema, Table};

    fn items() -> Schema {
        let column = |name: &str| Column {
            name: name.to_string(),
            physical: name.to_string(),
            type_name: "text".to_string(),
            ..Column::default()
        };
        Schema {
            name: "public".to_string(),
            tables: vec![Table {
                name: "items".to_string(),
                physical: "items".to_string(),
                columns: vec![column("id"), column("body")],
                primary_key: vec!["id".to_string()],
                ..Table::default()
            }],
            ..Schema::default()
        }
    }

    fn columns_after(migration: &str) -> Vec<String> {
        let migration = load_migration("m.json", "m", migration, Format::Json).unwrap();
        let schema = items();
        let plan = plan(&PlanInput {
            schema: &schema,
            migration: &migration,
            previous_version_schema: None,
        })
        .unwrap();
        plan.schema_after.tables[0]
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect()
    }

    #[test]
    fn a_shadowed_column_ends_up_last() {
        let after = columns_after(
            r#"{"operations": [{"alter_column": {"table": "items", "column": "body",
                "type": "varchar(300)", "up": "left(body, 300)"}}]}"#,
        );
        assert_eq!(after, ["id", "body"]);
        let after = columns_after(
            r#"{"operations": [
                {"add_column": {"table": "items", "column": {"name": "n", "type": "int", "nullable": true}}},
                {"alter_column": {"table": "items", "column": "body", "type": "varchar(300)", "up": "left(body, 300)"}}]}"#,
        );
        assert_eq!(after, ["id", "n", "body"]);
    }

    /// Found by the e2e property test: the second operation reused the shadow the first had
    /// created before `n` was added, and the prediction moved it behind `n` anyway.
    #[test]
    fn a_reused_shadow_stays_where_it_was_created() {
        let after = columns_after(
            r#"{"operations": [
                {"create_constraint": {"table": "items", "name": "chk", "type": "check",
                    "columns": ["body"], "check": "length(body) < 1000", "up": {"body": "left(body, 999)"}}},
                {"add_column": {"table": "items", "column": {"name": "n", "type": "int", "nullable": true}}},
                {"alter_column": {"table": "items", "column": "body", "type": "varchar(300)", "up": "left(body, 300)"}}]}"#,
        );
        assert_eq!(after, ["id", "body", "n"]);
    }
}
