//! tandem's own bookkeeping: which migrations were applied to which schema, which one is in
//! flight, and where each backfill stopped.
//!
//! Everything lives in one state schema (`tandem` unless configured otherwise). Its layout is
//! evolved with refinery, whose history table also lives in that schema so that a database's
//! `public` schema never gains objects it did not ask for. The schema name is chosen at run time,
//! so the refinery migrations are built at run time too, with the name quoted into their SQL.
//!
//! Invariants are enforced by the database rather than by this code, so they also hold when two
//! tandem processes race: at most one migration per schema is in flight, and the non-rolled-back
//! migrations of a schema form one linear chain through their `parent` links.

use std::fmt;

use serde::Serialize;
use tandem_core::ident::{qualified, quote_ident, quote_literal};
use tandem_core::plan::Phase as PlanPhase;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Row};

/// The state schema used when none is configured.
pub const DEFAULT_STATE_SCHEMA: &str = "tandem";

/// refinery's history table; kept at refinery's default name, but inside the state schema.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// The newest layout version this build knows about. A store whose history stops earlier is
/// reported as not initialized, so `tandem init` is the single way to bring it up to date.
const LATEST_LAYOUT_VERSION: i32 = 4;

/// Where tandem keeps its state, named by the state schema.
#[derive(Debug, Clone)]
pub struct StateStore {
    state_schema: String,
}

/// Why a state store operation failed. The messages are meant to be shown to users as they are.
#[derive(Debug)]
pub enum StateError {
    /// The state schema, or one of its tables, does not exist (or is older than this tandem).
    NotInitialized {
        state_schema: String,
    },
    /// Another session holds the advisory lock for this schema (that session, when it could
    /// be found).
    Busy {
        schema: String,
        holder: Option<LockHolder>,
    },
    /// A migration was started on this schema and neither completed nor rolled back.
    MigrationInFlight {
        schema: String,
        name: String,
    },
    /// There is no started or completing migration to act on.
    NoMigrationInFlight {
        schema: String,
    },
    /// A migration of this name is already complete (or in flight) on this schema.
    AlreadyApplied {
        schema: String,
        name: String,
    },
    Db(tokio_postgres::Error),
    /// refinery could not bring the state schema's layout up to date, or the layout holds
    /// something this build does not understand.
    Refinery(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::NotInitialized { state_schema } => write!(
                f,
                "tandem's state schema {} is missing or out of date in this database; \
                 run `tandem init` first (with --state-schema {} if that is not the default)",
                quote_ident(state_schema),
                quote_ident(state_schema),
            ),
            StateError::Busy {
                schema,
                holder: None,
            } => write!(
                f,
                "another tandem command is already working on schema {}; \
                 wait for it to finish, then try again",
                quote_ident(schema),
            ),
            StateError::Busy {
                schema,
                holder: Some(h),
            } => write!(
                f,
                "another tandem command is already working on schema {}: {h} holds its lock\n  \
                 hint: wait for it to finish, then try again; if no tandem command is running \
                 any more (a pooled or stuck connection kept the session), end that session: \
                 SELECT pg_terminate_backend({})",
                quote_ident(schema),
                h.pid,
            ),
            StateError::MigrationInFlight { schema, name } => write!(
                f,
                "migration {} is still in progress on schema {}; \
                 run `tandem complete` or `tandem rollback` before starting another",
                quote_literal(name),
                quote_ident(schema),
            ),
            StateError::NoMigrationInFlight { schema } => write!(
                f,
                "no migration is in progress on schema {}, so there is nothing to complete or \
                 roll back; `tandem status` shows its history",
                quote_ident(schema),
            ),
            StateError::AlreadyApplied { schema, name } => write!(
                f,
                "migration {} has already been applied to schema {}; \
                 a new change needs a new migration file (`tandem status` lists what is applied)",
                quote_literal(name),
                quote_ident(schema),
            ),
            StateError::Db(e) => write!(f, "database error in tandem's state store: {e}"),
            StateError::Refinery(msg) => write!(f, "tandem's state schema: {msg}"),
        }
    }
}

/// The session holding a schema's lock, from pg_locks and pg_stat_activity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    pub pid: i32,
    pub application_name: String,
    /// The client's address; None for a Unix-socket connection.
    pub client_addr: Option<String>,
    /// When the session connected.
    pub backend_start: String,
    /// When the session's current state (idle, active, ...) began, and that state.
    pub state: String,
    pub state_change: String,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the session with pid {} (application_name {}, client {}, connected since {}, {} since {})",
            self.pid,
            quote_literal(&self.application_name),
            self.client_addr.as_deref().unwrap_or("local socket"),
            self.backend_start,
            self.state,
            self.state_change,
        )
    }
}

impl std::error::Error for StateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StateError::Db(e) => Some(e),
            _ => None,
        }
    }
}

impl From<tokio_postgres::Error> for StateError {
    fn from(e: tokio_postgres::Error) -> Self {
        StateError::Db(e)
    }
}

/// Where a migration stands. `Completing` exists so that a `complete` that died halfway is
/// resumed rather than rolled back: once contraction has begun, old columns may already be gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Started,
    Completing,
    Complete,
    RolledBack,
}

impl Phase {
    /// The text stored in the `phase` column (and used in `--json` output).
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Started => "started",
            Phase::Completing => "completing",
            Phase::Complete => "complete",
            Phase::RolledBack => "rolled_back",
        }
    }

    /// Started or completing: the migration still needs a `complete` or a `rollback`.
    pub fn is_in_flight(self) -> bool {
        matches!(self, Phase::Started | Phase::Completing)
    }

    fn parse(text: &str) -> Option<Phase> {
        Some(match text {
            "started" => Phase::Started,
            "completing" => Phase::Completing,
            "complete" => Phase::Complete,
            "rolled_back" => Phase::RolledBack,
            _ => return None,
        })
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A migration as `start` applies it: the file's content, and its format when it came from a
/// file (`json` or `yaml`).
#[derive(Debug, Clone, Copy)]
pub struct Applied<'a> {
    pub migration: &'a serde_json::Value,
    pub file_format: Option<&'a str>,
}

