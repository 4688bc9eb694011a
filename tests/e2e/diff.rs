//! `tandem diff`: the live database against what its migration files build (replayed into a
//! scratch database), and two databases against each other. Exit code 0 equal, 1 different,
//! 2 when the comparison cannot be made.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

use crate::support::{migrations_dir, TestDb};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations-examples")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

const CREATE_USERS: &str = r#"{"operations": [
  {"create_table": {"name": "users", "columns": [
    {"name": "id", "type": "serial", "pk": true},
    {"name": "name", "type": "text"},
    {"name": "email", "type": "text", "nullable": true}
  ]}},
  {"create_index": {"name": "users_name_idx", "table": "users", "columns": ["name"]}}
]}"#;

const ADD_NICKNAME: &str = r#"{"operations": [
  {"add_column": {"table": "users", "column": {"name": "nickname", "type": "text", "nullable": true}}}
]}"#;

#[tokio::test]
async fn diff_finds_nothing_after_migrating_the_examples() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let dir = examples();
    let dir = dir.to_str().unwrap();
    db.tandem_ok(&["migrate", dir, "--complete"]);
    // The default scratch: a throwaway local PostgreSQL.
    let out = db.tandem(&["diff", "--migrations", dir]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out),
        format!("no differences: the database and the migration files of {dir} have the same schema \"public\"\n")
    );
    for name in ["01_create_users_products", "09_drop_legacy_coupons"] {
        assert!(
            stderr(&out).contains(&format!("  - {name}\n")),
            "{}",
            stderr(&out)
        );
    }
    let out = db.tandem(&[
        "diff",
        "--migrations",
        dir,
        "--json",
        "--scratch-url",
        &db.url,
    ]);
    assert_exit(&out, 0);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["equal"], true);
    assert_eq!(json["differences"], serde_json::json!([]));
    assert_eq!(json["replayed"].as_array().unwrap().len(), 9);
    assert_eq!(stderr(&out), "", "--json prints nothing else");
}

#[tokio::test]
async fn diff_reports_changes_made_outside_tandem() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let dir = migrations_dir(&[("01_users.json", CREATE_USERS)]);
    let dir = dir.to_str().unwrap();
    db.tandem_ok(&["migrate", dir, "--complete"]);
    let client = db.client().await;
    client
        .batch_execute(
            "ALTER TABLE public.users ADD COLUMN phone text;
             ALTER TABLE public.users ALTER COLUMN email SET DEFAULT 'x';
             DROP INDEX public.users_name_idx;",
        )
        .await
        .unwrap();
    let out = db.tandem(&["diff", "--migrations", dir, "--scratch-url", &db.url]);
    assert_exit(&out, 1);
    assert_eq!(
        stdout(&out),
        r#"column "users"."email": default differs: 'x'::text (live) vs none (migrations)
column "users"."phone": only in live (text)
index "users_name_idx" on "users": only in migrations (CREATE INDEX users_name_idx ON public.users USING btree (name))
"#
    );
    assert!(
        stderr(&out).contains("differ: 3 differences"),
        "{}",
        stderr(&out)
    );

    let out = db.tandem(&[
        "diff",
        "--migrations",
        dir,
        "--scratch-url",
        &db.url,
        "--json",
    ]);
    assert_exit(&out, 1);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["equal"], false);
    assert_eq!(json["sides"], serde_json::json!(["live", "migrations"]));
    assert_eq!(
        json["differences"][0],
        serde_json::json!({
            "kind": "column_default", "table": "users", "column": "email",
            "live": "'x'::text", "migrations": null,
            "message": "column \"users\".\"email\": default differs: 'x'::text (live) vs none (migrations)"
        })
    );
    let kinds: Vec<&str> = json["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["column_default", "column", "index"]);
    assert_eq!(json["differences"][2]["only_in"], "migrations");
    // The scratch database is gone.
    let scratch = json["scratch_database"].as_str().unwrap();
    assert!(scratch.starts_with("tandem_diff_"), "{scratch}");
    let left: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname = $1",
            &[&scratch],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the scratch database was dropped");

    // Put right by hand: equal again.
    client
        .batch_execute(
            "ALTER TABLE public.users DROP COLUMN phone;
             ALTER TABLE public.users ALTER COLUMN email DROP DEFAULT;
             CREATE INDEX users_name_idx ON public.users (name);",
        )
        .await
        .unwrap();
    let out = db.tandem(&["diff", "--migrations", dir, "--scratch-url", &db.url]);
    assert_exit(&out, 0);
}

