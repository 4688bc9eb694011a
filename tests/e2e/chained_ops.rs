//! Operations that refer to what an earlier operation of the same migration did (pgroll runs
//! them): a foreign key to a table or column renamed just before points at it.

use crate::support::{migration_file, start_roll_back_start, texts, TestDb};

#[tokio::test]
async fn a_foreign_key_to_a_table_renamed_in_the_same_migration_points_at_it() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY, name text);
         CREATE TABLE posts (id int PRIMARY KEY, author int);
         INSERT INTO users VALUES (1, 'ann'); INSERT INTO posts VALUES (1, 1);",
    )
    .await
    .unwrap();
    db.tandem_ok(&["init"]);
    let f = migration_file(
        "02_people.json",
        r#"{"operations": [
          {"rename_table": {"from": "users", "to": "people"}},
          {"rename_column": {"table": "people", "from": "id", "to": "person_id"}},
          {"create_constraint": {"table": "posts", "name": "posts_author_fk", "type": "foreign_key",
             "columns": ["author"], "references": {"table": "people", "columns": ["person_id"]},
             "up": {"author": "author"}, "down": {"author": "author"}}}
        ]}"#,
    );
    start_roll_back_start(&db, &f).await;
    let new = db.client_on("public_02_people").await;
    new.batch_execute("INSERT INTO people VALUES (2, 'ben'); INSERT INTO posts VALUES (2, 2)")
        .await
        .unwrap();
    db.tandem_ok(&["complete"]);
    let err = c
        .batch_execute("INSERT INTO posts VALUES (3, 99)")
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION)
    );
    assert_eq!(
        texts(
            &c,
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'posts_author_fk'"
        )
        .await,
        ["FOREIGN KEY (author) REFERENCES people(person_id)"]
    );
}

/// Two alter_column operations on one column: an old-version write goes through both `up`s,
/// in order, so it satisfies what both add (pgroll's behaviour).
#[tokio::test]
async fn two_alter_columns_on_one_column_apply_both_ups_in_order() {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE people (id int PRIMARY KEY, name text);
         INSERT INTO people VALUES (1, 'bob'), (2, NULL);",
    )
    .await
    .unwrap();
    db.tandem_ok(&["init"]);
    let dir = std::env::temp_dir().join(format!("tandem-chain-{}", std::process::id()));
    db.tandem_ok(&["baseline", "01_base", dir.to_str().unwrap()]);
    let f = migration_file(
        "02_name_rules.json",
        r#"{"operations": [
          {"alter_column": {"table": "people", "column": "name",
             "check": {"name": "name_capitalised", "constraint": "name = INITCAP(name)"},
             "up": "INITCAP(name)", "down": "name"}},
          {"alter_column": {"table": "people", "column": "name", "nullable": false,
             "up": "CASE WHEN name IS NULL THEN 'Jane' ELSE name END", "down": "name"}}
        ]}"#,
    );
    start_roll_back_start(&db, &f).await;
    let old = db.client_on("public_01_base").await;
    let new = db.client_on("public_02_name_rules").await;
    old.batch_execute("INSERT INTO people VALUES (3, 'alice'), (4, NULL)")
        .await
        .unwrap();
    let names = "SELECT format('%s %s', id, name) FROM people ORDER BY id";
    assert_eq!(
        texts(&new, names).await,
        ["1 Bob", "2 Jane", "3 Alice", "4 Jane"]
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(&c, names).await,
        ["1 Bob", "2 Jane", "3 Alice", "4 Jane"]
    );
}
