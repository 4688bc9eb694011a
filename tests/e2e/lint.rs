//! The raw-SQL lint at the command line: `start` and `migrate` refuse a hazardous `sql`
//! operation before touching the database, `--allow-hazard` lets it run, and `validate` and
//! `plan` show the findings.

use serde_json::Value;

use crate::support::{catalog_snapshot, migration_file, texts, TestDb};

/// A `users` table with rows, applied and complete.
async fn setup() -> TestDb {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let file = migration_file(
        "01_users.json",
        r#"{"operations": [{"create_table": {"name": "users", "columns": [
          {"name": "id", "type": "serial", "pk": true},
          {"name": "email", "type": "text", "nullable": true}]}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", file.to_str().unwrap()]);
    db.client()
        .await
        .batch_execute(
            "INSERT INTO public.users (email) SELECT 'u' || g FROM generate_series(1, 100) g",
        )
        .await
        .unwrap();
    db
}

/// A plain CREATE INDEX on a table with rows: refused as `non_concurrent_index`.
const INDEX: &str = r#"{"operations": [{"sql": {
  "up": "CREATE INDEX users_email ON users (email)",
  "down": "DROP INDEX users_email"}}]}"#;

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn applied_migrations(db: &TestDb) -> Vec<String> {
    texts(
        &db.client().await,
        "SELECT name FROM tandem.migrations ORDER BY name",
    )
    .await
}

#[tokio::test]
async fn start_refuses_a_hazard_and_changes_nothing() {
    let db = setup().await;
    let admin = db.client().await;
    let before = (
        catalog_snapshot(&admin).await,
        applied_migrations(&db).await,
    );
    let file = migration_file("02_index.json", INDEX);
    let path = file.to_str().unwrap();

    let out = db.tandem(&["start", path]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let message = stderr(&out);
    for expected in [
        "02_index.json",
        "/operations/0/sql/up",
        "non_concurrent_index",
        "CREATE INDEX users_email ON users (email)",
        "without CONCURRENTLY",
        "hint: use create_index",
        "--allow-hazard non_concurrent_index",
    ] {
        assert!(message.contains(expected), "no {expected:?} in:\n{message}");
    }
    assert_eq!(
        before,
        (
            catalog_snapshot(&admin).await,
            applied_migrations(&db).await
        ),
        "a refused start changed the database"
    );

    db.tandem_ok(&["start", "--allow-hazard", "non_concurrent_index", path]);
    let indexes = texts(
        &admin,
        "SELECT indexname FROM pg_indexes WHERE tablename = 'users' AND indexname = 'users_email'",
    )
    .await;
    assert_eq!(indexes, ["users_email"]);
    // The down that drops what the up created is the undo, not a hazard.
    db.tandem_ok(&["rollback"]);
    assert_eq!(before.0, catalog_snapshot(&admin).await);
}

#[tokio::test]
async fn migrate_lints_every_pending_file_before_the_first_starts() {
    let db = setup().await;
    let admin = db.client().await;
    let before = catalog_snapshot(&admin).await;
    let first = migration_file(
        "02_safe.json",
        r#"{"operations": [{"sql": {"up": "CREATE TABLE audit (id int)", "down": "DROP TABLE audit"}}]}"#,
    );
    let dir = first.parent().unwrap();
    std::fs::write(
        dir.join("03_rewrite.json"),
        r#"{"operations": [{"sql": {"up": "ALTER TABLE users SET UNLOGGED"}}]}"#,
    )
    .unwrap();
    let out = db.tandem(&["migrate", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("table_rewrite"), "{}", stderr(&out));
    assert!(stderr(&out).contains("03_rewrite.json"), "{}", stderr(&out));
    assert_eq!(
        before,
        catalog_snapshot(&admin).await,
        "02_safe must not have run"
    );

    let dir = dir.to_str().unwrap();
    db.tandem_ok(&["migrate", "--allow-hazard", "table_rewrite", dir]);
    let persistence = texts(
        &admin,
        "SELECT relpersistence::text FROM pg_class WHERE oid = 'public.users'::regclass",
    )
    .await;
    assert_eq!(persistence, ["u"]);
}

#[tokio::test]
async fn validate_and_plan_show_the_findings() {
    let db = setup().await;
    let file = migration_file(
        "02_mixed.json",
        r#"{"operations": [{"sql": {"up": "ALTER TABLE users ADD COLUMN note text; TRUNCATE users"}}]}"#,
    );
    let path = file.to_str().unwrap();

    let out = db.tandem(&["validate", "--json", path]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    let hazards: Vec<(&str, &str)> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["hazard"].as_str().unwrap(),
                f["severity"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hazards,
        [("access_exclusive_lock", "warn"), ("truncate", "refuse")]
    );
    assert_eq!(report["findings"][1]["pointer"], "/operations/0/sql/up");
    assert_eq!(report["findings"][1]["statement"], "TRUNCATE users");

    db.tandem_ok(&["validate", "--allow-hazard", "truncate", path]);

    let plan = db.tandem_ok(&["plan", path]);
    assert!(plan.contains("\nlint:\n"), "{plan}");
    assert!(plan.contains("(refused: truncate)"), "{plan}");
    let plan: Value = serde_json::from_str(&db.tandem_ok(&["plan", "--json", path])).unwrap();
    assert_eq!(plan["findings"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_expression_is_only_ever_warned_about() {
    let db = setup().await;
    let file = migration_file(
        "02_email.json",
        r#"{"operations": [{"add_column": {"table": "users", "up": "lower(emial)",
          "column": {"name": "email_lower", "type": "text", "nullable": true}}}]}"#,
    );
    let path = file.to_str().unwrap();
    let report: Value = serde_json::from_str(&db.tandem_ok(&["validate", "--json", path])).unwrap();
    assert_eq!(
        report["findings"][0]["hazard"], "unknown_column",
        "{report}"
    );
    assert_eq!(report["findings"][0]["severity"], "warn");
    assert_eq!(
        report["findings"][0]["pointer"],
        "/operations/0/add_column/up"
    );
}
