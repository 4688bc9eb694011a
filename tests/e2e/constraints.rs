//! create_constraint, drop_constraint and drop_multicolumn_constraint: the constraint lives on
//! shadow columns for the new version only, validated before complete; rollback identical.

use crate::support::{migration_file, start_twice, texts, TestDb};
use tokio_postgres::Client;

const SETUP: &str = r#"{"operations": [
  {"create_table": {"name": "sellers", "columns": [
    {"name": "name", "type": "text", "pk": true},
    {"name": "zip", "type": "int", "pk": true}]}},
  {"create_table": {"name": "tickets", "columns": [
    {"name": "id", "type": "int", "pk": true},
    {"name": "seller_name", "type": "text"},
    {"name": "seller_zip", "type": "int"},
    {"name": "title", "type": "text", "check": {"name": "title_length", "constraint": "length(title) > 3"}},
    {"name": "code", "type": "text", "nullable": true}],
   "constraints": [{"name": "tickets_code_zip", "type": "unique", "columns": ["code", "seller_zip"]}]}}
]}"#;

async fn setup() -> (TestDb, Client) {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    db.tandem_ok(&[
        "start",
        "--complete",
        migration_file("01_setup.json", SETUP).to_str().unwrap(),
    ]);
    let v1 = db.client_on("public_01_setup").await;
    v1.batch_execute(
        "INSERT INTO sellers VALUES ('ann', 1), ('ben', 2);
         INSERT INTO tickets (id, seller_name, seller_zip, title, code) VALUES (1, 'ann', 1, 'first', 'x'), (2, 'ghost', 9, 'second', 'y'), (3, 'ben', 2, 'third', NULL)",
    )
    .await
    .unwrap();
    (db, v1)
}

async fn constraint(c: &Client, name: &str) -> Vec<String> {
    texts(c, &format!("SELECT pg_get_constraintdef(oid) || ' valid=' || convalidated FROM pg_constraint WHERE conname = '{name}'")).await
}

#[tokio::test]
async fn check_constraint_for_the_new_version_only() {
    let (db, v1) = setup().await;
    let v2 = start_twice(
        &db,
        "02_title_upper",
        r#"{"operations": [{"create_constraint": {"table": "tickets", "name": "title_upper", "type": "check",
            "columns": ["title"], "check": "title = upper(title)", "up": {"title": "upper(title)"}, "down": {"title": "title"}}}]}"#,
    )
    .await;
    assert_eq!(
        texts(&v2, "SELECT title FROM tickets ORDER BY id").await,
        ["FIRST", "SECOND", "THIRD"]
    );
    v1.batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title, code) VALUES (4, 'ann', 1, 'lower', NULL)")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT title FROM tickets WHERE id = 4").await,
        ["LOWER"]
    );
    assert!(v2
        .batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title, code) VALUES (5, 'ann', 1, 'nope', NULL)")
        .await
        .is_err());
    assert!(
        v2.batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title, code) VALUES (5, 'ann', 1, 'NO', NULL)")
            .await
            .is_err(),
        "the old check is carried over"
    );
    db.tandem_ok(&["complete"]);
    let admin = db.client().await;
    assert_eq!(
        constraint(&admin, "title_upper").await,
        ["CHECK ((title = upper(title))) valid=true"]
    );
    assert_eq!(
        constraint(&admin, "title_length").await,
        ["CHECK ((length(title) > 3)) valid=true"]
    );
}

