//! Reading migration files from disk; the parsing and checking happen in tandem-core.

use std::path::{Path, PathBuf};

use tandem_core::load::{load_migration, Format};
use tandem_core::migration::Migration;
use tandem_core::problem::Problem;

/// Loads one migration file, or every problem found in it.
pub fn load(path: &Path) -> Result<Migration, Vec<Problem>> {
    let display = path.display().to_string();
    let file_problem = |message: String| {
        let mut p = Problem::new("", message);
        p.file = Some(display.clone());
        vec![p]
    };
    let format = Format::from_path(&display).ok_or_else(|| {
        file_problem("a migration file must end in .json, .yaml or .yml".to_string())
    })?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| file_problem(format!("cannot read the file: {e}")))?;
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    load_migration(&display, stem, &text, format)
}

/// The migration files of `dir` (.json, .yaml, .yml), in file-name order.
pub fn migration_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && Format::from_path(&p.display().to_string()).is_some())
        .collect();
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(files)
}

/// Loads every file of `dir`, collecting the problems of all of them.
pub fn load_dir(dir: &Path) -> Result<Vec<Migration>, Vec<Problem>> {
    load_dir_with_paths(dir).map(|loaded| loaded.into_iter().map(|(_, m)| m).collect())
}

/// Like [`load_dir`], each migration with the file it came from (for messages).
pub fn load_dir_with_paths(dir: &Path) -> Result<Vec<(PathBuf, Migration)>, Vec<Problem>> {
    let files = migration_files(dir).map_err(|m| vec![Problem::new("", m)])?;
    if files.is_empty() {
        return Err(vec![Problem::new(
            "",
            format!(
                "no migration files (.json, .yaml, .yml) in {}",
                dir.display()
            ),
        )]);
    }
    let mut migrations = Vec::new();
    let mut problems = Vec::new();
    for file in &files {
        match load(file) {
            Ok(m) => migrations.push((file.clone(), m)),
            Err(p) => problems.extend(p),
        }
    }
    if problems.is_empty() {
        Ok(migrations)
    } else {
        Err(problems)
    }
}
