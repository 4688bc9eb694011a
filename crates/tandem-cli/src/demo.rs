//! `tandem demo`: the example migrations against a throwaway PostgreSQL, each one started,
//! shown with the old and the new app version writing and reading the same rows side by side,
//! and completed; one of them is also rolled back and started again on the way. No SQL here:
//! the demo's statements live in `tandem_pg::demo`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tandem_core::migration::{Column, Migration, Operation};
use tandem_pg::cluster::LocalCluster;
use tandem_pg::demo::{DemoDb, Rows, Side, SideBySide, TableRead};
use tandem_pg::executor::{Event, ExecOptions};
use tandem_pg::session::{Options, Session};

use crate::{files, render, Failure};

const DATABASE: &str = "tandem_demo";
const SCHEMA: &str = "public";
/// Longer cells are cut, so that tables stay readable in a terminal.
const MAX_CELL: usize = 32;

/// A migration file with the words its author wrote at its top.
struct Example {
    migration: Migration,
    notes: Vec<String>,
}

pub async fn run(dir: &Path) -> Result<(), Failure> {
    let began = Instant::now();
    let examples = load(dir)?;
    println!(
        "tandem demo: {} migrations from {}, against a throwaway PostgreSQL.\n",
        examples.len(),
        dir.display()
    );
    println!("Starting a temporary PostgreSQL server (removed again at the end)...");
    let cluster = tokio::task::spawn_blocking(LocalCluster::start)
        .await
        .map_err(|e| failure(format!("the server start panicked: {e}")))?
        .map_err(|e| failure(e.to_string()))?;
    let outcome = demo(&cluster, &examples).await;
    // Also on error; Drop and the cluster's watchdog would do it too, but this waits for it.
    let stopped = tokio::task::spawn_blocking(move || {
        let mut cluster = cluster;
        cluster.stop();
    })
    .await;
    outcome?;
    if stopped.is_err() {
        return Err(failure("stopping the temporary server failed".into()));
    }
    println!("The temporary server is stopped and its files are removed.");
    println!("\nDemo finished in {}.", seconds(began.elapsed()));
    Ok(())
}

fn failure(message: String) -> Failure {
    Failure { code: 1, message }
}

