//! tandem-core: the migration model, the schema model and the planner. No I/O happens here:
//! given a schema and a migration, the planner returns the exact SQL steps to run.

pub mod backfill;
pub mod baseline;
pub mod ddl;
pub mod dependents;
pub mod diff;
pub mod expr;
pub mod ident;
pub mod load;
pub mod migration;
pub mod objects;
pub mod ops;
pub mod partitions;
pub mod plan;
pub mod planner;
pub mod position;
pub mod problem;
pub mod schema;
pub mod sync;
pub mod update;
pub mod views;
