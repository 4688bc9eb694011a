//! A throwaway PostgreSQL cluster in a private temp dir, for tests and `tandem demo`.
//!
//! The server listens only on a unix socket inside its own dir, so clusters never collide on a
//! port and never touch a server the user already runs. A shell watchdog owns the cleanup:
//! callers keep clusters in statics that are never dropped, and test processes get SIGKILLed,
//! so cleanup cannot depend on our own code running at exit.

use std::fmt;
use std::fs::{self, File};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tandem_core::ident::quote_ident;
use tokio_postgres::{Config, NoTls};

/// TCP is off and the socket lives in our own dir, so the default port cannot clash.
const PORT: u16 = 5432;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longer than the watchdog's own 10 s grace before SIGKILL, so stop() only steps in when the
/// watchdog itself is gone.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const LOG_FILE: &str = "server.log";
const LOG_TAIL_LINES: usize = 40;
/// sun_path is 108 bytes on Linux and 104 on macOS; stay clear of both.
const MAX_SOCKET_PATH: usize = 100;
const BINARIES_HINT: &str = "install the PostgreSQL server package (e.g. `apt-get install \
    postgresql`) or set PG_BINDIR to the directory that contains initdb and postgres";

/// Runs as the current user (root when we are root) so it can always signal the server and
/// remove the dir. $1 is the temp dir, $2 the postmaster pid: passed as arguments, never spliced
/// into the text, so odd paths cannot change the script. A zombie counts as gone because after
/// SIGKILL of our process the postmaster is reparented to an init that may never reap it.
const WATCHDOG_SCRIPT: &str = r#"
alive() {
    kill -0 "$1" 2>/dev/null || return 1
    s=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    s=${s##*) }
    case $s in Z*) return 1 ;; esac
    return 0
}
cat >/dev/null
kill -QUIT "$2" 2>/dev/null
i=0
while alive "$2"; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then
        kill -KILL "$2" 2>/dev/null
        sleep 0.2
        break
    fi
    sleep 0.1
done
rm -rf "$1"
"#;

#[derive(Debug)]
pub enum ClusterError {
    BinariesNotFound(String),
    Io(String),
    InitdbFailed(String),
    ServerFailed(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::BinariesNotFound(why) => {
                write!(
                    f,
                    "PostgreSQL server binaries not found: {why}; {BINARIES_HINT}"
                )
            }
            ClusterError::Io(why) => write!(
                f,
                "could not prepare the temporary cluster directory: {why}; check that TMPDIR \
                 points to a short, writable directory"
            ),
            ClusterError::InitdbFailed(why) => write!(
                f,
                "initdb failed: {why}\nIf this is a locale or permission problem, fix it or \
                 point PG_BINDIR at a working PostgreSQL installation"
            ),
            ClusterError::ServerFailed(why) => write!(
                f,
                "the temporary PostgreSQL server failed: {why}\nCheck the server log above; \
                 common causes are too little shared memory or a TMPDIR the postgres user \
                 cannot enter"
            ),
        }
    }
}

impl std::error::Error for ClusterError {}

/// A running throwaway cluster. Stopped, and its dir removed, by [`LocalCluster::stop`], by
/// Drop, or by the watchdog once this process is gone, whichever comes first.
pub struct LocalCluster {
    dir: PathBuf,
    port: u16,
    server: Option<Child>,
    watchdog: Option<Watchdog>,
}

struct Watchdog {
    child: Child,
    /// The watchdog acts when this pipe closes, which happens however our process ends.
    pipe: ChildStdin,
}

