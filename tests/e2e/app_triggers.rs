//! The backfill is not an application write: the application's own triggers do not fire for
//! its batches where the role may set `session_replication_role`, keep firing for the
//! application's writes through either version, and are named by `plan` and `start` where
//! they will fire once per backfilled row.

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::Client;

use crate::support::{migration_file, TestDb};

static ROLES: AtomicUsize = AtomicUsize::new(0);

const ROWS: i64 = 2_000;

/// `items(id, v, last_update)`, created and completed through tandem (`role`: with
/// `--role`), `ROWS` rows last updated in 2001, and the application's triggers: `stamp`
/// (BEFORE UPDATE, sets `last_update = now()`) and `count_updates` (AFTER UPDATE, counts
/// its calls in `calls`).
async fn stamped_items(db: &TestDb, role: &[&str]) -> Client {
    let mut args = role.to_vec();
    args.push("init");
    db.tandem_ok(&args);
    let setup = migration_file(
        "01_items.json",
        r#"{"operations": [{"create_table": {"name": "items", "columns": [
            {"name": "id", "type": "bigint", "pk": true}, {"name": "v", "type": "bigint"},
            {"name": "last_update", "type": "timestamptz", "nullable": true}]}}]}"#,
    );
    let mut args = role.to_vec();
    args.extend(["start", "--complete", setup.to_str().unwrap()]);
    db.tandem_ok(&args);
    let c = db.client().await;
    c.execute(
        "INSERT INTO public.items
         SELECT g, g, timestamptz '2001-01-01 00:00:00+00' FROM generate_series(1, $1::bigint) g",
        &[&ROWS],
    )
    .await
    .unwrap();
    c.batch_execute(
        "ANALYZE public.items;
         CREATE TABLE public.calls (trigger_name text);
         CREATE FUNCTION public.stamp() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN NEW.last_update := now(); RETURN NEW; END$$;
         CREATE FUNCTION public.count_updates() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO public.calls VALUES (TG_NAME); RETURN NULL; END$$;
         CREATE TRIGGER stamp BEFORE UPDATE ON public.items
           FOR EACH ROW EXECUTE FUNCTION public.stamp();
         CREATE TRIGGER count_updates AFTER UPDATE ON public.items
           FOR EACH ROW EXECUTE FUNCTION public.count_updates();",
    )
    .await
    .unwrap();
    c
}

/// Rows whose `last_update` is no longer the 2001 one.
async fn restamped(c: &Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM public.items
         WHERE last_update IS DISTINCT FROM timestamptz '2001-01-01 00:00:00+00'",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Calls of the trigger `name` recorded in `calls`.
async fn calls(c: &Client, name: &str) -> i64 {
    c.query_one(
        "SELECT count(*) FROM public.calls WHERE trigger_name = $1",
        &[&name],
    )
    .await
    .unwrap()
    .get(0)
}

const ADD_DOUBLED: &str = r#"{"operations": [{"add_column": {"table": "items", "up": "v * 2",
    "column": {"name": "w", "type": "bigint", "nullable": true}}}]}"#;

const V_AS_TEXT: &str = r#"{"operations": [{"alter_column": {"table": "items", "column": "v",
    "type": "text", "up": "v::text", "down": "v::bigint"}}]}"#;

/// `tandem start --json FILE` (after `extra`): the JSON events on stderr, and stdout.
fn start_events(db: &TestDb, name: &str, json: &str, extra: &[&str]) -> Vec<serde_json::Value> {
    let file = migration_file(name, json);
    let mut args = extra.to_vec();
    args.extend(["start", "--json", file.to_str().unwrap()]);
    let out = db.tandem(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .collect()
}

fn event<'a>(events: &'a [serde_json::Value], name: &str) -> Option<&'a serde_json::Value> {
    events.iter().find(|e| e["event"] == name)
}

