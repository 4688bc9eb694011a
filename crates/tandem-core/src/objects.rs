//! The objects of a schema besides its tables' columns, constraints and indexes, as `tandem
//! diff` compares them: views, materialized views (and their indexes), functions and
//! aggregates, triggers, types (enums, domains, composite and range types), sequences,
//! partitioning and the extensions the schema needs. Each is one [`Object`] whose
//! `definition` is PostgreSQL's own normalised text (`pg_get_viewdef`, `pg_get_functiondef`,
//! `pg_get_triggerdef`, `format_type`, `pg_get_partkeydef`, `pg_get_expr(relpartbound)`), so
//! comparing two objects is comparing two strings. Read by tandem-pg; no I/O here.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectKind {
    Extension,
    Type,
    Function,
    Aggregate,
    Sequence,
    /// `PARTITION BY …` of a partitioned table (named after the table).
    Partitioning,
    /// A partition's bound (named after the partition; `on` is its parent).
    Partition,
    View,
    MaterializedView,
    /// An index of a materialized view (tables' indexes are compared with the tables).
    MaterializedViewIndex,
    Trigger,
}

impl ObjectKind {
    /// In plain words, as messages name it.
    pub fn words(self) -> &'static str {
        match self {
            ObjectKind::Extension => "extension",
            ObjectKind::Type => "type",
            ObjectKind::Function => "function",
            ObjectKind::Aggregate => "aggregate",
            ObjectKind::Sequence => "sequence",
            ObjectKind::Partitioning => "partitioning of table",
            ObjectKind::Partition => "partition",
            ObjectKind::View => "view",
            ObjectKind::MaterializedView => "materialized view",
            ObjectKind::MaterializedViewIndex => "index",
            ObjectKind::Trigger => "trigger",
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.words())
    }
}

/// One object. Two objects are the same object when kind, name and `on` are equal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Object {
    pub kind: ObjectKind,
    /// The name; a function's carries its argument types (`add(integer, integer)`).
    pub name: String,
    /// The table (or view) a trigger or index is on, the parent of a partition.
    pub on: Option<String>,
    /// What is compared.
    pub definition: String,
}

/// The objects of one schema, in any order.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Objects {
    /// The schema's name: definitions are compared without it.
    pub schema: String,
    pub objects: Vec<Object>,
}

impl Object {
    /// The key objects are matched by.
    pub fn key(&self) -> (ObjectKind, &str, Option<&str>) {
        (self.kind, &self.name, self.on.as_deref())
    }
}

/// An extension the schema's objects need (or that lives in the schema): the baseline creates
/// it first, since `pg_dump --schema` leaves extensions out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub name: String,
    /// The schema its objects live in.
    pub schema: String,
}
