//! Compares two schemas: what `tandem diff` reports between the live database and the one the
//! migration files build, or between two databases.
//!
//! Tables, columns, constraints and indexes are matched by name. Compared: column type,
//! nullability, default, identity, generation expression, comment and relative order;
//! constraint definition and validation; index definition; table comment and replica identity.
//! Grants are not compared (they name roles that a scratch database does not have).
//!
//! The schema's other objects ([`crate::objects`]: views, materialized views and their
//! indexes, functions, aggregates, triggers, types, sequences, partitioning, extensions) are
//! matched by kind, name and the table they are on, and compared by definition
//! ([`diff_objects`]).
//!
//! Definitions are compared after normalisation, so that two databases whose schemas have
//! different names compare equal: `pg_get_indexdef` always qualifies the table with its schema,
//! `pg_get_constraintdef` qualifies a referenced table that is not on the `search_path`, and a
//! constraint's `NOT VALID` is reported as a validation difference of its own. Pure: no I/O.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use crate::ident::{quote_ident, quote_literal};
use crate::objects::{Object, ObjectKind, Objects};
use crate::schema::{Column, Constraint, Index, ReplicaIdentity, Schema, Table};

/// One of the two schemas compared: `A` is the first argument of [`diff`], `B` the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    A,
    B,
}

/// What the two sides are called in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels<'a> {
    pub a: &'a str,
    pub b: &'a str,
}

impl Labels<'_> {
    /// `tandem diff --migrations`: the live database against the one the files build.
    pub const LIVE_MIGRATIONS: Labels<'static> = Labels {
        a: "live",
        b: "migrations",
    };
    /// `tandem diff --from --to`.
    pub const FROM_TO: Labels<'static> = Labels { a: "from", b: "to" };

    pub fn of(&self, side: Side) -> &str {
        match side {
            Side::A => self.a,
            Side::B => self.b,
        }
    }
}

/// One way in which the two schemas differ, named after what differs. `a` and `b` hold the
/// value on each side; `None` is "none" (no default, no comment, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Difference {
    /// The table exists on one side only.
    Table { table: String, only_in: Side },
    TableComment {
        table: String,
        a: Option<String>,
        b: Option<String>,
    },
    /// `REPLICA IDENTITY` (`DEFAULT`, `FULL`, `NOTHING`, `USING INDEX ...`).
    ReplicaIdentity { table: String, a: String, b: String },
    /// The column exists on one side only; `type_name` is its type there.
    Column {
        table: String,
        column: String,
        only_in: Side,
        type_name: String,
    },
    /// The columns both sides have are in a different order (the names, in each side's order).
    ColumnOrder {
        table: String,
        a: Vec<String>,
        b: Vec<String>,
    },
    ColumnType {
        table: String,
        column: String,
        a: String,
        b: String,
    },
    /// `true` is nullable.
    ColumnNullable {
        table: String,
        column: String,
        a: bool,
        b: bool,
    },
    ColumnDefault {
        table: String,
        column: String,
        a: Option<String>,
        b: Option<String>,
    },
    /// `ALWAYS` or `BY DEFAULT`.
    ColumnIdentity {
        table: String,
        column: String,
        a: Option<String>,
        b: Option<String>,
    },
    /// The expression of a generated column.
    ColumnGenerated {
        table: String,
        column: String,
        a: Option<String>,
        b: Option<String>,
    },
    ColumnComment {
        table: String,
        column: String,
        a: Option<String>,
        b: Option<String>,
    },
    /// The constraint exists on one side only; `definition` is its definition there.
    Constraint {
        table: String,
        constraint: String,
        only_in: Side,
        definition: String,
    },
    /// The normalised definitions.
    ConstraintDefinition {
        table: String,
        constraint: String,
        a: String,
        b: String,
    },
    /// `true` is validated, `false` is `NOT VALID`.
    ConstraintValidated {
        table: String,
        constraint: String,
        a: bool,
        b: bool,
    },
    /// The index exists on one side only (an index that backs a constraint which is itself
    /// on one side only is reported with the constraint); `definition` is its definition there.
    Index {
        table: String,
        index: String,
        only_in: Side,
        definition: String,
    },
    /// The normalised definitions.
    IndexDefinition {
        table: String,
        index: String,
        a: String,
        b: String,
    },
    /// A view, function, trigger, type, sequence, partition, ... on one side only.
    Object {
        object: ObjectKind,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        on: Option<String>,
        only_in: Side,
        definition: String,
    },
    /// The normalised definitions of an object both sides have.
    ObjectDefinition {
        object: ObjectKind,
        name: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        on: Option<String>,
        a: String,
        b: String,
    },
}

