//! The raw-SQL rules: each statement of a `sql` operation's `up`/`down`, parsed with
//! PostgreSQL's own grammar, checked for statements that lock or rewrite a live table or
//! destroy data.
//!
//! Objects the migration itself created are exempt: a table created earlier in the same `up`
//! (or by an earlier operation) has no rows and no readers yet, and a `down` that drops what
//! its `up` created is the undo, not a hazard.

use std::collections::HashSet;

use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint, DropStmt,
    IndexStmt, ObjectType, RangeVar,
};
use pg_query::NodeEnum;

use crate::hazard::{Finding, Hazard, Severity};
use crate::position::{line_column, statement_around};
use crate::tree;

/// What the migration has created so far; statements on these are not hazards.
#[derive(Debug, Clone, Default)]
pub struct Fresh {
    /// Names of tables, indexes, views, sequences, types, functions, schemas, triggers and
    /// constraints.
    names: HashSet<String>,
    /// `(table, column)` added by `ALTER TABLE … ADD COLUMN`.
    columns: HashSet<(String, String)>,
}

impl Fresh {
    pub fn add(&mut self, name: &str) {
        self.names.insert(name.to_string());
    }
    fn has_table(&self, relation: Option<&RangeVar>) -> bool {
        relation.is_some_and(|r| self.names.contains(&r.relname))
    }
    fn has_column(&self, table: &str, column: &str) -> bool {
        self.columns
            .contains(&(table.to_string(), column.to_string()))
    }
    /// Any part of a (qualified) name: a trigger `[table, trigger]` of a fresh table is fresh.
    fn has_any(&self, parts: &[String]) -> bool {
        parts.iter().any(|p| self.names.contains(p))
    }
}

/// A hazard of one statement, before it is located.
struct Found {
    hazard: Hazard,
    message: String,
    hint: &'static str,
}

fn found(hazard: Hazard, message: impl Into<String>, hint: &'static str) -> Found {
    Found {
        hazard,
        message: message.into(),
        hint,
    }
}

/// Lints one `up` or `down` value; records what it creates in `fresh`.
pub fn lint_sql(sql: &str, pointer: &str, fresh: &mut Fresh) -> Vec<Finding> {
    let parsed = match pg_query::parse(sql, pg_query::ParserOptions::DEFAULT) {
        Ok(parsed) => parsed,
        Err(e) => return vec![parse_error(sql, pointer, &e)],
    };
    let mut findings = Vec::new();
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        let (start, text) = statement_text(sql, raw.stmt_location, raw.stmt_len);
        let (line, column) = line_column(sql, start);
        for f in dedup(statement_hazards(node, fresh)) {
            findings.push(Finding {
                hazard: f.hazard,
                severity: f.hazard.severity(),
                pointer: pointer.to_string(),
                statement: text.to_string(),
                line,
                column,
                message: f.message,
                hint: f.hint.to_string(),
            });
        }
        record_created(node, fresh);
    }
    findings
}

/// A statement's byte offset (after leading blanks) and its text; a length of 0 means "to the
/// end".
fn statement_text(sql: &str, location: i32, len: i32) -> (usize, &str) {
    let start = usize::try_from(location).unwrap_or(0).min(sql.len());
    let end = match usize::try_from(len) {
        Ok(0) | Err(_) => sql.len(),
        Ok(n) => (start + n).min(sql.len()),
    };
    let text = sql.get(start..end).unwrap_or(sql);
    let trimmed = text.trim_start();
    (start + text.len() - trimmed.len(), trimmed.trim_end())
}

/// The parse error as a finding, located at the token PostgreSQL's parser stopped at.
fn parse_error(sql: &str, pointer: &str, error: &pg_query::Error) -> Finding {
    let offset = crate::position::error_offset(sql).unwrap_or(0);
    let (line, column) = line_column(sql, offset);
    let message = match error {
        pg_query::Error::Parse(m) => m.clone(),
        other => other.to_string(),
    };
    Finding {
        hazard: Hazard::ParseError,
        severity: Hazard::ParseError.severity(),
        pointer: pointer.to_string(),
        statement: statement_around(sql, offset).to_string(),
        line,
        column,
        message: format!("PostgreSQL's parser rejects this SQL: {message}"),
        hint: "fix the statement (psql runs it the same way); if PostgreSQL accepts it and the parser does not, --allow-hazard parse_error sends it as it is".into(),
    }
}