impl<'a> Applied<'a> {
    /// A migration that did not come from a file of known format (a baseline).
    pub fn of(migration: &'a serde_json::Value) -> Self {
        Applied {
            migration,
            file_format: None,
        }
    }
}

/// One row of the `migrations` table.
#[derive(Debug, Clone, Serialize)]
pub struct MigrationRecord {
    pub schema: String,
    pub name: String,
    pub parent: Option<String>,
    /// The migration file as applied.
    pub migration: serde_json::Value,
    pub version_schema: String,
    pub phase: Phase,
    /// RFC 3339 in UTC, formatted by PostgreSQL.
    pub created_at: String,
    pub updated_at: String,
    pub schema_before: serde_json::Value,
    pub resulting_schema: Option<serde_json::Value>,
    /// How many of the plan's start steps have run.
    pub start_steps_done: i32,
    pub complete_steps_done: i32,
    pub rollback_steps_done: i32,
    pub paused: bool,
    /// The format of the file it was applied from (`json` or `yaml`), when known.
    pub file_format: Option<String>,
}

/// Formatted in SQL, in UTC, so the text does not depend on the session's TimeZone and no date
/// library is needed.
const RECORD_COLUMNS: &str = "schema, name, parent, migration, version_schema, phase, \
    to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
    to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), \
            schema_before, resulting_schema, start_steps_done, paused, complete_steps_done, \
    rollback_steps_done, file_format";

/// Where one table's backfill stands.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillProgress {
    pub table: String,
    /// The last key done, one text value per key column.
    pub last_key: Option<Vec<String>>,
    pub rows_done: i64,
    pub rows_estimate: Option<i64>,
    /// The pass over the table's pages, while it runs or once it ran; `last_key` is then the
    /// position of the key-range pass that follows it only when it could not be trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_pass: Option<BlockPass>,
}

/// What one backfill batch records with its commit.
#[derive(Debug, Clone)]
pub struct Checkpoint<'a> {
    pub table: &'a str,
    /// The key-range pass's position, when that pass made the batch.
    pub last_key: Option<Vec<String>>,
    pub block_pass: Option<BlockPass>,
    /// The rows the batch updated.
    pub rows_added: i64,
    pub rows_estimate: Option<i64>,
}

/// The backfill's main pass: pages `[0, end)` of the table's file, in order, or of its
/// `parts`' files one after the other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BlockPass {
    /// The first page not done yet.
    pub next: i64,
    /// The table's size in pages when the pass began: every row the sync trigger has not
    /// marked lies before it.
    pub end: i64,
    /// The file the pages belong to; a rewrite (VACUUM FULL, CLUSTER) gives the table a new
    /// one, and the pass's page numbers mean nothing there.
    pub filenode: i64,
    /// For a table whose rows live in several relations (partitions, inheritance children):
    /// those relations, their pages numbered on from the previous one's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<Part>,
}

/// One relation holding some of a table's rows, as the page pass found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Part {
    pub schema: String,
    pub name: String,
    /// Its size in pages when the pass began.
    pub pages: i64,
    pub filenode: i64,
}

impl StateStore {
    pub fn new(state_schema: &str) -> Self {
        StateStore {
            state_schema: state_schema.to_string(),
        }
    }

    pub fn schema_name(&self) -> &str {
        &self.state_schema
    }

    fn table(&self, name: &str) -> String {
        qualified(&self.state_schema, name)
    }

