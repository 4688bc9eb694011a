//! `tandem migrate --report` and `--max-exclusive-ms`: a rehearsal records every step's lock
//! and duration, and a start that holds ACCESS EXCLUSIVE too long is rolled back.

use serde_json::Value;

use crate::support::{catalog_snapshot, migrations_dir, texts, TestDb};

const ADD_DOUBLED: &str = r#"{"operations": [
  {"add_column": {"table": "items", "up": "v * 2",
    "column": {"name": "doubled", "type": "bigint", "nullable": false}}}
]}"#;

const RENAME_V: &str = r#"{"operations": [
  {"rename_column": {"table": "items", "from": "v", "to": "value"}}
]}"#;

async fn items_table(db: &TestDb, rows: i64) {
    db.client()
        .await
        .batch_execute(&format!(
            "CREATE TABLE items (id bigint PRIMARY KEY, v bigint NOT NULL);
             INSERT INTO items SELECT g, g FROM generate_series(1, {rows}) g"
        ))
        .await
        .expect("seed items");
    db.tandem_ok(&["init"]);
}

fn read_report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the report is written"))
        .expect("the report is JSON")
}

fn steps_where<'a>(report: &'a Value, key: &str, value: &str) -> Vec<&'a Value> {
    report["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter(|s| s[key] == value)
        .collect()
}

#[tokio::test]
async fn the_report_records_every_phase_lock_and_backfilled_row() {
    let db = TestDb::new().await;
    items_table(&db, 2_000).await;
    let dir = migrations_dir(&[
        ("01_add_doubled.json", ADD_DOUBLED),
        ("02_rename.json", RENAME_V),
    ]);
    let report_path = dir.join("report.json");
    db.tandem_ok(&[
        "migrate",
        dir.to_str().unwrap(),
        "--complete",
        "--report",
        report_path.to_str().unwrap(),
        "--max-exclusive-ms",
        "60000",
    ]);

    let report = read_report(&report_path);
    assert_eq!(report["passed"], true, "{report:#}");
    assert_eq!(report["max_exclusive_ms"], 60000);
    let backfills: Vec<_> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s.get("rows_backfilled").is_some())
        .collect();
    assert_eq!(backfills.len(), 1, "one backfill: {report:#}");
    assert_eq!(backfills[0]["rows_backfilled"], 2_000);
    assert_eq!(backfills[0]["migration"], "01_add_doubled");
    assert_eq!(backfills[0]["lock"], "ROW_EXCLUSIVE");
    for migration in ["01_add_doubled", "02_rename"] {
        let phases: Vec<_> = steps_where(&report, "migration", migration)
            .iter()
            .map(|s| s["phase"].as_str().unwrap().to_string())
            .collect();
        assert!(
            phases.contains(&"start".into()) && phases.contains(&"complete".into()),
            "{migration} ran start and complete: {phases:?}"
        );
    }
    let longest = &report["longest_exclusive"];
    assert_eq!(longest["lock"], "ACCESS_EXCLUSIVE", "{report:#}");
    let longest_ms = longest["duration_ms"].as_f64().unwrap();
    let every_exclusive = steps_where(&report, "lock", "ACCESS_EXCLUSIVE");
    assert!(every_exclusive
        .iter()
        .all(|s| s["duration_ms"].as_f64().unwrap() <= longest_ms));
    assert!(report["over_limit"].as_array().unwrap().is_empty());

    // And the rehearsal really migrated: the final shape, every row filled.
    let c = db.client().await;
    let wrong = texts(
        &c,
        "SELECT count(*)::text FROM public.items WHERE doubled IS DISTINCT FROM value * 2",
    )
    .await;
    assert_eq!(wrong, ["0"]);
}

#[tokio::test]
async fn a_start_over_the_exclusive_limit_is_rolled_back_and_fails() {
    let db = TestDb::new().await;
    items_table(&db, 500).await;
    let c = db.client().await;
    let catalog_before = catalog_snapshot(&c).await;
    let dir = migrations_dir(&[
        ("01_add_doubled.json", ADD_DOUBLED),
        ("02_rename.json", RENAME_V),
    ]);
    let report_path = dir.join("report.json");
    // Every ACCESS EXCLUSIVE step takes longer than 0 ms.
    let out = db.tandem(&[
        "migrate",
        dir.to_str().unwrap(),
        "--report",
        report_path.to_str().unwrap(),
        "--max-exclusive-ms",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("over --max-exclusive-ms 0"), "{stderr}");
    assert!(stderr.contains("rolled back"), "{stderr}");

    let report = read_report(&report_path);
    assert_eq!(report["passed"], false);
    assert!(!report["over_limit"].as_array().unwrap().is_empty());
    assert!(report["error"]
        .as_str()
        .unwrap()
        .contains("max-exclusive-ms"));
    assert!(
        steps_where(&report, "migration", "02_rename").is_empty(),
        "the second migration never ran: {report:#}"
    );
    assert!(!steps_where(&report, "phase", "rollback").is_empty());

    // Nothing of the first migration is left: same catalog, same rows, nothing in flight.
    assert_eq!(catalog_snapshot(&c).await, catalog_before);
    assert_eq!(
        texts(
            &c,
            "SELECT count(*)::text FROM items WHERE v BETWEEN 1 AND 500"
        )
        .await,
        ["500"]
    );
    assert_eq!(db.tandem_ok(&["latest", "version"]).trim(), "");
}
