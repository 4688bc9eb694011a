//! The backfill engine: resumable after SIGKILL, pausable, never losing a concurrent write,
//! never overwriting a new-version write, and refusing early a table it cannot page through.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{migration_file, tandem_sessions_gone, texts, TestDb};
use tokio_postgres::Client;

/// `items(id, v)` with `rows` rows, created and completed through tandem.
async fn table_with_rows(rows: i64) -> (TestDb, Client) {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let setup = migration_file(
        "01_items.json",
        r#"{"operations": [{"create_table": {"name": "items", "columns": [
            {"name": "id", "type": "bigint", "pk": true}, {"name": "v", "type": "bigint"}]}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", setup.to_str().unwrap()]);
    let c = db.client().await;
    c.execute(
        "INSERT INTO public.items SELECT g, g FROM generate_series(1, $1::bigint) g",
        &[&rows],
    )
    .await
    .unwrap();
    c.batch_execute("ANALYZE public.items").await.unwrap();
    (db, c)
}

/// Doubling `v` into a NOT NULL column; `down` is deliberately not its inverse.
const DOUBLE: &str = r#"{"operations": [{"add_column": {"table": "items", "up": "v * 2",
    "column": {"name": "w", "type": "bigint"}}},
    {"drop_column": {"table": "items", "column": "v", "down": "w - 1"}}]}"#;

/// `tandem start` in the background with fixed-size batches (a 10 s budget never resizes
/// them) and a delay between them, so that a test can act while the backfill runs.
fn spawn_start(db: &TestDb, file: &std::path::Path, batch_size: &str, delay: &str) -> Child {
    spawn_start_with(db, file, batch_size, delay, &[])
}

fn spawn_start_with(
    db: &TestDb,
    file: &std::path::Path,
    batch_size: &str,
    delay: &str,
    extra: &[&str],
) -> Child {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(extra)
        .args(["--backfill-batch-size", batch_size])
        .args(["--backfill-batch-time", "10s", "--backfill-delay", delay])
        .args(["start", file.to_str().unwrap()])
        .env("TANDEM_PG_URL", &db.url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tandem start")
}

async fn rows_done(c: &Client) -> i64 {
    c.query_opt(
        "SELECT rows_done FROM tandem.backfill_progress WHERE table_name = 'items'",
        &[],
    )
    .await
    .unwrap()
    .map(|r| r.get(0))
    .unwrap_or(0)
}

/// Rows whose `w` is not `id * 2`, which DOUBLE gives every row of `table_with_rows`.
async fn rows_not_id_doubled(c: &Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM public.items WHERE w IS DISTINCT FROM id * 2",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

async fn wait_until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After a SIGKILL the server notices the dropped connection (and frees its advisory lock)
/// only once its current statement ends.
async fn killed(child: &mut Child, c: &Client) {
    child.kill().unwrap();
    child.wait().unwrap();
    tandem_sessions_gone(c).await;
}

/// Waits for a background `tandem` without blocking the runtime, and checks it succeeded.
async fn exits_successfully(mut child: Child) {
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success());
}

async fn schema_exists(c: &Client, name: &str) -> bool {
    c.query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&name])
        .await
        .unwrap()
        .is_some()
}

