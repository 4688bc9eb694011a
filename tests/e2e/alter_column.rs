//! alter_column: each sub-change with both versions writing through their views, rollback
//! identical, and complete keeping every constraint, index, default and comment.

use crate::support::{migration_file, start_twice, texts, TestDb};
use tokio_postgres::Client;

const SETUP: &str = r#"{"operations": [
  {"create_table": {"name": "users", "columns": [
    {"name": "id", "type": "int", "pk": true},
    {"name": "name", "type": "text"}]}},
  {"create_table": {"name": "items", "columns": [
    {"name": "id", "type": "int", "pk": true},
    {"name": "qty", "type": "int", "default": "1", "comment": "how many", "check": {"name": "qty_not_negative", "constraint": "qty >= 0"}},
    {"name": "owner", "type": "int", "nullable": true, "references": {"name": "items_owner_fk", "table": "users", "column": "id"}},
    {"name": "label", "type": "text", "nullable": true},
    {"name": "code", "type": "text", "unique": true}]}},
  {"sql": {"up": "SELECT 1", "onComplete": true}}
]}"#;

const V1: &str = "public_01_setup";

async fn setup() -> (TestDb, Client) {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    db.tandem_ok(&[
        "start",
        "--complete",
        migration_file("01_setup.json", SETUP).to_str().unwrap(),
    ]);
    let c = db.client().await;
    c.batch_execute("CREATE INDEX big_qty ON public.items (qty) WHERE qty > 10")
        .await
        .unwrap();
    let v1 = db.client_on(V1).await;
    v1.batch_execute(
        "INSERT INTO users VALUES (1, 'ann'), (2, 'ben');
         INSERT INTO items (id, qty, owner, label, code) VALUES (1, 5, 1, NULL, 'a'), (2, 20, 2, 'two', 'b')",
    )
    .await
    .unwrap();
    (db, v1)
}

async fn catalog_of_items(c: &Client) -> Vec<String> {
    texts(
        c,
        "SELECT line FROM (
           SELECT format('con %s %s valid=%s', conname, pg_get_constraintdef(oid), convalidated) AS line FROM pg_constraint WHERE conrelid = 'public.items'::regclass
           UNION ALL SELECT format('idx %s', pg_get_indexdef(indexrelid)) FROM pg_index WHERE indrelid = 'public.items'::regclass
           UNION ALL SELECT format('col %s %s notnull=%s default=%s comment=%s', attname, format_type(atttypid, atttypmod), attnotnull, pg_get_expr(adbin, adrelid), col_description(attrelid, attnum))
             FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
             WHERE attrelid = 'public.items'::regclass AND attnum > 0 AND NOT attisdropped
         ) l ORDER BY line",
    )
    .await
}

