//! Load test: writers and readers through the old and the new version schema, concurrently,
//! during start (with its backfill) and complete. No client statement may fail, and after
//! complete every row holds the value its last write implies.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::{migration_file, TestDb};
use tokio_postgres::Client;

const ROWS: i64 = 20_000;
const SLOTS: i64 = 4;

/// How one scenario writes through each version and what the last write implies.
struct Scenario {
    name: &'static str,
    migration: &'static str,
    /// SQL for (old, new) version writers: `$1` the row id, `$2` the value written.
    old_write: &'static str,
    new_write: &'static str,
    /// Reads a row's value through the new version as text, after complete.
    check: &'static str,
    /// The value the row must hold, given its last write (`new` = by the new version).
    expected: fn(new: bool, value: i32) -> String,
}

async fn setup() -> (TestDb, Client) {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let setup = migration_file(
        "01_accounts.json",
        r#"{"operations": [{"create_table": {"name": "accounts", "columns": [
            {"name": "id", "type": "bigint", "pk": true},
            {"name": "name", "type": "text"},
            {"name": "balance", "type": "integer", "check": {"name": "balance_not_negative", "constraint": "balance >= 0"}}]}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", setup.to_str().unwrap()]);
    let c = db.client().await;
    c.execute(
        "INSERT INTO public.accounts SELECT g, 'n' || g, 1 FROM generate_series(1, $1::bigint) g",
        &[&ROWS],
    )
    .await
    .unwrap();
    (db, c)
}

/// One writer per slot of rows, so each row's last write is known exactly: old-version writes
/// until `switch`, new-version writes after, until `stop`.
#[allow(clippy::too_many_arguments)]
async fn writer(
    db_url: String,
    slot: i64,
    s: &'static Scenario,
    switch: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
    writes: Arc<AtomicU64>,
) -> Vec<(i64, bool, i32)> {
    let old = crate::support::connect(&db_url).await;
    old.batch_execute("SET search_path = public_01_accounts")
        .await
        .unwrap();
    let new = crate::support::connect(&db_url).await;
    let mut last = Vec::new();
    let mut on_new = false;
    let mut value: i32 = 1000 * slot as i32;
    let mut id = slot + 1;
    while !stop.load(Ordering::SeqCst) {
        if !on_new && switch.load(Ordering::SeqCst) {
            new.batch_execute(&format!("SET search_path = \"public_02_{}\"", s.name))
                .await
                .unwrap();
            on_new = true;
        }
        value = value.wrapping_add(7) & 0x3fff_ffff;
        let (client, sql) = if on_new {
            (&new, s.new_write)
        } else {
            (&old, s.old_write)
        };
        match client.execute(sql, &[&id, &value]).await {
            Ok(_) => {
                last.push((id, on_new, value));
                writes.fetch_add(1, Ordering::SeqCst);
            }
            Err(e) => {
                eprintln!(
                    "slot {slot} ({}): {e:?}",
                    if on_new { "new" } else { "old" }
                );
                errors.fetch_add(1, Ordering::SeqCst);
            }
        }
        id += SLOTS * 37;
        if id > ROWS {
            id = slot + 1 + (id % SLOTS);
            id -= (id - 1) % SLOTS - slot;
        }
    }
    last
}