/// Everything in which `a` and `b` differ, grouped by table (tables in name order), and within
/// a table: the table itself, its columns, its constraints, its indexes, each in name order.
/// Empty when they are equal.
pub fn diff(a: &Schema, b: &Schema) -> Vec<Difference> {
    let names: BTreeSet<&str> = a
        .tables
        .iter()
        .chain(&b.tables)
        .map(|t| t.name.as_str())
        .collect();
    let norm = Pair {
        a: Normalise::new(&a.name),
        b: Normalise::new(&b.name),
    };
    let mut out = Vec::new();
    for name in names {
        match (a.table(name), b.table(name)) {
            (Some(ta), Some(tb)) => diff_table(ta, tb, &norm, &mut out),
            (Some(_), None) => out.push(Difference::Table {
                table: name.to_string(),
                only_in: Side::A,
            }),
            (None, Some(_)) => out.push(Difference::Table {
                table: name.to_string(),
                only_in: Side::B,
            }),
            (None, None) => {}
        }
    }
    out
}

/// Everything in which the objects of `a` and `b` differ, in kind order (extensions, types,
/// functions, aggregates, sequences, partitioning, partitions, views, materialized views and
/// their indexes, triggers), then by name. Empty when they are equal.
pub fn diff_objects(a: &Objects, b: &Objects) -> Vec<Difference> {
    use std::collections::BTreeMap;
    let (na, nb) = (Normalise::new(&a.schema), Normalise::new(&b.schema));
    let map =
        |o: &Objects, n: &Normalise| -> BTreeMap<(ObjectKind, String, Option<String>), String> {
            o.objects
                .iter()
                .map(|x| ((x.kind, x.name.clone(), x.on.clone()), n.object(x)))
                .collect()
        };
    let (ma, mb) = (map(a, &na), map(b, &nb));
    let keys: BTreeSet<&(ObjectKind, String, Option<String>)> =
        ma.keys().chain(mb.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (object, name, on) = (key.0, key.1.clone(), key.2.clone());
        match (ma.get(key), mb.get(key)) {
            (Some(da), Some(db)) if da != db => out.push(Difference::ObjectDefinition {
                object,
                name,
                on,
                a: da.clone(),
                b: db.clone(),
            }),
            (Some(d), None) | (None, Some(d)) => out.push(Difference::Object {
                object,
                name,
                on,
                only_in: if ma.contains_key(key) {
                    Side::A
                } else {
                    Side::B
                },
                definition: d.clone(),
            }),
            _ => {}
        }
    }
    out
}

struct Pair<T> {
    a: T,
    b: T,
}

fn diff_table(a: &Table, b: &Table, norm: &Pair<Normalise>, out: &mut Vec<Difference>) {
    let table = || a.name.clone();
    if a.comment != b.comment {
        out.push(Difference::TableComment {
            table: table(),
            a: a.comment.clone(),
            b: b.comment.clone(),
        });
    }
    if a.replica_identity != b.replica_identity {
        out.push(Difference::ReplicaIdentity {
            table: table(),
            a: replica_identity(&a.replica_identity),
            b: replica_identity(&b.replica_identity),
        });
    }
    diff_columns(a, b, out);
    diff_constraints(a, b, norm, out);
    diff_indexes(a, b, norm, out);
}

fn diff_columns(a: &Table, b: &Table, out: &mut Vec<Difference>) {
    let names: BTreeSet<&str> = a
        .columns
        .iter()
        .chain(&b.columns)
        .map(|c| c.name.as_str())
        .collect();
    for name in names {
        match (a.column(name), b.column(name)) {
            (Some(ca), Some(cb)) => diff_column(&a.name, ca, cb, out),
            (Some(c), None) => out.push(column_only_in(&a.name, c, Side::A)),
            (None, Some(c)) => out.push(column_only_in(&a.name, c, Side::B)),
            (None, None) => {}
        }
    }
    let common = |t: &Table, other: &Table| -> Vec<String> {
        t.columns
            .iter()
            .filter(|c| other.column(&c.name).is_some())
            .map(|c| c.name.clone())
            .collect()
    };
    let (order_a, order_b) = (common(a, b), common(b, a));
    if order_a != order_b {
        out.push(Difference::ColumnOrder {
            table: a.name.clone(),
            a: order_a,
            b: order_b,
        });
    }
}

fn column_only_in(table: &str, c: &Column, side: Side) -> Difference {
    Difference::Column {
        table: table.to_string(),
        column: c.name.clone(),
        only_in: side,
        type_name: c.type_name.clone(),
    }
}

