//! Turns a migration file's text into a [`Migration`], or into every problem found in it.
//!
//! The text is parsed into a `serde_json::Value`, checked against the embedded JSON Schema and
//! for internal consistency, and only then deserialized into the typed model. Each problem
//! names the offending value by JSON Pointer and, located again in the text, by line and
//! column. No I/O happens here: the caller reads the file.

use crate::ident::MAX_IDENT_BYTES;
use crate::migration::{Migration, MigrationFile};
use crate::position::locate;
use crate::problem::{pointer_token, Problem};
use jsonschema::error::ValidationErrorKind as Kind;
use jsonschema::{ValidationError, Validator};
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

/// How the placeholders `tandem convert` writes for an `up`/`down` that SQL does not say
/// begin; a file holding one is refused until a person writes the expression.
pub const PLACEHOLDER_PREFIX: &str = "TODO:";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Yaml,
}

impl Format {
    /// The format of a file named `path`: `.json`, `.yaml` or `.yml`.
    pub fn from_path(path: &str) -> Option<Format> {
        let (_, ext) = path.rsplit_once('.')?;
        match ext.to_ascii_lowercase().as_str() {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            _ => None,
        }
    }
}

/// Loads one migration file. `display` is how the file is named in messages; `stem` is the file
/// name without extension, the migration's name unless the file sets `name`.
pub fn load_migration(
    display: &str,
    stem: &str,
    text: &str,
    format: Format,
) -> Result<Migration, Vec<Problem>> {
    // Editors on Windows may write a byte order mark; neither parser accepts one.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let value = parse(text, format).map_err(|problem| {
        let file = Some(display.to_string());
        vec![Problem { file, ..*problem }]
    })?;
    let mut found = schema_problems(&value);
    found.extend(consistency_problems(&value, stem));
    if found.is_empty() {
        match serde_json::from_value::<MigrationFile>(value) {
            Ok(file) => return Ok(build(file, stem)),
            // The schema should have caught this; the message is worse but still an error.
            Err(e) => found.push(Found::new("", format!("invalid migration: {e}"))),
        }
    }
    Err(finish(found, display, text, format))
}

fn build(file: MigrationFile, stem: &str) -> Migration {
    Migration {
        name: file.name.unwrap_or_else(|| stem.to_string()),
        version_schema: file.version_schema,
        operations: file.operations,
        recorded_version_schema: None,
    }
}

fn parse(text: &str, format: Format) -> Result<Value, Box<Problem>> {
    let parsed = match format {
        Format::Json => serde_json::from_str(text).map_err(|e| {
            let at = (e.line(), e.column().max(1));
            syntax_problem("JSON", &e.to_string(), Some(at))
        }),
        Format::Yaml => serde_norway::from_str(text).map_err(|e| match e.location() {
            None => yaml_documents_problem(text),
            Some(_) => yaml_problem(&e),
        }),
    };
    parsed.map(|Strict(value)| value).map_err(Box::new)
}

fn yaml_problem(e: &serde_norway::Error) -> Problem {
    let at = e.location().map(|l| (l.line(), l.column()));
    syntax_problem("YAML", &e.to_string(), at)
}

/// serde_norway reports a stream of several documents without a position, also when the
/// second "document" is just where the scanner gave up on a broken first one; reading the
/// documents one by one finds the real error and its position.
fn yaml_documents_problem(text: &str) -> Problem {
    // The iterator repeats its last error forever, hence `take`.
    for document in serde_norway::Deserializer::from_str(text).take(2) {
        if let Err(e) = Strict::deserialize(document) {
            if e.location().is_some() {
                return yaml_problem(&e);
            }
        }
    }
    let message = "a migration file is one YAML document, found more than one";
    let line = second_document_line(text).unwrap_or(1);
    syntax_problem("YAML", message, Some((line, 1)))
}

/// The 1-based line of the `---` that starts a second document.
fn second_document_line(text: &str) -> Option<usize> {
    let mut content_seen = false;
    for (i, line) in text.lines().enumerate() {
        let marker = line == "---" || line.starts_with("--- ");
        if marker && content_seen {
            return Some(i + 1);
        }
        let trimmed = line.trim_start();
        content_seen |= !marker && !trimmed.is_empty() && !trimmed.starts_with('#');
    }
    None
}

fn syntax_problem(language: &str, message: &str, at: Option<(usize, usize)>) -> Problem {
    let message = without_positions(message);
    let mut problem = Problem::new("", format!("invalid {language}: {message}"));
    problem.line = at.map(|(l, _)| l);
    problem.column = at.map(|(_, c)| c);
    problem
}

