//! pgroll's own example migrations (tests/conformance/pgroll, copied unchanged from pgroll's
//! repository, Apache-2.0): each set applied in file-name order in a fresh database, every
//! file start → rollback (catalog identical) → start → complete.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{catalog_snapshot, TestDb};

fn files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    files.sort();
    files
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/pgroll")
}

fn check(name: &str, args: &[&str], out: Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{name}: tandem {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Files that cannot take the rollback round trip, and why. They still start and complete.
const NO_ROLLBACK: &[(&str, &str)] = &[(
    "40_create_enum_type",
    "raw SQL without `down`: rollback cannot undo it (pgroll behaves the same)",
)];

/// Runs one file through start → rollback → start → complete; returns the first failure.
async fn run_file(db: &TestDb, file: &Path) -> Result<(), String> {
    let path = file.to_str().unwrap();
    let name = file.file_name().unwrap().to_string_lossy().into_owned();
    let run = |args: &[&str]| check(&name, args, db.tandem(args));
    let stem = file.file_stem().unwrap().to_string_lossy();
    if let Some((_, why)) = NO_ROLLBACK.iter().find(|(f, _)| *f == stem) {
        eprintln!("{name}: start → complete only: {why}");
        run(&["start", path])?;
        return run(&["complete"]);
    }
    let admin = db.client().await;
    let before = catalog_snapshot(&admin).await;
    run(&["start", path])?;
    run(&["rollback"])?;
    if before != catalog_snapshot(&admin).await {
        return Err(format!(
            "{name}: rollback did not leave the catalog identical"
        ));
    }
    run(&["start", path])?;
    run(&["complete"])
}

/// Runs every file in order; returns one line per failing file.
async fn run_set(files: &[PathBuf]) -> Vec<String> {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let mut failures = Vec::new();
    for file in files {
        if let Err(e) = run_file(&db, file).await {
            failures.push(e);
            let _ = db.tandem(&["rollback"]);
        }
    }
    failures
}

#[tokio::test]
async fn pgroll_yaml_examples_run_unchanged() {
    let files = files(&conformance_dir(), "yaml");
    assert_eq!(files.len(), 56, "the 56 current pgroll examples");
    let failures = run_set(&files).await;
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn pgroll_legacy_json_examples_run_unchanged() {
    let files = files(&conformance_dir().join("legacy-json"), "json");
    assert_eq!(files.len(), 54, "the 54 older pgroll examples");
    let failures = run_set(&files).await;
    assert!(
        failures.is_empty(),
        "{} of {} files failed:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
