//! Behaviours where tandem follows pgroll (its source is the reference), each run the pgroll
//! way: start → old and new versions write and read through their version schemas → rollback
//! (catalog identical) → start → complete → checked through the new version.

use crate::support::{migration_file, start_roll_back_start, texts, TestDb};
use tokio_postgres::Client;

const SETUP: &str = r#"{"operations": [
  {"create_table": {"name": "people", "columns": [
    {"name": "id", "type": "serial", "pk": true},
    {"name": "name", "type": "text"},
    {"name": "age", "type": "text", "nullable": true},
    {"name": "email", "type": "text", "nullable": true}
  ]}}
]}"#;

const V1: &str = "public_01_setup";

/// tandem initialised, `01_setup` complete, two people written through its version.
async fn setup() -> (TestDb, Client) {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let file = migration_file("01_setup.json", SETUP);
    db.tandem_ok(&["start", "--complete", file.to_str().unwrap()]);
    let v1 = db.client_on(V1).await;
    v1.batch_execute(
        "INSERT INTO people (name, age, email) VALUES ('alice', '30', 'a@x'), ('bob', NULL, 'b@x')",
    )
    .await
    .unwrap();
    (db, v1)
}

#[tokio::test]
async fn version_schema_is_prefixed_with_the_schema_as_in_pgroll() {
    let (db, v1) = setup().await;
    let migration = r#"{"version_schema": "add_nick", "operations": [
        {"add_column": {"table": "people", "column": {"name": "nick", "type": "text", "nullable": true},
         "up": "upper(name)"}}]}"#;
    let file = migration_file("02_add_nick.json", migration);
    start_roll_back_start(&db, &file).await;
    assert_eq!(
        db.tandem_ok(&["latest", "schema"]).trim(),
        "public_add_nick"
    );
    let status = db.tandem_ok(&["status", "--json"]);
    assert!(status.contains("\"public_add_nick\""), "{status}");
    let c = db.client().await;
    assert_eq!(
        texts(&c, "SELECT nspname::text FROM pg_namespace WHERE nspname IN ('add_nick', 'public_add_nick')").await,
        ["public_add_nick"]
    );
    let v2 = db.client_on("public_add_nick").await;
    v1.batch_execute("INSERT INTO people (name) VALUES ('carol')")
        .await
        .unwrap();
    v2.batch_execute("INSERT INTO people (name, nick) VALUES ('dave', 'D')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT nick FROM people ORDER BY id").await,
        ["ALICE", "BOB", "CAROL", "D"]
    );
    assert_eq!(
        texts(&v1, "SELECT name FROM people ORDER BY id").await,
        ["alice", "bob", "carol", "dave"]
    );
    db.tandem_ok(&["complete"]);
    let v2 = db.client_on("public_add_nick").await;
    assert_eq!(
        texts(&v2, "SELECT nick FROM people ORDER BY id").await,
        ["ALICE", "BOB", "CAROL", "D"]
    );
    assert_eq!(
        db.tandem_ok(&["latest", "schema"]).trim(),
        "public_add_nick"
    );
}
