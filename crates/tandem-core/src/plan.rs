//! A plan is data: the ordered steps of each phase, each carrying its SQL, whether it runs in
//! a transaction, the lock it takes and its hazards. The executor runs it without knowing any
//! operation by name, and `tandem plan` prints it.

use serde::Serialize;

use crate::schema::Schema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Start,
    Complete,
    Rollback,
}

/// The strongest table lock a statement takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Lock {
    None,
    AccessShare,
    RowExclusive,
    ShareUpdateExclusive,
    Share,
    ShareRowExclusive,
    AccessExclusive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Hazard {
    AcquiresAccessExclusiveLock,
    TableRewrite,
    IndexBuild,
    DeletesData,
    Backfill,
    RunsArbitrarySql,
}

/// How a step relates to transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Tx {
    /// In a transaction of its own.
    Own,
    /// Outside any transaction (`CREATE INDEX CONCURRENTLY`).
    None,
    /// Consecutive steps with the same group run in one transaction.
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Sql { sql: String },
    Backfill(Box<Backfill>),
}

/// A keyset-paginated, set-based backfill of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Backfill {
    /// The base schema the table is in.
    pub schema: String,
    pub table: String,
    /// The physical columns the batches fill.
    pub columns: Vec<String>,
    pub key: Vec<String>,
    /// The batch's UPDATE over a range of the table's pages: `$1` and `$2` are the first and
    /// the first-past-the-end row addresses, as text (`'(block,0)'`). The main pass: it reads
    /// the table in physical order, as one UPDATE of the whole table would.
    pub update_blocks: String,
    /// The key `batch size` rows on, as text: `[without, with]` a lower bound (`$1..$n` the
    /// last key done, as text); the offset is the last parameter. No row: the rest is the last
    /// batch.
    pub upper_bound: [String; 2],
    /// The key-range passes are the fallback for tables whose pages the main pass cannot
    /// follow (rewritten while it ran, or with a foreign-table partition).
    /// The batch's UPDATE over a key range, indexed by `lower + 2 * upper` (which bounds it
    /// has); lower-bound parameters come first.
    pub update: [String; 4],
    /// The SET list of every batch (the filled columns, then the done-marker).
    #[serde(skip)]
    pub sets: String,
}

impl Backfill {
    /// [`Backfill::update_blocks`] on one relation that holds some of the table's rows (a
    /// partition, an inheritance child, or an inheritance parent's own rows): `ONLY`, so that
    /// the page range means that relation's pages, and aliased to the table's name, so that
    /// `up` may name the table.
    pub fn update_blocks_of(&self, schema: &str, relation: &str) -> String {
        format!(
            "UPDATE ONLY {} AS {} SET {} WHERE {} IS NOT TRUE AND ctid >= $1::text::tid AND ctid < $2::text::tid",
            crate::ident::qualified(schema, relation),
            crate::ident::quote_ident(&self.table),
            self.sets,
            crate::ident::quote_ident(crate::backfill::DONE_COLUMN)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub phase: Phase,
    /// What the step does, in plain words.
    pub description: String,
    #[serde(flatten)]
    pub action: Action,
    pub tx: Tx,
    pub lock: Lock,
    pub hazards: Vec<Hazard>,
    /// Run after the step fails, before it is retried or the failure reported: e.g. a failed
    /// `CREATE INDEX CONCURRENTLY` leaves an invalid index behind that must be dropped.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<String>,
    /// For a rollback step that is not idempotent (raw `down` SQL): the index of the start
    /// step it undoes. When a start fails midway, such a step runs only if that start step ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undoes_start_step: Option<usize>,
}

impl Step {
    pub fn sql(phase: Phase, description: impl Into<String>, sql: impl Into<String>) -> Self {
        Step {
            phase,
            description: description.into(),
            action: Action::Sql { sql: sql.into() },
            tx: Tx::Own,
            lock: Lock::None,
            hazards: Vec::new(),
            cleanup: None,
            undoes_start_step: None,
        }
    }
    pub fn cleanup(mut self, sql: impl Into<String>) -> Self {
        self.cleanup = Some(sql.into());
        self
    }
    pub fn lock(mut self, lock: Lock) -> Self {
        self.lock = lock;
        if lock == Lock::AccessExclusive
            && !self.hazards.contains(&Hazard::AcquiresAccessExclusiveLock)
        {
            self.hazards.push(Hazard::AcquiresAccessExclusiveLock);
        }
        self
    }
    pub fn hazard(mut self, hazard: Hazard) -> Self {
        if !self.hazards.contains(&hazard) {
            self.hazards.push(hazard);
        }
        self
    }
    pub fn tx(mut self, tx: Tx) -> Self {
        self.tx = tx;
        self
    }
    pub fn sql_text(&self) -> Option<&str> {
        match &self.action {
            Action::Sql { sql } => Some(sql),
            Action::Backfill(_) => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Plan {
    pub migration: String,
    pub schema: String,
    pub version_schema: String,
    pub start: Vec<Step>,
    pub complete: Vec<Step>,
    pub rollback: Vec<Step>,
    /// The schema as the new version sees it once the migration is complete.
    pub schema_after: Schema,
    /// Raw SQL at start may create tables the planner cannot see: the executor re-reads the
    /// schema after the start steps and creates the version schema's views from what it finds.
    pub views_from_live_schema: bool,
    /// Raw SQL at complete may create tables or columns the planner cannot see: after the
    /// complete steps the executor rebuilds the version schema's views from the live schema.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub views_from_live_schema_after_complete: bool,
    /// What rollback cannot undo (raw SQL without `down`), with the operation's pointer.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub irreversible: Vec<Irreversible>,
    /// The tables and columns the contract drops: what depends on them is checked before
    /// anything changes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drops: Vec<crate::dependents::ContractDrop>,
    /// What depends on `drops` in the live database, and what happens to it. The planner does
    /// no I/O: the session fills this in from the catalog.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dependents: Vec<crate::dependents::Dependent>,
}

/// A start step that rollback cannot undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Irreversible {
    pub pointer: String,
    /// The index of the start step in question: it matters only once that step has run.
    pub start_step: usize,
    pub what: String,
}

impl Plan {
    /// What rollback could not undo of a start that ran its first `started` steps.
    pub fn irreversible_after(&self, started: usize) -> Vec<&Irreversible> {
        self.irreversible
            .iter()
            .filter(|i| i.start_step < started)
            .collect()
    }

    /// The rollback steps that undo a start which ran only its first `started` steps.
    pub fn rollback_after_partial_start(&self, started: usize) -> Vec<Step> {
        self.rollback
            .iter()
            .filter(|s| s.undoes_start_step.is_none_or(|i| i < started))
            .cloned()
            .collect()
    }
}
