//! The I/O behind `tandem diff`: reads the schemas to compare, and builds the one the migration
//! files produce by replaying them (start, then complete, each) into a scratch database: a
//! throwaway local cluster, or a fresh database on a server the caller names, dropped after.
//! The comparison itself is [`tandem_core::diff::diff`].

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use tandem_core::diff::{diff, diff_objects, Difference};
use tandem_core::ident::quote_ident;
use tandem_core::migration::Migration;
use tandem_core::objects::Objects;
use tandem_core::schema::Schema;
use tokio_postgres::{Client, NoTls};

use crate::cluster::{ClusterError, LocalCluster};
use crate::executor::{db_message, Event};
use crate::introspect::read_schema;
use crate::objects::read_objects;
use crate::session::{self, Options, Session};
use crate::state::Phase;

/// Where the migration files are replayed.
#[derive(Debug, Clone)]
pub enum Scratch {
    /// A throwaway PostgreSQL cluster started from the local server binaries.
    Local,
    /// A server (connection string to any of its databases): a fresh database is created
    /// there, and dropped after.
    Server(String),
}

#[derive(Debug)]
pub enum DiffError {
    /// A database to compare could not be read; `what` names it (`live`, `from`, ...).
    Read { what: String, message: String },
    /// The throwaway cluster did not start.
    Cluster(ClusterError),
    /// The scratch database could not be created (or dropped).
    Scratch(String),
    /// A migration file failed when replayed.
    Replay { migration: String, error: String },
    /// The live database cannot be compared as asked.
    Live(String),
}

impl fmt::Display for DiffError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiffError::Read { what, message } => {
                write!(f, "cannot read the {what} database: {message}\n  hint: check its connection string, that the server accepts connections, and that the role may read the schema and tandem's state schema")
            }
            DiffError::Cluster(e) => write!(f, "cannot start a throwaway PostgreSQL: {e}\n  hint: or pass --scratch-url to replay on a server of your own"),
            DiffError::Scratch(m) => write!(f, "scratch database: {m}\n  hint: --scratch-url needs a role that may create and drop databases"),
            DiffError::Replay { migration, error } => write!(
                f,
                "replaying migration \"{migration}\" into the scratch database failed: {error}\n  hint: the error above is the scratch database's, on the statement shown; `tandem validate` and `tandem plan` check the file, and a file that relies on what only the live database has (a role, an extension's files on the server) cannot be replayed"
            ),
            DiffError::Live(m) => write!(f, "{m}\n  hint: leave out --applied-only"),
        }
    }
}

impl std::error::Error for DiffError {}

/// What is compared of one database: the tables, and the schema's other objects.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub schema: Schema,
    pub objects: Objects,
}

/// Every difference between `a` and `b`: tables first, then the other objects.
pub fn compare(a: &Snapshot, b: &Snapshot) -> Vec<Difference> {
    let mut differences = diff(&a.schema, &b.schema);
    differences.extend(diff_objects(&a.objects, &b.objects));
    differences
}

/// The outcome of a comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// Empty when the schemas are equal.
    pub differences: Vec<Difference>,
    /// The migrations replayed, in order (empty for two databases).
    pub replayed: Vec<String>,
    /// Things that explain differences or deserve attention, in plain words.
    pub notes: Vec<String>,
    /// The scratch database the files were replayed into, on a server the caller named
    /// (dropped since).
    pub scratch_database: Option<String>,
}

/// What to compare the live database with.
pub struct MigrationsDiff<'a> {
    /// The live database.
    pub url: &'a str,
    /// The migration files, in order.
    pub migrations: &'a [Migration],
    pub scratch: &'a Scratch,
    /// Replay only the files the live database has applied (by name).
    pub applied_only: bool,
    /// The schema, state schema and executor settings (the role is not used on the scratch
    /// database, which does not have it).
    pub options: &'a Options,
}