/// Removes the parsers' ` at line N column M`: the Problem carries the position separately.
fn without_positions(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find(" at line ") {
        out.push_str(&rest[..i]);
        let after = &rest[i + " at line ".len()..];
        let digits = |s: &str| s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let line_len = digits(after);
        let tail = &after[line_len..];
        match tail.strip_prefix(" column ") {
            Some(column) if line_len > 0 && digits(column) > 0 => {
                rest = &column[digits(column)..];
            }
            _ => {
                out.push_str(" at line ");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A parsed value that refuses duplicate keys, which both parsers would otherwise resolve by
/// silently dropping all but the last (two `up:` in one operation, say).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // NaN and infinities (YAML's `.nan`, `.inf`) have no JSON form; no field takes a float.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Strict::deserialize(d).map(|Strict(v)| v)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(Strict(key)) = map.next_key()? {
            // YAML keys may be numbers or booleans; JSON (and pgroll) make them strings.
            let key = match key {
                Value::String(s) => s,
                other => other.to_string(),
            };
            if object.contains_key(&key) {
                return Err(A::Error::custom(format!("duplicate key \"{key}\"")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// A problem before it is located: `focus` is the pointer whose position is reported, which
/// for an unknown field is the field's key rather than the object named by the pointer.
struct Found {
    problem: Problem,
    focus: String,
}

impl Found {
    fn new(pointer: &str, message: impl Into<String>) -> Self {
        Found {
            problem: Problem::new(pointer, message),
            focus: pointer.to_string(),
        }
    }

    fn hint(mut self, hint: Option<String>) -> Self {
        self.problem.hint = hint;
        self
    }

    fn focus(mut self, focus: String) -> Self {
        self.focus = focus;
        self
    }
}

/// Deduplicates, locates and orders the problems as they appear in the file.
fn finish(found: Vec<Found>, display: &str, text: &str, format: Format) -> Vec<Problem> {
    let mut problems: Vec<Problem> = Vec::new();
    for Found { mut problem, focus } in found {
        let duplicate = problems
            .iter()
            .any(|p| p.pointer == problem.pointer && p.message == problem.message);
        if duplicate {
            continue;
        }
        let at = locate_nearest(text, format, &focus);
        problem.file = Some(display.to_string());
        problem.line = at.map(|(l, _)| l);
        problem.column = at.map(|(_, c)| c);
        problems.push(problem);
    }
    problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
    problems
}

/// The position of `pointer`, or of its nearest ancestor the scanner can find.
fn locate_nearest(text: &str, format: Format, pointer: &str) -> Option<(usize, usize)> {
    let mut pointer = pointer;
    loop {
        if let Some(at) = locate(text, format, pointer) {
            return Some(at);
        }
        pointer = &pointer[..pointer.rfind('/')?];
    }
}

// ---------------------------------------------------------------------------------------------
// Schema validation

struct Schema {
    document: Value,
    validator: Validator,
    operations: Vec<String>,
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let text = include_str!("../../../schema/migration.schema.json");
        // Both are compiled into the binary and covered by tests, so failing here is a build bug.
        let document: Value = serde_json::from_str(text).expect("embedded schema is JSON");
        let validator = jsonschema::draft202012::new(&document).expect("embedded schema is valid");
        let operations = operation_names(&document);
        Schema {
            document,
            validator,
            operations,
        }
    })
}

/// The operation names, read from the schema so the two cannot disagree.
fn operation_names(document: &Value) -> Vec<String> {
    let branches = document.pointer("/$defs/operation/oneOf");
    let branches = branches.and_then(Value::as_array).map_or(&[][..], |b| b);
    branches
        .iter()
        .filter_map(|b| b.pointer("/required/0")?.as_str().map(str::to_string))
        .collect()
}

/// The names of the valid operations, in the schema's order.
pub fn operation_keys() -> &'static [String] {
    &schema().operations
}

fn schema_problems(value: &Value) -> Vec<Found> {
    let mut found = Vec::new();
    for error in schema().validator.iter_errors(value) {
        convert(&error, &mut found);
    }
    found
}

fn convert(error: &ValidationError, found: &mut Vec<Found>) {
    let path = error.instance_path().as_str();
    let schema_path = error.schema_path().as_str();
    let instance = error.instance().as_ref();
    if schema_path.starts_with("/$defs/operation/") && is_operation_path(path) {
        let context = match error.kind() {
            Kind::OneOfNotValid { context } => &context[..],
            _ => &[],
        };
        operation_problems(path, instance, context, found);
        return;
    }
    match error.kind() {
        Kind::Type { .. } => found.push(type_problem(path, schema_path, instance)),
        Kind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            found.push(Found::new(
                path,
                format!("missing required field \"{name}\""),
            ));
        }
        Kind::AdditionalProperties { unexpected } => {
            for field in unexpected {
                found.push(unknown_field(path, schema_path, field));
            }
        }
        Kind::Enum { options } => found.push(enum_problem(path, options, instance)),
        Kind::MinItems { .. } if path == "/operations" => found.push(empty_operations()),
        Kind::MinLength { .. } => found.push(Found::new(path, "must not be empty")),
        Kind::OneOfNotValid { context } | Kind::AnyOf { context } => {
            alternatives(path, schema_path, instance, context, found);
        }
        _ => found.push(Found::new(path, error.to_string())),
    }
}

/// `/operations/<n>`: the place where an operation's single-key object goes.
fn is_operation_path(path: &str) -> bool {
    path.strip_prefix("/operations/")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// One useful problem for an operation that matches none of the schema's alternatives, instead
/// of one failure per alternative.
fn operation_problems(
    path: &str,
    operation: &Value,
    context: &[Vec<ValidationError<'static>>],
    found: &mut Vec<Found>,
) {
    let keys = operation_keys();
    let Some(object) = operation.as_object() else {
        let message = format!(
            "expected an operation (an object with one key such as \"add_column\"), found {}",
            describe(operation)
        );
        found.push(Found::new(path, message).hint(Some(operations_hint(None))));
        return;
    };
    let names: Vec<&str> = object.keys().map(String::as_str).collect();
    match names[..] {
        [] => {
            let hint = operations_hint(None);
            found.push(Found::new(path, "operation is empty").hint(Some(hint)));
        }
        [name] if keys.iter().any(|k| k == name) => {
            let body = format!("{path}/{}", pointer_token(name));
            let inside = |e: &&ValidationError| {
                let p = e.instance_path().as_str();
                p == body || p.starts_with(&format!("{body}/"))
            };
            for error in context.iter().flatten().filter(inside) {
                convert(error, found);
            }
        }
        [name] => {
            let focus = format!("{path}/{}", pointer_token(name));
            let message = format!("unknown operation \"{name}\"");
            found.push(
                Found::new(path, message)
                    .hint(Some(operations_hint(Some(name))))
                    .focus(focus),
            );
        }
        _ => {
            let message = format!(
                "operation must have exactly one key, found: {}",
                names.join(", ")
            );
            let hint = "write each operation as its own list item".to_string();
            found.push(Found::new(path, message).hint(Some(hint)));
        }
    }
}

fn operations_hint(typo: Option<&str>) -> String {
    let keys = operation_keys();
    let list = keys.join(", ");
    match typo.and_then(|t| closest(t, keys.iter().map(String::as_str))) {
        Some(guess) => format!("did you mean \"{guess}\"? operations are: {list}"),
        None => format!("operations are: {list}"),
    }
}

fn empty_operations() -> Found {
    Found::new(
        "/operations",
        "operations is empty: this migration would do nothing",
    )
    .hint(Some(
        "add the operations to run; an empty migration would be recorded as applied \
         (pgroll accepts it silently, and migrations have been lost that way)"
            .to_string(),
    ))
}

fn type_problem(path: &str, schema_path: &str, instance: &Value) -> Found {
    if path.is_empty() {
        let message = match instance {
            Value::Null => "the file is empty".to_string(),
            other => format!("expected an object, found {}", describe(other)),
        };
        let hint = "a migration is an object with an \"operations\" list".to_string();
        return Found::new(path, message).hint(Some(hint));
    }
    let expected = schema_at(schema_path).map_or_else(|| "another type".to_string(), type_names);
    let scalar = matches!(instance, Value::Number(_) | Value::Bool(_));
    let hint = (scalar && expected.contains("a string"))
        .then(|| "put the value in quotes to make it a string".to_string());
    Found::new(
        path,
        format!("expected {expected}, found {}", describe(instance)),
    )
    .hint(hint)
}

fn unknown_field(path: &str, schema_path: &str, field: &str) -> Found {
    let owner = schema_path.strip_suffix("/additionalProperties");
    let known: Vec<&str> = owner
        .and_then(schema_at)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().map(String::as_str).collect())
        .unwrap_or_default();
    let hint = (!known.is_empty()).then(|| {
        let list = known.join(", ");
        match closest(field, known.iter().copied()) {
            Some(guess) => format!("did you mean \"{guess}\"? fields here: {list}"),
            None => format!("fields here: {list}"),
        }
    });
    Found::new(path, format!("unknown field \"{field}\""))
        .hint(hint)
        .focus(format!("{path}/{}", pointer_token(field)))
}

fn enum_problem(path: &str, options: &Value, instance: &Value) -> Found {
    let options: Vec<&str> = options
        .as_array()
        .map(|o| o.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let message = format!(
        "expected one of {}, found {}",
        options.join(", "),
        describe(instance)
    );
    let guess = instance
        .as_str()
        .and_then(|s| closest(s, options.iter().copied()));
    Found::new(path, message).hint(guess.map(|g| format!("did you mean \"{g}\"?")))
}

/// A value matching none of a `oneOf`'s alternatives. The alternatives whose type fits are the
/// ones the author meant, so their errors are reported; if none fits, the expected types are.
fn alternatives(
    path: &str,
    schema_path: &str,
    instance: &Value,
    context: &[Vec<ValidationError<'static>>],
    found: &mut Vec<Found>,
) {
    let fits = |branch: &&Vec<ValidationError>| {
        !branch
            .iter()
            .any(|e| matches!(e.kind(), Kind::Type { .. }) && e.instance_path().as_str() == path)
    };
    if let Some(branch) = context.iter().filter(fits).min_by_key(|b| b.len()) {
        for error in branch {
            convert(error, found);
        }
        return;
    }
    let expected: Vec<String> = schema_at(schema_path)
        .and_then(Value::as_array)
        .map(|subs| subs.iter().map(type_names).collect())
        .unwrap_or_default();
    let expected = if expected.is_empty() {
        "another kind of value".to_string()
    } else {
        expected.join(" or ")
    };
    found.push(Found::new(
        path,
        format!("expected {expected}, found {}", describe(instance)),
    ));
}

/// The schema node at a JSON Pointer into the schema document.
fn schema_at(pointer: &str) -> Option<&'static Value> {
    schema().document.pointer(pointer)
}

/// What a schema node accepts, in words: "a string or null". Follows `$ref`s within the
/// document, since that is how the schema shares definitions.
fn type_names(node: &Value) -> String {
    let node = match node.get("$ref").and_then(Value::as_str) {
        Some(reference) => reference
            .strip_prefix('#')
            .and_then(schema_at)
            .unwrap_or(node),
        None => node,
    };
    let node = node.get("type").unwrap_or(node);
    let names: Vec<&str> = match node {
        Value::String(t) => vec![type_name(t)],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).map(type_name).collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        "another kind of value".to_string()
    } else {
        names.join(" or ")
    }
}

fn type_name(json_type: &str) -> &'static str {
    match json_type {
        "string" => "a string",
        "boolean" => "a boolean (true or false)",
        "object" => "an object",
        "array" => "a list",
        "null" => "null",
        "integer" => "an integer",
        "number" => "a number",
        _ => "another type",
    }
}

/// A value as the user wrote it, briefly: `the string "yes"`, `a list`.
fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.chars().count() > 40 => {
            let head: String = s.chars().take(40).collect();
            format!("the string \"{head}…\"")
        }
        Value::String(s) => format!("the string \"{s}\""),
        Value::Array(_) => "a list".to_string(),
        Value::Object(_) => "an object".to_string(),
    }
}

/// The candidate closest to a misspelt `word`, if it is close enough to be what was meant.
fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = word.chars().count().div_ceil(3);
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of neighbours as one edit (`tabel`), the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

// ---------------------------------------------------------------------------------------------
// Internal consistency: what the schema cannot say and needs no database. These read the raw
// value, not the typed model, so they are reported together with the schema's problems.

fn consistency_problems(value: &Value, stem: &str) -> Vec<Found> {
    let mut found = Vec::new();
    name_problems(value, stem, &mut found);
    let operations = value.get("operations").and_then(Value::as_array);
    for (i, operation) in operations.into_iter().flatten().enumerate() {
        let Some((key, raw_body)) = single_entry(operation) else {
            continue;
        };
        let Some(body) = raw_body.as_object() else {
            continue;
        };
        let at = format!("/operations/{i}/{}", pointer_token(key));
        long_name_problems(&at, key, raw_body, &mut found);
        placeholder_problems(&at, body, &mut found);
        match key.as_str() {
            "create_table" => create_table_problems(&at, body, &mut found),
            "add_column" => {
                if let Some(column) = body.get("column").and_then(Value::as_object) {
                    pk_nullable(&format!("{at}/column"), column, &mut found);
                }
            }
            "create_index" => create_index_problems(&at, body, &mut found),
            "create_constraint" => constraint_problems(&at, body, false, &mut found),
            _ => {}
        }
    }
    found
}

/// An `up`/`down` (or one column's, in a map) still holding a placeholder of `tandem convert`:
/// run, it would be an SQL error in the middle of a migration, so it is refused up front.
fn placeholder_problems(at: &str, body: &Map<String, Value>, found: &mut Vec<Found>) {
    let is_placeholder = |v: &Value| {
        v.as_str()
            .is_some_and(|s| s.trim_start().starts_with(PLACEHOLDER_PREFIX))
    };
    for field in ["up", "down"] {
        let mut values = Vec::new();
        match body.get(field) {
            Some(Value::Object(map)) => {
                for (column, v) in map {
                    values.push((format!("{at}/{field}/{}", pointer_token(column)), v));
                }
            }
            Some(v) => values.push((format!("{at}/{field}"), v)),
            None => {}
        }
        for (pointer, value) in values.into_iter().filter(|(_, v)| is_placeholder(v)) {
            let text = value.as_str().unwrap_or_default();
            found.push(
                Found::new(&pointer, format!("`{field}` is still a placeholder: {text}"))
                    .hint(Some(format!(
                        "replace it with the SQL expression it describes (`{field}` is evaluated for each row)"
                    ))),
            );
        }
    }
}

/// The names an operation gives to tables, columns, constraints and indexes: (path, what).
/// `*` stands for every item of a list.
fn named_paths(operation: &str) -> &'static [(&'static str, &'static str)] {
    match operation {
        "create_table" => &[
            ("name", "table"),
            ("columns/*/name", "column"),
            ("columns/*/check/name", "constraint"),
            ("columns/*/references/name", "constraint"),
            ("constraints/*/name", "constraint"),
        ],
        "add_column" => &[
            ("column/name", "column"),
            ("column/check/name", "constraint"),
            ("column/references/name", "constraint"),
        ],
        "alter_column" => &[
            ("name", "column"),
            ("unique/name", "constraint"),
            ("check/name", "constraint"),
            ("references/name", "constraint"),
        ],
        "create_constraint" => &[("name", "constraint")],
        "create_index" => &[("name", "index")],
        "rename_table" => &[("to", "table")],
        "rename_column" => &[("to", "column")],
        "rename_constraint" => &[("to", "constraint")],
        _ => &[],
    }
}

