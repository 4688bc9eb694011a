//! The `tandem` binary: parses arguments, calls tandem-pg, prints. No SQL here.

mod args;
mod convert;
mod create;
mod demo;
mod diff;
mod files;
mod history;
mod lint;
mod plan;
mod progress;
mod rehearsal;
mod render;
mod status;
mod style;
mod update;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use tandem_core::migration::Migration;
use tandem_core::plan::Phase;
use tandem_core::planner::{self, PlanInput};
use tandem_core::problem::Problem;
use tandem_core::schema::Schema;
use tandem_pg::executor::Event;
use tandem_pg::introspect::read_schema;
use tandem_pg::session::{Error, Options, Session};

use args::{Cli, Command, Global, Latest};
use lint::FileFindings;
use tandem_lint::Hazard;

/// A command's failure: what to print and the exit code (1 failure, 2 bad input).
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let mut message = e.to_string();
        if !has_hint(&message) {
            message.push_str(&format!("\n  hint: {}", hint_for(&e)));
        }
        Failure {
            code: if e.is_bad_input() { 2 } else { 1 },
            message,
        }
    }
}

fn has_hint(message: &str) -> bool {
    message.lines().any(|l| l.trim_start().starts_with("hint:"))
}

/// What to do next, for the errors whose message does not say it on a hint line.
fn hint_for(e: &Error) -> String {
    match e {
        Error::NotInitialized { state_schema } => format!(
            "run `tandem init` (with --state-schema \"{state_schema}\" if that is not the default)"
        ),
        Error::ConcurrentRun { .. } => {
            "wait for the other tandem command to finish, then run this one again".into()
        }
        Error::MigrationInFlight { .. } => {
            "run `tandem complete` (or `tandem rollback`) first; `tandem status` shows it".into()
        }
        Error::NoMigrationInFlight { .. } => {
            "`tandem status` shows what is applied; `tandem start FILE` begins a migration".into()
        }
        Error::AlreadyApplied { .. } => {
            "put the new change in a new migration file (`tandem create NAME`)".into()
        }
        Error::InvalidMigration(_) | Error::ContractBlocked { .. } => {
            "fix the file and check it with `tandem validate FILE`; nothing was changed".into()
        }
        Error::StartFailed { .. } => {
            "fix the cause shown above, then run `tandem start` again".into()
        }
        _ => "fix the cause shown above and run the command again; `tandem status` shows where the migration stands".into(),
    }
}

/// The generic next step for a failure that carries no hint of its own.
fn with_hint(failure: Failure) -> Failure {
    if has_hint(&failure.message) {
        return failure;
    }
    let hint = if failure.code == 2 {
        "fix the input shown above; `tandem validate` checks migration files without changing anything"
    } else {
        "fix the cause shown above and run the command again; `tandem status` shows where the migration stands"
    };
    Failure {
        message: format!("{}\n  hint: {hint}", failure.message),
        ..failure
    }
}

fn bad_input(problems: &[Problem]) -> Failure {
    let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    Failure {
        code: 2,
        message: lines.join("\n"),
    }
}

/// pgroll's environment names carry over where they mean the same as tandem's and tandem's
/// own are unset: `PGROLL_SCHEMA` for `TANDEM_SCHEMA` (`PGROLL_PG_URL` is read by
/// [`configured_url`]). `PGROLL_STATE_SCHEMA` does not: it names pgroll's own state, whose
/// layout is not tandem's.
fn carry_over_pgroll_environment() {
    if std::env::var_os("TANDEM_SCHEMA").is_none() {
        if let Some(schema) = std::env::var_os("PGROLL_SCHEMA") {
            std::env::set_var("TANDEM_SCHEMA", schema);
        }
    }
}

fn main() -> ExitCode {
    carry_over_pgroll_environment();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            let f = with_hint(f);
            eprintln!("{}", style::error_text(&f.message, style::Paint::stderr()));
            ExitCode::from(f.code)
        }
    }
}

fn options(global: &Global) -> Options {
    Options {
        schema: global.schema.clone(),
        state_schema: global.state_schema.clone(),
        role: global.role.clone(),
        exec: tandem_pg::executor::ExecOptions {
            lock_timeout: global.lock_timeout.map_or(
                tandem_pg::executor::LockTimeout::DEFAULT,
                tandem_pg::executor::LockTimeout::Fixed,
            ),
            lock_retry_for: global.lock_retry_for,
            backfill: tandem_pg::backfill::BackfillOptions {
                batch_size: global.backfill_batch_size.max(1),
                batch_time: global.backfill_batch_time,
                max_batch_rows: global.backfill_max_batch_rows.max(1),
                delay: global.backfill_delay,
                max_replication_lag: global.max_replication_lag,
                skip_triggers_when_safe: !global.backfill_fire_triggers,
                by_pages: true,
                workers: usize::from(global.backfill_workers),
            },
        },
    }
}

