//! Row estimates from the planner's statistics, for `tandem plan`: how many rows a backfill
//! will touch. Read-only, and cheap: no table is scanned or analysed.

use tandem_core::plan::{Action, Plan};
use tokio_postgres::Client;

/// The estimated rows of `schema.table`, the way PostgreSQL's planner estimates them:
/// `reltuples` as of the last VACUUM or ANALYZE, scaled to the table's current size (so rows
/// added since still count). Partitioned tables add up their partitions. `None` when the table
/// holds data but was never analysed (or is not there): the statistics cannot tell.
pub async fn estimate_rows(
    client: &Client,
    schema: &str,
    table: &str,
) -> Result<Option<i64>, tokio_postgres::Error> {
    let rows = client
        .query(
            "WITH t AS (
                 SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))
             SELECT p.reltuples::float8, p.relpages::int8,
                    pg_relation_size(p.oid) / current_setting('block_size')::int8
             FROM pg_class p
             WHERE p.relkind = 'r'
               AND (p.oid IN (SELECT oid FROM t)
                    OR p.oid IN (SELECT tree.relid FROM t, pg_partition_tree(t.oid) tree))",
            &[&schema, &table],
        )
        .await?;
    if rows.is_empty() {
        // A partitioned table without partitions holds no rows; a missing table, unknown.
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind = 'p'",
                &[&schema, &table],
            )
            .await?
            .is_some();
        return Ok(exists.then_some(0));
    }
    let mut total = 0i64;
    for row in rows {
        match scale(row.get(0), row.get(1), row.get(2)) {
            Some(n) => total += n,
            None => return Ok(None),
        }
    }
    Ok(Some(total))
}

/// `reltuples` and `relpages` from the last VACUUM/ANALYZE, and the pages the table has now.
fn scale(reltuples: f64, relpages: i64, pages_now: i64) -> Option<i64> {
    if pages_now == 0 {
        return Some(0);
    }
    if reltuples < 0.0 || relpages <= 0 {
        // Never analysed, or analysed while empty and filled since: no density to scale.
        return None;
    }
    Some((reltuples / relpages as f64 * pages_now as f64).round() as i64)
}

/// The estimate for each backfill step of the plan, by phase and step index: `start[i]` is
/// `estimates.start[i]`, `None` for a step that is not a backfill or a table without an
/// estimate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanEstimates {
    pub start: Vec<Option<i64>>,
    pub complete: Vec<Option<i64>>,
}

/// Reads the row estimate of every table the plan backfills.
pub async fn plan_estimates(
    client: &Client,
    plan: &Plan,
) -> Result<PlanEstimates, tokio_postgres::Error> {
    let mut out = PlanEstimates::default();
    for (steps, estimates) in [
        (&plan.start, &mut out.start),
        (&plan.complete, &mut out.complete),
    ] {
        for step in steps {
            estimates.push(match &step.action {
                Action::Backfill(b) => estimate_rows(client, &b.schema, &b.table).await?,
                Action::Sql { .. } => None,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::scale;

    #[test]
    fn estimates_scale_the_last_density_to_the_current_size() {
        assert_eq!(scale(1000.0, 10, 10), Some(1000));
        assert_eq!(scale(1000.0, 10, 20), Some(2000));
        assert_eq!(scale(-1.0, 0, 0), Some(0));
        assert_eq!(scale(-1.0, 0, 5), None);
        assert_eq!(scale(0.0, 0, 5), None);
        assert_eq!(scale(0.0, 0, 0), Some(0));
    }
}
