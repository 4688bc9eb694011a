//! Fault injection: the tandem process dies (as if SIGKILLed) right after each step of start,
//! complete and rollback in turn; re-running the command (or rolling back) converges to the
//! right catalog and data every time.

use std::process::Output;

use crate::support::{catalog_snapshot, migration_file, tandem_sessions_gone, TestDb};
use tokio_postgres::Client;

const SETUP: &str = r#"{"operations": [{"create_table": {"name": "items", "columns": [
    {"name": "id", "type": "int", "pk": true},
    {"name": "name", "type": "text"},
    {"name": "qty", "type": "int", "check": {"name": "qty_positive", "constraint": "qty >= 0"}},
    {"name": "tag", "type": "text", "nullable": true},
    {"name": "note", "type": "text", "nullable": true}]}}]}"#;

/// One of each kind of step: DDL, sync trigger, backfill, concurrent index build, view
/// creation; and at complete validation, drops, renames and SET NOT NULL.
const CHANGE: &str = r#"{"operations": [
    {"add_column": {"table": "items", "up": "'c-' || id", "column": {"name": "code", "type": "text"}}},
    {"alter_column": {"table": "items", "column": "qty", "type": "bigint"}},
    {"rename_column": {"table": "items", "from": "name", "to": "title"}},
    {"create_index": {"name": "items_tag_idx", "table": "items", "columns": ["tag"]}},
    {"drop_column": {"table": "items", "column": "note"}}]}"#;

async fn setup() -> (TestDb, Client, std::path::PathBuf) {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    db.tandem_ok(&[
        "start",
        "--complete",
        migration_file("01_items.json", SETUP).to_str().unwrap(),
    ]);
    let c = db.client().await;
    c.batch_execute(
        "INSERT INTO public.items SELECT g, 'n' || g, g, NULL, 'x' FROM generate_series(1, 300) g",
    )
    .await
    .unwrap();
    (db, c, migration_file("02_change.json", CHANGE))
}

fn crash_after(db: &TestDb, steps: usize, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("TANDEM_PG_URL", &db.url)
        .env("TANDEM_CRASH_AFTER_STEPS", steps.to_string())
        .output()
        .unwrap()
}

async fn final_data_is_right(db: &TestDb) {
    let v2 = db.client_on("public_02_change").await;
    let bad: i64 = v2
        .query_one("SELECT count(*) FROM items WHERE code <> 'c-' || id OR title <> 'n' || id OR qty <> id", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(bad, 0);
    let n: i64 = v2
        .query_one("SELECT count(*) FROM items", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 300);
}

/// The catalog after a clean start → complete, to compare crashed runs with.
async fn reference_after_complete() -> String {
    let (db, c, change) = setup().await;
    db.tandem_ok(&["start", "--complete", change.to_str().unwrap()]);
    catalog_snapshot(&c).await
}

#[tokio::test]
async fn a_start_killed_after_any_step_resumes_or_rolls_back() {
    let reference = reference_after_complete().await;
    for n in 1.. {
        let (db, c, change) = setup().await;
        let before = catalog_snapshot(&c).await;
        let out = crash_after(&db, n, &["start", change.to_str().unwrap()]);
        if out.status.success() {
            assert!(n > 3, "start has several steps");
            break;
        }
        assert_eq!(
            out.status.code(),
            None,
            "step {n}: killed, not failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tandem_sessions_gone(&c).await;
        if n % 2 == 1 {
            db.tandem_ok(&["rollback"]);
            assert_eq!(
                before,
                catalog_snapshot(&c).await,
                "rollback after a start killed at step {n}"
            );
            db.tandem_ok(&["start", "--complete", change.to_str().unwrap()]);
        } else {
            db.tandem_ok(&["backfill"]);
            final_data_is_right(&db).await;
            db.tandem_ok(&["complete"]);
        }
        final_data_is_right(&db).await;
        assert_eq!(
            reference,
            catalog_snapshot(&c).await,
            "start killed at step {n}"
        );
    }
}

#[tokio::test]
async fn a_complete_killed_after_any_step_resumes() {
    let reference = reference_after_complete().await;
    for n in 1.. {
        let (db, c, change) = setup().await;
        db.tandem_ok(&["start", change.to_str().unwrap()]);
        let out = crash_after(&db, n, &["complete"]);
        if out.status.success() {
            assert!(n > 3, "complete has several steps");
            break;
        }
        tandem_sessions_gone(&c).await;
        let refused = db.tandem(&["rollback"]);
        assert_eq!(
            refused.status.code(),
            Some(1),
            "rollback is refused once the contract has begun"
        );
        db.tandem_ok(&["complete"]);
        final_data_is_right(&db).await;
        assert_eq!(
            reference,
            catalog_snapshot(&c).await,
            "complete killed at step {n}"
        );
    }
}

#[tokio::test]
async fn a_rollback_killed_after_any_step_resumes() {
    for n in 1.. {
        let (db, c, change) = setup().await;
        let before = catalog_snapshot(&c).await;
        db.tandem_ok(&["start", change.to_str().unwrap()]);
        let out = crash_after(&db, n, &["rollback"]);
        if out.status.success() {
            assert!(n > 3, "rollback has several steps");
            break;
        }
        tandem_sessions_gone(&c).await;
        db.tandem_ok(&["rollback"]);
        assert_eq!(
            before,
            catalog_snapshot(&c).await,
            "rollback killed at step {n}"
        );
    }
}