/// A name over PostgreSQL's 63 bytes would be truncated silently (and could then collide),
/// so, as pgroll does, it is refused.
fn long_name_problems(at: &str, key: &str, body: &Value, found: &mut Vec<Found>) {
    for (path, what) in named_paths(key) {
        let mut values = Vec::new();
        values_at(
            body,
            &path.split('/').collect::<Vec<_>>(),
            at.to_string(),
            &mut values,
        );
        for (pointer, value) in values {
            let Some(name) = value.as_str() else { continue };
            if name.len() > MAX_IDENT_BYTES {
                let message = format!(
                    "{what} name \"{name}\" is {} bytes; PostgreSQL names are at most \
                     {MAX_IDENT_BYTES} bytes",
                    name.len()
                );
                let hint = format!("choose a {what} name of at most {MAX_IDENT_BYTES} bytes");
                found.push(Found::new(&pointer, message).hint(Some(hint)));
            }
        }
    }
}

fn values_at<'a>(
    value: &'a Value,
    path: &[&str],
    pointer: String,
    out: &mut Vec<(String, &'a Value)>,
) {
    let Some((first, rest)) = path.split_first() else {
        out.push((pointer, value));
        return;
    };
    if *first == "*" {
        for (i, item) in value.as_array().into_iter().flatten().enumerate() {
            values_at(item, rest, format!("{pointer}/{i}"), out);
        }
    } else if let Some(next) = value.get(*first) {
        values_at(
            next,
            rest,
            format!("{pointer}/{}", pointer_token(first)),
            out,
        );
    }
}

