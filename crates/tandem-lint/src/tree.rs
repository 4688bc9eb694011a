//! Questions asked of a whole parse subtree (which functions it calls, which columns it names).
//!
//! libpg_query's tree has hundreds of node types; walking its serde form answers these
//! questions for every one of them without a match arm per type.

use pg_query::NodeEnum;
use serde_json::Value;

/// The subtree as JSON: each node is `{"TypeName": {fields}}`.
pub fn json<T: serde::Serialize>(node: &T) -> Value {
    serde_json::to_value(node).unwrap_or(Value::Null)
}

/// The unqualified names of every function the subtree calls (`pg_catalog.random` →
/// `random`), lower case as the parser folded them.
pub fn called_functions(tree: &Value) -> Vec<String> {
    let mut names = Vec::new();
    visit(tree, &mut |key, value| {
        if key == "FuncCall" {
            if let Some(last) = strings(&value["funcname"]).pop() {
                names.push(last);
            }
        }
        true
    });
    names
}

/// The unqualified column names (`ColumnRef`s of one part) outside subqueries that read a
/// table: inside a `SELECT … FROM other` a name may belong to the other table.
pub fn plain_column_refs(tree: &Value) -> Vec<String> {
    let mut names = Vec::new();
    visit(tree, &mut |key, value| {
        if key == "ColumnRef" {
            if let [name] = strings(&value["fields"]).as_slice() {
                names.push(name.clone());
            }
        }
        !(key == "SubLink" && reads_a_table(value))
    });
    names
}

/// Whether a subquery has a FROM clause.
fn reads_a_table(sublink: &Value) -> bool {
    sublink["subselect"]["node"]["SelectStmt"]["from_clause"]
        .as_array()
        .is_some_and(|from| !from.is_empty())
}

/// Every `String` node's text in the subtree, in order: the parts of a qualified name.
pub fn strings(tree: &Value) -> Vec<String> {
    let mut out = Vec::new();
    visit(tree, &mut |key, value| {
        if key == "String" {
            if let Some(s) = value["sval"].as_str() {
                out.push(s.to_string());
            }
        }
        true
    });
    out
}

/// Calls `f(key, value)` for every object member, depth first; `f` returns whether to
/// descend into `value`.
fn visit(tree: &Value, f: &mut dyn FnMut(&str, &Value) -> bool) {
    match tree {
        Value::Object(map) => {
            for (key, value) in map {
                if f(key, value) {
                    visit(value, f);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| visit(item, f)),
        _ => {}
    }
}

/// Whether a `DefElem` list (statement options) holds `name` (`full`, `concurrently`).
pub fn has_option(options: &[pg_query::Node], name: &str) -> bool {
    options.iter().any(|o| match &o.node {
        Some(NodeEnum::DefElem(d)) => d.defname.eq_ignore_ascii_case(name),
        _ => false,
    })
}