    /// The layout migrations, in order. The SQL quotes the state schema name in, which also
    /// makes refinery's checksum depend on it: renaming the state schema by hand is reported
    /// as a divergent layout instead of being silently accepted.
    fn layout_migrations(&self) -> Result<Vec<refinery::Migration>, StateError> {
        let migrations = self.table("migrations");
        let progress = self.table("backfill_progress");
        let v1 = format!(
            "CREATE TABLE {migrations} (
                seq bigserial NOT NULL UNIQUE,
                schema text NOT NULL,
                name text NOT NULL,
                parent text,
                migration jsonb NOT NULL,
                version_schema text NOT NULL,
                phase text NOT NULL
                    CHECK (phase IN ('started', 'completing', 'complete', 'rolled_back')),
                created_at timestamptz NOT NULL DEFAULT now(),
                updated_at timestamptz NOT NULL DEFAULT now(),
                schema_before jsonb NOT NULL,
                resulting_schema jsonb,
                PRIMARY KEY (schema, name)
            );
            CREATE UNIQUE INDEX migrations_one_in_flight ON {migrations} (schema)
                WHERE phase IN ('started', 'completing');
            CREATE UNIQUE INDEX migrations_one_child ON {migrations} (schema, parent)
                WHERE phase <> 'rolled_back';
            CREATE UNIQUE INDEX migrations_one_root ON {migrations} (schema)
                WHERE parent IS NULL AND phase <> 'rolled_back';
            CREATE TABLE {progress} (
                schema text NOT NULL,
                migration text NOT NULL,
                table_name text NOT NULL,
                last_key jsonb,
                rows_done bigint NOT NULL DEFAULT 0,
                rows_estimate bigint,
                paused boolean NOT NULL DEFAULT false,
                updated_at timestamptz,
                PRIMARY KEY (schema, migration, table_name)
            );"
        );
        let v1 = refinery::Migration::unapplied("V1__initial", &v1)
            .map_err(|e| StateError::Refinery(e.to_string()))?;
        // How far each phase got (so an interrupted command resumes instead of redoing work),
        // and the pause switch a running backfill honours.
        let v2 = format!(
            "ALTER TABLE {migrations} ADD COLUMN start_steps_done integer NOT NULL DEFAULT 0;
             ALTER TABLE {migrations} ADD COLUMN complete_steps_done integer NOT NULL DEFAULT 0;
             ALTER TABLE {migrations} ADD COLUMN rollback_steps_done integer NOT NULL DEFAULT 0;
             ALTER TABLE {migrations} ADD COLUMN paused boolean NOT NULL DEFAULT false;"
        );
        let v2 = refinery::Migration::unapplied("V2__progress", &v2)
            .map_err(|e| StateError::Refinery(e.to_string()))?;
        // Where the backfill's pass over the table's pages stands (see `BlockPass`).
        let v3 = format!("ALTER TABLE {progress} ADD COLUMN block_pass jsonb;");
        let v3 = refinery::Migration::unapplied("V3__block_pass", &v3)
            .map_err(|e| StateError::Refinery(e.to_string()))?;
        // The format of the file a migration was applied from, so that `pull` writes it back
        // out in the same one (NULL: not known, as for migrations applied before this layout).
        let v4 = format!(
            "ALTER TABLE {migrations} ADD COLUMN file_format text
                 CHECK (file_format IN ('json', 'yaml'));"
        );
        let v4 = refinery::Migration::unapplied("V4__file_format", &v4)
            .map_err(|e| StateError::Refinery(e.to_string()))?;
        Ok(vec![v1, v2, v3, v4])
    }

    /// Creates the state schema and brings its layout up to date. Idempotent, and safe when
    /// several processes run it at once.
    pub async fn init(&self, client: &mut Client) -> Result<(), StateError> {
        // Neither CREATE SCHEMA IF NOT EXISTS nor refinery's CREATE TABLE IF NOT EXISTS is safe
        // against a concurrent twin (both can fail on a catalog unique index), so the whole
        // setup is serialized. The lock is session-level because refinery commits its own
        // transactions on this connection. The bigint form lives in a different lock space
        // from the (int4, int4) keys of `try_lock`, so the two can never collide.
        let key = format!("tandem init {}", self.state_schema);
        client
            .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await?;
        let result = self.init_locked(client).await;
        let unlocked = client
            .execute(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&key],
            )
            .await;
        result?;
        unlocked?;
        Ok(())
    }

    async fn init_locked(&self, client: &mut Client) -> Result<(), StateError> {
        // CREATE SCHEMA checks the CREATE privilege on the database even when the schema
        // exists, so it is skipped then: a role that may only use the store can re-run init.
        let exists = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&self.state_schema],
            )
            .await?
            .get::<_, bool>(0);
        if !exists {
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA {}",
                    quote_ident(&self.state_schema)
                ))
                .await?;
        }
        let migrations = self.layout_migrations()?;
        let mut runner = refinery::Runner::new(&migrations);
        runner.set_migration_table_name(self.table(HISTORY_TABLE));
        runner
            .run_async(client)
            .await
            .map_err(|e| StateError::Refinery(refinery_message(&e)))?;
        Ok(())
    }

    /// Whether `init` has been run with a layout at least as new as this build's.
    pub async fn is_initialized(&self, client: &Client) -> Result<bool, StateError> {
        // to_regclass parses (and truncates) the quoted name exactly as the DDL did.
        let history = self.table(HISTORY_TABLE);
        let exists = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&history])
            .await?
            .get::<_, bool>(0);
        if !exists {
            return Ok(false);
        }
        let version: Option<i32> = client
            .query_one(&format!("SELECT max(version) FROM {history}"), &[])
            .await
            .map_err(|e| self.db_error(e))?
            .get(0);
        Ok(version.is_some_and(|v| v >= LATEST_LAYOUT_VERSION))
    }

    /// Takes the per-schema session lock that every mutating command holds, or fails with
    /// `Busy` at once. Session-level advisory locks nest: a session that already holds it gets
    /// it again and must `unlock` as many times; closing the connection releases it.
    pub async fn try_lock(&self, client: &Client, schema: &str) -> Result<(), StateError> {
        let got: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1), hashtext($2))",
                &[&self.state_schema, &schema],
            )
            .await?
            .get(0);
        if got {
            Ok(())
        } else {
            Err(StateError::Busy {
                schema: schema.to_string(),
                holder: self.lock_holder(client, schema).await?,
            })
        }
    }

    /// The session that holds `schema`'s lock, if any (and visible: pg_stat_activity hides
    /// other roles' sessions' details from a role without pg_read_all_stats).
    pub async fn lock_holder(
        &self,
        client: &Client,
        schema: &str,
    ) -> Result<Option<LockHolder>, StateError> {
        let row = client
            .query_opt(
                "SELECT a.pid, COALESCE(a.application_name, ''), host(a.client_addr),
                        COALESCE(to_char(a.backend_start, 'YYYY-MM-DD HH24:MI:SS TZ'), '?'),
                        COALESCE(a.state, '?'),
                        COALESCE(to_char(a.state_change, 'YYYY-MM-DD HH24:MI:SS TZ'), '?')
                   FROM pg_locks l
                   JOIN pg_stat_activity a ON a.pid = l.pid
                  WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                    AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                    AND l.classid::bigint = (hashtext($1)::bigint & 4294967295)
                    AND l.objid::bigint = (hashtext($2)::bigint & 4294967295)
                    AND l.pid <> pg_backend_pid()
                  LIMIT 1",
                &[&self.state_schema, &schema],
            )
            .await?;
        Ok(row.map(|r| LockHolder {
            pid: r.get(0),
            application_name: r.get(1),
            client_addr: r.get(2),
            backend_start: r.get(3),
            state: r.get(4),
            state_change: r.get(5),
        }))
    }

    /// Releases the lock taken by `try_lock`. Releasing a lock this session does not hold is
    /// not an error (PostgreSQL only warns), so cleanup paths can call it unconditionally.
    pub async fn unlock(&self, client: &Client, schema: &str) -> Result<(), StateError> {
        client
            .query_one(
                "SELECT pg_advisory_unlock(hashtext($1), hashtext($2))",
                &[&self.state_schema, &schema],
            )
            .await?;
        Ok(())
    }

    /// The started or completing migration of `schema`, if any.
    pub async fn in_flight(
        &self,
        client: &Client,
        schema: &str,
    ) -> Result<Option<MigrationRecord>, StateError> {
        self.query_opt(
            client,
            "phase IN ('started', 'completing') ORDER BY seq DESC LIMIT 1",
            schema,
        )
        .await
    }

    /// The newest migration that is not rolled back (complete or in flight).
    pub async fn latest(
        &self,
        client: &Client,
        schema: &str,
    ) -> Result<Option<MigrationRecord>, StateError> {
        self.query_opt(
            client,
            "phase <> 'rolled_back' ORDER BY seq DESC LIMIT 1",
            schema,
        )
        .await
    }

    /// The newest complete migration.
    pub async fn latest_complete(
        &self,
        client: &Client,
        schema: &str,
    ) -> Result<Option<MigrationRecord>, StateError> {
        self.query_opt(
            client,
            "phase = 'complete' ORDER BY seq DESC LIMIT 1",
            schema,
        )
        .await
    }

    /// Every migration of `schema` that is not rolled back, oldest first.
    pub async fn history(
        &self,
        client: &Client,
        schema: &str,
    ) -> Result<Vec<MigrationRecord>, StateError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM {} WHERE schema = $1 AND phase <> 'rolled_back' \
             ORDER BY seq",
            self.table("migrations")
        );
        let rows = client
            .query(&sql, &[&schema])
            .await
            .map_err(|e| self.db_error(e))?;
        rows.iter().map(record_from_row).collect()
    }

    /// The migration of that name in any phase, rolled back included.
    pub async fn get(
        &self,
        client: &Client,
        schema: &str,
        name: &str,
    ) -> Result<Option<MigrationRecord>, StateError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM {} WHERE schema = $1 AND name = $2",
            self.table("migrations")
        );
        let row = client
            .query_opt(&sql, &[&schema, &name])
            .await
            .map_err(|e| self.db_error(e))?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// Records `name` as started on `schema`, as the child of `latest()`. Refused while another
    /// migration is in flight, or when `name` is complete already; a rolled-back attempt of the
    /// same name is replaced, and its backfill checkpoints are forgotten.
    pub async fn record_start(
        &self,
        client: &Client,
        schema: &str,
        name: &str,
        applied: Applied<'_>,
        version_schema: &str,
        schema_before: &serde_json::Value,
    ) -> Result<MigrationRecord, StateError> {
        let Applied {
            migration,
            file_format,
        } = applied;
        if let Some(current) = self.in_flight(client, schema).await? {
            return Err(StateError::MigrationInFlight {
                schema: schema.to_string(),
                name: current.name,
            });
        }
        let migrations = self.table("migrations");
        let progress = self.table("backfill_progress");
        // One statement, so it is atomic without needing a transaction (and so `&Client`).
        // The upsert only overwrites a rolled-back row; any other existing row makes it return
        // nothing. The unique indexes catch a concurrent start that slips past the check above.
        let sql = format!(
            "WITH forgotten AS (
                DELETE FROM {progress} p
                WHERE p.schema = $1 AND p.migration = $2
                  AND EXISTS (SELECT 1 FROM {migrations} m
                              WHERE m.schema = $1 AND m.name = $2 AND m.phase = 'rolled_back')
            )
            INSERT INTO {migrations} AS m
                (schema, name, parent, migration, version_schema, phase, schema_before,
                 file_format)
            VALUES ($1, $2,
                    (SELECT l.name FROM {migrations} l
                     WHERE l.schema = $1 AND l.phase <> 'rolled_back'
                     ORDER BY l.seq DESC LIMIT 1),
                    $3, $4, 'started', $5, $6)
            ON CONFLICT (schema, name) DO UPDATE SET
                seq = EXCLUDED.seq,
                parent = EXCLUDED.parent,
                migration = EXCLUDED.migration,
                version_schema = EXCLUDED.version_schema,
                phase = EXCLUDED.phase,
                created_at = EXCLUDED.created_at,
                updated_at = EXCLUDED.updated_at,
                schema_before = EXCLUDED.schema_before,
                file_format = EXCLUDED.file_format,
                resulting_schema = NULL,
                                start_steps_done = 0,
                complete_steps_done = 0,
                rollback_steps_done = 0,
                paused = false
            WHERE m.phase = 'rolled_back'
            RETURNING {RECORD_COLUMNS}"
        );
        let inserted = client
            .query_opt(
                &sql,
                &[
                    &schema,
                    &name,
                    migration,
                    &version_schema,
                    schema_before,
                    &file_format,
                ],
            )
            .await;
        match inserted {
            Ok(Some(row)) => record_from_row(&row),
            Ok(None) => match self.get(client, schema, name).await? {
                Some(existing) if existing.phase.is_in_flight() => {
                    Err(StateError::MigrationInFlight {
                        schema: schema.to_string(),
                        name: existing.name,
                    })
                }
                Some(_) => Err(StateError::AlreadyApplied {
                    schema: schema.to_string(),
                    name: name.to_string(),
                }),
                None => Err(StateError::Busy {
                    schema: schema.to_string(),
                    holder: None,
                }),
            },
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                // Another session changed this schema's history between our check and insert.
                match self.in_flight(client, schema).await? {
                    Some(current) => Err(StateError::MigrationInFlight {
                        schema: schema.to_string(),
                        name: current.name,
                    }),
                    None => Err(StateError::Busy {
                        schema: schema.to_string(),
                        holder: None,
                    }),
                }
            }
            Err(e) => Err(self.db_error(e)),
        }
    }

    /// Moves an in-flight migration to `phase`, storing `resulting_schema` when given (and
    /// keeping the stored one otherwise). Setting the phase a migration already has is allowed,
    /// so a re-run `complete` can record its progress again. Which transitions make sense
    /// (e.g. no rollback once completing) is the caller's decision.
    pub async fn set_phase(
        &self,
        client: &Client,
        schema: &str,
        name: &str,
        phase: Phase,
        resulting_schema: Option<&serde_json::Value>,
    ) -> Result<(), StateError> {
        let migrations = self.table("migrations");
        let progress = self.table("backfill_progress");
        // A rolled-back migration's checkpoints describe columns that no longer exist.
        let sql = format!(
            "WITH updated AS (
                UPDATE {migrations}
                SET phase = $3,
                    updated_at = now(),
                    resulting_schema = coalesce($4::jsonb, resulting_schema)
                WHERE schema = $1 AND name = $2
                  AND (phase IN ('started', 'completing') OR phase = $3)
                RETURNING phase
            ), forgotten AS (
                DELETE FROM {progress}
                WHERE schema = $1 AND migration = $2
                  AND EXISTS (SELECT 1 FROM updated WHERE phase = 'rolled_back')
            )
            SELECT count(*) FROM updated"
        );
        let updated: i64 = client
            .query_one(&sql, &[&schema, &name, &phase.as_str(), &resulting_schema])
            .await
            .map_err(|e| self.db_error(e))?
            .get(0);
        if updated == 0 {
            return Err(StateError::NoMigrationInFlight {
                schema: schema.to_string(),
            });
        }
        Ok(())
    }

    async fn query_opt(
        &self,
        client: &Client,
        condition_and_order: &str,
        schema: &str,
    ) -> Result<Option<MigrationRecord>, StateError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM {} WHERE schema = $1 AND {condition_and_order}",
            self.table("migrations")
        );
        let row = client
            .query_opt(&sql, &[&schema])
            .await
            .map_err(|e| self.db_error(e))?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// A missing state table or schema means `init` was never run here; saying so is more
    /// useful than PostgreSQL's "relation does not exist".
    fn db_error(&self, e: tokio_postgres::Error) -> StateError {
        match e.code() {
            Some(code)
                if *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME =>
            {
                StateError::NotInitialized {
                    state_schema: self.state_schema.clone(),
                }
            }
            _ => StateError::Db(e),
        }
    }
}