fn diff_column(table: &str, a: &Column, b: &Column, out: &mut Vec<Difference>) {
    let t = || table.to_string();
    let c = || a.name.clone();
    if a.type_name != b.type_name {
        out.push(Difference::ColumnType {
            table: t(),
            column: c(),
            a: a.type_name.clone(),
            b: b.type_name.clone(),
        });
    }
    if a.nullable != b.nullable {
        out.push(Difference::ColumnNullable {
            table: t(),
            column: c(),
            a: a.nullable,
            b: b.nullable,
        });
    }
    if a.default != b.default {
        out.push(Difference::ColumnDefault {
            table: t(),
            column: c(),
            a: a.default.clone(),
            b: b.default.clone(),
        });
    }
    if a.identity != b.identity {
        out.push(Difference::ColumnIdentity {
            table: t(),
            column: c(),
            a: a.identity.clone(),
            b: b.identity.clone(),
        });
    }
    if a.generated != b.generated {
        out.push(Difference::ColumnGenerated {
            table: t(),
            column: c(),
            a: a.generated.clone(),
            b: b.generated.clone(),
        });
    }
    if a.comment != b.comment {
        out.push(Difference::ColumnComment {
            table: t(),
            column: c(),
            a: a.comment.clone(),
            b: b.comment.clone(),
        });
    }
}

fn diff_constraints(a: &Table, b: &Table, norm: &Pair<Normalise>, out: &mut Vec<Difference>) {
    let names: BTreeSet<&str> = a
        .constraints
        .iter()
        .chain(&b.constraints)
        .map(|c| c.name.as_str())
        .collect();
    for name in names {
        match (a.constraint(name), b.constraint(name)) {
            (Some(ca), Some(cb)) => {
                let (da, db) = (
                    norm.a.constraint(&ca.definition),
                    norm.b.constraint(&cb.definition),
                );
                if da != db {
                    out.push(Difference::ConstraintDefinition {
                        table: a.name.clone(),
                        constraint: name.to_string(),
                        a: da,
                        b: db,
                    });
                }
                if ca.validated != cb.validated {
                    out.push(Difference::ConstraintValidated {
                        table: a.name.clone(),
                        constraint: name.to_string(),
                        a: ca.validated,
                        b: cb.validated,
                    });
                }
            }
            (Some(c), None) => out.push(constraint_only_in(&a.name, c, Side::A)),
            (None, Some(c)) => out.push(constraint_only_in(&a.name, c, Side::B)),
            (None, None) => {}
        }
    }
}

fn constraint_only_in(table: &str, c: &Constraint, side: Side) -> Difference {
    Difference::Constraint {
        table: table.to_string(),
        constraint: c.name.clone(),
        only_in: side,
        definition: c.definition.clone(),
    }
}

fn diff_indexes(a: &Table, b: &Table, norm: &Pair<Normalise>, out: &mut Vec<Difference>) {
    let names: BTreeSet<&str> = a
        .indexes
        .iter()
        .chain(&b.indexes)
        .map(|i| i.name.as_str())
        .collect();
    // An index that backs a constraint present on one side only is that constraint's index.
    let backs_lone_constraint = |i: &Index, other: &Table| {
        i.constraint
            .as_deref()
            .is_some_and(|c| other.constraint(c).is_none())
    };
    let index = |t: &Table, name: &str| t.indexes.iter().find(|i| i.name == name).cloned();
    for name in names {
        match (index(a, name), index(b, name)) {
            (Some(ia), Some(ib)) => {
                let (da, db) = (norm.a.index(&ia.definition), norm.b.index(&ib.definition));
                if da != db {
                    out.push(Difference::IndexDefinition {
                        table: a.name.clone(),
                        index: name.to_string(),
                        a: da,
                        b: db,
                    });
                }
            }
            (Some(i), None) if !backs_lone_constraint(&i, b) => {
                out.push(index_only_in(&a.name, &i, Side::A))
            }
            (None, Some(i)) if !backs_lone_constraint(&i, a) => {
                out.push(index_only_in(&a.name, &i, Side::B))
            }
            _ => {}
        }
    }
}

fn index_only_in(table: &str, i: &Index, side: Side) -> Difference {
    Difference::Index {
        table: table.to_string(),
        index: i.name.clone(),
        only_in: side,
        definition: i.definition.clone(),
    }
}

