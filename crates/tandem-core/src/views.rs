//! The version schema: one simple, auto-updatable view per table, showing the names and
//! columns its version sees, in the table's column order, with the table's defaults.
//!
//! The schema and its views belong to the role tandem runs as. Every other role gets what it
//! has on the base: `USAGE` on the version schema if it has it on the base schema, and on each
//! view the privileges it has on the table (the views are `security_invoker`, so the table's
//! own privileges are checked as well: a grant on the view adds no access the table denies).

use crate::ident::{qualified, quote_ident};
use crate::plan::{Lock, Phase, Step, Tx};
use crate::schema::{Grant, Schema, Table};

/// The table privileges a view can be granted, in PostgreSQL's order. Anything else read
/// from a recorded snapshot is ignored rather than spliced into SQL.
const PRIVILEGES: [&str; 8] = [
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
    "MAINTAIN",
];

pub fn create_version_schema(schema: &Schema, version_schema: &str) -> Vec<Step> {
    create_version_schema_with(schema, version_schema, &Default::default())
}

/// The version schema, where the defaults of the `tolerant` (physical table, physical column)
/// pairs are skipped if they do not fit the column's type (as on the table: see
/// `ops::shadow::unless_it_raises`).
pub fn create_version_schema_with(
    schema: &Schema,
    version_schema: &str,
    tolerant: &std::collections::BTreeSet<(String, String)>,
) -> Vec<Step> {
    let group = Tx::Group(format!("create version schema {version_schema}"));
    let mut steps = vec![Step::sql(
        Phase::Start,
        format!("create version schema {}", quote_ident(version_schema)),
        format!("CREATE SCHEMA {}", quote_ident(version_schema)),
    )
    .tx(group.clone())];
    if let Some(sql) = usage_sql(version_schema, &schema.usage) {
        steps.push(
            Step::sql(
                Phase::Start,
                format!(
                    "let the roles that use {} use {}",
                    quote_ident(&schema.name),
                    quote_ident(version_schema)
                ),
                sql,
            )
            .tx(group.clone()),
        );
    }
    for table in &schema.tables {
        steps.push(
            Step::sql(
                Phase::Start,
                format!("create view {}", qualified(version_schema, &table.name)),
                create_view_sql(&schema.name, version_schema, table),
            )
            .tx(group.clone())
            .lock(Lock::AccessShare),
        );
        for column in table.columns.iter().filter(|c| c.default.is_some()) {
            let default = column.default.as_deref().unwrap_or_default();
            let sql = format!(
                "ALTER VIEW {} ALTER COLUMN {} SET DEFAULT {default}",
                qualified(version_schema, &table.name),
                quote_ident(&column.name)
            );
            let key = (table.physical.clone(), column.physical.clone());
            let sql = if tolerant.contains(&key) {
                crate::ops::unless_it_raises(&sql, "datatype_mismatch")
            } else {
                sql
            };
            steps.push(
                Step::sql(
                    Phase::Start,
                    format!(
                        "copy the default of {} onto the view",
                        quote_ident(&column.name)
                    ),
                    sql,
                )
                .tx(group.clone()),
            );
        }
        for (grantee, sql) in grant_sql(version_schema, table) {
            steps.push(
                Step::sql(
                    Phase::Start,
                    format!(
                        "grant {} on the view what it has on the table",
                        grantee_sql(&grantee)
                    ),
                    sql,
                )
                .tx(group.clone()),
            );
        }
    }
    steps
}

/// A view column without a default takes its table column's default on insert. Where the
/// new version drops a default that the table keeps until complete, the view gets a default
/// that is NULL, so new-version inserts see the default gone at once (as in pgroll), while
/// old versions keep the table's. Runs in the version schema's transaction.
pub fn dropped_default_steps(before: &Schema, after: &Schema, version_schema: &str) -> Vec<Step> {
    let group = Tx::Group(format!("create version schema {version_schema}"));
    let mut steps = Vec::new();
    for table in &after.tables {
        let Some(old) = before.table_by_physical(&table.physical) else {
            continue;
        };
        for column in table.columns.iter().filter(|c| c.default.is_none()) {
            let had_default = old
                .column_by_physical(&column.physical)
                .is_some_and(|c| c.default.is_some() && c.identity.is_none());
            if had_default {
                steps.push(
                    Step::sql(
                        Phase::Start,
                        format!(
                            "the new version inserts {} without its old default",
                            quote_ident(&column.name)
                        ),
                        // PostgreSQL stores no default for a plain NULL (it would mean "no
                        // default", and the table's would apply): an expression that is NULL.
                        format!(
                            "ALTER VIEW {} ALTER COLUMN {} SET DEFAULT NULLIF(NULL::{}, NULL)",
                            qualified(version_schema, &table.name),
                            quote_ident(&column.name),
                            column.type_name
                        ),
                    )
                    .tx(group.clone()),
                );
            }
        }
    }
    steps
}

/// `PUBLIC` for `public` (no role can be called that), else the quoted role name.
fn grantee_sql(grantee: &str) -> String {
    if grantee == "public" {
        "PUBLIC".to_string()
    } else {
        quote_ident(grantee)
    }
}

