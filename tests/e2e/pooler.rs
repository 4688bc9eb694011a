//! tandem's own connection: refused at once behind a transaction pooler (a real PgBouncer in
//! transaction mode in front of the test server), and a schema's lock names who holds it.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{connect, migration_file, TestDb};
use tokio_postgres::config::Host;

/// A PgBouncer in transaction mode, listening on a unix socket in a dir of its own, in front
/// of the test database's server; stopped when dropped.
struct Bouncer {
    child: Child,
    dir: PathBuf,
    /// The test database's URL, through the pooler.
    url: String,
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pgbouncer_binary() -> Option<PathBuf> {
    ["/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// None (and the reason on stderr) where PgBouncer is not installed (`scripts/dev setup`
/// installs it) or the test server is not on a unix socket this test can point it at.
fn bouncer(db: &TestDb) -> Option<Bouncer> {
    let Some(binary) = pgbouncer_binary() else {
        eprintln!("SKIPPED: pgbouncer is not installed (`scripts/dev setup` installs it)");
        return None;
    };
    let config: tokio_postgres::Config = db.url.parse().expect("the test URL parses");
    let (Some(Host::Unix(socket_dir)), Some(port), Some(user), Some(dbname)) = (
        config.get_hosts().first(),
        config.get_ports().first(),
        config.get_user(),
        config.get_dbname(),
    ) else {
        eprintln!("SKIPPED: the test server is not a local unix-socket server");
        return None;
    };
    let dir = std::env::temp_dir().join(format!("tandem-pgb-{}-{dbname}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Root runs PgBouncer as the server's account, which must be able to write here.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    const PORT: u16 = 6432;
    std::fs::write(dir.join("userlist.txt"), format!("\"{user}\" \"\"\n")).unwrap();
    let ini = dir.join("pgbouncer.ini");
    std::fs::write(
        &ini,
        format!(
            "[databases]\n* = host={} port={port}\n\n[pgbouncer]\nlisten_addr =\nlisten_port = {PORT}\n\
             unix_socket_dir = {d}\nauth_type = trust\nauth_file = {d}/userlist.txt\n\
             pool_mode = transaction\nlogfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n\
             ignore_startup_parameters = extra_float_digits,options\n",
            socket_dir.display(),
            d = dir.display(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(binary);
    // PgBouncer will not run as root.
    if is_root() {
        cmd.args(["-u", "postgres"]);
    }
    let child = cmd
        .arg(&ini)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pgbouncer");
    let bouncer = Bouncer {
        child,
        url: format!(
            "host={} port={PORT} user={user} dbname={dbname}",
            dir.display()
        ),
        dir,
    };
    let socket = bouncer.dir.join(format!(".s.PGSQL.{PORT}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "pgbouncer did not start: {}",
            std::fs::read_to_string(bouncer.dir.join("pgbouncer.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(bouncer)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn tandem_at(url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("TANDEM_PG_URL", url)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run tandem")
}

#[tokio::test]
async fn behind_a_transaction_pooler_tandem_refuses_at_once_and_direct_works() {
    let db = TestDb::new().await;
    let Some(bouncer) = bouncer(&db) else { return };
    // The pooler works: an ordinary client gets through it.
    let through = connect(&bouncer.url).await;
    let rows = through.simple_query("SELECT 1").await.unwrap();
    assert!(!rows.is_empty());
    drop(through);

    let out = tandem_at(&bouncer.url, &["init"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("transaction pooler"), "{stderr}");
    assert!(stderr.contains("PgBouncer"), "{stderr}");
    assert!(
        stderr.contains("--postgres-url") && stderr.contains("TANDEM_PG_URL"),
        "the fix: {stderr}"
    );
    // Refused before anything: no state schema.
    let c = db.client().await;
    let state: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_namespace WHERE nspname = 'tandem'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(state, 0);
    // Nor did tandem's session settings stay on a pooled server connection.
    let leaked = connect(&bouncer.url).await;
    let rows = leaked
        .simple_query(
            "SELECT current_setting('application_name') || '|' || current_setting('search_path')",
        )
        .await
        .unwrap();
    let value = rows
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap();
    assert!(!value.starts_with("tandem|"), "{value}");

    // Directly, tandem works.
    db.tandem_ok(&["init"]);
    db.tandem_ok(&["status"]);
}

#[tokio::test]
async fn a_held_lock_is_refused_naming_the_session_that_holds_it() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let holder = db.client().await;
    holder
        .batch_execute(
            "SET application_name = 'stuck-holder';
             SELECT pg_advisory_lock(hashtext('tandem'), hashtext('public'))",
        )
        .await
        .unwrap();
    let pid: i32 = holder
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let file = migration_file(
        "01_t.json",
        r#"{"operations": [{"create_table": {"name": "t", "columns": [
            {"name": "id", "type": "bigint", "pk": true}]}}]}"#,
    );
    let out = db.tandem(&["start", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another tandem command is already working on schema \"public\""),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
    assert!(stderr.contains("'stuck-holder'"), "{stderr}");
    assert!(stderr.contains("connected since"), "{stderr}");
    assert!(
        stderr.contains(&format!("SELECT pg_terminate_backend({pid})")),
        "{stderr}"
    );
    // Doing what it says clears the way.
    let c = db.client().await;
    c.execute("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = db.tandem(&["start", file.to_str().unwrap()]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