/// The connection string: `--postgres-url` / `TANDEM_PG_URL`, else pgroll's `PGROLL_PG_URL`
/// (so a pgroll user's environment carries over), else `DATABASE_URL`.
fn configured_url(global: &Global) -> Option<String> {
    global
        .postgres_url
        .clone()
        .or_else(|| std::env::var("PGROLL_PG_URL").ok())
        .or_else(|| std::env::var("DATABASE_URL").ok())
        .filter(|u| !u.is_empty())
}

fn url(global: &Global) -> Result<String, Failure> {
    configured_url(global).ok_or_else(|| Failure {
        code: 2,
        message: "no database given\n  hint: pass --postgres-url, or set TANDEM_PG_URL (or pgroll's PGROLL_PG_URL, or DATABASE_URL)".into(),
    })
}

async fn connect(global: &Global) -> Result<Session, Failure> {
    Ok(Session::connect(&url(global)?, options(global)).await?)
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let g = &cli.global;
    match cli.command {
        Command::Init => {
            connect(g).await?.init().await?;
            println!(
                "tandem is initialized (state schema \"{}\")",
                g.state_schema
            );
        }
        Command::Start {
            file,
            complete,
            json,
            allow_hazard,
        } => {
            let migration = files::load(&file).map_err(|p| bad_input(&p))?;
            // Before any connection: a refused migration changes nothing.
            let found = FileFindings::of(&file.display().to_string(), &migration, None);
            found.refuse_unless_allowed(&allow_hazard)?;
            if !json {
                found.warn(&allow_hazard);
            }
            let mut session = connect(g).await?;
            start(&mut session, &migration, complete, json, &found).await?;
        }
        Command::Complete { json } => {
            let mut session = connect(g).await?;
            let record = session.complete(&render::progress(json)).await?;
            report(
                json,
                serde_json::json!({"completed": record.name, "version_schema": record.version_schema}),
                &format!("migration \"{}\" is complete", record.name),
            );
        }
        Command::Backfill { json } => {
            let mut session = connect(g).await?;
            let text = if session.resume_start(&render::progress(json)).await? {
                "the start is finished: the new version schema is ready"
            } else {
                "nothing to resume: the migration in flight has finished its start"
            };
            report(
                json,
                serde_json::json!({"resumed": text.starts_with("the start")}),
                text,
            );
        }
        Command::Pause => {
            let name = connect(g).await?.set_paused(true).await?;
            println!(
                "the backfill of \"{name}\" pauses within one batch; `tandem resume` continues it"
            );
        }
        Command::Resume => {
            let name = connect(g).await?.set_paused(false).await?;
            println!("the backfill of \"{name}\" continues");
        }
        Command::Rollback { json } => {
            let mut session = connect(g).await?;
            let record = session.rollback(&render::progress(json)).await?;
            report(
                json,
                serde_json::json!({"rolled_back": record.name}),
                &format!("migration \"{}\" is rolled back", record.name),
            );
        }
        Command::Status { json } => {
            let status = connect(g).await?.status().await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&status).unwrap_or_default()
                );
            } else {
                print!("{}", render::status_text(&status));
            }
        }
        Command::Latest { what, local } => latest(g, what, local.as_deref()).await?,
        Command::Migrate {
            dir,
            complete,
            json,
            report,
            max_exclusive_ms,
            allow_hazard,
            expect_one,
        } => {
            let rehearsal = Rehearsal {
                report,
                max_exclusive_ms,
            };
            let options = MigrateOptions {
                complete,
                json,
                expect_one,
            };
            migrate(g, &dir, options, &rehearsal, &allow_hazard).await?
        }
        Command::Pull {
            dir,
            format,
            force,
            json,
        } => {
            history::pull(
                &connect(g).await?,
                &dir,
                format.map(Into::into),
                force,
                json,
            )
            .await?
        }
        Command::Baseline {
            name,
            dir,
            format,
            json,
        } => history::baseline(&mut connect(g).await?, &name, &dir, format.into(), json).await?,
        Command::Plan { file, json } => plan::run(g, &file, json).await?,
        Command::Diff(args) => diff::run(g, &args).await?,
        Command::Validate {
            path,
            json,
            allow_hazard,
        } => validate(g, &path, json, &allow_hazard).await?,
        Command::Demo { dir } => demo::run(&dir).await?,
        Command::Create {
            name,
            dir,
            yaml: _,
            json,
        } => new_migration(&dir, &name, json)?,
        Command::Update { dir, dry_run, json } => update::run(&dir, dry_run, json)?,
        Command::Convert { file, json, name } => convert::run(file.as_deref(), json, name)?,
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "tandem", &mut std::io::stdout());
        }
    }
    Ok(())
}