#[tokio::test]
async fn type_change_keeps_check_partial_index_foreign_key_default_and_comment() {
    let (db, v1) = setup().await;
    let admin = db.client().await;
    let shape_before = catalog_of_items(&admin).await;
    let v2 = start_twice(&db, "02_qty_bigint", r#"{"operations": [{"alter_column": {"table": "items", "column": "qty", "type": "bigint"}}]}"#).await;
    assert_eq!(
        texts(&v2, "SELECT pg_typeof(qty)::text FROM items LIMIT 1").await,
        ["bigint"]
    );
    assert_eq!(
        texts(&v1, "SELECT pg_typeof(qty)::text FROM items LIMIT 1").await,
        ["integer"]
    );
    v1.batch_execute("INSERT INTO items (id, qty, code) VALUES (3, 30, 'c'); UPDATE items SET qty = 6 WHERE id = 1").await.unwrap();
    v2.batch_execute("INSERT INTO items (id, qty, code) VALUES (4, 40, 'd')")
        .await
        .unwrap();
    v2.batch_execute("INSERT INTO items (id, code) VALUES (5, 'e')")
        .await
        .unwrap();
    assert!(
        v2.batch_execute("INSERT INTO items (id, qty, code) VALUES (6, -1, 'f')")
            .await
            .is_err(),
        "the check holds on the new column"
    );
    assert!(
        v1.batch_execute("INSERT INTO items (id, qty, code) VALUES (6, -1, 'f')")
            .await
            .is_err(),
        "and on the old one"
    );
    let both = "SELECT string_agg(id || ':' || qty, ',' ORDER BY id) FROM items";
    assert_eq!(texts(&v1, both).await, ["1:6,2:20,3:30,4:40,5:1"]);
    assert_eq!(texts(&v2, both).await, ["1:6,2:20,3:30,4:40,5:1"]);
    db.tandem_ok(&["complete"]);
    let after = catalog_of_items(&admin).await;
    let expected: Vec<String> = shape_before
        .iter()
        .map(|l| l.replace("qty integer", "qty bigint"))
        .collect();
    assert_eq!(
        after, expected,
        "every constraint, index, default and comment survives, with the new type"
    );
    assert_eq!(texts(&v2, both).await, ["1:6,2:20,3:30,4:40,5:1"]);
}

#[tokio::test]
async fn set_not_null_with_up_and_unset_with_down() {
    let (db, v1) = setup().await;
    let v2 = start_twice(&db, "02_label_required", r#"{"operations": [{"alter_column": {"table": "items", "column": "label", "nullable": false, "up": "COALESCE(label, 'none')", "down": "label"}}]}"#).await;
    assert_eq!(
        texts(&v2, "SELECT label FROM items ORDER BY id").await,
        ["none", "two"]
    );
    assert!(
        v2.batch_execute("INSERT INTO items (id, code) VALUES (3, 'c')")
            .await
            .is_err(),
        "NULL refused for the new version"
    );
    v1.batch_execute("INSERT INTO items (id, code) VALUES (3, 'c')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT label FROM items WHERE id = 3").await,
        ["none"],
        "old NULL writes go through up"
    );
    assert_eq!(
        texts(&v1, "SELECT label FROM items WHERE id = 3").await,
        ["NULL"]
    );
    db.tandem_ok(&["complete"]);
    let admin = db.client().await;
    assert_eq!(texts(&admin, "SELECT attnotnull::text FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'label'").await, ["true"]);
    assert_eq!(
        texts(
            &admin,
            "SELECT count(*)::text FROM pg_constraint WHERE conname LIKE '_tandem%'"
        )
        .await,
        ["0"]
    );

    let v3 = start_twice(&db, "03_label_optional", r#"{"operations": [{"alter_column": {"table": "items", "column": "label", "nullable": true, "up": "label", "down": "COALESCE(label, 'unknown')"}}]}"#).await;
    let v2 = db.client_on("public_02_label_required").await;
    v3.batch_execute("INSERT INTO items (id, code) VALUES (4, 'd')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT label FROM items WHERE id = 4").await,
        ["unknown"],
        "the old version never sees NULL"
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(texts(&admin, "SELECT attnotnull::text FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'label'").await, ["false"]);
}

#[tokio::test]
async fn default_and_comment_change_without_copying_the_column() {
    let (db, v1) = setup().await;
    let v2 = start_twice(&db, "02_qty_default", r#"{"operations": [{"alter_column": {"table": "items", "column": "qty", "default": "7", "comment": "count"}}]}"#).await;
    let admin = db.client().await;
    assert_eq!(texts(&admin, "SELECT count(*)::text FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname LIKE '_tandem%' AND NOT attisdropped").await, ["0"], "no shadow column");
    v1.batch_execute("INSERT INTO items (id, code) VALUES (3, 'c')")
        .await
        .unwrap();
    v2.batch_execute("INSERT INTO items (id, code) VALUES (4, 'd')")
        .await
        .unwrap();
    assert_eq!(
        texts(
            &v2,
            "SELECT qty::text FROM items WHERE id IN (3, 4) ORDER BY id"
        )
        .await,
        ["1", "7"],
        "each version inserts with its own default"
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(texts(&admin, "SELECT pg_get_expr(adbin, adrelid) FROM pg_attrdef WHERE adrelid = 'public.items'::regclass AND adnum = 2").await, ["7"]);
    assert_eq!(
        texts(
            &admin,
            "SELECT col_description('public.items'::regclass, 2)"
        )
        .await,
        ["count"]
    );
    let v3 = start_twice(&db, "03_drop_default", r#"{"operations": [{"alter_column": {"table": "items", "column": "qty", "default": null, "comment": null}}]}"#).await;
    // As in pgroll, the new version has no default from start on: qty is NOT NULL, so an
    // insert that leaves it out fails, while the old version still gets its default.
    let err = v3
        .batch_execute("INSERT INTO items (id, code) VALUES (5, 'e')")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::NOT_NULL_VIOLATION)
    );
    v3.batch_execute("INSERT INTO items (id, qty, code) VALUES (5, 3, 'e')")
        .await
        .unwrap();
    db.tandem_ok(&["complete"]);
    assert_eq!(texts(&admin, "SELECT count(*)::text FROM pg_attrdef WHERE adrelid = 'public.items'::regclass AND adnum = 2").await, ["0"]);
    assert_eq!(
        texts(
            &admin,
            "SELECT col_description('public.items'::regclass, 2)"
        )
        .await,
        ["NULL"]
    );
}

#[tokio::test]
async fn unique_check_and_references_go_on_the_shadow_column() {
    let (db, v1) = setup().await;
    v1.batch_execute("INSERT INTO items (id, qty, label, code) VALUES (3, 1, 'two', 'c')")
        .await
        .unwrap();
    let v2 = start_twice(
        &db,
        "02_label_rules",
        r#"{"operations": [{"alter_column": {"table": "items", "column": "label",
            "unique": {"name": "items_label_key"},
            "check": {"name": "label_not_blank", "constraint": "length(label) > 0"},
            "up": "CASE WHEN label IS NULL THEN NULL ELSE label || '-' || id END", "down": "label"}}]}"#,
    )
    .await;
    assert_eq!(
        texts(&v2, "SELECT label FROM items ORDER BY id").await,
        ["NULL", "two-2", "two-3"]
    );
    assert!(
        v2.batch_execute("INSERT INTO items (id, label, code) VALUES (9, 'two-2', 'z')")
            .await
            .is_err(),
        "unique on the new version"
    );
    assert!(
        v2.batch_execute("INSERT INTO items (id, label, code) VALUES (9, '', 'z')")
            .await
            .is_err(),
        "check on the new version"
    );
    v1.batch_execute("INSERT INTO items (id, label, code) VALUES (4, 'two', 'd')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT label FROM items WHERE id = 4").await,
        ["two-4"],
        "the old version's duplicates are made unique by up"
    );
    db.tandem_ok(&["complete"]);
    let admin = db.client().await;
    assert_eq!(
        texts(&admin, "SELECT conname || ' ' || convalidated FROM pg_constraint WHERE conrelid = 'public.items'::regclass AND conname LIKE 'label%' OR conname = 'items_label_key' ORDER BY 1").await,
        ["items_label_key true", "label_not_blank true"]
    );

    let v3 = start_twice(&db, "03_label_owner", r#"{"operations": [{"alter_column": {"table": "items", "column": "qty",
        "references": {"name": "items_qty_user_fk", "table": "users", "column": "id", "on_delete": "SET NULL"},
        "up": "CASE WHEN EXISTS (SELECT 1 FROM users WHERE users.id = qty) THEN qty ELSE NULL END", "down": "COALESCE(qty, 0)", "nullable": true}}]}"#).await;
    assert_eq!(
        texts(
            &v3,
            "SELECT coalesce(qty::text, 'NULL') FROM items ORDER BY id"
        )
        .await,
        ["NULL", "NULL", "1", "1"],
        "qty 5 and 20 name no user"
    );
    assert!(
        v3.batch_execute("INSERT INTO items (id, qty, code) VALUES (10, 99, 'x')")
            .await
            .is_err(),
        "the foreign key holds for the new version"
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(
            &admin,
            "SELECT convalidated::text FROM pg_constraint WHERE conname = 'items_qty_user_fk'"
        )
        .await,
        ["true"]
    );
}

