//! Every operation: start → both versions read and write (rows checked) → rollback → catalog
//! identical → start again → complete → final shape and data checked.

use crate::support::{catalog_snapshot, migration_file, start_roll_back_start, texts, TestDb};
use tokio_postgres::Client;

const SETUP: &str = r#"{"operations": [
  {"create_table": {"name": "users", "columns": [
    {"name": "id", "type": "serial", "pk": true},
    {"name": "name", "type": "text"},
    {"name": "nickname", "type": "text", "nullable": true}
  ]}},
  {"create_table": {"name": "orders", "columns": [
    {"name": "id", "type": "bigint", "pk": true, "generated": {"identity": {"user_specified_values": "BY DEFAULT"}}},
    {"name": "user_id", "type": "integer", "references": {"name": "orders_user_fk", "table": "users", "column": "id"}},
    {"name": "amount", "type": "numeric(10,2)", "default": "0"}
  ]}}
]}"#;

const V1: &str = "public_01_setup";

/// A database with tandem initialised, `01_setup` complete, and two users and an order
/// written through the first version schema.
async fn setup() -> (TestDb, Client) {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let file = migration_file("01_setup.json", SETUP);
    db.tandem_ok(&["start", "--complete", file.to_str().unwrap()]);
    let v1 = db.client_on(V1).await;
    v1.batch_execute("INSERT INTO users (name) VALUES ('alice'), ('bob'); INSERT INTO orders (user_id, amount) VALUES (1, 9.5)")
        .await
        .unwrap();
    (db, v1)
}

/// start → `during` → rollback (catalog identical) → start → complete, returning the path.
async fn round_trip(db: &TestDb, name: &str, json: &str) -> std::path::PathBuf {
    let file = migration_file(name, json);
    start_roll_back_start(db, &file).await;
    file
}

#[tokio::test]
async fn add_column_with_up_keeps_both_versions_writing() {
    let (db, v1) = setup().await;
    let migration = r#"{"operations": [{"add_column": {"table": "users", "up": "upper(name) || '!'",
        "column": {"name": "shout", "type": "text", "comment": "loud name"}}}]}"#;
    round_trip(&db, "02_add_shout.json", migration).await;
    let v2 = db.client_on("public_02_add_shout").await;
    // Existing rows were backfilled before the version schema appeared.
    assert_eq!(
        texts(&v2, "SELECT shout FROM users ORDER BY id").await,
        ["ALICE!", "BOB!"]
    );
    // An old-version write goes through `up`.
    v1.batch_execute("INSERT INTO users (name) VALUES ('carol'); UPDATE users SET name = 'bobby' WHERE name = 'bob'").await.unwrap();
    assert_eq!(
        texts(&v2, "SELECT shout FROM users ORDER BY id").await,
        ["ALICE!", "BOBBY!", "CAROL!"]
    );
    // A new-version write keeps its own value, and the old version sees the row.
    v2.batch_execute("INSERT INTO users (name, shout) VALUES ('dave', 'hey dave')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT shout FROM users WHERE name = 'dave'").await,
        ["hey dave"]
    );
    assert_eq!(
        texts(&v1, "SELECT name FROM users ORDER BY id").await,
        ["alice", "bobby", "carol", "dave"]
    );
    // The old version does not see the new column.
    assert!(v1.query("SELECT shout FROM users", &[]).await.is_err());
    db.tandem_ok(&["complete"]);
    let c = db.client().await;
    let not_null = texts(&c, "SELECT attnotnull::text FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'shout'").await;
    assert_eq!(not_null, ["true"], "NOT NULL is in place after complete");
    assert_eq!(texts(&c, "SELECT count(*)::text FROM pg_trigger WHERE tgrelid = 'public.users'::regclass AND NOT tgisinternal").await, ["0"]);
    assert_eq!(texts(&c, "SELECT col_description(attrelid, attnum) FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'shout'").await, ["loud name"]);
    assert_eq!(
        texts(
            &c,
            "SELECT count(*)::text FROM pg_namespace WHERE nspname = 'public_01_setup'"
        )
        .await,
        ["0"],
        "the old version schema is gone"
    );
    assert_eq!(
        texts(&v2, "SELECT shout FROM users ORDER BY id").await,
        ["ALICE!", "BOBBY!", "CAROL!", "hey dave"]
    );
}

