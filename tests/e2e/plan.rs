//! `tandem plan`: its output for several operations (snapshots), the row estimates of
//! backfills, that it changes nothing, and that it shows exactly what start and complete run.

use serde_json::Value;
use tokio_postgres::Client;

use crate::support::{catalog_snapshot, migration_file, TestDb};

const SETUP: &str = r#"{"operations": [{"create_table": {"name": "users", "columns": [
  {"name": "id", "type": "serial", "pk": true},
  {"name": "name", "type": "text"}]}}]}"#;

/// A database with tandem initialised and `01_setup` (a `users` table) complete.
async fn setup() -> TestDb {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let file = migration_file("01_setup.json", SETUP);
    db.tandem_ok(&["start", "--complete", file.to_str().unwrap()]);
    db
}

fn plan_text(db: &TestDb, name: &str, json: &str) -> String {
    let file = migration_file(name, json);
    db.tandem_ok(&["plan", file.to_str().unwrap()])
}

const ADD_EMAIL: &str = r#"{"operations": [{"add_column": {"table": "users",
  "up": "lower(name) || '@example.com'", "column": {"name": "email", "type": "text"}}}]}"#;

#[tokio::test]
async fn plan_of_create_table() {
    let db = setup().await;
    let json = r#"{"operations": [{"create_table": {"name": "teams", "columns": [
      {"name": "id", "type": "bigint", "pk": true},
      {"name": "title", "type": "text", "unique": true, "comment": "shown on the badge"}]}}]}"#;
    assert_eq!(
        plan_text(&db, "02_teams.json", json),
        r#"migration "02_teams" on schema "public" → version schema "public_02_teams"

start:
   1. create table "teams" [NONE, transaction "create table teams"]
        CREATE TABLE "public"."teams" ("id" bigint NOT NULL, "title" text NOT NULL UNIQUE, PRIMARY KEY ("id"))
   2. comment on column "title" [NONE, transaction "create table teams"]
        COMMENT ON COLUMN "public"."teams"."title" IS 'shown on the badge'
   3. create version schema "public_02_teams" [NONE, transaction "create version schema public_02_teams"]
        CREATE SCHEMA "public_02_teams"
   4. let the roles that use "public" use "public_02_teams" [NONE, transaction "create version schema public_02_teams"]
        GRANT USAGE ON SCHEMA "public_02_teams" TO PUBLIC
   5. create view "public_02_teams"."users" [ACCESS_SHARE, transaction "create version schema public_02_teams"]
        CREATE VIEW "public_02_teams"."users" WITH (security_invoker = true) AS SELECT "id" AS "id", "name" AS "name" FROM "public"."users"
   6. copy the default of "id" onto the view [NONE, transaction "create version schema public_02_teams"]
        ALTER VIEW "public_02_teams"."users" ALTER COLUMN "id" SET DEFAULT nextval('users_id_seq'::regclass)
   7. create view "public_02_teams"."teams" [ACCESS_SHARE, transaction "create version schema public_02_teams"]
        CREATE VIEW "public_02_teams"."teams" WITH (security_invoker = true) AS SELECT "id" AS "id", "title" AS "title" FROM "public"."teams"

complete:
   1. drop version schema "public_01_setup" [NONE, own transaction]
        DROP SCHEMA IF EXISTS "public_01_setup" CASCADE

rollback:
   1. drop version schema "public_02_teams" [NONE, own transaction]
        DROP SCHEMA IF EXISTS "public_02_teams" CASCADE
   2. drop table "teams" [ACCESS_EXCLUSIVE, transaction "rollback", hazards: ACQUIRES_ACCESS_EXCLUSIVE_LOCK]
        DROP TABLE IF EXISTS "public"."teams"
"#
    );
}