fn report(json: bool, value: serde_json::Value, text: &str) {
    if json {
        println!("{value}");
    } else {
        println!("{text}");
    }
}

async fn start(
    session: &mut Session,
    migration: &Migration,
    complete: bool,
    json: bool,
    found: &FileFindings,
) -> Result<(), Failure> {
    let format = tandem_core::load::Format::from_path(&found.file);
    let plan = session
        .start_from_file(migration, format, &render::progress(json))
        .await?;
    if complete {
        session.complete(&render::progress(json)).await?;
    }
    let text = outcome_text(migration, &plan.version_schema, complete);
    report(
        json,
        serde_json::json!({"migration": migration.name, "version_schema": plan.version_schema, "complete": complete, "findings": found.json()}),
        &text,
    );
    Ok(())
}

fn outcome_text(migration: &Migration, version_schema: &str, complete: bool) -> String {
    if complete {
        format!(
            "migration \"{}\" is complete; version schema: {version_schema}",
            migration.name
        )
    } else {
        format!(
            "migration \"{}\" started; new version schema: {version_schema}\n  point the new app version at it (search_path), then run `tandem complete`",
            migration.name
        )
    }
}

/// What `migrate` records and enforces for a rehearsal.
struct Rehearsal {
    report: Option<std::path::PathBuf>,
    max_exclusive_ms: Option<u64>,
}

struct MigrateOptions {
    complete: bool,
    json: bool,
    expect_one: bool,
}

async fn migrate(
    g: &Global,
    dir: &Path,
    options: MigrateOptions,
    rehearsal: &Rehearsal,
    allowed: &[Hazard],
) -> Result<(), Failure> {
    let MigrateOptions {
        complete,
        json,
        expect_one,
    } = options;
    let migrations = files::load_dir_with_paths(dir).map_err(|p| bad_input(&p))?;
    let mut session = connect(g).await?;
    let applied: Vec<String> = session
        .history()
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect();
    let pending: Vec<(&Migration, FileFindings)> = migrations
        .iter()
        .filter(|(_, m)| !applied.contains(&m.name))
        .map(|(path, m)| (m, FileFindings::of(&path.display().to_string(), m, None)))
        .collect();
    if expect_one && pending.len() != 1 {
        let names: Vec<&str> = pending.iter().map(|(m, _)| m.name.as_str()).collect();
        return Err(Failure {
            code: 2,
            message: format!(
                "--expect-one: {} migration(s) are pending, not one{}; nothing was changed",
                pending.len(),
                if names.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", names.join(", "))
                }
            ),
        });
    }
    // Every pending file is linted before the first one starts: a refusal changes nothing.
    for (_, found) in &pending {
        found.refuse_unless_allowed(allowed)?;
    }
    let recorder = rehearsal::Recorder::default();
    let progress = render::progress(json);
    let observer = |event: Event| {
        recorder.record(&event);
        progress(event)
    };
    let outcome = apply_pending(
        &mut session,
        &pending,
        allowed,
        complete,
        json,
        rehearsal.max_exclusive_ms,
        (&recorder, &observer),
    )
    .await;
    if let Some(path) = &rehearsal.report {
        let error = outcome.as_ref().err().map(|f| f.message.clone());
        write_report(path, &recorder.report(rehearsal.max_exclusive_ms, error))?;
    }
    let names = outcome?;
    if json {
        println!(
            "{}",
            serde_json::json!({"applied": names, "completed_last": complete})
        );
    } else if names.is_empty() {
        println!("nothing to migrate: every file is applied");
    }
    Ok(())
}