/// One statement may repeat a hazard (two `ADD COLUMN`s): report each kind once, and no
/// brief-lock warning where the statement is refused for worse.
fn dedup(found: Vec<Found>) -> Vec<Found> {
    let refused = found
        .iter()
        .any(|f| f.hazard.severity() == Severity::Refuse);
    let mut seen = HashSet::new();
    found
        .into_iter()
        .filter(|f| !(refused && f.hazard == Hazard::AccessExclusiveLock))
        .filter(|f| seen.insert(f.hazard))
        .collect()
}

fn statement_hazards(node: &NodeEnum, fresh: &Fresh) -> Vec<Found> {
    match node {
        NodeEnum::IndexStmt(s) => create_index(s, fresh).into_iter().collect(),
        NodeEnum::AlterTableStmt(s) => alter_table(s, fresh),
        NodeEnum::DropStmt(s) => drop(s, fresh).into_iter().collect(),
        NodeEnum::TruncateStmt(s) => {
            let all_fresh = s.relations.iter().all(|r| match &r.node {
                Some(NodeEnum::RangeVar(table)) => fresh.has_table(Some(table)),
                _ => false,
            });
            if all_fresh {
                return Vec::new();
            }
            vec![found(
                Hazard::Truncate,
                "TRUNCATE deletes every row under ACCESS EXCLUSIVE, while the old app version still reads them",
                "delete in batches in a migration of its own, or retire the table with drop_table (rollback restores it)",
            )]
        }
        NodeEnum::VacuumStmt(s) if tree::has_option(&s.options, "full") => vec![found(
            Hazard::TableRewrite,
            "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE",
            "leave it out of the migration: plain VACUUM (or pg_repack) reclaims space without blocking",
        )],
        NodeEnum::ClusterStmt(_) => vec![found(
            Hazard::TableRewrite,
            "CLUSTER rewrites the table under ACCESS EXCLUSIVE",
            "leave it out of the migration: pg_repack reorders a table without blocking",
        )],
        NodeEnum::ReindexStmt(s) if !tree::has_option(&s.params, "concurrently") => vec![found(
            Hazard::NonConcurrentIndex,
            "REINDEX without CONCURRENTLY blocks writes (and reads using the index) for the whole rebuild",
            "run REINDEX … CONCURRENTLY outside the migration",
        )],
        NodeEnum::LockStmt(s) if s.mode >= pg_query::LockMode::ExclusiveLock as i32 => {
            vec![found(
                Hazard::AccessExclusiveLock,
                "LOCK TABLE holds its lock until the migration's SQL commits",
                "lock nothing explicitly: each statement takes the lock it needs, under tandem's lock timeout",
            )]
        }
        NodeEnum::RenameStmt(s) if !fresh.has_table(s.relation.as_ref()) && s.relation.is_some() => {
            vec![found(
                Hazard::AccessExclusiveLock,
                "renaming takes ACCESS EXCLUSIVE briefly, and the old app version knows only the old name",
                "use rename_table / rename_column / rename_constraint: each version sees its own name",
            )]
        }
        _ => Vec::new(),
    }
}

fn create_index(s: &IndexStmt, fresh: &Fresh) -> Option<Found> {
    if s.concurrent || fresh.has_table(s.relation.as_ref()) {
        return None;
    }
    Some(found(
        Hazard::NonConcurrentIndex,
        "CREATE INDEX without CONCURRENTLY blocks every write to the table until the index is built",
        "use create_index, which builds CONCURRENTLY (and retries a failed build)",
    ))
}

fn alter_table(s: &AlterTableStmt, fresh: &Fresh) -> Vec<Found> {
    let is_table = s.objtype == ObjectType::ObjectTable as i32;
    if !is_table || fresh.has_table(s.relation.as_ref()) {
        return Vec::new();
    }
    let table = s
        .relation
        .as_ref()
        .map(|r| r.relname.as_str())
        .unwrap_or("");
    s.cmds
        .iter()
        .filter_map(|c| match &c.node {
            Some(NodeEnum::AlterTableCmd(cmd)) => alter_table_cmd(cmd, table, fresh),
            _ => None,
        })
        .collect()
}

