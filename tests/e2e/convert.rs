//! `tandem convert`: a DDL script becomes a migration that runs (start, rollback, start,
//! complete) once its placeholders are filled in; a placeholder left in is refused.

use crate::support::{migration_file, start_roll_back_start, texts, TestDb};

/// Converts `sql` (via a file) and returns the migration as JSON.
fn convert(db: &TestDb, sql: &str) -> serde_json::Value {
    let input = migration_file("script.sql", sql);
    let out = db.tandem_ok(&["convert", "--json", input.to_str().unwrap()]);
    serde_json::from_str(&out).expect("convert prints JSON")
}

async fn start_and_complete(db: &TestDb, name: &str, migration: &serde_json::Value) {
    let file = migration_file(&format!("{name}.json"), &migration.to_string());
    db.tandem_ok(&["validate", file.to_str().unwrap()]);
    start_roll_back_start(db, &file).await;
    db.tandem_ok(&["complete"]);
}

#[tokio::test]
async fn a_converted_script_runs_start_rollback_start_complete() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let first = convert(
        &db,
        "CREATE TABLE items (
            id bigint PRIMARY KEY,
            name text NOT NULL,
            price int,
            created_at timestamptz NOT NULL DEFAULT now()
        );",
    );
    assert_eq!(
        first["operations"][0]["create_table"]["columns"][2]["nullable"],
        true
    );
    start_and_complete(&db, "01_items", &first).await;
    let v1 = db.client_on("public_01_items").await;
    v1.batch_execute(
        "INSERT INTO items (id, name, price) VALUES (1, 'a', 5), (2, 'b', -3), (3, 'c', NULL)",
    )
    .await
    .unwrap();

    let mut second = convert(
        &db,
        "ALTER TABLE items ADD COLUMN status text NOT NULL DEFAULT 'new';
         CREATE INDEX CONCURRENTLY items_name_idx ON items (name);
         ALTER TABLE items ADD CONSTRAINT price_positive CHECK (price > 0) NOT VALID;
         ALTER TABLE items RENAME COLUMN name TO title;",
    );
    let ops = second["operations"].as_array().unwrap();
    let keys: Vec<&str> = ops
        .iter()
        .map(|op| op.as_object().unwrap().keys().next().unwrap().as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "add_column",
            "create_index",
            "create_constraint",
            "rename_column"
        ]
    );
    let up = &mut second["operations"][2]["create_constraint"]["up"]["price"];
    assert!(up.as_str().unwrap().starts_with("TODO:"), "{up}");
    // What a person fills in: old prices that break the check become 1.
    *up = serde_json::json!("CASE WHEN price <= 0 THEN 1 ELSE price END");
    start_and_complete(&db, "02_more", &second).await;

    let v2 = db.client_on("public_02_more").await;
    assert_eq!(
        texts(&v2, "SELECT id || ':' || title || ':' || coalesce(price::text, '-') || ':' || status FROM items ORDER BY id").await,
        ["1:a:5:new", "2:b:1:new", "3:c:-:new"]
    );
    let admin = db.client().await;
    assert_eq!(
        texts(&admin, "SELECT conname || ' ' || convalidated FROM pg_constraint WHERE conname = 'price_positive'").await,
        ["price_positive true"]
    );
    assert_eq!(
        texts(
            &admin,
            "SELECT indexname FROM pg_indexes WHERE indexname = 'items_name_idx'"
        )
        .await,
        ["items_name_idx"]
    );
    assert!(v2
        .batch_execute("INSERT INTO items (id, title, price) VALUES (4, 'd', 0)")
        .await
        .is_err());
}

#[tokio::test]
async fn every_create_table_clause_converts_and_runs() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let migration = convert(
        &db,
        "CREATE TABLE owners (id int PRIMARY KEY);
         CREATE TABLE t (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            a int,
            s varchar(20) NOT NULL DEFAULT 'x' CHECK (length(s) > 0),
            total numeric(10,2) GENERATED ALWAYS AS (a * 2) STORED,
            o int REFERENCES owners (id) ON DELETE SET NULL DEFERRABLE,
            tags text[],
            UNIQUE (a) DEFERRABLE INITIALLY DEFERRED,
            CONSTRAINT a_pos CHECK (a > 0),
            FOREIGN KEY (a) REFERENCES owners (id) MATCH FULL
         );
         CREATE UNIQUE INDEX t_s ON t (s DESC NULLS LAST) WHERE a > 1;
         CREATE INDEX t_tags ON t USING gin (tags) WITH (fastupdate = off);",
    );
    let ops = migration["operations"].as_array().unwrap();
    assert_eq!(ops.len(), 4, "{migration}");
    assert!(!migration.to_string().contains("\"sql\""), "{migration}");
    start_and_complete(&db, "01_tables", &migration).await;
    let admin = db.client().await;
    assert_eq!(
        texts(
            &admin,
            "SELECT conname || ': ' || pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = 'public.t'::regclass ORDER BY conname"
        )
        .await,
        [
            "a_pos: CHECK ((a > 0))",
            "t_a_fkey: FOREIGN KEY (a) REFERENCES owners(id) MATCH FULL",
            "t_a_key: UNIQUE (a) DEFERRABLE INITIALLY DEFERRED",
            "t_o_fkey: FOREIGN KEY (o) REFERENCES owners(id) ON DELETE SET NULL DEFERRABLE",
            "t_pkey: PRIMARY KEY (id)",
            "t_s_check: CHECK ((length((s)::text) > 0))",
        ]
    );
    assert_eq!(
        texts(
            &admin,
            "SELECT indexdef FROM pg_indexes WHERE indexname IN ('t_s', 't_tags') ORDER BY 1"
        )
        .await,
        [
            "CREATE INDEX t_tags ON public.t USING gin (tags) WITH (fastupdate=off)",
            "CREATE UNIQUE INDEX t_s ON public.t USING btree (s DESC NULLS LAST) WHERE (a > 1)",
        ]
    );
}

#[tokio::test]
async fn a_placeholder_left_in_is_refused_by_validate() {
    let db = TestDb::new().await;
    let input = migration_file(
        "script.sql",
        "ALTER TABLE items ALTER COLUMN price SET NOT NULL;",
    );
    let out = db.tandem_ok(&["convert", input.to_str().unwrap()]);
    assert!(out.contains("TODO:"), "{out}");
    let file = migration_file("03_not_null.yaml", &out);
    let validated = db.tandem(&["validate", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&validated.stderr);
    assert_eq!(validated.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/operations/0/alter_column/up: `up` is still a placeholder"),
        "{stderr}"
    );
}

#[test]
fn stdin_in_json_and_name_out_notes_on_stderr() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["convert", "-", "--json", "--name", "07_view"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tandem");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"CREATE VIEW v AS SELECT 1;")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let file: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        file,
        serde_json::json!({"name": "07_view", "operations": [{"sql": {"up": "CREATE VIEW v AS SELECT 1"}}]})
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("/operations/0/sql: kept as a `sql` operation"),
        "{stderr}"
    );
}