#[tokio::test]
async fn plan_of_rename_column() {
    let db = setup().await;
    let json = r#"{"operations": [{"rename_column": {"table": "users", "from": "name", "to": "full_name"}}]}"#;
    assert_eq!(
        plan_text(&db, "02_rename.json", json),
        r#"migration "02_rename" on schema "public" → version schema "public_02_rename"

start:
   1. create version schema "public_02_rename" [NONE, transaction "create version schema public_02_rename"]
        CREATE SCHEMA "public_02_rename"
   2. let the roles that use "public" use "public_02_rename" [NONE, transaction "create version schema public_02_rename"]
        GRANT USAGE ON SCHEMA "public_02_rename" TO PUBLIC
   3. create view "public_02_rename"."users" [ACCESS_SHARE, transaction "create version schema public_02_rename"]
        CREATE VIEW "public_02_rename"."users" WITH (security_invoker = true) AS SELECT "id" AS "id", "name" AS "full_name" FROM "public"."users"
   4. copy the default of "id" onto the view [NONE, transaction "create version schema public_02_rename"]
        ALTER VIEW "public_02_rename"."users" ALTER COLUMN "id" SET DEFAULT nextval('users_id_seq'::regclass)

complete:
   1. drop version schema "public_01_setup" [NONE, own transaction]
        DROP SCHEMA IF EXISTS "public_01_setup" CASCADE
   2. rename column "name" of "users" to "full_name" [ACCESS_EXCLUSIVE, transaction "contract users", hazards: ACQUIRES_ACCESS_EXCLUSIVE_LOCK]
        ALTER TABLE "public"."users" RENAME COLUMN "name" TO "full_name"

rollback:
   1. drop version schema "public_02_rename" [NONE, own transaction]
        DROP SCHEMA IF EXISTS "public_02_rename" CASCADE
"#
    );
}

#[tokio::test]
async fn plan_of_create_index() {
    let db = setup().await;
    let json = r#"{"operations": [{"create_index": {"name": "users_name_idx", "table": "users", "columns": ["name"]}}]}"#;
    assert_eq!(
        plan_text(&db, "02_index.json", json),
        r#"migration "02_index" on schema "public" → version schema "public_02_index"

start:
   1. build index "users_name_idx" on "users" concurrently [SHARE_UPDATE_EXCLUSIVE, no transaction, hazards: INDEX_BUILD]
        CREATE INDEX CONCURRENTLY "users_name_idx" ON "public"."users" USING btree ("name")
   2. create version schema "public_02_index" [NONE, transaction "create version schema public_02_index"]
        CREATE SCHEMA "public_02_index"
   3. let the roles that use "public" use "public_02_index" [NONE, transaction "create version schema public_02_index"]
        GRANT USAGE ON SCHEMA "public_02_index" TO PUBLIC
   4. create view "public_02_index"."users" [ACCESS_SHARE, transaction "create version schema public_02_index"]
        CREATE VIEW "public_02_index"."users" WITH (security_invoker = true) AS SELECT "id" AS "id", "name" AS "name" FROM "public"."users"
   5. copy the default of "id" onto the view [NONE, transaction "create version schema public_02_index"]
        ALTER VIEW "public_02_index"."users" ALTER COLUMN "id" SET DEFAULT nextval('users_id_seq'::regclass)

complete:
   1. drop version schema "public_01_setup" [NONE, own transaction]
        DROP SCHEMA IF EXISTS "public_01_setup" CASCADE

rollback:
   1. drop version schema "public_02_index" [NONE, own transaction]
        DROP SCHEMA IF EXISTS "public_02_index" CASCADE
   2. drop index "users_name_idx" [SHARE_UPDATE_EXCLUSIVE, no transaction]
        DROP INDEX CONCURRENTLY IF EXISTS "public"."users_name_idx"
"#
    );
}

#[tokio::test]
async fn plan_of_add_column_shows_the_rows_its_backfill_touches() {
    let db = setup().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO public.users (name) SELECT 'user ' || g FROM generate_series(1, 12345) g;
             ANALYZE public.users",
        )
        .await
        .unwrap();
    let text = plan_text(&db, "02_email.json", ADD_EMAIL);
    // The order of the other steps is the planner's business (snapshots of whole plans are
    // above); the backfill step carries the estimate.
    let backfill: Vec<&str> = text.lines().filter(|l| l.contains("BACKFILL")).collect();
    assert_eq!(backfill.len(), 1, "{text}");
    assert_eq!(
        backfill[0].split_once(". ").unwrap().1,
        r#"backfill existing rows of "users" [ROW_EXCLUSIVE, own transaction, hazards: BACKFILL ~12,345 rows]"#
    );
    let file = migration_file("02_email.json", ADD_EMAIL);
    let json: Value =
        serde_json::from_str(&db.tandem_ok(&["plan", "--json", file.to_str().unwrap()])).unwrap();
    let steps = json["start"].as_array().unwrap();
    let backfill = steps.iter().find(|s| s["kind"] == "backfill").unwrap();
    assert_eq!(backfill["estimated_rows"], 12345);
    assert_eq!(backfill["hazards"], serde_json::json!(["BACKFILL"]));
    assert!(
        steps
            .iter()
            .filter(|s| s["kind"] != "backfill")
            .all(|s| s.get("estimated_rows").is_none()),
        "only backfill steps carry an estimate"
    );

    // Rows added since the last ANALYZE count: the estimate scales with the table's size.
    client
        .batch_execute(
            "INSERT INTO public.users (name) SELECT 'more ' || g FROM generate_series(1, 12345) g",
        )
        .await
        .unwrap();
    let text = plan_text(&db, "02_email.json", ADD_EMAIL);
    let line = text.lines().find(|l| l.contains("BACKFILL")).unwrap();
    let rows: i64 = line
        .split("BACKFILL ~")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .map(|n| n.replace(',', "").parse().unwrap())
        .unwrap();
    assert!((23_000..=26_000).contains(&rows), "{line}");
}

