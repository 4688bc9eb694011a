//! A tandem session: one connection to the database, and the commands that change it
//! (start, complete, rollback) built from the planner, the executor and the state store.

use std::fmt;

use serde::Serialize;
use tandem_core::dependents::{dependents_params, pointer_for, Dependent, Fate, DEPENDENTS_SQL};
use tandem_core::ident::quote_ident;
use tandem_core::migration::Migration;
use tandem_core::plan::{Phase as PlanPhase, Plan};
use tandem_core::planner::{self, PlanInput};
use tandem_core::problem::Problem;
use tandem_core::schema::Schema;
use tandem_core::views;
use tokio_postgres::{Client, NoTls};

use crate::executor::{db_message, Event, ExecError, ExecOptions, Executor, Tracking};
use crate::introspect::read_schema;
use crate::state::{MigrationRecord, Phase, StateError, StateStore};

#[derive(Debug, Clone)]
pub struct Options {
    pub schema: String,
    pub state_schema: String,
    pub role: Option<String>,
    pub exec: ExecOptions,
}

/// What went wrong, in the user's terms.
#[derive(Debug)]
pub enum Error {
    CannotConnect(String),
    NotInitialized {
        state_schema: String,
    },
    ConcurrentRun {
        schema: String,
        holder: Option<crate::state::LockHolder>,
    },
    /// tandem's connection goes through a transaction pooler: what gave it away.
    BehindPooler(String),
    MigrationInFlight {
        schema: String,
        name: String,
    },
    NoMigrationInFlight {
        schema: String,
    },
    AlreadyApplied {
        schema: String,
        name: String,
    },
    /// The migration is wrong for this database; nothing was changed.
    InvalidMigration(Vec<Problem>),
    RollbackAfterContract {
        name: String,
    },
    /// A step of start failed; start was rolled back.
    StartFailed {
        error: ExecError,
        rollback_error: Option<String>,
    },
    Exec(ExecError),
    Database(String),
    /// Something outside tandem depends on what the contract would drop; nothing was changed.
    ContractBlocked {
        name: String,
        problems: Vec<Problem>,
    },
    /// Rollback undid everything it could; these start steps it cannot undo.
    RollbackIncomplete {
        name: String,
        left: Vec<String>,
    },
    /// `pg_dump`, which writes a baseline's SQL, is missing or failed.
    Dump(crate::pg_dump::DumpError),
    /// `baseline` is for a schema tandem has not migrated yet.
    HistoryExists {
        schema: String,
        latest: String,
    },
}

