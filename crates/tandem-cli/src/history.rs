//! `tandem pull DIR` writes the applied history back out as migration files; `tandem
//! baseline NAME DIR` records a database created before tandem as its starting point.

use std::path::{Path, PathBuf};

use tandem_core::baseline::file_text;
use tandem_core::load::Format;
use tandem_core::migration::Migration;
use tandem_pg::session::Session;

use crate::{files, render, Failure};

/// What `pull` did with one applied migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pulled {
    Written,
    Unchanged,
    Overwritten,
}

pub async fn pull(
    session: &Session,
    dir: &Path,
    format: Option<Format>,
    force: bool,
    json: bool,
) -> Result<(), Failure> {
    let mut applied = Vec::new();
    for record in session.history().await? {
        let migration: Migration =
            serde_json::from_value(record.migration).map_err(|e| Failure {
                code: 1,
                message: format!(
                    "cannot read the recorded migration \"{}\": {e}",
                    record.name
                ),
            })?;
        // `--format` forces one format; else the one the migration was applied from.
        let recorded = match record.file_format.as_deref() {
            Some("json") => Some(Format::Json),
            Some("yaml") => Some(Format::Yaml),
            _ => None,
        };
        applied.push((migration, format.or(recorded).unwrap_or(Format::Yaml)));
    }
    std::fs::create_dir_all(dir).map_err(|e| io_failure(dir, e))?;
    // Every file is checked before any is written: a refusal leaves the folder as it was.
    let mut plan = Vec::new();
    let mut conflicts = Vec::new();
    for (migration, format) in &applied {
        let format = *format;
        let (path, outcome) = match existing_file(dir, &migration.name)? {
            None => (dir.join(file_name(migration, format)), Pulled::Written),
            Some(path) => match files::load(&path) {
                Ok(on_disk) if &on_disk == migration => (path, Pulled::Unchanged),
                _ if force => (path, Pulled::Overwritten),
                _ => {
                    conflicts.push(path.display().to_string());
                    continue;
                }
            },
        };
        plan.push((migration, format, path, outcome));
    }
    if !conflicts.is_empty() {
        return Err(Failure {
            code: 1,
            message: format!(
                "these files differ from the migrations the database applied under the same names; nothing was written:\n  {}\n  hint: compare them with `tandem status --json`, or pass --force to replace them with what was applied",
                conflicts.join("\n  ")
            ),
        });
    }
    let mut report = Vec::new();
    for (migration, format, path, outcome) in plan {
        if outcome != Pulled::Unchanged {
            let text = file_text(migration, format_of(&path).unwrap_or(format));
            std::fs::write(&path, text).map_err(|e| io_failure(&path, e))?;
        }
        report.push((migration.name.clone(), path, outcome));
    }
    if json {
        let files: Vec<_> = report
            .iter()
            .map(|(name, path, outcome)| serde_json::json!({"migration": name, "file": path, "outcome": outcome}))
            .collect();
        println!("{}", serde_json::json!({ "files": files }));
    } else if report.is_empty() {
        println!("no migration is applied yet: nothing to pull");
    } else {
        for (_, path, outcome) in &report {
            let what = match outcome {
                Pulled::Written => "wrote",
                Pulled::Unchanged => "unchanged",
                Pulled::Overwritten => "overwrote",
            };
            println!("{what:>10} {}", path.display());
        }
    }
    Ok(())
}

pub async fn baseline(
    session: &mut Session,
    name: &str,
    dir: &Path,
    format: Format,
    json: bool,
) -> Result<(), Failure> {
    crate::create::check_name(name)?;
    std::fs::create_dir_all(dir).map_err(|e| io_failure(dir, e))?;
    if let Some(path) = existing_file(dir, name)? {
        return Err(Failure {
            code: 2,
            message: format!(
                "{} already exists; nothing was changed\n  hint: pick another name for the baseline",
                path.display()
            ),
        });
    }
    let baseline = session.baseline(name, &render::progress(json)).await?;
    let path = dir.join(file_name(&baseline.migration, format));
    let text = file_text(&baseline.migration, format);
    std::fs::write(&path, text).map_err(|e| Failure {
        code: 1,
        message: format!(
            "the baseline is recorded in the database, but {} could not be written: {e}\n  hint: `tandem pull {}` writes it",
            path.display(),
            dir.display()
        ),
    })?;
    if json {
        println!(
            "{}",
            serde_json::json!({"baseline": name, "file": path, "version_schema": baseline.version_schema})
        );
        return Ok(());
    }
    println!(
        "baseline \"{name}\" recorded; version schema: {}\nwrote {}: its SQL (from pg_dump --schema-only) recreates the schema on an empty database",
        baseline.version_schema,
        path.display()
    );
    Ok(())
}

fn file_name(migration: &Migration, format: Format) -> String {
    format!("{}.{}", migration.name, format_extension(format))
}

fn format_extension(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::Yaml => "yaml",
    }
}

fn format_of(path: &Path) -> Option<Format> {
    Format::from_path(&path.display().to_string())
}

/// The migration file of DIR for the migration `name`, whatever its extension.
fn existing_file(dir: &Path, name: &str) -> Result<Option<PathBuf>, Failure> {
    let files = files::migration_files(dir).map_err(|message| Failure { code: 1, message })?;
    Ok(files
        .into_iter()
        .find(|p| p.file_stem().and_then(|s| s.to_str()) == Some(name)))
}

fn io_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure {
        code: 1,
        message: format!("cannot write {}: {e}", path.display()),
    }
}