#[tokio::test]
async fn plan_of_a_table_never_analysed_says_the_rows_are_unknown() {
    let db = setup().await;
    db.client()
        .await
        .batch_execute(
            // Autovacuum must not analyse the table behind the test's back.
            "ALTER TABLE public.users SET (autovacuum_enabled = false);
             INSERT INTO public.users (name) SELECT 'u' || g FROM generate_series(1, 500) g",
        )
        .await
        .unwrap();
    let text = plan_text(&db, "02_email.json", ADD_EMAIL);
    assert!(
        text.contains("hazards: BACKFILL (rows unknown: the table was never analysed)]"),
        "{text}"
    );
    let file = migration_file("02_email.json", ADD_EMAIL);
    let json: Value =
        serde_json::from_str(&db.tandem_ok(&["plan", "--json", file.to_str().unwrap()])).unwrap();
    let backfill = json["start"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "backfill")
        .unwrap();
    assert_eq!(backfill["estimated_rows"], Value::Null);
}

/// Every row of tandem's own state tables, as text.
async fn state_rows(client: &Client) -> String {
    let tables: Vec<String> = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = 'tandem' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let mut out = String::new();
    for table in tables {
        let sql = format!(
            "SELECT coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '') FROM tandem.\"{table}\" t"
        );
        let rows: String = client.query_one(&sql, &[]).await.unwrap().get(0);
        out.push_str(&format!("{table}:\n{rows}\n"));
    }
    out
}

/// Statistics a plan could disturb by analysing or vacuuming.
async fn statistics(client: &Client) -> String {
    client
        .query_one(
            "SELECT string_agg(format('%s %s %s', relname, reltuples, relpages), ', ' ORDER BY relname)
             FROM pg_class WHERE relnamespace = 'public'::regnamespace",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn plan_changes_nothing() {
    let db = setup().await;
    let client = db.client().await;
    client
        .batch_execute(
            // Autovacuum must not analyse the table behind the test's back.
            "ALTER TABLE public.users SET (autovacuum_enabled = false);
             INSERT INTO public.users (name) SELECT 'u' || g FROM generate_series(1, 2000) g",
        )
        .await
        .unwrap();
    let before = (
        catalog_snapshot(&client).await,
        state_rows(&client).await,
        statistics(&client).await,
    );
    let plans = [
        ADD_EMAIL,
        r#"{"operations": [{"create_index": {"name": "users_name_idx", "table": "users", "columns": ["name"]}}]}"#,
        r#"{"operations": [{"alter_column": {"table": "users", "column": "name", "type": "varchar(100)", "up": "name", "down": "name"}}]}"#,
        r#"{"operations": [{"drop_column": {"table": "users", "column": "name"}}]}"#,
        r#"{"operations": [{"sql": {"up": "CREATE TABLE t (a int)"}}]}"#,
        // Refused: nothing may change either.
        r#"{"operations": [{"add_column": {"table": "nowhere", "column": {"name": "x", "type": "int"}}}]}"#,
    ];
    for (i, json) in plans.iter().enumerate() {
        let file = migration_file(&format!("02_plan_{i}.json"), json);
        let path = file.to_str().unwrap();
        db.tandem(&["plan", path]);
        db.tandem(&["plan", "--json", path]);
        let after = (
            catalog_snapshot(&client).await,
            state_rows(&client).await,
            statistics(&client).await,
        );
        assert_eq!(before, after, "plan of {json} changed the database");
    }
}

/// Installs an event trigger that records the text of every DDL statement the database runs.
async fn record_ddl(client: &Client) {
    client
        .batch_execute(
            "CREATE SCHEMA ddl_log;
             CREATE TABLE ddl_log.statements (id bigserial PRIMARY KEY, query text NOT NULL);
             CREATE FUNCTION ddl_log.record() RETURNS event_trigger LANGUAGE plpgsql AS $$
             BEGIN
               INSERT INTO ddl_log.statements (query) VALUES (current_query());
             END $$;
             CREATE EVENT TRIGGER ddl_log ON ddl_command_end EXECUTE FUNCTION ddl_log.record();",
        )
        .await
        .unwrap();
}

/// The DDL statements recorded since the last call (a statement that issues several commands
/// is recorded once per command: consecutive repeats are one statement).
async fn ddl_since(client: &Client, last: &mut i64) -> Vec<String> {
    let rows = client
        .query(
            "SELECT id, query FROM ddl_log.statements WHERE id > $1 ORDER BY id",
            &[last],
        )
        .await
        .unwrap();
    let mut out: Vec<String> = Vec::new();
    for row in rows {
        *last = row.get(0);
        let query: String = row.get(1);
        if out.last() != Some(&query) {
            out.push(query);
        }
    }
    out
}

/// The SQL of a phase's steps in a `plan --json` (backfills are not DDL).
fn planned_sql(plan: &Value, phase: &str) -> Vec<String> {
    plan[phase]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["sql"].as_str().map(String::from))
        .collect()
}

