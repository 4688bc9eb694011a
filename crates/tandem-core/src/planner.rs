//! The planner: (schema, migration) in, [`Plan`] out. Pure: no I/O.

use std::collections::BTreeMap;

use crate::ident::{qualified, quote_ident};
use crate::migration::{Migration, Operation};
use crate::ops::op_for;
use crate::plan::{Action, Hazard, Lock, Phase, Plan, Step, Tx};
use crate::problem::{pointer_token, Problem};
use crate::schema::Schema;
use crate::{backfill, sync, views};

pub struct PlanInput<'a> {
    /// The live schema before the migration (no migration in flight: logical = physical).
    pub schema: &'a Schema,
    pub migration: &'a Migration,
    /// The version schema of the previous, completed migration, dropped at complete.
    pub previous_version_schema: Option<&'a str>,
}

/// What operations contribute while they are planned. The planner assembles it into phases.
pub struct PlanCx<'a> {
    pub base: &'a str,
    pub version_schema: &'a str,
    /// The schema before the migration: the shape old clients see.
    pub before: &'a Schema,
    pub(crate) pointer: String,
    pub(crate) start: Vec<Step>,
    pub(crate) after_sync: Vec<Step>,
    pub(crate) rollback: Vec<Vec<Step>>,
    pub(crate) validate: Vec<Step>,
    /// Per physical table: steps run inside that table's contract transaction, after its
    /// columns have their final names.
    pub(crate) contract: BTreeMap<String, Vec<Step>>,
    pub(crate) complete_after: Vec<Step>,
    pub(crate) sync: BTreeMap<String, sync::TableSync>,
    pub(crate) backfills: BTreeMap<String, backfill::Request>,
    pub(crate) views_from_live_schema: bool,
    pub(crate) views_from_live_schema_after_complete: bool,
    pub(crate) irreversible: Vec<crate::plan::Irreversible>,
    pub(crate) problems: Vec<Problem>,
    /// The base tables and their columns as they physically are once start has run: the
    /// contract drops what the new version no longer shows and renames the rest into place.
    pub(crate) physical: BTreeMap<String, Vec<String>>,
    pub(crate) created: std::collections::BTreeSet<String>,
    /// (physical table, shadow column) pairs created by this migration.
    pub(crate) shadows: std::collections::BTreeSet<(String, String)>,
    /// shadow → original column, per physical table.
    pub(crate) shadow_origins: BTreeMap<(String, String), String>,
    /// (physical table, constraint or index) not to carry over onto shadows.
    pub(crate) skip_copies: std::collections::BTreeSet<(String, String)>,
    /// Whether each shadow ends up NOT NULL; decided once every operation has had its say.
    pub(crate) shadow_not_null: BTreeMap<(String, String), bool>,
    /// Per physical table (as it was before the migration): the pointer of the first
    /// operation that changed it.
    pub(crate) table_pointers: BTreeMap<String, String>,
    /// Tables the contract drops whole: (physical name before, name set aside at start).
    pub(crate) dropped_tables: Vec<(String, String)>,
    /// (physical table, physical column) whose default, carried over a type change, is
    /// skipped where it does not fit the new type (on the table and on the view alike).
    pub(crate) tolerant_defaults: std::collections::BTreeSet<(String, String)>,
    /// Contract steps on one column: (physical table, physical column, step), kept unless a
    /// later operation replaces that column by a shadow (which is created as the step would
    /// leave the column, and the old column is gone when the contract runs).
    pub(crate) column_contract: Vec<(String, String, Step)>,
}