fn single_entry(value: &Value) -> Option<(&String, &Value)> {
    let object = value.as_object()?;
    let mut entries = object.iter();
    let entry = entries.next()?;
    entries.next().is_none().then_some(entry)
}

/// The version schema is named after the migration unless `version_schema` is set, and
/// PostgreSQL silently truncates longer names, which would make two versions collide.
fn name_problems(value: &Value, stem: &str, found: &mut Vec<Found>) {
    if let Some(version_schema) = value.get("version_schema").and_then(Value::as_str) {
        if version_schema.len() > MAX_IDENT_BYTES {
            let message = format!(
                "version schema name is {} bytes; PostgreSQL names are at most {MAX_IDENT_BYTES}",
                version_schema.len()
            );
            let hint = "choose a shorter \"version_schema\"".to_string();
            found.push(Found::new("/version_schema", message).hint(Some(hint)));
        }
        return;
    }
    let (pointer, name) = match value.get("name").and_then(Value::as_str) {
        Some(name) => ("/name", name),
        None => ("", stem),
    };
    if name.len() > MAX_IDENT_BYTES {
        let message = format!(
            "migration name \"{name}\" is {} bytes, too long for the version schema named after \
             it (PostgreSQL names are at most {MAX_IDENT_BYTES} bytes)",
            name.len()
        );
        let hint = "set \"version_schema\" to a shorter name".to_string();
        found.push(Found::new(pointer, message).hint(Some(hint)));
    }
}

