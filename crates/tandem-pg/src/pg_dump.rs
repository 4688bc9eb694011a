//! Runs `pg_dump --schema-only` for one schema: the text a baseline's `sql` operation is made
//! from ([`tandem_core::baseline::baseline_sql`] trims it).
//!
//! `pg_dump` is found the way the server binaries are ([`crate::cluster`]): `PG_BINDIR`, else
//! the highest `/usr/lib/postgresql/<version>/bin` that has it, else `PATH`. The connection
//! string goes to it as one argument (`--dbname=URL`), never through a shell.

use std::fmt;
use std::io::ErrorKind;

use tandem_core::ident::quote_ident;

use crate::cluster::{find_bindir_of, pg_command};

#[derive(Debug)]
pub enum DumpError {
    /// No `pg_dump` where it was looked for.
    Missing { looked: String },
    /// It ran and failed (or could not be started).
    Failed { program: String, message: String },
}

impl fmt::Display for DumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DumpError::Missing { looked } => write!(
                f,
                "pg_dump is missing (looked for {looked}); a baseline needs it to write the schema's SQL; nothing was changed\n  hint: install the PostgreSQL client programs (Debian: apt-get install postgresql-client), of the server's major version or newer, or set PG_BINDIR to the directory that contains pg_dump"
            ),
            DumpError::Failed { program, message } => write!(
                f,
                "{program} failed: {message}; nothing was changed\n  hint: pg_dump must be of the server's major version or newer (set PG_BINDIR to choose one), and the role must be able to read the schema"
            ),
        }
    }
}

impl std::error::Error for DumpError {}

/// The schema-only dump of `schema` at `url`, without owners and privileges (a baseline
/// rebuilds the schema on databases where those roles need not exist; tandem's diff does not
/// compare grants either) and without tablespaces. `role` is `--role`, as tandem's `--role`.
pub async fn dump_schema(url: &str, schema: &str, role: Option<&str>) -> Result<String, DumpError> {
    let (url, schema, role) = (
        url.to_string(),
        schema.to_string(),
        role.map(str::to_string),
    );
    tokio::task::spawn_blocking(move || dump_blocking(&url, &schema, role.as_deref()))
        .await
        .map_err(|e| DumpError::Failed {
            program: "pg_dump".into(),
            message: e.to_string(),
        })?
}

fn dump_blocking(url: &str, schema: &str, role: Option<&str>) -> Result<String, DumpError> {
    let bindir = find_bindir_of("pg_dump");
    let program = match &bindir {
        Some(dir) => dir.join("pg_dump").display().to_string(),
        None => "pg_dump".to_string(),
    };
    let mut cmd = pg_command(bindir.as_deref(), "pg_dump");
    cmd.arg("--schema-only")
        // A pattern, where a double-quoted name matches that name only (no wildcards, case
        // kept): exactly the base schema, not its version schemas nor tandem's state schema.
        .arg(format!("--schema={}", quote_ident(schema)))
        .args([
            "--no-owner",
            "--no-privileges",
            "--no-tablespaces",
            "--no-security-labels",
            "--no-publications",
            "--no-subscriptions",
        ])
        .arg(format!("--dbname={url}"));
    if let Some(role) = role {
        cmd.arg(format!("--role={role}"));
    }
    let output = cmd.output().map_err(|e| match e.kind() {
        ErrorKind::NotFound => DumpError::Missing {
            looked: match &bindir {
                Some(dir) => format!("{} (PG_BINDIR, else the highest /usr/lib/postgresql/<version>/bin)", dir.join("pg_dump").display()),
                None => "pg_dump in PG_BINDIR (not set), /usr/lib/postgresql/<version>/bin (none has it) and PATH".to_string(),
            },
        },
        _ => DumpError::Failed {
            program: program.clone(),
            message: e.to_string(),
        },
    })?;
    if !output.status.success() {
        return Err(DumpError::Failed {
            program,
            message: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    String::from_utf8(output.stdout).map_err(|e| DumpError::Failed {
        program,
        message: format!("its output is not UTF-8: {e}"),
    })
}
