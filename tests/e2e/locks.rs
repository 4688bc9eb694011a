//! Lock discipline: while a long transaction holds a lock tandem needs, tandem waits at most
//! the lock timeout per attempt, retries with backoff naming the blocking session, and the
//! application's queries never queue behind it for longer than that.

use std::time::{Duration, Instant};

use crate::support::{migration_file, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_long_transaction_never_makes_the_application_queue_behind_tandem() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let setup = migration_file(
        "01_items.json",
        r#"{"operations": [{"create_table": {"name": "items", "columns": [{"name": "id", "type": "int", "pk": true}]}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", setup.to_str().unwrap()]);
    let blocker = db.client().await;
    blocker
        .batch_execute("BEGIN; SELECT * FROM public.items")
        .await
        .unwrap();
    let blocker_pid: i32 = blocker
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);

    let file = migration_file(
        "02_add.json",
        r#"{"operations": [{"add_column": {"table": "items", "column": {"name": "note", "type": "text", "nullable": true}}}]}"#,
    );
    let url = db.url.clone();
    let tandem = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args([
                "--lock-timeout",
                "200ms",
                "start",
                "--json",
                file.to_str().unwrap(),
            ])
            .env("TANDEM_PG_URL", url)
            .output()
            .unwrap()
    });
    // The application keeps querying while tandem waits for its lock.
    let app = db.client_on("public_01_items").await;
    let mut slowest = Duration::ZERO;
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let began = Instant::now();
        app.query("SELECT count(*) FROM items", &[]).await.unwrap();
        slowest = slowest.max(began.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    blocker.batch_execute("COMMIT").await.unwrap();
    let out = tandem.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let retries: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "lock_retry")
        .collect();
    assert!(retries.len() >= 2, "tandem retried while blocked: {stderr}");
    assert!(
        retries.iter().all(|r| r["blockers"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {blocker_pid}"))),
        "each retry names the blocking session {blocker_pid}: {retries:?}"
    );
    assert!(
        slowest < Duration::from_millis(600),
        "the application waited {slowest:?} behind tandem (lock timeout 200ms)"
    );
}