/// Starts (and, but for the last unless `complete`, completes) each pending migration in
/// order; returns their names. Over `max_exclusive_ms`, it stops: a start that went over is
/// rolled back, a complete that went over has already contracted and is only reported.
async fn apply_pending(
    session: &mut Session,
    pending: &[(&Migration, FileFindings)],
    allowed: &[Hazard],
    complete: bool,
    json: bool,
    max_exclusive_ms: Option<u64>,
    (recorder, observer): (&rehearsal::Recorder, &(dyn Fn(Event) + Send + Sync)),
) -> Result<Vec<String>, Failure> {
    let limit = max_exclusive_ms.map(std::time::Duration::from_millis);
    let over = |phase: &str| {
        let step = recorder.first_over(limit?)?;
        Some(format!(
            "the {phase} of \"{}\" held an ACCESS EXCLUSIVE lock for {:.1} ms, over --max-exclusive-ms {}: {}",
            step.migration,
            step.duration_ms,
            max_exclusive_ms.unwrap_or_default(),
            step.description
        ))
    };
    let mut names = Vec::new();
    for (i, (migration, found)) in pending.iter().enumerate() {
        let completes = i + 1 < pending.len() || complete;
        if !json {
            eprintln!("migration \"{}\":", migration.name);
            found.warn(allowed);
        }
        recorder.begin(&migration.name, Phase::Start);
        let format = tandem_core::load::Format::from_path(&found.file);
        let plan = session.start_from_file(migration, format, observer).await?;
        if let Some(message) = over("start") {
            recorder.begin(&migration.name, Phase::Rollback);
            session.rollback(observer).await?;
            return Err(Failure {
                code: 1,
                message: format!("{message}\n  the start was rolled back; later migrations were not run\n  hint: make the step cheaper (a smaller table in one migration, an index built separately) or raise the limit if this hold is acceptable"),
            });
        }
        if completes {
            recorder.begin(&migration.name, Phase::Complete);
            session.complete(observer).await?;
            if let Some(message) = over("complete") {
                return Err(Failure {
                    code: 1,
                    message: format!("{message}\n  the contract had already run, so it stays; later migrations were not run\n  hint: look at the step named above in the report, or raise the limit if this hold is acceptable"),
                });
            }
        }
        if !json {
            println!(
                "{}",
                outcome_text(migration, &plan.version_schema, completes)
            );
        }
        names.push(migration.name.clone());
    }
    Ok(names)
}

fn write_report(path: &Path, report: &rehearsal::Report) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(report).unwrap_or_default();
    std::fs::write(path, text + "\n").map_err(|e| Failure {
        code: 1,
        message: format!("cannot write the report {}: {e}", path.display()),
    })
}

async fn latest(g: &Global, what: Latest, local: Option<&Path>) -> Result<(), Failure> {
    let (schema, version) = match local {
        Some(dir) => {
            let migrations = files::load_dir(dir).map_err(|p| bad_input(&p))?;
            let last = migrations.last();
            (
                last.map(|m| m.version_schema_name(&g.schema))
                    .unwrap_or_else(|| g.schema.clone()),
                last.map(|m| m.name.clone()),
            )
        }
        None => {
            let session = connect(g).await?;
            (
                session.latest_schema().await?,
                session.latest_version().await?,
            )
        }
    };
    match what {
        Latest::Schema => println!("{schema}"),
        Latest::Version => println!("{}", version.unwrap_or_default()),
        Latest::Url => {
            println!("{}", url_with_search_path(&url(g)?, &schema));
            // The URL sets search_path as a startup option, which a transaction pooler drops
            // (or refuses): said on stderr, so scripts that read stdout are unaffected.
            eprintln!(
                "note: this URL picks the version for the whole session; behind a transaction pooler \
                 (PgBouncer in transaction mode, RDS Proxy, pgcat) startup options are dropped or refused, \
                 so set it in every transaction instead: SET LOCAL search_path = {}, {} \
                 (tandem-client does this; see docs/app-integration.md#connection-poolers)",
                tandem_core::ident::quote_ident(&schema),
                tandem_core::ident::quote_ident(&g.schema)
            );
        }
    }
    Ok(())
}