#[tokio::test]
async fn a_killed_backfill_resumes_from_its_checkpoint() {
    let rows = 200_000;
    let (db, c) = table_with_rows(rows).await;
    let file = migration_file("02_double.json", DOUBLE);
    let mut child = spawn_start(&db, &file, "1000", "5ms");
    wait_until("some batches", || async { rows_done(&c).await >= 20_000 }).await;
    killed(&mut child, &c).await;
    let at_kill = rows_done(&c).await;
    assert!(at_kill < rows, "killed mid-way ({at_kill} rows done)");
    assert!(
        !schema_exists(&c, "public_02_double").await,
        "the version schema waits for the backfill"
    );
    let status: serde_json::Value =
        serde_json::from_str(&db.tandem_ok(&["status", "--json"])).unwrap();
    assert!(
        status["next"].as_str().unwrap().contains("tandem backfill"),
        "{status}"
    );
    assert_eq!(
        db.tandem_ok(&["latest", "schema"]).trim(),
        "public_01_items",
        "latest names the ready version"
    );

    db.tandem_ok(&["backfill"]);
    assert!(schema_exists(&c, "public_02_double").await);
    let total = rows_done(&c).await;
    assert!(
        total >= rows && total <= rows + 1000,
        "resumed after the checkpoint: {total} rows counted for {rows}"
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(rows_not_id_doubled(&c).await, 0);
}

/// Four workers share the pages; killed, the backfill resumes on three from a checkpoint that
/// never passes a range some worker had not committed, and counts every row exactly once.
#[tokio::test]
async fn a_backfill_on_several_connections_resumes_with_every_row_counted_once() {
    let rows = 100_000;
    let (db, c) = table_with_rows(rows).await;
    let file = migration_file("02_double.json", DOUBLE);
    let mut child = spawn_start_with(&db, &file, "500", "5ms", &["--backfill-workers", "4"]);
    wait_until("some batches", || async { rows_done(&c).await >= 10_000 }).await;
    let writers: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tandem' AND datname = current_database()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(writers, 4, "one connection per worker");
    killed(&mut child, &c).await;
    assert!(rows_done(&c).await < rows, "killed mid-way");

    let out = db.tandem(&["--backfill-workers", "3", "backfill", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(backfill_done(&out.stderr)["workers"], 3);
    assert_eq!(rows_done(&c).await, rows, "every row counted once");
    assert_eq!(rows_not_id_doubled(&c).await, 0);
    db.tandem_ok(&["complete"]);
    assert_eq!(rows_not_id_doubled(&c).await, 0);
}

#[tokio::test]
async fn complete_finishes_an_interrupted_backfill_first() {
    let (db, c) = table_with_rows(50_000).await;
    let file = migration_file("02_double.json", DOUBLE);
    let mut child = spawn_start(&db, &file, "500", "5ms");
    wait_until("some batches", || async { rows_done(&c).await >= 2_000 }).await;
    killed(&mut child, &c).await;
    db.tandem_ok(&["complete"]);
    assert_eq!(rows_not_id_doubled(&c).await, 0);
}

#[tokio::test]
async fn pause_stops_the_backfill_and_resume_continues_it() {
    let (db, c) = table_with_rows(50_000).await;
    let file = migration_file("02_double.json", DOUBLE);
    let child = spawn_start(&db, &file, "500", "10ms");
    wait_until("the first batches", || async {
        rows_done(&c).await >= 1_000
    })
    .await;
    db.tandem_ok(&["pause"]);
    tokio::time::sleep(Duration::from_millis(500)).await; // within one batch
    let paused_at = rows_done(&c).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(rows_done(&c).await, paused_at, "no progress while paused");
    assert!(paused_at < 50_000);
    let status: serde_json::Value =
        serde_json::from_str(&db.tandem_ok(&["status", "--json"])).unwrap();
    assert_eq!(status["paused"], true, "{status}");
    db.tandem_ok(&["resume"]);
    exits_successfully(child).await;
    assert!(schema_exists(&c, "public_02_double").await);
    assert_eq!(rows_done(&c).await, 50_000);
}

#[tokio::test]
async fn writes_of_both_versions_during_the_backfill_are_never_lost() {
    let rows = 100_000;
    let (db, c) = table_with_rows(rows).await;
    let file = migration_file("02_double.json", DOUBLE);
    let mut child = spawn_start(&db, &file, "1000", "2ms");
    wait_until("the backfill to begin", || async {
        rows_done(&c).await > 0
    })
    .await;
    // A new-version write, declared through tandem.version, to rows the backfill has not
    // reached: up(down(1000)) would be 1998, so an overwrite would show.
    let new = db.client().await;
    new.batch_execute("SET tandem.version = 'public_02_double'; UPDATE public.items SET w = 1000 WHERE id > 90000").await.unwrap();
    // Old-version writes keep coming, ahead of and behind the backfill.
    let old = db.client_on("public_01_items").await;
    let mut written: i64 = 0;
    while child.try_wait().unwrap().is_none() {
        let id: i64 = 1 + (written * 7919) % 89_000;
        old.execute("UPDATE items SET v = v + 1000000 WHERE id = $1", &[&id])
            .await
            .unwrap();
        written += 1;
    }
    assert!(child.wait().unwrap().success());
    assert!(
        written > 10,
        "old-version writes ran during the backfill ({written})"
    );
    // The first moment the new version exists, nothing is missing and every write converted.
    let v2 = db.client_on("public_02_double").await;
    let bad: i64 = v2
        .query_one("SELECT count(*) FROM items WHERE id <= 90000 AND w IS DISTINCT FROM (SELECT p.v * 2 FROM public.items p WHERE p.id = items.id)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0, "every old-version write went through up");
    let kept: i64 = v2
        .query_one(
            "SELECT count(*) FROM items WHERE id > 90000 AND w = 1000",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        kept,
        rows - 90_000,
        "the new-version writes were not overwritten by the backfill"
    );
    db.tandem_ok(&["complete"]);
}

/// VACUUM FULL moves every row to a new file, the rows the page pass has not reached to its
/// front: the pass notices and finishes by key ranges, each row updated exactly once.
#[tokio::test]
async fn a_table_rewritten_during_the_backfill_is_finished_by_key_ranges() {
    let rows = 50_000;
    let (db, c) = table_with_rows(rows).await;
    let file = migration_file("02_double.json", DOUBLE);
    let child = spawn_start(&db, &file, "500", "20ms");
    wait_until("some batches", || async { rows_done(&c).await >= 5_000 }).await;
    c.batch_execute("VACUUM FULL public.items").await.unwrap();
    assert!(rows_done(&c).await < rows, "rewritten mid-way");
    exits_successfully(child).await;
    assert!(schema_exists(&c, "public_02_double").await);
    assert_eq!(rows_done(&c).await, rows, "every row once, none twice");
    assert_eq!(rows_not_id_doubled(&c).await, 0);
}

/// pgroll backfills a table without a primary key; so does tandem, by pages, even when
/// VACUUM FULL moves the rows mid-way (a new page pass, the done-marker skipping rows done).
#[tokio::test]
async fn a_table_without_a_key_is_backfilled_even_when_rewritten_mid_way() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let c = db.client().await;
    let rows = 30_000i64;
    c.batch_execute(
        "CREATE TABLE public.items (id bigint, v bigint);
         INSERT INTO public.items SELECT g, g FROM generate_series(1, 30000) g;
         ANALYZE public.items",
    )
    .await
    .unwrap();
    let file = migration_file(
        "02_double.json",
        r#"{"operations": [{"add_column": {"table": "items", "up": "v * 2",
            "column": {"name": "w", "type": "bigint"}}}]}"#,
    );
    let child = spawn_start(&db, &file, "500", "20ms");
    wait_until("some batches", || async { rows_done(&c).await >= 3_000 }).await;
    c.batch_execute("VACUUM FULL public.items").await.unwrap();
    assert!(rows_done(&c).await < rows, "rewritten mid-way");
    exits_successfully(child).await;
    assert!(schema_exists(&c, "public_02_double").await);
    assert_eq!(rows_done(&c).await, rows, "every row once, none twice");
    assert_eq!(rows_not_id_doubled(&c).await, 0);
    // Both versions write to it, then complete.
    let new = db.client_on("public_02_double").await;
    new.execute("INSERT INTO items (id, v, w) VALUES (0, 0, 0)", &[])
        .await
        .unwrap();
    c.execute("INSERT INTO public.items (id, v) VALUES (-1, -1)", &[])
        .await
        .unwrap();
    db.tandem_ok(&["complete"]);
    assert_eq!(rows_not_id_doubled(&c).await, 0);
    assert_eq!(
        texts(&c, "SELECT count(*)::text FROM public.items").await,
        [(rows + 2).to_string()]
    );
}