fn replica_identity(r: &Option<ReplicaIdentity>) -> String {
    match r {
        None => "DEFAULT".to_string(),
        Some(ReplicaIdentity::Full) => "FULL".to_string(),
        Some(ReplicaIdentity::Nothing) => "NOTHING".to_string(),
        Some(ReplicaIdentity::Index { index }) => format!("USING INDEX {}", quote_ident(index)),
    }
}

/// Removes one schema's name from the definitions PostgreSQL prints with it.
struct Normalise {
    /// `<schema>.` as PostgreSQL may print it: always the quoted form, and the bare form when
    /// the name needs no quotes (PostgreSQL quotes keywords too, so both are tried).
    prefixes: Vec<String>,
}

impl Normalise {
    fn new(schema: &str) -> Normalise {
        let mut prefixes = vec![format!("{}.", quote_ident(schema))];
        let plain = schema
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
            && schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
        if plain {
            prefixes.push(format!("{schema}."));
        }
        Normalise { prefixes }
    }

    /// `CREATE INDEX i ON [ONLY] <schema>.t USING ...`: the table's qualification goes.
    fn index(&self, definition: &str) -> String {
        self.strip_after(definition, &[" ON ONLY ", " ON "])
    }

    /// The schema's name goes where PostgreSQL always prints it: the function's own name in
    /// `pg_get_functiondef`, the relation in `pg_get_indexdef`.
    fn object(&self, o: &Object) -> String {
        match o.kind {
            ObjectKind::Function => self.strip_after(&o.definition, &[" FUNCTION ", " PROCEDURE "]),
            ObjectKind::MaterializedViewIndex => self.index(&o.definition),
            _ => extract_fields_lowercased(&o.definition),
        }
    }

    /// `NOT VALID` goes (validation is compared on its own), and so does the schema of a
    /// referenced table.
    fn constraint(&self, definition: &str) -> String {
        let d = definition.strip_suffix(" NOT VALID").unwrap_or(definition);
        self.strip_after(d, &[" REFERENCES "])
    }

    /// Removes the schema prefix right after the first occurrence of the first keyword (in
    /// the given order) that is followed by it.
    fn strip_after(&self, definition: &str, keywords: &[&str]) -> String {
        for keyword in keywords {
            for prefix in &self.prefixes {
                let needle = format!("{keyword}{prefix}");
                if let Some(at) = definition.find(&needle) {
                    return format!(
                        "{}{keyword}{}",
                        &definition[..at],
                        &definition[at + needle.len()..]
                    );
                }
            }
        }
        definition.to_string()
    }
}

impl Difference {
    /// The table the difference is in.
    pub fn table(&self) -> &str {
        use Difference::*;
        match self {
            Table { table, .. }
            | TableComment { table, .. }
            | ReplicaIdentity { table, .. }
            | Column { table, .. }
            | ColumnOrder { table, .. }
            | ColumnType { table, .. }
            | ColumnNullable { table, .. }
            | ColumnDefault { table, .. }
            | ColumnIdentity { table, .. }
            | ColumnGenerated { table, .. }
            | ColumnComment { table, .. }
            | Constraint { table, .. }
            | ConstraintDefinition { table, .. }
            | ConstraintValidated { table, .. }
            | Index { table, .. }
            | IndexDefinition { table, .. } => table,
            Object { name, on, .. } | ObjectDefinition { name, on, .. } => {
                on.as_deref().unwrap_or(name)
            }
        }
    }

    /// The difference in plain words, the sides called by `labels`:
    /// `column "users"."email": default differs: 'x'::text (live) vs none (migrations)`.
    pub fn describe<'a>(&'a self, labels: Labels<'a>) -> Described<'a> {
        Described {
            difference: self,
            labels,
        }
    }
}

/// A difference in plain words: see [`Difference::describe`].
pub struct Described<'a> {
    difference: &'a Difference,
    labels: Labels<'a>,
}

/// With the labels of `tandem diff --migrations`: `live` (a) and `migrations` (b).
impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.describe(Labels::LIVE_MIGRATIONS).fmt(f)
    }
}

fn opt(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "none".to_string())
}

fn opt_literal(value: &Option<String>) -> String {
    value
        .as_deref()
        .map(quote_literal)
        .unwrap_or_else(|| "none".to_string())
}

fn identity(value: &Option<String>) -> String {
    value
        .as_deref()
        .map(|kind| format!("GENERATED {kind} AS IDENTITY"))
        .unwrap_or_else(|| "none".to_string())
}

fn generated(value: &Option<String>) -> String {
    value
        .as_deref()
        .map(|e| format!("GENERATED ALWAYS AS ({e}) STORED"))
        .unwrap_or_else(|| "not generated".to_string())
}

