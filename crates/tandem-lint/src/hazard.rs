//! What the lint finds: the hazards, how severe each is, and the finding that locates one.

use serde::Serialize;
use std::fmt;

/// A situation in raw SQL (or an expression) that can hurt a live database or the app
/// versions running against it. Named after the situation; `--allow-hazard` takes
/// [`Hazard::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hazard {
    /// `CREATE INDEX` (or `REINDEX`) without `CONCURRENTLY`: writes wait for the whole build.
    NonConcurrentIndex,
    /// `ADD UNIQUE` / `ADD PRIMARY KEY` that builds its index under ACCESS EXCLUSIVE instead of
    /// attaching one built concurrently (`USING INDEX`).
    ConstraintIndexBuild,
    /// The table is rewritten under ACCESS EXCLUSIVE (`ALTER COLUMN TYPE`, `SET LOGGED`,
    /// `VACUUM FULL`, …): reads and writes wait for all of it.
    TableRewrite,
    /// `ADD COLUMN` with a volatile default (`random()`, `nextval`, `serial`, identity): every
    /// row is rewritten under ACCESS EXCLUSIVE.
    VolatileDefault,
    /// A CHECK or FOREIGN KEY constraint added without `NOT VALID`: the table is scanned while
    /// writes wait.
    ConstraintWithoutNotValid,
    /// `SET NOT NULL` (or a NOT NULL column without default): a full scan under ACCESS
    /// EXCLUSIVE.
    SetNotNull,
    /// A table, column, index or other object dropped while the old app version may use it.
    Drop,
    /// `TRUNCATE`: every row gone, under ACCESS EXCLUSIVE.
    Truncate,
    /// A brief ACCESS EXCLUSIVE lock for a catalog-only change (`ADD COLUMN` without default,
    /// `DROP DEFAULT`, …); tandem runs it under its lock timeout.
    AccessExclusiveLock,
    /// PostgreSQL's parser rejects the raw SQL: the start would fail there.
    ParseError,
    /// PostgreSQL's parser rejects an `up`/`down`/`check` expression.
    InvalidExpression,
    /// An expression names a column the table does not have (in either version).
    UnknownColumn,
}

/// What tandem does about a hazard before it touches the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Reported; the migration runs.
    Warn,
    /// The migration is refused unless `--allow-hazard NAME` allows it: the statement holds a
    /// lock while it scans or rewrites, or it destroys data.
    Refuse,
}

impl Hazard {
    pub const ALL: [Hazard; 12] = [
        Hazard::NonConcurrentIndex,
        Hazard::ConstraintIndexBuild,
        Hazard::TableRewrite,
        Hazard::VolatileDefault,
        Hazard::ConstraintWithoutNotValid,
        Hazard::SetNotNull,
        Hazard::Drop,
        Hazard::Truncate,
        Hazard::AccessExclusiveLock,
        Hazard::ParseError,
        Hazard::InvalidExpression,
        Hazard::UnknownColumn,
    ];

    /// The snake_case name `--allow-hazard` and `--json` use.
    pub fn name(self) -> &'static str {
        match self {
            Hazard::NonConcurrentIndex => "non_concurrent_index",
            Hazard::ConstraintIndexBuild => "constraint_index_build",
            Hazard::TableRewrite => "table_rewrite",
            Hazard::VolatileDefault => "volatile_default",
            Hazard::ConstraintWithoutNotValid => "constraint_without_not_valid",
            Hazard::SetNotNull => "set_not_null",
            Hazard::Drop => "drop",
            Hazard::Truncate => "truncate",
            Hazard::AccessExclusiveLock => "access_exclusive_lock",
            Hazard::ParseError => "parse_error",
            Hazard::InvalidExpression => "invalid_expression",
            Hazard::UnknownColumn => "unknown_column",
        }
    }

    /// The hazard named `name` (snake_case), if there is one.
    pub fn from_name(name: &str) -> Option<Hazard> {
        Hazard::ALL.into_iter().find(|h| h.name() == name)
    }

    pub fn severity(self) -> Severity {
        match self {
            // Catalog-only and brief, or about expressions, which DESIGN §2 never lets the
            // lint reject.
            Hazard::AccessExclusiveLock | Hazard::InvalidExpression | Hazard::UnknownColumn => {
                Severity::Warn
            }
            // A parse error is refused because the start would fail on it anyway; allowing it
            // covers syntax newer or older than the parser's PostgreSQL version.
            _ => Severity::Refuse,
        }
    }
}

impl fmt::Display for Hazard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One hazard found in one statement or expression.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub hazard: Hazard,
    pub severity: Severity,
    /// JSON Pointer of the offending value (`/operations/3/sql/up`).
    pub pointer: String,
    /// The statement (or expression) as written.
    pub statement: String,
    /// 1-based line and column of the statement (or the parse error) inside the value.
    pub line: usize,
    pub column: usize,
    /// Why it is a hazard, in one line.
    pub message: String,
    /// The safe rewrite, in one line.
    pub hint: String,
}

impl Finding {
    pub fn is_refusal(&self) -> bool {
        self.severity == Severity::Refuse
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Warn => "warning",
            Severity::Refuse => "refused",
        };
        write!(
            f,
            "{} ({level}: {}): {}\n  statement (line {}, column {} of the value): {}\n  hint: {}",
            self.pointer,
            self.hazard,
            self.message,
            self.line,
            self.column,
            one_line(&self.statement),
            self.hint
        )
    }
}

/// The statement on one line, shortened: enough to recognise it in the file.
fn one_line(statement: &str) -> String {
    const MAX: usize = 120;
    let flat = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX {
        return flat;
    }
    let cut: String = flat.chars().take(MAX).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for hazard in Hazard::ALL {
            assert_eq!(Hazard::from_name(hazard.name()), Some(hazard));
            let json = serde_json::to_value(hazard).unwrap();
            assert_eq!(json, serde_json::json!(hazard.name()));
        }
        assert_eq!(Hazard::from_name("nonsense"), None);
    }

    #[test]
    fn only_brief_locks_and_expressions_are_warnings() {
        let warnings: Vec<Hazard> = Hazard::ALL
            .into_iter()
            .filter(|h| h.severity() == Severity::Warn)
            .collect();
        assert_eq!(
            warnings,
            [
                Hazard::AccessExclusiveLock,
                Hazard::InvalidExpression,
                Hazard::UnknownColumn
            ]
        );
    }
}