impl PlanCx<'_> {
    pub fn start(&mut self, step: Step) {
        self.start.push(step);
    }
    /// A start step that must wait for the sync triggers: a constraint or index over a column
    /// the triggers fill, which old-version writes would otherwise violate in between.
    pub fn start_after_sync(&mut self, step: Step) {
        self.after_sync.push(step);
    }
    /// Rolls back the start step pushed last; runs only if that step ran.
    pub fn rollback_of_last_start(&mut self, mut step: Step) {
        step.undoes_start_step = self.start.len().checked_sub(1);
        self.rollback(step);
    }
    pub fn rollback(&mut self, step: Step) {
        if let Some(current) = self.rollback.last_mut() {
            current.push(step);
        }
    }
    pub fn validate_on_complete(&mut self, step: Step) {
        self.validate.push(step);
    }
    /// A step for the contract transaction of `physical_table`.
    pub fn contract(&mut self, physical_table: &str, step: Step) {
        self.contract
            .entry(physical_table.to_string())
            .or_default()
            .push(step);
    }
    pub fn complete_after(&mut self, step: Step) {
        self.complete_after.push(step);
    }
    /// Records that complete drops `physical_table`, set aside at start as `aside`.
    pub fn contract_drops_table(&mut self, physical_table: &str, aside: &str) {
        self.dropped_tables
            .push((physical_table.to_string(), aside.to_string()));
    }
    /// Old-version writes to `physical_table` set `column` to `up` (old-shape names).
    pub fn sync_up(&mut self, physical_table: &str, column: &str, up: &str) {
        // No old version can see a table this migration creates, and it starts empty.
        if self.created_here(physical_table) {
            return;
        }
        let ups = &mut self.sync.entry(physical_table.to_string()).or_default().ups;
        set_assignment(ups, column, up);
    }
    /// New-version writes to `physical_table` set `column` to `down` (new-shape names).
    pub fn sync_down(&mut self, physical_table: &str, column: &str, down: &str) {
        // No old version can see a table this migration creates, and it starts empty.
        if self.created_here(physical_table) {
            return;
        }
        let downs = &mut self
            .sync
            .entry(physical_table.to_string())
            .or_default()
            .downs;
        set_assignment(downs, column, down);
    }
    /// The `up` old-version writes give `column` of `physical_table` so far, if any.
    pub fn sync_up_of(&self, physical_table: &str, column: &str) -> Option<String> {
        self.sync
            .get(physical_table)?
            .ups
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, e)| e.clone())
    }
    /// The `up` the backfill gives `column` of `physical_table` so far, if any.
    pub fn backfill_of(&self, physical_table: &str, column: &str) -> Option<String> {
        self.backfills
            .get(physical_table)?
            .assignments
            .iter()
            .find(|(c, _)| c == column)
            .map(|(_, e)| e.clone())
    }
    /// Existing rows of `physical_table` get `column = up`, in the table's one backfill pass.
    pub fn backfill(&mut self, physical_table: &str, column: &str, up: &str) {
        // No old version can see a table this migration creates, and it starts empty.
        if self.created_here(physical_table) {
            return;
        }
        let pointer = self.pointer.clone();
        let request = self
            .backfills
            .entry(physical_table.to_string())
            .or_insert_with(|| backfill::Request {
                pointer,
                assignments: Vec::new(),
            });
        set_assignment(&mut request.assignments, column, up);
    }
    /// Records a table that start creates.
    pub fn physical_table_created(&mut self, table: &str, columns: Vec<String>) {
        self.physical.insert(table.to_string(), columns);
        self.created.insert(table.to_string());
    }
    /// Whether start creates this table: no old version can see it, so changes to it need no
    /// shadow columns.
    pub fn created_here(&self, physical_table: &str) -> bool {
        self.created.contains(physical_table)
    }
    /// Records a table that start sets aside (it is dropped by the operation's own steps).
    pub fn physical_table_set_aside(&mut self, table: &str) {
        self.physical.remove(table);
    }
    pub fn physical_column_added(&mut self, table: &str, column: &str) {
        self.physical
            .entry(table.to_string())
            .or_default()
            .push(column.to_string());
    }
    pub fn has_physical_column(&self, table: &str, column: &str) -> bool {
        self.physical
            .get(table)
            .is_some_and(|cols| cols.iter().any(|c| c == column))
    }
    pub(crate) fn shadow_created(&mut self, table: &str, original: &str, shadow: &str) {
        self.shadows.insert((table.to_string(), shadow.to_string()));
        self.shadow_origins.insert(
            (table.to_string(), shadow.to_string()),
            original.to_string(),
        );
    }
    pub(crate) fn skip_copy(&mut self, table: &str, name: &str) {
        self.skip_copies
            .insert((table.to_string(), name.to_string()));
    }
    pub(crate) fn skipped_copies(&self, table: &str) -> Vec<String> {
        self.skip_copies
            .iter()
            .filter(|(t, _)| t == table)
            .map(|(_, n)| n.clone())
            .collect()
    }
    /// (original, shadow) column pairs per physical table.
    pub(crate) fn shadows_by_table(&self) -> BTreeMap<String, Vec<(String, String)>> {
        let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for ((table, shadow), original) in &self.shadow_origins {
            out.entry(table.clone())
                .or_default()
                .push((original.clone(), shadow.clone()));
        }
        out
    }
    pub(crate) fn shadow_origin(&self, table: &str, shadow: &str) -> String {
        self.shadow_origins
            .get(&(table.to_string(), shadow.to_string()))
            .cloned()
            .unwrap_or_default()
    }
    /// A contract step that changes `column` of `physical_table` in place.
    pub fn contract_on_column(&mut self, physical_table: &str, column: &str, step: Step) {
        self.column_contract
            .push((physical_table.to_string(), column.to_string(), step));
    }
    pub(crate) fn tolerant_default(&mut self, table: &str, column: &str) {
        self.tolerant_defaults
            .insert((table.to_string(), column.to_string()));
    }
    pub fn views_from_live_schema(&mut self) {
        self.views_from_live_schema = true;
    }
    /// Raw SQL at complete: the version schema's views are rebuilt from the live schema after.
    pub fn views_from_live_schema_after_complete(&mut self) {
        self.views_from_live_schema_after_complete = true;
    }
    /// The start step pushed last cannot be undone by rollback.
    pub fn irreversible_last_start(&mut self, what: impl Into<String>) {
        self.irreversible.push(crate::plan::Irreversible {
            pointer: self.pointer.clone(),
            start_step: self.start.len().saturating_sub(1),
            what: what.into(),
        });
    }
    /// Whether `column` of `physical_table` was added by an earlier operation of this migration
    /// (a brand-new column no old version sees, rather than one that needs a shadow).
    pub fn added_here(&self, physical_table: &str, column: &str) -> bool {
        let existed = self
            .before
            .table_by_physical(physical_table)
            .is_some_and(|t| t.column_by_physical(column).is_some());
        !existed
            && !self
                .shadows
                .contains(&(physical_table.to_string(), column.to_string()))
    }
    /// An `up` written against the table as earlier operations of this migration left it,
    /// rewritten to the old row's names, which are what the trigger and the backfill see.
    pub fn up_in_old_names(&self, table: &crate::schema::Table, up: &str) -> String {
        let Some(old) = self.before.table_by_physical(&table.physical) else {
            return up.to_string();
        };
        // A shadowed column's old name is that of the column it shadows.
        let old_name = |physical: &str| {
            let key = (table.physical.clone(), physical.to_string());
            match self.shadow_origins.get(&key) {
                Some(original) => Some(original.clone()),
                None => old.column_by_physical(physical).map(|c| c.name.clone()),
            }
        };
        let renames: Vec<(String, String)> = table
            .columns
            .iter()
            .filter_map(|c| {
                old_name(&c.physical)
                    .filter(|o| *o != c.name)
                    .map(|o| (c.name.clone(), o))
            })
            .collect();
        if renames.is_empty() {
            up.to_string()
        } else {
            crate::expr::rename_column_refs_all(up, &renames)
        }
    }
    /// A problem found while planning, relative to the current operation.
    pub fn problem(&mut self, problem: Problem) {
        let p = problem.under(&self.pointer);
        self.problems.push(p);
    }
}

