//! `tandem update`: rewrites a migration file of an older pgroll format into the current one,
//! on the file's own JSON value (so nothing but the old forms changes). No I/O here.
//!
//! What older pgroll files have that the current format does not:
//! - a top-level `name`: the migration is named after its file now. It goes when it equals
//!   the file's name; when it differs it stays, since it is the name the migration was
//!   applied under (pgroll's history and tandem's record it), and renaming the file instead
//!   would move it in the folder's order.
//! - `create_index` `columns` as a list of names (`[name]`, pgroll before 0.10) or as an
//!   object mapping each column to its settings (`{name: {}}`, 0.10 to 0.13): the current
//!   form is a list of objects (`[{column: name, …}]`), which keeps the columns' order.

use serde_json::{Map, Value};

/// Rewrites `file` (a migration file's value) in place; returns what changed, in words.
pub fn update_migration(file: &mut Value, file_stem: &str) -> Vec<String> {
    let mut changes = Vec::new();
    let Some(top) = file.as_object_mut() else {
        return changes;
    };
    if top.get("name").and_then(Value::as_str) == Some(file_stem) {
        top.remove("name");
        changes.push("removed the top-level `name` (it is the file's name)".to_string());
    }
    if let Some(Value::Array(operations)) = top.get_mut("operations") {
        for (i, operation) in operations.iter_mut().enumerate() {
            if let Some(columns) = operation
                .get_mut("create_index")
                .and_then(|o| o.get_mut("columns"))
            {
                if let Some(change) = current_index_columns(columns) {
                    changes.push(format!("/operations/{i}/create_index/columns: {change}"));
                }
            }
        }
    }
    changes
}

/// The current form of `create_index` columns, or `None` when they already have it.
fn current_index_columns(columns: &mut Value) -> Option<String> {
    let (items, was) = match columns {
        Value::Array(items) if items.iter().any(Value::is_string) => (
            items
                .iter()
                .map(|item| match item {
                    Value::String(name) => column_object(name, Map::new()),
                    other => other.clone(),
                })
                .collect(),
            "a list of names",
        ),
        Value::Object(map) => (
            map.iter()
                .map(|(name, settings)| {
                    column_object(name, settings.as_object().cloned().unwrap_or_default())
                })
                .collect(),
            "an object of column settings",
        ),
        _ => return None,
    };
    *columns = Value::Array(items);
    Some(format!("{was} became a list of columns"))
}

fn column_object(name: &str, settings: Map<String, Value>) -> Value {
    let mut object = Map::new();
    object.insert("column".to_string(), Value::String(name.to_string()));
    object.extend(settings);
    Value::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn legacy_name_and_index_columns_take_the_current_form() {
        let mut file = json!({
            "name": "10_create_index",
            "operations": [
                {"create_index": {"name": "i", "table": "t", "columns": {"b": {}, "a": {"opclass": {"name": "int8_ops"}}}}},
                {"create_index": {"name": "j", "table": "t", "columns": ["x", "y"]}},
                {"create_index": {"name": "k", "table": "t", "columns": [{"column": "z"}]}}
            ]
        });
        let changes = update_migration(&mut file, "10_create_index");
        assert_eq!(changes.len(), 3, "{changes:?}");
        assert_eq!(
            file,
            json!({
                "operations": [
                    {"create_index": {"name": "i", "table": "t", "columns": [{"column": "b"}, {"column": "a", "opclass": {"name": "int8_ops"}}]}},
                    {"create_index": {"name": "j", "table": "t", "columns": [{"column": "x"}, {"column": "y"}]}},
                    {"create_index": {"name": "k", "table": "t", "columns": [{"column": "z"}]}}
                ]
            })
        );
    }

    #[test]
    fn a_name_that_differs_from_the_file_stays_and_current_files_are_left_alone() {
        let mut file = json!({"name": "applied_as", "operations": [{"sql": {"up": "SELECT 1"}}]});
        let before = file.clone();
        assert!(update_migration(&mut file, "01_other").is_empty());
        assert_eq!(file, before);
    }
}