/// One `GRANT USAGE` for every role that uses the base schema; PUBLIC alone when it is one.
fn usage_sql(version_schema: &str, usage: &[String]) -> Option<String> {
    let grantees: Vec<String> = if usage.iter().any(|g| g == "public") {
        vec!["PUBLIC".to_string()]
    } else {
        usage.iter().map(|g| grantee_sql(g)).collect()
    };
    (!grantees.is_empty()).then(|| {
        format!(
            "GRANT USAGE ON SCHEMA {} TO {}",
            quote_ident(version_schema),
            grantees.join(", ")
        )
    })
}

/// Per grantee (in the order first seen), the `GRANT` statements that give it on the view
/// what it has on the table: one for plain privileges, one `WITH GRANT OPTION`.
fn grant_sql(version_schema: &str, table: &Table) -> Vec<(String, String)> {
    let mut grantees: Vec<&str> = Vec::new();
    for g in &table.grants {
        if !grantees.contains(&g.grantee.as_str()) {
            grantees.push(&g.grantee);
        }
    }
    let view = qualified(version_schema, &table.name);
    let mut out = Vec::new();
    for grantee in grantees {
        for grantable in [false, true] {
            let privileges = privileges_of(&table.grants, grantee, grantable);
            if privileges.is_empty() {
                continue;
            }
            out.push((
                grantee.to_string(),
                format!(
                    "GRANT {} ON {view} TO {}{}",
                    privileges.join(", "),
                    grantee_sql(grantee),
                    if grantable { " WITH GRANT OPTION" } else { "" }
                ),
            ));
        }
    }
    out
}

fn privileges_of(grants: &[Grant], grantee: &str, grantable: bool) -> Vec<&'static str> {
    PRIVILEGES
        .into_iter()
        .filter(|p| {
            grants
                .iter()
                .any(|g| g.grantee == grantee && g.grantable == grantable && g.privilege == *p)
        })
        .collect()
}

fn create_view_sql(base: &str, version_schema: &str, table: &Table) -> String {
    let columns: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("{} AS {}", quote_ident(&c.physical), quote_ident(&c.name)))
        .collect();
    let select = if columns.is_empty() {
        "SELECT".to_string()
    } else {
        format!("SELECT {}", columns.join(", "))
    };
    format!(
        "CREATE VIEW {} WITH (security_invoker = true) AS {select} FROM {}",
        qualified(version_schema, &table.name),
        qualified(base, &table.physical)
    )
}

pub fn drop_version_schema(version_schema: &str, phase: Phase) -> Step {
    Step::sql(
        phase,
        format!("drop version schema {}", quote_ident(version_schema)),
        format!(
            "DROP SCHEMA IF EXISTS {} CASCADE",
            quote_ident(version_schema)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Column;

    fn grant(grantee: &str, privilege: &str, grantable: bool) -> Grant {
        Grant {
            grantee: grantee.to_string(),
            privilege: privilege.to_string(),
            grantable,
        }
    }

    fn sqls(steps: &[Step]) -> Vec<&str> {
        steps.iter().filter_map(|s| s.sql_text()).collect()
    }

    #[test]
    fn views_get_the_tables_grants_and_the_schema_its_usage() {
        let schema = Schema {
            name: "public".to_string(),
            tables: vec![Table {
                name: "Users".to_string(),
                physical: "users".to_string(),
                columns: vec![Column {
                    name: "id".to_string(),
                    physical: "id".to_string(),
                    type_name: "integer".to_string(),
                    ..Column::default()
                }],
                grants: vec![
                    grant("app \"rw\"", "UPDATE", false),
                    grant("app \"rw\"", "SELECT", false),
                    grant("app \"rw\"", "INSERT", true),
                    grant("public", "SELECT", false),
                    grant("evil", "SELECT; DROP TABLE x", false),
                ],
                ..Table::default()
            }],
            usage: vec!["app \"rw\"".to_string(), "reporting".to_string()],
            ..Schema::default()
        };
        assert_eq!(
            sqls(&create_version_schema(&schema, "public_02")),
            [
                r#"CREATE SCHEMA "public_02""#,
                r#"GRANT USAGE ON SCHEMA "public_02" TO "app ""rw""", "reporting""#,
                r#"CREATE VIEW "public_02"."Users" WITH (security_invoker = true) AS SELECT "id" AS "id" FROM "public"."users""#,
                r#"GRANT SELECT, UPDATE ON "public_02"."Users" TO "app ""rw""""#,
                r#"GRANT INSERT ON "public_02"."Users" TO "app ""rw""" WITH GRANT OPTION"#,
                r#"GRANT SELECT ON "public_02"."Users" TO PUBLIC"#,
            ]
        );
    }

    #[test]
    fn public_usage_is_granted_once() {
        assert_eq!(
            usage_sql("v", &["app".to_string(), "public".to_string()]).as_deref(),
            Some(r#"GRANT USAGE ON SCHEMA "v" TO PUBLIC"#)
        );
        assert_eq!(usage_sql("v", &[]), None);
    }
}
