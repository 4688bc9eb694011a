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
    let url = db.tandem_ok(&["latest", "url"]);
    assert!(url.contains("public_add_nick"), "{url}");
    // Behind a transaction pooler the URL's startup option is lost: stderr says what to do.
    let note = db.tandem(&["latest", "url"]).stderr;
    assert!(
        String::from_utf8_lossy(&note)
            .contains(r#"SET LOCAL search_path = "public_add_nick", "public""#),
        "{}",
        String::from_utf8_lossy(&note)
    );
    // From the files alone, too.
    let dir = file.parent().unwrap().to_str().unwrap();
    assert_eq!(
        db.tandem_ok(&["latest", "schema", "--local", dir]).trim(),
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
    // pull writes the file's own value back, which names the same schema when replayed.
    let pulled = std::env::temp_dir().join(format!("tandem-parity-pull-{}", std::process::id()));
    db.tandem_ok(&["pull", pulled.to_str().unwrap()]);
    let text = std::fs::read_to_string(pulled.join("02_add_nick.json")).unwrap();
    assert!(text.contains("\"version_schema\": \"add_nick\""), "{text}");
    let _ = std::fs::remove_dir_all(&pulled);
}

#[tokio::test]
async fn omitted_or_empty_up_and_down_copy_the_value() {
    let (db, v1) = setup().await;
    // `up: ""` is the same as no `up`: the value is copied. Making `name` nullable needs a
    // `down` (as in pgroll); the unique constraint and the default need neither.
    let migration = r#"{"operations": [
        {"alter_column": {"table": "people", "column": "name", "nullable": true,
          "unique": {"name": "people_name_unique"}, "up": "", "down": "coalesce(name, 'anon')"}},
        {"alter_column": {"table": "people", "column": "email", "default": "'none@x'",
          "comment": "where to write", "up": "", "down": ""}},
        {"alter_column": {"table": "people", "column": "age", "type": "varchar(10)"}}
    ]}"#;
    let file = migration_file("02_defaults.json", migration);
    start_roll_back_start(&db, &file).await;
    let v2 = db.client_on("public_02_defaults").await;
    v1.batch_execute("INSERT INTO people (name, age) VALUES ('carol', '41')")
        .await
        .unwrap();
    v2.batch_execute("INSERT INTO people (name, age) VALUES (NULL, '7')")
        .await
        .unwrap();
    v1.batch_execute("UPDATE people SET age = '31' WHERE name = 'alice'")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT coalesce(name, '-') || ' ' || coalesce(age, '-') || ' ' || coalesce(email, '-') FROM people ORDER BY id").await,
        // The old version's insert has no default for email: the new one applies at complete.
        ["alice 31 a@x", "bob - b@x", "carol 41 -", "- 7 none@x"]
    );
    assert_eq!(
        texts(
            &v1,
            "SELECT name || ' ' || coalesce(age, '-') FROM people ORDER BY id"
        )
        .await,
        ["alice 31", "bob -", "carol 41", "anon 7"]
    );
    // The new version's unique constraint holds for values copied from old-version writes.
    assert!(v1
        .batch_execute("INSERT INTO people (name) VALUES ('carol')")
        .await
        .is_err());
    db.tandem_ok(&["complete"]);
    let v2 = db.client_on("public_02_defaults").await;
    assert_eq!(
        texts(
            &v2,
            "SELECT coalesce(name, '-') || ' ' || coalesce(age, '-') FROM people ORDER BY id"
        )
        .await,
        ["alice 31", "bob -", "carol 41", "- 7"]
    );
    let c = db.client().await;
    assert_eq!(
        texts(&c, "SELECT format_type(atttypid, atttypmod) || ' ' || attnotnull::text FROM pg_attribute WHERE attrelid = 'public.people'::regclass AND attname IN ('name', 'age') ORDER BY attname").await,
        ["character varying(10) false", "text false"]
    );
    assert_eq!(
        texts(&c, "SELECT conname::text FROM pg_constraint WHERE conrelid = 'public.people'::regclass AND contype = 'u'").await,
        ["people_name_unique"]
    );
}