impl Error {
    /// Bad input (exit code 2) as opposed to a failure (exit code 1).
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidMigration(_) | Error::ContractBlocked { .. } | Error::BehindPooler(_)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::CannotConnect(m) => write!(f, "cannot connect to PostgreSQL: {m}\n  hint: check --postgres-url / TANDEM_PG_URL / DATABASE_URL"),
            Error::NotInitialized { state_schema } => StateError::NotInitialized { state_schema: state_schema.clone() }.fmt(f),
            Error::ConcurrentRun { schema, holder } => StateError::Busy { schema: schema.clone(), holder: holder.clone() }.fmt(f),
            Error::BehindPooler(why) => write!(f, "tandem is connected through a transaction pooler (PgBouncer in transaction mode, RDS Proxy, pgcat, Odyssey or alike): {why}\n  tandem needs a session of its own: its per-schema lock and its settings live as long as its connection, and a transaction pooler hands the server connection to other clients between transactions; nothing was changed\n  hint: connect tandem directly to PostgreSQL (the server's own host and port, not the pooler's): pass --postgres-url or set TANDEM_PG_URL; DATABASE_URL may stay the pooler's for the applications"),
            Error::MigrationInFlight { schema, name } => StateError::MigrationInFlight { schema: schema.clone(), name: name.clone() }.fmt(f),
            Error::NoMigrationInFlight { schema } => StateError::NoMigrationInFlight { schema: schema.clone() }.fmt(f),
            Error::AlreadyApplied { schema, name } => StateError::AlreadyApplied { schema: schema.clone(), name: name.clone() }.fmt(f),
            Error::InvalidMigration(problems) => {
                let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                write!(f, "{}", lines.join("\n"))
            }
            Error::ContractBlocked { name, problems } => {
                let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                write!(f, "cannot complete migration \"{name}\": {} object(s) depend on what its contract drops\n{}\n  nothing was changed: both versions keep working, and `tandem rollback` is still possible\n  hint: fix each object as its hint says, then run `tandem complete` again", problems.len(), lines.join("\n"))
            }
            Error::RollbackIncomplete { name, left } => write!(f, "migration \"{name}\" was rolled back, except what rollback cannot undo:\n  {}\n  hint: undo that by hand (or give the `sql` operation a `down`) before starting this migration again", left.join("\n  ")),
            Error::RollbackAfterContract { name } => write!(f, "migration \"{name}\" has begun its contract phase and can no longer be rolled back\n  hint: run `tandem complete` to finish it"),
            Error::StartFailed { error, rollback_error: None } => write!(f, "{error}\n  the start was rolled back; the database is as it was before"),
            Error::StartFailed { error, rollback_error: Some(r) } => write!(f, "{error}\n  rolling the start back also failed: {r}\n  hint: run `tandem rollback` once the cause is fixed"),
            Error::Exec(e) => write!(f, "{e}\n  hint: fix the cause and re-run the same command; it resumes"),
            Error::Database(m) => write!(f, "{m}"),
            Error::Dump(e) => write!(f, "{e}"),
            Error::HistoryExists { schema, latest } => write!(f, "schema {schema} already has a tandem history (latest: {latest}), so it needs no baseline\n  hint: `tandem pull DIR` writes the applied history out as migration files"),
        }
    }
}

impl std::error::Error for Error {}

impl From<StateError> for Error {
    fn from(e: StateError) -> Self {
        match e {
            StateError::NotInitialized { state_schema } => Error::NotInitialized { state_schema },
            StateError::Busy { schema, holder } => Error::ConcurrentRun { schema, holder },
            StateError::MigrationInFlight { schema, name } => {
                Error::MigrationInFlight { schema, name }
            }
            StateError::NoMigrationInFlight { schema } => Error::NoMigrationInFlight { schema },
            StateError::AlreadyApplied { schema, name } => Error::AlreadyApplied { schema, name },
            StateError::Db(e) => Error::Database(db_message(&e)),
            StateError::Refinery(m) => Error::Database(m),
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    fn from(e: tokio_postgres::Error) -> Self {
        Error::Database(db_message(&e))
    }
}

/// The dependents that would make a contract fail, as problems at the operation behind them.
pub fn blocking_problems(dependents: &[Dependent]) -> Vec<Problem> {
    dependents
        .iter()
        .filter(|d| d.fate == Fate::Blocks)
        .map(|d| {
            let depends_on = d.depends_on.strip_prefix("owner ").unwrap_or(&d.depends_on);
            Problem::new(
                d.pointer.clone(),
                format!(
                    "{} depends on {depends_on}, which this migration's complete would drop",
                    d.object
                ),
            )
            .with_hint(d.fix())
        })
        .collect()
}

/// What `baseline` recorded.
#[derive(Debug, Clone)]
pub struct Baseline {
    pub migration: Migration,
    pub version_schema: String,
}

/// Serializing tandem's own models cannot fail; this keeps a message if it ever did.
fn to_json<T: Serialize>(value: &T) -> Result<serde_json::Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Database(e.to_string()))
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub schema: String,
    pub initialized: bool,
    pub latest_schema: String,
    pub in_flight: Option<MigrationSummary>,
    pub history: Vec<MigrationSummary>,
    /// Backfill progress of the migration in flight, per table.
    pub backfill: Vec<crate::state::BackfillProgress>,
    /// Whether the in-flight migration's backfill is paused.
    pub paused: bool,
    /// What to run next, in words.
    pub next: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct MigrationSummary {
    pub name: String,
    pub parent: Option<String>,
    pub version_schema: String,
    pub phase: Phase,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&MigrationRecord> for MigrationSummary {
    fn from(r: &MigrationRecord) -> Self {
        MigrationSummary {
            name: r.name.clone(),
            parent: r.parent.clone(),
            version_schema: r.version_schema.clone(),
            phase: r.phase,
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
        }
    }
}

pub struct Session {
    client: Client,
    /// The connection string, for `pg_dump`.
    url: String,
    options: Options,
    state: StateStore,
    /// Opens connections like `client` for a backfill's extra workers.
    connector: crate::backfill::Connector,
}

/// Whether `client` reaches PostgreSQL through a transaction pooler: why, if so. A direct
/// connection is one server session, its backend the same from transaction to transaction
/// and never another client's; a transaction pooler hands the server connection back to its
/// pool after each transaction. So: the backend of `client` between two of its transactions
/// serves another connection made meanwhile (a pooler that reuses the idle connection last
/// released, as PgBouncer does), or `client`'s second transaction runs on another backend
/// (one that hands out connections in turn). Simple queries only: a pooler may run the
/// extended protocol's steps on different server connections.
async fn transaction_pooled(client: &Client, url: &str) -> Result<Option<String>, Error> {
    async fn pid(client: &Client) -> Result<Option<i32>, Error> {
        let messages = client.simple_query("SELECT pg_backend_pid()").await?;
        Ok(messages.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        }))
    }
    let Some(first) = pid(client).await? else {
        return Ok(None);
    };
    // Another connection, opened while `client` is between transactions. One that cannot be
    // had (max_connections) leaves the second check alone.
    if let Ok((other, connection)) = tokio_postgres::connect(url, NoTls).await {
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        let theirs = pid(&other).await;
        drop(other);
        let _ = task.await;
        if theirs? == Some(first) {
            return Ok(Some(format!(
                "another connection was served by the same server session (pid {first}) between two transactions of tandem's"
            )));
        }
    }
    match pid(client).await? {
        Some(second) if second != first => Ok(Some(format!(
            "two transactions on one connection ran in different server sessions (pids {first} and {second})"
        ))),
        _ => Ok(None),
    }
}