/// The hazard of one `ALTER TABLE` subcommand on a table that has rows and readers.
fn alter_table_cmd(cmd: &AlterTableCmd, table: &str, fresh: &Fresh) -> Option<Found> {
    use AlterTableType as T;
    let def = cmd.def.as_ref().and_then(|d| d.node.as_ref());
    match AlterTableType::try_from(cmd.subtype).unwrap_or(T::Undefined) {
        T::AtAddColumn => match def {
            Some(NodeEnum::ColumnDef(column)) => Some(add_column(column)),
            _ => Some(brief_lock()),
        },
        T::AtAlterColumnType => Some(found(
            Hazard::TableRewrite,
            "ALTER COLUMN TYPE rewrites the table and its indexes under ACCESS EXCLUSIVE",
            "use alter_column with type: tandem fills a new column in batches and swaps it in at complete",
        )),
        T::AtSetNotNull => Some(set_not_null()),
        T::AtAddConstraint => match def {
            Some(NodeEnum::Constraint(c)) => add_constraint(c),
            _ => Some(brief_lock()),
        },
        T::AtDropColumn if fresh.has_column(table, &cmd.name) => None,
        T::AtDropConstraint if fresh.names.contains(&cmd.name) => None,
        T::AtDropColumn => Some(found(
            Hazard::Drop,
            "DROP COLUMN destroys the column's data while the old app version may still read it",
            "use drop_column: the column leaves the new version at start and is dropped at complete",
        )),
        T::AtSetLogged | T::AtSetUnLogged => Some(found(
            Hazard::TableRewrite,
            "SET LOGGED / SET UNLOGGED rewrites the table under ACCESS EXCLUSIVE",
            "create the table with the persistence it needs (a new table, filled in batches)",
        )),
        T::AtSetAccessMethod | T::AtSetTableSpace => Some(found(
            Hazard::TableRewrite,
            "changing the access method or tablespace rewrites the table under ACCESS EXCLUSIVE",
            "leave it out of the migration: move the table with pg_repack during a quiet hour",
        )),
        T::AtSetExpression => Some(found(
            Hazard::TableRewrite,
            "SET EXPRESSION recomputes the generated column for every row under ACCESS EXCLUSIVE",
            "add a new column (add_column with up) and retire the old one with drop_column",
        )),
        // These take weaker locks or touch nothing the application waits on.
        T::AtValidateConstraint
        | T::AtSetStatistics
        | T::AtSetOptions
        | T::AtResetOptions
        | T::AtClusterOn
        | T::AtDropCluster => None,
        _ => Some(brief_lock()),
    }
}

/// A change that is catalog-only: ACCESS EXCLUSIVE, but only for an instant.
fn brief_lock() -> Found {
    found(
        Hazard::AccessExclusiveLock,
        "ALTER TABLE takes ACCESS EXCLUSIVE; this change is catalog-only, so only briefly",
        "nothing to change: tandem runs it under its lock timeout and retries; keep the statement short",
    )
}

fn set_not_null() -> Found {
    found(
        Hazard::SetNotNull,
        "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE",
        "use alter_column with nullable: false (a NOT VALID check, validated without blocking writes)",
    )
}

use tandem_core::expr::VOLATILE_FUNCTIONS;

/// Types that bring a `nextval` default with them.
const SERIAL_TYPES: &[&str] = &[
    "serial",
    "serial2",
    "serial4",
    "serial8",
    "smallserial",
    "bigserial",
];

fn add_column(column: &ColumnDef) -> Found {
    let type_name = column
        .type_name
        .as_ref()
        .and_then(|t| tree::strings(&tree::json(&t.names)).pop())
        .unwrap_or_default();
    if SERIAL_TYPES.contains(&type_name.as_str()) {
        return volatile_default(&format!("{type_name} (nextval)"));
    }
    let constraints: Vec<&Constraint> = column
        .constraints
        .iter()
        .filter_map(|c| match &c.node {
            Some(NodeEnum::Constraint(c)) => Some(c.as_ref()),
            _ => None,
        })
        .collect();
    let has_default = column.raw_default.is_some()
        || constraints
            .iter()
            .any(|c| c.contype == ConstrType::ConstrDefault as i32);
    constraints
        .iter()
        .find_map(|c| column_constraint(c, has_default))
        .unwrap_or_else(|| {
            found(
                Hazard::AccessExclusiveLock,
                "ADD COLUMN takes ACCESS EXCLUSIVE briefly (catalog-only: no default, or a constant one)",
                "fine as it is; add_column also gives the old and new versions each their own shape",
            )
        })
}

