//! Malformed or wrong migration files: exit code 2, a message with the JSON Pointer, and the
//! database untouched.

use crate::support::{catalog_snapshot, migration_file, TestDb};

const BASE: &str = r#"{"operations": [{"create_table": {"name": "users", "columns": [
    {"name": "id", "type": "int", "pk": true}, {"name": "email", "type": "text"}]}}]}"#;

#[tokio::test]
async fn bad_files_exit_2_with_a_pointer_and_change_nothing() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    db.tandem_ok(&[
        "start",
        "--complete",
        migration_file("01_base.json", BASE).to_str().unwrap(),
    ]);
    let client = db.client().await;
    let before = catalog_snapshot(&client).await;
    let cases: &[(&str, &str, &str)] = &[
        ("02_syntax.json", "{\"operations\": [", "02_syntax.json:1:"),
        (
            "02_syntax.yaml",
            "operations:\n  - add_column: [\n",
            "02_syntax.yaml:",
        ),
        (
            "02_unknown_field.json",
            r#"{"operations": [{"drop_table": {"name": "users", "cascade": true}}]}"#,
            "/operations/0/drop_table",
        ),
        (
            "02_wrong_type.json",
            r#"{"operations": [{"add_column": {"table": "users", "column": {"name": "a", "type": "text", "nullable": "yes"}}}]}"#,
            "/operations/0/add_column/column/nullable",
        ),
        (
            "02_two_keys.json",
            r#"{"operations": [{"drop_table": {"name": "users"}, "drop_index": {"name": "x"}}]}"#,
            "/operations/0",
        ),
        (
            "02_missing_table.json",
            r#"{"operations": [{"add_column": {"table": "nope", "column": {"name": "a", "type": "text", "nullable": true}}}]}"#,
            "/operations/0/add_column/table",
        ),
        (
            "02_duplicate_column.json",
            r#"{"operations": [{"add_column": {"table": "users", "column": {"name": "email", "type": "text", "nullable": true}}}]}"#,
            "/operations/0/add_column/column/name",
        ),
        ("02_empty.json", r#"{"operations": []}"#, "/operations"),
    ];
    for (name, text, expected) in cases {
        let file = migration_file(name, text);
        let out = db.tandem(&["start", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name}: exit code; stderr: {stderr}"
        );
        assert!(
            stderr.contains(expected),
            "{name}: expected {expected:?} in: {stderr}"
        );
        assert_eq!(
            before,
            catalog_snapshot(&client).await,
            "{name} changed the database"
        );
    }
    let status = db.tandem_ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert!(
        status["in_flight"].is_null(),
        "no migration was recorded: {status}"
    );
}

#[tokio::test]
async fn every_problem_of_a_file_is_reported_at_once() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    db.tandem_ok(&[
        "start",
        "--complete",
        migration_file("01_base.json", BASE).to_str().unwrap(),
    ]);
    let file = migration_file(
        "02_many.json",
        r#"{"operations": [
          {"add_column": {"table": "nope", "column": {"name": "a", "type": "text", "nullable": true}}},
          {"rename_column": {"table": "users", "from": "missing", "to": "x"}},
          {"drop_table": {"name": "ghost"}}]}"#,
    );
    let out = db.tandem(&["start", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    for pointer in [
        "/operations/0/add_column/table",
        "/operations/1/rename_column/from",
        "/operations/2/drop_table/name",
    ] {
        assert!(stderr.contains(pointer), "missing {pointer} in {stderr}");
    }
}