/// `view "v"`, `trigger "t" on "orders"`, `partition "p" of "orders"`, `function "f(integer)"`.
fn object_name(kind: ObjectKind, name: &str, on: &Option<String>) -> String {
    let mut text = format!("{kind} {}", quote_ident(name));
    if let Some(on) = on {
        let link = if kind == ObjectKind::Partition {
            "of"
        } else {
            "on"
        };
        text.push_str(&format!(" {link} {}", quote_ident(on)));
    }
    text
}

/// Definitions too long for one line (a view's query, a function's body) are left out of the
/// "only in" line; `--json` has them.
fn short(definition: &str) -> Option<&str> {
    (!definition.contains('\n') && definition.len() <= 200).then_some(definition)
}

/// The first line where two multi-line definitions differ (`line 3: … vs …`), or the two
/// whole definitions when both fit on one line.
fn first_difference(a: &str, b: &str) -> (String, String, Option<usize>) {
    if let (Some(a), Some(b)) = (short(a), short(b)) {
        return (a.to_string(), b.to_string(), None);
    }
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let line = (0..la.len().max(lb.len()))
        .find(|i| la.get(*i).map(|l| l.trim()) != lb.get(*i).map(|l| l.trim()))
        .unwrap_or(0);
    let at = |lines: &[&str]| {
        lines
            .get(line)
            .map(|l| l.trim().to_string())
            .unwrap_or_else(|| "(end)".to_string())
    };
    (at(&la), at(&lb), Some(line + 1))
}

fn nullable(value: bool) -> String {
    if value { "NULL" } else { "NOT NULL" }.to_string()
}

fn validated(value: bool) -> String {
    if value { "validated" } else { "NOT VALID" }.to_string()
}

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Difference::*;
        let l = self.labels;
        let q = |s: &str| quote_ident(s);
        let col = |t: &str, c: &str| format!("column {}.{}", q(t), q(c));
        let differs = |f: &mut fmt::Formatter<'_>, what: &str, a: String, b: String| {
            write!(f, "{what} differs: {a} ({}) vs {b} ({})", l.a, l.b)
        };
        match self.difference {
            Table { table, only_in } => write!(f, "table {}: only in {}", q(table), l.of(*only_in)),
            TableComment { table, a, b } => {
                write!(f, "table {}: ", q(table))?;
                differs(f, "comment", opt_literal(a), opt_literal(b))
            }
            ReplicaIdentity { table, a, b } => {
                write!(f, "table {}: ", q(table))?;
                differs(f, "replica identity", a.clone(), b.clone())
            }
            Column {
                table,
                column,
                only_in,
                type_name,
            } => write!(
                f,
                "{}: only in {} ({type_name})",
                col(table, column),
                l.of(*only_in)
            ),
            ColumnOrder { table, a, b } => {
                write!(f, "table {}: ", q(table))?;
                differs(f, "column order", a.join(", "), b.join(", "))
            }
            ColumnType {
                table,
                column,
                a,
                b,
            } => {
                write!(f, "{}: ", col(table, column))?;
                differs(f, "type", a.clone(), b.clone())
            }
            ColumnNullable {
                table,
                column,
                a,
                b,
            } => {
                write!(f, "{}: ", col(table, column))?;
                differs(f, "nullability", nullable(*a), nullable(*b))
            }
            ColumnDefault {
                table,
                column,
                a,
                b,
            } => {
                write!(f, "{}: ", col(table, column))?;
                differs(f, "default", opt(a), opt(b))
            }
            ColumnIdentity {
                table,
                column,
                a,
                b,
            } => {
                write!(f, "{}: ", col(table, column))?;
                differs(f, "identity", identity(a), identity(b))
            }
            ColumnGenerated {
                table,
                column,
                a,
                b,
            } => {
                write!(f, "{}: ", col(table, column))?;
                differs(f, "generation", generated(a), generated(b))
            }
            ColumnComment {
                table,
                column,
                a,
                b,
            } => {
                write!(f, "{}: ", col(table, column))?;
                differs(f, "comment", opt_literal(a), opt_literal(b))
            }
            Constraint {
                table,
                constraint,
                only_in,
                definition,
            } => write!(
                f,
                "constraint {} on {}: only in {} ({definition})",
                q(constraint),
                q(table),
                l.of(*only_in)
            ),
            ConstraintDefinition {
                table,
                constraint,
                a,
                b,
            } => {
                write!(f, "constraint {} on {}: ", q(constraint), q(table))?;
                differs(f, "definition", a.clone(), b.clone())
            }
            ConstraintValidated {
                table,
                constraint,
                a,
                b,
            } => {
                write!(f, "constraint {} on {}: ", q(constraint), q(table))?;
                differs(f, "validation", validated(*a), validated(*b))
            }
            Index {
                table,
                index,
                only_in,
                definition,
            } => write!(
                f,
                "index {} on {}: only in {} ({definition})",
                q(index),
                q(table),
                l.of(*only_in)
            ),
            IndexDefinition { table, index, a, b } => {
                write!(f, "index {} on {}: ", q(index), q(table))?;
                differs(f, "definition", a.clone(), b.clone())
            }
            Object {
                object,
                name,
                on,
                only_in,
                definition,
            } => {
                write!(
                    f,
                    "{}: only in {}",
                    object_name(*object, name, on),
                    l.of(*only_in)
                )?;
                match short(definition) {
                    Some(d) => write!(f, " ({d})"),
                    None => Ok(()),
                }
            }
            ObjectDefinition {
                object,
                name,
                on,
                a,
                b,
            } => {
                write!(f, "{}: ", object_name(*object, name, on))?;
                match first_difference(a, b) {
                    (a, b, None) => differs(f, "definition", a, b),
                    (a, b, Some(line)) => differs(f, &format!("definition (line {line})"), a, b),
                }
            }
        }
    }
}

