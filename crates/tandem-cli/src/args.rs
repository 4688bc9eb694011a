//! Command-line arguments (clap).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "tandem",
    version,
    about = "Zero-downtime PostgreSQL schema migrations: expand, run two app versions side by side, contract."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// PostgreSQL connection string (URL or key=value); falls back to DATABASE_URL.
    #[arg(long, global = true, env = "TANDEM_PG_URL")]
    pub postgres_url: Option<String>,
    /// The schema whose tables tandem migrates.
    #[arg(long, global = true, env = "TANDEM_SCHEMA", default_value = "public")]
    pub schema: String,
    /// Where tandem keeps its own state.
    #[arg(
        long,
        global = true,
        env = "TANDEM_STATE_SCHEMA",
        default_value = "tandem"
    )]
    pub state_schema: String,
    /// How long one DDL statement may wait for its lock before it is retried (e.g. 500ms, 2s),
    /// the same for every try. Without it the timeout adapts: 50ms at first, doubling on each
    /// retry of the same step up to 120ms, so the application never waits longer than that
    /// behind tandem.
    #[arg(long, global = true, value_parser = parse_duration)]
    pub lock_timeout: Option<Duration>,
    /// How long to keep retrying a statement that cannot get its lock (e.g. 10m).
    #[arg(long, global = true, default_value = "10m", value_parser = parse_duration)]
    pub lock_retry_for: Duration,
    /// Rows in the first backfill batch; later batches adapt to --backfill-batch-time.
    #[arg(long, global = true, default_value_t = 5000)]
    pub backfill_batch_size: i64,
    /// How long one backfill batch (and the row locks it holds) should take.
    #[arg(long, global = true, default_value = "100ms", value_parser = parse_duration)]
    pub backfill_batch_time: Duration,
    /// The most rows one backfill batch updates, whatever --backfill-batch-time allows.
    #[arg(long, global = true, default_value_t = tandem_pg::backfill::MAX_BATCH)]
    pub backfill_max_batch_rows: i64,
    /// A pause between backfill batches, to leave room for the application.
    #[arg(long, global = true, default_value = "0ms", value_parser = parse_duration)]
    pub backfill_delay: Duration,
    /// Connections the backfill updates a table's pages on at once (1 is gentlest; each
    /// worker's batches still hold their row locks for about --backfill-batch-time).
    #[arg(long, global = true, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub backfill_workers: u16,
    /// Pause the backfill while any replica replays more than this far behind (e.g. 10s),
    /// measured from WAL positions; it goes on once every replica has replayed what was
    /// written when it paused.
    #[arg(long, global = true, value_parser = parse_duration)]
    pub max_replication_lag: Option<Duration>,
    /// Let the application's triggers fire for the backfill's updates, once per backfilled
    /// row. By default the backfill is not an application write: a role that may set
    /// session_replication_role runs its batches in replica mode, so that only triggers set
    /// ENABLE ALWAYS fire (unless a validated foreign key over a backfilled column, a
    /// deferrable constraint, a rule or an ENABLE REPLICA trigger needs every trigger).
    #[arg(long, global = true)]
    pub backfill_fire_triggers: bool,
    /// Run tandem's statements as this role (SET ROLE).
    #[arg(long, global = true)]
    pub role: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create tandem's state schema (idempotent).
    Init,
    /// Expand: apply a migration so that old and new versions both work.
    Start {
        file: PathBuf,
        /// Complete right after starting.
        #[arg(long)]
        complete: bool,
        #[arg(long)]
        json: bool,
        /// Run although the lint refuses this hazard in the raw SQL (repeatable; NAME as the
        /// lint prints it, e.g. drop, table_rewrite).
        #[arg(long = "allow-hazard", value_name = "NAME", value_parser = crate::lint::parse_hazard)]
        allow_hazard: Vec<tandem_lint::Hazard>,
    },
    /// Contract: finish the in-flight migration (old version's schema and columns go away).
    Complete {
        #[arg(long)]
        json: bool,
    },
    /// Finish an interrupted start: the rest of its steps, the backfill from its checkpoint,
    /// and the version schema.
    Backfill {
        #[arg(long)]
        json: bool,
    },
    /// Pause the running backfill (it stops within one batch).
    Pause,
    /// Resume a paused backfill.
    Resume,
    /// Undo the in-flight migration's start.
    Rollback {
        #[arg(long)]
        json: bool,
    },
    /// Show the applied migrations and what is in flight.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Print the latest version schema, migration name or connection URL.
    Latest {
        what: Latest,
        /// Read the migration files of DIR instead of the database.
        #[arg(long)]
        local: Option<PathBuf>,
    },
    /// Apply every migration file of DIR not yet applied, in file-name order.
    Migrate {
        dir: PathBuf,
        /// Also complete the last migration.
        #[arg(long)]
        complete: bool,
        #[arg(long)]
        json: bool,
        /// Write a rehearsal report: every step's duration, lock, lock retries and rows
        /// backfilled, and the longest ACCESS EXCLUSIVE hold (JSON).
        #[arg(long, value_name = "FILE.json")]
        report: Option<PathBuf>,
        /// Fail (exit 1) when a step held an ACCESS EXCLUSIVE lock longer than this many
        /// milliseconds; a migration whose start went over is rolled back.
        #[arg(long, value_name = "MS")]
        max_exclusive_ms: Option<u64>,
        /// Run although the lint refuses this hazard in the raw SQL (repeatable; NAME as the
        /// lint prints it, e.g. drop, table_rewrite).
        #[arg(long = "allow-hazard", value_name = "NAME", value_parser = crate::lint::parse_hazard)]
        allow_hazard: Vec<tandem_lint::Hazard>,
        /// Refuse (exit 2, nothing changed) unless exactly one file is pending, as pgroll's
        /// `migrate --expect-one`: for deploys that ship one migration at a time.
        #[arg(long)]
        expect_one: bool,
    },
    /// Show the steps, locks and hazards of a migration, and the lint's findings, without
    /// running it.
    Plan {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Compare the database with what its migration files build, or two databases (CI):
    /// exit 0 when they match, 1 when they differ, 2 when they cannot be compared.
    Diff(crate::diff::DiffArgs),
    /// Check migration files (and, with a connection, against the live schema), and lint
    /// their raw SQL and expressions.
    Validate {
        path: PathBuf,
        #[arg(long)]
        json: bool,
        /// Do not fail on this hazard in the raw SQL (repeatable; NAME as the
        /// lint prints it, e.g. drop, table_rewrite).
        #[arg(long = "allow-hazard", value_name = "NAME", value_parser = crate::lint::parse_hazard)]
        allow_hazard: Vec<tandem_lint::Hazard>,
    },
    /// Write the applied migrations of the database out as migration files of DIR (files
    /// already there and identical are left alone; differing ones are refused without --force).
    Pull {
        dir: PathBuf,
        /// The format of new files, for every migration (existing files keep theirs). Without
        /// it, each migration is written in the format of the file it was applied from (YAML
        /// where that is not known: a migration applied before tandem recorded it, or a
        /// baseline).
        #[arg(long, value_enum)]
        format: Option<FileFormat>,
        /// Replace files that differ from what the database applied.
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// Record a database created before tandem as its starting point: the migration NAME,
    /// complete, with its version schema, and DIR/NAME.yaml whose SQL recreates the schema.
    Baseline {
        name: String,
        dir: PathBuf,
        #[arg(long, value_enum, default_value = "yaml")]
        format: FileFormat,
        #[arg(long)]
        json: bool,
    },
    /// Write a new migration file to fill in (it does not validate until it has operations).
    Create {
        /// The migration's name; unless it starts with a digit, it is prefixed with the next
        /// number after the files of DIR (`03_add_email`).
        name: String,
        /// The folder of migration files.
        #[arg(long, default_value = "migrations")]
        dir: PathBuf,
        /// Write YAML (the default).
        #[arg(long, conflicts_with = "json")]
        yaml: bool,
        /// Write JSON.
        #[arg(long)]
        json: bool,
    },
    /// Rewrite the migration files of DIR written in an older pgroll format (a top-level
    /// `name`, the old `create_index` column forms) into the current format; current files
    /// are left untouched.
    Update {
        dir: PathBuf,
        /// Show what would change, write nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Convert SQL DDL into a migration file on stdout: each statement becomes the operation
    /// that makes the change safely (anything else a `sql` operation); notes go to stderr.
    Convert {
        /// The SQL file; `-` or none reads stdin.
        file: Option<PathBuf>,
        /// Write JSON (YAML by default).
        #[arg(long)]
        json: bool,
        /// Write `name: NAME` into the file (older pgroll files name the migration so; without
        /// it, the migration is named after the file it is saved as).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print a shell completion script: `tandem completions bash > /etc/bash_completion.d/tandem`.
    Completions { shell: clap_complete::Shell },
    /// Run the demo against a throwaway local PostgreSQL.
    Demo {
        /// The migration files to demonstrate.
        #[arg(long, default_value = "migrations-examples")]
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileFormat {
    Yaml,
    Json,
}

impl From<FileFormat> for tandem_core::load::Format {
    fn from(f: FileFormat) -> Self {
        match f {
            FileFormat::Yaml => tandem_core::load::Format::Yaml,
            FileFormat::Json => tandem_core::load::Format::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Latest {
    Schema,
    Version,
    Url,
}

/// `500ms`, `2s`, `10m`, or a bare number of milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration (try 500ms, 2s or 10m)"))?;
    match unit {
        "" | "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" | "min" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!(
            "unknown unit \"{unit}\" in \"{s}\" (use ms, s or m)"
        )),
    }
}
