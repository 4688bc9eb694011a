//! tandem-core: the migration model, the schema model and the planner. No I/O happens here:
//! given a schema and a migration, the planner returns the exact SQL steps to run.

pub mod ident;
pub mod migration;
pub mod problem;
pub mod schema;
pub mod backfill;
pub mod ddl;
pub mod expr;
pub mod ops;
pub mod plan;
pub mod planner;
pub mod sync;
pub mod views;
pub mod load;
pub mod position;