/// A later assignment to the same column replaces the earlier one.
fn set_assignment(list: &mut Vec<(String, String)>, column: &str, expr: &str) {
    match list.iter_mut().find(|(c, _)| c == column) {
        Some(entry) => entry.1 = expr.to_string(),
        None => list.push((column.to_string(), expr.to_string())),
    }
}

/// Plans `input.migration`, or returns every problem found (pointers from the file's root).
pub fn plan(input: &PlanInput) -> Result<Plan, Vec<Problem>> {
    let base = input.schema.name.as_str();
    let version_schema = input.migration.version_schema_name(base);
    let mut cx = PlanCx {
        base,
        version_schema: &version_schema,
        before: input.schema,
        pointer: String::new(),
        start: Vec::new(),
        after_sync: Vec::new(),
        rollback: Vec::new(),
        validate: Vec::new(),
        contract: BTreeMap::new(),
        complete_after: Vec::new(),
        sync: BTreeMap::new(),
        backfills: BTreeMap::new(),
        views_from_live_schema: false,
        views_from_live_schema_after_complete: false,
        irreversible: Vec::new(),
        problems: isolation_problems(input.migration)
            .into_iter()
            .chain(version_schema_problem(input.migration, &version_schema))
            .collect(),
        physical: input
            .schema
            .tables
            .iter()
            .map(|t| {
                (
                    t.physical.clone(),
                    t.columns.iter().map(|c| c.physical.clone()).collect(),
                )
            })
            .collect(),
        created: Default::default(),
        shadows: Default::default(),
        shadow_origins: BTreeMap::new(),
        skip_copies: Default::default(),
        shadow_not_null: BTreeMap::new(),
        table_pointers: BTreeMap::new(),
        dropped_tables: Vec::new(),
        tolerant_defaults: Default::default(),
        column_contract: Vec::new(),
    };
    let mut schema = input.schema.clone();
    for (i, operation) in input.migration.operations.iter().enumerate() {
        let op = op_for(operation);
        cx.pointer = format!("/operations/{i}/{}", pointer_token(operation.key()));
        if let Some(t) = operation_table(operation).and_then(|name| schema.table(name)) {
            cx.table_pointers
                .entry(t.physical.clone())
                .or_insert_with(|| cx.pointer.clone());
        }
        let found = op.check(&schema);
        if !found.is_empty() {
            let prefix = cx.pointer.clone();
            cx.problems
                .extend(found.into_iter().map(|p| p.under(&prefix)));
            continue;
        }
        cx.rollback.push(Vec::new());
        op.plan(&mut schema, &mut cx);
    }
    for (table, column, step) in std::mem::take(&mut cx.column_contract) {
        let replaced = cx
            .shadow_origins
            .iter()
            .any(|((t, _), origin)| *t == table && *origin == column);
        if !replaced {
            cx.contract(&table, step);
        }
    }
    crate::ops::copy_onto_shadows(&mut cx, &schema);
    crate::partitions::follow_parents(&cx, &mut schema);

    let start = start_steps(&mut cx, &schema);
    if !cx.problems.is_empty() {
        return Err(cx.problems);
    }
    let drops = contract_drops(&cx, &schema);
    Ok(Plan {
        migration: input.migration.name.clone(),
        schema: base.to_string(),
        version_schema: version_schema.clone(),
        rollback: rollback_steps(&cx),
        complete: complete_steps(&cx, &schema, input.previous_version_schema),
        start,
        schema_after: schema,
        views_from_live_schema: cx.views_from_live_schema,
        views_from_live_schema_after_complete: cx.views_from_live_schema_after_complete,
        irreversible: cx.irreversible.clone(),
        drops,
        dependents: Vec::new(),
    })
}

