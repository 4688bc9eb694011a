//! pgroll's example migrations and tandem's own must still run unchanged: no `sql`
//! operation among them may be refused (warnings are fine).

use std::path::{Path, PathBuf};

use tandem_core::load::{load_migration, Format};
use tandem_lint::{lint, refusals, Finding};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The migration files of `dir`, in file-name order.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| Format::from_path(&p.display().to_string()).is_some())
        .collect();
    files.sort();
    files
}

fn findings(file: &Path) -> Vec<Finding> {
    let display = file.display().to_string();
    let text = std::fs::read_to_string(file).unwrap();
    let stem = file.file_stem().unwrap().to_str().unwrap();
    let format = Format::from_path(&display).unwrap();
    let migration = load_migration(&display, stem, &text, format)
        .unwrap_or_else(|p| panic!("{display}: {p:?}"));
    lint(&migration, None)
}

fn refused_in(dir: &Path, expected_files: usize) -> Vec<String> {
    let files = files(dir);
    assert_eq!(files.len(), expected_files, "{}", dir.display());
    files
        .iter()
        .flat_map(|file| {
            let found = findings(file);
            refusals(&found, &[])
                .into_iter()
                .map(|f| format!("{}: {f}", file.display()))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn no_pgroll_example_is_refused() {
    let dir = repo().join("tests/conformance/pgroll");
    let refused = refused_in(&dir, 56);
    assert!(refused.is_empty(), "{}", refused.join("\n"));
    let refused = refused_in(&dir.join("legacy-json"), 54);
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

#[test]
fn no_tandem_example_is_refused() {
    let refused = refused_in(
        &repo().join("migrations-examples"),
        files(&repo().join("migrations-examples")).len(),
    );
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

#[test]
fn the_pgroll_sql_examples_give_the_expected_findings() {
    let dir = repo().join("tests/conformance/pgroll");
    // CREATE TABLE … / DROP TABLE (the undo) and CREATE TYPE: nothing to say.
    assert!(findings(&dir.join("05_sql.yaml")).is_empty());
    assert!(findings(&dir.join("40_create_enum_type.yaml")).is_empty());
    // ADD COLUMN without default: a brief ACCESS EXCLUSIVE, a warning only.
    let found = findings(&dir.join("32_sql_on_complete.yaml"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].hazard.name(), "access_exclusive_lock");
    assert_eq!(found[0].pointer, "/operations/0/sql/up");
}