fn create_table_problems(at: &str, body: &Map<String, Value>, found: &mut Vec<Found>) {
    let table = body.get("name").and_then(Value::as_str).unwrap_or("?");
    let columns = body.get("columns").and_then(Value::as_array);
    let mut first_seen: HashMap<&str, usize> = HashMap::new();
    for (j, column) in columns.into_iter().flatten().enumerate() {
        let Some(column) = column.as_object() else {
            continue;
        };
        let column_at = format!("{at}/columns/{j}");
        pk_nullable(&column_at, column, found);
        let Some(name) = column.get("name").and_then(Value::as_str) else {
            continue;
        };
        if let Some(first) = first_seen.insert(name, j) {
            first_seen.insert(name, first);
            let message = format!("column \"{name}\" appears twice in table \"{table}\"");
            let hint = format!("the first is at {at}/columns/{first}; rename or remove one");
            found.push(Found::new(&format!("{column_at}/name"), message).hint(Some(hint)));
        }
    }
    let constraints = body.get("constraints").and_then(Value::as_array);
    for (k, constraint) in constraints.into_iter().flatten().enumerate() {
        if let Some(constraint) = constraint.as_object() {
            constraint_problems(&format!("{at}/constraints/{k}"), constraint, true, found);
        }
    }
}

/// A primary key column is NOT NULL whatever the file says; saying otherwise is a mistake.
fn pk_nullable(at: &str, column: &Map<String, Value>, found: &mut Vec<Found>) {
    let flag = |field| column.get(field).and_then(Value::as_bool) == Some(true);
    if flag("pk") && flag("nullable") {
        let name = column.get("name").and_then(Value::as_str).unwrap_or("?");
        let message = format!("primary key column \"{name}\" cannot be nullable");
        let hint = "remove \"nullable: true\"; primary key columns are always NOT NULL";
        found.push(Found::new(&format!("{at}/nullable"), message).hint(Some(hint.to_string())));
    }
}