/// The table an operation changes, by the name it has when the operation runs.
fn operation_table(operation: &Operation) -> Option<&str> {
    Some(match operation {
        Operation::AddColumn(o) => &o.table,
        Operation::AlterColumn(o) => &o.table,
        Operation::RenameColumn(o) => &o.table,
        Operation::DropColumn(o) => &o.table,
        Operation::RenameTable(o) => &o.from,
        Operation::DropTable(o) => &o.name,
        Operation::CreateIndex(o) => &o.table,
        Operation::CreateConstraint(o) => &o.table,
        Operation::DropConstraint(o) => &o.table,
        Operation::DropMulticolumnConstraint(o) => &o.table,
        Operation::RenameConstraint(o) => &o.table,
        Operation::CreateTable(_)
        | Operation::Sql(_)
        | Operation::DropIndex(_)
        | Operation::SetReplicaIdentity(_) => return None,
    })
}

/// What the contract does to the columns of one table that existed before the migration.
struct TableContract {
    /// Columns it inherits: they change with its parent's, in the parent's contract.
    inherited: std::collections::BTreeSet<String>,
    /// Physical columns the new version no longer shows, dropped by the contract.
    dropped: Vec<String>,
    /// (original, shadow) for the dropped columns a shadow replaces.
    replaced: Vec<(String, String)>,
}

impl TableContract {
    fn of(cx: &PlanCx, after: &Schema, physical: &str, columns: &[String]) -> Option<Self> {
        let after_table = after.table_by_physical(physical)?;
        let inherited = crate::partitions::inherited_columns(cx, after, after_table);
        let dropped: Vec<String> = columns
            .iter()
            .filter(|c| !inherited.contains(*c))
            .filter(|c| after_table.column_by_physical(c).is_none())
            .cloned()
            .collect();
        let replaced = cx
            .shadows_by_table()
            .remove(physical)
            .unwrap_or_default()
            .into_iter()
            .filter(|(original, _)| dropped.contains(original))
            .collect();
        Some(TableContract {
            inherited,
            dropped,
            replaced,
        })
    }
}