/// The `backfill_done` event of a `tandem start --json` run.
fn backfill_done(stderr: &[u8]) -> serde_json::Value {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "backfill_done")
        .expect("a backfill_done event")
}

async fn start_json(db: &TestDb, json: &str, extra: &[&str]) -> serde_json::Value {
    let file = migration_file("02_double.json", json);
    let mut args = extra.to_vec();
    args.extend(["start", "--json", file.to_str().unwrap()]);
    let out = db.tandem(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    backfill_done(&out.stderr)
}

async fn rows_not_doubled(c: &Client) -> i64 {
    c.query_one(
        "SELECT count(*) FROM public.items WHERE w IS DISTINCT FROM v * 2",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// Backfills ADD_DOUBLED with a user's AFTER UPDATE trigger on `relation` that records each
/// row it sees; returns the backfill_done event and the rows the trigger saw.
async fn backfill_audited(db: &TestDb, c: &Client, relation: &str) -> (serde_json::Value, i64) {
    c.batch_execute(&format!(
        "CREATE TABLE audit (id bigint);
         CREATE FUNCTION audit_items() RETURNS trigger LANGUAGE plpgsql AS
           $$BEGIN INSERT INTO audit VALUES (NEW.id); RETURN NEW; END$$;
         CREATE TRIGGER audit_rows AFTER UPDATE ON {relation}
           FOR EACH ROW EXECUTE FUNCTION audit_items();"
    ))
    .await
    .unwrap();
    let done = start_json(db, ADD_DOUBLED, &[]).await;
    let audited = c
        .query_one("SELECT count(DISTINCT id) FROM audit", &[])
        .await
        .unwrap();
    (done, audited.get(0))
}

const ADD_DOUBLED: &str = r#"{"operations": [{"add_column": {"table": "items", "up": "v * 2",
    "column": {"name": "w", "type": "bigint", "nullable": true}}}]}"#;