#[tokio::test]
async fn several_changes_at_once_and_a_rename() {
    let (db, v1) = setup().await;
    let v2 = start_twice(
        &db,
        "02_code_changes",
        r#"{"operations": [{"alter_column": {"table": "items", "column": "code", "name": "sku", "type": "varchar(20)",
            "default": "'none'", "comment": "stock keeping unit",
            "up": "upper(code)", "down": "lower(sku)"}}]}"#,
    )
    .await;
    assert_eq!(
        texts(&v2, "SELECT sku FROM items ORDER BY id").await,
        ["A", "B"]
    );
    v2.batch_execute("INSERT INTO items (id, sku) VALUES (3, 'XY')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v1, "SELECT code FROM items WHERE id = 3").await,
        ["xy"]
    );
    assert!(
        v2.batch_execute("INSERT INTO items (id, sku) VALUES (4, 'A')")
            .await
            .is_err(),
        "the copied unique constraint holds"
    );
    db.tandem_ok(&["complete"]);
    let admin = db.client().await;
    assert_eq!(
        texts(&admin, "SELECT format('%s %s %s', format_type(atttypid, atttypmod), col_description(attrelid, attnum), pg_get_expr(adbin, adrelid)) FROM pg_attribute JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum WHERE attrelid = 'public.items'::regclass AND attname = 'sku'").await,
        ["character varying(20) stock keeping unit 'none'::character varying"]
    );
    assert_eq!(
        texts(
            &admin,
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'items_code_key'"
        )
        .await,
        ["UNIQUE (sku)"]
    );
}

