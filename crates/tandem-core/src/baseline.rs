//! Baselines and pulled files: an existing schema as the SQL that recreates it (the `sql`
//! operation of a baseline migration file), and a migration written back out as file text.
//!
//! The baseline's SQL is what a fresh database needs to reach the schema tandem starts from:
//! replayed by `tandem diff --migrations` or on a new developer's machine, it builds every
//! object of the schema the live database has. It is not hand-written: tandem-pg runs
//! `pg_dump --schema-only` for the base schema, and [`baseline_sql`] only trims the dump so
//! that it replays inside one `sql` operation.

use crate::ident::quote_ident;
use crate::load::Format;
use crate::migration::{Migration, MigrationFile, Operation, Sql};
pub use crate::objects::Extension;

/// The baseline's SQL from `pg_dump --schema-only --schema=<schema>` output: the extensions
/// first, then the dump's statements as they are, minus what would not replay inside one
/// `sql` operation or would change the session for tandem's next steps:
/// - comment lines and psql meta-commands (`\restrict`) between statements;
/// - `SET …` and `SELECT pg_catalog.set_config(…)` (tandem sets its own lock timeout and
///   search path), except `check_function_bodies = false`, kept as `SET LOCAL` (the operation
///   runs in its own transaction) so that a SQL function may name a table created later;
/// - `CREATE SCHEMA s` becomes `CREATE SCHEMA IF NOT EXISTS s` (tandem works in an existing
///   base schema, `public` always exists);
/// - tabs that indent a line of DDL become spaces (so that the YAML file shows the SQL as a
///   block);
/// - a materialized view is created `WITH DATA` rather than `WITH NO DATA`: on an empty
///   database that costs nothing and leaves it usable (a schema-only dump never refreshes it).
///
/// Text inside string literals, quoted identifiers and dollar-quoted function bodies is never
/// touched, so a function's body (comments included) stays byte for byte what it was.
pub fn baseline_sql(dump: &str, extensions: &[Extension], base_schema: &str) -> String {
    let mut out = Vec::new();
    for e in extensions {
        if e.schema != base_schema {
            out.push(format!(
                "CREATE SCHEMA IF NOT EXISTS {};",
                quote_ident(&e.schema)
            ));
        }
        out.push(format!(
            "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {} CASCADE;",
            quote_ident(&e.name),
            quote_ident(&e.schema)
        ));
    }
    for statement in top_level_statements(dump) {
        let text = statement.trim();
        let head = text.to_ascii_uppercase();
        if head.starts_with("SET CHECK_FUNCTION_BODIES") {
            out.push("SET LOCAL check_function_bodies = false;".to_string());
        } else if head.starts_with("SET ") || head.starts_with("SELECT PG_CATALOG.SET_CONFIG(") {
            continue;
        } else if let Some(rest) = text.strip_prefix("CREATE SCHEMA ") {
            out.push(format!("CREATE SCHEMA IF NOT EXISTS {rest}"));
        } else if head.starts_with("CREATE MATERIALIZED VIEW ") && head.ends_with(" WITH NO DATA;")
        {
            let body = &text[..text.len() - " WITH NO DATA;".len()];
            out.push(format!("{body} WITH DATA;"));
        } else {
            out.push(text.to_string());
        }
    }
    let mut sql = out.join("\n\n");
    sql.push('\n');
    sql
}

/// The statements of a dump, each with its terminating `;`, without the comment lines and
/// meta-command lines between them. A line is outside any statement when the scan so far is
/// outside quotes and no statement has begun; a statement ends at a `;` outside quotes.
fn top_level_statements(dump: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut quote = Quote::None;
    for line in dump.split_inclusive('\n') {
        if quote == Quote::None && current.trim().is_empty() {
            let t = line.trim_start();
            if t.starts_with("--") || t.starts_with('\\') || t.trim().is_empty() {
                continue;
            }
        }
        let mut chars: Vec<char> = line.chars().collect();
        if quote == Quote::None {
            // pg_dump indents some DDL lines (a composite type's fields, a domain's
            // constraints) with tabs; spaces let the YAML file show the SQL as a block.
            let tabs = chars.iter().take_while(|c| **c == '\t').count();
            chars.splice(..tabs, std::iter::repeat_n(' ', 4 * tabs));
        }
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            match &quote {
                Quote::None => match c {
                    '-' if chars.get(i + 1) == Some(&'-') => {
                        // A comment to the end of the line, inside a statement.
                        current.extend(&chars[i..]);
                        i = chars.len();
                        continue;
                    }
                    '\'' => {
                        let escapes = i > 0
                            && matches!(chars[i - 1], 'E' | 'e')
                            && !chars
                                .get(i.wrapping_sub(2))
                                .is_some_and(|p| p.is_alphanumeric() || *p == '_');
                        quote = Quote::Single { escapes };
                    }
                    '"' => quote = Quote::Double,
                    '$' => {
                        if let Some(tag) = dollar_tag(&chars[i..]) {
                            current.push_str(&tag);
                            i += tag.chars().count();
                            quote = Quote::Dollar(tag);
                            continue;
                        }
                    }
                    ';' => {
                        current.push(';');
                        statements.push(std::mem::take(&mut current));
                        i += 1;
                        continue;
                    }
                    _ => {}
                },
                Quote::Single { escapes } => {
                    if *escapes && c == '\\' {
                        current.push(c);
                        if let Some(n) = chars.get(i + 1) {
                            current.push(*n);
                        }
                        i += 2;
                        continue;
                    }
                    if c == '\'' {
                        // A doubled quote stays inside the literal.
                        if chars.get(i + 1) == Some(&'\'') {
                            current.push_str("''");
                            i += 2;
                            continue;
                        }
                        quote = Quote::None;
                    }
                }
                Quote::Double => {
                    if c == '"' {
                        quote = Quote::None;
                    }
                }
                Quote::Dollar(tag) => {
                    if c == '$'
                        && chars[i..]
                            .iter()
                            .collect::<String>()
                            .starts_with(tag.as_str())
                    {
                        current.push_str(tag);
                        i += tag.chars().count();
                        quote = Quote::None;
                        continue;
                    }
                }
            }
            current.push(c);
            i += 1;
        }
    }
    if !current.trim().is_empty() {
        statements.push(current);
    }
    statements
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Quote {
    None,
    Single {
        escapes: bool,
    },
    Double,
    /// The whole tag, `$$` or `$_$`.
    Dollar(String),
}