/// The trigger names a `backfill_triggers_fire` event names (empty without one).
fn named_triggers(events: &[serde_json::Value]) -> Vec<String> {
    event(events, "backfill_triggers_fire")
        .map(|e| {
            e["triggers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn application_triggers_do_not_fire_for_the_backfill() {
    let db = TestDb::new().await;
    let c = stamped_items(&db, &[]).await;

    let events = start_events(&db, "02_double.json", ADD_DOUBLED, &[]);
    let done = event(&events, "backfill_done").expect("a backfill");
    assert_eq!(done["rows"], ROWS);
    assert_eq!(done["triggers_skipped"], true, "{done}");
    assert_eq!(restamped(&c).await, 0, "no row's last_update changed");
    assert_eq!(calls(&c, "count_updates").await, 0);
    assert!(named_triggers(&events).is_empty(), "{events:?}");
    let wrong: i64 = c
        .query_one(
            "SELECT count(*) FROM public.items WHERE w IS DISTINCT FROM v * 2",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0, "every row backfilled");

    // The application's writes, through either version, still fire its triggers.
    let old = db.client_on("public_01_items").await;
    old.execute("UPDATE items SET v = 10 WHERE id = 1", &[])
        .await
        .unwrap();
    let new = db.client_on("public_02_double").await;
    new.execute("UPDATE items SET w = 7 WHERE id = 2", &[])
        .await
        .unwrap();
    assert_eq!(restamped(&c).await, 2, "both writes stamped their row");
    assert_eq!(calls(&c, "count_updates").await, 2);
    let w: Vec<i64> = c
        .query(
            "SELECT w FROM public.items WHERE id IN (1, 2) ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        w,
        [20, 7],
        "the sync trigger still ran for the old version's write"
    );
    db.tandem_ok(&["complete"]);

    // A type change goes through a shadow column: its backfill leaves the rows alone too.
    // A trigger the user set ENABLE ALWAYS fires in replica mode too, and is named.
    c.batch_execute(
        "CREATE TRIGGER always_count AFTER UPDATE ON public.items
           FOR EACH ROW EXECUTE FUNCTION public.count_updates();
         ALTER TABLE public.items ENABLE ALWAYS TRIGGER always_count;",
    )
    .await
    .unwrap();
    let events = start_events(&db, "03_v_text.json", V_AS_TEXT, &[]);
    let done = event(&events, "backfill_done").expect("a backfill");
    assert_eq!(done["triggers_skipped"], true, "{done}");
    assert_eq!(restamped(&c).await, 2, "only the two rows the app wrote");
    assert_eq!(calls(&c, "count_updates").await, 2);
    assert_eq!(
        calls(&c, "always_count").await,
        ROWS,
        "ENABLE ALWAYS: every row"
    );
    let named = named_triggers(&events);
    assert_eq!(named.len(), 1, "{named:?}");
    assert!(
        named[0] == r#""always_count" on "public"."items" (ENABLE ALWAYS)"#,
        "{named:?}"
    );
    db.tandem_ok(&["complete"]);
    let v: String = c
        .query_one("SELECT v FROM public.items WHERE id = 3", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(v, "3");
}

#[tokio::test]
async fn backfill_fire_triggers_lets_them_fire_for_every_row() {
    let db = TestDb::new().await;
    let c = stamped_items(&db, &[]).await;
    let events = start_events(
        &db,
        "02_double.json",
        ADD_DOUBLED,
        &["--backfill-fire-triggers"],
    );
    let done = event(&events, "backfill_done").expect("a backfill");
    assert_eq!(done["triggers_skipped"], false, "{done}");
    assert_eq!(restamped(&c).await, ROWS, "every row restamped");
    assert_eq!(calls(&c, "count_updates").await, ROWS);
    assert_eq!(
        named_triggers(&events),
        [
            r#""count_updates" on "public"."items""#,
            r#""stamp" on "public"."items""#
        ]
    );
    let why = &event(&events, "backfill_triggers_fire").unwrap()["why"];
    assert_eq!(why, "--backfill-fire-triggers");
}

fn role(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        ROLES.fetch_add(1, Ordering::SeqCst)
    )
}

#[tokio::test]
async fn plan_and_start_name_the_triggers_a_role_cannot_switch_off() {
    let db = TestDb::new().await;
    let owner = role("trigger_owner");
    let admin = db.client().await;
    let database: String = admin
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    admin
        .batch_execute(&format!(
            "CREATE ROLE {owner} NOLOGIN;
             GRANT CREATE ON DATABASE \"{database}\" TO {owner};
             GRANT CREATE ON SCHEMA public TO {owner};"
        ))
        .await
        .unwrap();
    let as_owner = ["--role", owner.as_str()];
    let c = stamped_items(&db, &as_owner).await;
    c.batch_execute(&format!("GRANT INSERT ON public.calls TO {owner}"))
        .await
        .unwrap();

    // plan, text and JSON, names them (a warning, not a failure).
    let file = migration_file("02_double.json", ADD_DOUBLED);
    let text = db.tandem_ok(&["--role", &owner, "plan", file.to_str().unwrap()]);
    assert!(text.contains("warnings:"), "{text}");
    assert!(
        text.contains(r#""count_updates" on "public"."items", "stamp" on "public"."items""#),
        "{text}"
    );
    assert!(
        text.contains("may not set session_replication_role"),
        "{text}"
    );
    let plan: serde_json::Value = serde_json::from_str(&db.tandem_ok(&[
        "--role",
        &owner,
        "plan",
        "--json",
        file.to_str().unwrap(),
    ]))
    .unwrap();
    let warnings = plan["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{plan}");
    assert_eq!(warnings[0]["table"], "items");
    assert_eq!(
        warnings[0]["triggers"],
        serde_json::json!(["count_updates", "stamp"])
    );
    // A superuser's plan has nothing to warn about.
    let plan: serde_json::Value =
        serde_json::from_str(&db.tandem_ok(&["plan", "--json", file.to_str().unwrap()])).unwrap();
    assert_eq!(plan["warnings"], serde_json::json!([]), "{plan}");

    // start names them too, and they fire for every row.
    let events = start_events(&db, "02_double.json", ADD_DOUBLED, &as_owner);
    assert_eq!(
        named_triggers(&events),
        [
            r#""count_updates" on "public"."items""#,
            r#""stamp" on "public"."items""#
        ]
    );
    assert_eq!(
        event(&events, "backfill_done").unwrap()["triggers_skipped"],
        false
    );
    assert_eq!(calls(&c, "count_updates").await, ROWS);
    assert_eq!(restamped(&c).await, ROWS);
    db.tandem_ok(&["--role", &owner, "rollback"]);

    // PostgreSQL 15 lets a role set the parameter without being a superuser.
    admin
        .batch_execute(
            "SET session_replication_role = replica;
             UPDATE public.items SET last_update = timestamptz '2001-01-01 00:00:00+00';
             RESET session_replication_role;
             TRUNCATE public.calls",
        )
        .await
        .unwrap();
    admin
        .batch_execute(&format!(
            "GRANT SET ON PARAMETER session_replication_role TO {owner}"
        ))
        .await
        .unwrap();
    let events = start_events(&db, "02_double.json", ADD_DOUBLED, &as_owner);
    assert!(named_triggers(&events).is_empty(), "{events:?}");
    assert_eq!(
        event(&events, "backfill_done").unwrap()["triggers_skipped"],
        true
    );
    assert_eq!(calls(&c, "count_updates").await, 0);
    assert_eq!(restamped(&c).await, 0);
    db.tandem_ok(&["--role", &owner, "rollback"]);
    admin
        .batch_execute(&format!(
            "REVOKE SET ON PARAMETER session_replication_role FROM {owner}"
        ))
        .await
        .unwrap();
}