#[tokio::test]
async fn add_column_not_null_is_enforced_for_new_writes_only_after_backfill() {
    let (db, _v1) = setup().await;
    let migration = r#"{"operations": [{"add_column": {"table": "users", "up": "length(name)",
        "column": {"name": "name_length", "type": "integer", "check": {"name": "positive_length", "constraint": "name_length > 0"}}}}]}"#;
    round_trip(&db, "02_len.json", migration).await;
    let v2 = db.client_on("public_02_len").await;
    let err = v2
        .batch_execute("INSERT INTO users (name, name_length) VALUES ('x', 0)")
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("positive_length")
            || format!("{err:?}").contains("positive_length"),
        "{err:?}"
    );
    assert!(
        v2.batch_execute("INSERT INTO users (name, name_length) VALUES ('x', NULL)")
            .await
            .is_err(),
        "NOT NULL enforced through the check"
    );
    db.tandem_ok(&["complete"]);
    let c = db.client().await;
    assert_eq!(texts(&c, "SELECT conname::text FROM pg_constraint WHERE conrelid = 'public.users'::regclass AND contype = 'c' ORDER BY 1").await, ["positive_length"]);
    assert_eq!(
        texts(
            &c,
            "SELECT convalidated::text FROM pg_constraint WHERE conname = 'positive_length'"
        )
        .await,
        ["true"]
    );
}

#[tokio::test]
async fn drop_column_fills_the_old_column_with_down() {
    let (db, v1) = setup().await;
    let migration = r#"{"operations": [{"drop_column": {"table": "users", "column": "nickname", "down": "'nick-' || name"}}]}"#;
    round_trip(&db, "02_drop_nick.json", migration).await;
    let v2 = db.client_on("public_02_drop_nick").await;
    assert!(
        v2.query("SELECT nickname FROM users", &[]).await.is_err(),
        "the new version does not see the column"
    );
    v2.batch_execute("INSERT INTO users (name) VALUES ('erin')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v1, "SELECT nickname FROM users WHERE name = 'erin'").await,
        ["nick-erin"]
    );
    // Old-version writes keep working with the column.
    v1.batch_execute("INSERT INTO users (name, nickname) VALUES ('fay', 'ff')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT name FROM users ORDER BY id").await,
        ["alice", "bob", "erin", "fay"]
    );
    db.tandem_ok(&["complete"]);
    let c = db.client().await;
    assert_eq!(texts(&c, "SELECT count(*)::text FROM pg_attribute WHERE attrelid = 'public.users'::regclass AND attname = 'nickname' AND NOT attisdropped").await, ["0"]);
}

#[tokio::test]
async fn rename_column_shows_each_version_its_name() {
    let (db, v1) = setup().await;
    let migration = r#"{"operations": [{"rename_column": {"table": "users", "from": "name", "to": "full_name"}}]}"#;
    round_trip(&db, "02_rename.json", migration).await;
    let v2 = db.client_on("public_02_rename").await;
    v2.batch_execute("INSERT INTO users (full_name) VALUES ('gus')")
        .await
        .unwrap();
    v1.batch_execute("UPDATE users SET name = 'alicia' WHERE name = 'alice'")
        .await
        .unwrap();
    assert_eq!(
        texts(&v1, "SELECT name FROM users ORDER BY id").await,
        ["alicia", "bob", "gus"]
    );
    assert_eq!(
        texts(&v2, "SELECT full_name FROM users ORDER BY id").await,
        ["alicia", "bob", "gus"]
    );
    db.tandem_ok(&["complete"]);
    let c = db.client().await;
    assert_eq!(
        texts(&c, "SELECT full_name FROM public.users ORDER BY id").await,
        ["alicia", "bob", "gus"]
    );
    assert_eq!(
        texts(&v2, "SELECT full_name FROM users ORDER BY id").await,
        ["alicia", "bob", "gus"]
    );
}