async fn reader(
    db_url: String,
    schema: &'static str,
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicU64>,
) {
    let c = crate::support::connect(&db_url).await;
    c.batch_execute(&format!("SET search_path = \"{schema}\""))
        .await
        .unwrap();
    while !stop.load(Ordering::SeqCst) {
        if let Err(e) = c
            .query(
                "SELECT * FROM accounts WHERE id = 1 + (random() * 19999)::int",
                &[],
            )
            .await
        {
            eprintln!("reader {schema}: {e:?}");
            errors.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn run(s: &'static Scenario) {
    let (db, admin) = setup().await;
    let switch = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let stop_old_readers = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let writes = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..SLOTS)
        .map(|slot| {
            tokio::spawn(writer(
                db.url.clone(),
                slot,
                s,
                switch.clone(),
                stop.clone(),
                errors.clone(),
                writes.clone(),
            ))
        })
        .collect();
    let old_reader = tokio::spawn(reader(
        db.url.clone(),
        "public_01_accounts",
        stop_old_readers.clone(),
        errors.clone(),
    ));
    let file = migration_file(&format!("02_{}.json", s.name), s.migration);
    let url = db.url.clone();
    let path = file.clone();
    let small_batches = [
        "--backfill-batch-size",
        "500",
        "--backfill-batch-time",
        "20ms",
    ];
    let start = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(small_batches)
            .args(["start", path.to_str().unwrap()])
            .env("TANDEM_PG_URL", url)
            .output()
            .unwrap()
    });
    let out = start.await.unwrap();
    assert!(
        out.status.success(),
        "start: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let during_start = writes.load(Ordering::SeqCst);
    // The new app version is deployed; the old one drains and stops before the contract.
    switch.store(true, Ordering::SeqCst);
    let new_reader = tokio::spawn(reader(
        db.url.clone(),
        Box::leak(format!("public_02_{}", s.name).into_boxed_str()),
        stop.clone(),
        errors.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_old_readers.store(true, Ordering::SeqCst);
    old_reader.await.unwrap();
    let before_complete = writes.load(Ordering::SeqCst);
    let url = db.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .arg("complete")
            .env("TANDEM_PG_URL", url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "complete: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    new_reader.await.unwrap();
    let mut last_writes = Vec::new();
    for w in writers {
        last_writes.extend(w.await.unwrap());
    }
    let after_complete = writes.load(Ordering::SeqCst);
    assert_eq!(
        errors.load(Ordering::SeqCst),
        0,
        "no client statement failed"
    );
    assert!(
        during_start > 0 && before_complete > during_start && after_complete > before_complete,
        "writes ran in every phase: {during_start} / {before_complete} / {after_complete}"
    );
    let mut expected = std::collections::BTreeMap::new();
    for (id, new, value) in last_writes {
        expected.insert(id, (s.expected)(new, value));
    }
    let v2 = db.client_on(&format!("public_02_{}", s.name)).await;
    for (id, want) in &expected {
        let got: String = v2.query_one(s.check, &[id]).await.unwrap().get(0);
        assert_eq!(&got, want, "row {id} after complete");
    }
    let untouched: i64 = admin
        .query_one("SELECT count(*) FROM public.accounts", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(untouched, ROWS);
}

static ADD_NOT_NULL: Scenario = Scenario {
    name: "add_score",
    migration: r#"{"operations": [{"add_column": {"table": "accounts", "up": "balance * 2", "column": {"name": "score", "type": "integer"}}}]}"#,
    old_write: "UPDATE accounts SET balance = $2 WHERE id = $1",
    new_write: "UPDATE accounts SET balance = $2, score = $2 + 1 WHERE id = $1",
    check: "SELECT balance || '/' || score FROM accounts WHERE id = $1",
    expected: |new, v| {
        if new {
            format!("{v}/{}", v + 1)
        } else {
            format!("{v}/{}", v * 2)
        }
    },
};

static CHANGE_TYPE: Scenario = Scenario {
    name: "balance_bigint",
    migration: r#"{"operations": [{"alter_column": {"table": "accounts", "column": "balance", "type": "bigint",
        "up": "balance::bigint * 10", "down": "(balance / 10)::integer"}}]}"#,
    old_write: "UPDATE accounts SET balance = $2 WHERE id = $1",
    new_write: "UPDATE accounts SET balance = $2::integer * 10::bigint WHERE id = $1",
    check: "SELECT balance::text FROM accounts WHERE id = $1",
    expected: |_, v| format!("{}", v as i64 * 10),
};

static RENAME: Scenario = Scenario {
    name: "rename_name",
    migration: r#"{"operations": [{"rename_column": {"table": "accounts", "from": "name", "to": "full_name"}}]}"#,
    old_write: "UPDATE accounts SET name = 'v' || $2::integer WHERE id = $1",
    new_write: "UPDATE accounts SET full_name = 'w' || $2::integer WHERE id = $1",
    check: "SELECT full_name FROM accounts WHERE id = $1",
    expected: |new, v| format!("{}{v}", if new { "w" } else { "v" }),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_not_null_column_under_load() {
    run(&ADD_NOT_NULL).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn type_change_under_load() {
    run(&CHANGE_TYPE).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rename_under_load() {
    run(&RENAME).await;
}
