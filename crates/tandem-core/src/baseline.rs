//! Baselines and pulled files: an existing schema as the SQL that recreates it (the `sql`
//! operation of a baseline migration file), and a migration written back out as file text.
//!
//! The baseline's SQL is what a fresh database needs to reach the schema tandem starts from:
//! replayed by `tandem diff --migrations` or on a new developer's machine, it builds the
//! tables, sequences, columns, constraints, indexes and comments the live database has.

use crate::ident::{qualified, quote_ident, quote_literal};
use crate::load::Format;
use crate::migration::{Migration, MigrationFile, Operation, Sql};
use crate::schema::{ConstraintKind, Schema, Table};

/// The statements that recreate `schema`'s tables, in an order that runs on an empty schema:
/// sequences, tables, then constraints (foreign keys last), indexes and comments.
pub fn schema_sql(schema: &Schema) -> String {
    let base = &schema.name;
    let mut sequences = Vec::new();
    let mut tables = Vec::new();
    let mut owned = Vec::new();
    let mut constraints = Vec::new();
    let mut foreign_keys = Vec::new();
    let mut indexes = Vec::new();
    let mut comments = Vec::new();
    for t in &schema.tables {
        for c in &t.columns {
            if let Some(sequence) = c.default.as_deref().and_then(serial_sequence) {
                sequences.push(format!("CREATE SEQUENCE IF NOT EXISTS {sequence};"));
                owned.push(format!(
                    "ALTER SEQUENCE {sequence} OWNED BY {}.{};",
                    qualified(base, &t.physical),
                    quote_ident(&c.physical)
                ));
            }
        }
        tables.push(create_table(base, t));
        for k in &t.constraints {
            let statement = format!(
                "ALTER TABLE {} ADD CONSTRAINT {} {};",
                qualified(base, &t.physical),
                quote_ident(&k.name),
                k.definition
            );
            match k.kind {
                ConstraintKind::ForeignKey => foreign_keys.push(statement),
                ConstraintKind::Other => {}
                _ => constraints.push(statement),
            }
        }
        for i in t.indexes.iter().filter(|i| i.constraint.is_none()) {
            indexes.push(format!("{};", i.definition));
        }
        comments.extend(table_comments(base, t));
    }
    [
        sequences,
        tables,
        owned,
        constraints,
        foreign_keys,
        indexes,
        comments,
    ]
    .concat()
    .join("\n")
}

/// The sequence of a `serial` column's default, as PostgreSQL quoted it:
/// `nextval('users_id_seq'::regclass)` gives `users_id_seq`.
fn serial_sequence(default: &str) -> Option<&str> {
    default
        .strip_prefix("nextval('")?
        .strip_suffix("'::regclass)")
        // A quote inside would make the name a different statement; such a default is kept
        // as it is and the sequence left to the user.
        .filter(|name| !name.contains('\''))
}

fn create_table(base: &str, t: &Table) -> String {
    let columns: Vec<String> = t
        .columns
        .iter()
        .map(|c| {
            let mut column = format!("  {} {}", quote_ident(&c.physical), c.type_name);
            if let Some(expression) = &c.generated {
                column.push_str(&format!(" GENERATED ALWAYS AS ({expression}) STORED"));
            } else if let Some(identity) = &c.identity {
                column.push_str(&format!(" GENERATED {identity} AS IDENTITY"));
            } else if let Some(default) = &c.default {
                column.push_str(&format!(" DEFAULT {default}"));
            }
            if !c.nullable {
                column.push_str(" NOT NULL");
            }
            column
        })
        .collect();
    format!(
        "CREATE TABLE {} (\n{}\n);",
        qualified(base, &t.physical),
        columns.join(",\n")
    )
}

fn table_comments(base: &str, t: &Table) -> Vec<String> {
    let table = qualified(base, &t.physical);
    let mut comments = Vec::new();
    if let Some(comment) = &t.comment {
        comments.push(format!(
            "COMMENT ON TABLE {table} IS {};",
            quote_literal(comment)
        ));
    }
    for c in &t.columns {
        if let Some(comment) = &c.comment {
            comments.push(format!(
                "COMMENT ON COLUMN {table}.{} IS {};",
                quote_ident(&c.physical),
                quote_literal(comment)
            ));
        }
    }
    comments
}

/// A baseline migration: one `sql` operation that recreates `schema` on an empty database.
pub fn baseline_migration(name: &str, schema: &Schema) -> Migration {
    Migration {
        name: name.to_string(),
        version_schema: None,
        operations: vec![Operation::Sql(Sql {
            up: schema_sql(schema),
            down: None,
            on_complete: None,
        })],
    }
}