#[tokio::test]
async fn drop_constraint_needs_down_and_an_empty_up_copies_the_value() {
    let (db, v1) = setup().await;
    let add = r#"{"operations": [{"create_constraint": {"table": "people", "name": "age_short",
        "type": "check", "columns": ["age"], "check": "length(age) < 4",
        "up": {"age": "CASE WHEN length(age) < 4 THEN age ELSE NULL END"}}}]}"#;
    let file = migration_file("02_age_short.json", add);
    db.tandem_ok(&["start", "--complete", file.to_str().unwrap()]);
    let v2 = db.client_on("public_02_age_short").await;
    assert!(v2
        .batch_execute("INSERT INTO people (name, age) VALUES ('x', '12345')")
        .await
        .is_err());
    // As in pgroll, `down` is required: a copied value could break the old column's check.
    let without_down = r#"{"operations": [{"drop_constraint": {"table": "people", "name": "age_short", "up": "", "down": ""}}]}"#;
    let file = migration_file("03_drop_age_short.json", without_down);
    let out = db.tandem(&["start", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/operations/0/drop_constraint") && stderr.contains("`down`"),
        "{stderr}"
    );
    assert_eq!(
        db.tandem_ok(&["latest", "schema"]).trim(),
        "public_02_age_short"
    );
    let dropping = r#"{"operations": [{"drop_constraint": {"table": "people", "name": "age_short", "up": "",
        "down": "CASE WHEN length(age) < 4 THEN age ELSE left(age, 3) END"}}]}"#;
    let file = migration_file("03_drop_age_short.json", dropping);
    start_roll_back_start(&db, &file).await;
    let v3 = db.client_on("public_03_drop_age_short").await;
    v2.batch_execute("INSERT INTO people (name, age) VALUES ('carol', '12')")
        .await
        .unwrap();
    v3.batch_execute("INSERT INTO people (name, age) VALUES ('dave', '99999')")
        .await
        .unwrap();
    assert_eq!(
        texts(
            &v3,
            "SELECT name || ' ' || coalesce(age, '-') FROM people ORDER BY id"
        )
        .await,
        ["alice 30", "bob -", "carol 12", "dave 99999"]
    );
    assert_eq!(
        texts(
            &v2,
            "SELECT name || ' ' || coalesce(age, '-') FROM people ORDER BY id"
        )
        .await,
        ["alice 30", "bob -", "carol 12", "dave 999"]
    );
    drop(v1);
    db.tandem_ok(&["complete"]);
    let v3 = db.client_on("public_03_drop_age_short").await;
    v3.batch_execute("INSERT INTO people (name, age) VALUES ('erin', '12345')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v3, "SELECT coalesce(age, '-') FROM people ORDER BY id").await,
        ["30", "-", "12", "99999", "12345"]
    );
}