#[tokio::test]
async fn diff_notes_files_not_applied_and_replays_only_applied_ones_on_request() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let dir = migrations_dir(&[("01_users.json", CREATE_USERS)]);
    db.tandem_ok(&["migrate", dir.to_str().unwrap(), "--complete"]);
    std::fs::write(dir.join("02_nickname.json"), ADD_NICKNAME).unwrap();
    let dir = dir.to_str().unwrap();

    let out = db.tandem(&["diff", "--migrations", dir, "--scratch-url", &db.url]);
    assert_exit(&out, 1);
    assert_eq!(
        stdout(&out),
        "column \"users\".\"nickname\": only in migrations (text)\n"
    );
    assert!(
        stderr(&out).contains(
            "note: migration \"02_nickname\" is not applied on the live database: its changes show up as differences (--applied-only leaves it out)"
        ),
        "{}",
        stderr(&out)
    );
    let out = db.tandem(&[
        "diff",
        "--migrations",
        dir,
        "--scratch-url",
        &db.url,
        "--applied-only",
    ]);
    assert_exit(&out, 0);

    // In flight on the live database: said so, and its shadow objects differ.
    db.tandem_ok(&["migrate", dir]);
    let out = db.tandem(&[
        "diff",
        "--migrations",
        dir,
        "--scratch-url",
        &db.url,
        "--json",
    ]);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert!(
        json["notes"][0]
            .as_str()
            .unwrap()
            .starts_with("migration \"02_nickname\" is in flight on the live database"),
        "{json}"
    );
}

const FROM: &str = "
    CREATE TABLE public.items (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        price numeric NOT NULL,
        qty integer,
        total numeric GENERATED ALWAYS AS (price * qty) STORED,
        note text
    );
    ALTER TABLE public.items ADD CONSTRAINT items_price_positive CHECK (price > 0);
    COMMENT ON TABLE public.items IS 'things';
    CREATE INDEX items_qty_idx ON public.items (qty);
    CREATE TABLE public.same (a integer UNIQUE);";

const TO: &str = "
    CREATE TABLE public.items (
        id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
        price numeric,
        qty bigint,
        total numeric GENERATED ALWAYS AS (price * 2) STORED,
        note text
    );
    ALTER TABLE public.items ADD CONSTRAINT items_price_positive CHECK (price > 0) NOT VALID;
    CREATE INDEX items_qty_idx ON public.items (qty DESC);
    ALTER TABLE public.items REPLICA IDENTITY FULL;
    CREATE TABLE public.same (a integer UNIQUE);
    CREATE TABLE public.extra (a integer);";

#[tokio::test]
async fn diff_from_to_compares_two_databases() {
    let (from, to) = (TestDb::new().await, TestDb::new().await);
    from.client().await.batch_execute(FROM).await.unwrap();
    to.client().await.batch_execute(FROM).await.unwrap();
    let out = from.tandem(&["diff", "--from", &from.url, "--to", &to.url]);
    assert_exit(&out, 0);
    assert_eq!(
        stdout(&out),
        "no differences: the two databases have the same schema \"public\"\n"
    );

    to.client()
        .await
        .batch_execute(&format!("DROP TABLE public.items, public.same; {TO}"))
        .await
        .unwrap();
    let out = from.tandem(&["diff", "--from", &from.url, "--to", &to.url]);
    assert_exit(&out, 1);
    assert_eq!(
        stdout(&out),
        r#"table "extra": only in to
table "items": comment differs: 'things' (from) vs none (to)
table "items": replica identity differs: DEFAULT (from) vs FULL (to)
column "items"."id": identity differs: GENERATED ALWAYS AS IDENTITY (from) vs GENERATED BY DEFAULT AS IDENTITY (to)
column "items"."price": nullability differs: NOT NULL (from) vs NULL (to)
column "items"."qty": type differs: integer (from) vs bigint (to)
column "items"."total": generation differs: GENERATED ALWAYS AS ((price * (qty)::numeric)) STORED (from) vs GENERATED ALWAYS AS ((price * (2)::numeric)) STORED (to)
constraint "items_price_positive" on "items": validation differs: validated (from) vs NOT VALID (to)
index "items_qty_idx" on "items": definition differs: CREATE INDEX items_qty_idx ON items USING btree (qty) (from) vs CREATE INDEX items_qty_idx ON items USING btree (qty DESC) (to)
"#
    );
    let out = from.tandem(&["diff", "--from", &from.url, "--to", &to.url, "--json"]);
    assert_exit(&out, 1);
    let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(json["sides"], serde_json::json!(["from", "to"]));
    assert_eq!(
        json["differences"][4],
        serde_json::json!({"kind": "column_nullable", "table": "items", "column": "price",
            "from": false, "to": true,
            "message": "column \"items\".\"price\": nullability differs: NOT NULL (from) vs NULL (to)"})
    );
}