/// The hazard of a constraint declared with a new column (`ADD COLUMN x int DEFAULT random()`).
fn column_constraint(c: &Constraint, has_default: bool) -> Option<Found> {
    use ConstrType as C;
    match ConstrType::try_from(c.contype).unwrap_or(C::Undefined) {
        C::ConstrDefault => {
            let expr = tree::json(&c.raw_expr);
            tree::called_functions(&expr)
                .into_iter()
                .find(|f| VOLATILE_FUNCTIONS.contains(&f.as_str()))
                .map(|f| volatile_default(&format!("{f}()")))
        }
        C::ConstrIdentity => Some(volatile_default("an identity sequence")),
        C::ConstrGenerated if c.generated_kind != "v" => Some(found(
            Hazard::TableRewrite,
            "a stored generated column is computed for every row: the table is rewritten under ACCESS EXCLUSIVE",
            "add a plain column filled by add_column's up (in batches), or create the table with it",
        )),
        C::ConstrNotnull if !has_default => Some(found(
            Hazard::SetNotNull,
            "a NOT NULL column without a default fails on existing rows, after a scan under ACCESS EXCLUSIVE",
            "use add_column with up: tandem fills existing rows in batches and adds NOT NULL without a blocking scan",
        )),
        C::ConstrCheck | C::ConstrForeign => Some(found(
            Hazard::ConstraintWithoutNotValid,
            "a CHECK or REFERENCES on a new column is checked against every row under ACCESS EXCLUSIVE",
            "add the column first, then the constraint NOT VALID, then VALIDATE CONSTRAINT in a later migration",
        )),
        C::ConstrPrimary | C::ConstrUnique => Some(found(
            Hazard::ConstraintIndexBuild,
            "a UNIQUE or PRIMARY KEY column builds its index under ACCESS EXCLUSIVE",
            "add the column, build a unique index with create_index, then ADD CONSTRAINT … USING INDEX",
        )),
        _ => None,
    }
}

fn volatile_default(what: &str) -> Found {
    found(
        Hazard::VolatileDefault,
        format!("a default from {what} differs per row: PostgreSQL rewrites every row under ACCESS EXCLUSIVE"),
        "add the column without that default (add_column with up fills existing rows in batches), then SET DEFAULT",
    )
}

fn add_constraint(c: &Constraint) -> Option<Found> {
    use ConstrType as C;
    match ConstrType::try_from(c.contype).unwrap_or(C::Undefined) {
        C::ConstrCheck | C::ConstrForeign if !c.skip_validation => Some(found(
            Hazard::ConstraintWithoutNotValid,
            "ADD CONSTRAINT without NOT VALID checks every row while writes wait",
            "add the constraint NOT VALID, then VALIDATE CONSTRAINT in a later migration (or use create_constraint)",
        )),
        C::ConstrPrimary | C::ConstrUnique if c.indexname.is_empty() => Some(found(
            Hazard::ConstraintIndexBuild,
            "ADD UNIQUE / PRIMARY KEY builds its index while writes wait",
            "build the index with create_index (unique: true, CONCURRENTLY), then ADD CONSTRAINT … USING INDEX (or use create_constraint)",
        )),
        C::ConstrExclusion => Some(found(
            Hazard::ConstraintIndexBuild,
            "an exclusion constraint builds its index under ACCESS EXCLUSIVE (it cannot be built concurrently)",
            "declare it in create_table, on a new table, and move the rows in batches",
        )),
        C::ConstrNotnull if !c.skip_validation => Some(set_not_null()),
        _ => Some(brief_lock()),
    }
}