impl StateStore {
    /// The statement that records, inside the transaction of the steps it counts, that the
    /// first `done` steps of `phase` of migration `name` have run. Values are escaped literals
    /// because the executor batches it with the steps' own SQL.
    pub fn steps_done_sql(
        &self,
        schema: &str,
        name: &str,
        phase: PlanPhase,
        done: usize,
    ) -> String {
        let column = match phase {
            PlanPhase::Start => "start_steps_done",
            PlanPhase::Complete => "complete_steps_done",
            PlanPhase::Rollback => "rollback_steps_done",
        };
        format!(
            "UPDATE {} SET {column} = {done}, updated_at = now() WHERE schema = {} AND name = {}",
            self.table("migrations"),
            quote_literal(schema),
            quote_literal(name)
        )
    }

    /// Records a backfill batch; run in the batch's own transaction so the checkpoint and the
    /// rows it covers commit together.
    /// Records one backfill batch in the batch's own transaction: where the backfill stands
    /// after it, and its rows added to the count. Adding (rather than writing a total) keeps
    /// the count right when several workers' batches commit in any order.
    pub async fn checkpoint(
        &self,
        tx: &tokio_postgres::Transaction<'_>,
        schema: &str,
        migration: &str,
        batch: &Checkpoint<'_>,
    ) -> Result<(), StateError> {
        let key = serde_json::to_value(&batch.last_key).unwrap_or_default();
        let blocks = serde_json::to_value(&batch.block_pass).unwrap_or_default();
        let (table, rows, rows_estimate) = (batch.table, batch.rows_added, batch.rows_estimate);
        tx.execute(
            &format!(
                "INSERT INTO {} (schema, migration, table_name, last_key, rows_done, rows_estimate, block_pass, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, now()) \
                 ON CONFLICT (schema, migration, table_name) DO UPDATE \
                 SET last_key = EXCLUDED.last_key, rows_done = {0}.rows_done + EXCLUDED.rows_done, \
                     rows_estimate = COALESCE(EXCLUDED.rows_estimate, {0}.rows_estimate), \
                     block_pass = EXCLUDED.block_pass, updated_at = now()",
                self.table("backfill_progress")
            ),
            &[&schema, &migration, &table, &key, &rows, &rows_estimate, &blocks],
        )
        .await
        .map_err(|e| self.db_error(e))?;
        Ok(())
    }

