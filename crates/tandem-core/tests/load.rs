//! Loading real migration files: pgroll's examples must load, and each kind of bad file must be
//! reported with the right JSON Pointer and a position.

use std::path::{Path, PathBuf};
use tandem_core::load::{load_migration, Format};
use tandem_core::migration::Operation;
use tandem_core::problem::Problem;

/// pgroll's example migrations live outside the repository (see the design notes); the
/// variable lets other checkouts point at their copy.
fn conformance_dir() -> PathBuf {
    let candidates = [
        std::env::var_os("TANDEM_CONFORMANCE_DIR").map(PathBuf::from),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/pgroll")),
        Some(PathBuf::from("/work/shared/conformance/pgroll")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|d| d.is_dir())
        .expect("pgroll conformance files not found; set TANDEM_CONFORMANCE_DIR")
}

fn files_in(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    files.sort();
    files
}

fn load_path(path: &Path) -> Result<tandem_core::migration::Migration, Vec<Problem>> {
    let display = path.display().to_string();
    let stem = path.file_stem().unwrap().to_str().unwrap();
    let text = std::fs::read_to_string(path).unwrap();
    let format = Format::from_path(&display).unwrap();
    load_migration(&display, stem, &text, format)
}

fn assert_all_load(files: &[PathBuf]) {
    let mut failures = Vec::new();
    for path in files {
        if let Err(problems) = load_path(path) {
            failures.extend(problems.iter().map(ToString::to_string));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_pgroll_yaml_example_loads() {
    let files = files_in(&conformance_dir(), "yaml");
    assert_eq!(files.len(), 56);
    assert_all_load(&files);
}

#[test]
fn every_legacy_json_example_loads() {
    let files = files_in(&conformance_dir().join("legacy-json"), "json");
    assert_eq!(files.len(), 54);
    assert_all_load(&files);
}

#[test]
fn names_come_from_the_file_name_or_the_legacy_name_field() {
    let dir = conformance_dir();
    let legacy = load_path(&dir.join("legacy-json/03_add_column.json")).unwrap();
    assert_eq!(legacy.name, "03_add_column_to_products");
    let yaml = load_path(&dir.join("03_add_column.yaml")).unwrap();
    assert_eq!(yaml.name, "03_add_column");
    let versioned = load_path(&dir.join("56_with_version_schema.yaml")).unwrap();
    assert!(versioned.version_schema.is_some());
    // As pgroll names it: the schema, `_`, then the file's `version_schema`.
    assert_eq!(
        versioned.version_schema_name("public"),
        "public_with_version_schema"
    );
    assert_eq!(yaml.version_schema_name("public"), "public_03_add_column");
}

#[test]
fn a_version_schema_name_too_long_with_its_prefix_is_refused() {
    let schema = tandem_core::schema::Schema {
        name: "a_rather_long_schema_name".to_string(),
        ..Default::default()
    };
    let text = format!(
        "version_schema: {}\noperations:\n  - sql: {{up: SELECT 1}}\n",
        "v".repeat(40)
    );
    let migration = load_migration("m.yaml", "m", &text, Format::Yaml).unwrap();
    let input = tandem_core::planner::PlanInput {
        schema: &schema,
        migration: &migration,
        previous_version_schema: None,
    };
    let problems = tandem_core::planner::plan(&input).unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].pointer, "/version_schema");
    let long_name = format!("m{}", "x".repeat(40));
    let text = "operations:\n  - sql: {up: SELECT 1}\n";
    let migration = load_migration("m.yaml", &long_name, text, Format::Yaml).unwrap();
    let input = tandem_core::planner::PlanInput {
        schema: &schema,
        migration: &migration,
        previous_version_schema: None,
    };
    let problems = tandem_core::planner::plan(&input).unwrap_err();
    assert_eq!(problems[0].pointer, "");
    assert!(problems[0]
        .hint
        .as_deref()
        .unwrap()
        .contains("version_schema"));
}

#[test]
fn legacy_index_columns_object_is_normalised() {
    let path = conformance_dir().join("legacy-json/54_create_index_with_opclass.json");
    let migration = load_path(&path).unwrap();
    let Operation::CreateIndex(index) = &migration.operations[0] else {
        panic!("expected create_index");
    };
    assert_eq!(index.columns.0[0].column, "id");
    assert_eq!(
        index.columns.0[0].opclass.as_ref().unwrap().name,
        "int8_ops"
    );
}

fn bad(name: &str) -> Vec<Problem> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bad")
        .join(name);
    let problems = load_path(&path).expect_err("bad fixture loaded");
    for p in &problems {
        assert!(p.file.as_deref().unwrap().ends_with(name), "{p}");
        assert!(p.line.is_some() && p.column.is_some(), "no position: {p}");
    }
    problems
}

/// (pointer, line) of each problem.
fn located(problems: &[Problem]) -> Vec<(&str, usize)> {
    problems
        .iter()
        .map(|p| (p.pointer.as_str(), p.line.unwrap()))
        .collect()
}

#[test]
fn json_syntax_error() {
    let p = bad("syntax_error.json");
    assert_eq!(located(&p), [("", 8)]);
    assert_eq!(p[0].column, Some(5));
    assert!(p[0].message.starts_with("invalid JSON: "), "{}", p[0]);
}

#[test]
fn yaml_syntax_error() {
    let p = bad("syntax_error.yaml");
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].pointer, "");
    assert_eq!(p[0].line, Some(4), "{}", p[0]);
    assert!(p[0].message.starts_with("invalid YAML: "), "{}", p[0]);
}