#[tokio::test]
async fn the_backfill_skips_triggers_unless_it_needs_them() {
    // Nothing on the table but tandem's trigger: the batches skip it (session_replication_role).
    let (db, c) = table_with_rows(3_000).await;
    let done = start_json(&db, ADD_DOUBLED, &[]).await;
    assert_eq!(done["triggers_skipped"], true, "{done}");
    assert_eq!(done["rows"], 3_000);
    assert_eq!(rows_not_doubled(&c).await, 0);

    // --backfill-fire-triggers keeps them, with the same result.
    let (db, c) = table_with_rows(3_000).await;
    let done = start_json(&db, ADD_DOUBLED, &["--backfill-fire-triggers"]).await;
    assert_eq!(done["triggers_skipped"], false, "{done}");
    assert_eq!(rows_not_doubled(&c).await, 0);

    // The backfill is not an application write: a user's trigger sees none of its rows.
    let (db, c) = table_with_rows(3_000).await;
    let (done, audited) = backfill_audited(&db, &c, "public.items").await;
    assert_eq!(done["triggers_skipped"], true, "{done}");
    assert_eq!(audited, 0);
    assert_eq!(rows_not_doubled(&c).await, 0);

    // tandem's foreign key on the new column is NOT VALID until complete validates every row,
    // so the backfill needs no row-by-row check either.
    let (db, c) = table_with_rows(300).await;
    c.batch_execute("CREATE TABLE parents (id bigint PRIMARY KEY); INSERT INTO parents SELECT g * 2 FROM generate_series(1, 300) g")
        .await
        .unwrap();
    let with_fk = r#"{"operations": [{"add_column": {"table": "items", "up": "v * 2",
        "column": {"name": "parent", "type": "bigint", "nullable": true,
                   "references": {"name": "items_parent_fk", "table": "parents", "column": "id"}}}}]}"#;
    let done = start_json(&db, with_fk, &[]).await;
    assert_eq!(done["triggers_skipped"], true, "{done}");
    db.tandem_ok(&["complete"]);
    let validated: bool = c
        .query_one(
            "SELECT convalidated FROM pg_constraint WHERE conname = 'items_parent_fk'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        validated,
        "complete validated the foreign key over the backfilled rows"
    );

    // A rule on the table keeps the triggers firing, as before.
    let (db, c) = table_with_rows(300).await;
    c.batch_execute(
        "CREATE TABLE seen (id bigint);
         CREATE RULE items_seen AS ON UPDATE TO public.items DO ALSO INSERT INTO seen VALUES (NEW.id)",
    )
    .await
    .unwrap();
    let done = start_json(&db, ADD_DOUBLED, &[]).await;
    assert_eq!(done["triggers_skipped"], false, "{done}");

    // A trigger of one partition is an application trigger like any other.
    let (db, c) = partitioned_items(2_000).await;
    let (done, audited) = backfill_audited(&db, &c, "public.items_2a").await;
    assert_eq!(done["triggers_skipped"], true, "{done}");
    assert_eq!(audited, 0, "no row of items_2a");
}