/// What the contract drops: columns the new version no longer shows (a dropped column, or one
/// replaced by its shadow) and tables dropped whole, with the column names that disappear.
fn contract_drops(cx: &PlanCx, after: &Schema) -> Vec<crate::dependents::ContractDrop> {
    let mut drops = Vec::new();
    for (physical, columns) in &cx.physical {
        let (Some(contract), Some(before_table), Some(after_table)) = (
            TableContract::of(cx, after, physical, columns),
            cx.before.table_by_physical(physical),
            after.table_by_physical(physical),
        ) else {
            continue;
        };
        // tandem's marker column and shadows are tandem's own: nothing else can use them.
        let dropped: Vec<String> = contract
            .dropped
            .into_iter()
            .filter(|c| before_table.column_by_physical(c).is_some())
            .collect();
        let vanishing: Vec<String> = before_table
            .columns
            .iter()
            .filter(|c| !contract.inherited.contains(&c.physical))
            .filter(|c| after_table.column(&c.name).is_none())
            .map(|c| c.name.clone())
            .collect();
        if dropped.is_empty() && vanishing.is_empty() {
            continue;
        }
        drops.push(crate::dependents::ContractDrop {
            pointer: cx.table_pointers.get(physical).cloned().unwrap_or_default(),
            table: physical.clone(),
            aside: None,
            columns: dropped,
            replaced: contract.replaced.into_iter().map(|(o, _)| o).collect(),
            vanishing,
        });
    }
    for (physical, aside) in &cx.dropped_tables {
        drops.push(crate::dependents::ContractDrop {
            pointer: cx.table_pointers.get(physical).cloned().unwrap_or_default(),
            table: physical.clone(),
            aside: Some(aside.clone()),
            columns: Vec::new(),
            replaced: Vec::new(),
            vanishing: Vec::new(),
        });
    }
    drops
}

/// The version schema's name, `<schema>_<version>`, must fit PostgreSQL's 63 bytes: a longer
/// one would be truncated silently, and two versions could then share a schema.
fn version_schema_problem(migration: &Migration, version_schema: &str) -> Option<Problem> {
    if version_schema.len() <= crate::ident::MAX_IDENT_BYTES {
        return None;
    }
    let pointer = if migration.version_schema.is_some() {
        "/version_schema"
    } else {
        ""
    };
    Some(
        Problem::new(
            pointer,
            format!(
                "the version schema name \"{version_schema}\" is {} bytes; PostgreSQL names are \
                 at most {} bytes",
                version_schema.len(),
                crate::ident::MAX_IDENT_BYTES
            ),
        )
        .with_hint("set \"version_schema\" to a shorter name (the schema name and `_` are put in front of it)"),
    )
}

/// Raw SQL run at start can change anything, so (as in pgroll) it must be alone.
fn isolation_problems(migration: &Migration) -> Vec<Problem> {
    if migration.operations.len() < 2 {
        return Vec::new();
    }
    migration
        .operations
        .iter()
        .enumerate()
        .filter(|(_, op)| matches!(op, Operation::Sql(s) if !s.on_complete.unwrap_or(false)))
        .map(|(i, _)| {
            Problem::new(
                format!("/operations/{i}/sql"),
                "a `sql` operation that runs at start must be the only operation of its migration",
            )
            .with_hint("move it into a migration of its own, or set `onComplete: true`")
        })
        .collect()
}