/// The type of a primary-key column changes like any other column's (pgroll's behaviour):
/// the key is enforced on the shadow by a unique index while both versions run, and moves to
/// it at complete; one column of a composite key works the same way.
#[tokio::test]
async fn a_primary_key_column_changes_type_and_keeps_its_key() {
    let db = crate::support::TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text);
         CREATE TABLE entries (account int, line int, amount int, PRIMARY KEY (account, line));
         INSERT INTO accounts VALUES (1, 'ann'), (2, 'ben');
         INSERT INTO entries VALUES (1, 1, 10), (1, 2, 20);",
    )
    .await
    .unwrap();
    db.tandem_ok(&["init"]);
    let dir = std::env::temp_dir().join(format!("tandem-pk-{}", std::process::id()));
    db.tandem_ok(&["baseline", "01_base", dir.to_str().unwrap()]);
    let v2 = start_twice(
        &db,
        "02_bigint_keys",
        r#"{"operations": [
          {"alter_column": {"table": "accounts", "column": "id", "type": "bigint", "up": "id", "down": "id::int"}},
          {"alter_column": {"table": "entries", "column": "line", "type": "bigint", "up": "line", "down": "line::int"}}
        ]}"#,
    )
    .await;
    let v1 = db.client_on("public_01_base").await;
    v1.batch_execute("INSERT INTO accounts (id, owner) VALUES (3, 'cy')")
        .await
        .unwrap();
    v2.batch_execute("INSERT INTO accounts (id, owner) VALUES (4, 'dee'); INSERT INTO entries (account, line, amount) VALUES (1, 3, 30)")
        .await
        .unwrap();
    // The key holds in both versions while they run.
    let dup = v2
        .batch_execute("INSERT INTO accounts (id, owner) VALUES (3, 'again')")
        .await
        .unwrap_err();
    assert_eq!(
        dup.code(),
        Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s', conrelid::regclass, pg_get_constraintdef(oid)) FROM pg_constraint
              WHERE contype = 'p' AND conrelid IN ('accounts'::regclass, 'entries'::regclass) ORDER BY 1"
        )
        .await,
        ["accounts PRIMARY KEY (id)", "entries PRIMARY KEY (account, line)"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s', attrelid::regclass, format_type(atttypid, atttypmod)) FROM pg_attribute
              WHERE (attrelid, attname) IN (('accounts'::regclass, 'id'), ('entries'::regclass, 'line')) ORDER BY 1"
        )
        .await,
        ["accounts bigint", "entries bigint"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT string_agg(id::text, ',' ORDER BY id) FROM accounts"
        )
        .await,
        ["1,2,3,4"]
    );
}
