//! An app on tokio-postgres that lives through a tandem migration.
//!
//! ```sh
//! DATABASE_URL=postgres://app@localhost/shop cargo run -p tandem-client --example tokio_postgres
//! ```
//!
//! It expects a `users` table whose newest version has `name` and `email` columns (the
//! crate's tests set one up). The functions are what an app would write; `main` strings them
//! together.

use tandem_client::tokio_postgres::{self, Client, NoTls};
use tandem_client::{latest_version, Version};

/// Puts the whole session on the newest ready version, as an app does once when it connects
/// directly or through a session-pooling proxy.
pub async fn session_on_latest(
    client: &Client,
    state_schema: &str,
    schema: &str,
) -> Result<Version, tokio_postgres::Error> {
    let version = latest_version(client, state_schema, schema).await?;
    version.apply(client).await?;
    Ok(version)
}

/// One unit of work on `version`, whatever the session is on: `SET LOCAL` inside the
/// transaction, so the choice ends with it. This is the form that keeps working behind a
/// transaction-pooling proxy, where consecutive transactions may use different server
/// connections.
pub async fn add_user_in(
    client: &mut Client,
    version: &Version,
    name: &str,
    email: &str,
) -> Result<i64, tokio_postgres::Error> {
    let tx = client.transaction().await?;
    version.apply_local(&tx).await?;
    let id: i64 = tx
        .query_one(
            "INSERT INTO users (name, email) VALUES ($1, $2) RETURNING id",
            &[&name, &email],
        )
        .await?
        .get(0);
    tx.commit().await?;
    Ok(id)
}

/// The session's current search path, as PostgreSQL reports it.
pub async fn search_path(client: &Client) -> Result<String, tokio_postgres::Error> {
    client
        .query_one("SELECT current_setting('search_path')", &[])
        .await
        .map(|row| row.get(0))
}

#[allow(dead_code)] // the tests include this file for its functions
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL")?;
    let (mut client, connection) = tokio_postgres::connect(&url, NoTls).await?;
    tokio::spawn(connection);

    let before = search_path(&client).await?;
    let latest = latest_version(&client, "tandem", "public").await?;
    println!("latest version schema: {}", latest.schema());

    let id = add_user_in(&mut client, &latest, "Ada", "ada@example.com").await?;
    println!("added user {id} through {}", latest.schema());
    println!(
        "search_path after the transaction: {}",
        search_path(&client).await?
    );
    assert_eq!(before, search_path(&client).await?);

    session_on_latest(&client, "tandem", "public").await?;
    println!(
        "search_path for the session: {}",
        search_path(&client).await?
    );
    Ok(())
}