    pub async fn backfill_progress(
        &self,
        client: &Client,
        schema: &str,
        migration: &str,
    ) -> Result<Vec<BackfillProgress>, StateError> {
        let rows = client
            .query(
                &format!(
                    "SELECT table_name, last_key, rows_done, rows_estimate, block_pass FROM {} \
                     WHERE schema = $1 AND migration = $2 ORDER BY table_name",
                    self.table("backfill_progress")
                ),
                &[&schema, &migration],
            )
            .await
            .map_err(|e| self.db_error(e))?;
        rows.iter()
            .map(|r| {
                let key: Option<serde_json::Value> = r.try_get(1)?;
                let blocks: Option<serde_json::Value> = r.try_get(4)?;
                Ok(BackfillProgress {
                    table: r.try_get(0)?,
                    last_key: key.and_then(|k| serde_json::from_value(k).ok()),
                    rows_done: r.try_get(2)?,
                    rows_estimate: r.try_get(3)?,
                    block_pass: blocks.and_then(|b| serde_json::from_value(b).ok()),
                })
            })
            .collect()
    }

    /// Sets the pause switch of the schema's in-flight migration; returns its name. Takes no
    /// advisory lock: the backfill it steers holds that.
    pub async fn set_paused(
        &self,
        client: &Client,
        schema: &str,
        paused: bool,
    ) -> Result<String, StateError> {
        let row = client
            .query_opt(
                &format!(
                    "UPDATE {} SET paused = $2, updated_at = now() \
                     WHERE schema = $1 AND phase IN ('started', 'completing') RETURNING name",
                    self.table("migrations")
                ),
                &[&schema, &paused],
            )
            .await
            .map_err(|e| self.db_error(e))?;
        row.map(|r| r.get::<_, String>(0))
            .ok_or_else(|| StateError::NoMigrationInFlight {
                schema: schema.to_string(),
            })
    }

    pub async fn is_paused(
        &self,
        client: &Client,
        schema: &str,
        migration: &str,
    ) -> Result<bool, StateError> {
        let row = client
            .query_opt(
                &format!(
                    "SELECT paused FROM {} WHERE schema = $1 AND name = $2",
                    self.table("migrations")
                ),
                &[&schema, &migration],
            )
            .await
            .map_err(|e| self.db_error(e))?;
        Ok(row.is_some_and(|r| r.get::<_, bool>(0)))
    }
}