/// `EXTRACT(YEAR FROM x)` and `EXTRACT(year FROM x)` mean the same: the field is kept as a
/// string, printed as it was written (`extract('YEAR' from …)` in LedgerSMB's views), and
/// written back lower case once the printed text is replayed. Lower-casing the field makes a
/// view compare equal to its own replay.
fn extract_fields_lowercased(definition: &str) -> String {
    const KEYWORD: &str = "EXTRACT(";
    let mut out = String::with_capacity(definition.len());
    let mut rest = definition;
    while let Some(at) = rest.find(KEYWORD) {
        let (head, tail) = rest.split_at(at + KEYWORD.len());
        out.push_str(head);
        let field_len = tail
            .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .unwrap_or(tail.len());
        if tail[field_len..].starts_with(" FROM ") {
            out.push_str(&tail[..field_len].to_ascii_lowercase());
            rest = &tail[field_len..];
        } else {
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ConstraintKind;

    fn column(name: &str, type_name: &str) -> Column {
        Column {
            name: name.into(),
            physical: name.into(),
            type_name: type_name.into(),
            nullable: true,
            ..Column::default()
        }
    }

    fn users(schema: &str) -> Table {
        let q = if schema == "public" {
            "public".to_string()
        } else {
            quote_ident(schema)
        };
        Table {
            name: "users".into(),
            physical: "users".into(),
            columns: vec![
                Column {
                    nullable: false,
                    ..column("id", "integer")
                },
                Column {
                    default: Some("'x'::text".into()),
                    ..column("email", "text")
                },
                column("name", "text"),
            ],
            primary_key: vec!["id".into()],
            constraints: vec![
                Constraint {
                    name: "users_pkey".into(),
                    kind: ConstraintKind::PrimaryKey,
                    columns: vec!["id".into()],
                    definition: "PRIMARY KEY (id)".into(),
                    validated: true,
                },
                Constraint {
                    name: "users_team_fk".into(),
                    kind: ConstraintKind::ForeignKey,
                    columns: vec!["id".into()],
                    definition: format!("FOREIGN KEY (id) REFERENCES {q}.teams(id)"),
                    validated: true,
                },
            ],
            indexes: vec![
                Index {
                    name: "users_pkey".into(),
                    columns: vec!["id".into()],
                    unique: true,
                    primary: true,
                    definition: format!(
                        "CREATE UNIQUE INDEX users_pkey ON {q}.users USING btree (id)"
                    ),
                    constraint: Some("users_pkey".into()),
                },
                Index {
                    name: "users_name_idx".into(),
                    columns: vec!["name".into()],
                    unique: false,
                    primary: false,
                    definition: format!(
                        "CREATE INDEX users_name_idx ON {q}.users USING btree (name) WHERE (name <> 'ON public.x'::text)"
                    ),
                    constraint: None,
                },
            ],
            comment: Some("people".into()),
            ..Table::default()
        }
    }

    fn schema(name: &str, tables: Vec<Table>) -> Schema {
        Schema {
            name: name.into(),
            tables,
            ..Schema::default()
        }
    }

    fn lines(differences: &[Difference]) -> Vec<String> {
        differences.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn equal_schemas_have_no_differences() {
        let a = schema("public", vec![users("public")]);
        assert_eq!(diff(&a, &a.clone()), vec![]);
    }

    #[test]
    fn schema_names_in_definitions_do_not_count() {
        let a = schema("public", vec![users("public")]);
        let b = schema("App \"Core\"", vec![users("App \"Core\"")]);
        assert_eq!(diff(&a, &b), vec![]);
        let c = schema("app", vec![users("app")]);
        assert_eq!(diff(&a, &c), vec![]);
    }

    #[test]
    fn table_order_does_not_count_and_output_is_sorted() {
        let mut other = users("public");
        other.name = "accounts".into();
        other.physical = "accounts".into();
        let a = schema("public", vec![users("public"), other.clone()]);
        let b = schema("public", vec![other, users("public")]);
        assert_eq!(diff(&a, &b), vec![]);
        let c = schema("public", vec![]);
        assert_eq!(
            lines(&diff(&a, &c)),
            [
                r#"table "accounts": only in live"#,
                r#"table "users": only in live"#
            ]
        );
    }

    #[test]
    fn every_column_property_is_reported_in_plain_words() {
        let a = schema("public", vec![users("public")]);
        let mut t = users("public");
        t.columns[1] = Column {
            type_name: "character varying(255)".into(),
            nullable: false,
            default: None,
            comment: Some("it's mail".into()),
            ..column("email", "")
        };
        t.columns[2].identity = Some("BY DEFAULT".into());
        t.columns[0].generated = Some("(1 + 1)".into());
        t.columns.push(column("nickname", "text"));
        let b = schema("public", vec![t]);
        assert_eq!(
            lines(&diff(&a, &b)),
            [
                r#"column "users"."email": type differs: text (live) vs character varying(255) (migrations)"#,
                r#"column "users"."email": nullability differs: NULL (live) vs NOT NULL (migrations)"#,
                r#"column "users"."email": default differs: 'x'::text (live) vs none (migrations)"#,
                r#"column "users"."email": comment differs: none (live) vs 'it''s mail' (migrations)"#,
                r#"column "users"."id": generation differs: not generated (live) vs GENERATED ALWAYS AS ((1 + 1)) STORED (migrations)"#,
                r#"column "users"."name": identity differs: none (live) vs GENERATED BY DEFAULT AS IDENTITY (migrations)"#,
                r#"column "users"."nickname": only in migrations (text)"#,
            ]
        );
    }

    #[test]
    fn column_order_counts_only_for_columns_on_both_sides() {
        let a = schema("public", vec![users("public")]);
        let mut t = users("public");
        t.columns.insert(1, column("added_by_hand", "text"));
        let b = schema("public", vec![t.clone()]);
        assert_eq!(
            lines(&diff(&a, &b)),
            [r#"column "users"."added_by_hand": only in migrations (text)"#]
        );
        t.columns.swap(2, 3);
        let c = schema("public", vec![t]);
        assert_eq!(
            lines(&diff(&a, &c))[1],
            r#"table "users": column order differs: id, email, name (live) vs id, name, email (migrations)"#
        );
    }

    #[test]
    fn constraints_indexes_and_table_properties() {
        let a = schema("public", vec![users("public")]);
        let mut t = users("public");
        t.comment = None;
        t.replica_identity = Some(ReplicaIdentity::Full);
        t.constraints[1].validated = false;
        t.constraints[1].definition.push_str(" NOT VALID");
        t.constraints.push(Constraint {
            name: "users_email_key".into(),
            kind: ConstraintKind::Unique,
            columns: vec!["email".into()],
            definition: "UNIQUE (email)".into(),
            validated: true,
        });
        t.indexes.push(Index {
            name: "users_email_key".into(),
            columns: vec!["email".into()],
            unique: true,
            primary: false,
            definition: "CREATE UNIQUE INDEX users_email_key ON public.users USING btree (email)"
                .into(),
            constraint: Some("users_email_key".into()),
        });
        t.indexes[1].definition =
            "CREATE INDEX users_name_idx ON public.users USING hash (name)".into();
        let b = schema("public", vec![t]);
        let found = diff(&a, &b);
        assert_eq!(
            lines(&found),
            [
                r#"table "users": comment differs: 'people' (live) vs none (migrations)"#,
                r#"table "users": replica identity differs: DEFAULT (live) vs FULL (migrations)"#,
                r#"constraint "users_email_key" on "users": only in migrations (UNIQUE (email))"#,
                r#"constraint "users_team_fk" on "users": validation differs: validated (live) vs NOT VALID (migrations)"#,
                r#"index "users_name_idx" on "users": definition differs: CREATE INDEX users_name_idx ON users USING btree (name) WHERE (name <> 'ON public.x'::text) (live) vs CREATE INDEX users_name_idx ON users USING hash (name) (migrations)"#,
            ]
        );
        assert_eq!(
            found[4].describe(Labels::FROM_TO).to_string(),
            r#"index "users_name_idx" on "users": definition differs: CREATE INDEX users_name_idx ON users USING btree (name) WHERE (name <> 'ON public.x'::text) (from) vs CREATE INDEX users_name_idx ON users USING hash (name) (to)"#
        );
        // Dropped on the other side: the index alone is reported.
        let mut t = users("public");
        t.indexes.remove(1);
        assert_eq!(
            lines(&diff(&a, &schema("public", vec![t]))),
            [
                r#"index "users_name_idx" on "users": only in live (CREATE INDEX users_name_idx ON public.users USING btree (name) WHERE (name <> 'ON public.x'::text))"#
            ]
        );
    }

    #[test]
    fn objects_are_matched_by_kind_name_and_table_and_compared_by_definition() {
        let o = |kind, name: &str, on: Option<&str>, definition: &str| Object {
            kind,
            name: name.into(),
            on: on.map(str::to_string),
            definition: definition.into(),
        };
        let a = Objects {
            schema: "public".into(),
            objects: vec![
                o(ObjectKind::Type, "mood", None, "ENUM ('sad', 'ok')"),
                o(
                    ObjectKind::Function,
                    "f()",
                    None,
                    "CREATE OR REPLACE FUNCTION public.f()\n RETURNS integer\nAS $$ SELECT 1 $$",
                ),
                o(
                    ObjectKind::Trigger,
                    "last_updated",
                    Some("orders"),
                    "CREATE TRIGGER last_updated BEFORE UPDATE ON orders",
                ),
                o(
                    ObjectKind::Partition,
                    "events_1",
                    Some("events"),
                    "FOR VALUES FROM (1) TO (2)",
                ),
            ],
        };
        let mut b = a.clone();
        b.schema = "app".into();
        b.objects[1].definition =
            "CREATE OR REPLACE FUNCTION app.f()\n RETURNS integer\nAS $$ SELECT 1 $$".into();
        assert_eq!(
            diff_objects(&a, &b),
            vec![],
            "the schema's name does not count"
        );
        b.objects[0].definition = "ENUM ('sad', 'ok', 'happy')".into();
        b.objects[1].definition =
            "CREATE OR REPLACE FUNCTION app.f()\n RETURNS integer\nAS $$ SELECT 2 $$".into();
        b.objects[2].on = Some("customers".into());
        b.objects.remove(3);
        let found = diff_objects(&a, &b);
        assert_eq!(
            lines(&found),
            [
                r#"type "mood": definition differs: ENUM ('sad', 'ok') (live) vs ENUM ('sad', 'ok', 'happy') (migrations)"#,
                r#"function "f()": definition (line 3) differs: AS $$ SELECT 1 $$ (live) vs AS $$ SELECT 2 $$ (migrations)"#,
                r#"partition "events_1" of "events": only in live (FOR VALUES FROM (1) TO (2))"#,
                r#"trigger "last_updated" on "customers": only in migrations (CREATE TRIGGER last_updated BEFORE UPDATE ON orders)"#,
                r#"trigger "last_updated" on "orders": only in live (CREATE TRIGGER last_updated BEFORE UPDATE ON orders)"#,
            ]
        );
        assert_eq!(
            serde_json::to_value(&found[2]).unwrap(),
            serde_json::json!({"kind": "object", "object": "partition", "name": "events_1", "on": "events", "only_in": "a", "definition": "FOR VALUES FROM (1) TO (2)"})
        );
    }

    #[test]
    fn differences_serialize_with_their_kind() {
        let d = Difference::ColumnDefault {
            table: "users".into(),
            column: "email".into(),
            a: Some("'x'::text".into()),
            b: None,
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"kind": "column_default", "table": "users", "column": "email", "a": "'x'::text", "b": null})
        );
        let d = Difference::Table {
            table: "t".into(),
            only_in: Side::B,
        };
        assert_eq!(
            serde_json::to_value(&d).unwrap(),
            serde_json::json!({"kind": "table", "table": "t", "only_in": "b"})
        );
    }

    #[test]
    fn extract_fields_compare_case_insensitively() {
        assert_eq!(
            extract_fields_lowercased("SELECT (EXTRACT(YEAR FROM now()) - 1) AS y, EXTRACT(x)"),
            "SELECT (EXTRACT(year FROM now()) - 1) AS y, EXTRACT(x)"
        );
    }
}
