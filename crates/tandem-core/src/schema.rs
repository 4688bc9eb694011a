//! The schema model: what introspection reads from PostgreSQL and what the planner evolves.
//!
//! Each table and column has a logical `name` (what a version's views show) and a `physical`
//! name (what the base table really has). Outside a migration the two are equal; during one,
//! the planner's virtual schema maps the new version's names onto the physical objects.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    /// The base schema's name, e.g. `public`.
    pub name: String,
    pub tables: Vec<Table>,
    /// Roles other than the one tandem runs as that have `USAGE` on the base schema
    /// (`public` stands for PUBLIC): each version schema grants them `USAGE` too.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<String>,
    /// What `ALTER DEFAULT PRIVILEGES` grants on a table that tandem's role creates in the
    /// base schema: a table created by a migration, and its view, get these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub default_grants: Vec<Grant>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub physical: String,
    pub columns: Vec<Column>,
    /// Primary-key columns (logical names), in key order.
    pub primary_key: Vec<String>,
    pub constraints: Vec<Constraint>,
    pub indexes: Vec<Index>,
    pub comment: Option<String>,
    /// `REPLICA IDENTITY`; `None` is `DEFAULT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_identity: Option<ReplicaIdentity>,
    /// Table privileges held by roles other than the one tandem runs as (which owns the
    /// views it creates); each version's view of the table gets the same.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<Grant>,
    /// For a partition or an inheritance child: its parent's physical name (in the same
    /// schema). Columns it inherits change with the parent's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// A partitioned table (`PARTITION BY`): it holds no rows of its own, and an index on it
    /// cannot be built `CONCURRENTLY`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partitioned: bool,
}

/// One table privilege of one role, as `aclexplode` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// The role's name; `public` stands for PUBLIC (no role can be called that).
    pub grantee: String,
    /// `SELECT`, `INSERT`, `UPDATE`, `DELETE`, `TRUNCATE`, `REFERENCES`, `TRIGGER`, `MAINTAIN`.
    pub privilege: String,
    /// `WITH GRANT OPTION`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub grantable: bool,
}

/// A table's replica identity other than `DEFAULT`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ReplicaIdentity {
    Full,
    Nothing,
    /// `USING INDEX`: the index's name.
    Index {
        index: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub physical: String,
    /// As `format_type` prints it, e.g. `character varying(255)`.
    pub type_name: String,
    pub nullable: bool,
    /// The default expression as `pg_get_expr` prints it.
    pub default: Option<String>,
    /// `ALWAYS` or `BY DEFAULT` for identity columns.
    pub identity: Option<String>,
    /// The expression of a `GENERATED ALWAYS AS (...) STORED` column.
    pub generated: Option<String>,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    Check,
    ForeignKey,
    Exclude,
    /// A constraint trigger or anything else tandem does not model.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Constraint {
    pub name: String,
    pub kind: ConstraintKind,
    /// Columns the constraint covers (logical names), in order.
    pub columns: Vec<String>,
    /// As `pg_get_constraintdef` prints it.
    pub definition: String,
    pub validated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    pub name: String,
    /// Key columns (logical names); empty entries stand for expressions.
    pub columns: Vec<String>,
    pub unique: bool,
    pub primary: bool,
    /// As `pg_get_indexdef` prints it.
    pub definition: String,
    /// The constraint this index backs, if any.
    pub constraint: Option<String>,
}

impl Schema {
    pub fn table(&self, name: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }
    pub fn table_mut(&mut self, name: &str) -> Option<&mut Table> {
        self.tables.iter_mut().find(|t| t.name == name)
    }
    /// The table whose physical (base) name is `physical`, whatever the version calls it.
    pub fn table_by_physical(&self, physical: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.physical == physical)
    }
    /// The partitions (or inheritance children) of the table whose physical name is given.
    pub fn children_of<'a>(&'a self, physical: &'a str) -> impl Iterator<Item = &'a Table> + 'a {
        self.tables
            .iter()
            .filter(move |t| t.parent.as_deref() == Some(physical))
    }
    /// Finds an index by name in any table.
    pub fn index(&self, name: &str) -> Option<(&Table, &Index)> {
        self.tables
            .iter()
            .find_map(|t| t.indexes.iter().find(|i| i.name == name).map(|i| (t, i)))
    }
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
    pub fn column_mut(&mut self, name: &str) -> Option<&mut Column> {
        self.columns.iter_mut().find(|c| c.name == name)
    }
    pub fn column_by_physical(&self, physical: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.physical == physical)
    }
    pub fn constraint(&self, name: &str) -> Option<&Constraint> {
        self.constraints.iter().find(|c| c.name == name)
    }
    /// The columns that identify a row for keyset pagination: the primary key, or else the
    /// first unique index over NOT NULL plain columns.
    pub fn row_key(&self) -> Option<Vec<&Column>> {
        if !self.primary_key.is_empty() {
            return self.primary_key.iter().map(|n| self.column(n)).collect();
        }
        self.indexes
            .iter()
            .filter(|i| i.unique && !i.columns.is_empty() && !i.definition.contains(" WHERE "))
            .find_map(|i| {
                let cols: Option<Vec<&Column>> = i.columns.iter().map(|n| self.column(n)).collect();
                cols.filter(|cs| cs.iter().all(|c| !c.nullable))
            })
    }
}
