//! `sql` operations: what runs at complete shows through the version schema, and a rollback
//! that cannot undo raw SQL says so instead of reporting success.

use crate::support::{migration_file, texts, TestDb};

#[tokio::test]
async fn tables_and_columns_made_by_sql_at_complete_show_through_the_version_schema() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let setup = migration_file(
        "01_setup.json",
        r#"{"operations": [{"create_table": {"name": "users", "columns": [
            {"name": "id", "type": "int", "pk": true}, {"name": "name", "type": "text"}]}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", setup.to_str().unwrap()]);
    let f = migration_file(
        "02_audit.json",
        r#"{"operations": [
          {"add_column": {"table": "users", "column": {"name": "email", "type": "text", "nullable": true}}},
          {"sql": {"up": "CREATE TABLE audit (id int PRIMARY KEY, what text); ALTER TABLE users ADD COLUMN nickname text", "onComplete": true}}
        ]}"#,
    );
    let plan = db.tandem_ok(&["plan", f.to_str().unwrap()]);
    assert!(
        plan.contains("after complete: rebuild the version schema's views"),
        "{plan}"
    );
    db.tandem_ok(&["start", "--complete", f.to_str().unwrap()]);
    let app = db.client_on("public_02_audit").await;
    app.batch_execute(
        "INSERT INTO audit VALUES (1, 'made at complete');
         INSERT INTO users (id, name, email, nickname) VALUES (1, 'ann', 'a@x', 'annie')",
    )
    .await
    .unwrap();
    assert_eq!(
        texts(
            &app,
            "SELECT format('%s %s %s', name, email, nickname) FROM users"
        )
        .await,
        ["ann a@x annie"]
    );
    assert_eq!(
        texts(&app, "SELECT what FROM audit").await,
        ["made at complete"]
    );
    assert_eq!(
        texts(
            &app,
            "SELECT string_agg(table_name::text, ',' ORDER BY table_name) FROM information_schema.views
              WHERE table_schema = 'public_02_audit'"
        )
        .await,
        ["audit,users"]
    );
}

#[tokio::test]
async fn a_rollback_that_cannot_undo_raw_sql_says_so_and_fails() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let f = migration_file(
        "01_mood.json",
        r#"{"operations": [{"sql": {"up": "CREATE TYPE mood AS ENUM ('sad', 'happy')"}}]}"#,
    );
    let plan = db.tandem_ok(&["plan", f.to_str().unwrap()]);
    assert!(
        plan.contains("cannot undo: /operations/0/sql: its raw SQL has no `down`"),
        "{plan}"
    );
    db.tandem_ok(&["start", f.to_str().unwrap()]);
    let out = db.tandem(&["rollback"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("was rolled back, except what rollback cannot undo")
            && err.contains("/operations/0/sql"),
        "{err}"
    );
    // What it said is true: the type stayed, and the migration is no longer in flight.
    let c = db.client().await;
    assert_eq!(
        texts(
            &c,
            "SELECT typname::text FROM pg_type WHERE typname = 'mood'"
        )
        .await,
        ["mood"]
    );
    let status: serde_json::Value =
        serde_json::from_str(&db.tandem_ok(&["status", "--json"])).unwrap();
    assert!(status["in_flight"].is_null(), "{status}");
    // With a `down`, the same round trip is clean.
    c.batch_execute("DROP TYPE mood").await.unwrap();
    let with_down = migration_file(
        "01_mood.json",
        r#"{"operations": [{"sql": {"up": "CREATE TYPE mood AS ENUM ('sad', 'happy')", "down": "DROP TYPE mood"}}]}"#,
    );
    db.tandem_ok(&["start", with_down.to_str().unwrap()]);
    db.tandem_ok(&["rollback"]);
    db.tandem_ok(&["start", "--complete", with_down.to_str().unwrap()]);
}

/// pgroll runs an add_column and a drop_column of the same column in one migration: no
/// version ever sees it, and complete drops it.
#[tokio::test]
async fn a_column_added_and_dropped_in_one_migration_never_shows() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, 'a')",
    )
    .await
    .unwrap();
    db.tandem_ok(&["init"]);
    let f = migration_file(
        "02_scratch.json",
        r#"{"operations": [
          {"add_column": {"table": "notes", "up": "'x'", "column": {"name": "tmp", "type": "text", "nullable": true}}},
          {"drop_column": {"table": "notes", "column": "tmp"}}
        ]}"#,
    );
    crate::support::start_roll_back_start(&db, &f).await;
    let new = db.client_on("public_02_scratch").await;
    new.execute("INSERT INTO notes VALUES (2, 'b')", &[])
        .await
        .unwrap();
    assert_eq!(
        texts(&new, "SELECT string_agg(column_name::text, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_schema = 'public_02_scratch' AND table_name = 'notes'").await,
        ["id,body"]
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(&c, "SELECT string_agg(attname::text, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'notes'::regclass AND attnum > 0 AND NOT attisdropped").await,
        ["id,body"]
    );
    assert_eq!(
        texts(&c, "SELECT body FROM notes ORDER BY id").await,
        ["a", "b"]
    );
}