/// The OS account that owns the cluster when it is not the current user.
#[derive(Clone, Copy)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl LocalCluster {
    /// Blocking: finds binaries, initdb, starts the server, waits until it accepts connections.
    pub fn start() -> Result<LocalCluster, ClusterError> {
        let bindir = find_bindir();
        let owner = cluster_owner()?;
        // Built before anything can fail, so every error path below cleans up through Drop.
        let mut cluster = LocalCluster {
            dir: create_temp_dir(owner)?,
            port: PORT,
            server: None,
            watchdog: None,
        };
        run_initdb(bindir.as_deref(), &cluster.dir, owner)?;
        let server = spawn_server(bindir.as_deref(), &cluster.dir, cluster.port, owner)?;
        let server_pid = server.id();
        cluster.server = Some(server);
        cluster.watchdog = Some(spawn_watchdog(&cluster.dir, server_pid)?);
        cluster.wait_until_ready()?;
        Ok(cluster)
    }

    /// Blocking: a streaming standby of this cluster (pg_basebackup), replaying each commit
    /// no sooner than `apply_delay` after it (`recovery_min_apply_delay`), in a dir of its
    /// own, read-only. For tests of replica throttling.
    pub fn start_standby(&self, apply_delay: Duration) -> Result<LocalCluster, ClusterError> {
        let bindir = find_bindir();
        let owner = cluster_owner()?;
        let mut standby = LocalCluster {
            dir: create_temp_dir(owner)?,
            port: PORT,
            server: None,
            watchdog: None,
        };
        let mut cmd = pg_command(bindir.as_deref(), "pg_basebackup");
        cmd.arg("-D")
            .arg(standby.dir.join("data"))
            .arg("-h")
            .arg(&self.dir)
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-X",
                "stream",
                "-R",
            ])
            .arg("--no-sync")
            .stdin(Stdio::null());
        run_as(&mut cmd, owner, &standby.dir);
        let output = cmd.output().map_err(|e| {
            ClusterError::BinariesNotFound(format!("could not run {:?}: {e}", cmd.get_program()))
        })?;
        if !output.status.success() {
            return Err(ClusterError::ServerFailed(format!(
                "pg_basebackup: {}",
                String::from_utf8_lossy(&output.stderr)
            )));
        }
        let auto = standby.dir.join("data").join("postgresql.auto.conf");
        let mut conf = fs::read_to_string(&auto).map_err(|e| ClusterError::Io(e.to_string()))?;
        conf.push_str(&format!(
            "recovery_min_apply_delay = '{}ms'\n",
            apply_delay.as_millis()
        ));
        fs::write(&auto, conf).map_err(|e| ClusterError::Io(e.to_string()))?;
        let server = spawn_server(bindir.as_deref(), &standby.dir, standby.port, owner)?;
        let server_pid = server.id();
        standby.server = Some(server);
        standby.watchdog = Some(spawn_watchdog(&standby.dir, server_pid)?);
        standby.wait_until_ready()?;
        Ok(standby)
    }

    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// libpq key=value string, e.g. "host=/tmp/tandem-pg-123-456 port=5432 user=postgres dbname=foo"
    pub fn url(&self, dbname: &str) -> String {
        format!(
            "host={} port={} user=postgres dbname={}",
            conninfo_value(&self.dir.to_string_lossy()),
            self.port,
            conninfo_value(dbname)
        )
    }

    /// Creates a fresh database `name` (quote the identifier: `"` doubled) and returns its url.
    pub async fn create_database(&self, name: &str) -> Result<String, ClusterError> {
        let sql = format!("CREATE DATABASE {}", quote_ident(name));
        let (client, connection) = self
            .config("postgres")
            .connect(NoTls)
            .await
            .map_err(|e| ClusterError::ServerFailed(describe(&e)))?;
        // Driving the connection on this task instead of tokio::spawn keeps this usable from
        // any runtime flavour and leaves no task behind.
        let work = async move { client.batch_execute(&sql).await };
        let (created, _) = tokio::join!(work, connection);
        created.map_err(|e| {
            ClusterError::ServerFailed(format!("CREATE DATABASE {name:?}: {}", describe(&e)))
        })?;
        Ok(self.url(name))
    }

    /// Stops the server (fast/immediate) and removes the temp dir. Also done by Drop.
    pub fn stop(&mut self) {
        let server = self.server.take();
        match (self.watchdog.take(), server) {
            (Some(watchdog), server) => watchdog.finish(server),
            (None, Some(mut server)) => {
                let _ = server.kill();
                let _ = server.wait();
            }
            (None, None) => {}
        }
        // Only does anything when the watchdog never started or was killed by someone else.
        if self.dir.exists() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    fn config(&self, dbname: &str) -> Config {
        let mut config = Config::new();
        config
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname(dbname)
            .connect_timeout(Duration::from_secs(2));
        config
    }

    fn wait_until_ready(&mut self) -> Result<(), ClusterError> {
        let config = self.config("postgres");
        let Some(server) = self.server.as_mut() else {
            return Err(ClusterError::ServerFailed("server was not started".into()));
        };
        // A thread of our own, because building a runtime inside the caller's would panic.
        let outcome = std::thread::scope(|s| s.spawn(|| poll_ready(&config, server)).join());
        let why = match outcome {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(why)) => why,
            Err(_) => "the readiness check panicked".to_string(),
        };
        let log = log_tail(&self.dir.join(LOG_FILE));
        Err(ClusterError::ServerFailed(format!(
            "{why}\n--- server log (last lines) ---\n{log}"
        )))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Watchdog {
    /// Closing the pipe is the stop signal; we then reap the server ourselves, because the
    /// watchdog waits for the pid to vanish and our unreaped child would linger as a zombie.
    fn finish(self, server: Option<Child>) {
        let Watchdog { mut child, pipe } = self;
        drop(pipe);
        if let Some(mut server) = server {
            reap_within(&mut server, STOP_TIMEOUT);
        }
        let _ = child.wait();
    }
}

fn reap_within(child: &mut Child, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn find_bindir() -> Option<PathBuf> {
    find_bindir_of("initdb")
}

/// Where PostgreSQL's program `program` is looked for: `PG_BINDIR`, else the highest
/// `/usr/lib/postgresql/<version>/bin` that has it; `None` means PATH.
pub(crate) fn find_bindir_of(program: &str) -> Option<PathBuf> {
    match std::env::var_os("PG_BINDIR") {
        Some(dir) if !dir.is_empty() => Some(PathBuf::from(dir)),
        _ => newest_versioned_bindir(Path::new("/usr/lib/postgresql"), program),
    }
}

/// Debian/Ubuntu keep each major version in its own dir and put none of them on PATH.
fn newest_versioned_bindir(root: &Path, program: &str) -> Option<PathBuf> {
    fs::read_dir(root)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = version_key(entry.file_name().to_str()?)?;
            let bin = entry.path().join("bin");
            bin.join(program).is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// Numeric, so that 10 sorts above 9.6.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

/// A PostgreSQL client program (`psql`, `pg_dump`), found as the server binaries are.
pub fn client_command(name: &str) -> Command {
    pg_command(find_bindir_of(name).as_deref(), name)
}

pub(crate) fn pg_command(bindir: Option<&Path>, name: &str) -> Command {
    match bindir {
        Some(dir) => Command::new(dir.join(name)),
        None => Command::new(name),
    }
}

/// initdb and postgres refuse to run as root, and containers rarely have sudo, so as root the
/// cluster belongs to the `postgres` account instead.
fn cluster_owner() -> Result<Option<Owner>, ClusterError> {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    if effective_uid(&status) != Some(0) {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd_ids(&passwd, "postgres").map(Some).ok_or_else(|| {
        ClusterError::InitdbFailed(
            "running as root, and PostgreSQL refuses to run as root, but there is no `postgres` \
             OS user to run it as; create one (useradd postgres) or run as a normal user"
                .into(),
        )
    })
}

fn effective_uid(proc_status: &str) -> Option<u32> {
    let ids = proc_status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    ids.split_whitespace().nth(1)?.parse().ok()
}

fn passwd_ids(passwd: &str, user: &str) -> Option<Owner> {
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        if fields.len() < 4 || fields[0] != user {
            return None;
        }
        Some(Owner {
            uid: fields[2].parse().ok()?,
            gid: fields[3].parse().ok()?,
        })
    })
}

fn create_temp_dir(owner: Option<Owner>) -> Result<PathBuf, ClusterError> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("tandem-pg-{}-{nanos}", std::process::id()));
    let socket_len = dir.join(format!(".s.PGSQL.{PORT}")).as_os_str().len();
    if socket_len >= MAX_SOCKET_PATH {
        return Err(ClusterError::Io(format!(
            "{} is too long for a unix socket path",
            dir.display()
        )));
    }
    let io_err =
        |what: &str, e: io::Error| ClusterError::Io(format!("{what} {}: {e}", dir.display()));
    fs::create_dir(&dir).map_err(|e| io_err("create", e))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| io_err("restrict", e))?;
    if let Some(owner) = owner {
        std::os::unix::fs::chown(&dir, Some(owner.uid), Some(owner.gid))
            .map_err(|e| io_err("chown to postgres", e))?;
    }
    Ok(dir)
}