fn planned_descriptions(plan: &Value, phase: &str) -> Vec<String> {
    plan[phase]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["description"].as_str().unwrap().to_string())
        .collect()
}

/// The descriptions of the steps a `--json` run reported on stderr, in order.
fn executed_descriptions(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["event"] == "step")
        .map(|e| e["description"].as_str().unwrap().to_string())
        .collect()
}

/// For several operation types: the statements `plan --json` lists for start and complete are
/// exactly the DDL statements `start` and `complete` run, in order (recorded by an event
/// trigger), and its step descriptions are the steps they report.
#[tokio::test]
async fn plan_lists_exactly_what_start_and_complete_run() {
    let db = setup().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO public.users (name) SELECT 'u' || g FROM generate_series(1, 300) g",
        )
        .await
        .unwrap();
    record_ddl(&client).await;
    let migrations = [
        ("02_email.json", ADD_EMAIL),
        (
            "03_teams.json",
            r#"{"operations": [{"create_table": {"name": "teams", "columns": [
              {"name": "id", "type": "bigint", "pk": true},
              {"name": "title", "type": "text", "comment": "shown on the badge"}]}}]}"#,
        ),
        (
            "04_index.json",
            r#"{"operations": [{"create_index": {"name": "users_name_idx", "table": "users", "columns": ["name"]}}]}"#,
        ),
        (
            "05_rename.json",
            r#"{"operations": [{"rename_column": {"table": "users", "from": "name", "to": "full_name"}}]}"#,
        ),
        (
            "06_alter.json",
            r#"{"operations": [{"alter_column": {"table": "users", "column": "full_name", "type": "varchar(200)", "up": "full_name", "down": "full_name"}}]}"#,
        ),
        (
            "07_check.json",
            r#"{"operations": [{"create_constraint": {"table": "teams", "name": "teams_title_not_blank", "type": "check", "columns": ["title"], "check": "length(title) > 0", "up": {"title": "coalesce(nullif(title, ''), 'unnamed')"}, "down": {"title": "title"}}}]}"#,
        ),
        (
            "08_drop.json",
            r#"{"operations": [{"drop_column": {"table": "users", "column": "email", "down": "'unknown'"}}]}"#,
        ),
    ];
    let mut last = 0i64;
    for (name, json) in migrations {
        let file = migration_file(name, json);
        let path = file.to_str().unwrap();
        let plan: Value = serde_json::from_str(&db.tandem_ok(&["plan", "--json", path])).unwrap();
        assert_eq!(
            ddl_since(&client, &mut last).await,
            Vec::<String>::new(),
            "{name}: plan ran DDL"
        );
        for (phase, args) in [
            ("start", vec!["start", "--json", path]),
            ("complete", vec!["complete", "--json"]),
        ] {
            let out = db.tandem(&args);
            assert!(
                out.status.success(),
                "{name} {phase}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let planned = planned_sql(&plan, phase);
            assert!(!planned.is_empty(), "{name}: {phase} has SQL steps");
            let ran = ddl_since(&client, &mut last).await;
            // A DO block that found nothing to do (no materialized view to replace) runs
            // no DDL, so the DDL log cannot see it.
            let planned: Vec<String> = planned
                .into_iter()
                .filter(|sql| !sql.starts_with("DO ") || ran.contains(sql))
                .collect();
            assert_eq!(
                ran, planned,
                "{name}: the SQL {phase} ran is not the SQL plan showed"
            );
            assert_eq!(
                executed_descriptions(&out.stderr),
                planned_descriptions(&plan, phase),
                "{name}: the steps {phase} reported are not the steps plan showed"
            );
        }
    }
}
