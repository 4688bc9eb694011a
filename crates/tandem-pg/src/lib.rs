pub mod cluster;
pub mod demo;
pub mod executor;
pub mod introspect;
pub mod session;
pub mod state;
#[cfg(test)]
mod test_server;
pub mod backfill;
