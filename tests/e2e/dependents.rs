//! Objects outside tandem that depend on what a contract drops: views are rebuilt over the new
//! columns; what cannot be carried over is refused before anything changes (at start, or at
//! complete for objects created since), so a migration that starts always completes.
//! Partitioned tables: every partition's view follows the parent, in both versions.

use crate::support::{catalog_snapshot, migration_file, start_roll_back_start, texts, TestDb};
use tokio_postgres::Client;

/// An application's tables made before tandem, with its own views over them (one in another
/// schema, one over another view), options, grants and comments.
const APP: &str = r#"
CREATE TABLE customers (
    id int PRIMARY KEY,
    name text NOT NULL,
    score int NOT NULL DEFAULT 0,
    email text
);
INSERT INTO customers VALUES (1, 'ann', 5, 'ann@x'), (2, 'ben', 50, NULL), (3, 'cy', 20, 'cy@x');
CREATE VIEW top_customers WITH (security_barrier = true) AS
    SELECT id, name, score FROM customers WHERE score > 10;
COMMENT ON VIEW top_customers IS 'the best customers';
COMMENT ON COLUMN top_customers.score IS 'points';
GRANT SELECT ON top_customers TO PUBLIC;
CREATE SCHEMA reports;
CREATE VIEW reports.score_summary AS SELECT count(*) AS n, sum(score) AS total FROM top_customers;
"#;

/// A fresh database holding `sql`'s objects, with tandem initialised.
async fn with_schema(sql: &str) -> (TestDb, Client) {
    let db = TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(sql).await.unwrap();
    db.tandem_ok(&["init"]);
    (db, c)
}

async fn app() -> (TestDb, Client) {
    with_schema(APP).await
}

fn file(name: &str, json: &str) -> std::path::PathBuf {
    migration_file(&format!("{name}.json"), json)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SCORE_BIGINT: &str = r#"{"operations": [{"alter_column": {
    "table": "customers", "column": "score", "type": "bigint",
    "up": "score * 10", "down": "(score / 10)::int"}}]}"#;

#[tokio::test]
async fn views_over_a_swapped_column_are_rebuilt_with_their_options_grants_and_comments() {
    let (db, c) = app().await;
    let f = file("02_score_bigint", SCORE_BIGINT);
    start_roll_back_start(&db, &f).await;

    // Both versions write; the old one through the base schema, the new one through its views.
    let new = db.client_on("public_02_score_bigint").await;
    c.execute(
        "INSERT INTO customers (id, name, score) VALUES (4, 'dee', 30)",
        &[],
    )
    .await
    .unwrap();
    new.execute(
        "INSERT INTO customers (id, name, score) VALUES (5, 'eve', 700)",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        texts(
            &new,
            "SELECT format('%s=%s', id, score) FROM customers ORDER BY id"
        )
        .await,
        ["1=50", "2=500", "3=200", "4=300", "5=700"]
    );
    // The app's view still reads the old column while both versions run.
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s=%s', id, score) FROM top_customers ORDER BY id"
        )
        .await,
        ["2=50", "3=20", "4=30", "5=70"]
    );

    db.tandem_ok(&["complete"]);

    // The views now read the new column, with their type, options, grants and comments.
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s=%s', id, score) FROM top_customers ORDER BY id"
        )
        .await,
        ["1=50", "2=500", "3=200", "4=300", "5=700"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s %s %s %s', format_type(a.atttypid, a.atttypmod),
                    c.reloptions, obj_description(c.oid, 'pg_class'),
                    col_description(c.oid, a.attnum), has_table_privilege('public', c.oid, 'SELECT'))
               FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'score'
              WHERE c.oid = 'public.top_customers'::regclass"
        )
        .await,
        ["bigint {security_barrier=true} the best customers points t"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s', n, total) FROM reports.score_summary"
        )
        .await,
        ["5 1750"]
    );
}

