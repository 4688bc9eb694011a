//! Living with two versions: pick the tandem version schema an app works through.
//!
//! While a tandem migration is in flight, two version schemas exist side by side
//! (`public_02_add_email` and `public_03_split_name`, say), each holding one view per table in
//! the shape its app version expects. An app selects its version in one of two ways:
//!
//! - **`search_path`**: `SET search_path = "public_03_split_name", public`. Unqualified table
//!   names then resolve to that version's views; the sync triggers see the version schema in
//!   `current_schemas()` and translate the app's writes for the other version.
//! - **`tandem.version`**: `SET tandem.version = 'public_03_split_name'` tells the triggers which
//!   version a write comes from, whatever the search path (for an app that qualifies its table
//!   names itself, or writes to the base tables on purpose).
//!
//! Either can be set for the session ([`Version::apply`]) or for one transaction
//! ([`Version::apply_local`], `SET LOCAL`): the setting then ends with the transaction, which
//! is what a transaction-pooling proxy (PgBouncer `pool_mode = transaction`) needs, since the
//! next transaction may run on another server connection.
//!
//! Every statement is sent with the simple query protocol (no prepared statement), so it also
//! works through poolers that do not track prepared statements. Names are quoted, never
//! spliced: any schema name tandem can create works.
//!
//! ```no_run
//! # async fn demo(client: &mut tokio_postgres::Client) -> Result<(), tokio_postgres::Error> {
//! use tandem_client::{latest_version_schema, Version};
//!
//! // The newest ready version (None: no migration yet, use the base schema).
//! let schema = latest_version_schema(&*client, "tandem", "public").await?;
//! let version = Version::new(schema.as_deref().unwrap_or("public"));
//!
//! // Per transaction: safe behind a transaction-pooling proxy.
//! let tx = client.transaction().await?;
//! version.apply_local(&tx).await?;
//! tx.execute("UPDATE users SET email = lower(email)", &[]).await?;
//! tx.commit().await?; // the session is back on its previous search_path
//! # Ok(()) }
//! ```
//!
//! Other drivers can send the statements [`Version::set_sql`] and [`Version::set_local_sql`]
//! return, and use [`latest_version_schema_sql`] with one bind parameter.

use tandem_core::ident::{qualified, quote_ident, quote_literal};
use tokio_postgres::GenericClient;

pub use tokio_postgres;

/// The session setting through which a writer declares its version to the sync triggers.
pub const VERSION_SETTING: &str = "tandem.version";

/// The state schema tandem uses unless told otherwise (`--state-schema`).
pub const DEFAULT_STATE_SCHEMA: &str = "tandem";

/// How an app selects its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// `search_path` puts the version schema first (then the fallback schemas), and
    /// `tandem.version` is cleared so the triggers go by the search path.
    #[default]
    SearchPath,
    /// Only `tandem.version` is set; the search path is left alone.
    Setting,
    /// Both: the search path and `tandem.version` name the version schema.
    Both,
}

/// One version of the schema as an app sees it: the version schema's name, the schemas that
/// follow it on the search path, and how it is selected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    schema: String,
    fallback: Vec<String>,
    mode: Mode,
}

impl Version {
    /// `schema` first on the search path, then `public` (where extensions' functions and
    /// types usually live), selected by search path.
    pub fn new(schema: impl Into<String>) -> Self {
        Version {
            schema: schema.into(),
            fallback: vec!["public".to_string()],
            mode: Mode::SearchPath,
        }
    }