/// A partitioned table's rows live in one file per partition: the backfill goes by key.
/// `items` partitioned by `part`: two partitions, one of them partitioned again, and a
/// default partition; `rows` rows spread over all four.
async fn partitioned_items(rows: i64) -> (TestDb, Client) {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let c = db.client().await;
    c.batch_execute(&format!(
        "CREATE TABLE public.items (id bigint, part int, v bigint, PRIMARY KEY (id, part))
           PARTITION BY LIST (part);
         CREATE TABLE public.items_1 PARTITION OF public.items FOR VALUES IN (1);
         CREATE TABLE public.items_2 PARTITION OF public.items FOR VALUES IN (2, 3)
           PARTITION BY LIST (part);
         CREATE TABLE public.items_2a PARTITION OF public.items_2 FOR VALUES IN (2);
         CREATE TABLE public.items_2b PARTITION OF public.items_2 FOR VALUES IN (3);
         CREATE TABLE public.items_rest PARTITION OF public.items DEFAULT;
         INSERT INTO public.items SELECT g, 1 + g % 4, g FROM generate_series(1, {rows}) g;
         ANALYZE public.items;"
    ))
    .await
    .unwrap();
    (db, c)
}

/// The page pass's recorded parts, and whether a key-range pass ever ran.
async fn page_pass_parts(c: &Client) -> (Vec<String>, bool) {
    let row = c
        .query_one(
            "SELECT ARRAY(SELECT p->>'name' FROM jsonb_array_elements(block_pass->'parts') p),
                    last_key IS NOT NULL AND last_key <> 'null'::jsonb
               FROM tandem.backfill_progress WHERE table_name = 'items'",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Each leaf partition is a file of its own: the page pass goes through them one after the
/// other (`UPDATE ONLY` each), on several connections, and never falls back to key ranges.
#[tokio::test]
async fn a_partitioned_table_is_backfilled_over_each_partitions_pages() {
    let (db, c) = partitioned_items(20_000).await;
    let done = start_json(
        &db,
        ADD_DOUBLED,
        &["--backfill-batch-size", "700", "--backfill-workers", "3"],
    )
    .await;
    assert_eq!(done["rows"], 20_000, "{done}");
    assert_eq!(done["workers"], 3, "{done}");
    assert_eq!(
        done["triggers_skipped"], true,
        "only tandem's trigger, on each partition"
    );
    let (mut parts, by_keys) = page_pass_parts(&c).await;
    parts.sort();
    assert_eq!(parts, ["items_1", "items_2a", "items_2b", "items_rest"]);
    assert!(!by_keys, "no key-range pass was needed");
    assert_eq!(rows_not_doubled(&c).await, 0);
    db.tandem_ok(&["complete"]);
    assert_eq!(rows_not_doubled(&c).await, 0);
}

/// An inheritance parent keeps rows of its own beside its children's, and a child may have
/// more columns: each is a part of the page pass.
#[tokio::test]
async fn an_inherited_table_is_backfilled_over_the_parent_and_each_child() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE public.items (id bigint PRIMARY KEY, v bigint);
         CREATE TABLE public.items_old (note text) INHERITS (public.items);
         INSERT INTO public.items SELECT g, g FROM generate_series(1, 3000) g;
         INSERT INTO public.items_old SELECT g, g, 'old' FROM generate_series(3001, 5000) g;
         ANALYZE public.items; ANALYZE public.items_old;",
    )
    .await
    .unwrap();
    let done = start_json(&db, ADD_DOUBLED, &["--backfill-batch-size", "500"]).await;
    assert_eq!(done["rows"], 5_000, "{done}");
    let (mut parts, by_keys) = page_pass_parts(&c).await;
    parts.sort();
    assert_eq!(parts, ["items", "items_old"]);
    assert!(!by_keys);
    assert_eq!(rows_not_doubled(&c).await, 0);
}