impl Session {
    pub async fn connect(url: &str, options: Options) -> Result<Session, Error> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| Error::CannotConnect(db_message(&e)))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        // Before any session setting, which a pooler would leave on a shared connection.
        if let Some(why) = transaction_pooled(&client, url).await? {
            return Err(Error::BehindPooler(why));
        }
        // Unqualified names in raw SQL and in copied defaults resolve in the base schema.
        let mut setup = format!(
            "SET application_name = 'tandem'; SET search_path = {}",
            quote_ident(&options.schema)
        );
        if let Some(role) = &options.role {
            setup.push_str(&format!("; SET ROLE {}", quote_ident(role)));
        }
        client.batch_execute(&setup).await?;
        // A killed tandem's session (and its per-schema lock) ends with its connection; the
        // server notices a client that went away mid-statement only at the statement's end,
        // unless it checks meanwhile (PostgreSQL 14+, where the platform lets it).
        const CHECK: &str = "SET client_connection_check_interval = '2s'";
        if client.batch_execute(CHECK).await.is_ok() {
            setup.push_str("; ");
            setup.push_str(CHECK);
        }
        let state = StateStore::new(&options.state_schema);
        Ok(Session {
            client,
            url: url.to_string(),
            options,
            state,
            connector: crate::backfill::Connector::new(url, setup),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn init(&mut self) -> Result<(), Error> {
        self.state.init(&mut self.client).await?;
        Ok(())
    }

    async fn ensure_initialized(&self) -> Result<(), Error> {
        if !self.state.is_initialized(&self.client).await? {
            return Err(Error::NotInitialized {
                state_schema: self.options.state_schema.clone(),
            });
        }
        Ok(())
    }

    /// Plans `migration` against the live schema without changing anything.
    pub async fn plan(&self, migration: &Migration) -> Result<Plan, Error> {
        self.ensure_initialized().await?;
        if let Some(r) = self
            .state
            .in_flight(&self.client, &self.options.schema)
            .await?
        {
            return Err(Error::MigrationInFlight {
                schema: self.options.schema.clone(),
                name: r.name,
            });
        }
        let schema = read_schema(&self.client, &self.options.schema).await?;
        let previous = self.previous_version_schema().await?;
        let mut plan = planner::plan(&PlanInput {
            schema: &schema,
            migration,
            previous_version_schema: previous.as_deref(),
        })
        .map_err(Error::InvalidMigration)?;
        plan.dependents = self.dependents(&plan).await?;
        let blockers = blocking_problems(&plan.dependents);
        if !blockers.is_empty() {
            return Err(Error::InvalidMigration(blockers));
        }
        Ok(plan)
    }

    /// What in the live database depends on the tables and columns `plan`'s contract drops.
    pub async fn dependents(&self, plan: &Plan) -> Result<Vec<Dependent>, Error> {
        if plan.drops.is_empty() {
            return Ok(Vec::new());
        }
        let mut version_schemas: Vec<String> = self
            .state
            .history(&self.client, &self.options.schema)
            .await?
            .into_iter()
            .map(|r| r.version_schema)
            .collect();
        version_schemas.push(plan.version_schema.clone());
        let ([tables, asides, columns, v_tables, v_columns], replaced) =
            dependents_params(&plan.drops);
        let rows = self
            .client
            .query(
                DEPENDENTS_SQL,
                &[
                    &self.options.schema,
                    &tables,
                    &asides,
                    &columns,
                    &version_schemas,
                    &v_tables,
                    &v_columns,
                    &replaced,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let not_owned: bool = row.try_get(3)?;
                let table: String = row.try_get(4)?;
                let depends_on: String = row.try_get(1)?;
                Ok(Dependent {
                    object: row.try_get(0)?,
                    depends_on: if not_owned {
                        format!("owner {depends_on}")
                    } else {
                        depends_on
                    },
                    fate: if row.try_get(2)? {
                        Fate::Rebuilt
                    } else {
                        Fate::Blocks
                    },
                    pointer: pointer_for(&plan.drops, &table),
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()
            .map_err(Error::from)
    }

    /// The version schema of the latest complete migration, which the next complete drops.
    async fn previous_version_schema(&self) -> Result<Option<String>, Error> {
        Ok(self
            .state
            .latest_complete(&self.client, &self.options.schema)
            .await?
            .map(|r| r.version_schema))
    }

    /// Expands: runs the start steps; on failure rolls them back and reports the first error.
    pub async fn start(
        &mut self,
        migration: &Migration,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<Plan, Error> {
        self.start_from_file(migration, None, observer).await
    }

    /// [`Session::start`] of a migration read from a file in `file_format`, which is recorded
    /// so that `pull` writes the migration back out in the same format.
    pub async fn start_from_file(
        &mut self,
        migration: &Migration,
        file_format: Option<tandem_core::load::Format>,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<Plan, Error> {
        self.ensure_initialized().await?;
        self.state
            .try_lock(&self.client, &self.options.schema)
            .await?;
        let result = self.start_locked(migration, file_format, observer).await;
        let _ = self.state.unlock(&self.client, &self.options.schema).await;
        result
    }

    async fn start_locked(
        &mut self,
        migration: &Migration,
        file_format: Option<tandem_core::load::Format>,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<Plan, Error> {
        if let Some(r) = self
            .state
            .get(&self.client, &self.options.schema, &migration.name)
            .await?
        {
            if r.phase != Phase::RolledBack {
                return Err(Error::AlreadyApplied {
                    schema: self.options.schema.clone(),
                    name: migration.name.clone(),
                });
            }
        }
        let plan = self.plan(migration).await?;
        let before = read_schema(&self.client, &self.options.schema).await?;
        let migration_json =
            serde_json::to_value(migration).map_err(|e| Error::Database(e.to_string()))?;
        let before_json =
            serde_json::to_value(&before).map_err(|e| Error::Database(e.to_string()))?;
        self.state
            .record_start(
                &self.client,
                &self.options.schema,
                &migration.name,
                crate::state::Applied {
                    migration: &migration_json,
                    file_format: file_format.map(|f| match f {
                        tandem_core::load::Format::Json => "json",
                        tandem_core::load::Format::Yaml => "yaml",
                    }),
                },
                &plan.version_schema,
                &before_json,
            )
            .await?;
        if let Err((started, error)) = self
            .run_start_steps(&plan, &migration.name, 0, observer)
            .await
        {
            let undo = plan.rollback_after_partial_start(started);
            let rollback_error = self.run(&undo, observer).await.err().map(|e| e.to_string());
            if rollback_error.is_none() {
                self.state
                    .set_phase(
                        &self.client,
                        &self.options.schema,
                        &migration.name,
                        Phase::RolledBack,
                        None,
                    )
                    .await?;
            }
            return Err(Error::StartFailed {
                error,
                rollback_error,
            });
        }
        Ok(plan)
    }

    /// Runs the plan's start steps from `from` on (earlier ones ran before an interruption),
    /// recording progress as it goes. On failure, also says how many start steps had run.
    async fn run_start_steps(
        &mut self,
        plan: &Plan,
        migration: &str,
        from: usize,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<(), (usize, ExecError)> {
        let tracking = Tracking {
            state: &self.state,
            schema: &self.options.schema,
            migration,
            phase: PlanPhase::Start,
            offset: from,
        };
        Executor::new(&mut self.client, self.options.exec.clone(), observer)
            .connector(&self.connector)
            .tracking(tracking)
            .run_counted(&plan.start[from.min(plan.start.len())..])
            .await
            .map_err(|(i, e)| (from + i, e))?;
        let done = plan.start.len();
        if plan.views_from_live_schema {
            let live = read_schema(&self.client, &self.options.schema)
                .await
                .map_err(|error| {
                    let step = "read the schema the SQL left".to_string();
                    (
                        done,
                        ExecError::StepFailed {
                            step,
                            sql: String::new(),
                            error,
                        },
                    )
                })?;
            let steps = views::create_version_schema(&live, &plan.version_schema);
            self.run(&steps, observer).await.map_err(|e| (done, e))?;
        }
        Ok(())
    }

    async fn run(
        &mut self,
        steps: &[tandem_core::plan::Step],
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<(), ExecError> {
        Executor::new(&mut self.client, self.options.exec.clone(), observer)
            .connector(&self.connector)
            .run(steps)
            .await
    }

    /// The in-flight migration's plan, re-derived from what was recorded at start.
    async fn replan(&self, record: &MigrationRecord) -> Result<Plan, Error> {
        let mut migration: Migration = serde_json::from_value(record.migration.clone())
            .map_err(|e| Error::Database(format!("cannot read the recorded migration: {e}")))?;
        migration.recorded_version_schema = Some(record.version_schema.clone());
        let schema: Schema = serde_json::from_value(record.schema_before.clone())
            .map_err(|e| Error::Database(format!("cannot read the recorded schema: {e}")))?;
        let previous = match &record.parent {
            Some(parent) => self
                .state
                .get(&self.client, &self.options.schema, parent)
                .await?
                .filter(|p| p.phase == Phase::Complete)
                .map(|p| p.version_schema),
            None => None,
        };
        planner::plan(&PlanInput {
            schema: &schema,
            migration: &migration,
            previous_version_schema: previous.as_deref(),
        })
        .map_err(Error::InvalidMigration)
    }

    async fn in_flight(&self) -> Result<MigrationRecord, Error> {
        self.state
            .in_flight(&self.client, &self.options.schema)
            .await?
            .ok_or_else(|| Error::NoMigrationInFlight {
                schema: self.options.schema.clone(),
            })
    }

    /// Finishes the in-flight migration's start where it stopped (a killed process, a failed
    /// backfill): the remaining start steps, the backfill from its checkpoint, and the version
    /// schema. Returns false when there was nothing left to do.
    pub async fn resume_start(
        &mut self,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<bool, Error> {
        self.ensure_initialized().await?;
        self.state
            .try_lock(&self.client, &self.options.schema)
            .await?;
        let result = async {
            let record = self.in_flight().await?;
            self.finish_start(&record, observer).await
        }
        .await;
        let _ = self.state.unlock(&self.client, &self.options.schema).await;
        result
    }

    async fn finish_start(
        &mut self,
        record: &MigrationRecord,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<bool, Error> {
        if record.phase != Phase::Started || self.schema_exists(&record.version_schema).await? {
            return Ok(false);
        }
        let plan = self.replan(record).await?;
        let from = usize::try_from(record.start_steps_done).unwrap_or(0);
        self.run_start_steps(&plan, &record.name, from, observer)
            .await
            .map_err(|(_, e)| Error::Exec(e))?;
        Ok(true)
    }

    /// Sets or clears the pause switch a running backfill honours within one batch.
    pub async fn set_paused(&self, paused: bool) -> Result<String, Error> {
        self.ensure_initialized().await?;
        Ok(self
            .state
            .set_paused(&self.client, &self.options.schema, paused)
            .await?)
    }

    /// Contracts the in-flight migration. Re-running after a failure resumes.
    pub async fn complete(
        &mut self,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<MigrationRecord, Error> {
        self.ensure_initialized().await?;
        self.state
            .try_lock(&self.client, &self.options.schema)
            .await?;
        let result = self.complete_locked(observer).await;
        let _ = self.state.unlock(&self.client, &self.options.schema).await;
        result
    }

    async fn complete_locked(
        &mut self,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<MigrationRecord, Error> {
        let record = self.in_flight().await?;
        self.finish_start(&record, observer).await?;
        let plan = self.replan(&record).await?;
        // Objects created since start may depend on what goes: found before anything changes.
        if record.phase == Phase::Started {
            let blockers = blocking_problems(&self.dependents(&plan).await?);
            if !blockers.is_empty() {
                return Err(Error::ContractBlocked {
                    name: record.name.clone(),
                    problems: blockers,
                });
            }
        }
        self.state
            .set_phase(
                &self.client,
                &self.options.schema,
                &record.name,
                Phase::Completing,
                None,
            )
            .await?;
        // A complete that was interrupted resumes after its last committed step.
        let from = if record.phase == Phase::Completing {
            record.complete_steps_done
        } else {
            0
        };
        self.run_tracked(
            &plan.complete,
            PlanPhase::Complete,
            &record.name,
            from,
            observer,
        )
        .await
        .map_err(Error::Exec)?;
        if plan.views_from_live_schema_after_complete {
            self.rebuild_version_schema(&plan.version_schema, observer)
                .await?;
        }
        let after = read_schema(&self.client, &self.options.schema).await?;
        let after_json =
            serde_json::to_value(&after).map_err(|e| Error::Database(e.to_string()))?;
        self.state
            .set_phase(
                &self.client,
                &self.options.schema,
                &record.name,
                Phase::Complete,
                Some(&after_json),
            )
            .await?;
        Ok(record)
    }

    /// Undoes the in-flight migration's start, leaving the catalog as it was before.
    pub async fn rollback(
        &mut self,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<MigrationRecord, Error> {
        self.ensure_initialized().await?;
        self.state
            .try_lock(&self.client, &self.options.schema)
            .await?;
        let result = self.rollback_locked(observer).await;
        let _ = self.state.unlock(&self.client, &self.options.schema).await;
        result
    }

    async fn rollback_locked(
        &mut self,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<MigrationRecord, Error> {
        let record = self.in_flight().await?;
        if record.phase == Phase::Completing {
            return Err(Error::RollbackAfterContract { name: record.name });
        }
        let plan = self.replan(&record).await?;
        // Only what start did is undone, and an interrupted rollback resumes where it stopped.
        let started = usize::try_from(record.start_steps_done).unwrap_or(0);
        let steps = plan.rollback_after_partial_start(started);
        self.run_tracked(
            &steps,
            PlanPhase::Rollback,
            &record.name,
            record.rollback_steps_done,
            observer,
        )
        .await
        .map_err(Error::Exec)?;
        self.state
            .set_phase(
                &self.client,
                &self.options.schema,
                &record.name,
                Phase::RolledBack,
                None,
            )
            .await?;
        let left: Vec<String> = plan
            .irreversible_after(started)
            .iter()
            .map(|i| format!("{}: {}", i.pointer, i.what))
            .collect();
        if !left.is_empty() {
            return Err(Error::RollbackIncomplete {
                name: record.name,
                left,
            });
        }
        Ok(record)
    }

    /// Raw SQL run at complete can add tables and columns the plan could not foresee: the
    /// version schema's views are rebuilt from the live schema, in one transaction, so a
    /// client sees either the old views or the new ones.
    async fn rebuild_version_schema(
        &mut self,
        version_schema: &str,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<(), Error> {
        let live = read_schema(&self.client, &self.options.schema).await?;
        let group =
            tandem_core::plan::Tx::Group(format!("rebuild version schema {version_schema}"));
        let steps: Vec<tandem_core::plan::Step> = std::iter::once(views::drop_version_schema(
            version_schema,
            PlanPhase::Complete,
        ))
        .chain(views::create_version_schema(&live, version_schema))
        .map(|s| s.tx(group.clone()))
        .collect();
        self.run(&steps, observer).await.map_err(Error::Exec)
    }

    /// Runs `steps` from `from` on, recording in the state schema, inside each step's own
    /// transaction, how many are done.
    async fn run_tracked(
        &mut self,
        steps: &[tandem_core::plan::Step],
        phase: PlanPhase,
        migration: &str,
        from: i32,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<(), ExecError> {
        let from = usize::try_from(from).unwrap_or(0).min(steps.len());
        let tracking = Tracking {
            state: &self.state,
            schema: &self.options.schema,
            migration,
            phase,
            offset: from,
        };
        Executor::new(&mut self.client, self.options.exec.clone(), observer)
            .connector(&self.connector)
            .tracking(tracking)
            .run(&steps[from..])
            .await
    }

    async fn schema_exists(&self, name: &str) -> Result<bool, Error> {
        Ok(self
            .client
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name])
            .await?
            .is_some())
    }

    /// The schema a new app version should put first on its `search_path`: the newest
    /// version schema that exists (a started migration's appears only once its start is done),
    /// or the base schema when there is none.
    pub async fn latest_schema(&self) -> Result<String, Error> {
        let mut history = self
            .state
            .history(&self.client, &self.options.schema)
            .await?;
        history.reverse();
        for record in history {
            let exists = self
                .client
                .query_opt(
                    "SELECT 1 FROM pg_namespace WHERE nspname = $1",
                    &[&record.version_schema],
                )
                .await?
                .is_some();
            if exists {
                return Ok(record.version_schema);
            }
        }
        Ok(self.options.schema.clone())
    }

    /// The name of the migration whose version schema [`Session::latest_schema`] names.
    pub async fn latest_version(&self) -> Result<Option<String>, Error> {
        let latest = self.latest_schema().await?;
        let history = self
            .state
            .history(&self.client, &self.options.schema)
            .await?;
        Ok(history
            .into_iter()
            .rev()
            .find(|r| r.version_schema == latest)
            .map(|r| r.name))
    }

    /// Records the schema as it is now as the migration `name`, complete, with its version
    /// schema, so that later migrations build on a database created before tandem. Returns
    /// the recorded migration: one `sql` operation, made from `pg_dump --schema-only` of the
    /// base schema, that recreates the schema on an empty database.
    pub async fn baseline(
        &mut self,
        name: &str,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<Baseline, Error> {
        self.ensure_initialized().await?;
        self.state
            .try_lock(&self.client, &self.options.schema)
            .await?;
        let result = self.baseline_locked(name, observer).await;
        let _ = self.state.unlock(&self.client, &self.options.schema).await;
        result
    }

    async fn baseline_locked(
        &mut self,
        name: &str,
        observer: &(dyn Fn(Event) + Send + Sync),
    ) -> Result<Baseline, Error> {
        let schema = self.options.schema.clone();
        if let Some(latest) = self.state.history(&self.client, &schema).await?.last() {
            return Err(Error::HistoryExists {
                schema,
                latest: latest.name.clone(),
            });
        }
        let live = read_schema(&self.client, &schema).await?;
        // Before anything is recorded: without pg_dump there is no baseline.
        let dump = crate::pg_dump::dump_schema(&self.url, &schema, self.options.role.as_deref())
            .await
            .map_err(Error::Dump)?;
        let extensions = crate::objects::needed_extensions(&self.client, &schema).await?;
        let sql = tandem_core::baseline::baseline_sql(&dump, &extensions, &schema);
        let migration = tandem_core::baseline::baseline_migration(name, sql);
        let version_schema = migration.version_schema_name(&schema);
        let (migration_json, live_json) = (to_json(&migration)?, to_json(&live)?);
        self.state
            .record_start(
                &self.client,
                &schema,
                name,
                crate::state::Applied::of(&migration_json),
                &version_schema,
                &live_json,
            )
            .await?;
        let views = views::create_version_schema(&live, &version_schema);
        if let Err(e) = self.run(&views, observer).await {
            self.state
                .set_phase(&self.client, &schema, name, Phase::RolledBack, None)
                .await?;
            return Err(Error::Exec(e));
        }
        self.state
            .set_phase(
                &self.client,
                &schema,
                name,
                Phase::Complete,
                Some(&live_json),
            )
            .await?;
        Ok(Baseline {
            migration,
            version_schema,
        })
    }

    pub async fn history(&self) -> Result<Vec<MigrationRecord>, Error> {
        self.ensure_initialized().await?;
        Ok(self
            .state
            .history(&self.client, &self.options.schema)
            .await?)
    }

    pub async fn status(&self) -> Result<Status, Error> {
        let schema = self.options.schema.clone();
        if !self.state.is_initialized(&self.client).await? {
            return Ok(Status {
                schema: schema.clone(),
                initialized: false,
                latest_schema: schema,
                in_flight: None,
                history: Vec::new(),
                backfill: Vec::new(),
                paused: false,
                next: "run `tandem init`".into(),
            });
        }
        let history = self.state.history(&self.client, &schema).await?;
        let in_flight = self.state.in_flight(&self.client, &schema).await?;
        let ready = match &in_flight {
            Some(r) => self.schema_exists(&r.version_schema).await?,
            None => true,
        };
        let backfill = match &in_flight {
            Some(r) => {
                self.state
                    .backfill_progress(&self.client, &schema, &r.name)
                    .await?
            }
            None => Vec::new(),
        };
        let paused = in_flight.as_ref().is_some_and(|r| r.paused);
        let next = match in_flight.as_ref().map(|r| r.phase) {
            Some(Phase::Started) if !ready => {
                "the start was interrupted before its version schema was ready: run `tandem backfill` to finish it (or `tandem rollback`)".to_string()
            }
            Some(Phase::Started) => {
                "deploy the new app version, then run `tandem complete` (or `tandem rollback`)"
                    .to_string()
            }
            Some(Phase::Completing) => {
                "the contract phase was interrupted: re-run `tandem complete`".to_string()
            }
            _ => "start the next migration with `tandem start FILE` or `tandem migrate DIR`"
                .to_string(),
        };
        Ok(Status {
            latest_schema: self.latest_schema().await?,
            in_flight: in_flight.as_ref().map(MigrationSummary::from),
            history: history.iter().map(MigrationSummary::from).collect(),
            schema,
            initialized: true,
            backfill,
            paused,
            next,
        })
    }
}

/// The phase names a plan's steps belong to, for printing.
pub fn phase_name(phase: PlanPhase) -> &'static str {
    match phase {
        PlanPhase::Start => "start",
        PlanPhase::Complete => "complete",
        PlanPhase::Rollback => "rollback",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_direct_connection_is_not_taken_for_a_pooler_and_checks_for_a_vanished_client() {
        let url = crate::test_server::admin_url();
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        assert_eq!(transaction_pooled(&client, &url).await.ok().unwrap(), None);
        let options = Options {
            schema: "public".into(),
            state_schema: "tandem".into(),
            role: None,
            exec: ExecOptions::default(),
        };
        let session = Session::connect(&url, options).await.ok().unwrap();
        let rows = session
            .client()
            .simple_query("SHOW client_connection_check_interval")
            .await
            .unwrap();
        let value = rows.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        });
        assert_eq!(value.as_deref(), Some("2s"));
    }
}
