//! The server unit tests run against: `TANDEM_TEST_PG_URL` when set, else one throwaway
//! cluster per test process (cleaned up by its watchdog when the process exits).

use std::sync::OnceLock;

use crate::cluster::LocalCluster;

static CLUSTER: OnceLock<LocalCluster> = OnceLock::new();

/// A connection string for the server's `postgres` database.
pub fn admin_url() -> String {
    if let Ok(url) = std::env::var("TANDEM_TEST_PG_URL") {
        return url;
    }
    CLUSTER
        .get_or_init(|| LocalCluster::start().expect("start a throwaway PostgreSQL for the tests"))
        .url("postgres")
}
