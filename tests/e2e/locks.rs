//! Lock discipline: while a long transaction holds a lock tandem needs, tandem waits at most
//! the lock timeout per attempt, retries with backoff naming the blocking session, and the
//! application's queries never queue behind it for longer than that. By default that timeout
//! starts short and grows per retry up to a cap; `--lock-timeout` fixes it for every try.

use std::time::{Duration, Instant};

use crate::support::{migration_file, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_long_transaction_never_makes_the_application_queue_behind_tandem() {
    let (db, blocker, blocker_pid, file) = items_held_by_a_blocker().await;
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

/// Starts `02_add.json` (an added column) with `lock_args` while another session holds a
/// lock on `items` that the step needs; once tandem has printed `retries` lock retries the
/// blocker commits. Returns tandem's exit status, the retry events, and the blocker's pid.
async fn blocked_start(
    lock_args: &[&str],
    retries: usize,
) -> (bool, Vec<serde_json::Value>, i32, String) {
    use std::io::BufRead;
    let (db, blocker, blocker_pid, file) = items_held_by_a_blocker().await;
    let mut args: Vec<&str> = lock_args.to_vec();
    args.extend(["start", "--json", file.to_str().unwrap()]);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(&args)
        .env("TANDEM_PG_URL", &db.url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (seen_tx, seen_rx) = std::sync::mpsc::channel::<()>();
    let reader = std::thread::spawn(move || {
        let mut lines = Vec::new();
        let mut seen = 0;
        for line in std::io::BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if serde_json::from_str::<serde_json::Value>(&line)
                .is_ok_and(|e| e["event"] == "lock_retry")
            {
                seen += 1;
                if seen == retries {
                    let _ = seen_tx.send(());
                }
            }
            lines.push(line);
        }
        lines
    });
    // No clock: the blocker lets go once tandem has said it retried often enough (or has
    // exited, which the assertions below report).
    tokio::task::spawn_blocking(move || seen_rx.recv())
        .await
        .unwrap()
        .ok();
    blocker.batch_execute("COMMIT").await.unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let lines = reader.join().unwrap();
    let events = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "lock_retry")
        .collect();
    (status.success(), events, blocker_pid, lines.join("\n"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn by_default_the_lock_timeout_starts_short_and_grows_per_retry_up_to_its_cap() {
    let (ok, retries, blocker_pid, stderr) = blocked_start(&[], 4).await;
    assert!(ok, "tandem succeeds once the blocker ends: {stderr}");
    assert!(retries.len() >= 4, "{stderr}");
    let timeouts: Vec<u64> = retries
        .iter()
        .map(|r| r["lock_timeout_ms"].as_u64().unwrap())
        .collect();
    assert_eq!(timeouts[0], 50, "the first try waits 50 ms: {timeouts:?}");
    assert!(
        timeouts.windows(2).all(|w| w[1] >= w[0] || w[1] >= 96),
        "each retry waits at least as long as the one before, but for jitter at the cap: {timeouts:?}"
    );
    let mut distinct = timeouts.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() > 1,
        "more than one lock timeout: {timeouts:?}"
    );
    assert!(
        timeouts.iter().all(|t| (50..=120).contains(t)),
        "no try waits longer than the 120 ms cap: {timeouts:?}"
    );
    assert!(
        retries.iter().all(|r| r["blockers"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {blocker_pid}"))),
        "each retry names the blocking session {blocker_pid}: {retries:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn a_given_lock_timeout_is_used_for_every_try() {
    let (ok, retries, blocker_pid, stderr) = blocked_start(&["--lock-timeout", "300ms"], 3).await;
    assert!(ok, "tandem succeeds once the blocker ends: {stderr}");
    assert!(retries.len() >= 3, "{stderr}");
    assert!(
        retries.iter().all(|r| r["lock_timeout_ms"] == 300),
        "every try waits the given 300 ms: {retries:?}"
    );
    assert!(
        retries.iter().all(|r| r["blockers"]
            .as_str()
            .unwrap()
            .contains(&format!("pid {blocker_pid}"))),
        "each retry names the blocking session {blocker_pid}: {retries:?}"
    );
}

/// A table `items` (made by a completed migration) that another session holds a lock on
/// until it commits, and `02_add.json`, which adds a column to it: a step that must wait.
async fn items_held_by_a_blocker() -> (TestDb, tokio_postgres::Client, i32, std::path::PathBuf) {
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
    (db, blocker, blocker_pid, file)
}
