//! `tandem update DIR`: rewrites migration files of an older pgroll format into the current
//! one, file by file; current files are left untouched. Every file is rewritten in memory
//! and checked to mean the same (it loads into the same migration) before any is written.

use std::path::{Path, PathBuf};

use tandem_core::load::{load_migration, Format};
use tandem_core::update::update_migration;

use crate::{files, Failure};

struct Rewrite {
    path: PathBuf,
    changes: Vec<String>,
    text: String,
}

pub fn run(dir: &Path, dry_run: bool, json: bool) -> Result<(), Failure> {
    let paths = files::migration_files(dir).map_err(|message| Failure { code: 2, message })?;
    let mut rewrites = Vec::new();
    let mut errors = Vec::new();
    for path in &paths {
        match rewrite(path) {
            Ok(Some(r)) => rewrites.push(r),
            Ok(None) => {}
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    if !errors.is_empty() {
        return Err(Failure {
            code: 2,
            message: format!(
                "{}\n  nothing was written\n  hint: fix the files above (`tandem validate FILE` shows every problem), then run `tandem update` again",
                errors.join("\n")
            ),
        });
    }
    if !dry_run {
        for r in &rewrites {
            std::fs::write(&r.path, &r.text).map_err(|e| Failure {
                code: 1,
                message: format!("cannot write {}: {e}", r.path.display()),
            })?;
        }
    }
    if json {
        let files: Vec<serde_json::Value> = rewrites
            .iter()
            .map(|r| serde_json::json!({"file": r.path.display().to_string(), "changes": r.changes, "written": !dry_run}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"files": files, "checked": paths.len(), "updated": rewrites.len(), "dry_run": dry_run})
        );
        return Ok(());
    }
    let verb = if dry_run { "would update" } else { "updated" };
    for r in &rewrites {
        println!("{verb} {}", r.path.display());
        for change in &r.changes {
            println!("  - {change}");
        }
    }
    println!(
        "{} of {} file(s) {verb}; the others need no change (a top-level `name` that differs from its file's name stays: it is the name the migration was applied under)",
        rewrites.len(),
        paths.len()
    );
    Ok(())
}

/// The file in the current format, or `None` when it already is.
fn rewrite(path: &Path) -> Result<Option<Rewrite>, String> {
    let display = path.display().to_string();
    let format = Format::from_path(&display).ok_or("not a migration file")?;
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let before = load_migration(&display, stem, &text, format).map_err(|problems| {
        problems
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    })?;
    let mut value: serde_json::Value = match format {
        Format::Json => serde_json::from_str(&text).map_err(|e| e.to_string())?,
        Format::Yaml => serde_norway::from_str(&text).map_err(|e| e.to_string())?,
    };
    let changes = update_migration(&mut value, stem);
    if changes.is_empty() {
        return Ok(None);
    }
    let new_text = match format {
        Format::Json => serde_json::to_string_pretty(&value).map_err(|e| e.to_string())? + "\n",
        // The comment lines at the top (`# yaml-language-server: $schema=…`) are kept; YAML
        // comments elsewhere cannot survive a rewrite.
        Format::Yaml => {
            let header: String = text
                .lines()
                .take_while(|l| l.starts_with('#'))
                .map(|l| format!("{l}\n"))
                .collect();
            header + &serde_norway::to_string(&value).map_err(|e| e.to_string())?
        }
    };
    match load_migration(&display, stem, &new_text, format) {
        Ok(after) if after == before => Ok(Some(Rewrite {
            path: path.to_path_buf(),
            changes,
            text: new_text,
        })),
        _ => Err("its rewrite would not mean the same migration; left as it is".to_string()),
    }
}