#[tokio::test]
async fn a_view_over_a_dropped_column_is_refused_at_start_with_nothing_changed() {
    let (db, c) = app().await;
    c.batch_execute("CREATE VIEW contacts AS SELECT name, email FROM customers")
        .await
        .unwrap();
    let before = catalog_snapshot(&c).await;
    let f = file(
        "02_drop_email",
        r#"{"operations": [{"drop_column": {"table": "customers", "column": "email"}}]}"#,
    );
    for command in ["validate", "plan", "start"] {
        let out = db.tandem(&[command, f.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{command}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("/operations/0/drop_column")
                && err.contains("view contacts depends on column email of table customers"),
            "{command}: {err}"
        );
    }
    assert_eq!(before, catalog_snapshot(&c).await);
    // Once the view no longer uses the column, the same file runs to the end.
    c.batch_execute("DROP VIEW contacts; CREATE VIEW contacts AS SELECT name FROM customers")
        .await
        .unwrap();
    db.tandem_ok(&["start", "--complete", f.to_str().unwrap()]);
    assert_eq!(
        texts(&c, "SELECT name FROM contacts ORDER BY 1").await,
        ["ann", "ben", "cy"]
    );
}

#[tokio::test]
async fn what_cannot_be_carried_over_is_refused_at_start_naming_each_object() {
    let (db, c) = app().await;
    c.batch_execute(
        "CREATE MATERIALIZED VIEW top_totals AS SELECT sum(score) AS total FROM top_customers;
         ALTER TABLE customers ADD COLUMN double_score int GENERATED ALWAYS AS (score * 2) STORED;
         CREATE TABLE notes (id int PRIMARY KEY, customer_email text);
         CREATE UNIQUE INDEX customers_email ON customers (email);
         CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN NEW.email := lower(NEW.email); RETURN NEW; END $$;
         CREATE TRIGGER touch BEFORE INSERT ON customers FOR EACH ROW EXECUTE FUNCTION touch();",
    )
    .await
    .unwrap();
    let before = catalog_snapshot(&c).await;
    let out = db.tandem(&[
        "start",
        file("02_score_bigint", SCORE_BIGINT).to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    for expected in [
        "materialized view top_totals depends on column score of view top_customers",
        "default value for column double_score of table customers depends on column score",
        "hint:",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
    // A trigger whose function names a column that disappears would fail every write after
    // complete: pg_depend does not see it, tandem reads the function's body.
    let drop_email = file(
        "02_drop_email",
        r#"{"operations": [{"drop_column": {"table": "customers", "column": "email"}}]}"#,
    );
    let out = db.tandem(&["start", drop_email.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("trigger touch on table customers depends on column email"),
        "{}",
        stderr(&out)
    );
    assert_eq!(before, catalog_snapshot(&c).await);
    let status: serde_json::Value =
        serde_json::from_str(&db.tandem_ok(&["status", "--json"])).unwrap();
    assert!(status["in_flight"].is_null(), "{status}");
}

#[tokio::test]
async fn a_view_created_after_start_blocks_complete_before_it_changes_anything() {
    let (db, c) = app().await;
    let f = file(
        "02_drop_email",
        r#"{"operations": [{"drop_column": {"table": "customers", "column": "email"}}]}"#,
    );
    db.tandem_ok(&["start", f.to_str().unwrap()]);
    c.batch_execute("CREATE VIEW mailing AS SELECT email FROM customers")
        .await
        .unwrap();
    let out = db.tandem(&["complete"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("view mailing depends on column email of table customers")
            && err.contains("nothing was changed"),
        "{err}"
    );
    // Both versions still work, and rollback is still possible.
    let new = db.client_on("public_02_drop_email").await;
    new.execute("INSERT INTO customers (id, name) VALUES (9, 'ida')", &[])
        .await
        .unwrap();
    c.execute(
        "INSERT INTO customers (id, name, email) VALUES (10, 'jo', 'jo@x')",
        &[],
    )
    .await
    .unwrap();
    db.tandem_ok(&["rollback"]);
    assert_eq!(
        texts(&c, "SELECT email FROM mailing ORDER BY 1").await,
        ["ann@x", "cy@x", "jo@x", "NULL", "NULL"]
    );
}

const EVENTS: &str = r#"
CREATE TABLE events (
    id int NOT NULL,
    at date NOT NULL,
    amount int NOT NULL,
    note text,
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
INSERT INTO events VALUES (1, '2024-03-01', 10, NULL), (2, '2024-06-01', 200, 'big'),
                          (3, '2025-02-01', 30, 'x');
CREATE VIEW big_2024 AS SELECT id, amount, note FROM events_2024 WHERE amount > 100;
"#;

const EVENTS_MIGRATION: &str = r#"{"operations": [
  {"alter_column": {"table": "events", "column": "amount", "type": "bigint",
                    "up": "amount * 10", "down": "(amount / 10)::int"}},
  {"alter_column": {"table": "events", "column": "note", "nullable": false,
                    "up": "coalesce(note, 'none')", "down": "note"}}
]}"#;

#[tokio::test]
async fn partition_views_follow_the_parent_in_both_versions_through_complete() {
    let db = TestDb::new().await;
    let old = db.client().await;
    old.batch_execute(EVENTS).await.unwrap();
    db.tandem_ok(&["init"]);
    let f = file("02_events", EVENTS_MIGRATION);
    start_roll_back_start(&db, &f).await;
    let new = db.client_on("public_02_events").await;

    // The parent's and each partition's view agree on every row.
    let rows = |table: &str| {
        format!("SELECT format('%s %s %s', id, amount, note) FROM {table} ORDER BY id")
    };
    assert_eq!(
        texts(&new, &rows("events")).await,
        ["1 100 none", "2 2000 big", "3 300 x"]
    );
    assert_eq!(
        texts(&new, &rows("events_2024")).await,
        ["1 100 none", "2 2000 big"]
    );

    // Writes through a partition's view, in each version, reach both shapes.
    new.execute(
        "INSERT INTO events_2025 VALUES (4, '2025-05-01', 4000, 'new')",
        &[],
    )
    .await
    .unwrap();
    new.execute("UPDATE events_2024 SET amount = 9990 WHERE id = 1", &[])
        .await
        .unwrap();
    old.execute(
        "INSERT INTO events_2024 VALUES (5, '2024-09-01', 50, NULL)",
        &[],
    )
    .await
    .unwrap();
    old.execute("UPDATE events_2025 SET note = 'y' WHERE id = 3", &[])
        .await
        .unwrap();
    assert_eq!(
        texts(&old, &rows("events")).await,
        // format() prints NULL as an empty string; the new version's write of row 1 gave
        // it a note through `down`
        ["1 999 none", "2 200 big", "3 30 y", "4 400 new", "5 50 "]
    );
    let expected_new = [
        "1 9990 none",
        "2 2000 big",
        "3 300 y",
        "4 4000 new",
        "5 500 none",
    ];
    assert_eq!(texts(&new, &rows("events")).await, expected_new);
    assert_eq!(
        texts(&new, &rows("events_2024")).await,
        ["1 9990 none", "2 2000 big", "5 500 none"]
    );

    db.tandem_ok(&["complete"]);
    let after = db.client().await;
    assert_eq!(texts(&after, &rows("events")).await, expected_new);
    assert_eq!(
        texts(
            &after,
            "SELECT format('%s %s %s', c.relname, format_type(a.atttypid, a.atttypmod), a.attnotnull)
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              WHERE c.relname LIKE 'events%' AND c.relkind IN ('r', 'p')
                AND a.attname IN ('amount', 'note')
              ORDER BY 1"
        )
        .await,
        [
            "events bigint t",
            "events text t",
            "events_2024 bigint t",
            "events_2024 text t",
            "events_2025 bigint t",
            "events_2025 text t",
        ]
    );
    // The app's view over a partition was rebuilt over the new column.
    assert_eq!(
        texts(
            &after,
            "SELECT format('%s %s %s', id, amount, note) FROM big_2024 ORDER BY id"
        )
        .await,
        ["1 9990 none", "2 2000 big", "5 500 none"]
    );
}

#[tokio::test]
async fn a_materialized_view_is_rebuilt_beside_the_old_one_and_swapped_in_at_complete() {
    let (db, c) = app().await;
    c.batch_execute(
        "CREATE MATERIALIZED VIEW score_board AS SELECT id, name, score FROM customers WHERE score > 0;
         CREATE UNIQUE INDEX score_board_id ON score_board (id);
         COMMENT ON MATERIALIZED VIEW score_board IS 'refreshed nightly';
         GRANT SELECT ON score_board TO PUBLIC;
         CREATE MATERIALIZED VIEW score_later AS SELECT sum(score) AS total FROM customers WITH NO DATA;",
    )
    .await
    .unwrap();
    let f = file("02_score_bigint", SCORE_BIGINT);
    let plan = db.tandem_ok(&["plan", f.to_str().unwrap()]);
    assert!(
        plan.contains(
            "materialized view score_board (uses column score of table customers): rebuilt"
        ),
        "{plan}"
    );
    start_roll_back_start(&db, &f).await;
    let board = "SELECT format('%s %s %s', id, name, score) FROM score_board ORDER BY id";
    // Until complete, the old one serves its data as it was.
    assert_eq!(texts(&c, board).await, ["1 ann 5", "2 ben 50", "3 cy 20"]);
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(&c, board).await,
        ["1 ann 50", "2 ben 500", "3 cy 200"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s %s %s %s', format_type(a.atttypid, a.atttypmod),
                    obj_description(m.oid, 'pg_class'), has_table_privilege('public', m.oid, 'SELECT'),
                    (SELECT string_agg(ic.relname, ',') FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                      WHERE i.indrelid = m.oid),
                    m.relispopulated)
               FROM pg_class m JOIN pg_attribute a ON a.attrelid = m.oid AND a.attname = 'score'
              WHERE m.oid = 'public.score_board'::regclass"
        )
        .await,
        ["bigint refreshed nightly t score_board_id t"]
    );
    // One that was never filled stays unfilled; REFRESH works on the new column.
    c.batch_execute("REFRESH MATERIALIZED VIEW score_later")
        .await
        .unwrap();
    assert_eq!(
        texts(&c, "SELECT total::text FROM score_later").await,
        ["750"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT relname::text FROM pg_class WHERE relname LIKE '\\_tandem%'"
        )
        .await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_serial_column_keeps_its_sequence_through_a_type_change_and_a_unique_constraint() {
    let (db, c) = with_schema(
        "CREATE TABLE tickets (id int PRIMARY KEY, number serial, title text);
         INSERT INTO tickets (id, title) VALUES (1, 'a'), (2, 'b');",
    )
    .await;
    let f = file(
        "02_number",
        r#"{"operations": [
          {"alter_column": {"table": "tickets", "column": "number", "type": "bigint",
                            "up": "number", "down": "number::int"}}]}"#,
    );
    start_roll_back_start(&db, &f).await;
    let new = db.client_on("public_02_number").await;
    c.execute("INSERT INTO tickets (id, title) VALUES (3, 'old')", &[])
        .await
        .unwrap();
    new.execute("INSERT INTO tickets (id, title) VALUES (4, 'new')", &[])
        .await
        .unwrap();
    db.tandem_ok(&["complete"]);
    c.execute("INSERT INTO tickets (id, title) VALUES (5, 'after')", &[])
        .await
        .unwrap();
    // Every row got a number from the one sequence, in order (a serial may leave gaps: both
    // the column and its shadow have the default while both versions run).
    let in_order = "SELECT format('%s %s', count(*), bool_and(number > previous))
                      FROM (SELECT number, lag(number, 1, 0::bigint) OVER (ORDER BY id) AS previous
                              FROM tickets) t";
    assert_eq!(texts(&c, in_order).await, ["5 t"]);
    assert_eq!(
        texts(
            &c,
            "SELECT (number = currval('tickets_number_seq'))::text FROM tickets WHERE id = 5"
        )
        .await,
        ["true"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s', pg_get_serial_sequence('tickets', 'number'),
                    format_type(atttypid, atttypmod))
               FROM pg_attribute WHERE attrelid = 'tickets'::regclass AND attname = 'number'"
        )
        .await,
        ["public.tickets_number_seq bigint"]
    );

    // A unique constraint on it goes through a shadow too: the sequence follows again.
    let unique = file(
        "03_number_unique",
        r#"{"operations": [{"create_constraint": {"table": "tickets", "name": "tickets_number_key",
            "type": "unique", "columns": ["number"],
            "up": {"number": "number"}, "down": {"number": "number"}}}]}"#,
    );
    start_roll_back_start(&db, &unique).await;
    db.tandem_ok(&["complete"]);
    c.execute("INSERT INTO tickets (id, title) VALUES (6, 'unique')", &[])
        .await
        .unwrap();
    assert_eq!(
        texts(
            &c,
            "SELECT (number = currval('tickets_number_seq'))::text FROM tickets WHERE id = 6"
        )
        .await,
        ["true"]
    );
    assert_eq!(texts(&c, in_order).await, ["6 t"]);
    assert_eq!(
        texts(&c, "SELECT pg_get_serial_sequence('tickets', 'number')").await,
        ["public.tickets_number_seq"]
    );

    // And dropping that constraint again goes through a shadow: the sequence follows again.
    let drop = file(
        "04_number_not_unique",
        r#"{"operations": [{"drop_constraint": {"table": "tickets", "name": "tickets_number_key",
            "up": "number", "down": "number"}}]}"#,
    );
    start_roll_back_start(&db, &drop).await;
    db.tandem_ok(&["complete"]);
    c.execute("INSERT INTO tickets (id, title) VALUES (7, 'dropped')", &[])
        .await
        .unwrap();
    assert_eq!(texts(&c, in_order).await, ["7 t"]);
    assert_eq!(
        texts(&c, "SELECT format('%s %s', pg_get_serial_sequence('tickets', 'number'), count(*)) FROM pg_constraint WHERE conname = 'tickets_number_key'").await,
        ["public.tickets_number_seq 0"]
    );
}