fn create_index_problems(at: &str, body: &Map<String, Value>, found: &mut Vec<Found>) {
    let empty = match body.get("columns") {
        Some(Value::Array(items)) => items.is_empty(),
        Some(Value::Object(map)) => map.is_empty(),
        _ => false,
    };
    if empty {
        found.push(Found::new(
            &format!("{at}/columns"),
            "an index needs at least one column",
        ));
    }
}

/// The fields each kind of constraint cannot do without, in `create_constraint` and in
/// `create_table`'s `constraints` (where `exclude` is also possible).
fn constraint_problems(
    at: &str,
    body: &Map<String, Value>,
    in_table: bool,
    found: &mut Vec<Found>,
) {
    let Some(kind) = body.get("type").and_then(Value::as_str) else {
        return;
    };
    let needs: &[&str] = match kind {
        "check" => &["check"],
        "foreign_key" => &["references"],
        "unique" | "primary_key" => &["columns"],
        "exclude" if in_table => &["exclude"],
        _ => &[],
    };
    let label = kind.replace('_', " ");
    for field in needs {
        match body.get(*field) {
            None | Some(Value::Null) => found.push(Found::new(
                at,
                format!("missing field \"{field}\", required for a {label} constraint"),
            )),
            Some(Value::Array(items)) if items.is_empty() => found.push(Found::new(
                &format!("{at}/{field}"),
                format!("a {label} constraint needs at least one column"),
            )),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, format: Format) -> Result<Migration, Vec<Problem>> {
        load_migration("m.yaml", "m", text, format)
    }

    fn problems(text: &str) -> Vec<Problem> {
        load(text, Format::Yaml).expect_err("should not load")
    }

    fn pointers(problems: &[Problem]) -> Vec<&str> {
        problems.iter().map(|p| p.pointer.as_str()).collect()
    }

    #[test]
    fn a_placeholder_up_or_down_is_refused() {
        let p = problems(
            "operations:\n  - alter_column: {table: t, column: a, type: bigint, up: 'TODO: SQL expression that converts a', down: a}\n  - create_constraint: {table: t, name: c, type: check, columns: [\"my col\"], check: \"true\", up: {\"my col\": '  TODO: make it fit'}}\n",
        );
        assert_eq!(
            pointers(&p),
            [
                "/operations/0/alter_column/up",
                "/operations/1/create_constraint/up/my col"
            ]
        );
        assert!(p[0].message.contains("still a placeholder"), "{}", p[0]);
        assert!(p[0].hint.as_deref().unwrap().contains("replace it"));
        // An expression that merely mentions TODO is fine.
        load(
            "operations:\n  - alter_column: {table: t, column: a, type: text, up: \"'TODO: ' || a\", down: a}\n",
            Format::Yaml,
        )
        .unwrap();
    }

    #[test]
    fn format_from_path() {
        assert_eq!(Format::from_path("a/01_x.json"), Some(Format::Json));
        assert_eq!(Format::from_path("01_x.YAML"), Some(Format::Yaml));
        assert_eq!(Format::from_path("01_x.yml"), Some(Format::Yaml));
        assert_eq!(Format::from_path("01_x.sql"), None);
        assert_eq!(Format::from_path("README"), None);
    }

    #[test]
    fn schema_compiles_and_lists_every_operation() {
        assert_eq!(operation_keys().len(), 15);
        assert!(operation_keys().iter().any(|k| k == "set_replica_identity"));
    }

    #[test]
    fn name_defaults_to_stem() {
        let m = load(
            "operations:\n  - drop_index:\n      name: i\n",
            Format::Yaml,
        )
        .unwrap();
        assert_eq!(m.name, "m");
        assert_eq!(m.operations[0].key(), "drop_index");
    }

    #[test]
    fn wrong_type_names_the_value() {
        let p = problems(
            "operations:\n  - add_column:\n      table: t\n      column:\n        name: a\n        type: int\n        nullable: \"yes\"\n",
        );
        assert_eq!(pointers(&p), ["/operations/0/add_column/column/nullable"]);
        assert_eq!(
            p[0].message,
            "expected a boolean (true or false), found the string \"yes\""
        );
        assert_eq!((p[0].line, p[0].column), (Some(7), Some(9)));
        assert_eq!(p[0].file.as_deref(), Some("m.yaml"));
    }

    #[test]
    fn unknown_field_names_the_object_and_points_at_the_key() {
        let p = problems("operations:\n  - drop_table:\n      name: t\n      cascade: true\n");
        assert_eq!(pointers(&p), ["/operations/0/drop_table"]);
        assert_eq!(p[0].message, "unknown field \"cascade\"");
        assert_eq!(p[0].line, Some(4));
        assert_eq!(p[0].hint.as_deref(), Some("fields here: name"));
    }

    #[test]
    fn unknown_field_suggests_the_closest() {
        let p = problems("operations:\n  - drop_column:\n      tabel: t\n      column: c\n");
        let unknown = p.iter().find(|p| p.message.contains("tabel")).unwrap();
        assert!(unknown
            .hint
            .as_deref()
            .unwrap()
            .starts_with("did you mean \"table\"?"));
        assert!(p
            .iter()
            .any(|p| p.message == "missing required field \"table\""));
    }

    #[test]
    fn operation_shape_problems_are_single() {
        let p = problems("operations:\n  - add_colum: {}\n  - {}\n  - 5\n  - drop_index: {name: a}\n    drop_table: {name: b}\n");
        let messages: Vec<&str> = p.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(
            messages,
            [
                "unknown operation \"add_colum\"",
                "operation is empty",
                "expected an operation (an object with one key such as \"add_column\"), found the number 5",
                "operation must have exactly one key, found: drop_index, drop_table",
            ]
        );
        assert!(p[0]
            .hint
            .as_deref()
            .unwrap()
            .starts_with("did you mean \"add_column\"?"));
        assert_eq!(
            pointers(&p),
            [
                "/operations/0",
                "/operations/1",
                "/operations/2",
                "/operations/3"
            ]
        );
    }

    #[test]
    fn errors_inside_a_known_operation_are_its_own() {
        let p = problems(
            "operations:\n  - alter_column:\n      table: t\n      column: c\n      comment: 3\n",
        );
        assert_eq!(pointers(&p), ["/operations/0/alter_column/comment"]);
        assert_eq!(
            p[0].message,
            "expected a string or null, found the number 3"
        );
    }

    #[test]
    fn index_columns_forms() {
        for columns in [
            "[a, b]",
            "[{column: a, sort: DESC}]",
            "{a: {}, b: {opclass: {name: x}}}",
        ] {
            let text = format!(
                "operations:\n  - create_index: {{name: i, table: t, columns: {columns}}}\n"
            );
            load(&text, Format::Yaml).unwrap();
        }
        let p = problems("operations:\n  - create_index: {name: i, table: t, columns: [a, {column: b, sortt: x}, 3]}\n");
        let got: Vec<(&str, &str)> = p
            .iter()
            .map(|p| (p.pointer.as_str(), p.message.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "/operations/0/create_index/columns/1",
                    "unknown field \"sortt\""
                ),
                (
                    "/operations/0/create_index/columns/2",
                    "expected a string or an object, found the number 3"
                ),
            ]
        );
        let p = problems("operations:\n  - create_index: {name: i, table: t, columns: 7}\n");
        assert_eq!(
            p[0].message,
            "expected a list or an object, found the number 7"
        );
    }

    #[test]
    fn enum_values_are_listed() {
        let p = problems(
            "operations:\n  - create_constraint: {table: t, name: c, type: uniq, columns: [a]}\n",
        );
        assert_eq!(pointers(&p), ["/operations/0/create_constraint/type"]);
        assert_eq!(
            p[0].message,
            "expected one of unique, check, foreign_key, primary_key, found the string \"uniq\""
        );
        assert_eq!(p[0].hint.as_deref(), Some("did you mean \"unique\"?"));
    }

    #[test]
    fn empty_operations_is_an_error() {
        let p = problems("operations: []\n");
        assert_eq!(pointers(&p), ["/operations"]);
        assert!(p[0].hint.is_some());
    }

    #[test]
    fn empty_and_non_object_files() {
        assert_eq!(problems("")[0].message, "the file is empty");
        assert_eq!(
            problems("- a\n")[0].message,
            "expected an object, found a list"
        );
        let p = load("{}", Format::Json).unwrap_err();
        assert_eq!(p[0].message, "missing required field \"operations\"");
    }

    #[test]
    fn syntax_errors_have_positions() {
        let p = load(
            "{\n  \"operations\": [\n    {\"sql\" {}}\n  ]\n}",
            Format::Json,
        )
        .unwrap_err();
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].line, p[0].column), (Some(3), Some(12)));
        assert!(
            p[0].message.starts_with("invalid JSON: "),
            "{}",
            p[0].message
        );
        assert!(!p[0].message.contains("line"));
        let p = problems("operations:\n  - sql:\n      up: 'unterminated\n");
        assert!(
            p[0].message.starts_with("invalid YAML: "),
            "{}",
            p[0].message
        );
        assert!(p[0].line.is_some() && p[0].column.is_some());
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        let p = problems("operations:\n  - sql:\n      up: a\n      up: b\n");
        assert!(p[0].message.contains("duplicate key \"up\""), "{}", p[0]);
        assert!(p[0].line.is_some());
        let p = load("{\"operations\": [], \"operations\": []}", Format::Json).unwrap_err();
        assert_eq!(p[0].message, "invalid JSON: duplicate key \"operations\"");
        assert_eq!(p[0].line, Some(1));
    }

    #[test]
    fn positions_are_removed_from_parser_messages() {
        assert_eq!(
            without_positions("did not find expected key at line 4 column 5, while parsing a block mapping at line 2 column 3"),
            "did not find expected key, while parsing a block mapping"
        );
        assert_eq!(without_positions("x at line y"), "x at line y");
    }

    #[test]
    fn several_yaml_documents() {
        let p = problems("---\noperations: []\n---\noperations: []\n");
        assert_eq!(
            p[0].message,
            "invalid YAML: a migration file is one YAML document, found more than one"
        );
        assert_eq!(p[0].line, Some(3));
        // An unterminated quote makes the parser see a second document; the real error is found.
        let p = problems("\"operations:\n  - drop_index:\n      name: i\n");
        assert!(p[0].message.contains("quoted scalar"), "{}", p[0]);
        assert_eq!(p[0].line, Some(4));
    }

    #[test]
    fn numbers_for_strings_get_a_quoting_hint() {
        let p = problems("operations:\n  - add_column:\n      table: t\n      column: {name: p, type: numeric, default: 0.00}\n");
        assert_eq!(p[0].message, "expected a string, found the number 0.0");
        assert_eq!(
            p[0].hint.as_deref(),
            Some("put the value in quotes to make it a string")
        );
    }

    #[test]
    fn comments_only_is_an_empty_file_at_line_one() {
        let p = problems("# nothing yet\n");
        assert_eq!((p[0].line, p[0].column), (Some(1), Some(1)));
    }

    #[test]
    fn byte_order_mark_is_ignored() {
        load(
            "\u{feff}{\"operations\": [{\"drop_index\": {\"name\": \"i\"}}]}",
            Format::Json,
        )
        .unwrap();
    }

    #[test]
    fn consistency_checks() {
        let p = problems(
            "operations:
  - create_table:
      name: t
      columns:
        - {name: id, type: int, pk: true, nullable: true}
        - {name: a, type: int}
        - {name: a, type: text}
      constraints:
        - {name: c, type: check}
  - add_column:
      table: t
      column: {name: b, type: int, pk: true, nullable: true}
  - create_index: {name: i, table: t, columns: []}
  - create_constraint: {table: t, name: f, type: foreign_key}
  - create_constraint: {table: t, name: u, type: unique, columns: []}
",
        );
        assert_eq!(
            pointers(&p),
            [
                "/operations/0/create_table/columns/0/nullable",
                "/operations/0/create_table/columns/2/name",
                "/operations/0/create_table/constraints/0",
                "/operations/1/add_column/column/nullable",
                "/operations/2/create_index/columns",
                "/operations/3/create_constraint",
                "/operations/4/create_constraint/columns",
            ]
        );
        assert_eq!(p[1].message, "column \"a\" appears twice in table \"t\"");
        assert_eq!(
            p[5].message,
            "missing field \"references\", required for a foreign key constraint"
        );
    }

    #[test]
    fn long_names_need_a_version_schema() {
        let long = "x".repeat(64);
        let text = "operations:\n  - drop_index: {name: i}\n";
        let p = load_migration("f.yaml", &long, text, Format::Yaml).unwrap_err();
        assert_eq!(pointers(&p), [""]);
        assert!(p[0].hint.as_deref().unwrap().contains("version_schema"));
        let with = format!("version_schema: v1\n{text}");
        let m = load_migration("f.yaml", &long, &with, Format::Yaml).unwrap();
        assert_eq!(m.version_schema.as_deref(), Some("v1"));
        let too_long = format!("version_schema: {long}\n{text}");
        let p = load_migration("f.yaml", "m", &too_long, Format::Yaml).unwrap_err();
        assert_eq!(pointers(&p), ["/version_schema"]);
    }

    #[test]
    fn names_over_63_bytes_are_refused() {
        let long = "n".repeat(64);
        let ok = "n".repeat(63);
        let text = format!(
            "operations:\n  - create_table:\n      name: {long}\n      columns:\n        - {{name: {long}, type: int, check: {{name: {long}, constraint: 'true'}}}}\n        - {{name: {ok}, type: int}}\n      constraints:\n        - {{name: {long}, type: unique, columns: [{ok}]}}\n  - create_index: {{name: {long}, table: t, columns: [a]}}\n  - alter_column: {{table: t, column: a, unique: {{name: {long}}}}}\n"
        );
        let p = problems(&text);
        assert_eq!(
            pointers(&p),
            [
                "/operations/0/create_table/name",
                "/operations/0/create_table/columns/0/name",
                "/operations/0/create_table/columns/0/check/name",
                "/operations/0/create_table/constraints/0/name",
                "/operations/1/create_index/name",
                "/operations/2/alter_column/unique/name",
            ]
        );
        assert!(p[0].message.starts_with("table name"), "{}", p[0].message);
    }

    #[test]
    fn problems_are_deduplicated_and_in_file_order() {
        let p = problems(
            "operations:\n  - rename_table: {from: a, to: 1}\n  - rename_table: {from: 1, to: b}\n",
        );
        assert_eq!(
            pointers(&p),
            [
                "/operations/0/rename_table/to",
                "/operations/1/rename_table/from"
            ]
        );
    }

    proptest::proptest! {
        #[test]
        fn loading_never_panics(text in "[-:\\[\\]{},'\"#|> \\na-z0-9_]{0,120}") {
            let _ = load(&text, Format::Yaml);
            let _ = load(&text, Format::Json);
        }
    }

    #[test]
    fn edit_distance_basics() {
        assert_eq!(edit_distance("add_colum", "add_column"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("tabel", "table"), 1);
        assert_eq!(closest("to", ["up", "table"].into_iter()), None);
    }
}
