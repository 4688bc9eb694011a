//! Two `start`s at once: exactly one succeeds, the other is refused with a clear message.

use crate::support::{migration_file, TestDb};

#[tokio::test]
async fn two_starts_at_once_exactly_one_wins() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let client = db.client().await;
    client.batch_execute("CREATE TABLE big (id int PRIMARY KEY, v text); INSERT INTO big SELECT g, 'x' FROM generate_series(1, 50000) g").await.unwrap();
    let a = migration_file(
        "01_a.json",
        r#"{"operations": [{"add_column": {"table": "big", "up": "v || 'a'", "column": {"name": "a", "type": "text"}}}]}"#,
    );
    let b = migration_file(
        "01_b.json",
        r#"{"operations": [{"add_column": {"table": "big", "up": "v || 'b'", "column": {"name": "b", "type": "text"}}}]}"#,
    );
    let run = |file: std::path::PathBuf, url: String| {
        std::thread::spawn(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_tandem"))
                .args(["start", file.to_str().unwrap()])
                .env("TANDEM_PG_URL", url)
                .output()
                .unwrap()
        })
    };
    let (ta, tb) = (run(a, db.url.clone()), run(b, db.url.clone()));
    let (oa, ob) = (ta.join().unwrap(), tb.join().unwrap());
    let ok = [oa.status.success(), ob.status.success()];
    assert_eq!(
        ok.iter().filter(|s| **s).count(),
        1,
        "exactly one start succeeds: {oa:?} {ob:?}"
    );
    let loser = if ok[0] { &ob } else { &oa };
    let stderr = String::from_utf8_lossy(&loser.stderr);
    assert_eq!(loser.status.code(), Some(1));
    assert!(
        stderr.contains("another tandem command") || stderr.contains("still in progress"),
        "a clear message: {stderr}"
    );
}