/// Each kind of operation on a partitioned table, run the pgroll way: writes through the
/// parent's and a partition's view in both versions, rollback identical, complete.
#[tokio::test]
async fn every_operation_on_a_partitioned_table_reads_and_writes_through_its_partitions() {
    let cases = [
        (
            "add_column",
            r#"{"add_column": {"table": "events", "up": "'from ' || id", "column": {"name": "origin", "type": "text", "nullable": true}}}"#,
            "origin",
        ),
        (
            "rename_column",
            r#"{"rename_column": {"table": "events", "from": "note", "to": "remark"}}"#,
            "remark",
        ),
        (
            "drop_column",
            r#"{"drop_column": {"table": "events", "column": "note"}}"#,
            "amount",
        ),
        (
            "create_index",
            r#"{"create_index": {"table": "events", "name": "events_amount", "columns": ["amount"]}}"#,
            "amount",
        ),
        (
            "create_constraint",
            r#"{"create_constraint": {"table": "events", "name": "amount_positive", "type": "check", "columns": ["amount"], "check": "amount > 0", "up": {"amount": "greatest(amount, 1)"}, "down": {"amount": "amount"}}}"#,
            "amount",
        ),
        (
            "drop_index",
            r#"{"drop_index": {"name": "events_amount_idx"}}"#,
            "amount",
        ),
        (
            "alter_column_default",
            r#"{"alter_column": {"table": "events", "column": "amount", "default": "7"}}"#,
            "amount",
        ),
    ];
    for (name, op, column) in cases {
        let db = TestDb::new().await;
        let old = db.client().await;
        old.batch_execute(EVENTS).await.unwrap();
        db.tandem_ok(&["init"]);
        let f = file(
            &format!("02_{name}"),
            &format!(r#"{{"operations": [{op}]}}"#),
        );
        if name == "drop_index" {
            old.batch_execute("CREATE INDEX events_amount_idx ON events (amount)")
                .await
                .unwrap();
        }
        if name == "drop_column" {
            // The app's view over the partition's column is found through the partition.
            let out = db.tandem(&["start", f.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
            assert!(
                stderr(&out).contains("view big_2024 depends on column note of table events_2024")
            );
            old.batch_execute("DROP VIEW big_2024").await.unwrap();
        }
        start_roll_back_start(&db, &f).await;
        let new = db.client_on(&format!("public_02_{name}")).await;
        let column_of =
            |table: &str| format!("SELECT format('%s %s', id, {column}) FROM {table} ORDER BY id");
        old.execute(
            "INSERT INTO events_2024 (id, at, amount) VALUES (10, '2024-10-01', 5)",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: old insert through a partition: {e:?}"));
        new.execute(
            "INSERT INTO events_2025 (id, at, amount) VALUES (11, '2025-10-01', 6)",
            &[],
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: new insert through a partition: {e:?}"));
        new.execute("UPDATE events_2024 SET amount = 77 WHERE id = 1", &[])
            .await
            .unwrap_or_else(|e| panic!("{name}: new update through a partition: {e:?}"));
        let through_parent = texts(&new, &column_of("events")).await;
        let mut through_partitions = [
            texts(&new, &column_of("events_2024")).await,
            texts(&new, &column_of("events_2025")).await,
        ]
        .concat();
        let mut sorted_parent = through_parent.clone();
        sorted_parent.sort();
        through_partitions.sort();
        assert_eq!(sorted_parent, through_partitions, "{name}");
        assert_eq!(through_parent.len(), 5, "{name}: {through_parent:?}");
        assert_eq!(
            texts(&old, "SELECT amount::text FROM events WHERE id = 1").await,
            ["77"],
            "{name}"
        );
        db.tandem_ok(&["complete"]);
        let after = db.client().await;
        assert_eq!(
            texts(&after, &column_of("events")).await,
            through_parent,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_partitioned_table_is_dropped_with_its_partitions_and_restored_by_rollback() {
    let db = TestDb::new().await;
    let old = db.client().await;
    old.batch_execute(EVENTS).await.unwrap();
    old.batch_execute("DROP VIEW big_2024").await.unwrap();
    db.tandem_ok(&["init"]);
    // The old app reads and writes through its own version schema, as tandem's apps do.
    let dir = std::env::temp_dir().join(format!("tandem-drop-events-{}", std::process::id()));
    db.tandem_ok(&["baseline", "01_base", dir.to_str().unwrap()]);
    let old = db.client_on("public_01_base").await;
    let f = file(
        "02_drop_events",
        r#"{"operations": [{"drop_table": {"name": "events"}}]}"#,
    );
    start_roll_back_start(&db, &f).await;
    // The old version still writes through the parent and a partition.
    old.execute(
        "INSERT INTO events_2024 VALUES (7, '2024-07-01', 70, 'x')",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(
        texts(&old, "SELECT count(*)::text FROM events").await,
        ["4"]
    );
    let new = db.client_on("public_02_drop_events").await;
    assert_eq!(
        texts(
            &new,
            "SELECT count(*)::text FROM pg_views WHERE schemaname = 'public_02_drop_events'"
        )
        .await,
        ["0"]
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(
            &old,
            "SELECT count(*)::text FROM pg_class WHERE relname LIKE '%events%'"
        )
        .await,
        ["0"]
    );
}

/// Inheritance children, unlike partitions, get no copy of the parent's triggers: each has a
/// sync trigger of its own, so writes through a child's view reach both shapes.
#[tokio::test]
async fn an_inheritance_child_follows_its_parent_in_both_versions() {
    let (db, c) = with_schema(
        "CREATE TABLE items (id int PRIMARY KEY, qty int NOT NULL, note text);
         CREATE TABLE special_items (extra text) INHERITS (items);
         INSERT INTO items VALUES (1, 1, 'plain');
         INSERT INTO special_items VALUES (2, 2, 'special', 'x');",
    )
    .await;
    let dir = std::env::temp_dir().join(format!("tandem-inherit-{}", std::process::id()));
    db.tandem_ok(&["baseline", "01_base", dir.to_str().unwrap()]);
    let old = db.client_on("public_01_base").await;
    let f = file(
        "02_qty",
        r#"{"operations": [{"alter_column": {"table": "items", "column": "qty", "type": "bigint",
            "up": "qty * 10", "down": "(qty / 10)::int"}}]}"#,
    );
    start_roll_back_start(&db, &f).await;
    let new = db.client_on("public_02_qty").await;
    old.execute(
        "INSERT INTO special_items (id, qty, note, extra) VALUES (3, 3, 'old', 'y')",
        &[],
    )
    .await
    .unwrap();
    new.execute(
        "INSERT INTO special_items (id, qty, note, extra) VALUES (4, 40, 'new', 'z')",
        &[],
    )
    .await
    .unwrap();
    new.execute("UPDATE special_items SET qty = 90 WHERE id = 2", &[])
        .await
        .unwrap();
    let rows = |t: &str| format!("SELECT format('%s %s', id, qty) FROM {t} ORDER BY id");
    assert_eq!(
        texts(&new, &rows("items")).await,
        ["1 10", "2 90", "3 30", "4 40"]
    );
    assert_eq!(
        texts(&new, &rows("special_items")).await,
        ["2 90", "3 30", "4 40"]
    );
    assert_eq!(
        texts(&old, &rows("special_items")).await,
        ["2 9", "3 3", "4 4"]
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(&c, &rows("special_items")).await,
        ["2 90", "3 30", "4 40"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s', attrelid::regclass, format_type(atttypid, atttypmod))
               FROM pg_attribute WHERE attname = 'qty' AND attrelid IN ('items'::regclass, 'special_items'::regclass)
              ORDER BY 1"
        )
        .await,
        ["items bigint", "special_items bigint"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT count(*)::text FROM pg_trigger WHERE tgname LIKE '\\_tandem%'"
        )
        .await,
        ["0"]
    );
}

/// add_column of a serial column needs no `up` (pgroll's behaviour): the sequence numbers the
/// existing rows through the backfill and new rows of both versions through the default,
/// without the table rewrite that `ADD COLUMN … serial` would take under its lock.
#[tokio::test]
async fn a_serial_column_is_added_without_up_and_without_a_rewrite() {
    let (db, c) = with_schema("CREATE TABLE tickets (id int PRIMARY KEY, title text); INSERT INTO tickets VALUES (1, 'a'), (2, 'b')").await;
    let f = file(
        "02_number",
        r#"{"operations": [{"add_column": {"table": "tickets", "column": {"name": "number", "type": "bigserial"}}}]}"#,
    );
    let plan = db.tandem_ok(&["plan", f.to_str().unwrap()]);
    assert!(!plan.contains("TABLE_REWRITE"), "{plan}");
    start_roll_back_start(&db, &f).await;
    let new = db.client_on("public_02_number").await;
    c.execute("INSERT INTO tickets (id, title) VALUES (3, 'old')", &[])
        .await
        .unwrap();
    new.execute("INSERT INTO tickets (id, title) VALUES (4, 'new')", &[])
        .await
        .unwrap();
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s', id, number) FROM tickets ORDER BY id"
        )
        .await,
        ["1 1", "2 2", "3 3", "4 4"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s %s', pg_get_serial_sequence('tickets', 'number'), format_type(atttypid, atttypmod), attnotnull)
               FROM pg_attribute WHERE attrelid = 'tickets'::regclass AND attname = 'number'"
        )
        .await,
        ["public.tickets_number_seq bigint t"]
    );
}

/// A volatile default (`gen_random_uuid()`) on add_column: computed for each existing row by
/// the backfill, not by the table rewrite `ADD COLUMN … DEFAULT gen_random_uuid()` would take
/// under ACCESS EXCLUSIVE; an `up` that is not the default is refused, as in pgroll.
#[tokio::test]
async fn a_volatile_default_is_backfilled_row_by_row_without_a_rewrite() {
    let (db, c) = with_schema("CREATE TABLE sessions (id int PRIMARY KEY); INSERT INTO sessions SELECT generate_series(1, 100)").await;
    let bad = file(
        "02_token",
        r#"{"operations": [{"add_column": {"table": "sessions", "up": "'x'", "column": {"name": "token", "type": "text", "default": "gen_random_uuid()::text"}}}]}"#,
    );
    let out = db.tandem(&["validate", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/operations/0/add_column/up"),
        "{}",
        stderr(&out)
    );
    let f = file(
        "02_token",
        r#"{"operations": [{"add_column": {"table": "sessions", "column": {"name": "token", "type": "uuid", "default": "gen_random_uuid()"}}}]}"#,
    );
    let plan = db.tandem_ok(&["plan", f.to_str().unwrap()]);
    assert!(!plan.contains("TABLE_REWRITE"), "{plan}");
    start_roll_back_start(&db, &f).await;
    let new = db.client_on("public_02_token").await;
    c.execute("INSERT INTO sessions (id) VALUES (101)", &[])
        .await
        .unwrap();
    new.execute("INSERT INTO sessions (id) VALUES (102)", &[])
        .await
        .unwrap();
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(&c, "SELECT format('%s %s', count(DISTINCT token), count(*) FILTER (WHERE token IS NULL)) FROM sessions").await,
        ["102 0"]
    );
    assert_eq!(
        texts(&c, "SELECT format('%s %s', attnotnull, pg_get_expr(adbin, adrelid)) FROM pg_attribute JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum WHERE attrelid = 'sessions'::regclass AND attname = 'token'").await,
        ["t gen_random_uuid()"]
    );
}

/// A trigger of the table bound to a swapped column (`UPDATE OF`, or its WHEN) is made again
/// from its own definition inside the contract: it fires on the new column, keeps its
/// enabled state and comment.
#[tokio::test]
async fn a_trigger_on_a_swapped_column_is_made_again_over_the_new_column() {
    let (db, c) = app().await;
    c.batch_execute(
        "CREATE TABLE score_log (id int, old_score bigint, new_score bigint);
         CREATE FUNCTION log_score() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN INSERT INTO score_log VALUES (NEW.id, OLD.score, NEW.score); RETURN NEW; END $$;
         CREATE TRIGGER score_changed AFTER UPDATE OF score ON customers
           FOR EACH ROW WHEN (NEW.score > OLD.score) EXECUTE FUNCTION log_score();
         ALTER TABLE customers ENABLE ALWAYS TRIGGER score_changed;
         COMMENT ON TRIGGER score_changed ON customers IS 'audit';",
    )
    .await
    .unwrap();
    let f = file("02_score_bigint", SCORE_BIGINT);
    let plan = db.tandem_ok(&["plan", f.to_str().unwrap()]);
    assert!(
        plan.contains("trigger score_changed on table customers (uses column score of table customers): rebuilt"),
        "{plan}"
    );
    start_roll_back_start(&db, &f).await;
    db.tandem_ok(&["complete"]);
    c.batch_execute("UPDATE customers SET score = 5000000000 WHERE id = 1; UPDATE customers SET name = 'x' WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s %s', id, old_score, new_score) FROM score_log"
        )
        .await,
        ["1 50 5000000000"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT format('%s %s %s', tgenabled, obj_description(oid, 'pg_trigger'), pg_get_triggerdef(oid))
               FROM pg_trigger WHERE tgname = 'score_changed'"
        )
        .await,
        ["A audit CREATE TRIGGER score_changed AFTER UPDATE OF score ON public.customers FOR EACH ROW WHEN ((new.score > old.score)) EXECUTE FUNCTION log_score()"]
    );
}
