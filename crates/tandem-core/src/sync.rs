//! Sync triggers: one `BEFORE INSERT OR UPDATE` row trigger per changed table, translating
//! writes between the old and the new shape.
//!
//! The trigger runs on every write of a busy table, so its body is lean: the version schema's
//! name is baked in as a literal, nothing is looked up per row, and locals are declared only
//! for the columns that `up`/`down` mention.

use crate::expr::identifiers;
use crate::ident::{bounded_name, dollar_quote, qualified, quote_ident, quote_literal};
use crate::plan::{Lock, Phase, Step, Tx};
use crate::planner::PlanCx;
use crate::schema::{Schema, Table};

/// The value of `tandem.version` under which the backfill writes: the trigger leaves those
/// rows alone because the batch computed `up` itself.
pub const BACKFILL_MARKER: &str = "_tandem_backfill";

#[derive(Debug, Default, Clone)]
pub struct TableSync {
    /// (physical column, `up` in old-shape names), for writes from old versions.
    pub ups: Vec<(String, String)>,
    /// (physical column, `down` in new-shape names), for writes from the new version.
    pub downs: Vec<(String, String)>,
    /// Every write marks the row as done for the backfill, so the backfill never overwrites
    /// what a writer of either version put there.
    pub marks_done: bool,
}

pub fn function_name(physical_table: &str) -> String {
    bounded_name(&["_tandem_sync", physical_table])
}

/// The inheritance children of `table` (at any depth), which, unlike partitions, do not get
/// a copy of the parent's row triggers: each needs the sync trigger of its own, or writes
/// through a child's view would skip `up`/`down`.
pub fn inheritance_children(schema: &Schema, table: &str) -> Vec<String> {
    let mut out = Vec::new();
    let partitioned = schema
        .table_by_physical(table)
        .is_some_and(|t| t.partitioned);
    if partitioned {
        return out;
    }
    let mut pending = vec![table.to_string()];
    while let Some(parent) = pending.pop() {
        for child in schema.children_of(&parent) {
            if !out.contains(&child.physical) && child.physical != table {
                out.push(child.physical.clone());
                pending.push(child.physical.clone());
            }
        }
    }
    out
}

pub fn install_steps(cx: &PlanCx, after: &Schema, table: &str, sync: &TableSync) -> Vec<Step> {
    let name = function_name(table);
    let old_shape = cx.before.table_by_physical(table);
    let new_shape = after.table_by_physical(table);
    let body = function_body(cx.version_schema, old_shape, new_shape, sync);
    let trigger_on = |relation: &str| {
        Step::sql(
            Phase::Start,
            format!("install the sync trigger on {}", quote_ident(relation)),
            format!(
                // The WHEN clause is evaluated without entering PL/pgSQL, so the backfill's
                // own updates (which compute `up` themselves) cost no function call per row.
                "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW \
                 WHEN (current_setting('tandem.version', true) IS DISTINCT FROM {}) EXECUTE FUNCTION {}()",
                quote_ident(&name),
                qualified(cx.base, relation),
                quote_literal(BACKFILL_MARKER),
                qualified(cx.base, &name)
            ),
        )
        .lock(Lock::ShareRowExclusive)
    };
    let mut steps = vec![
        Step::sql(
            Phase::Start,
            format!("create the sync function for {}", quote_ident(table)),
            format!(
                "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}",
                qualified(cx.base, &name),
                dollar_quote(&body)
            ),
        ),
        trigger_on(table),
    ];
    steps.extend(
        inheritance_children(cx.before, table)
            .iter()
            .map(|child| trigger_on(child)),
    );
    steps
}