fn start_steps(cx: &mut PlanCx, after: &Schema) -> Vec<Step> {
    let mut steps = std::mem::take(&mut cx.start);
    let backfilled: Vec<String> = cx.backfills.keys().cloned().collect();
    for table in &backfilled {
        steps.push(backfill::add_marker_step(cx.base, table));
        cx.physical_column_added(table, backfill::DONE_COLUMN);
        cx.sync.entry(table.clone()).or_default().marks_done = true;
    }
    for (table, table_sync) in &cx.sync {
        steps.extend(sync::install_steps(cx, after, table, table_sync));
    }
    steps.append(&mut cx.after_sync);
    let requests = std::mem::take(&mut cx.backfills);
    for (table, request) in &requests {
        match backfill::plan(cx.base, cx.before, table, request) {
            Ok(b) => steps.push(Step {
                phase: Phase::Start,
                description: format!("backfill existing rows of {}", quote_ident(table)),
                action: Action::Backfill(Box::new(b)),
                tx: Tx::Own,
                lock: Lock::RowExclusive,
                hazards: vec![Hazard::Backfill],
                cleanup: None,
                undoes_start_step: None,
            }),
            Err(p) => cx.problems.push(p),
        }
    }
    cx.backfills = requests;
    if !cx.views_from_live_schema {
        steps.extend(views::create_version_schema_with(
            after,
            cx.version_schema,
            &cx.tolerant_defaults,
        ));
        steps.extend(views::dropped_default_steps(
            cx.before,
            after,
            cx.version_schema,
        ));
    }
    steps
}

/// The version schema goes first; then what must run outside a transaction (concurrent index
/// drops); then everything else in one transaction, so that old-version writers never see the
/// triggers gone while a constraint over a trigger-filled column is still there.
fn rollback_steps(cx: &PlanCx) -> Vec<Step> {
    let mut undo = Vec::new();
    for table in cx.sync.keys() {
        let children = sync::inheritance_children(cx.before, table);
        undo.extend(sync::remove_steps(
            cx.base,
            table,
            &children,
            Phase::Rollback,
            Tx::Own,
        ));
    }
    for table in cx.backfills.keys() {
        undo.push(backfill::drop_marker_step(cx.base, table));
    }
    for op_steps in cx.rollback.iter().rev() {
        undo.extend(op_steps.iter().cloned());
    }
    let (outside, inside): (Vec<Step>, Vec<Step>) =
        undo.into_iter().partition(|s| s.tx == Tx::None);
    let group = Tx::Group("rollback".into());
    let mut steps = vec![views::drop_version_schema(
        cx.version_schema,
        Phase::Rollback,
    )];
    steps.extend(outside);
    steps.extend(inside.into_iter().map(|s| s.tx(group.clone())));
    steps
}

fn complete_steps(cx: &PlanCx, after: &Schema, previous: Option<&str>) -> Vec<Step> {
    let mut steps = cx.validate.clone();
    let version_schemas: Vec<String> = std::iter::once(cx.version_schema)
        .chain(previous)
        .map(str::to_string)
        .collect();
    // Materialized views over swapped columns get their replacement built beside them while
    // both versions still run: the contract only puts it in place.
    for (physical, pairs) in cx.shadows_by_table() {
        if cx.created_here(&physical) || after.table_by_physical(&physical).is_none() {
            continue;
        }
        let originals: Vec<String> = pairs.iter().map(|(o, _)| o.clone()).collect();
        steps.push(crate::dependents::prepare_matview_replacements_step(
            cx.base,
            &physical,
            &pairs,
            &version_schemas,
        ));
        steps.push(crate::dependents::fill_matview_replacements_step(
            cx.base,
            &physical,
            &originals,
            &version_schemas,
        ));
    }
    if let Some(previous) = previous {
        steps.push(views::drop_version_schema(previous, Phase::Complete));
    }
    for (physical, columns) in &cx.physical {
        let (Some(after_table), Some(contract)) = (
            after.table_by_physical(physical),
            TableContract::of(cx, after, physical, columns),
        ) else {
            continue;
        };
        let group = Tx::Group(format!("contract {physical}"));
        let TableContract {
            inherited,
            dropped,
            replaced,
        } = contract;
        let mut table_steps = Vec::new();
        if cx.sync.contains_key(physical) {
            table_steps.extend(sync::remove_steps(
                cx.base,
                physical,
                &sync::inheritance_children(cx.before, physical),
                Phase::Complete,
                group.clone(),
            ));
        }
        let carries_views = !replaced.is_empty();
        if carries_views {
            table_steps.push(crate::dependents::save_and_drop_views_step(
                cx.base,
                physical,
                &replaced,
                &version_schemas,
                &group,
            ));
        }
        table_steps.extend(drop_hidden_columns(cx.base, physical, &dropped, &group));
        // Operation steps name columns physically, so they run before the renames.
        if let Some(extra) = cx.contract.get(physical) {
            table_steps.extend(extra.iter().cloned().map(|s| s.tx(group.clone())));
        }
        let (shadows_back, renames) = column_renames(cx, physical, after_table, &inherited);
        table_steps.extend(rename_columns(cx.base, physical, &shadows_back, &group));
        // The saved definitions name the columns as they were: each shadow now has the name
        // of the column it replaces, and the other renames are still to come (views follow
        // those by themselves).
        if carries_views {
            table_steps.push(crate::dependents::recreate_views_step(physical, &group));
        }
        table_steps.extend(rename_columns(cx.base, physical, &renames, &group));
        if after_table.name != after_table.physical {
            table_steps.push(
                Step::sql(
                    Phase::Complete,
                    format!(
                        "rename table {} to {}",
                        quote_ident(&after_table.physical),
                        quote_ident(&after_table.name)
                    ),
                    format!(
                        "ALTER TABLE {} RENAME TO {}",
                        qualified(cx.base, &after_table.physical),
                        quote_ident(&after_table.name)
                    ),
                )
                .lock(Lock::AccessExclusive)
                .tx(group.clone()),
            );
        }
        steps.extend(table_steps);
    }
    steps.extend(cx.complete_after.iter().cloned());
    steps
}