    /// The schemas after the version schema on the search path (default: `public`).
    pub fn fallback<I, S>(mut self, schemas: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fallback = schemas.into_iter().map(Into::into).collect();
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The version schema's name.
    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The value for `search_path`: `"public_03_split_name", "public"`.
    pub fn search_path(&self) -> String {
        std::iter::once(&self.schema)
            .chain(self.fallback.iter().filter(|s| **s != self.schema))
            .map(|s| quote_ident(s))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// For a connection string's `options` parameter: `-c search_path=...`, so that every
    /// connection of a pool starts on this version. Spaces are backslash-escaped as libpq
    /// requires inside `options`.
    pub fn startup_options(&self) -> String {
        let path = self.search_path().replace('\\', "\\\\").replace(' ', "\\ ");
        format!("-c search_path={path}")
    }

    /// The statements that select this version for the rest of the session.
    pub fn set_sql(&self) -> String {
        self.statements("SET")
    }

    /// The statements that select this version until the current transaction ends. Outside
    /// a transaction block PostgreSQL ignores them (with a warning).
    pub fn set_local_sql(&self) -> String {
        self.statements("SET LOCAL")
    }

    fn statements(&self, set: &str) -> String {
        let path = format!("{set} search_path = {}", self.search_path());
        let setting = |value: &str| format!("{set} {VERSION_SETTING} = {}", quote_literal(value));
        match self.mode {
            Mode::SearchPath => format!("{path}; {}", setting("")),
            Mode::Setting => setting(&self.schema),
            Mode::Both => format!("{path}; {}", setting(&self.schema)),
        }
    }

    /// Selects this version for the rest of the session (until another `SET`, `RESET` or
    /// `DISCARD ALL`). Behind a transaction-pooling proxy use [`Version::apply_local`].
    pub async fn apply<C: GenericClient>(&self, client: &C) -> Result<(), tokio_postgres::Error> {
        client.batch_execute(&self.set_sql()).await
    }

    /// Selects this version for the current transaction only (`SET LOCAL`): at commit or
    /// rollback the session is back on whatever it used before. Call it inside a transaction
    /// (e.g. on a [`tokio_postgres::Transaction`]).
    pub async fn apply_local<C: GenericClient>(
        &self,
        client: &C,
    ) -> Result<(), tokio_postgres::Error> {
        client.batch_execute(&self.set_local_sql()).await
    }
}

/// The query behind [`latest_version_schema`], with `$1` the base schema: the newest
/// migration that is not rolled back and whose version schema exists. A started migration's
/// version schema appears only once its backfill is done, so the version this names never
/// shows rows with missing values.
pub fn latest_version_schema_sql(state_schema: &str) -> String {
    format!(
        "SELECT m.version_schema FROM {} m \
         WHERE m.schema = $1 AND m.phase <> 'rolled_back' \
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n WHERE n.nspname = m.version_schema) \
         ORDER BY m.seq DESC LIMIT 1",
        qualified(state_schema, "migrations")
    )
}

/// The newest ready version schema of `schema` according to tandem's state in
/// `state_schema` (`tandem` by default), or `None` when there is none yet (use the base
/// schema). Fails when tandem's state schema is missing (`tandem init` was never run).
pub async fn latest_version_schema<C: GenericClient>(
    client: &C,
    state_schema: &str,
    schema: &str,
) -> Result<Option<String>, tokio_postgres::Error> {
    let row = client
        .query_opt(&latest_version_schema_sql(state_schema), &[&schema])
        .await?;
    Ok(row.map(|r| r.get(0)))
}

/// The version an app should use now: the latest version schema, or the base schema itself
/// when no migration has made one yet.
pub async fn latest_version<C: GenericClient>(
    client: &C,
    state_schema: &str,
    schema: &str,
) -> Result<Version, tokio_postgres::Error> {
    let latest = latest_version_schema(client, state_schema, schema).await?;
    Ok(Version::new(latest.unwrap_or_else(|| schema.to_string())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_names_and_values() {
        let v = Version::new("public_03_Split \"name\"");
        assert_eq!(v.search_path(), r#""public_03_Split ""name""", "public""#);
        assert_eq!(
            v.set_sql(),
            r#"SET search_path = "public_03_Split ""name""", "public"; SET tandem.version = ''"#
        );
        let v = v.mode(Mode::Both).fallback(["app", "public"]);
        assert_eq!(
            v.set_local_sql(),
            r#"SET LOCAL search_path = "public_03_Split ""name""", "app", "public"; SET LOCAL tandem.version = 'public_03_Split "name"'"#
        );
        let v = Version::new("it's").mode(Mode::Setting);
        assert_eq!(v.set_local_sql(), "SET LOCAL tandem.version = 'it''s'");
    }

    #[test]
    fn the_base_schema_is_not_repeated_and_options_escape_spaces() {
        let v = Version::new("public");
        assert_eq!(v.search_path(), r#""public""#);
        let v = Version::new("app v2").fallback(["public"]);
        assert_eq!(
            v.startup_options(),
            r#"-c search_path="app\ v2",\ "public""#
        );
    }

    #[test]
    fn the_latest_query_names_the_state_table_quoted() {
        assert!(latest_version_schema_sql("My State").contains(r#"FROM "My State"."migrations" m"#));
    }
}
