//! `tandem baseline`: a database created before tandem becomes the starting point, and the
//! baseline file recreates its schema on an empty database; `tandem pull`: the applied
//! history written back out as files that rebuild the same schema.

use std::process::Output;

use crate::support::{migrations_dir, texts, TestDb};

const LEGACY_SCHEMA: &str = r#"
CREATE TABLE customers (
  id serial PRIMARY KEY,
  email text NOT NULL UNIQUE,
  "Display Name" varchar(80) DEFAULT 'anonymous',
  score integer CHECK (score >= 0),
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE customers IS 'people who buy';
COMMENT ON COLUMN customers.email IS 'lower-case, it''s unique';
CREATE TABLE orders (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  customer_id integer NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  total numeric(10, 2) NOT NULL,
  doubled numeric GENERATED ALWAYS AS (total * 2) STORED
);
CREATE INDEX orders_customer_idx ON orders (customer_id) WHERE total > 0;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 100;
INSERT INTO customers (email, score) VALUES ('a@example.com', 1), ('b@example.com', 2);
INSERT INTO orders (customer_id, total) VALUES (1, 10), (2, 200);
"#;

const ADD_PHONE: &str = r#"{"operations": [
  {"add_column": {"table": "customers", "column": {"name": "phone", "type": "text", "nullable": true}}}
]}"#;

/// The files of `dir` with this extension, in name order.
fn files_ending_in(dir: &std::path::Path, extension: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    files.sort();
    files
}

fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn a_baseline_makes_an_existing_database_the_starting_point() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(LEGACY_SCHEMA)
        .await
        .expect("legacy schema");
    db.tandem_ok(&["init"]);
    let dir = migrations_dir(&[("01_add_phone.json", ADD_PHONE)]);
    let dir_s = dir.to_str().unwrap();

    let out = db.tandem(&["baseline", "00_baseline", dir_s]);
    assert_exit(&out, 0);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("pg_dump --schema-only"), "{stdout}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "nothing is left out, so no warning"
    );
    let baseline = std::fs::read_to_string(dir.join("00_baseline.yaml")).unwrap();
    assert!(
        baseline.contains("CREATE VIEW public.big_orders AS"),
        "{baseline}"
    );
    assert!(dir.join("00_baseline.yaml").is_file());
    assert_eq!(
        db.tandem_ok(&["latest", "schema"]).trim(),
        "public_00_baseline"
    );
    // Apps can use the baseline's version schema at once.
    let app = db.client_on("public_00_baseline").await;
    assert_eq!(
        texts(&app, "SELECT email FROM customers ORDER BY id").await,
        ["a@example.com", "b@example.com"]
    );

    // A second baseline is refused, and changes nothing.
    let out = db.tandem(&["baseline", "00_again", dir_s]);
    assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already has a tandem history"));
    assert!(!dir.join("00_again.yaml").exists());

    // migrate skips the baseline (it is applied) and applies what follows.
    db.tandem_ok(&["migrate", dir_s, "--complete"]);
    let status = db.tandem_ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let names: Vec<&str> = status["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["00_baseline", "01_add_phone"]);

    // The files, baseline first, rebuild exactly this schema (the view too) on an empty
    // database.
    let out = db.tandem(&["diff", "--migrations", dir_s]);
    assert_exit(&out, 0);
}

#[tokio::test]
async fn pull_writes_the_history_as_files_that_rebuild_the_schema() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let examples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations-examples");
    db.tandem_ok(&["migrate", examples.to_str().unwrap(), "--complete"]);
    let pulled = migrations_dir(&[("README", "not a migration")]);
    let pulled_s = pulled.to_str().unwrap();

    let first = db.tandem_ok(&["pull", pulled_s, "--format", "json"]);
    let written = files_ending_in(&pulled, "json").len();
    let applied = files_ending_in(&examples, "yaml").len();
    assert_eq!(written, applied, "{first}");
    assert_eq!(first.matches("wrote").count(), applied);

    // Pulling again changes nothing.
    let again = db.tandem_ok(&["pull", pulled_s]);
    assert_eq!(again.matches("unchanged").count(), applied, "{again}");

    // The pulled files rebuild the database's schema.
    let out = db.tandem(&["diff", "--migrations", pulled_s]);
    assert_exit(&out, 0);

    // A pulled file edited by hand is not silently replaced...
    let first_file = files_ending_in(&pulled, "json").remove(0);
    let original = std::fs::read_to_string(&first_file).unwrap();
    let edited = original.replacen(
        "\"operations\"",
        "\"version_schema\": \"edited\",\n  \"operations\"",
        1,
    );
    std::fs::write(&first_file, &edited).unwrap();
    let out = db.tandem(&["pull", pulled_s]);
    assert_exit(&out, 1);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--force"));
    assert_eq!(std::fs::read_to_string(&first_file).unwrap(), edited);
    // ...unless asked.
    let forced = db.tandem_ok(&["pull", pulled_s, "--force"]);
    assert!(forced.contains("overwrote"), "{forced}");
    assert_eq!(std::fs::read_to_string(&first_file).unwrap(), original);
}

#[tokio::test]
async fn pull_writes_each_migration_in_the_format_it_was_applied_from() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let applied = migrations_dir(&[
        (
            "01_items.json",
            r#"{"operations": [{"create_table": {"name": "items", "columns": [
                {"name": "id", "type": "bigint", "pk": true}]}}]}"#,
        ),
        (
            "02_name.yaml",
            "operations:\n  - add_column:\n      table: items\n      column:\n        name: name\n        type: text\n        nullable: true\n",
        ),
    ]);
    db.tandem_ok(&["migrate", applied.to_str().unwrap(), "--complete"]);
    // `start` records the format too.
    let third = crate::support::migration_file(
        "03_price.json",
        r#"{"operations": [{"add_column": {"table": "items",
            "column": {"name": "price", "type": "integer", "nullable": true}}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", third.to_str().unwrap()]);

    let pulled = migrations_dir(&[("README", "not a migration")]);
    let out = db.tandem_ok(&["pull", pulled.to_str().unwrap()]);
    let names = |ext: &str| -> Vec<String> {
        files_ending_in(&pulled, ext)
            .iter()
            .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names("json"), ["01_items.json", "03_price.json"], "{out}");
    assert_eq!(names("yaml"), ["02_name.yaml"], "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pulled.join("01_items.json")).unwrap())
            .expect("the JSON-applied migration is pulled as JSON");
    assert!(json["operations"][0]["create_table"].is_object(), "{json}");
    // The pulled files rebuild the schema.
    assert_exit(
        &db.tandem(&["diff", "--migrations", pulled.to_str().unwrap()]),
        0,
    );

    // --format forces one format on every new file.
    let forced = migrations_dir(&[("README", "not a migration")]);
    db.tandem_ok(&["pull", forced.to_str().unwrap(), "--format", "yaml"]);
    assert_eq!(files_ending_in(&forced, "yaml").len(), 3);
    assert!(files_ending_in(&forced, "json").is_empty());
}