/// Compares the live database's schema (side `a`) with the one its migration files build
/// (side `b`). `replayed` is called as each file has been replayed.
pub async fn compare_with_migrations(
    input: &MigrationsDiff<'_>,
    replayed: &(dyn Fn(&str) + Send + Sync),
) -> Result<Comparison, DiffError> {
    let schema = &input.options.schema;
    let read_error = |message: String| DiffError::Read {
        what: "live".into(),
        message,
    };
    // Connecting once ourselves first gives the driver's reason when the server is not there.
    connect(input.url)
        .await
        .map_err(|e| read_error(error_text(&e)))?;
    let live = Session::connect(input.url, input.options.clone())
        .await
        .map_err(|e| read_error(e.to_string()))?;
    let status = live.status().await.map_err(|e| read_error(e.to_string()))?;
    let live_schema = read_consistent(live.client(), schema)
        .await
        .map_err(|e| read_error(error_text(&e)))?;
    drop(live);

    let applied: Vec<&str> = status.history.iter().map(|m| m.name.as_str()).collect();
    let mut notes = Vec::new();
    if input.applied_only && !status.initialized {
        return Err(DiffError::Live(format!(
            "--applied-only: tandem is not initialized on the live database (no state schema \"{}\"), so no migration is applied there",
            input.options.state_schema
        )));
    }
    if let Some(m) = &status.in_flight {
        let what = if m.phase == Phase::Completing {
            "is being completed"
        } else {
            "is in flight"
        };
        notes.push(format!(
            "migration \"{}\" {what} on the live database: its tables are in their expanded shape (shadow columns, triggers, temporary constraints, renames still to come), so differences are expected until `tandem complete`",
            m.name
        ));
    }
    if status.initialized {
        for name in &applied {
            if !input.migrations.iter().any(|m| &m.name == name) {
                notes.push(format!(
                    "migration \"{name}\" is applied on the live database but has no file here"
                ));
            }
        }
        if !input.applied_only {
            for m in input.migrations {
                if !applied.contains(&m.name.as_str()) {
                    notes.push(format!(
                        "migration \"{}\" is not applied on the live database: its changes show up as differences (--applied-only leaves it out)",
                        m.name
                    ));
                }
            }
        }
    }
    let to_replay: Vec<&Migration> = input
        .migrations
        .iter()
        .filter(|m| !input.applied_only || applied.contains(&m.name.as_str()))
        .collect();
    let (built, scratch_database) =
        replay(&to_replay, input.scratch, input.options, replayed).await?;
    Ok(Comparison {
        differences: compare(&live_schema, &built),
        replayed: to_replay.iter().map(|m| m.name.clone()).collect(),
        notes,
        scratch_database,
    })
}

/// Compares the schema `schema` of two databases: `from` is side `a`, `to` side `b`.
pub async fn compare_databases(
    from: &str,
    to: &str,
    schema: &str,
) -> Result<Comparison, DiffError> {
    let (a, b) = tokio::try_join!(read_at(from, schema, "from"), read_at(to, schema, "to"))?;
    Ok(Comparison {
        differences: compare(&a, &b),
        replayed: Vec::new(),
        notes: Vec::new(),
        scratch_database: None,
    })
}

/// Replays `migrations` into a scratch database and reads the schema they build; also
/// returns the name of the scratch database when it was made on the caller's server.
pub async fn replay(
    migrations: &[&Migration],
    scratch: &Scratch,
    options: &Options,
    replayed: &(dyn Fn(&str) + Send + Sync),
) -> Result<(Snapshot, Option<String>), DiffError> {
    let name = scratch_database_name();
    match scratch {
        Scratch::Local => {
            let cluster = tokio::task::spawn_blocking(LocalCluster::start)
                .await
                .map_err(|e| DiffError::Scratch(e.to_string()))?
                .map_err(DiffError::Cluster)?;
            let built = match cluster.create_database(&name).await {
                Ok(url) => replay_into(&url, migrations, options, replayed).await,
                Err(e) => Err(DiffError::Cluster(e)),
            };
            // Stopping waits for the server to exit.
            let _ = tokio::task::spawn_blocking(move || drop(cluster)).await;
            Ok((built?, None))
        }
        Scratch::Server(url) => {
            let admin = connect(url)
                .await
                .map_err(|e| DiffError::Scratch(format!("cannot connect: {}", error_text(&e))))?;
            admin
                .batch_execute(&format!("CREATE DATABASE {}", quote_ident(&name)))
                .await
                .map_err(|e| {
                    DiffError::Scratch(format!(
                        "cannot create database \"{name}\": {}",
                        error_text(&e)
                    ))
                })?;
            let built = replay_into(&database_url(url, &name), migrations, options, replayed).await;
            let dropped = admin
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    quote_ident(&name)
                ))
                .await;
            let built = built?;
            dropped.map_err(|e| {
                DiffError::Scratch(format!(
                    "cannot drop database \"{name}\": {}",
                    error_text(&e)
                ))
            })?;
            Ok((built, Some(name)))
        }
    }
}

