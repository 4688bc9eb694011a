//! `tandem convert`: SQL DDL → the operations that make the same change safely, as pgroll's
//! `convert` does. Pure: SQL text in, operations and notes out.
//!
//! Each statement becomes one or more operations; a statement (or an `ALTER TABLE` with a
//! command) that has no operation becomes a `sql` operation holding its text, with a note.
//! Where an operation needs an `up` or `down` that SQL does not say, it gets a placeholder
//! beginning with [`PLACEHOLDER_PREFIX`], which the loader refuses until a person fills it in.

use std::collections::BTreeMap;

use pg_query::protobuf::{
    AlterTableCmd, AlterTableStmt, AlterTableType, ColumnDef, ConstrType, Constraint, DropStmt,
    IndexElem, IndexStmt, ObjectType, RangeVar, RenameStmt, SortByDir, SortByNulls, TypeName,
};
use pg_query::{Node, NodeEnum};
use tandem_core::ident::{bounded_name, quote_ident};
use tandem_core::migration::{
    AddColumn, AlterColumn, CheckConstraint, Column, ColumnReference, ConstraintType,
    CreateConstraint, CreateIndex, CreateTable, DropColumn, DropConstraint, DropIndex, DropTable,
    Generated, Identity, IndexColumn, IndexColumns, IndexParameters, OpClass, Operation,
    RenameColumn, RenameConstraint, RenameTable, ReplicaIdentity, SetReplicaIdentity, Sql,
    TableConstraint, TableConstraintType, TableReference,
};

use crate::position::{error_offset, line_column};
use crate::tree;

/// How every placeholder begins; `tandem validate` refuses an `up`/`down` that begins so.
pub use tandem_core::load::PLACEHOLDER_PREFIX;

/// The result of a conversion: the operations in statement order, and what a person should
/// look at.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversion {
    pub operations: Vec<Operation>,
    pub notes: Vec<Note>,
}

/// Something to look at in the converted file: operation `operation` (0-based) came from
/// `statement`.
#[derive(Debug, Clone, PartialEq)]
pub struct Note {
    pub operation: usize,
    pub statement: String,
    pub message: String,
}

/// SQL PostgreSQL's parser rejects: its message, and where (1-based line and column).
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub message: String,
    pub line: usize,
    pub column: usize,
}

/// Converts a script of SQL statements.
pub fn convert(sql: &str) -> Result<Conversion, ParseError> {
    let parsed = pg_query::parse(sql, pg_query::ParserOptions::DEFAULT).map_err(|e| {
        let (line, column) = line_column(sql, error_offset(sql).unwrap_or(0));
        ParseError {
            message: match e {
                pg_query::Error::Parse(m) => m,
                other => other.to_string(),
            },
            line,
            column,
        }
    })?;
    let mut conversion = Conversion {
        operations: Vec::new(),
        notes: Vec::new(),
    };
    for raw in &parsed.protobuf.stmts {
        let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) else {
            continue;
        };
        let text = statement_text(sql, raw.stmt_location, raw.stmt_len);
        let first = conversion.operations.len();
        match statement(node) {
            Ok(ops) => conversion.operations.extend(ops),
            Err(reason) => {
                conversion.operations.push(Operation::Sql(Sql {
                    up: text.to_string(),
                    down: None,
                    on_complete: None,
                }));
                conversion.notes.push(Note {
                    operation: first,
                    statement: text.to_string(),
                    message: format!("kept as a `sql` operation: {reason}"),
                });
            }
        }
        for (i, op) in conversion.operations.iter().enumerate().skip(first) {
            for pointer in placeholders(op) {
                conversion.notes.push(Note {
                    operation: i,
                    statement: text.to_string(),
                    message: format!(
                        "fill in {pointer}: `tandem validate` refuses the placeholder until it is an SQL expression"
                    ),
                });
            }
        }
    }
    let sql_at_start = conversion
        .operations
        .iter()
        .position(|op| matches!(op, Operation::Sql(_)));
    if let (Some(i), true) = (sql_at_start, conversion.operations.len() > 1) {
        conversion.notes.push(Note {
            operation: i,
            statement: String::new(),
            message: "a `sql` operation must be the only one of its migration: move each into a file of its own (or set `onComplete: true`)".into(),
        });
    }
    Ok(conversion)
}

/// The statement's text without leading and trailing blanks or its `;`.
fn statement_text(sql: &str, location: i32, len: i32) -> &str {
    let start = usize::try_from(location).unwrap_or(0).min(sql.len());
    let end = match usize::try_from(len) {
        Ok(0) | Err(_) => sql.len(),
        Ok(n) => (start + n).min(sql.len()),
    };
    sql.get(start..end)
        .unwrap_or(sql)
        .trim()
        .trim_end_matches(';')
        .trim_end()
}

