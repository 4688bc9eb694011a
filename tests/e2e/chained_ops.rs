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
