//! The version schema: one simple, auto-updatable view per table, showing the names and
//! columns its version sees, in the table's column order, with the table's defaults.

use crate::ident::{qualified, quote_ident};
use crate::plan::{Lock, Phase, Step, Tx};
use crate::schema::{Schema, Table};

pub fn create_version_schema(schema: &Schema, version_schema: &str) -> Vec<Step> {
    let group = Tx::Group(format!("create version schema {version_schema}"));
    let mut steps = vec![Step::sql(
        Phase::Start,
        format!("create version schema {}", quote_ident(version_schema)),
        format!("CREATE SCHEMA {}", quote_ident(version_schema)),
    )
    .tx(group.clone())];
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
            steps.push(
                Step::sql(
                    Phase::Start,
                    format!(
                        "copy the default of {} onto the view",
                        quote_ident(&column.name)
                    ),
                    format!(
                        "ALTER VIEW {} ALTER COLUMN {} SET DEFAULT {default}",
                        qualified(version_schema, &table.name),
                        quote_ident(&column.name)
                    ),
                )
                .tx(group.clone()),
            );
        }
    }
    steps
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