/// Runs `start` on a file that must be refused: exit 2, every pointer named, nothing changed.
async fn refused(db: &TestDb, name: &str, json: &str, pointers: &[&str]) {
    let admin = db.client().await;
    let before = crate::support::catalog_snapshot(&admin).await;
    let file = migration_file(name, json);
    let out = db.tandem(&["start", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
    for pointer in pointers {
        assert!(
            stderr.contains(&format!("{pointer}:")),
            "{name}: no {pointer} in {stderr}"
        );
    }
    assert_eq!(
        before,
        crate::support::catalog_snapshot(&admin).await,
        "{name}"
    );
    assert_eq!(db.tandem_ok(&["latest", "schema"]).trim(), V1);
}

#[tokio::test]
async fn validation_pgroll_does_refuses_before_anything_changes() {
    let (db, v1) = setup().await;
    let long = "x".repeat(64);
    refused(
        &db,
        "02_long.json",
        &format!(
            r#"{{"operations": [
            {{"create_table": {{"name": "{long}", "columns": [{{"name": "{long}", "type": "int"}}]}}}},
            {{"add_column": {{"table": "people", "column": {{"name": "{long}", "type": "int", "nullable": true}}}}}},
            {{"create_constraint": {{"table": "people", "name": "{long}", "type": "unique", "columns": ["email"], "up": {{"email": "email"}}}}}},
            {{"create_index": {{"name": "{long}", "table": "people", "columns": ["email"]}}}}]}}"#
        ),
        &[
            "/operations/0/create_table/name",
            "/operations/0/create_table/columns/0/name",
            "/operations/1/add_column/column/name",
            "/operations/2/create_constraint/name",
            "/operations/3/create_index/name",
        ],
    )
    .await;
    refused(
        &db,
        "02_no_up.json",
        r#"{"operations": [{"create_constraint": {"table": "people", "name": "name_email", "type": "unique",
            "columns": ["name", "email"], "up": {"name": "name"}}}]}"#,
        &["/operations/0/create_constraint/up"],
    )
    .await;
    refused(
        &db,
        "02_noop.json",
        r#"{"operations": [
            {"alter_column": {"table": "people", "column": "email", "nullable": true, "down": "email"}},
            {"alter_column": {"table": "people", "column": "name", "nullable": false, "up": "name"}},
            {"alter_column": {"table": "people", "column": "age", "nullable": false}}]}"#,
        &[
            "/operations/0/alter_column/nullable",
            "/operations/1/alter_column/nullable",
            "/operations/2/alter_column/up",
        ],
    )
    .await;
    refused(
        &db,
        "02_refs.json",
        r#"{"operations": [
            {"alter_column": {"table": "people", "column": "email", "up": "email", "down": "email",
              "references": {"name": "email_fk", "table": "people", "column": "nope"}}},
            {"create_constraint": {"table": "people", "name": "age_fk", "type": "foreign_key",
              "columns": ["age"], "references": {"table": "people", "columns": ["nope"]}, "up": {"age": "age"}}},
            {"alter_column": {"table": "people", "column": "name", "unique": {"name": "people_pkey"}}}]}"#,
        &[
            "/operations/0/alter_column/references/column",
            "/operations/1/create_constraint/references/columns/0",
            "/operations/2/alter_column/unique/name",
        ],
    )
    .await;
    // drop_multicolumn_constraint needs a `down` for every column of the constraint.
    let file = migration_file(
        "02_pair.json",
        r#"{"operations": [{"create_constraint": {"table": "people", "name": "people_pair", "type": "unique",
            "columns": ["name", "email"], "up": {"name": "name || '-' || id", "email": "email"}}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", file.to_str().unwrap()]);
    let admin = db.client().await;
    let before = crate::support::catalog_snapshot(&admin).await;
    let file = migration_file(
        "03_drop_pair.json",
        r#"{"operations": [{"drop_multicolumn_constraint": {"table": "people", "name": "people_pair",
            "down": {"name": "name"}}}]}"#,
    );
    let out = db.tandem(&["start", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/operations/0/drop_multicolumn_constraint/down:")
            && stderr.contains("\"email\""),
        "{stderr}"
    );
    assert_eq!(before, crate::support::catalog_snapshot(&admin).await);
    assert_eq!(db.tandem_ok(&["latest", "schema"]).trim(), "public_02_pair");
    // Both versions still write and read.
    v1.batch_execute("INSERT INTO people (name) VALUES ('carol')")
        .await
        .unwrap();
    let v2 = db.client_on("public_02_pair").await;
    assert_eq!(
        texts(&v2, "SELECT name FROM people ORDER BY id").await,
        ["alice-1", "bob-2", "carol"]
    );
}