/// Also moves the working directory into our dir: the postgres user may not be allowed into
/// the caller's.
fn run_as(cmd: &mut Command, owner: Option<Owner>, dir: &Path) {
    cmd.current_dir(dir);
    if let Some(owner) = owner {
        cmd.uid(owner.uid).gid(owner.gid);
    }
}

fn run_initdb(bindir: Option<&Path>, dir: &Path, owner: Option<Owner>) -> Result<(), ClusterError> {
    let mut cmd = pg_command(bindir, "initdb");
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
        // C locale: initdb fails outright when the environment names a locale that is not
        // installed, which is common in containers.
        .arg("--locale=C")
        .stdin(Stdio::null());
    run_as(&mut cmd, owner, dir);
    let output = cmd.output().map_err(|e| {
        ClusterError::BinariesNotFound(format!("could not run {:?}: {e}", cmd.get_program()))
    })?;
    if output.status.success() {
        return Ok(());
    }
    Err(ClusterError::InitdbFailed(format!(
        "{}\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )))
}

fn spawn_server(
    bindir: Option<&Path>,
    dir: &Path,
    port: u16,
    owner: Option<Owner>,
) -> Result<Child, ClusterError> {
    let log_path = dir.join(LOG_FILE);
    let io_err = |e: io::Error| ClusterError::Io(format!("create {}: {e}", log_path.display()));
    let log = File::create(&log_path).map_err(io_err)?;
    let log_err = log.try_clone().map_err(io_err)?;
    let mut cmd = pg_command(bindir, "postgres");
    cmd.arg("-D").arg(dir.join("data")).arg("-k").arg(dir);
    cmd.args(["-c", "listen_addresses=", "-p", &port.to_string()]);
    // Durability is worthless for a throwaway cluster and costs seconds per test.
    for setting in [
        "fsync=off",
        "synchronous_commit=off",
        "full_page_writes=off",
        "max_connections=200",
        "shared_buffers=128MB",
    ] {
        cmd.args(["-c", setting]);
    }
    cmd.stdin(Stdio::null()).stdout(log).stderr(log_err);
    // Keeps a terminal's Ctrl-C away from the server: shutdown goes through the watchdog.
    cmd.process_group(0);
    run_as(&mut cmd, owner, dir);
    cmd.spawn().map_err(|e| {
        ClusterError::BinariesNotFound(format!("could not run {:?}: {e}", cmd.get_program()))
    })
}

fn spawn_watchdog(dir: &Path, server_pid: u32) -> Result<Watchdog, ClusterError> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(WATCHDOG_SCRIPT)
        .arg("sh")
        .arg(dir)
        .arg(server_pid.to_string())
        .stdin(Stdio::piped())
        // Must not hold the caller's stdout or stderr open: a parent reading them to EOF
        // would otherwise wait for the cleanup.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        // Ctrl-C in a terminal signals the whole foreground group; the watchdog has to
        // survive it to do its job.
        .process_group(0)
        .spawn()
        .map_err(|e| ClusterError::Io(format!("could not start the cleanup watchdog (sh): {e}")))?;
    match child.stdin.take() {
        Some(pipe) => Ok(Watchdog { child, pipe }),
        None => Err(ClusterError::Io("watchdog stdin was not piped".into())),
    }
}

fn poll_ready(config: &Config, server: &mut Child) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("could not build a tokio runtime: {e}"))?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if let Ok(Some(status)) = server.try_wait() {
            return Err(format!("postgres exited during startup ({status})"));
        }
        let last_error = match runtime.block_on(probe(config)) {
            Ok(()) => return Ok(()),
            Err(e) => describe(&e),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "no connection accepted within {READY_TIMEOUT:?} (last error: {last_error})"
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A completed startup handshake means the server is out of recovery and accepting sessions.
async fn probe(config: &Config) -> Result<(), tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    drop(client);
    let _ = connection.await;
    Ok(())
}

fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{}: {}", db.severity(), db.message());
    }
    match std::error::Error::source(e) {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    }
}