/// Drops the physical columns the new version no longer shows.
fn drop_hidden_columns(base: &str, physical: &str, dropped: &[String], group: &Tx) -> Vec<Step> {
    let table = qualified(base, physical);
    dropped
        .iter()
        .map(|column| {
            Step::sql(
                Phase::Complete,
                format!(
                    "drop column {} of {}",
                    quote_ident(column),
                    quote_ident(physical)
                ),
                format!("ALTER TABLE {table} DROP COLUMN {}", quote_ident(column)),
            )
            .lock(Lock::AccessExclusive)
            .hazard(Hazard::DeletesData)
            .tx(group.clone())
        })
        .collect()
}

/// The renames that give every column its final name, in two rounds: first each shadow
/// takes the name of the column it replaces (free once that column is dropped), then every
/// column whose name still differs from its final one is renamed, through temporary names
/// when two renames would collide. Inherited columns are renamed on the parent.
#[allow(clippy::type_complexity)]
fn column_renames(
    cx: &PlanCx,
    physical: &str,
    after: &crate::schema::Table,
    inherited: &std::collections::BTreeSet<String>,
) -> (Vec<(String, String)>, Vec<(String, String)>) {
    let mut shadows_back = Vec::new();
    // (current name after the first round, final name)
    let mut pending: Vec<(String, String)> = Vec::new();
    for c in after
        .columns
        .iter()
        .filter(|c| !inherited.contains(&c.physical))
    {
        let origin = cx
            .shadow_origins
            .get(&(physical.to_string(), c.physical.clone()));
        let current = match origin {
            Some(origin) if *origin != c.physical => {
                shadows_back.push((c.physical.clone(), origin.clone()));
                origin.clone()
            }
            _ => c.physical.clone(),
        };
        if current != c.name {
            pending.push((current, c.name.clone()));
        }
    }
    let collides = pending
        .iter()
        .any(|(_, to)| pending.iter().any(|(from, _)| from == to));
    let renames = if collides {
        let temps: Vec<String> = (0..pending.len())
            .map(|i| format!("_tandem_tmp_{i}"))
            .collect();
        pending
            .iter()
            .zip(&temps)
            .map(|((from, _), tmp)| (from.clone(), tmp.clone()))
            .chain(
                pending
                    .iter()
                    .zip(&temps)
                    .map(|((_, to), tmp)| (tmp.clone(), to.clone())),
            )
            .collect()
    } else {
        pending
    };
    (shadows_back, renames)
}

fn rename_columns(
    base: &str,
    physical: &str,
    renames: &[(String, String)],
    group: &Tx,
) -> Vec<Step> {
    let table = qualified(base, physical);
    renames
        .iter()
        .map(|(from, to)| {
            Step::sql(
                Phase::Complete,
                format!(
                    "rename column {} of {} to {}",
                    quote_ident(from),
                    quote_ident(physical),
                    quote_ident(to)
                ),
                format!(
                    "ALTER TABLE {table} RENAME COLUMN {} TO {}",
                    quote_ident(from),
                    quote_ident(to)
                ),
            )
            .lock(Lock::AccessExclusive)
            .tx(group.clone())
        })
        .collect()
}