async fn replay_into(
    url: &str,
    migrations: &[&Migration],
    options: &Options,
    replayed: &(dyn Fn(&str) + Send + Sync),
) -> Result<Snapshot, DiffError> {
    let options = Options {
        role: None,
        ..options.clone()
    };
    let scratch_error = |e: session::Error| DiffError::Scratch(e.to_string());
    let mut session = Session::connect(url, options.clone())
        .await
        .map_err(scratch_error)?;
    // The live database has its base schema already; tandem does not create it.
    session
        .client()
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            quote_ident(&options.schema)
        ))
        .await
        .map_err(|e| DiffError::Scratch(error_text(&e)))?;
    session.init().await.map_err(scratch_error)?;
    let quiet = |_: Event| {};
    for m in migrations {
        let failed = |e: session::Error| DiffError::Replay {
            migration: m.name.clone(),
            error: e.to_string(),
        };
        session.start(m, &quiet).await.map_err(failed)?;
        session.complete(&quiet).await.map_err(failed)?;
        replayed(&m.name);
    }
    read_consistent(session.client(), &options.schema)
        .await
        .map_err(|e| DiffError::Scratch(error_text(&e)))
}

/// Reads `schema` at the database `url` for a comparison; `what` names it in errors.
pub async fn read_at(url: &str, schema: &str, what: &str) -> Result<Snapshot, DiffError> {
    let read_error = |message: String| DiffError::Read {
        what: what.to_string(),
        message,
    };
    let client = connect(url).await.map_err(|e| read_error(error_text(&e)))?;
    read_consistent(&client, schema)
        .await
        .map_err(|e| read_error(error_text(&e)))
}

/// Reads `schema` and its other objects in one snapshot, with `search_path` set to it so that
/// defaults, foreign keys, views and triggers print its objects unqualified, and with the
/// settings that change how constants print (a partition bound's timestamps) fixed, the same
/// way whatever the database and its server's defaults.
pub async fn read_consistent(
    client: &Client,
    schema: &str,
) -> Result<Snapshot, tokio_postgres::Error> {
    client
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL search_path = {};
             SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, MDY';
             SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 1",
            quote_ident(schema)
        ))
        .await?;
    let read = async {
        Ok(Snapshot {
            schema: read_schema(client, schema).await?,
            objects: read_objects(client, schema).await?,
        })
    }
    .await;
    let end = client.batch_execute("COMMIT").await;
    let read = read?;
    end?;
    Ok(read)
}

/// PostgreSQL's message, or for a connection that failed, the driver's reason (the socket or
/// host that is not there) rather than its bare "error connecting to server".
fn error_text(e: &tokio_postgres::Error) -> String {
    if e.as_db_error().is_some() {
        return db_message(e);
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(&format!(": {s}"));
        source = s.source();
    }
    text
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Unique across processes and calls; lower case, so it needs no quoting in a URL.
fn scratch_database_name() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "tandem_diff_{}_{nanos}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The connection string `url` pointed at the database `dbname` (a name that needs no
/// escaping): the path of a `postgres://` URL, or a `dbname=` added to a key=value string
/// (the last one wins).
pub fn database_url(url: &str, dbname: &str) -> String {
    let scheme_end = ["postgresql://", "postgres://"]
        .iter()
        .find(|s| url.starts_with(*s))
        .map(|s| s.len());
    let Some(scheme_end) = scheme_end else {
        return format!("{url} dbname={dbname}");
    };
    let (base, query) = match url.find('?') {
        Some(q) => url.split_at(q),
        None => (url, ""),
    };
    let authority_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    format!("{}/{dbname}{query}", &base[..authority_end])
}

#[cfg(test)]
mod tests {
    use super::database_url;

    #[test]
    fn database_url_replaces_the_database() {
        let cases = [
            ("postgres://u:p@h:5432/app", "postgres://u:p@h:5432/x"),
            (
                "postgres://u@h/app?sslmode=disable",
                "postgres://u@h/x?sslmode=disable",
            ),
            ("postgresql://h", "postgresql://h/x"),
            ("postgresql://h?host=/tmp", "postgresql://h/x?host=/tmp"),
            ("postgres:///app?host=/tmp/s", "postgres:///x?host=/tmp/s"),
            (
                "host=/tmp port=5432 dbname=app",
                "host=/tmp port=5432 dbname=app dbname=x",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(database_url(url, "x"), expected, "{url}");
        }
    }
}