#[test]
fn unknown_field() {
    let p = bad("unknown_field.yaml");
    assert_eq!(located(&p), [("/operations/0/drop_column", 5)]);
    assert_eq!(p[0].message, "unknown field \"cascade\"");
    assert_eq!(
        p[0].hint.as_deref(),
        Some("fields here: table, column, down")
    );
}

#[test]
fn wrong_type_yaml_and_json() {
    let pointer = "/operations/0/add_column/column/nullable";
    let p = bad("wrong_type.yaml");
    assert_eq!(located(&p), [(pointer, 7)]);
    assert_eq!(p[0].column, Some(9));
    let p = bad("wrong_type.json");
    assert_eq!(located(&p), [(pointer, 9)]);
    assert_eq!(p[0].column, Some(11));
    assert_eq!(
        p[0].message,
        "expected a boolean (true or false), found the string \"yes\""
    );
}

#[test]
fn two_keys_in_one_operation() {
    let p = bad("two_keys.yaml");
    assert_eq!(located(&p), [("/operations/0", 2)]);
    assert_eq!(
        p[0].message,
        "operation must have exactly one key, found: rename_table, drop_table"
    );
}

#[test]
fn unknown_operation() {
    let p = bad("unknown_operation.yaml");
    assert_eq!(located(&p), [("/operations/1", 4)]);
    assert_eq!(p[0].message, "unknown operation \"add_colum\"");
    let hint = p[0].hint.as_deref().unwrap();
    assert!(hint.starts_with("did you mean \"add_column\"? operations are: create_table, "));
}

#[test]
fn empty_operations() {
    let p = bad("empty_operations.yaml");
    assert_eq!(located(&p), [("/operations", 2)]);
    assert!(p[0].hint.as_deref().unwrap().contains("pgroll"));
}

#[test]
fn missing_required_field() {
    let p = bad("missing_field.yaml");
    assert_eq!(located(&p), [("/operations/0/rename_column", 2)]);
    assert_eq!(p[0].message, "missing required field \"to\"");
}

#[test]
fn duplicate_column_in_create_table() {
    let p = bad("duplicate_column.yaml");
    assert_eq!(
        located(&p),
        [("/operations/0/create_table/columns/2/name", 10)]
    );
    assert_eq!(
        p[0].message,
        "column \"email\" appears twice in table \"users\""
    );
}

#[test]
fn every_error_in_a_file_is_reported() {
    let p = bad("three_errors.yaml");
    assert_eq!(
        located(&p),
        [
            ("/operations/0/create_table/columns/0/nullable", 8),
            ("/operations/1/add_column/column", 14),
            ("/operations/2/create_index/columns", 18),
        ]
    );
    assert_eq!(p[1].message, "unknown field \"nulable\"");
    assert!(p[1]
        .hint
        .as_deref()
        .unwrap()
        .starts_with("did you mean \"nullable\"?"));
    let shown = p[0].to_string();
    assert!(
        shown.contains("three_errors.yaml:8:11: /operations/0/create_table/columns/0/nullable: "),
        "{shown}"
    );
}

/// Every pointer into a parsed value, with the member name it ends in (if any).
fn pointers(value: &serde_json::Value, at: String, out: &mut Vec<(String, Option<String>)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let p = format!("{at}/{}", tandem_core::problem::pointer_token(k));
                out.push((p.clone(), Some(k.clone())));
                pointers(v, p, out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{at}/{i}");
                out.push((p.clone(), None));
                pointers(v, p, out);
            }
        }
        _ => {}
    }
}

/// The scanner must find every value of pgroll's examples, as written and as re-emitted in
/// other styles (serde's YAML puts sequences at their key's indentation), and land on the
/// member's key.
#[test]
fn every_value_in_the_examples_is_located() {
    let dir = conformance_dir();
    let mut files = files_in(&dir, "yaml");
    files.extend(files_in(&dir.join("legacy-json"), "json"));
    let mut misses = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let format = Format::from_path(&path.display().to_string()).unwrap();
        let value: serde_json::Value = match format {
            Format::Json => serde_json::from_str(&text).unwrap(),
            Format::Yaml => serde_norway::from_str(&text).unwrap(),
        };
        let variants = [
            (text, format),
            (serde_norway::to_string(&value).unwrap(), Format::Yaml),
            (serde_json::to_string(&value).unwrap(), Format::Json),
            (serde_json::to_string_pretty(&value).unwrap(), Format::Json),
        ];
        let mut all = Vec::new();
        pointers(&value, String::new(), &mut all);
        for (text, format) in &variants {
            for (pointer, key) in &all {
                let found = tandem_core::position::locate(text, *format, pointer);
                if !found.is_some_and(|at| lands_on(text, at, key.as_deref())) {
                    misses.push(format!(
                        "{} ({format:?}): {pointer}: {found:?}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(misses.is_empty(), "{}", misses.join("\n"));
}

fn lands_on(text: &str, (line, column): (usize, usize), key: Option<&str>) -> bool {
    let Some(line) = text.lines().nth(line - 1) else {
        return false;
    };
    let rest: String = line.chars().skip(column - 1).collect();
    key.is_none_or(|k| rest.trim_start_matches(['"', '\'']).starts_with(k))
}