/// `$tag$` at the start of `chars` (the tag an identifier-like word, or empty).
fn dollar_tag(chars: &[char]) -> Option<String> {
    let end = chars[1..].iter().position(|c| *c == '$')? + 1;
    let tag = &chars[1..end];
    let valid = tag.iter().all(|c| c.is_alphanumeric() || *c == '_')
        && !tag.first().is_some_and(|c| c.is_ascii_digit());
    valid.then(|| chars[..=end].iter().collect())
}

/// A baseline migration: one `sql` operation whose SQL (from [`baseline_sql`]) recreates the
/// schema on an empty database.
pub fn baseline_migration(name: &str, sql: String) -> Migration {
    Migration {
        name: name.to_string(),
        version_schema: None,
        operations: vec![Operation::Sql(Sql {
            up: sql,
            down: None,
            on_complete: None,
        })],
        recorded_version_schema: None,
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
    migration_file_text(&file, format)
}

/// The text of a migration file as it is.
pub fn migration_file_text(file: &MigrationFile, format: Format) -> String {
    match format {
        Format::Json => serde_json::to_string_pretty(file).expect("a migration serializes") + "\n",
        // Through a JSON value: serialized directly, YAML would write each operation as a
        // `!tag` rather than the one-key mapping the file format has.
        Format::Yaml => {
            let value = serde_json::to_value(file).expect("a migration serializes");
            serde_norway::to_string(&value).expect("a JSON value serializes")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load_migration;

    const DUMP: &str = r#"--
-- PostgreSQL database dump
--

\restrict abc

SET statement_timeout = 0;
SET lock_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;

--
-- Name: public; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA public;

--
-- Name: touch(); Type: FUNCTION; Schema: public; Owner: -
--

CREATE FUNCTION public.touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $_$
BEGIN
--
-- Name: not a header, the body's own comment; SET x = 1;
--
  NEW.note := 'it''s; -- fine' || E'\';' || $1;
  RETURN NEW;
END
$_$;

SET default_table_access_method = heap;

CREATE TABLE public."odd;name" (
    a text DEFAULT ';' -- trailing; comment
);

CREATE MATERIALIZED VIEW public.mv AS
 SELECT 1 AS one
  WITH NO DATA;

--
-- PostgreSQL database dump complete
--

\unrestrict abc
"#;

    #[test]
    fn the_dump_loses_its_settings_and_headers_but_not_its_bodies() {
        let extensions = [
            Extension {
                name: "pg_trgm".into(),
                schema: "public".into(),
            },
            Extension {
                name: "citext".into(),
                schema: "ext".into(),
            },
        ];
        let sql = baseline_sql(DUMP, &extensions, "public");
        let expected = r#"CREATE EXTENSION IF NOT EXISTS "pg_trgm" WITH SCHEMA "public" CASCADE;

CREATE SCHEMA IF NOT EXISTS "ext";

CREATE EXTENSION IF NOT EXISTS "citext" WITH SCHEMA "ext" CASCADE;

SET LOCAL check_function_bodies = false;

CREATE SCHEMA IF NOT EXISTS public;

CREATE FUNCTION public.touch() RETURNS trigger
    LANGUAGE plpgsql
    AS $_$
BEGIN
--
-- Name: not a header, the body's own comment; SET x = 1;
--
  NEW.note := 'it''s; -- fine' || E'\';' || $1;
  RETURN NEW;
END
$_$;

CREATE TABLE public."odd;name" (
    a text DEFAULT ';' -- trailing; comment
);

CREATE MATERIALIZED VIEW public.mv AS
 SELECT 1 AS one
  WITH DATA;
"#;
        assert_eq!(sql, expected);
    }

    #[test]
    fn dollar_tags() {
        let tag = |s: &str| dollar_tag(&s.chars().collect::<Vec<_>>());
        assert_eq!(tag("$$ x"), Some("$$".into()));
        assert_eq!(tag("$_$x"), Some("$_$".into()));
        assert_eq!(tag("$body$"), Some("$body$".into()));
        assert_eq!(tag("$1 + $2"), None);
        assert_eq!(tag("$1"), None);
    }

    #[test]
    fn a_migration_written_out_loads_back_the_same() {
        let migration =
            baseline_migration("00_baseline", "CREATE TABLE public.t (a integer);\n".into());
        for format in [Format::Yaml, Format::Json] {
            let text = file_text(&migration, format);
            let loaded = load_migration("00_baseline", "00_baseline", &text, format)
                .unwrap_or_else(|p| panic!("{format:?} does not load back: {p:?}\n{text}"));
            assert_eq!(loaded, migration, "{format:?}");
        }
    }
}