/// Drops the sync triggers of `table` and of its inheritance children `children`, then the
/// function they share.
pub fn remove_steps(
    base: &str,
    table: &str,
    children: &[String],
    phase: Phase,
    tx: Tx,
) -> Vec<Step> {
    let name = function_name(table);
    let mut steps: Vec<Step> = std::iter::once(table)
        .chain(children.iter().map(String::as_str))
        .map(|relation| {
            Step::sql(
                phase,
                format!("remove the sync trigger from {}", quote_ident(relation)),
                format!(
                    "DROP TRIGGER IF EXISTS {} ON {}",
                    quote_ident(&name),
                    qualified(base, relation)
                ),
            )
            .lock(Lock::AccessExclusive)
            .tx(tx.clone())
        })
        .collect();
    steps.push(
        Step::sql(
            phase,
            format!("drop the sync function of {}", quote_ident(table)),
            format!("DROP FUNCTION IF EXISTS {}()", qualified(base, &name)),
        )
        .tx(tx),
    );
    steps
}

fn function_body(
    version_schema: &str,
    old_shape: Option<&Table>,
    new_shape: Option<&Table>,
    sync: &TableSync,
) -> String {
    let up_locals = locals(old_shape, sync.ups.iter().map(|(_, e)| e.as_str()));
    let down_locals = locals(new_shape, sync.downs.iter().map(|(_, e)| e.as_str()));
    let declare = "DECLARE\n  _tandem_version text := current_setting('tandem.version', true);\n";
    let literal = quote_literal(version_schema);
    let mut body = format!(
        "#variable_conflict use_variable\n{declare}BEGIN\n  IF _tandem_version = {marker} THEN\n    RETURN NEW;\n  END IF;\n{mark}  IF (CASE WHEN _tandem_version IS NULL OR _tandem_version = '' THEN {literal} = ANY (current_schemas(false)) ELSE _tandem_version = {literal} END) THEN\n",
        marker = quote_literal(BACKFILL_MARKER),
        mark = if sync.marks_done { format!("  NEW.{} := true;\n", quote_ident(crate::backfill::DONE_COLUMN)) } else { String::new() },
    );
    body.push_str(&assignments(&down_locals, &sync.downs));
    body.push_str("  ELSE\n");
    body.push_str(&assignments(&up_locals, &sync.ups));
    body.push_str("  END IF;\n  RETURN NEW;\nEND");
    body
}

struct Local {
    /// The variable as `up`/`down` spell it: the column's name in that shape.
    var: String,
    physical: String,
    type_name: String,
}

/// Locals for the columns of `shape` that the expressions mention. They are named after the
/// column so a bare column name in the expression means the row's value.
fn locals<'a>(shape: Option<&Table>, exprs: impl Iterator<Item = &'a str>) -> Vec<Local> {
    let Some(table) = shape else {
        return Vec::new();
    };
    let mentioned: Vec<String> = exprs.flat_map(identifiers).collect();
    table
        .columns
        .iter()
        .filter(|c| mentioned.contains(&c.name))
        .map(|c| Local {
            var: quote_ident(&c.name),
            physical: c.physical.clone(),
            type_name: variable_type(&c.type_name),
        })
        .collect()
}

/// One branch of the trigger: its own block, because the old and the new shape may give one
/// name different types.
fn assignments(locals: &[Local], targets: &[(String, String)]) -> String {
    let mut out = String::new();
    if !locals.is_empty() {
        out.push_str("    DECLARE\n");
        for l in locals {
            out.push_str(&format!("      {} {};\n", l.var, l.type_name));
        }
        out.push_str("    BEGIN\n");
    }
    for l in locals {
        out.push_str(&format!(
            "    {} := NEW.{};\n",
            l.var,
            quote_ident(&l.physical)
        ));
    }
    for (column, expr) in targets {
        out.push_str(&format!("    NEW.{} := ({expr});\n", quote_ident(column)));
    }
    if !locals.is_empty() {
        out.push_str("    END;\n");
    }
    if out.is_empty() {
        out.push_str("    NULL;\n");
    }
    out
}

/// `serial` and friends are column shorthands, not types a variable can have.
pub(crate) fn variable_type(column_type: &str) -> String {
    match column_type.trim().to_ascii_lowercase().as_str() {
        "serial" | "serial4" => "integer".to_string(),
        "bigserial" | "serial8" => "bigint".to_string(),
        "smallserial" | "serial2" => "smallint".to_string(),
        _ => column_type.to_string(),
    }
}