/// The text of `migration` as a migration file (its name is the file's name, so it is not
/// repeated inside).
pub fn file_text(migration: &Migration, format: Format) -> String {
    let file = MigrationFile {
        schema_url: None,
        name: None,
        version_schema: migration.version_schema.clone(),
        operations: migration.operations.clone(),
    };
    match format {
        Format::Json => serde_json::to_string_pretty(&file).expect("a migration serializes") + "\n",
        // Through a JSON value: serialized directly, YAML would write each operation as a
        // `!tag` rather than the one-key mapping the file format has.
        Format::Yaml => {
            let value = serde_json::to_value(&file).expect("a migration serializes");
            serde_norway::to_string(&value).expect("a JSON value serializes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_migration;
    use crate::schema::{Column, Constraint, Index};

    fn column(name: &str, type_name: &str, nullable: bool) -> Column {
        Column {
            name: name.into(),
            physical: name.into(),
            type_name: type_name.into(),
            nullable,
            ..Column::default()
        }
    }

    fn schema() -> Schema {
        let mut id = column("id", "integer", false);
        id.default = Some("nextval('users_id_seq'::regclass)".into());
        let mut email = column("Email", "text", true);
        email.comment = Some("it's unique".into());
        let users = Table {
            name: "users".into(),
            physical: "users".into(),
            columns: vec![id, email],
            primary_key: vec!["id".into()],
            constraints: vec![Constraint {
                name: "users_pkey".into(),
                kind: ConstraintKind::PrimaryKey,
                columns: vec!["id".into()],
                definition: "PRIMARY KEY (id)".into(),
                validated: true,
            }],
            indexes: vec![
                Index {
                    name: "users_pkey".into(),
                    columns: vec!["id".into()],
                    unique: true,
                    primary: true,
                    definition: "CREATE UNIQUE INDEX users_pkey ON public.users USING btree (id)"
                        .into(),
                    constraint: Some("users_pkey".into()),
                },
                Index {
                    name: "users_email_idx".into(),
                    columns: vec!["Email".into()],
                    unique: false,
                    primary: false,
                    definition:
                        "CREATE INDEX users_email_idx ON public.users USING btree (\"Email\")"
                            .into(),
                    constraint: None,
                },
            ],
            comment: Some("people".into()),
            ..Table::default()
        };
        let mut posts = Table {
            name: "posts".into(),
            physical: "posts".into(),
            columns: vec![
                column("id", "bigint", false),
                column("user_id", "integer", true),
            ],
            ..Table::default()
        };
        posts.columns[0].identity = Some("ALWAYS".into());
        posts.constraints.push(Constraint {
            name: "posts_user_fk".into(),
            kind: ConstraintKind::ForeignKey,
            columns: vec!["user_id".into()],
            definition: "FOREIGN KEY (user_id) REFERENCES users(id)".into(),
            validated: true,
        });
        Schema {
            name: "public".into(),
            // The referencing table first: the foreign key must still come after both.
            tables: vec![posts, users],
            ..Schema::default()
        }
    }

    #[test]
    fn the_baseline_sql_creates_sequences_tables_then_constraints_indexes_and_comments() {
        let sql = schema_sql(&schema());
        let at = |needle: &str| {
            sql.find(needle)
                .unwrap_or_else(|| panic!("{needle:?} missing from:\n{sql}"))
        };
        assert!(
            at("CREATE SEQUENCE IF NOT EXISTS users_id_seq;")
                < at("CREATE TABLE \"public\".\"users\"")
        );
        assert!(
            at("CREATE TABLE \"public\".\"users\"")
                < at("ADD CONSTRAINT \"users_pkey\" PRIMARY KEY (id)")
        );
        assert!(at("\"id\" bigint GENERATED ALWAYS AS IDENTITY NOT NULL") > 0);
        assert!(at("\"id\" integer DEFAULT nextval('users_id_seq'::regclass) NOT NULL") > 0);
        assert!(at("ALTER SEQUENCE users_id_seq OWNED BY \"public\".\"users\".\"id\";") > 0);
        assert!(at("ADD CONSTRAINT \"users_pkey\"") < at("ADD CONSTRAINT \"posts_user_fk\""));
        assert!(at("CREATE TABLE \"public\".\"users\"") < at("ADD CONSTRAINT \"posts_user_fk\""));
        assert!(at("CREATE INDEX users_email_idx ON public.users") > 0);
        assert!(
            !sql.contains("CREATE UNIQUE INDEX users_pkey"),
            "the constraint builds its own index"
        );
        assert!(at("COMMENT ON COLUMN \"public\".\"users\".\"Email\" IS 'it''s unique';") > 0);
        assert!(at("COMMENT ON TABLE \"public\".\"users\" IS 'people';") > 0);
    }

    #[test]
    fn a_migration_written_out_loads_back_the_same() {
        let migration = baseline_migration("00_baseline", &schema());
        for format in [Format::Yaml, Format::Json] {
            let text = file_text(&migration, format);
            let loaded = load_migration("00_baseline", "00_baseline", &text, format)
                .unwrap_or_else(|p| panic!("{format:?} does not load back: {p:?}\n{text}"));
            assert_eq!(loaded, migration, "{format:?}");
        }
    }

    #[test]
    fn only_plain_nextval_defaults_name_a_sequence() {
        assert_eq!(
            serial_sequence("nextval('\"Odd\"\"seq\"'::regclass)"),
            Some("\"Odd\"\"seq\"")
        );
        assert_eq!(serial_sequence("nextval('s'::regclass) + 1"), None);
        assert_eq!(serial_sequence("42"), None);
    }
}
