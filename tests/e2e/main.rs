//! End-to-end tests: the `tandem` binary against a real PostgreSQL, with old and new app
//! versions reading and writing through their version schemas side by side.

mod support;

mod alter_column;
mod app_triggers;
mod backfill;
mod bad_input;
mod baseline;
mod chained_ops;
mod cli;
mod concurrency;
mod conformance;
mod constraints;
mod convert;
mod demo;
mod dependents;
mod diff;
mod expand_defaults;
mod faults;
mod grants;
mod history;
mod identifiers;
mod indexes;
mod lint;
mod load;
mod locks;
mod operations;
mod parity;
mod plan;
mod pooler;
mod properties;
mod raw_sql;
mod real_schema;
mod rehearsal;
mod replica;
mod update;