fn count(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Every file of `dir`, validated before the server starts.
fn load(dir: &Path) -> Result<Vec<Example>, Failure> {
    let paths: Vec<PathBuf> = files::migration_files(dir).map_err(|m| Failure {
        code: 2,
        message: format!("{m}\n  hint: run the demo from the repository root, or pass --dir"),
    })?;
    if paths.is_empty() {
        return Err(Failure {
            code: 2,
            message: format!(
                "no migration files (.json, .yaml, .yml) in {}",
                dir.display()
            ),
        });
    }
    let mut examples = Vec::new();
    let mut problems = Vec::new();
    for path in &paths {
        match files::load(path) {
            Ok(migration) => examples.push(Example {
                migration,
                notes: notes(path),
            }),
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(crate::bad_input(&problems));
    }
    Ok(examples)
}

/// The comment lines at the top of a YAML file, without the editor's schema hint.
fn notes(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .map(|l| l.trim_start().trim_start_matches('#').trim().to_string())
        .filter(|l| !l.is_empty() && !l.starts_with("yaml-language-server"))
        .collect()
}

async fn demo(cluster: &LocalCluster, examples: &[Example]) -> Result<(), Failure> {
    let url = cluster
        .create_database(DATABASE)
        .await
        .map_err(|e| failure(e.to_string()))?;
    let mut session = Session::connect(
        &url,
        Options {
            schema: SCHEMA.into(),
            state_schema: "tandem".into(),
            role: None,
            exec: ExecOptions::default(),
        },
    )
    .await?;
    session.init().await?;
    println!("Created database \"{DATABASE}\" and ran `tandem init`.");
    let mut db = DemoDb::connect(&url).await?;
    let rollback_at = rollback_target(examples);

    for (i, example) in examples.iter().enumerate() {
        let m = &example.migration;
        let began = Instant::now();
        println!(
            "\n{}",
            rule(&format!("{}/{} {}", i + 1, examples.len(), m.name))
        );
        for line in &example.notes {
            println!("{line}");
        }
        println!("What it does:");
        for op in &m.operations {
            println!("  * {}", describe(op));
        }
        let latest = session.latest_schema().await?;
        let old = (latest != SCHEMA).then_some(latest);
        let new = m.version_schema_name(SCHEMA);

        if Some(i) == rollback_at {
            show_rollback(&mut session, &db, m, &new).await?;
        }

        println!("\n`tandem start {}`:", m.name);
        let steps = AtomicUsize::new(0);
        let show = observer(&steps);
        session.start(m, &show).await?;
        println!(
            "  Started in {}. The new version schema \"{new}\" is ready.",
            count(steps.load(Ordering::Relaxed), "step")
        );
        match &old {
            Some(o) => println!(
                "  Apps on the previous version keep using \"{o}\"; both work at the same time."
            ),
            None => println!("  There is no earlier version: this is the app's first schema."),
        }

        let sample = db.load_sample_rows(&m.name, &new).await?;
        if sample > 0 {
            println!("  Loaded {sample} sample rows through \"{new}\".");
        }
        let result = db.side_by_side(m, old.as_deref(), &new).await?;
        print_side_by_side(&result);

        println!("\n`tandem complete`:");
        let steps = AtomicUsize::new(0);
        let show = observer(&steps);
        session.complete(&show).await?;
        let gone = match &old {
            Some(o) if db.version_tables(o).await?.is_none() => {
                format!(" The previous version schema \"{o}\" is gone.")
            }
            _ => String::new(),
        };
        let done = match steps.load(Ordering::Relaxed) {
            0 => "Completed: there was nothing to contract.".to_string(),
            n => format!("Completed in {}.", count(n, "step")),
        };
        println!(
            "  {done}{gone} ({} for this migration)",
            seconds(began.elapsed())
        );
    }

    println!("\n{}", rule("final status (`tandem status`)"));
    print!("{}", render::status_text(&session.status().await?));
    Ok(())
}

/// The first migration that backfills a column, else the last: it is the one rolled back once.
fn rollback_target(examples: &[Example]) -> Option<usize> {
    examples
        .iter()
        .position(|e| {
            e.migration.operations.iter().any(|op| {
                matches!(op, Operation::AddColumn(a) if a.up.is_some())
                    || matches!(op, Operation::DropColumn(_))
            })
        })
        .or_else(|| examples.len().checked_sub(1))
}

/// start → the version schema is there → rollback → it is gone; the caller starts it again.
async fn show_rollback(
    session: &mut Session,
    db: &DemoDb,
    m: &Migration,
    new: &str,
) -> Result<(), Failure> {
    println!("\nFirst a rehearsal of `tandem rollback`.");
    let steps = AtomicUsize::new(0);
    let show = observer(&steps);
    println!("`tandem start {}`:", m.name);
    session.start(m, &show).await?;
    println!("  {}", schema_presence(db, new).await?);
    println!("`tandem rollback`:");
    session.rollback(&show).await?;
    println!("  {}", schema_presence(db, new).await?);
    println!(
        "  Everything start created is removed again; the previous version never noticed. Now for real:"
    );
    Ok(())
}

async fn schema_presence(db: &DemoDb, schema: &str) -> Result<String, Failure> {
    Ok(match db.version_tables(schema).await? {
        Some(tables) => format!(
            "Version schema \"{schema}\" exists, with views: {}.",
            tables.join(", ")
        ),
        None => format!("Version schema \"{schema}\" does not exist."),
    })
}

/// Prints tandem's steps as they run, briefly, and counts them.
fn observer(steps: &AtomicUsize) -> impl Fn(Event) + Send + Sync + '_ {
    move |event| match event {
        Event::Step { description } => {
            steps.fetch_add(1, Ordering::Relaxed);
            // One line per view and per copied default would drown the interesting steps.
            if !(description.starts_with("create view ")
                || description.starts_with("copy the default of "))
            {
                println!("  - {description}");
            }
        }
        Event::BackfillProgress { table, rows, .. } => {
            println!("    backfilled {rows} rows of \"{table}\"");
        }
        Event::LockRetry { .. }
        | Event::BackfillWaiting { .. }
        | Event::BackfillLag { .. }
        | Event::BackfillNotice { .. }
        | Event::BackfillTriggersFire { .. } => render::progress(false)(event),
        Event::StepDone { .. } | Event::BackfillDone { .. } => {}
    }
}

fn rule(title: &str) -> String {
    let line = "=".repeat(72usize.saturating_sub(title.chars().count() + 4).max(3));
    format!("== {title} {line}")
}

/// One operation in plain words.
fn describe(op: &Operation) -> String {
    match op {
        Operation::CreateTable(t) => {
            let columns: Vec<String> = t.columns.iter().map(column_words).collect();
            let constraints = t
                .constraints
                .iter()
                .flatten()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>();
            let mut s = format!("create table {} with {}", t.name, columns.join(", "));
            if !constraints.is_empty() {
                s.push_str(&format!("; constraints {}", constraints.join(", ")));
            }
            s
        }
        Operation::AddColumn(a) => {
            let mut s = format!("add column {}.{}", a.table, column_words(&a.column));
            if let Some(up) = &a.up {
                s.push_str(&format!(
                    "; existing rows, and rows the old version writes, get: {up}"
                ));
            }
            s
        }
        Operation::DropColumn(d) => {
            let mut s = format!(
                "drop column {}.{} (the old version keeps it until complete)",
                d.table, d.column
            );
            if let Some(down) = &d.down {
                s.push_str(&format!("; rows the new version writes get: {down}"));
            }
            s
        }
        Operation::RenameColumn(r) => format!(
            "rename column {}.{} to {} (the old version keeps the old name)",
            r.table, r.from, r.to
        ),
        Operation::RenameTable(r) => format!(
            "rename table {} to {} (the old version keeps the old name)",
            r.from, r.to
        ),
        Operation::DropTable(d) => format!(
            "drop table {} (set aside at start, still used by the old version; dropped at complete)",
            d.name
        ),
        Operation::Sql(s) => {
            let when = if s.on_complete.unwrap_or(false) {
                "at complete"
            } else {
                "at start"
            };
            let first = s.up.lines().next().unwrap_or_default().trim();
            let more = if s.up.trim().lines().count() > 1 {
                " ..."
            } else {
                ""
            };
            let undo = if s.down.is_some() {
                ", with SQL to undo it on rollback"
            } else {
                ""
            };
            format!("run SQL {when}: {first}{more}{undo}")
        }
        other => format!("{} on {}", other.key(), touched(other)),
    }
}

fn touched(op: &Operation) -> String {
    serde_json::to_value(op)
        .ok()
        .and_then(|v| {
            let body = v.as_object()?.values().next()?.clone();
            let table = body.get("table").or_else(|| body.get("name"))?;
            table.as_str().map(String::from)
        })
        .unwrap_or_default()
}

fn column_words(c: &Column) -> String {
    let mut words = vec![c.name.clone(), c.type_name.clone()];
    if c.is_pk() {
        words.push("primary key".into());
    } else if c.is_nullable() {
        words.push("nullable".into());
    } else {
        words.push("not null".into());
    }
    if c.is_unique() {
        words.push("unique".into());
    }
    if let Some(d) = &c.default {
        words.push(format!("default {d}"));
    }
    if let Some(check) = &c.check {
        words.push(format!("check ({})", check.constraint));
    }
    if let Some(r) = &c.references {
        words.push(format!("references {}({})", r.table, r.column));
    }
    if let Some(g) = &c.generated {
        match (&g.expression, &g.identity) {
            (Some(e), _) => words.push(format!("generated as ({e})")),
            (None, Some(_)) => words.push("identity".into()),
            (None, None) => {}
        }
    }
    words.join(" ")
}

fn print_side_by_side(result: &SideBySide) {
    if !result.writes.is_empty() {
        println!("\nBoth app versions write:");
    }
    for w in &result.writes {
        println!(
            "  {} app (search_path {}), {}:",
            match w.side {
                Side::Old => "Old",
                Side::New => "New",
            },
            w.version_schema,
            count(w.rows, "row")
        );
        println!("    {}", w.sql);
        if !w.params.is_empty() {
            println!("    with {}", w.params.join(", "));
        }
    }
    println!("\nAnd both read the same rows:");
    for t in &result.tables {
        println!("  Base table {}:", t.base_table);
        if let Some(old) = &t.old {
            print_read("old", old);
        }
        print_read("new", &t.new);
    }
}

fn print_read(side: &str, read: &TableRead) {
    match &read.table {
        None => println!(
            "    the {side} version ({}) has no such table",
            read.version_schema
        ),
        Some(name) => {
            println!(
                "    through the {side} version, as {}.{}:",
                read.version_schema, name
            );
            for line in table_lines(&read.rows) {
                println!("      {line}");
            }
        }
    }
}

/// A small aligned table, psql style.
fn table_lines(rows: &Rows) -> Vec<String> {
    let cell = |v: &Option<String>| match v {
        None => "NULL".to_string(),
        Some(s) if s.chars().count() > MAX_CELL => {
            let cut: String = s.chars().take(MAX_CELL - 3).collect();
            format!("{cut}...")
        }
        Some(s) => s.clone(),
    };
    let cells: Vec<Vec<String>> = rows
        .rows
        .iter()
        .map(|r| r.iter().map(cell).collect())
        .collect();
    let widths: Vec<usize> = rows
        .columns
        .iter()
        .enumerate()
        .map(|(i, name)| {
            cells
                .iter()
                .map(|r| r.get(i).map_or(0, |c| c.chars().count()))
                .chain([name.chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |values: Vec<&str>| {
        values
            .iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(rows.columns.iter().map(String::as_str).collect())];
    out.push(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("-+-"),
    );
    for r in &cells {
        out.push(line(r.iter().map(String::as_str).collect()));
    }
    if cells.is_empty() {
        out.push("(no rows)".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned() {
        let rows = Rows {
            columns: vec!["id".into(), "name".into()],
            rows: vec![
                vec![Some("1".into()), Some("Alice Smith".into())],
                vec![Some("10".into()), None],
            ],
        };
        assert_eq!(
            table_lines(&rows),
            [
                "id | name",
                "---+------------",
                "1  | Alice Smith",
                "10 | NULL",
            ]
        );
    }
}