/// VACUUM FULL of the partition the pass is in (the first, `items_1`, a quarter of the rows)
/// moves its rows not yet reached to pages already passed: the pass notices, and key ranges
/// finish the rest, each row updated exactly once.
#[tokio::test]
async fn a_partition_rewritten_during_the_backfill_is_finished_by_key_ranges() {
    let rows = 40_000;
    let (db, c) = partitioned_items(rows).await;
    let file = migration_file("02_double.json", ADD_DOUBLED);
    let child = spawn_start_with(&db, &file, "500", "20ms", &["--backfill-workers", "1"]);
    wait_until("some batches", || async { rows_done(&c).await >= 3_000 }).await;
    c.batch_execute("VACUUM FULL public.items_1").await.unwrap();
    assert!(
        rows_done(&c).await < rows / 4,
        "rewritten mid-way through items_1"
    );
    exits_successfully(child).await;
    assert_eq!(rows_done(&c).await, rows, "every row once, none twice");
    assert!(
        page_pass_parts(&c).await.1,
        "the key-range pass finished it"
    );
    assert_eq!(rows_not_doubled(&c).await, 0);
}

/// A table VACUUMed after long stretches of it were deleted: half its pages empty, the
/// others full. Batches that grew over the empty pages, sized by the average density, once
/// reached 190,000 rows (seconds of row locks) where they came to full pages again. Each
/// batch now holds no more rows than the cap, sized from what the batches before it did.
#[tokio::test]
async fn batches_over_a_table_with_empty_pages_keep_to_the_row_cap() {
    let (db, c) = table_with_rows(200_000).await;
    c.batch_execute("DELETE FROM public.items WHERE (id / 20000) % 2 = 0 AND id <= 180000")
        .await
        .unwrap();
    c.batch_execute("VACUUM ANALYZE public.items")
        .await
        .unwrap();
    let empty: i64 = c
        .query_one(
            "SELECT count(*) FROM generate_series(0, pg_relation_size('public.items') / 8192 - 1) p
              WHERE NOT EXISTS (SELECT FROM public.items
                                 WHERE ctid >= format('(%s,0)', p)::tid
                                   AND ctid < format('(%s,0)', p + 1)::tid)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(empty > 300, "stretches of empty pages: {empty}");
    let file = migration_file("02_double.json", DOUBLE);
    let out = db.tandem(&[
        "--backfill-batch-size",
        "500",
        "--backfill-batch-time",
        "20ms",
        "--backfill-max-batch-rows",
        "3000",
        "start",
        "--json",
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let batches: Vec<i64> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "backfill_progress")
        .map(|e| e["batch_size"].as_i64().unwrap())
        .collect();
    assert!(
        batches.len() as i64 >= 100_001 / 3000,
        "{} batches",
        batches.len()
    );
    let largest = batches.iter().copied().max().unwrap();
    assert!(largest <= 3000, "a batch of {largest} rows: {batches:?}");
    assert!(
        largest > 500,
        "batches grew from the first one: {batches:?}"
    );
    let done = backfill_done(&out.stderr);
    assert_eq!(done["rows"], 100_001, "{done}");
    assert!(done["longest_batch_ms"].as_f64().is_some(), "{done}");
    assert_eq!(done["largest_batch_rows"], largest, "{done}");
    assert_eq!(rows_not_id_doubled(&c).await, 0);
}
