//! `--max-replication-lag` against a real streaming standby that replays each commit two
//! seconds late: the backfill waits for it, tells so once per wait, and finishes.

use std::process::Command;
use std::time::Duration;

use tandem_pg::cluster::LocalCluster;

use crate::support::{connect, migration_file};

#[tokio::test]
async fn the_backfill_waits_for_a_lagging_standby_once_per_wait_and_finishes() {
    let primary = tokio::task::spawn_blocking(LocalCluster::start)
        .await
        .unwrap()
        .expect("a throwaway primary");
    let primary = std::sync::Arc::new(primary);
    let p = primary.clone();
    let standby = tokio::task::spawn_blocking(move || p.start_standby(Duration::from_millis(2000)))
        .await
        .unwrap()
        .expect("a streaming standby");
    let url = primary.create_database("lagged").await.unwrap();
    let c = connect(&url).await;
    let streaming: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_stat_replication WHERE replay_lsn IS NOT NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(streaming, 1, "the standby streams");
    let tandem = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(args)
            .env("TANDEM_PG_URL", &url)
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    assert!(tandem(&["init"]).status.success());
    c.batch_execute(
        "CREATE TABLE public.items (id bigint PRIMARY KEY, v bigint);
         INSERT INTO public.items SELECT g, g FROM generate_series(1, 30000) g;
         ANALYZE public.items",
    )
    .await
    .unwrap();
    let file = migration_file(
        "01_double.json",
        r#"{"operations": [{"add_column": {"table": "items", "up": "v * 2",
            "column": {"name": "w", "type": "bigint", "nullable": true}}}]}"#,
    );
    let out = tandem(&[
        "--max-replication-lag",
        "300ms",
        "--backfill-workers",
        "2",
        "--backfill-batch-size",
        "500",
        "--backfill-batch-time",
        "20ms",
        "start",
        "--json",
        file.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| {
            e["event"] == "backfill_waiting" || e["event"] == "backfill_progress"
        })
        .collect();
    let waits: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "backfill_waiting")
        .collect();
    assert!(!waits.is_empty(), "the backfill waited: {stderr}");
    for w in &waits {
        let reason = w["reason"].as_str().unwrap();
        assert!(
            reason.contains("replica") && reason.contains("behind") && reason.contains("WAL"),
            "{reason}"
        );
    }
    // One line per wait, not one per worker per second: batches ran between any two.
    for pair in events.windows(2) {
        assert!(
            !(pair[0]["event"] == "backfill_waiting" && pair[1]["event"] == "backfill_waiting"),
            "two waiting lines in a row: {stderr}"
        );
    }
    let wrong: i64 = c
        .query_one(
            "SELECT count(*) FROM public.items WHERE w IS DISTINCT FROM v * 2",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(wrong, 0);
    drop(c);
    drop(standby);
}