fn record_from_row(row: &Row) -> Result<MigrationRecord, StateError> {
    let phase_text: String = row.try_get(5)?;
    let phase = Phase::parse(&phase_text).ok_or_else(|| {
        StateError::Refinery(format!(
            "unknown migration phase {} (was this state written by a newer tandem?)",
            quote_literal(&phase_text)
        ))
    })?;
    Ok(MigrationRecord {
        schema: row.try_get(0)?,
        name: row.try_get(1)?,
        parent: row.try_get(2)?,
        migration: row.try_get(3)?,
        version_schema: row.try_get(4)?,
        phase,
        created_at: row.try_get(6)?,
        updated_at: row.try_get(7)?,
        schema_before: row.try_get(8)?,
        resulting_schema: row.try_get(9)?,
        start_steps_done: row.try_get(10)?,
        complete_steps_done: row.try_get(12)?,
        rollback_steps_done: row.try_get(13)?,
        paused: row.try_get(11)?,
        file_format: row.try_get(14)?,
    })
}

/// refinery's own message hides the database error inside its source chain.
fn refinery_message(e: &refinery::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !msg.contains(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
        source = s.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::str::FromStr;
    use std::sync::atomic::{AtomicU32, Ordering};
    use tokio_postgres::{Config, NoTls};

    /// A database of its own for one test, so tests run in parallel; dropped (forcibly, in case
    /// a connection is still open) when the test ends, even by panic.
    struct TestDb {
        admin: Config,
        config: Config,
        name: String,
    }

    impl TestDb {
        async fn new() -> TestDb {
            static COUNTER: AtomicU32 = AtomicU32::new(0);
            let url = crate::test_server::admin_url();
            let admin = Config::from_str(&url).expect("TANDEM_TEST_PG_URL must parse");
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos();
            let name = format!(
                "tandem_state_test_{}_{}_{}",
                std::process::id(),
                nanos,
                COUNTER.fetch_add(1, Ordering::Relaxed)
            );
            let client = connect_to(&admin).await;
            client
                .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
                .await
                .expect("create test database");
            let mut config = admin.clone();
            config.dbname(&name);
            TestDb {
                admin,
                config,
                name,
            }
        }

        async fn connect(&self) -> Client {
            connect_to(&self.config).await
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            let admin = self.admin.clone();
            let sql = format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&self.name)
            );
            // Drop cannot await, and the test's runtime may be gone or busy: use a private one.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let client = connect_to(&admin).await;
                    client.batch_execute(&sql).await
                })
            })
            .join();
        }
    }

    async fn connect_to(config: &Config) -> Client {
        let (client, connection) = config.connect(NoTls).await.expect("connect to PostgreSQL");
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
    }

    async fn initialized(db: &TestDb, store: &StateStore) -> Client {
        let mut client = db.connect().await;
        store.init(&mut client).await.unwrap();
        client
    }

    async fn start(
        store: &StateStore,
        client: &Client,
        schema: &str,
        name: &str,
    ) -> MigrationRecord {
        store
            .record_start(
                client,
                schema,
                name,
                Applied::of(&json!({"operations": [{"sql": {"up": name}}]})),
                &format!("{schema}_{name}"),
                &json!({"tables": {}}),
            )
            .await
            .unwrap()
    }

    async fn start_err(
        store: &StateStore,
        client: &Client,
        schema: &str,
        name: &str,
    ) -> StateError {
        store
            .record_start(
                client,
                schema,
                name,
                Applied::of(&json!({})),
                name,
                &json!({}),
            )
            .await
            .unwrap_err()
    }

    async fn complete(store: &StateStore, client: &Client, schema: &str, name: &str) {
        store
            .set_phase(
                client,
                schema,
                name,
                Phase::Complete,
                Some(&json!({"done": name})),
            )
            .await
            .unwrap();
    }

    fn names(records: &[MigrationRecord]) -> Vec<(&str, Option<&str>)> {
        records
            .iter()
            .map(|r| (r.name.as_str(), r.parent.as_deref()))
            .collect()
    }

    #[tokio::test]
    async fn state_init_twice_is_idempotent() {
        let db = TestDb::new().await;
        let store = StateStore::new(DEFAULT_STATE_SCHEMA);
        let mut client = db.connect().await;
        assert!(!store.is_initialized(&client).await.unwrap());
        store.init(&mut client).await.unwrap();
        assert!(store.is_initialized(&client).await.unwrap());
        store.init(&mut client).await.unwrap();
        assert!(store.is_initialized(&client).await.unwrap());
        let applied: i64 = client
            .query_one("SELECT count(*) FROM tandem.refinery_schema_history", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(applied, 4, "the four layout versions, each applied once");
    }

    #[tokio::test]
    async fn state_concurrent_inits_all_succeed() {
        let db = TestDb::new().await;
        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(db.connect().await);
        }
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|mut client| {
                tokio::spawn(async move {
                    StateStore::new("tandem").init(&mut client).await?;
                    Ok::<_, StateError>(client)
                })
            })
            .collect();
        for task in tasks {
            let client = task.await.unwrap().unwrap();
            assert!(StateStore::new("tandem")
                .is_initialized(&client)
                .await
                .unwrap());
        }
    }

    #[tokio::test]
    async fn state_history_table_lives_in_the_state_schema() {
        let db = TestDb::new().await;
        let store = StateStore::new("tandem");
        let client = initialized(&db, &store).await;
        let rows = client
            .query(
                "SELECT n.nspname::text, c.relname::text FROM pg_class c
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                 ORDER BY 1, 2",
                &[],
            )
            .await
            .unwrap();
        let tables: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(
            tables,
            [
                ("tandem".to_string(), "backfill_progress".to_string()),
                ("tandem".to_string(), "migrations".to_string()),
                ("tandem".to_string(), "refinery_schema_history".to_string()),
            ]
        );
        let in_public: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(in_public, 0);
    }

    #[tokio::test]
    async fn state_custom_schema_name_with_capitals_spaces_and_quotes() {
        let db = TestDb::new().await;
        let store = StateStore::new("My Tandem \"State\"");
        assert_eq!(store.schema_name(), "My Tandem \"State\"");
        let mut client = initialized(&db, &store).await;
        store.init(&mut client).await.unwrap();
        assert!(store.is_initialized(&client).await.unwrap());
        assert!(!StateStore::new("tandem")
            .is_initialized(&client)
            .await
            .unwrap());
        let history: i64 = client
            .query_one(
                "SELECT count(*) FROM \"My Tandem \"\"State\"\"\".refinery_schema_history",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(history, 4);

        start(&store, &client, "Public Schema", "01 First").await;
        complete(&store, &client, "Public Schema", "01 First").await;
        start(&store, &client, "Public Schema", "02.second").await;
        let history = store.history(&client, "Public Schema").await.unwrap();
        assert_eq!(
            names(&history),
            [("01 First", None), ("02.second", Some("01 First"))]
        );
        store.try_lock(&client, "Public Schema").await.unwrap();
        store.unlock(&client, "Public Schema").await.unwrap();
    }

    #[tokio::test]
    async fn state_not_initialized_is_reported() {
        let db = TestDb::new().await;
        let client = db.connect().await;
        let store = StateStore::new("tandem");
        let err = store.in_flight(&client, "public").await.unwrap_err();
        assert!(
            matches!(&err, StateError::NotInitialized { state_schema } if state_schema == "tandem"),
            "{err:?}"
        );
        assert!(err.to_string().contains("tandem init"), "{err}");
        let err = start_err(&store, &client, "public", "01").await;
        assert!(matches!(err, StateError::NotInitialized { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn state_try_lock_from_second_connection_is_busy() {
        let db = TestDb::new().await;
        let store = StateStore::new("tandem");
        let first = initialized(&db, &store).await;
        let second = db.connect().await;
        store.try_lock(&first, "public").await.unwrap();
        let err = store.try_lock(&second, "public").await.unwrap_err();
        assert!(
            matches!(&err, StateError::Busy { schema, .. } if schema == "public"),
            "{err:?}"
        );
        assert!(err.to_string().contains("another tandem command"), "{err}");
        // The refusal names the session holding the lock, and how to end it.
        let first_pid: i32 = first
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .unwrap()
            .get(0);
        match &err {
            StateError::Busy {
                holder: Some(h), ..
            } => assert_eq!(h.pid, first_pid),
            other => panic!("no holder: {other:?}"),
        }
        assert!(
            err.to_string()
                .contains(&format!("SELECT pg_terminate_backend({first_pid})")),
            "{err}"
        );
        // Other schemas, and the same schema under another state store, are independent.
        store.try_lock(&second, "sales").await.unwrap();
        StateStore::new("tandem2")
            .try_lock(&second, "public")
            .await
            .unwrap();
        store.unlock(&first, "public").await.unwrap();
        store.try_lock(&second, "public").await.unwrap();
        assert!(matches!(
            store.try_lock(&first, "public").await,
            Err(StateError::Busy { .. })
        ));
        // Closing the connection releases the lock.
        drop(second);
        for _ in 0..100 {
            if store.try_lock(&first, "public").await.is_ok() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("lock not released when its session closed");
    }

    #[tokio::test]
    async fn state_second_start_while_in_flight_is_refused() {
        let db = TestDb::new().await;
        let store = StateStore::new("tandem");
        let client = initialized(&db, &store).await;
        let first = start(&store, &client, "public", "01_init").await;
        assert_eq!(first.phase, Phase::Started);
        assert_eq!(first.parent, None);
        assert_eq!(first.version_schema, "public_01_init");
        for name in ["01_init", "02_next"] {
            let err = start_err(&store, &client, "public", name).await;
            assert!(
                matches!(&err, StateError::MigrationInFlight { schema, name }
                    if schema == "public" && name == "01_init"),
                "{err:?}"
            );
        }
        store
            .set_phase(&client, "public", "01_init", Phase::Completing, None)
            .await
            .unwrap();
        let err = start_err(&store, &client, "public", "02_next").await;
        assert!(
            matches!(err, StateError::MigrationInFlight { .. }),
            "{err:?}"
        );
        // Another schema has its own history.
        start(&store, &client, "other", "02_next").await;
    }

    #[tokio::test]
    async fn state_concurrent_starts_leave_one_in_flight() {
        let db = TestDb::new().await;
        let store = StateStore::new("tandem");
        let client = initialized(&db, &store).await;
        start(&store, &client, "public", "01_a").await;
        complete(&store, &client, "public", "01_a").await;
        let mut tasks = Vec::new();
        for i in 0..6 {
            let session = db.connect().await;
            tasks.push(tokio::spawn(async move {
                let name = format!("02_try{i}");
                StateStore::new("tandem")
                    .record_start(
                        &session,
                        "public",
                        &name,
                        Applied::of(&json!({})),
                        &name,
                        &json!({}),
                    )
                    .await
            }));
        }
        let mut started = Vec::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(record) => started.push(record),
                Err(StateError::MigrationInFlight { .. } | StateError::Busy { .. }) => {}
                Err(e) => panic!("unexpected error: {e:?}"),
            }
        }
        assert_eq!(started.len(), 1, "{started:?}");
        assert_eq!(started[0].parent.as_deref(), Some("01_a"));
        assert_eq!(store.history(&client, "public").await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn state_history_is_a_linear_chain() {
        let db = TestDb::new().await;
        let store = StateStore::new("tandem");
        let client = initialized(&db, &store).await;
        assert!(store.latest(&client, "public").await.unwrap().is_none());
        assert!(store.history(&client, "public").await.unwrap().is_empty());
        for name in ["01_a", "02_b"] {
            start(&store, &client, "public", name).await;
            complete(&store, &client, "public", name).await;
        }
        start(&store, &client, "public", "03_c").await;
        let history = store.history(&client, "public").await.unwrap();
        assert_eq!(
            names(&history),
            [
                ("01_a", None),
                ("02_b", Some("01_a")),
                ("03_c", Some("02_b"))
            ]
        );
        assert_eq!(
            store.latest(&client, "public").await.unwrap().unwrap().name,
            "03_c"
        );
        assert_eq!(
            store
                .latest_complete(&client, "public")
                .await
                .unwrap()
                .unwrap()
                .name,
            "02_b"
        );
        assert_eq!(
            store
                .in_flight(&client, "public")
                .await
                .unwrap()
                .unwrap()
                .name,
            "03_c"
        );
        let err = start_err(&store, &client, "public", "02_b").await;
        assert!(
            matches!(err, StateError::MigrationInFlight { .. }),
            "{err:?}"
        );
        complete(&store, &client, "public", "03_c").await;
        let err = start_err(&store, &client, "public", "02_b").await;
        assert!(
            matches!(&err, StateError::AlreadyApplied { schema, name }
                if schema == "public" && name == "02_b"),
            "{err:?}"
        );
        assert!(err.to_string().contains("already been applied"), "{err}");

        // The unique indexes hold even against writes that bypass record_start.
        let migrations = store.table("migrations");
        let fork = client
            .execute(
                &format!(
                    "INSERT INTO {migrations}
                         (schema, name, parent, migration, version_schema, phase, schema_before)
                     VALUES ('public', 'fork', '01_a', '{{}}', 'v', 'complete', '{{}}')"
                ),
                &[],
            )
            .await
            .unwrap_err();
        assert_eq!(fork.code(), Some(&SqlState::UNIQUE_VIOLATION));
        let second_root = client
            .execute(
                &format!(
                    "INSERT INTO {migrations}
                         (schema, name, parent, migration, version_schema, phase, schema_before)
                     VALUES ('public', 'root', NULL, '{{}}', 'v', 'complete', '{{}}')"
                ),
                &[],
            )
            .await
            .unwrap_err();
        assert_eq!(second_root.code(), Some(&SqlState::UNIQUE_VIOLATION));
    }

    #[tokio::test]
    async fn state_rolled_back_migration_can_be_started_again() {
        let db = TestDb::new().await;
        let store = StateStore::new("tandem");
        let client = initialized(&db, &store).await;
        start(&store, &client, "public", "01_a").await;
        complete(&store, &client, "public", "01_a").await;
        let first_try = start(&store, &client, "public", "02_b").await;
        let progress = store.table("backfill_progress");
        client
            .execute(
                &format!(
                    "INSERT INTO {progress} (schema, migration, table_name, rows_done)
                     VALUES ('public', '02_b', 'users', 10)"
                ),
                &[],
            )
            .await
            .unwrap();
        store
            .set_phase(&client, "public", "02_b", Phase::RolledBack, None)
            .await
            .unwrap();
        let checkpoints: i64 = client
            .query_one(&format!("SELECT count(*) FROM {progress}"), &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(checkpoints, 0);
        assert!(store.in_flight(&client, "public").await.unwrap().is_none());
        assert_eq!(
            store.latest(&client, "public").await.unwrap().unwrap().name,
            "01_a"
        );
        assert_eq!(
            names(&store.history(&client, "public").await.unwrap()),
            [("01_a", None)]
        );
        assert_eq!(
            store
                .get(&client, "public", "02_b")
                .await
                .unwrap()
                .unwrap()
                .phase,
            Phase::RolledBack
        );

        // Another migration may take the rolled-back one's place in the chain...
        start(&store, &client, "public", "02_other").await;
        store
            .set_phase(&client, "public", "02_other", Phase::RolledBack, None)
            .await
            .unwrap();
        // ...and the original name can be started again, replacing its rolled-back row.
        let second_try = store
            .record_start(
                &client,
                "public",
                "02_b",
                Applied {
                    migration: &json!({"operations": ["again"]}),
                    file_format: Some("json"),
                },
                "public_02_b",
                &json!({"tables": {"users": {}}}),
            )
            .await
            .unwrap();
        assert_eq!(second_try.phase, Phase::Started);
        assert_eq!(first_try.file_format, None);
        assert_eq!(second_try.file_format.as_deref(), Some("json"));
        assert_eq!(second_try.parent.as_deref(), Some("01_a"));
        assert_eq!(second_try.migration, json!({"operations": ["again"]}));
        assert_eq!(second_try.schema_before, json!({"tables": {"users": {}}}));
        assert!(second_try.resulting_schema.is_none());
        assert!(second_try.created_at >= first_try.created_at);
        complete(&store, &client, "public", "02_b").await;
        assert_eq!(
            names(&store.history(&client, "public").await.unwrap()),
            [("01_a", None), ("02_b", Some("01_a"))]
        );
    }

    #[tokio::test]
    async fn state_set_phase_moves_an_in_flight_migration() {
        let db = TestDb::new().await;
        let store = StateStore::new("tandem");
        let client = initialized(&db, &store).await;
        let err = store
            .set_phase(&client, "public", "01_a", Phase::Complete, None)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, StateError::NoMigrationInFlight { schema } if schema == "public"),
            "{err:?}"
        );
        let started = start(&store, &client, "public", "01_a").await;
        assert!(started.created_at.ends_with('Z') && started.created_at.contains('T'));
        assert_eq!(started.created_at, started.updated_at);
        store
            .set_phase(&client, "public", "01_a", Phase::Completing, None)
            .await
            .unwrap();
        // A resumed `complete` records the same phase again.
        store
            .set_phase(&client, "public", "01_a", Phase::Completing, None)
            .await
            .unwrap();
        let record = store.get(&client, "public", "01_a").await.unwrap().unwrap();
        assert_eq!(record.phase, Phase::Completing);
        assert!(record.resulting_schema.is_none());
        assert!(record.updated_at > started.updated_at);
        store
            .set_phase(
                &client,
                "public",
                "01_a",
                Phase::Complete,
                Some(&json!({"tables": {"t": {}}})),
            )
            .await
            .unwrap();
        let record = store.get(&client, "public", "01_a").await.unwrap().unwrap();
        assert_eq!(record.phase, Phase::Complete);
        assert_eq!(record.resulting_schema, Some(json!({"tables": {"t": {}}})));
        // Same phase again keeps the stored snapshot when none is given.
        store
            .set_phase(&client, "public", "01_a", Phase::Complete, None)
            .await
            .unwrap();
        let record = store.get(&client, "public", "01_a").await.unwrap().unwrap();
        assert_eq!(record.resulting_schema, Some(json!({"tables": {"t": {}}})));
        // A complete migration cannot be rolled back or restarted through set_phase.
        for phase in [Phase::RolledBack, Phase::Started] {
            let err = store
                .set_phase(&client, "public", "01_a", phase, None)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StateError::NoMigrationInFlight { .. }),
                "{err:?}"
            );
        }
        assert_eq!(
            serde_json::to_value(&record).unwrap()["phase"],
            json!("complete")
        );
        assert_eq!(
            serde_json::to_value(Phase::RolledBack).unwrap(),
            json!("rolled_back")
        );
    }
}
