//! The typed migration model: the pgroll-compatible file format of DESIGN.md §2.
//!
//! Files are validated against `schema/migration.schema.json` before they are deserialized
//! here, so these types are strict (`deny_unknown_fields`) but their error messages are a
//! fallback; the loader reports the schema's errors with JSON Pointers.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationFile {
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema_url: Option<String>,
    /// Older pgroll files name the migration here; newer ones use the file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_schema: Option<String>,
    pub operations: Vec<Operation>,
}

/// A loaded migration: its name (from the file) and its operations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Migration {
    pub name: String,
    pub version_schema: Option<String>,
    pub operations: Vec<Operation>,
    /// For a migration re-planned from the state schema: the version schema it was started
    /// with, whatever the current naming rule gives (earlier tandem versions took
    /// `version_schema` as the whole name), so that complete and rollback find it.
    #[serde(skip)]
    pub recorded_version_schema: Option<String>,
}

impl Migration {
    /// The name of the version schema this migration creates for `schema`: `<schema>_<name>`,
    /// or `<schema>_<version_schema>` when the file sets `version_schema` (as pgroll names it:
    /// `version_schema: add_table` gives `public_add_table`).
    pub fn version_schema_name(&self, schema: &str) -> String {
        if let Some(recorded) = &self.recorded_version_schema {
            return recorded.clone();
        }
        let suffix = self.version_schema.as_deref().unwrap_or(&self.name);
        format!("{schema}_{suffix}")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    CreateTable(CreateTable),
    AddColumn(AddColumn),
    AlterColumn(AlterColumn),
    RenameColumn(RenameColumn),
    DropColumn(DropColumn),
    RenameTable(RenameTable),
    DropTable(DropTable),
    CreateIndex(CreateIndex),
    DropIndex(DropIndex),
    CreateConstraint(CreateConstraint),
    DropConstraint(DropConstraint),
    DropMulticolumnConstraint(DropMulticolumnConstraint),
    RenameConstraint(RenameConstraint),
    SetReplicaIdentity(SetReplicaIdentity),
    Sql(Sql),
}

impl Operation {
    /// The operation's key in the file (`add_column`), used in JSON Pointers and messages.
    pub fn key(&self) -> &'static str {
        match self {
            Operation::CreateTable(_) => "create_table",
            Operation::AddColumn(_) => "add_column",
            Operation::AlterColumn(_) => "alter_column",
            Operation::RenameColumn(_) => "rename_column",
            Operation::DropColumn(_) => "drop_column",
            Operation::RenameTable(_) => "rename_table",
            Operation::DropTable(_) => "drop_table",
            Operation::CreateIndex(_) => "create_index",
            Operation::DropIndex(_) => "drop_index",
            Operation::CreateConstraint(_) => "create_constraint",
            Operation::DropConstraint(_) => "drop_constraint",
            Operation::DropMulticolumnConstraint(_) => "drop_multicolumn_constraint",
            Operation::RenameConstraint(_) => "rename_constraint",
            Operation::SetReplicaIdentity(_) => "set_replica_identity",
            Operation::Sql(_) => "sql",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
    /// pgroll's default is NOT NULL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pk: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<ColumnReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generated: Option<Generated>,
}

impl Column {
    pub fn is_nullable(&self) -> bool {
        self.nullable.unwrap_or(false) && !self.is_pk()
    }
    pub fn is_pk(&self) -> bool {
        self.pk.unwrap_or(false)
    }
    pub fn is_unique(&self) -> bool {
        self.unique.unwrap_or(false)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConstraint {
    pub name: String,
    pub constraint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_inherit: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnReference {
    pub name: String,
    pub table: String,
    pub column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferrable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initially_deferred: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Generated {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<Identity>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// `ALWAYS` or `BY DEFAULT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_specified_values: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence_options: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTable {
    pub name: String,
    pub columns: Vec<Column>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub constraints: Option<Vec<TableConstraint>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableConstraintType {
    Unique,
    Check,
    PrimaryKey,
    ForeignKey,
    Exclude,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConstraint {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TableConstraintType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_inherit: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nulls_not_distinct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferrable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initially_deferred: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<TableReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Exclude>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_parameters: Option<IndexParameters>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableReference {
    pub table: String,
    pub columns: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_update: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_delete_set_columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exclude {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_method: Option<String>,
    pub elements: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexParameters {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tablespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_parameters: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_columns: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddColumn {
    pub table: String,
    pub column: Column,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<String>,
}

/// `Some(None)` means the file said `null` (drop it); `None` means the key was absent.
fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlterColumn {
    pub table: String,
    pub column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nullable: Option<bool>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<Option<String>>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub comment: Option<Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<UniqueSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckConstraint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<ColumnReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UniqueSpec {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameColumn {
    pub table: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropColumn {
    pub table: String,
    pub column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameTable {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropTable {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateIndex {
    pub name: String,
    pub table: String,
    pub columns: IndexColumns,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_parameters: Option<String>,
}

/// The index columns in their current form; the older forms (a list of names, or an object
/// mapping each name to its settings) are normalised into this on load.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct IndexColumns(pub Vec<IndexColumn>);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexColumn {
    pub column: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nulls: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opclass: Option<OpClass>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpClass {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexColumnSettings {
    #[serde(default)]
    collate: Option<String>,
    #[serde(default)]
    sort: Option<String>,
    #[serde(default)]
    nulls: Option<String>,
    #[serde(default)]
    opclass: Option<OpClass>,
}

impl<'de> Deserialize<'de> for IndexColumns {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(d)?;
        let plain = |name: String| IndexColumn {
            column: name,
            collate: None,
            sort: None,
            nulls: None,
            opclass: None,
        };
        match value {
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|item| match item {
                    serde_json::Value::String(name) => Ok(plain(name)),
                    other => serde_json::from_value(other).map_err(D::Error::custom),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(IndexColumns),
            serde_json::Value::Object(map) => map
                .into_iter()
                .map(|(name, settings)| {
                    let s: IndexColumnSettings =
                        serde_json::from_value(settings).map_err(D::Error::custom)?;
                    Ok(IndexColumn {
                        column: name,
                        collate: s.collate,
                        sort: s.sort,
                        nulls: s.nulls,
                        opclass: s.opclass,
                    })
                })
                .collect::<Result<Vec<_>, _>>()
                .map(IndexColumns),
            _ => Err(D::Error::custom(
                "index columns must be a list or an object",
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropIndex {
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintType {
    Unique,
    Check,
    ForeignKey,
    PrimaryKey,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateConstraint {
    pub table: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: ConstraintType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<TableReference>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_inherit: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nulls_not_distinct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferrable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initially_deferred: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_parameters: Option<IndexParameters>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConstraint {
    pub table: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropMulticolumnConstraint {
    pub table: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub up: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConstraint {
    pub table: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetReplicaIdentity {
    pub table: String,
    pub identity: ReplicaIdentity,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicaIdentity {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sql {
    pub up: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub down: Option<String>,
    #[serde(
        rename = "onComplete",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub on_complete: Option<bool>,
}