fn drop(s: &DropStmt, fresh: &Fresh) -> Option<Found> {
    let kind = ObjectType::try_from(s.remove_type).unwrap_or(ObjectType::Undefined);
    let undo = s
        .objects
        .iter()
        .all(|o| fresh.has_any(&tree::strings(&tree::json(o))));
    if undo || (kind == ObjectType::ObjectIndex && s.concurrent) {
        return None;
    }
    Some(match kind {
        ObjectType::ObjectTable => found(
            Hazard::Drop,
            "DROP TABLE destroys its rows while the old app version may still use them",
            "use drop_table: the table is set aside at start, dropped at complete, and restored by rollback",
        ),
        ObjectType::ObjectIndex => found(
            Hazard::Drop,
            "DROP INDEX without CONCURRENTLY waits for, and then blocks, every query on the table",
            "use drop_index, which drops it CONCURRENTLY at complete",
        ),
        _ => found(
            Hazard::Drop,
            "DROP removes an object the old app version may still use",
            "drop it once no running version uses it: in a later migration, or with onComplete: true",
        ),
    })
}

/// Records the objects a statement creates, so later statements on them are not hazards.
fn record_created(node: &NodeEnum, fresh: &mut Fresh) {
    let mut add = |name: Option<&str>| {
        if let Some(n) = name.filter(|n| !n.is_empty()) {
            fresh.add(n);
        }
    };
    let last = |nodes: &Vec<pg_query::Node>| tree::strings(&tree::json(nodes)).pop();
    match node {
        NodeEnum::CreateStmt(s) => add(s.relation.as_ref().map(|r| r.relname.as_str())),
        NodeEnum::CreateTableAsStmt(s) => add(s
            .into
            .as_ref()
            .and_then(|i| i.rel.as_ref())
            .map(|r| r.relname.as_str())),
        NodeEnum::ViewStmt(s) => add(s.view.as_ref().map(|r| r.relname.as_str())),
        NodeEnum::IndexStmt(s) => add(Some(&s.idxname)),
        NodeEnum::CreateSeqStmt(s) => add(s.sequence.as_ref().map(|r| r.relname.as_str())),
        NodeEnum::CompositeTypeStmt(s) => add(s.typevar.as_ref().map(|r| r.relname.as_str())),
        NodeEnum::CreateEnumStmt(s) => add(last(&s.type_name).as_deref()),
        NodeEnum::CreateDomainStmt(s) => add(last(&s.domainname).as_deref()),
        NodeEnum::CreateFunctionStmt(s) => add(last(&s.funcname).as_deref()),
        NodeEnum::CreateSchemaStmt(s) => add(Some(&s.schemaname)),
        NodeEnum::CreateTrigStmt(s) => add(Some(&s.trigname)),
        NodeEnum::AlterTableStmt(s) => record_added_columns(s, fresh),
        _ => {}
    }
}