fn log_tail(path: &Path) -> String {
    match fs::read_to_string(path) {
        Ok(log) => {
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// libpq conninfo quoting: single quotes, with `\` and `'` backslash-escaped.
fn conninfo_value(value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if plain {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader};

    const HELPER_ENV: &str = "TANDEM_CLUSTER_KILL_HELPER";
    const READY_MARKER: &str = "tandem-cluster-ready";

    /// Alive means running: a zombie has already let go of the data dir.
    fn process_running(pid: u32) -> bool {
        match fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => !stat
                .rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('Z')),
            Err(_) => false,
        }
    }

    fn server_pid(cluster: &LocalCluster) -> u32 {
        cluster.server.as_ref().expect("server running").id()
    }

    async fn select_one(url: &str) -> i32 {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
        let query = async move { client.query_one("SELECT 1", &[]).await };
        let (row, _) = tokio::join!(query, connection);
        row.expect("SELECT 1").get(0)
    }

    #[tokio::test]
    async fn cluster_starts_serves_and_cleans_up() {
        let mut cluster = LocalCluster::start().expect("start cluster");
        let dir = cluster.socket_dir().to_path_buf();
        let pid = server_pid(&cluster);
        assert!(dir.join(format!(".s.PGSQL.{}", cluster.port())).exists());

        assert_eq!(select_one(&cluster.url("postgres")).await, 1);
        let plain = cluster.create_database("tandem_one").await.expect("create");
        let odd = cluster
            .create_database("Tandem \"two\" it's")
            .await
            .expect("create odd name");
        assert_eq!(select_one(&plain).await, 1);
        assert_eq!(select_one(&odd).await, 1);

        cluster.stop();
        assert!(!dir.exists(), "{} still exists", dir.display());
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "postmaster {pid} still exists"
        );
        cluster.stop();
    }

    #[test]
    fn cluster_is_cleaned_up_after_sigkill() {
        let mut child = Command::new(std::env::current_exe().expect("current exe"))
            .args([
                "--exact",
                "cluster::tests::sigkill_helper",
                "--ignored",
                "--nocapture",
            ])
            .env(HELPER_ENV, "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn helper");
        let stdout = child.stdout.take().expect("piped stdout");
        let ready = BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.strip_prefix(READY_MARKER).map(str::to_owned));
        let Some(ready) = ready else {
            let _ = child.kill();
            panic!("helper exited before starting a cluster");
        };
        let (pid, dir) = ready.trim_start().split_once(' ').expect("pid and dir");
        let (pid, dir): (u32, PathBuf) = (pid.parse().expect("pid"), dir.into());
        assert!(dir.exists());

        child.kill().expect("SIGKILL helper");
        child.wait().expect("reap helper");

        let deadline = Instant::now() + Duration::from_secs(15);
        while (dir.exists() || process_running(pid)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(!dir.exists(), "{} survived the SIGKILL", dir.display());
        assert!(
            !process_running(pid),
            "postmaster {pid} survived the SIGKILL"
        );
    }

    /// Run by `cluster_is_cleaned_up_after_sigkill` in a child process that it then kills.
    #[test]
    #[ignore = "helper process for cluster_is_cleaned_up_after_sigkill"]
    fn sigkill_helper() {
        if std::env::var_os(HELPER_ENV).is_none() {
            return;
        }
        let cluster = LocalCluster::start().expect("start cluster");
        println!(
            "{READY_MARKER} {} {}",
            server_pid(&cluster),
            cluster.socket_dir().display()
        );
        std::thread::sleep(Duration::from_secs(120));
    }

    #[test]
    fn parses_ids_and_versions() {
        let status = "Name:\tx\nUid:\t1000\t0\t0\t0\nGid:\t5\t5\t5\t5\n";
        assert_eq!(effective_uid(status), Some(0));
        let passwd =
            "root:x:0:0::/root:/bin/sh\npostgres:x:101:104:PG:/var/lib/postgresql:/bin/sh\n";
        let owner = passwd_ids(passwd, "postgres").expect("postgres entry");
        assert_eq!((owner.uid, owner.gid), (101, 104));
        assert!(passwd_ids(passwd, "nobody").is_none());
        assert!(version_key("10") > version_key("9.6"));
        assert_eq!(version_key("main"), None);
    }

    #[test]
    fn url_quotes_values_that_need_it() {
        assert_eq!(conninfo_value("plain_db"), "plain_db");
        assert_eq!(conninfo_value("a b"), "'a b'");
        assert_eq!(conninfo_value("it's\\"), "'it\\'s\\\\'");
        assert_eq!(conninfo_value(""), "''");
        let parsed: Config = format!("dbname={}", conninfo_value("Tandem \"two\" it's"))
            .parse()
            .expect("parse");
        assert_eq!(parsed.get_dbname(), Some("Tandem \"two\" it's"));
    }
}
