pub mod backfill;
pub mod cluster;
pub mod demo;
pub mod diff;
pub mod executor;
pub mod introspect;
pub mod objects;
pub mod pg_dump;
pub mod session;
pub mod state;
pub mod stats;
#[cfg(test)]
mod test_server;
