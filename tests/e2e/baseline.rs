//! `tandem baseline` on the schema of a real application (domains, enums, a composite type,
//! functions, an aggregate, views, a materialized view, triggers, generated and identity
//! columns, owned sequences, a partitioned table, foreign keys, comments): the baseline file
//! rebuilds it exactly, and `tandem diff` sees a change by hand to any of these objects.

use std::process::{Command, Output};

use crate::support::{baseline_round_trip, texts, TestDb};

pub const APP_SCHEMA: &str = r#"
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE DOMAIN year AS integer CHECK (VALUE >= 1900 AND VALUE <= 2200);
CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE address AS (street text, city text, zip varchar(10));
CREATE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- keep the row's stamp fresh; a ; and a 'quote' in a comment
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION touch_updated_at() IS 'BEFORE UPDATE: stamps the row';
CREATE FUNCTION add_ints(integer, integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT $1 + $2';
CREATE AGGREGATE int_total(integer) (SFUNC = add_ints, STYPE = integer, INITCOND = '0');
CREATE SEQUENCE invoice_no_seq START 1000;
CREATE TABLE customers (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email email UNIQUE,
  mood mood NOT NULL DEFAULT 'ok',
  home address,
  born year,
  name text NOT NULL,
  name_lower text GENERATED ALWAYS AS (lower(name)) STORED,
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE customers IS 'people who buy';
COMMENT ON COLUMN customers.email IS 'it''s unique';
CREATE TABLE invoices (
  no integer NOT NULL DEFAULT nextval('invoice_no_seq') PRIMARY KEY,
  customer_id bigint NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
  amount numeric(10,2) NOT NULL CHECK (amount >= 0)
);
ALTER SEQUENCE invoice_no_seq OWNED BY invoices.no;
CREATE TABLE events (
  id serial,
  customer_id bigint REFERENCES customers (id),
  at timestamptz NOT NULL,
  payload text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE events_2024_01 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE events_2024_02 PARTITION OF events FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
CREATE TABLE events_2024_03 PARTITION OF events FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
CREATE INDEX events_customer_idx ON events (customer_id);
CREATE INDEX customers_name_trgm ON customers USING gin (name gin_trgm_ops);
CREATE TRIGGER last_updated BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE TRIGGER last_updated BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
CREATE VIEW happy_customers AS SELECT id, name FROM customers WHERE mood = 'happy';
COMMENT ON VIEW happy_customers IS 'the happy ones';
CREATE MATERIALIZED VIEW invoice_totals AS
  SELECT customer_id, int_total(amount::integer) AS total FROM invoices GROUP BY customer_id;
CREATE UNIQUE INDEX invoice_totals_customer ON invoice_totals (customer_id);
INSERT INTO customers (email, name, mood) VALUES ('a@example.com', 'Ann', 'happy');
INSERT INTO invoices (customer_id, amount) VALUES (1, 10);
INSERT INTO events (customer_id, at) VALUES (1, '2024-02-10');
"#;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_baseline_rebuilds_the_whole_schema_and_diff_sees_each_kind_of_change() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute(APP_SCHEMA)
        .await
        .expect("app schema");
    let (dir, fresh) = baseline_round_trip(&db, "00_baseline").await;

    // The file is what pg_dump wrote, trimmed: no settings, no headers, the partitioned table
    // with its partitions, the sequence once and owned by its column, the trigger on its table.
    let sql = std::fs::read_to_string(dir.join("00_baseline.yaml")).unwrap();
    for expected in [
        "CREATE EXTENSION IF NOT EXISTS \"pg_trgm\" WITH SCHEMA \"public\" CASCADE;",
        "CREATE DOMAIN public.year AS integer",
        "CREATE TYPE public.mood AS ENUM (",
        "CREATE AGGREGATE public.int_total(integer) (",
        "PARTITION BY RANGE (at);",
        "ALTER TABLE ONLY public.events ATTACH PARTITION public.events_2024_03 FOR VALUES FROM",
        "ALTER SEQUENCE public.invoice_no_seq OWNED BY public.invoices.no;",
        "CREATE TRIGGER last_updated BEFORE UPDATE ON public.events FOR EACH ROW",
        "  -- keep the row's stamp fresh; a ; and a 'quote' in a comment",
    ] {
        assert!(sql.contains(expected), "{expected:?} missing from:\n{sql}");
    }
    for absent in [
        "SET lock_timeout",
        "set_config",
        "-- Name:",
        "\\restrict",
        "OWNER TO",
    ] {
        assert!(!sql.contains(absent), "{absent:?} in:\n{sql}");
    }
    assert_eq!(
        sql.matches("CREATE SEQUENCE public.events_id_seq").count(),
        1
    );
    assert_eq!(sql.matches("CREATE TRIGGER last_updated").count(), 2);
    assert!(!sql.contains("public_00_baseline"), "no version schema");

    // The fresh database works as the live one does: the trigger fires, the generated column
    // computes, rows route to their partition, the aggregate and the views answer.
    let c = fresh.client().await;
    c.batch_execute(
        "INSERT INTO customers (email, name, mood) VALUES ('b@example.com', 'Bo', 'happy');
         INSERT INTO invoices (customer_id, amount) VALUES (1, 5), (1, 7);
         INSERT INTO events (customer_id, at) VALUES (1, '2024-03-05');
         UPDATE customers SET updated_at = '2000-01-01' WHERE id = 1;
         REFRESH MATERIALIZED VIEW invoice_totals;",
    )
    .await
    .expect("the rebuilt schema takes writes");
    assert_eq!(
        texts(
            &c,
            "SELECT name_lower || ' ' || (updated_at > '2001-01-01')::text FROM customers"
        )
        .await,
        ["bo true"]
    );
    assert_eq!(
        texts(
            &c,
            "SELECT tableoid::regclass::text || ' ' || id FROM events"
        )
        .await,
        ["events_2024_03 1"]
    );
    assert_eq!(
        texts(&c, "SELECT no::text FROM invoices ORDER BY no").await,
        ["1000", "1001"]
    );
    assert_eq!(
        texts(&c, "SELECT total::text FROM invoice_totals").await,
        ["12"]
    );
    assert_eq!(texts(&c, "SELECT name FROM happy_customers").await, ["Bo"]);

    // One change by hand of each kind on the fresh database: diff names each, exit 1.
    c.batch_execute(
        r#"CREATE OR REPLACE VIEW happy_customers AS
             SELECT id, name FROM customers WHERE mood IN ('happy', 'ok');
           CREATE OR REPLACE FUNCTION touch_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             -- keep the row's stamp fresh; a ; and a 'quote' in a comment
             NEW.updated_at := clock_timestamp();
             RETURN NEW;
           END
           $$;
           DROP TRIGGER last_updated ON customers;
           CREATE TRIGGER last_updated BEFORE UPDATE OF name ON customers
             FOR EACH ROW EXECUTE FUNCTION touch_updated_at();
           ALTER TYPE mood ADD VALUE 'ecstatic';
           CREATE TABLE events_2024_04 PARTITION OF events FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
           ALTER SEQUENCE invoice_no_seq INCREMENT BY 10;"#,
    )
    .await
    .unwrap();
    let out = db.tandem(&["diff", "--from", &db.url, "--to", &fresh.url]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let lines = stdout(&out);
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(
        lines,
        [
            r#"table "events_2024_04": only in to"#,
            r#"type "mood": definition differs: ENUM ('sad', 'ok', 'happy') (from) vs ENUM ('sad', 'ok', 'happy', 'ecstatic') (to)"#,
            r#"function "touch_updated_at()": definition (line 7) differs: NEW.updated_at := now(); (from) vs NEW.updated_at := clock_timestamp(); (to)"#,
            r#"sequence "invoice_no_seq": definition differs: AS bigint START 1000 INCREMENT 1 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1 OWNED BY invoices.no (from) vs AS bigint START 1000 INCREMENT 10 MINVALUE 1 MAXVALUE 9223372036854775807 CACHE 1 OWNED BY invoices.no (to)"#,
            r#"partition "events_2024_04" of "events": only in to (FOR VALUES FROM ('2024-04-01 00:00:00+00') TO ('2024-05-01 00:00:00+00'))"#,
            r#"view "happy_customers": definition (line 4) differs: WHERE customers.mood = 'happy'::mood; (from) vs WHERE customers.mood = ANY (ARRAY['happy'::mood, 'ok'::mood]); (to)"#,
            r#"trigger "last_updated" on "customers": definition differs: CREATE TRIGGER last_updated BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION touch_updated_at() (from) vs CREATE TRIGGER last_updated BEFORE UPDATE OF name ON customers FOR EACH ROW EXECUTE FUNCTION touch_updated_at() (to)"#,
        ]
    );
    let out = db.tandem(&["diff", "--from", &db.url, "--to", &fresh.url, "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let kinds: Vec<String> = json["differences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| format!("{} {}", d["kind"], d["object"]))
        .collect();
    assert_eq!(
        kinds,
        [
            r#""table" null"#,
            r#""object_definition" "type""#,
            r#""object_definition" "function""#,
            r#""object_definition" "sequence""#,
            r#""object" "partition""#,
            r#""object_definition" "view""#,
            r#""object_definition" "trigger""#,
        ]
    );
    assert_eq!(json["differences"][4]["only_in"], "to");

    // The live database against its files: a hand change there shows the same way.
    db.client()
        .await
        .batch_execute("ALTER TABLE events DETACH PARTITION events_2024_01")
        .await
        .unwrap();
    let out = db.tandem(&[
        "diff",
        "--migrations",
        dir.to_str().unwrap(),
        "--scratch-url",
        &db.url,
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert_eq!(
        stdout(&out),
        "partition \"events_2024_01\" of \"events\": only in migrations (FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2024-02-01 00:00:00+00'))\n"
    );
}

#[tokio::test]
async fn a_baseline_without_pg_dump_says_so_and_records_nothing() {
    let db = TestDb::new().await;
    db.client()
        .await
        .batch_execute("CREATE TABLE t (a integer)")
        .await
        .unwrap();
    db.tandem_ok(&["init"]);
    let dir = std::env::temp_dir().join(format!("tandem-no-pg-dump-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["baseline", "00_baseline", dir.to_str().unwrap()])
        .env("TANDEM_PG_URL", &db.url)
        .env("PG_BINDIR", "/nonexistent/tandem-bin")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("pg_dump is missing (looked for /nonexistent/tandem-bin/pg_dump")
            && stderr.contains("set PG_BINDIR"),
        "{stderr}"
    );
    assert!(!dir.join("00_baseline.yaml").exists());
    let status: serde_json::Value =
        serde_json::from_str(&db.tandem_ok(&["status", "--json"])).unwrap();
    assert_eq!(status["history"], serde_json::json!([]));
}
