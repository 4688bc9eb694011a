//! A default change shows to the new version as soon as start returns, while the old version
//! keeps the old default until complete (pgroll's behaviour): a removed default gives the new
//! version NULL at once.

use crate::support::{migration_file, start_roll_back_start, texts, TestDb};

#[tokio::test]
async fn the_new_version_sees_a_changed_or_removed_default_during_the_expand_phase() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE tasks (id int PRIMARY KEY, status text DEFAULT 'todo', points int DEFAULT 5,
                             due date DEFAULT '2030-01-01')",
    )
    .await
    .unwrap();
    db.tandem_ok(&["init"]);
    let dir = std::env::temp_dir().join(format!("tandem-defaults-{}", std::process::id()));
    db.tandem_ok(&["baseline", "01_base", dir.to_str().unwrap()]);
    let f = migration_file(
        "02_defaults.json",
        r#"{"operations": [
          {"alter_column": {"table": "tasks", "column": "status", "default": "'open'"}},
          {"alter_column": {"table": "tasks", "column": "points", "default": null}},
          {"alter_column": {"table": "tasks", "column": "due", "default": null}}
        ]}"#,
    );
    start_roll_back_start(&db, &f).await;
    let old = db.client_on("public_01_base").await;
    let new = db.client_on("public_02_defaults").await;
    old.execute("INSERT INTO tasks (id) VALUES (1)", &[])
        .await
        .unwrap();
    new.execute("INSERT INTO tasks (id) VALUES (2)", &[])
        .await
        .unwrap();
    let rows = "SELECT format('%s %s %s %s', id, status, coalesce(points::text, 'null'), coalesce(due::text, 'null')) FROM tasks ORDER BY id";
    assert_eq!(
        texts(&c, rows).await,
        ["1 todo 5 2030-01-01", "2 open null null"]
    );
    db.tandem_ok(&["complete"]);
    new.execute("INSERT INTO tasks (id) VALUES (3)", &[])
        .await
        .unwrap();
    c.execute("INSERT INTO tasks (id) VALUES (4)", &[])
        .await
        .unwrap();
    assert_eq!(
        texts(&c, rows).await,
        [
            "1 todo 5 2030-01-01",
            "2 open null null",
            "3 open null null",
            "4 open null null"
        ]
    );
}
