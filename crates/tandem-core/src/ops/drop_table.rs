//! `drop_table`: soft until complete. At start the table is renamed aside (freeing its name;
//! old versions' views follow it, since views bind to the table, not its name), at complete
//! it is dropped, and rollback renames it back.

use crate::ident::{bounded_name, qualified, quote_ident};
use crate::migration::DropTable;
use crate::ops::{unknown_table, Op};
use crate::plan::{Hazard, Lock, Phase, Step};
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

impl Op for DropTable {
    fn check(&self, schema: &Schema) -> Vec<Problem> {
        if schema.table(&self.name).is_none() {
            return vec![unknown_table("/name", &self.name, schema)];
        }
        Vec::new()
    }

    fn plan(&self, schema: &mut Schema, cx: &mut PlanCx) {
        let Some(position) = schema.tables.iter().position(|t| t.name == self.name) else {
            return;
        };
        let table = schema.tables.remove(position);
        let aside = bounded_name(&["_tandem_del", &table.physical]);
        cx.physical_table_set_aside(&table.physical);
        // A partitioned table's partitions go with it: the new version shows none of them.
        // (An inheritance child would not, and is refused as something that depends on it.)
        if table.partitioned {
            let mut gone = vec![table.physical.clone()];
            while let Some(parent) = gone.pop() {
                let partitions: Vec<String> = schema
                    .children_of(&parent)
                    .map(|t| t.physical.clone())
                    .collect();
                for partition in partitions {
                    schema.tables.retain(|t| t.physical != partition);
                    cx.physical_table_set_aside(&partition);
                    gone.push(partition);
                }
            }
        }
        cx.contract_drops_table(&table.physical, &aside);
        cx.start(
            Step::sql(
                Phase::Start,
                format!(
                    "set table {} aside as {}",
                    quote_ident(&table.physical),
                    quote_ident(&aside)
                ),
                format!(
                    "ALTER TABLE {} RENAME TO {}",
                    qualified(cx.base, &table.physical),
                    quote_ident(&aside)
                ),
            )
            .lock(Lock::AccessExclusive),
        );
        cx.complete_after(
            Step::sql(
                Phase::Complete,
                format!("drop table {}", quote_ident(&self.name)),
                format!("DROP TABLE IF EXISTS {}", qualified(cx.base, &aside)),
            )
            .lock(Lock::AccessExclusive)
            .hazard(Hazard::DeletesData),
        );
        cx.rollback(
            Step::sql(
                Phase::Rollback,
                format!("restore table {}", quote_ident(&table.physical)),
                format!(
                    "ALTER TABLE IF EXISTS {} RENAME TO {}",
                    qualified(cx.base, &aside),
                    quote_ident(&table.physical)
                ),
            )
            .lock(Lock::AccessExclusive),
        );
    }
}
