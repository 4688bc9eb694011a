//! Test support: a throwaway PostgreSQL for this test process (or `TANDEM_TEST_PG_URL`), a
//! fresh database per test, the `tandem` binary, and a catalog snapshot for "identical" checks.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tandem_pg::cluster::LocalCluster;
use tokio_postgres::{Client, NoTls};

static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();
static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// Where the tests' databases live: `TANDEM_TEST_PG_URL`, or this process's throwaway cluster.
enum Server {
    External(String),
    Local(&'static LocalCluster),
}

impl Server {
    fn get() -> Server {
        match std::env::var("TANDEM_TEST_PG_URL") {
            Ok(url) => Server::External(url),
            Err(_) => Server::Local(
                CLUSTER
                    .get_or_init(|| LocalCluster::start().expect("start a throwaway PostgreSQL")),
            ),
        }
    }

    fn url(&self, db: &str) -> String {
        match self {
            Server::External(base) => format!("{base} dbname={db}"),
            Server::Local(cluster) => cluster.url(db),
        }
    }
}

pub struct TestDb {
    pub url: String,
}

impl TestDb {
    /// A fresh, empty database of its own, so tests run in parallel.
    pub async fn new() -> TestDb {
        let server = Server::get();
        let name = format!(
            "t_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let client = connect(&server.url("postgres")).await;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create test database");
        TestDb {
            url: server.url(&name),
        }
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    /// A client whose writes go through `version_schema` (search_path first, then public).
    pub async fn client_on(&self, version_schema: &str) -> Client {
        let c = self.client().await;
        c.batch_execute(&format!(
            "SET search_path = \"{}\", public",
            version_schema.replace('"', "\"\"")
        ))
        .await
        .expect("set search_path");
        c
    }

    /// Runs the tandem binary against this database.
    pub fn tandem(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(args)
            .env("TANDEM_PG_URL", &self.url)
            .env_remove("DATABASE_URL")
            .output()
            .expect("run tandem")
    }

    /// Runs tandem and fails the test, showing its output, unless it exits 0.
    pub fn tandem_ok(&self, args: &[&str]) -> String {
        let out = self.tandem(args);
        assert!(
            out.status.success(),
            "tandem {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A migration file in a temp dir, named `name`.
pub fn migration_file(name: &str, json: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tandem-test-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, json).expect("write migration");
    path
}

/// A folder of migration files: (file name, JSON).
pub fn migrations_dir(files: &[(&str, &str)]) -> std::path::PathBuf {
    let first = migration_file(files[0].0, files[0].1);
    let dir = first.parent().expect("a temp dir").to_path_buf();
    for (name, json) in &files[1..] {
        std::fs::write(dir.join(name), json).expect("write migration");
    }
    dir
}

/// Everything a user could see in the catalog outside tandem's state schema: schemas,
/// relations, columns, constraints, indexes, triggers, functions, views and comments.
pub async fn catalog_snapshot(client: &Client) -> String {
    let sql = r#"
WITH ns AS (
  SELECT oid, nspname FROM pg_namespace
  WHERE nspname NOT LIKE 'pg\_%' AND nspname <> 'information_schema' AND nspname <> 'tandem'
)
SELECT line FROM (
  SELECT 'schema ' || nspname AS line FROM ns
  UNION ALL
  SELECT format('rel %s.%s kind=%s comment=%s', ns.nspname, c.relname, c.relkind, obj_description(c.oid, 'pg_class'))
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
  UNION ALL
  SELECT format('col %s.%s.%s %s notnull=%s default=%s identity=%s generated=%s comment=%s', ns.nspname, c.relname, a.attname,
         format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated,
         col_description(c.oid, a.attnum))
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN ns ON ns.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
  WHERE a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT format('con %s.%s.%s %s valid=%s', ns.nspname, c.relname, k.conname, pg_get_constraintdef(k.oid), k.convalidated)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN ns ON ns.oid = c.relnamespace
  UNION ALL
  SELECT format('idx %s valid=%s', pg_get_indexdef(i.indexrelid), i.indisvalid)
  FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN ns ON ns.oid = c.relnamespace
  UNION ALL
  SELECT format('trg %s.%s %s', ns.nspname, c.relname, pg_get_triggerdef(t.oid))
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN ns ON ns.oid = c.relnamespace WHERE NOT t.tgisinternal
  UNION ALL
  SELECT format('fn %s.%s %s', ns.nspname, p.proname, md5(p.prosrc))
  FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
  UNION ALL
  SELECT format('view %s.%s %s', ns.nspname, c.relname, pg_get_viewdef(c.oid))
  FROM pg_class c JOIN ns ON ns.oid = c.relnamespace WHERE c.relkind = 'v'
  UNION ALL
  SELECT format('type %s.%s', ns.nspname, t.typname)
  FROM pg_type t JOIN ns ON ns.oid = t.typnamespace WHERE t.typtype = 'e'
) lines ORDER BY line"#;
    let rows = client.query(sql, &[]).await.expect("catalog snapshot");
    rows.iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first column of every row as text (`NULL` for NULL).
pub async fn texts(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| {
            r.get::<_, Option<String>>(0)
                .unwrap_or_else(|| "NULL".into())
        })
        .collect()
}

/// Starts migration `name` from `json`, rolls it back (the catalog must be identical), starts
/// it again, and returns a client on its version schema.
pub async fn start_twice(db: &TestDb, name: &str, json: &str) -> Client {
    let file = migration_file(&format!("{name}.json"), json);
    start_roll_back_start(db, &file).await;
    db.client_on(&format!("public_{name}")).await
}

/// Starts the migration file, rolls it back (the catalog must be identical), starts it again.
pub async fn start_roll_back_start(db: &TestDb, file: &std::path::Path) {
    let path = file.to_str().expect("a UTF-8 path");
    let admin = db.client().await;
    let before = catalog_snapshot(&admin).await;
    db.tandem_ok(&["start", path]);
    db.tandem_ok(&["rollback"]);
    assert_eq!(
        before,
        catalog_snapshot(&admin).await,
        "rollback of {path} must leave the catalog identical"
    );
    db.tandem_ok(&["start", path]);
}

/// After a tandem process is killed, the server frees its advisory lock only once it notices
/// the connection is gone (its current statement ends first).
pub async fn tandem_sessions_gone(c: &Client) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tandem'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the killed session lingers"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Adopts `db` with `tandem baseline NAME` (running `init` first) and checks that the baseline
/// file rebuilds its schema exactly: `diff --migrations` says identical (exit 0), and a fresh
/// database migrated with the file compares identical with `db` (`diff --from/--to`). Returns
/// the folder holding the baseline file and the fresh database, for more checks.
pub async fn baseline_round_trip(db: &TestDb, name: &str) -> (std::path::PathBuf, TestDb) {
    let dir = std::env::temp_dir().join(format!(
        "tandem-baseline-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let dir_s = dir.to_str().expect("a UTF-8 path").to_string();
    db.tandem_ok(&["init"]);
    db.tandem_ok(&["baseline", name, &dir_s]);
    let out = db.tandem(&["diff", "--migrations", &dir_s, "--scratch-url", &db.url]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "diff right after the baseline must find nothing\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("no differences: "));
    let fresh = TestDb::new().await;
    fresh.tandem_ok(&["init"]);
    fresh.tandem_ok(&["migrate", &dir_s, "--complete"]);
    let out = db.tandem(&["diff", "--from", &db.url, "--to", &fresh.url]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a database migrated with the baseline must be identical\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, fresh)
}
