//! The backfill's SQL: set-based, keyset-paginated batches over the row key.
//!
//! Each batch locks its rows (`FOR NO KEY UPDATE`) and computes `up` from their current
//! values in the same statement, so a concurrent old-version write is never overwritten with
//! a value computed from a stale read.

use crate::ident::{qualified, quote_ident};
use crate::plan::{Backfill, Lock, Phase, Step};
use crate::problem::Problem;
use crate::schema::Schema;

/// Marks the rows the backfill no longer needs to touch: set by the batches and by the sync
/// trigger on every write, whichever version it comes from. A row written by the new version
/// before the backfill reached it keeps its value; a resumed backfill skips finished rows.
pub const DONE_COLUMN: &str = "_tandem_backfilled";

pub fn add_marker_step(base: &str, table: &str) -> Step {
    Step::sql(
        Phase::Start,
        format!("add the backfill marker column to {}", quote_ident(table)),
        format!(
            "ALTER TABLE {} ADD COLUMN {} boolean",
            qualified(base, table),
            quote_ident(DONE_COLUMN)
        ),
    )
    .lock(Lock::AccessExclusive)
}

pub fn drop_marker_step(base: &str, table: &str) -> Step {
    Step::sql(
        Phase::Rollback,
        format!("drop the backfill marker column of {}", quote_ident(table)),
        format!(
            "ALTER TABLE {} DROP COLUMN IF EXISTS {}",
            qualified(base, table),
            quote_ident(DONE_COLUMN)
        ),
    )
    .lock(Lock::AccessExclusive)
}

#[derive(Debug, Clone)]
pub struct Request {
    /// The operation that first asked for this table's backfill, for error messages.
    pub pointer: String,
    /// (physical column, `up` expression).
    pub assignments: Vec<(String, String)>,
}

pub fn plan(
    base: &str,
    before: &Schema,
    table: &str,
    request: &Request,
) -> Result<Backfill, Problem> {
    let t = before.table_by_physical(table).ok_or_else(|| {
        Problem::new(
            &request.pointer,
            format!("table \"{table}\" is not in the schema"),
        )
    })?;
    let key = t.row_key().ok_or_else(|| {
        Problem::new(
            &request.pointer,
            format!("table \"{}\" has no primary key or unique NOT NULL column, so its existing rows cannot be backfilled in batches", t.name),
        )
        .with_hint(format!(
            "add a primary key to \"{}\" in an earlier migration (e.g. a create_constraint of type primary_key)",
            t.name
        ))
    })?;
    let key_names: Vec<String> = key.iter().map(|c| c.physical.clone()).collect();
    let key_types: Vec<String> = key.iter().map(|c| c.type_name.clone()).collect();
    let target = qualified(base, table);
    let keys = list(&key_names, |k| quote_ident(k));
    let sets = request
        .assignments
        .iter()
        .map(|(c, up)| format!("{} = ({up})", quote_ident(c)))
        .chain(std::iter::once(format!(
            "{} = true",
            quote_ident(DONE_COLUMN)
        )))
        .collect::<Vec<_>>()
        .join(", ");
    let pending = format!("{} IS NOT TRUE", quote_ident(DONE_COLUMN));
    let n = key_names.len();
    let lower_bound = format!(
        "WHERE {pending} AND ({keys}) > ({})",
        (0..n)
            .map(|i| format!("${}::text::{}", i + 1, key_types[i]))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let batch = |filter: &str, limit: usize| {
        format!(
            "WITH batch AS (SELECT {keys} FROM {target} {filter} ORDER BY {keys} LIMIT ${limit} FOR NO KEY UPDATE), \
             done AS (UPDATE {target} SET {sets} WHERE ({keys}) IN (SELECT {keys} FROM batch) RETURNING {keys}) \
             SELECT {}, (SELECT count(*) FROM done) FROM done ORDER BY {} LIMIT 1",
            list(&key_names, |k| format!("{}::text", quote_ident(k))),
            list(&key_names, |k| format!("{} DESC", quote_ident(k))),
        )
    };
    Ok(Backfill {
        schema: base.to_string(),
        table: table.to_string(),
        columns: request.assignments.iter().map(|(c, _)| c.clone()).collect(),
        key: key_names.clone(),
        first_batch: batch(&format!("WHERE {pending}"), 1),
        next_batch: batch(&lower_bound, n + 1),
    })
}

fn list(items: &[String], f: impl Fn(&String) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(", ")
}