#[tokio::test]
async fn diff_exit_codes() {
    let db = TestDb::new().await;
    let unreachable = "host=/nonexistent/tandem port=5432 user=nobody dbname=nothing";
    // A database that cannot be reached: 2, with the reason.
    let out = db.tandem(&["diff", "--from", unreachable, "--to", &db.url]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("cannot read the from database: error connecting to server"),
        "{}",
        stderr(&out)
    );
    let examples = examples();
    let examples = examples.to_str().unwrap();
    let out = db.tandem(&[
        "diff",
        "--migrations",
        examples,
        "--postgres-url",
        unreachable,
        "--scratch-url",
        &db.url,
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("cannot read the live database"),
        "{}",
        stderr(&out)
    );
    // Bad input: no folder, no arguments, arguments that do not go together.
    assert_exit(
        &db.tandem(&["diff", "--migrations", "/nonexistent/tandem"]),
        2,
    );
    assert_exit(&db.tandem(&["diff"]), 2);
    assert_exit(&db.tandem(&["diff", "--from", &db.url]), 2);
    assert_exit(
        &db.tandem(&[
            "diff",
            "--migrations",
            examples,
            "--from",
            &db.url,
            "--to",
            &db.url,
        ]),
        2,
    );
    // A file that cannot be replayed: 2, naming it.
    let dir = migrations_dir(&[(
        "01_broken.json",
        r#"{"operations": [{"sql": {"up": "ALTER TABLE nowhere ADD COLUMN x int"}}]}"#,
    )]);
    let out = db.tandem(&[
        "diff",
        "--migrations",
        dir.to_str().unwrap(),
        "--scratch-url",
        &db.url,
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains("replaying migration \"01_broken\" into the scratch database failed"),
        "{}",
        stderr(&out)
    );
    // A long `sql` operation that fails (a baseline needing a type it lacks): the error is the
    // scratch database's own, with the line it points at, and nothing blames roles.
    let dir = migrations_dir(&[(
        "00_baseline.json",
        r#"{"operations": [{"sql": {"up": "CREATE TABLE a (x int);\nCREATE TABLE b (\n  y year\n);"}}]}"#,
    )]);
    let out = db.tandem(&[
        "diff",
        "--migrations",
        dir.to_str().unwrap(),
        "--scratch-url",
        &db.url,
    ]);
    assert_exit(&out, 2);
    assert!(
        stderr(&out).contains(
            "failed to run the migration's SQL: type \"year\" does not exist\n  at line 3 of its SQL: y year"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        !stderr(&out).contains("roles or extensions"),
        "{}",
        stderr(&out)
    );
    // Equal: 0; different: 1 (the other tests).
    let other = TestDb::new().await;
    assert_exit(
        &db.tandem(&["diff", "--from", &db.url, "--to", &other.url]),
        0,
    );
}

#[tokio::test]
async fn diff_of_another_base_schema() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute("CREATE SCHEMA app")
        .await
        .unwrap();
    let dir = examples();
    let dir = dir.to_str().unwrap();
    db.tandem_ok(&["--schema", "app", "init"]);
    db.tandem_ok(&["--schema", "app", "migrate", dir, "--complete"]);
    // The scratch database gets the base schema the files expect to exist.
    let out = db.tandem(&[
        "--schema",
        "app",
        "diff",
        "--migrations",
        dir,
        "--scratch-url",
        &db.url,
    ]);
    assert_exit(&out, 0);
    assert!(stdout(&out).ends_with("have the same schema \"app\"\n"));
    // Only the base schema counts: `public` is empty here, and the files build tables.
    let out = db.tandem(&["diff", "--migrations", dir, "--scratch-url", &db.url]);
    assert_exit(&out, 1);
    assert!(
        stdout(&out).starts_with("table \"audit_log\": only in migrations\n"),
        "{}",
        stdout(&out)
    );
}