/// The JSON Pointers (within the operation) of every placeholder `up`/`down`.
fn placeholders(op: &Operation) -> Vec<String> {
    let value = serde_json::to_value(op).unwrap_or_default();
    let mut found = Vec::new();
    if let Some((_, body)) = value.as_object().and_then(|o| o.iter().next()) {
        for field in ["up", "down"] {
            match body.get(field) {
                Some(serde_json::Value::String(s)) if s.starts_with(PLACEHOLDER_PREFIX) => {
                    found.push(field.to_string());
                }
                Some(serde_json::Value::Object(map)) => {
                    for (column, v) in map {
                        if v.as_str()
                            .is_some_and(|s| s.starts_with(PLACEHOLDER_PREFIX))
                        {
                            found.push(format!(
                                "{field}/{}",
                                tandem_core::problem::pointer_token(column)
                            ));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    found
}

type Converted<T> = Result<T, String>;

fn statement(node: &NodeEnum) -> Converted<Vec<Operation>> {
    match node {
        NodeEnum::CreateStmt(s) => create_table(s).map(|t| vec![Operation::CreateTable(t)]),
        NodeEnum::AlterTableStmt(s) => alter_table(s),
        NodeEnum::RenameStmt(s) => rename(s).map(|op| vec![op]),
        NodeEnum::IndexStmt(s) => create_index(s).map(|i| vec![Operation::CreateIndex(i)]),
        NodeEnum::DropStmt(s) => drop(s),
        _ => Err("no operation does this statement".into()),
    }
}

/// A table of tandem's schema: an unqualified name (tandem works in the schema `--schema`
/// names).
fn table_name(relation: Option<&RangeVar>) -> Converted<String> {
    let r = relation.ok_or("no table named")?;
    if !r.schemaname.is_empty() {
        return Err(format!(
            "the table is schema-qualified ({}.{}); tandem works in one schema (--schema): drop the qualifier to convert it",
            quote_ident(&r.schemaname),
            quote_ident(&r.relname)
        ));
    }
    if !r.inh {
        return Err("ONLY has no operation".into());
    }
    Ok(r.relname.clone())
}

fn create_table(s: &pg_query::protobuf::CreateStmt) -> Converted<CreateTable> {
    if s.if_not_exists {
        return Err("IF NOT EXISTS has no operation".into());
    }
    if !s.inh_relations.is_empty()
        || s.partspec.is_some()
        || s.partbound.is_some()
        || s.of_typename.is_some()
    {
        return Err("inheritance, partitioning and typed tables have no operation".into());
    }
    if !s.options.is_empty() || !s.tablespacename.is_empty() || !s.access_method.is_empty() {
        return Err("storage options have no operation".into());
    }
    let r = s.relation.as_ref();
    if r.is_some_and(|r| r.relpersistence != "p") {
        return Err("a temporary or unlogged table has no operation".into());
    }
    let table = table_name(r)?;
    let mut columns = Vec::new();
    let mut constraints = Vec::new();
    for element in &s.table_elts {
        match &element.node {
            Some(NodeEnum::ColumnDef(c)) => columns.push(column(&table, c)?),
            Some(NodeEnum::Constraint(c)) => constraints.push(table_constraint(&table, c)?),
            _ => return Err("LIKE has no operation".into()),
        }
    }
    // A table constraint ends up on a column's definition where pgroll would put it.
    Ok(CreateTable {
        name: table,
        columns,
        constraints: (!constraints.is_empty()).then_some(constraints),
        comment: None,
    })
}

/// A column definition. Columns without NOT NULL say `nullable: true` (pgroll's default is
/// NOT NULL).
fn column(table: &str, c: &ColumnDef) -> Converted<Column> {
    if c.coll_clause.is_some() || !c.compression.is_empty() || !c.storage_name.is_empty() {
        return Err(format!(
            "column \"{}\": COLLATE, COMPRESSION and STORAGE have no operation",
            c.colname
        ));
    }
    let mut col = Column {
        name: c.colname.clone(),
        type_name: type_text(c.type_name.as_ref().ok_or("a column without a type")?)?,
        nullable: None,
        unique: None,
        pk: None,
        default: None,
        comment: None,
        check: None,
        references: None,
        generated: None,
    };
    let mut not_null = false;
    // Whether the clauses read so far end with a REFERENCES (and its attributes).
    let mut after_reference = false;
    for node in &c.constraints {
        let Some(NodeEnum::Constraint(k)) = &node.node else {
            return Err("an unknown column constraint".into());
        };
        let last_was_reference = after_reference;
        after_reference = k.contype() == ConstrType::ConstrForeign
            || (last_was_reference && is_attribute(k.contype()));
        match k.contype() {
            ConstrType::ConstrNotnull => not_null = true,
            ConstrType::ConstrNull => {}
            ConstrType::ConstrDefault => col.default = Some(expression(k.raw_expr.as_deref())?),
            ConstrType::ConstrPrimary => col.pk = Some(true),
            ConstrType::ConstrUnique => {
                if k.nulls_not_distinct || !k.options.is_empty() || !k.indexspace.is_empty() {
                    return Err("a unique column with index options has no operation".into());
                }
                col.unique = Some(true);
            }
            ConstrType::ConstrCheck => {
                col.check = Some(CheckConstraint {
                    name: name_or(&k.conname, &[table, &c.colname, "check"]),
                    constraint: expression(k.raw_expr.as_deref())?,
                    no_inherit: k.is_no_inherit.then_some(true),
                })
            }
            ConstrType::ConstrForeign => {
                let referenced = names(&k.pk_attrs);
                let [column] = referenced.as_slice() else {
                    return Err(
                        "a column's REFERENCES without its one referenced column has no operation"
                            .into(),
                    );
                };
                let column = column.clone();
                col.references = Some(ColumnReference {
                    name: name_or(&k.conname, &[table, &c.colname, "fkey"]),
                    table: table_name(k.pktable.as_ref())?,
                    column,
                    on_delete: action(&k.fk_del_action),
                    on_update: action(&k.fk_upd_action),
                    match_type: match_type(&k.fk_matchtype),
                    deferrable: k.deferrable.then_some(true),
                    initially_deferred: k.initdeferred.then_some(true),
                });
                if !k.fk_del_set_cols.is_empty() {
                    return Err("ON DELETE SET NULL (columns) has no column operation".into());
                }
            }
            ConstrType::ConstrGenerated => {
                col.generated = Some(Generated {
                    expression: Some(expression(k.raw_expr.as_deref())?),
                    identity: None,
                })
            }
            ConstrType::ConstrIdentity => {
                if !k.options.is_empty() {
                    return Err("identity sequence options have no operation".into());
                }
                col.generated = Some(Generated {
                    expression: None,
                    identity: Some(Identity {
                        user_specified_values: Some(
                            if k.generated_when == "a" {
                                "ALWAYS"
                            } else {
                                "BY DEFAULT"
                            }
                            .into(),
                        ),
                        sequence_options: None,
                    }),
                })
            }
            // `DEFERRABLE` and `INITIALLY DEFERRED` after a column's REFERENCES belong to it.
            ConstrType::ConstrAttrDeferrable | ConstrType::ConstrAttrDeferred
                if last_was_reference =>
            {
                let r = col.references.as_mut().expect("the reference just read");
                if k.contype() == ConstrType::ConstrAttrDeferrable {
                    r.deferrable = Some(true);
                } else {
                    r.initially_deferred = Some(true);
                }
            }
            ConstrType::ConstrAttrNotDeferrable | ConstrType::ConstrAttrImmediate
                if last_was_reference => {}
            _ => {
                return Err(format!(
                    "column \"{}\": this constraint clause has no operation",
                    c.colname
                ))
            }
        }
    }
    if !not_null && !col.is_pk() {
        col.nullable = Some(true);
    }
    Ok(col)
}

fn is_attribute(t: ConstrType) -> bool {
    matches!(
        t,
        ConstrType::ConstrAttrDeferrable
            | ConstrType::ConstrAttrNotDeferrable
            | ConstrType::ConstrAttrDeferred
            | ConstrType::ConstrAttrImmediate
    )
}

fn table_constraint(table: &str, k: &Constraint) -> Converted<TableConstraint> {
    let keys = names(&k.keys);
    let mut t = TableConstraint {
        name: String::new(),
        kind: TableConstraintType::Check,
        columns: None,
        check: None,
        no_inherit: None,
        nulls_not_distinct: k.nulls_not_distinct.then_some(true),
        deferrable: k.deferrable.then_some(true),
        initially_deferred: k.initdeferred.then_some(true),
        references: None,
        exclude: None,
        index_parameters: index_parameters(k)?,
    };
    match k.contype() {
        ConstrType::ConstrPrimary => {
            t.kind = TableConstraintType::PrimaryKey;
            t.name = name_or(&k.conname, &[table, "pkey"]);
            t.columns = Some(keys);
        }
        ConstrType::ConstrUnique => {
            t.kind = TableConstraintType::Unique;
            t.name = name_or(&k.conname, &[table, &keys.join("_"), "key"]);
            t.columns = Some(keys);
        }
        ConstrType::ConstrCheck => {
            let check = expression(k.raw_expr.as_deref())?;
            let columns = check_columns(k)?;
            t.name = name_or(&k.conname, &[table, &columns[0], "check"]);
            t.check = Some(check);
            t.no_inherit = k.is_no_inherit.then_some(true);
        }
        ConstrType::ConstrForeign => {
            let columns = names(&k.fk_attrs);
            t.kind = TableConstraintType::ForeignKey;
            t.name = name_or(&k.conname, &[table, &columns.join("_"), "fkey"]);
            t.references = Some(reference(k)?);
            t.columns = Some(columns);
        }
        _ => return Err("this table constraint has no operation".into()),
    }
    Ok(t)
}

/// `INCLUDE (…)`; other index options have no field.
fn index_parameters(k: &Constraint) -> Converted<Option<IndexParameters>> {
    if !k.options.is_empty() || !k.indexspace.is_empty() || !k.indexname.is_empty() {
        return Err("WITH (…), USING INDEX and USING INDEX TABLESPACE have no operation".into());
    }
    let including = names(&k.including);
    if including.is_empty() {
        return Ok(None);
    }
    Ok(Some(IndexParameters {
        tablespace: None,
        storage_parameters: None,
        include_columns: Some(including),
    }))
}

fn reference(k: &Constraint) -> Converted<TableReference> {
    let columns = names(&k.pk_attrs);
    if columns.is_empty() {
        return Err("REFERENCES without the referenced columns has no operation: name them".into());
    }
    Ok(TableReference {
        table: table_name(k.pktable.as_ref())?,
        columns,
        on_delete: action(&k.fk_del_action),
        on_update: action(&k.fk_upd_action),
        match_type: match_type(&k.fk_matchtype),
        on_delete_set_columns: {
            let set = names(&k.fk_del_set_cols);
            (!set.is_empty()).then_some(set)
        },
    })
}

/// The columns a check names, in order, once each.
fn check_columns(k: &Constraint) -> Converted<Vec<String>> {
    let mut columns: Vec<String> = Vec::new();
    for name in tree::plain_column_refs(&tree::json(&k.raw_expr)) {
        if !columns.contains(&name) {
            columns.push(name);
        }
    }
    if columns.is_empty() {
        return Err("a check that names no column has no operation".into());
    }
    Ok(columns)
}

fn action(code: &str) -> Option<String> {
    match code {
        "r" => Some("RESTRICT"),
        "c" => Some("CASCADE"),
        "n" => Some("SET NULL"),
        "d" => Some("SET DEFAULT"),
        _ => None, // "a", NO ACTION, is the default
    }
    .map(String::from)
}

fn match_type(code: &str) -> Option<String> {
    match code {
        "f" => Some("FULL".to_string()),
        "p" => Some("PARTIAL".to_string()),
        _ => None,
    }
}

/// The given name, or PostgreSQL's own choice for an unnamed constraint.
fn name_or(given: &str, parts: &[&str]) -> String {
    if given.is_empty() {
        bounded_name(parts)
    } else {
        given.to_string()
    }
}

/// The text of every `String` node of a list: column names.
fn names(list: &[Node]) -> Vec<String> {
    list.iter()
        .flat_map(|n| tree::strings(&tree::json(n)))
        .collect()
}

/// An expression as PostgreSQL's deparser writes it (via `SELECT expr`).
fn expression(node: Option<&Node>) -> Converted<String> {
    let node = node.ok_or("an expression is missing")?;
    let sql = deparse_select(node.clone())?;
    Ok(sql
        .strip_prefix("SELECT ")
        .ok_or("an expression the deparser cannot write")?
        .to_string())
}

/// A type name as PostgreSQL's deparser writes it (via `SELECT NULL::type`).
fn type_text(t: &TypeName) -> Converted<String> {
    let cast = Node {
        node: Some(NodeEnum::TypeCast(Box::new(pg_query::protobuf::TypeCast {
            arg: Some(Box::new(Node {
                node: Some(NodeEnum::AConst(pg_query::protobuf::AConst {
                    isnull: true,
                    location: -1,
                    val: None,
                })),
            })),
            type_name: Some(t.clone()),
            location: -1,
        }))),
    };
    let sql = deparse_select(cast)?;
    sql.strip_prefix("SELECT NULL::")
        .map(String::from)
        .ok_or_else(|| "a type the deparser cannot write".into())
}

/// `SELECT expr`, deparsed: the statement comes from the parser (so every field of it is one
/// the deparser accepts) with `expr` put in place of its target.
fn deparse_select(expr: Node) -> Converted<String> {
    let mut parsed = pg_query::parse("SELECT NULL", pg_query::ParserOptions::DEFAULT)
        .map_err(|e| e.to_string())?;
    let stmt = parsed
        .protobuf
        .stmts
        .first_mut()
        .and_then(|s| s.stmt.as_mut())
        .and_then(|s| s.node.as_mut());
    let Some(NodeEnum::SelectStmt(select)) = stmt else {
        return Err("the deparser's SELECT is missing".into());
    };
    let Some(NodeEnum::ResTarget(target)) =
        select.target_list.first_mut().and_then(|t| t.node.as_mut())
    else {
        return Err("the deparser's SELECT is missing".into());
    };
    target.val = Some(Box::new(expr));
    pg_query::deparse(&parsed.protobuf, pg_query::DeparseOptions::default())
        .map_err(|e| format!("the deparser cannot write it: {e}"))
}

fn placeholder(what: &str) -> String {
    format!("{PLACEHOLDER_PREFIX} SQL expression that {what}")
}

fn alter_table(s: &AlterTableStmt) -> Converted<Vec<Operation>> {
    if s.objtype() != ObjectType::ObjectTable {
        return Err("only ALTER TABLE converts".into());
    }
    if s.missing_ok {
        return Err("IF EXISTS has no operation".into());
    }
    let table = table_name(s.relation.as_ref())?;
    s.cmds
        .iter()
        .map(|node| match &node.node {
            Some(NodeEnum::AlterTableCmd(cmd)) => alter_command(&table, cmd),
            _ => Err("an unknown ALTER TABLE command".into()),
        })
        .collect()
}

fn alter_column(table: &str, column: &str) -> AlterColumn {
    AlterColumn {
        table: table.to_string(),
        column: column.to_string(),
        name: None,
        type_name: None,
        nullable: None,
        default: None,
        comment: None,
        unique: None,
        check: None,
        references: None,
        up: None,
        down: None,
    }
}

fn alter_command(table: &str, cmd: &AlterTableCmd) -> Converted<Operation> {
    let col = cmd.name.as_str();
    match cmd.subtype() {
        AlterTableType::AtAddColumn => {
            if cmd.missing_ok {
                return Err("ADD COLUMN IF NOT EXISTS has no operation".into());
            }
            let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return Err("ADD COLUMN without a column".into());
            };
            let column = column(table, def)?;
            let needs_up =
                !column.is_nullable() && column.default.is_none() && column.generated.is_none();
            let up = needs_up.then(|| {
                placeholder(&format!(
                    "gives the new NOT NULL column {} a value for existing rows and rows the old version writes",
                    quote_ident(&column.name)
                ))
            });
            Ok(Operation::AddColumn(AddColumn {
                table: table.to_string(),
                column,
                up,
            }))
        }
        AlterTableType::AtAlterColumnType => {
            let Some(NodeEnum::ColumnDef(def)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return Err("ALTER COLUMN TYPE without a type".into());
            };
            if def.coll_clause.is_some() {
                return Err("ALTER COLUMN TYPE … COLLATE has no operation".into());
            }
            let mut a = alter_column(table, col);
            let type_name = type_text(def.type_name.as_ref().ok_or("no type")?)?;
            let quoted = quote_ident(col);
            a.up = Some(match def.raw_default.as_deref() {
                Some(using) => expression(Some(using))?,
                None => placeholder(&format!(
                    "converts the old {quoted} to {type_name} (e.g. CAST({quoted} AS {type_name}))"
                )),
            });
            a.down = Some(placeholder(&format!(
                "converts the new {quoted} back to the old type"
            )));
            a.type_name = Some(type_name);
            Ok(Operation::AlterColumn(a))
        }
        AlterTableType::AtSetNotNull => {
            let mut a = alter_column(table, col);
            a.nullable = Some(false);
            a.up = Some(placeholder(&format!(
                "gives a NULL {} a value (e.g. COALESCE({}, …))",
                quote_ident(col),
                quote_ident(col)
            )));
            Ok(Operation::AlterColumn(a))
        }
        AlterTableType::AtDropNotNull => {
            let mut a = alter_column(table, col);
            a.nullable = Some(true);
            a.down = Some(placeholder(&format!(
                "gives the old version's NOT NULL {} a value for the NULLs the new version writes (e.g. COALESCE({}, …))",
                quote_ident(col),
                quote_ident(col)
            )));
            Ok(Operation::AlterColumn(a))
        }
        AlterTableType::AtColumnDefault => {
            let mut a = alter_column(table, col);
            a.default = Some(match cmd.def.as_deref() {
                Some(d) => Some(expression(Some(d))?),
                None => None,
            });
            Ok(Operation::AlterColumn(a))
        }
        AlterTableType::AtAddConstraint => {
            let Some(NodeEnum::Constraint(k)) = cmd.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return Err("ADD CONSTRAINT without a constraint".into());
            };
            create_constraint(table, k).map(Operation::CreateConstraint)
        }
        AlterTableType::AtDropConstraint => {
            if cmd.missing_ok {
                return Err("DROP CONSTRAINT IF EXISTS has no operation".into());
            }
            Ok(Operation::DropConstraint(DropConstraint {
                table: table.to_string(),
                name: col.to_string(),
                up: None,
                down: Some(placeholder(&format!(
                    "makes a value the new version writes fit the dropped constraint {} for the old version",
                    quote_ident(col)
                ))),
            }))
        }
        AlterTableType::AtDropColumn => {
            if cmd.missing_ok {
                return Err("DROP COLUMN IF EXISTS has no operation".into());
            }
            Ok(Operation::DropColumn(DropColumn {
                table: table.to_string(),
                column: col.to_string(),
                down: Some(placeholder(&format!(
                    "fills the dropped {} for rows the new version writes; remove `down` if the column is nullable or has a default",
                    quote_ident(col)
                ))),
            }))
        }
        AlterTableType::AtReplicaIdentity => {
            let Some(NodeEnum::ReplicaIdentityStmt(r)) =
                cmd.def.as_ref().and_then(|d| d.node.as_ref())
            else {
                return Err("REPLICA IDENTITY without an identity".into());
            };
            let kind = match r.identity_type.as_str() {
                "d" => "default",
                "f" => "full",
                "n" => "nothing",
                "i" => "index",
                _ => return Err("an unknown replica identity".into()),
            };
            Ok(Operation::SetReplicaIdentity(SetReplicaIdentity {
                table: table.to_string(),
                identity: ReplicaIdentity {
                    kind: kind.to_string(),
                    index: (kind == "index").then(|| r.name.clone()),
                },
            }))
        }
        _ => Err("this ALTER TABLE command has no operation".into()),
    }
}

/// `ADD CONSTRAINT`: each column of the constraint needs an `up` that makes old values fit
/// (`down` is a copy: the old columns have no such constraint). `NOT VALID` is what
/// create_constraint does anyway (it validates at complete).
fn create_constraint(table: &str, k: &Constraint) -> Converted<CreateConstraint> {
    let mut c = CreateConstraint {
        table: table.to_string(),
        name: String::new(),
        kind: ConstraintType::Check,
        columns: None,
        check: None,
        references: None,
        no_inherit: None,
        nulls_not_distinct: k.nulls_not_distinct.then_some(true),
        deferrable: k.deferrable.then_some(true),
        initially_deferred: k.initdeferred.then_some(true),
        index_parameters: index_parameters(k)?,
        up: None,
        down: None,
    };
    let columns = match k.contype() {
        ConstrType::ConstrCheck => {
            let columns = check_columns(k)?;
            c.name = name_or(&k.conname, &[table, &columns[0], "check"]);
            c.check = Some(expression(k.raw_expr.as_deref())?);
            c.no_inherit = k.is_no_inherit.then_some(true);
            columns
        }
        ConstrType::ConstrUnique => {
            let columns = names(&k.keys);
            c.kind = ConstraintType::Unique;
            c.name = name_or(&k.conname, &[table, &columns.join("_"), "key"]);
            columns
        }
        ConstrType::ConstrPrimary => {
            c.kind = ConstraintType::PrimaryKey;
            c.name = name_or(&k.conname, &[table, "pkey"]);
            names(&k.keys)
        }
        ConstrType::ConstrForeign => {
            let columns = names(&k.fk_attrs);
            c.kind = ConstraintType::ForeignKey;
            c.name = name_or(&k.conname, &[table, &columns.join("_"), "fkey"]);
            c.references = Some(reference(k)?);
            columns
        }
        _ => return Err("this constraint has no operation".into()),
    };
    if columns.is_empty() {
        return Err("a constraint without columns has no operation".into());
    }
    let what = match c.kind {
        ConstraintType::Check => "passes the check",
        ConstraintType::Unique | ConstraintType::PrimaryKey => "is unique",
        ConstraintType::ForeignKey => "references an existing row",
    };
    c.up = Some(
        columns
            .iter()
            .map(|col| {
                let text = placeholder(&format!(
                    "turns an old {} into one that {what} (the column itself, {}, when every value already does)",
                    quote_ident(col),
                    quote_ident(col)
                ));
                (col.clone(), text)
            })
            .collect::<BTreeMap<_, _>>(),
    );
    c.columns = Some(columns);
    Ok(c)
}

fn rename(s: &RenameStmt) -> Converted<Operation> {
    if s.missing_ok {
        return Err("IF EXISTS has no operation".into());
    }
    let table = || table_name(s.relation.as_ref());
    match s.rename_type() {
        ObjectType::ObjectColumn if s.relation_type() == ObjectType::ObjectTable => {
            Ok(Operation::RenameColumn(RenameColumn {
                table: table()?,
                from: s.subname.clone(),
                to: s.newname.clone(),
            }))
        }
        ObjectType::ObjectTable => Ok(Operation::RenameTable(RenameTable {
            from: table()?,
            to: s.newname.clone(),
        })),
        ObjectType::ObjectTabconstraint => Ok(Operation::RenameConstraint(RenameConstraint {
            table: table()?,
            from: s.subname.clone(),
            to: s.newname.clone(),
        })),
        _ => Err("only tables, columns and constraints are renamed by an operation".into()),
    }
}

fn create_index(s: &IndexStmt) -> Converted<CreateIndex> {
    if s.idxname.is_empty() {
        return Err("an index without a name has no operation: name it".into());
    }
    if s.if_not_exists
        || !s.table_space.is_empty()
        || !s.index_including_params.is_empty()
        || s.nulls_not_distinct
    {
        return Err(
            "IF NOT EXISTS, TABLESPACE, INCLUDE and NULLS NOT DISTINCT have no index operation"
                .into(),
        );
    }
    let table = table_name(s.relation.as_ref())?;
    let columns = s
        .index_params
        .iter()
        .map(|p| match &p.node {
            Some(NodeEnum::IndexElem(e)) => index_column(e),
            _ => Err("an unknown index element".into()),
        })
        .collect::<Converted<Vec<_>>>()?;
    let storage_parameters = if s.options.is_empty() {
        None
    } else {
        Some(storage_parameters(&s.options)?)
    };
    Ok(CreateIndex {
        name: s.idxname.clone(),
        table,
        columns: IndexColumns(columns),
        method: (s.access_method != "btree").then(|| s.access_method.clone()),
        unique: s.unique.then_some(true),
        predicate: s
            .where_clause
            .as_deref()
            .map(|w| expression(Some(w)))
            .transpose()?,
        storage_parameters,
    })
}

/// `WITH (fillfactor = 70)` as `fillfactor=70`.
fn storage_parameters(options: &[Node]) -> Converted<String> {
    let mut out = Vec::new();
    for o in options {
        let Some(NodeEnum::DefElem(d)) = &o.node else {
            return Err("an unknown storage parameter".into());
        };
        let value = match d.arg.as_deref().and_then(|a| a.node.as_ref()) {
            Some(NodeEnum::Integer(i)) => i.ival.to_string(),
            Some(NodeEnum::Float(f)) => f.fval.clone(),
            Some(NodeEnum::String(s)) => s.sval.clone(),
            Some(NodeEnum::Boolean(b)) => b.boolval.to_string(),
            // A bare word (`off`) is read as a type name.
            Some(NodeEnum::TypeName(t)) => tree::strings(&tree::json(&t.names)).join("."),
            _ => return Err("a storage parameter without a plain value".into()),
        };
        out.push(format!("{}={value}", d.defname));
    }
    Ok(out.join(", "))
}

fn index_column(e: &IndexElem) -> Converted<IndexColumn> {
    if e.name.is_empty() || e.expr.is_some() {
        return Err("an index on an expression has no operation".into());
    }
    if !e.opclassopts.is_empty() {
        return Err("operator class parameters have no operation".into());
    }
    let collation = names(&e.collation);
    let opclass = names(&e.opclass);
    Ok(IndexColumn {
        column: e.name.clone(),
        collate: (!collation.is_empty()).then(|| collation.join(".")),
        sort: match e.ordering() {
            SortByDir::SortbyAsc => Some("ASC".into()),
            SortByDir::SortbyDesc => Some("DESC".into()),
            SortByDir::SortbyUsing => return Err("ORDER BY USING has no operation".into()),
            _ => None,
        },
        nulls: match e.nulls_ordering() {
            SortByNulls::SortbyNullsFirst => Some("FIRST".into()),
            SortByNulls::SortbyNullsLast => Some("LAST".into()),
            _ => None,
        },
        opclass: (!opclass.is_empty()).then(|| OpClass {
            name: opclass.join("."),
            params: None,
        }),
    })
}

fn drop(s: &DropStmt) -> Converted<Vec<Operation>> {
    if s.missing_ok {
        return Err("IF EXISTS has no operation".into());
    }
    if s.behavior == pg_query::protobuf::DropBehavior::DropCascade as i32 {
        return Err("CASCADE has no operation".into());
    }
    let object_names = s
        .objects
        .iter()
        .map(|o| match tree::strings(&tree::json(o)).as_slice() {
            [name] => Ok(name.clone()),
            _ => Err("a schema-qualified name: tandem works in one schema (--schema)".to_string()),
        })
        .collect::<Converted<Vec<_>>>()?;
    match s.remove_type() {
        ObjectType::ObjectTable => Ok(object_names
            .into_iter()
            .map(|name| Operation::DropTable(DropTable { name }))
            .collect()),
        ObjectType::ObjectIndex => Ok(object_names
            .into_iter()
            .map(|name| Operation::DropIndex(DropIndex { name }))
            .collect()),
        _ => Err("only tables and indexes are dropped by an operation".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ops(sql: &str) -> Vec<serde_json::Value> {
        convert(sql)
            .expect("parses")
            .operations
            .iter()
            .map(|op| serde_json::to_value(op).unwrap())
            .collect()
    }

    fn one(sql: &str) -> serde_json::Value {
        let mut all = ops(sql);
        assert_eq!(all.len(), 1, "{all:?}");
        all.remove(0)
    }

    #[test]
    fn create_table_columns_and_constraints() {
        let op = one("CREATE TABLE items (
                id bigint PRIMARY KEY GENERATED BY DEFAULT AS IDENTITY,
                name varchar(100) NOT NULL UNIQUE,
                price numeric(10,2) DEFAULT 0 CHECK (price >= 0),
                owner_id int REFERENCES owners (id) ON DELETE CASCADE,
                note text,
                CONSTRAINT items_name_price UNIQUE (name, price),
                CHECK (length(name) > 1)
            );");
        let t = &op["create_table"];
        assert_eq!(t["name"], "items");
        let cols = t["columns"].as_array().unwrap();
        assert_eq!(cols[0]["pk"], true);
        assert!(cols[0].get("nullable").is_none());
        assert_eq!(
            cols[0]["generated"]["identity"]["user_specified_values"],
            "BY DEFAULT"
        );
        assert_eq!(cols[1]["type"], "varchar(100)");
        assert!(cols[1].get("nullable").is_none(), "NOT NULL is the default");
        assert_eq!(cols[1]["unique"], true);
        assert_eq!(cols[2]["nullable"], true);
        assert_eq!(cols[2]["default"], "0");
        assert_eq!(cols[2]["check"]["name"], "items_price_check");
        assert_eq!(cols[2]["check"]["constraint"], "price >= 0");
        assert_eq!(cols[3]["references"]["table"], "owners");
        assert_eq!(cols[3]["references"]["column"], "id");
        assert_eq!(cols[3]["references"]["on_delete"], "CASCADE");
        assert_eq!(cols[3]["references"]["name"], "items_owner_id_fkey");
        assert_eq!(cols[4]["nullable"], true);
        let cons = t["constraints"].as_array().unwrap();
        assert_eq!(cons[0]["type"], "unique");
        assert_eq!(cons[0]["columns"], serde_json::json!(["name", "price"]));
        assert_eq!(cons[1]["type"], "check");
        assert_eq!(cons[1]["check"], "length(name) > 1");
        assert_eq!(cons[1]["name"], "items_name_check");
    }

    #[test]
    fn a_column_reference_keeps_its_deferrable_attributes() {
        let op = one(
            "CREATE TABLE t (o int REFERENCES owners (id) DEFERRABLE INITIALLY DEFERRED NOT NULL)",
        );
        let r = &op["create_table"]["columns"][0]["references"];
        assert_eq!(r["deferrable"], true);
        assert_eq!(r["initially_deferred"], true);
        assert!(op["create_table"]["columns"][0].get("nullable").is_none());
        // Anywhere else an attribute has no field: the statement is kept as SQL.
        let c = convert("CREATE TABLE t (a int UNIQUE DEFERRABLE)").unwrap();
        assert!(matches!(c.operations[0], Operation::Sql(_)));
    }

    #[test]
    fn add_column() {
        let op = one("ALTER TABLE users ADD COLUMN email text DEFAULT 'none' NOT NULL");
        assert_eq!(op["add_column"]["table"], "users");
        assert_eq!(op["add_column"]["column"]["default"], "'none'");
        assert!(op["add_column"].get("up").is_none());
        let op = one("ALTER TABLE users ADD COLUMN age int NOT NULL");
        assert!(op["add_column"]["up"]
            .as_str()
            .unwrap()
            .starts_with(PLACEHOLDER_PREFIX));
        let op = one("ALTER TABLE users ADD COLUMN bio text");
        assert_eq!(op["add_column"]["column"]["nullable"], true);
        assert!(op["add_column"].get("up").is_none());
    }

    #[test]
    fn alter_column() {
        let op = one("ALTER TABLE users ALTER COLUMN age TYPE bigint");
        let a = &op["alter_column"];
        assert_eq!(a["type"], "bigint");
        assert!(a["up"].as_str().unwrap().starts_with(PLACEHOLDER_PREFIX));
        assert!(a["down"].as_str().unwrap().starts_with(PLACEHOLDER_PREFIX));
        let op = one("ALTER TABLE users ALTER COLUMN age TYPE text USING age::text");
        assert_eq!(op["alter_column"]["up"], "age::text");
        let op = one("ALTER TABLE users ALTER COLUMN age SET NOT NULL");
        assert_eq!(op["alter_column"]["nullable"], false);
        assert!(op["alter_column"]["up"]
            .as_str()
            .unwrap()
            .starts_with(PLACEHOLDER_PREFIX));
        let op = one("ALTER TABLE users ALTER COLUMN age DROP NOT NULL");
        assert_eq!(op["alter_column"]["nullable"], true);
        assert!(op["alter_column"]["down"].is_string());
        let op = one("ALTER TABLE users ALTER COLUMN age SET DEFAULT 18");
        assert_eq!(op["alter_column"]["default"], "18");
        let op = one("ALTER TABLE users ALTER COLUMN age DROP DEFAULT");
        assert_eq!(op["alter_column"]["default"], serde_json::Value::Null);
        assert!(op["alter_column"]
            .as_object()
            .unwrap()
            .contains_key("default"));
    }

    #[test]
    fn add_and_drop_constraints() {
        let op = one("ALTER TABLE items ADD CONSTRAINT price_positive CHECK (price > 0) NOT VALID");
        let c = &op["create_constraint"];
        assert_eq!(c["type"], "check");
        assert_eq!(c["check"], "price > 0");
        assert_eq!(c["columns"], serde_json::json!(["price"]));
        assert!(c["up"]["price"]
            .as_str()
            .unwrap()
            .starts_with(PLACEHOLDER_PREFIX));
        let op = one("ALTER TABLE items ADD UNIQUE (a, b)");
        assert_eq!(op["create_constraint"]["type"], "unique");
        assert_eq!(op["create_constraint"]["name"], "items_a_b_key");
        let op = one(
            "ALTER TABLE items ADD CONSTRAINT fk FOREIGN KEY (owner) REFERENCES owners (id) ON DELETE SET NULL",
        );
        let c = &op["create_constraint"];
        assert_eq!(c["type"], "foreign_key");
        assert_eq!(c["references"]["table"], "owners");
        assert_eq!(c["references"]["on_delete"], "SET NULL");
        let op = one("ALTER TABLE items ADD PRIMARY KEY (id)");
        assert_eq!(op["create_constraint"]["type"], "primary_key");
        assert_eq!(op["create_constraint"]["name"], "items_pkey");
        let op = one("ALTER TABLE items DROP CONSTRAINT fk");
        assert_eq!(op["drop_constraint"]["name"], "fk");
        assert!(op["drop_constraint"]["down"].is_string());
    }

    #[test]
    fn renames_and_drops() {
        let all = ops(
            "ALTER TABLE a RENAME COLUMN x TO y; ALTER TABLE a RENAME TO b;
            ALTER TABLE b RENAME CONSTRAINT c1 TO c2; ALTER TABLE b DROP COLUMN y;
            DROP TABLE b, c; DROP INDEX CONCURRENTLY i;",
        );
        assert_eq!(all[0]["rename_column"]["from"], "x");
        assert_eq!(all[0]["rename_column"]["to"], "y");
        assert_eq!(all[1]["rename_table"]["from"], "a");
        assert_eq!(all[1]["rename_table"]["to"], "b");
        assert_eq!(all[2]["rename_constraint"]["to"], "c2");
        assert_eq!(all[3]["drop_column"]["column"], "y");
        assert!(all[3]["drop_column"]["down"].is_string());
        assert_eq!(all[4]["drop_table"]["name"], "b");
        assert_eq!(all[5]["drop_table"]["name"], "c");
        assert_eq!(all[6]["drop_index"]["name"], "i");
    }

    #[test]
    fn create_index() {
        let op = one("CREATE UNIQUE INDEX CONCURRENTLY idx ON items USING btree (name DESC NULLS LAST, code text_pattern_ops) WHERE deleted_at IS NULL");
        let i = &op["create_index"];
        assert_eq!(i["name"], "idx");
        assert_eq!(i["table"], "items");
        assert_eq!(i["unique"], true);
        assert!(i.get("method").is_none());
        assert_eq!(i["columns"][0]["sort"], "DESC");
        assert_eq!(i["columns"][0]["nulls"], "LAST");
        assert_eq!(i["columns"][1]["opclass"]["name"], "text_pattern_ops");
        assert_eq!(i["predicate"], "deleted_at IS NULL");
        let op = one("CREATE INDEX g ON items USING gin (tags) WITH (fastupdate = off)");
        assert_eq!(op["create_index"]["method"], "gin");
        assert_eq!(op["create_index"]["storage_parameters"], "fastupdate=off");
    }

    #[test]
    fn replica_identity() {
        let op = one("ALTER TABLE items REPLICA IDENTITY FULL");
        assert_eq!(op["set_replica_identity"]["identity"]["type"], "full");
        let op = one("ALTER TABLE items REPLICA IDENTITY USING INDEX items_pkey");
        assert_eq!(op["set_replica_identity"]["identity"]["type"], "index");
        assert_eq!(
            op["set_replica_identity"]["identity"]["index"],
            "items_pkey"
        );
    }

    #[test]
    fn anything_else_is_sql_with_a_note() {
        let c = convert("CREATE VIEW v AS SELECT 1;\nALTER TABLE public.t ADD COLUMN x int;\nCREATE INDEX ON t (x);").unwrap();
        assert_eq!(c.operations.len(), 3);
        for op in &c.operations {
            assert!(matches!(op, Operation::Sql(_)), "{op:?}");
        }
        let Operation::Sql(s) = &c.operations[0] else {
            unreachable!()
        };
        assert_eq!(s.up, "CREATE VIEW v AS SELECT 1");
        assert!(c
            .notes
            .iter()
            .any(|n| n.message.contains("schema-qualified")));
        assert!(c.notes.iter().any(|n| n.message.contains("only one")));
    }

    #[test]
    fn placeholders_are_noted() {
        let c = convert("ALTER TABLE t ALTER COLUMN a SET NOT NULL").unwrap();
        assert_eq!(c.notes.len(), 1);
        assert!(c.notes[0].message.contains("fill in up:"), "{:?}", c.notes);
    }

    #[test]
    fn a_parse_error_says_where() {
        let e = convert("CREATE TABLE t (id int);\nALTER TABLE t ADD COLUMN").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("syntax error"), "{e:?}");
    }
}
