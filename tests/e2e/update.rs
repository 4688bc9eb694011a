//! `tandem update DIR` rewrites pgroll's older file formats into the current one: every
//! legacy example of pgroll's own still loads as the same migration, and current files are
//! left untouched.

use std::path::Path;

use crate::support::TestDb;
use tandem_core::load::{load_migration, Format};

fn load(path: &Path) -> tandem_core::migration::Migration {
    let display = path.display().to_string();
    let format = Format::from_path(&display).unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let stem = path.file_stem().unwrap().to_str().unwrap();
    load_migration(&display, stem, &text, format).unwrap_or_else(|p| panic!("{display}: {p:?}"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn every_legacy_pgroll_example_is_rewritten_into_a_file_that_means_the_same() {
    let db = TestDb::new().await;
    let legacy =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/pgroll/legacy-json");
    let dir = std::env::temp_dir().join(format!("tandem-update-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    copy_dir(&legacy, &dir);
    // A legacy YAML file too, with the editor's schema comment on top.
    std::fs::write(
        dir.join("99_index_yaml.yaml"),
        "# yaml-language-server: $schema=../schema/migration.schema.json\nname: 99_index_yaml\noperations:\n  - create_index:\n      name: idx_b_a\n      table: fruits\n      columns: [b, a]\n",
    )
    .unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let before: Vec<_> = files.iter().map(|f| load(f)).collect();
    let texts_before: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();

    let d = dir.to_str().unwrap();
    let dry = db.tandem_ok(&["update", d, "--dry-run", "--json"]);
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["dry_run"], true);
    let updated = dry["updated"].as_u64().unwrap();
    assert!(updated >= 50, "{dry}");
    let unchanged: Vec<String> = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert_eq!(unchanged, texts_before, "--dry-run writes nothing");

    db.tandem_ok(&["update", d]);
    for (file, migration) in files.iter().zip(&before) {
        assert_eq!(&load(file), migration, "{} means the same", file.display());
    }
    let rewritten = std::fs::read_to_string(dir.join("99_index_yaml.yaml")).unwrap();
    assert!(
        rewritten.starts_with("# yaml-language-server:"),
        "{rewritten}"
    );
    assert!(!rewritten.contains("name: 99_index_yaml"), "{rewritten}");
    let index = std::fs::read_to_string(dir.join("10_create_index.json")).unwrap();
    assert!(
        index.contains("\"column\": \"name\"") && !index.contains("\"name\": \"10_create_index\""),
        "{index}"
    );
    // Current files are left alone: a second run changes nothing.
    let again: serde_json::Value =
        serde_json::from_str(&db.tandem_ok(&["update", d, "--json"])).unwrap();
    assert_eq!(again["updated"], 0, "{again}");
    // And the folder still validates.
    db.tandem_ok(&["validate", d]);
}

/// `migrate --expect-one` (pgroll's flag) runs only when exactly one file is pending.
#[tokio::test]
async fn migrate_expect_one_refuses_unless_exactly_one_file_is_pending() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let dir = crate::support::migrations_dir(&[
        (
            "01_a.json",
            r#"{"operations": [{"create_table": {"name": "a", "columns": [{"name": "id", "type": "int", "pk": true}]}}]}"#,
        ),
        (
            "02_b.json",
            r#"{"operations": [{"create_table": {"name": "b", "columns": [{"name": "id", "type": "int", "pk": true}]}}]}"#,
        ),
    ]);
    let d = dir.to_str().unwrap();
    let out = db.tandem(&["migrate", d, "--expect-one"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("2 migration(s) are pending, not one (01_a, 02_b)"),
        "{err}"
    );
    let c = db.client().await;
    assert_eq!(
        crate::support::texts(
            &c,
            "SELECT count(*)::text FROM pg_tables WHERE tablename IN ('a', 'b')"
        )
        .await,
        ["0"]
    );
    std::fs::remove_file(dir.join("02_b.json")).unwrap();
    db.tandem_ok(&["migrate", d, "--expect-one", "--complete"]);
    assert_eq!(
        crate::support::texts(
            &c,
            "SELECT count(*)::text FROM pg_tables WHERE tablename = 'a'"
        )
        .await,
        ["1"]
    );
}

/// A pgroll user's environment carries over: `PGROLL_PG_URL` and `PGROLL_SCHEMA` stand in for
/// tandem's own names when those are unset.
#[tokio::test]
async fn pgroll_environment_names_carry_over() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("CREATE SCHEMA app").await.unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(args)
            .env_remove("TANDEM_PG_URL")
            .env_remove("TANDEM_SCHEMA")
            .env_remove("DATABASE_URL")
            .env("PGROLL_PG_URL", &db.url)
            .env("PGROLL_SCHEMA", "app")
            .output()
            .unwrap()
    };
    assert!(run(&["init"]).status.success());
    let out = run(&["status", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["schema"], "app", "{status}");
}