/// Columns and constraints an `ALTER TABLE` adds: a `down` that drops them is the undo.
fn record_added_columns(s: &AlterTableStmt, fresh: &mut Fresh) {
    let table = s
        .relation
        .as_ref()
        .map(|r| r.relname.clone())
        .unwrap_or_default();
    for cmd in &s.cmds {
        let Some(NodeEnum::AlterTableCmd(cmd)) = &cmd.node else {
            continue;
        };
        match cmd.def.as_ref().and_then(|d| d.node.as_ref()) {
            Some(NodeEnum::ColumnDef(c)) => {
                fresh.columns.insert((table.clone(), c.colname.clone()));
            }
            Some(NodeEnum::Constraint(c)) if !c.conname.is_empty() => fresh.add(&c.conname),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The hazards of `sql` as one `up`, on tables that exist and have rows.
    fn hazards(sql: &str) -> Vec<Hazard> {
        lint_sql(sql, "/operations/0/sql/up", &mut Fresh::default())
            .into_iter()
            .map(|f| f.hazard)
            .collect()
    }

    /// Asserts `unsafe_sql` is found as `hazard` (and nothing else), and `safe_sql` is not
    /// found at all (or only as a brief-lock warning).
    fn detected_and_rewrite_safe(hazard: Hazard, unsafe_sql: &str, safe_sql: &str) {
        assert_eq!(hazards(unsafe_sql), [hazard], "{unsafe_sql}");
        let safe = hazards(safe_sql);
        assert!(
            safe.iter().all(|h| *h == Hazard::AccessExclusiveLock),
            "{safe_sql}: {safe:?}"
        );
    }

    #[test]
    fn non_concurrent_index() {
        detected_and_rewrite_safe(
            Hazard::NonConcurrentIndex,
            "CREATE INDEX users_email ON users (email)",
            "CREATE INDEX CONCURRENTLY users_email ON users (email)",
        );
        detected_and_rewrite_safe(
            Hazard::NonConcurrentIndex,
            "REINDEX INDEX users_email",
            "REINDEX (CONCURRENTLY) INDEX users_email",
        );
    }

    #[test]
    fn constraint_index_build() {
        detected_and_rewrite_safe(
            Hazard::ConstraintIndexBuild,
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE (email)",
            "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email",
        );
        detected_and_rewrite_safe(
            Hazard::ConstraintIndexBuild,
            "ALTER TABLE users ADD PRIMARY KEY (id)",
            "ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id",
        );
    }

    #[test]
    fn table_rewrite() {
        detected_and_rewrite_safe(
            Hazard::TableRewrite,
            "ALTER TABLE users ALTER COLUMN age TYPE bigint",
            "ALTER TABLE users ADD COLUMN age_new bigint",
        );
        for sql in [
            "ALTER TABLE users SET UNLOGGED",
            "ALTER TABLE users SET LOGGED",
            "ALTER TABLE users SET TABLESPACE other",
            "VACUUM FULL users",
            "CLUSTER users USING users_pkey",
            "ALTER TABLE users ADD COLUMN n int GENERATED ALWAYS AS (id * 2) STORED",
        ] {
            assert_eq!(hazards(sql), [Hazard::TableRewrite], "{sql}");
        }
        assert!(hazards("VACUUM users").is_empty());
    }

    #[test]
    fn volatile_default() {
        detected_and_rewrite_safe(
            Hazard::VolatileDefault,
            "ALTER TABLE users ADD COLUMN token uuid DEFAULT gen_random_uuid()",
            "ALTER TABLE users ADD COLUMN token uuid",
        );
        for sql in [
            "ALTER TABLE users ADD COLUMN r float8 DEFAULT random()",
            "ALTER TABLE users ADD COLUMN at timestamptz DEFAULT clock_timestamp()",
            "ALTER TABLE users ADD COLUMN n bigint DEFAULT nextval('s')",
            "ALTER TABLE users ADD COLUMN n bigserial",
            "ALTER TABLE users ADD COLUMN n int GENERATED ALWAYS AS IDENTITY",
        ] {
            assert_eq!(hazards(sql), [Hazard::VolatileDefault], "{sql}");
        }
        // Stable and constant defaults are stored once in the catalog (no rewrite).
        for sql in [
            "ALTER TABLE users ADD COLUMN at timestamptz DEFAULT now()",
            "ALTER TABLE users ADD COLUMN lang text NOT NULL DEFAULT 'en'",
        ] {
            assert_eq!(hazards(sql), [Hazard::AccessExclusiveLock], "{sql}");
        }
    }

    #[test]
    fn constraint_without_not_valid() {
        detected_and_rewrite_safe(
            Hazard::ConstraintWithoutNotValid,
            "ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0)",
            "ALTER TABLE users ADD CONSTRAINT age_positive CHECK (age > 0) NOT VALID",
        );
        detected_and_rewrite_safe(
            Hazard::ConstraintWithoutNotValid,
            "ALTER TABLE posts ADD CONSTRAINT posts_user FOREIGN KEY (user_id) REFERENCES users (id)",
            "ALTER TABLE posts ADD CONSTRAINT posts_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID",
        );
        assert!(hazards("ALTER TABLE users VALIDATE CONSTRAINT age_positive").is_empty());
        assert_eq!(
            hazards("ALTER TABLE posts ADD COLUMN user_id int REFERENCES users (id)"),
            [Hazard::ConstraintWithoutNotValid]
        );
    }

    #[test]
    fn set_not_null() {
        detected_and_rewrite_safe(
            Hazard::SetNotNull,
            "ALTER TABLE users ALTER COLUMN email SET NOT NULL",
            "ALTER TABLE users ALTER COLUMN email DROP NOT NULL",
        );
        assert_eq!(
            hazards("ALTER TABLE users ADD COLUMN email text NOT NULL"),
            [Hazard::SetNotNull]
        );
    }

    #[test]
    fn drop() {
        detected_and_rewrite_safe(
            Hazard::Drop,
            "DROP TABLE users",
            "CREATE TABLE users_v2 (id int)",
        );
        detected_and_rewrite_safe(
            Hazard::Drop,
            "ALTER TABLE users DROP COLUMN email",
            "ALTER TABLE users ALTER COLUMN email DROP DEFAULT",
        );
        detected_and_rewrite_safe(
            Hazard::Drop,
            "DROP INDEX users_email",
            "DROP INDEX CONCURRENTLY users_email",
        );
        assert_eq!(hazards("DROP TYPE fruit_size"), [Hazard::Drop]);
    }

    #[test]
    fn truncate() {
        detected_and_rewrite_safe(
            Hazard::Truncate,
            "TRUNCATE users",
            "DELETE FROM users WHERE id < 1000",
        );
    }

    #[test]
    fn access_exclusive_lock_is_a_warning() {
        let found = lint_sql(
            "ALTER TABLE people ADD COLUMN birth_date timestamp",
            "/operations/0/sql/up",
            &mut Fresh::default(),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].hazard, Hazard::AccessExclusiveLock);
        assert!(!found[0].is_refusal());
        assert!(hazards("ALTER TABLE users RENAME COLUMN a TO b") == [Hazard::AccessExclusiveLock]);
    }

    #[test]
    fn a_parse_error_is_refused_with_its_position() {
        let found = lint_sql(
            "CREATE TABLE a (id int);\nCREAT TABLE b (id int)",
            "/operations/0/sql/up",
            &mut Fresh::default(),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].hazard, Hazard::ParseError);
        assert!(found[0].is_refusal());
        assert_eq!((found[0].line, found[0].column), (2, 1));
        assert_eq!(found[0].statement, "CREAT TABLE b (id int)");
        assert!(
            found[0].message.contains("syntax error"),
            "{}",
            found[0].message
        );
    }

    #[test]
    fn statements_on_a_table_created_earlier_are_safe() {
        let sql = "CREATE TABLE audit (id int, note text);
            CREATE INDEX audit_note ON audit (note);
            ALTER TABLE audit ADD CONSTRAINT note_short CHECK (length(note) < 100);
            ALTER TABLE audit ALTER COLUMN note SET NOT NULL;
            ALTER TABLE audit ALTER COLUMN id TYPE bigint;
            TRUNCATE audit";
        assert!(hazards(sql).is_empty(), "{:?}", hazards(sql));
    }

    #[test]
    fn a_down_that_drops_what_up_created_is_the_undo() {
        let mut fresh = Fresh::default();
        let up = "CREATE TABLE users (id int); CREATE TYPE size AS ENUM ('s');
                  ALTER TABLE people ADD COLUMN birth_date timestamp;
                  CREATE INDEX CONCURRENTLY people_birth ON people (birth_date)";
        lint_sql(up, "/operations/0/sql/up", &mut fresh);
        let down = "DROP INDEX people_birth; ALTER TABLE people DROP COLUMN birth_date;
                    DROP TYPE size; DROP TABLE users";
        let found = lint_sql(down, "/operations/0/sql/down", &mut fresh);
        assert!(found.is_empty(), "{found:?}");
        // A column the `up` did not add is still data lost.
        let other = lint_sql(
            "ALTER TABLE people DROP COLUMN name",
            "/operations/0/sql/down",
            &mut fresh,
        );
        assert_eq!(other[0].hazard, Hazard::Drop);
    }

    #[test]
    fn findings_carry_pointer_statement_and_position() {
        let sql = "CREATE TABLE a (id int);\n  CREATE INDEX b ON users (id);";
        let found = lint_sql(sql, "/operations/3/sql/up", &mut Fresh::default());
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(f.pointer, "/operations/3/sql/up");
        assert_eq!(f.statement, "CREATE INDEX b ON users (id)");
        assert_eq!((f.line, f.column), (2, 3));
        assert!(f.hint.contains("create_index"));
    }
}
