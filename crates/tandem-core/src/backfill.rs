//! The backfill's SQL: set-based batches, each one UPDATE over a range of the table's pages
//! (the main pass) or of its row key (the fallback, keyset-paginated).
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
    // No key is needed: the main pass goes by pages, and a table without one that is
    // rewritten mid-pass gets page passes again (the done-marker skips what is done). The
    // key-range statements below are then empty and never run.
    let key = t.row_key().unwrap_or_default();
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
    // `$first..` as the key's column types, compared as a row so composite keys page too.
    let bound = |first: usize| {
        let params = (0..n)
            .map(|i| format!("${}::text::{}", first + i, key_types[i]))
            .collect::<Vec<_>>()
            .join(", ");
        format!("({params})")
    };
    // Aliased, so that ORDER BY names the key columns and not these text outputs.
    let key_text = key_names
        .iter()
        .enumerate()
        .map(|(i, k)| {
            format!(
                "{}::text AS {}",
                quote_ident(k),
                quote_ident(&format!("_tandem_key{i}"))
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    // The key `offset` rows past the lower bound: an index range scan, no heap writes.
    let keyless = key_names.is_empty();
    let upper = |lower: bool| {
        let (filter, offset) = if lower {
            (format!("WHERE ({keys}) > {}", bound(1)), n + 1)
        } else {
            (String::new(), 1)
        };
        format!("SELECT {key_text} FROM {target} {filter} ORDER BY {keys} OFFSET ${offset} LIMIT 1")
    };
    // One UPDATE over the key range: it takes each row's lock and computes `up` from the
    // row's current version (re-checked if a concurrent write got there first), and skips
    // rows any writer already marked done.
    let update = |lower: bool, upper: bool| {
        let mut conditions = vec![pending.clone()];
        if lower {
            conditions.push(format!("({keys}) > {}", bound(1)));
        }
        if upper {
            conditions.push(format!(
                "({keys}) <= {}",
                bound(if lower { n + 1 } else { 1 })
            ));
        }
        format!(
            "UPDATE {target} SET {sets} WHERE {}",
            conditions.join(" AND ")
        )
    };
    // The same, over a range of pages: read in physical order like a full-table UPDATE, with
    // no index lookups and no search for the range's upper key; disjoint ranges also let
    // several connections share the pass.
    let update_blocks = format!(
        "UPDATE {target} SET {sets} WHERE {pending} AND ctid >= $1::text::tid AND ctid < $2::text::tid"
    );
    Ok(Backfill {
        schema: base.to_string(),
        table: table.to_string(),
        columns: request.assignments.iter().map(|(c, _)| c.clone()).collect(),
        key: key_names.clone(),
        update_blocks,
        upper_bound: if keyless {
            Default::default()
        } else {
            [upper(false), upper(true)]
        },
        update: if keyless {
            Default::default()
        } else {
            [
                update(false, false),
                update(true, false),
                update(false, true),
                update(true, true),
            ]
        },
        sets,
    })
}

fn list(items: &[String], f: impl Fn(&String) -> String) -> String {
    items.iter().map(f).collect::<Vec<_>>().join(", ")
}