#[tokio::test]
async fn multi_column_unique_and_foreign_key() {
    let (db, v1) = setup().await;
    let v2 = start_twice(
        &db,
        "02_seller_fk",
        r#"{"operations": [{"create_constraint": {"table": "tickets", "name": "tickets_seller_fk", "type": "foreign_key",
            "columns": ["seller_name", "seller_zip"], "references": {"table": "sellers", "columns": ["name", "zip"], "on_delete": "CASCADE"},
            "up": {"seller_name": "CASE WHEN EXISTS (SELECT 1 FROM sellers s WHERE s.name = seller_name AND s.zip = seller_zip) THEN seller_name ELSE 'ann' END",
                   "seller_zip": "CASE WHEN EXISTS (SELECT 1 FROM sellers s WHERE s.name = seller_name AND s.zip = seller_zip) THEN seller_zip ELSE 1 END"},
            "down": {"seller_name": "seller_name", "seller_zip": "seller_zip"}}}]}"#,
    )
    .await;
    assert_eq!(
        texts(
            &v2,
            "SELECT seller_name || seller_zip FROM tickets ORDER BY id"
        )
        .await,
        ["ann1", "ann1", "ben2"]
    );
    assert!(v2
        .batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title, code) VALUES (9, 'zed', 5, 'ninth', NULL)")
        .await
        .is_err());
    v1.batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title, code) VALUES (9, 'zed', 5, 'ninth', NULL)")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT seller_name FROM tickets WHERE id = 9").await,
        ["ann"]
    );
    db.tandem_ok(&["complete"]);
    let admin = db.client().await;
    assert_eq!(
        constraint(&admin, "tickets_seller_fk").await,
        ["FOREIGN KEY (seller_name, seller_zip) REFERENCES sellers(name, zip) ON DELETE CASCADE valid=true"]
    );
    assert_eq!(
        constraint(&admin, "tickets_code_zip").await,
        ["UNIQUE (code, seller_zip) valid=true"],
        "the unique constraint over a copied column survives"
    );

    let v3 = start_twice(
        &db,
        "03_unique_title",
        r#"{"operations": [{"create_constraint": {"table": "tickets", "name": "tickets_title_zip", "type": "unique",
            "columns": ["title", "seller_zip"], "up": {"title": "title || '-' || id", "seller_zip": "seller_zip"}, "down": {"title": "title"}}}]}"#,
    )
    .await;
    v3.batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title) VALUES (20, 'ben', 2, 'same'), (21, 'ann', 1, 'same')").await.unwrap();
    assert!(v3.batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title) VALUES (22, 'ben', 2, 'same')").await.is_err());
    db.tandem_ok(&["complete"]);
    assert_eq!(
        constraint(&admin, "tickets_title_zip").await,
        ["UNIQUE (title, seller_zip) valid=true"]
    );
}

#[tokio::test]
async fn drop_check_and_drop_multicolumn_unique() {
    let (db, v1) = setup().await;
    let v2 = start_twice(
        &db,
        "02_drop_title_check",
        r#"{"operations": [{"drop_constraint": {"table": "tickets", "name": "title_length", "up": "title",
            "down": "CASE WHEN length(title) <= 3 THEN lpad(title, 4, '-') ELSE title END"}}]}"#,
    )
    .await;
    v2.batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title, code) VALUES (5, 'ann', 1, 'ab', NULL)")
        .await
        .unwrap();
    assert_eq!(
        texts(&v1, "SELECT title FROM tickets WHERE id = 5").await,
        ["--ab"],
        "down keeps the old version's check satisfied"
    );
    assert!(
        v1.batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title, code) VALUES (6, 'ann', 1, 'ab', NULL)")
            .await
            .is_err(),
        "the old version keeps its check"
    );
    db.tandem_ok(&["complete"]);
    let admin = db.client().await;
    assert!(constraint(&admin, "title_length").await.is_empty());

    let v3 = start_twice(
        &db,
        "03_drop_code_zip",
        r#"{"operations": [{"drop_multicolumn_constraint": {"table": "tickets", "name": "tickets_code_zip",
            "up": {"code": "code", "seller_zip": "seller_zip"},
            "down": {"code": "code || '-' || id", "seller_zip": "seller_zip"}}}]}"#,
    )
    .await;
    v3.batch_execute("INSERT INTO tickets (id, seller_name, seller_zip, title, code) VALUES (7, 'ann', 1, 'seven', 'x')").await.unwrap();
    assert_eq!(
        texts(
            &v3,
            "SELECT count(*)::text FROM tickets WHERE code = 'x' AND seller_zip = 1"
        )
        .await,
        ["2"]
    );
    db.tandem_ok(&["complete"]);
    assert!(constraint(&admin, "tickets_code_zip").await.is_empty());
}

#[tokio::test]
async fn primary_key_on_a_table_created_in_the_same_migration() {
    let (db, _v1) = setup().await;
    let v2 = start_twice(
        &db,
        "02_tasks",
        r#"{"operations": [
            {"create_table": {"name": "tasks", "columns": [{"name": "id", "type": "serial"}, {"name": "title", "type": "text"}]}},
            {"create_constraint": {"name": "tasks_pkey", "table": "tasks", "columns": ["id"], "type": "primary_key", "up": {"id": "id"}, "down": {"id": "id"}}}]}"#,
    )
    .await;
    v2.batch_execute("INSERT INTO tasks (title) VALUES ('a')")
        .await
        .unwrap();
    db.tandem_ok(&["complete"]);
    assert_eq!(
        constraint(&db.client().await, "tasks_pkey").await,
        ["PRIMARY KEY (id) valid=true"]
    );
}