/// The connection string with `options=-c search_path=<schema>` added, in the string's own
/// form (URL query parameter or key=value pair).
fn url_with_search_path(url: &str, schema: &str) -> String {
    let path = tandem_core::ident::quote_ident(schema);
    let option = format!("-c search_path={path}");
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}options={}", percent_encode(&option))
    } else {
        let escaped = option.replace('\\', "\\\\").replace('\'', "\\'");
        format!("{url} options='{escaped}'")
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Checks files; with a connection, also against the live schema and each other. Lints every
/// file: a refusal that `allowed` does not name fails validation as a problem does.
async fn validate(g: &Global, path: &Path, json: bool, allowed: &[Hazard]) -> Result<(), Failure> {
    let loaded = if path.is_dir() {
        files::load_dir_with_paths(path)
    } else {
        files::load(path).map(|m| vec![(path.to_path_buf(), m)])
    };
    let loaded = match loaded {
        Ok(m) => m,
        Err(problems) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"valid": false, "problems": problems, "findings": []})
                );
                return Err(Failure {
                    code: 2,
                    message: format!("{} problem(s) found", problems.len()),
                });
            }
            return Err(bad_input(&problems));
        }
    };
    let (problems, schemas) = check_against_database(g, &loaded).await?;
    let found: Vec<FileFindings> = loaded
        .iter()
        .zip(&schemas)
        .map(|((path, m), schema)| {
            FileFindings::of(&path.display().to_string(), m, schema.as_ref())
        })
        .collect();
    let refused: usize = found
        .iter()
        .map(|f| tandem_lint::refusals(&f.findings, allowed).len())
        .sum();
    if json {
        let findings: Vec<serde_json::Value> = found.iter().flat_map(|f| f.json()).collect();
        println!(
            "{}",
            serde_json::json!({"valid": problems.is_empty() && refused == 0, "migrations": loaded.len(), "problems": problems, "findings": findings})
        );
    } else {
        found.iter().for_each(|f| print!("{}", f.text(allowed)));
    }
    if !problems.is_empty() {
        return Err(bad_input(&problems));
    }
    if refused > 0 {
        return Err(Failure {
            code: 2,
            message: format!(
                "{refused} hazard(s) refused: `tandem start` would refuse them too\n  hint: rewrite each as its hint says, or pass --allow-hazard NAME to accept it"
            ),
        });
    }
    if !json {
        println!("{} migration file(s) are valid", loaded.len());
    }
    Ok(())
}

/// With a connection: the problems of the files not yet applied against the live schema and
/// the files before them, and the schema each file starts from (`None` where unknown).
async fn check_against_database(
    g: &Global,
    loaded: &[(std::path::PathBuf, Migration)],
) -> Result<(Vec<Problem>, Vec<Option<Schema>>), Failure> {
    let mut problems = Vec::new();
    let mut schemas = vec![None; loaded.len()];
    if configured_url(g).is_none() {
        return Ok((problems, schemas));
    }
    let session = connect(g).await?;
    let applied: Vec<String> = session
        .history()
        .await
        .map(|h| h.into_iter().map(|r| r.name).collect())
        .unwrap_or_default();
    let mut schema = read_schema(session.client(), &g.schema)
        .await
        .map_err(Error::from)?;
    for (i, (_, m)) in loaded.iter().enumerate() {
        if applied.contains(&m.name) {
            continue;
        }
        schemas[i] = Some(schema.clone());
        match planner::plan(&PlanInput {
            schema: &schema,
            migration: m,
            previous_version_schema: None,
        }) {
            // Raw SQL changes what the planner cannot see: later files are checked for
            // their format only.
            Ok(plan) if plan.views_from_live_schema => break,
            Ok(plan) => {
                let dependents = session.dependents(&plan).await?;
                problems.extend(
                    tandem_pg::session::blocking_problems(&dependents)
                        .into_iter()
                        .map(|mut p| {
                            p.file = Some(m.name.clone());
                            p
                        }),
                );
                schema = plan.schema_after;
            }
            Err(found) => problems.extend(found.into_iter().map(|mut p| {
                p.file = Some(m.name.clone());
                p
            })),
        }
    }
    Ok((problems, schemas))
}

/// `tandem create`: writes the file, prints its path on stdout and the next steps on stderr.
fn new_migration(dir: &Path, name: &str, json: bool) -> Result<(), Failure> {
    let format = if json {
        create::Format::Json
    } else {
        create::Format::Yaml
    };
    let created = create::create(dir, name, format)?;
    let paint = style::Paint::stderr();
    if let Some(schema) = &created.schema_written {
        eprintln!(
            "{} {} (the JSON Schema editors use to check the file)",
            paint.dim("wrote"),
            schema.display()
        );
    }
    println!("{}", created.file.display());
    eprintln!(
        "{} add its operations (tandem's docs/operations/ describes each), then run `tandem validate {}` and `tandem plan {}`",
        paint.cyan("next:"),
        created.file.display(),
        created.file.display()
    );
    Ok(())
}
