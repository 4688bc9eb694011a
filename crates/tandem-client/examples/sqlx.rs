//! An app on sqlx that lives through a tandem migration.
//!
//! ```sh
//! DATABASE_URL=postgres://app@localhost/shop cargo run -p tandem-client --example sqlx
//! ```
//!
//! sqlx has no tokio-postgres client, so it sends the statements tandem-client builds:
//! [`Version::set_local_sql`] in each transaction, or [`Version::set_sql`] once per pooled
//! connection, and [`latest_version_schema_sql`] with one bind parameter. `raw_sql` (and
//! `execute` of a bare string) use the simple query protocol: several statements in one go,
//! no prepared statement.

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::Executor;
use tandem_client::{latest_version_schema_sql, Version};

/// The newest ready version of `schema`, or the base schema when there is none yet.
pub async fn latest(
    pool: &PgPool,
    state_schema: &str,
    schema: &str,
) -> Result<Version, sqlx::Error> {
    let latest: Option<String> = sqlx::query_scalar(&latest_version_schema_sql(state_schema))
        .bind(schema)
        .fetch_optional(pool)
        .await?;
    Ok(Version::new(latest.unwrap_or_else(|| schema.to_string())))
}

/// A pool whose every connection starts on `version` (session setting, run once per
/// connection). Right for direct connections and session pooling; behind a transaction
/// pooler use [`add_user_in`]'s `SET LOCAL` form instead.
pub fn pool_on(version: &Version) -> PgPoolOptions {
    let sql = version.set_sql();
    PgPoolOptions::new().after_connect(move |conn, _meta| {
        let sql = sql.clone();
        Box::pin(async move {
            conn.execute(sql.as_str()).await?;
            Ok(())
        })
    })
}

/// One unit of work on `version`, whatever the connection is on: `SET LOCAL` in the
/// transaction, so the choice ends with it.
pub async fn add_user_in(
    pool: &PgPool,
    version: &Version,
    name: &str,
    email: &str,
) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::raw_sql(&version.set_local_sql())
        .execute(&mut *tx)
        .await?;
    let id: i64 =
        sqlx::query_scalar("INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id")
            .bind(name)
            .bind(email)
            .fetch_one(&mut *tx)
            .await?;
    tx.commit().await?;
    Ok(id)
}

#[allow(dead_code)] // the tests include this file for its functions
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL")?;
    let pool = PgPoolOptions::new().connect(&url).await?;
    let version = latest(&pool, "tandem", "public").await?;
    println!("latest version schema: {}", version.schema());
    let id = add_user_in(&pool, &version, "Grace", "grace@example.com").await?;
    println!("added user {id} through {}", version.schema());

    let app_pool = pool_on(&version).connect(&url).await?;
    let path: String = sqlx::query_scalar("SELECT current_setting('search_path')")
        .fetch_one(&app_pool)
        .await?;
    println!("pooled connections start with search_path = {path}");
    Ok(())
}