#[tokio::test]
async fn rename_table_shows_each_version_its_name() {
    let (db, v1) = setup().await;
    let migration = r#"{"operations": [{"rename_table": {"from": "orders", "to": "purchases"}}]}"#;
    round_trip(&db, "02_purchases.json", migration).await;
    let v2 = db.client_on("public_02_purchases").await;
    v2.batch_execute("INSERT INTO purchases (user_id, amount) VALUES (2, 3)")
        .await
        .unwrap();
    v1.batch_execute("INSERT INTO orders (user_id) VALUES (1)")
        .await
        .unwrap();
    assert_eq!(
        texts(&v1, "SELECT amount::text FROM orders ORDER BY id").await,
        ["9.50", "3.00", "0.00"]
    );
    assert_eq!(
        texts(&v2, "SELECT amount::text FROM purchases ORDER BY id").await,
        ["9.50", "3.00", "0.00"]
    );
    db.tandem_ok(&["complete"]);
    let c = db.client().await;
    assert_eq!(
        texts(&c, "SELECT count(*)::text FROM public.purchases").await,
        ["3"]
    );
}

#[tokio::test]
async fn drop_table_is_soft_until_complete() {
    let (db, v1) = setup().await;
    let migration = r#"{"operations": [{"drop_table": {"name": "orders"}}]}"#;
    round_trip(&db, "02_drop_orders.json", migration).await;
    let v2 = db.client_on("public_02_drop_orders").await;
    assert!(
        v2.query("SELECT 1 FROM orders", &[]).await.is_err(),
        "gone for the new version"
    );
    v1.batch_execute("INSERT INTO orders (user_id) VALUES (2)")
        .await
        .unwrap();
    assert_eq!(
        texts(&v1, "SELECT count(*)::text FROM orders").await,
        ["2"],
        "still there for the old version"
    );
    db.tandem_ok(&["complete"]);
    let c = db.client().await;
    assert_eq!(
        texts(
            &c,
            "SELECT count(*)::text FROM pg_class WHERE relname LIKE '%orders%' AND relkind = 'r'"
        )
        .await,
        ["0"]
    );
}

#[tokio::test]
async fn create_table_is_visible_to_the_new_version_only() {
    let (db, v1) = setup().await;
    let migration = r#"{"operations": [{"create_table": {"name": "products", "comment": "things we sell", "columns": [
        {"name": "id", "type": "serial", "pk": true},
        {"name": "sku", "type": "varchar(32)", "unique": true},
        {"name": "price", "type": "numeric(10,2)", "default": "1.00", "check": {"name": "price_positive", "constraint": "price > 0"}},
        {"name": "owner", "type": "integer", "nullable": true, "references": {"name": "products_owner_fk", "table": "users", "column": "id", "on_delete": "SET NULL"}}
      ]}}]}"#;
    round_trip(&db, "02_products.json", migration).await;
    let v2 = db.client_on("public_02_products").await;
    v2.batch_execute("INSERT INTO products (sku, owner) VALUES ('A-1', 1)")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT price::text FROM products").await,
        ["1.00"],
        "the default applies through the view"
    );
    assert!(v2
        .batch_execute("INSERT INTO products (sku, price) VALUES ('A-2', -1)")
        .await
        .is_err());
    assert!(
        v2.batch_execute("INSERT INTO products (sku) VALUES ('A-1')")
            .await
            .is_err(),
        "unique"
    );
    assert!(
        v1.query("SELECT 1 FROM public_01_setup.products", &[])
            .await
            .is_err(),
        "the old version has no view of it"
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(texts(&v2, "SELECT sku FROM products").await, ["A-1"]);
}