#[tokio::test]
async fn a_type_change_drops_the_default_and_checks_that_no_longer_fit() {
    let (db, v1) = setup().await;
    // The default changes, then a constraint rebuilds the column: its copy has the new default.
    let file = migration_file(
        "02_age_rules.json",
        r#"{"operations": [
            {"alter_column": {"table": "people", "column": "age", "default": "'unknown'"}},
            {"create_constraint": {"table": "people", "name": "age_nonempty", "type": "check",
              "columns": ["age"], "check": "length(age) > 0", "up": {"age": "nullif(age, '')"}}},
            {"add_column": {"table": "people", "column": {"name": "score", "type": "integer",
              "default": "5", "check": {"name": "score_positive", "constraint": "score >= 0"}}}}
        ]}"#,
    );
    db.tandem_ok(&["start", "--complete", file.to_str().unwrap()]);
    drop(v1);
    let v2 = db.client_on("public_02_age_rules").await;
    // age becomes an integer: its text default and its length() check cannot apply, and are
    // dropped (pgroll's rule); score becomes a bigint and keeps both of its own.
    let migration = r#"{"operations": [
        {"alter_column": {"table": "people", "column": "age", "type": "integer",
          "up": "CASE WHEN age ~ '^[0-9]+$' THEN age::integer END", "down": "age::text"}},
        {"alter_column": {"table": "people", "column": "score", "type": "bigint"}}
    ]}"#;
    let file = migration_file("03_age_int.json", migration);
    start_roll_back_start(&db, &file).await;
    let v3 = db.client_on("public_03_age_int").await;
    v2.batch_execute("INSERT INTO people (name) VALUES ('carol'); INSERT INTO people (name, age) VALUES ('dave', '41')")
        .await
        .unwrap();
    v3.batch_execute("INSERT INTO people (name, age) VALUES ('erin', 7); INSERT INTO people (name) VALUES ('fred')")
        .await
        .unwrap();
    assert!(v3
        .batch_execute("INSERT INTO people (name, score) VALUES ('neg', -1)")
        .await
        .is_err());
    let rows =
        "SELECT name || ' ' || coalesce(age::text, '-') || ' ' || score FROM people ORDER BY id";
    assert_eq!(
        texts(&v3, rows).await,
        [
            "alice 30 5",
            "bob - 5",
            "carol - 5",
            "dave 41 5",
            "erin 7 5",
            "fred - 5"
        ]
    );
    assert_eq!(
        texts(&v2, rows).await,
        [
            "alice 30 5",
            "bob - 5",
            "carol unknown 5",
            "dave 41 5",
            "erin 7 5",
            "fred - 5"
        ]
    );
    db.tandem_ok(&["complete"]);
    let v3 = db.client_on("public_03_age_int").await;
    v3.batch_execute("INSERT INTO people (name) VALUES ('gina')")
        .await
        .unwrap();
    assert_eq!(
        texts(
            &v3,
            "SELECT coalesce(age::text, '-') || ' ' || score FROM people WHERE name = 'gina'"
        )
        .await,
        ["- 5"]
    );
    let c = db.client().await;
    assert_eq!(
        texts(&c, "SELECT attname || ' ' || format_type(atttypid, atttypmod) || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-') FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE attrelid = 'public.people'::regclass AND attname IN ('age', 'score') ORDER BY attname").await,
        ["age integer -", "score bigint 5"]
    );
    assert_eq!(
        texts(&c, "SELECT conname::text FROM pg_constraint WHERE conrelid = 'public.people'::regclass AND contype = 'c' ORDER BY 1").await,
        ["score_positive"]
    );
}

/// A migration started by an earlier tandem, which named its version schema by the bare
/// `version_schema` value, is completed or rolled back under the name it was recorded with.
#[tokio::test]
async fn a_version_schema_recorded_by_the_old_rule_is_still_found() {
    let (db, _v1) = setup().await;
    let admin = db.client().await;
    let before = crate::support::catalog_snapshot(&admin).await;
    let migration = r#"{"version_schema": "nick_v2", "operations": [
        {"add_column": {"table": "people", "column": {"name": "nick", "type": "text", "nullable": true},
         "up": "upper(name)"}}]}"#;
    let file = migration_file("02_nick.json", migration);
    let path = file.to_str().unwrap();
    // What the earlier naming left behind: the schema named `nick_v2`, recorded so.
    let as_before = "ALTER SCHEMA public_nick_v2 RENAME TO nick_v2;
        UPDATE tandem.migrations SET version_schema = 'nick_v2' WHERE name = '02_nick'";
    db.tandem_ok(&["start", path]);
    admin.batch_execute(as_before).await.unwrap();
    db.tandem_ok(&["rollback"]);
    assert_eq!(before, crate::support::catalog_snapshot(&admin).await);
    db.tandem_ok(&["start", path]);
    admin.batch_execute(as_before).await.unwrap();
    assert_eq!(db.tandem_ok(&["latest", "schema"]).trim(), "nick_v2");
    db.tandem_ok(&["complete"]);
    let v2 = db.client_on("nick_v2").await;
    v2.batch_execute("INSERT INTO people (name, nick) VALUES ('carol', 'C')")
        .await
        .unwrap();
    assert_eq!(
        texts(&v2, "SELECT nick FROM people ORDER BY id").await,
        ["ALICE", "BOB", "C"]
    );
    assert_eq!(db.tandem_ok(&["latest", "schema"]).trim(), "nick_v2");
}