#[tokio::test]
async fn sql_runs_up_at_start_and_down_at_rollback() {
    let (db, _v1) = setup().await;
    let migration = r#"{"operations": [{"sql": {"up": "CREATE TABLE audit (id int PRIMARY KEY, note text)", "down": "DROP TABLE audit"}}]}"#;
    round_trip(&db, "02_audit.json", migration).await;
    let v2 = db.client_on("public_02_audit").await;
    v2.batch_execute("INSERT INTO audit VALUES (1, 'hello')")
        .await
        .unwrap();
    db.tandem_ok(&["complete"]);
    assert_eq!(texts(&v2, "SELECT note FROM audit").await, ["hello"]);
    let on_complete = migration_file(
        "03_later.json",
        r#"{"operations": [{"sql": {"up": "INSERT INTO audit VALUES (2, 'done')", "onComplete": true}}]}"#,
    );
    db.tandem_ok(&["start", on_complete.to_str().unwrap()]);
    assert_eq!(
        texts(&v2, "SELECT count(*)::text FROM audit").await,
        ["1"],
        "onComplete SQL waits for complete"
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(
            &db.client().await,
            "SELECT count(*)::text FROM public.audit"
        )
        .await,
        ["2"]
    );
}

#[tokio::test]
async fn a_new_version_on_the_search_path_writes_through_down_not_up() {
    let (db, v1) = setup().await;
    let migration = r#"{"operations": [
        {"add_column": {"table": "users", "up": "'from-up'", "column": {"name": "origin", "type": "text", "nullable": true}}},
        {"drop_column": {"table": "users", "column": "nickname", "down": "'from-down'"}}]}"#;
    round_trip(&db, "02_origin.json", migration).await;
    // `public_02_origin, public`: the version schema is on the path but not alone.
    let v2 = db.client_on("public_02_origin").await;
    v2.batch_execute("INSERT INTO users (name, origin) VALUES ('new', 'mine')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v1, "SELECT nickname FROM users WHERE name = 'new'").await,
        ["from-down"]
    );
    assert_eq!(
        texts(&v2, "SELECT origin FROM users WHERE name = 'new'").await,
        ["mine"],
        "up did not overwrite the new version's value"
    );
    // tandem.version overrides the search path.
    let c = db.client().await;
    c.batch_execute("SET tandem.version = 'public_02_origin'; INSERT INTO public.users (name, origin) VALUES ('viaset', 'set')").await.unwrap();
    assert_eq!(
        texts(&v1, "SELECT nickname FROM users WHERE name = 'viaset'").await,
        ["from-down"]
    );
    v1.batch_execute("INSERT INTO users (name, nickname) VALUES ('old', 'o')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT origin FROM users WHERE name = 'old'").await,
        ["from-up"]
    );
}

#[tokio::test]
async fn a_failed_start_undoes_only_what_ran() {
    let (db, _v1) = setup().await;
    let client = db.client().await;
    let before = catalog_snapshot(&client).await;
    let broken = migration_file(
        "02_audit.json",
        r#"{"operations": [{"sql": {"up": "CREATE TABLE audit (id nonsense_type PRIMARY KEY)", "down": "DROP TABLE audit"}}]}"#,
    );
    let out = db.tandem(&["start", broken.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("nonsense_type") && stderr.contains("rolled back"),
        "{stderr}"
    );
    assert_eq!(before, catalog_snapshot(&client).await);
    let status: serde_json::Value =
        serde_json::from_str(&db.tandem_ok(&["status", "--json"])).unwrap();
    assert!(status["in_flight"].is_null(), "{status}");
    let fixed = migration_file(
        "02_audit.json",
        r#"{"operations": [{"sql": {"up": "CREATE TABLE audit (id int PRIMARY KEY)", "down": "DROP TABLE audit"}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", fixed.to_str().unwrap()]);
    assert_eq!(
        db.tandem_ok(&["latest", "schema"]).trim(),
        "public_02_audit"
    );
}
