//! `tandem create NAME`: a new migration file to fill in.
//!
//! The file has an empty `operations` list on purpose: it does not validate until the user
//! fills it in, so a forgotten scaffold can never be applied as a migration that does nothing
//! (and then take its name). The YAML form carries a commented example to start from.

use std::path::{Path, PathBuf};

use crate::files;
use crate::Failure;

/// The JSON Schema of migration files, written next to the migrations for editors when the
/// project has no copy of its own.
const SCHEMA: &str = include_str!("../../../schema/migration.schema.json");
const SCHEMA_PATH: &str = "schema/migration.schema.json";
/// Inside the migrations folder, but in a subfolder: `tandem migrate DIR` reads only the
/// files of DIR itself.
const BUNDLED_SCHEMA: &str = ".tandem/migration.schema.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

/// What `create` did: the new file, and the schema file it wrote, if any.
pub struct Created {
    pub file: PathBuf,
    pub schema_written: Option<PathBuf>,
}

pub fn create(dir: &Path, name: &str, format: Format) -> Result<Created, Failure> {
    check_name(name)?;
    std::fs::create_dir_all(dir).map_err(|e| {
        failure(
            1,
            format!("cannot create {}: {e}", dir.display()),
            "check the path and its permissions",
        )
    })?;
    let name = numbered(dir, name)?;
    let extension = match format {
        Format::Yaml => "yaml",
        Format::Json => "json",
    };
    let file = dir.join(format!("{name}.{extension}"));
    let existing = files::migration_files(dir)
        .map_err(|m| failure(1, m, "check the path and its permissions"))?;
    if let Some(other) = existing
        .iter()
        .find(|p| p.file_stem().and_then(|s| s.to_str()) == Some(&name))
    {
        return Err(failure(
            2,
            format!(
                "a migration named \"{name}\" already exists: {}",
                other.display()
            ),
            "choose another name; a migration is named after its file",
        ));
    }
    let (schema_ref, schema_written) = schema_reference(dir)?;
    let text = match format {
        Format::Yaml => yaml(&name, &schema_ref),
        Format::Json => json(&schema_ref),
    };
    std::fs::write(&file, text).map_err(|e| {
        failure(
            1,
            format!("cannot write {}: {e}", file.display()),
            "check the path and its permissions",
        )
    })?;
    Ok(Created {
        file,
        schema_written,
    })
}

fn failure(code: u8, message: String, hint: &str) -> Failure {
    Failure {
        code,
        message: format!("{message}\n  hint: {hint}"),
    }
}

/// A migration name is a file name: no path separators, no leading dot, not empty.
pub fn check_name(name: &str) -> Result<(), Failure> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\'])
        || name.chars().any(char::is_control)
    {
        return Err(failure(
            2,
            format!("\"{name}\" cannot be a migration name"),
            "use letters, digits, `_`, `-` or `.`, e.g. `add_email`",
        ));
    }
    if Path::new(name).extension().is_some_and(|e| {
        ["json", "yaml", "yml"]
            .iter()
            .any(|x| e.eq_ignore_ascii_case(x))
    }) {
        return Err(failure(
            2,
            format!("\"{name}\" ends in a file extension"),
            "give the name alone; --yaml (default) or --json picks the extension",
        ));
    }
    Ok(())
}

/// `NAME` as is when it starts with a digit; else prefixed with the next number after the
/// files of `dir` (`03_add_email` after `02_...`), as wide as theirs (two digits at least), so
/// that file-name order is application order.
fn numbered(dir: &Path, name: &str) -> Result<String, Failure> {
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        return Ok(name.to_string());
    }
    let existing = files::migration_files(dir)
        .map_err(|m| failure(1, m, "check the path and its permissions"))?;
    let mut next = 1u64;
    let mut width = 2usize;
    for path in &existing {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let digits: String = stem.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse::<u64>() {
            next = next.max(n + 1);
            width = width.max(digits.len());
        }
    }
    Ok(format!("{next:0width$}_{name}"))
}

/// The `$schema` reference for a file in `dir`: the project's `schema/migration.schema.json`
/// when an ancestor of `dir` has one (as in tandem's own repository), else a copy written to
/// `dir/.tandem/`.
fn schema_reference(dir: &Path) -> Result<(String, Option<PathBuf>), Failure> {
    let absolute = dir
        .canonicalize()
        .or_else(|_| std::path::absolute(dir))
        .unwrap_or_else(|_| dir.to_path_buf());
    let mut up = String::new();
    for ancestor in absolute.ancestors() {
        if ancestor.join(SCHEMA_PATH).is_file() {
            return Ok((format!("{up}{SCHEMA_PATH}"), None));
        }
        up.push_str("../");
    }
    let path = dir.join(BUNDLED_SCHEMA);
    if std::fs::read_to_string(&path).ok().as_deref() == Some(SCHEMA) {
        return Ok((format!("./{BUNDLED_SCHEMA}"), None));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| {
            failure(
                1,
                format!("cannot create {}: {e}", parent.display()),
                "check the path and its permissions",
            )
        })?;
    }
    std::fs::write(&path, SCHEMA).map_err(|e| {
        failure(
            1,
            format!("cannot write {}: {e}", path.display()),
            "check the path and its permissions",
        )
    })?;
    Ok((format!("./{BUNDLED_SCHEMA}"), Some(path)))
}

fn yaml(name: &str, schema_ref: &str) -> String {
    format!(
        "# yaml-language-server: $schema={schema_ref}
# Migration \"{name}\". Add its operations below: until there is at least one, the file does not
# validate, so it can never be applied by mistake while empty. Then:
#   tandem validate <this file>    tandem plan <this file>    tandem start <this file>
# Every operation is described in tandem's docs/operations/. For example:
#
# operations:
#   - add_column:
#       table: users
#       up: lower(name) || '@example.com'   # fills existing rows and old-version writes
#       column:
#         name: email
#         type: text
#   - rename_column:
#       table: users
#       from: name
#       to: full_name
operations: []
"
    )
}

fn json(schema_ref: &str) -> String {
    let value = serde_json::json!({"$schema": schema_ref, "operations": []});
    format!(
        "{}\n",
        serde_json::to_string_pretty(&value).unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tandem-create-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn names_are_numbered_after_the_existing_files() {
        let dir = temp_dir("numbers");
        assert_eq!(
            numbered(&dir, "first").unwrap_or_else(|f| panic!("{}", f.message)),
            "01_first"
        );
        std::fs::write(dir.join("009_x.yaml"), "").unwrap();
        std::fs::write(dir.join("notes.txt"), "").unwrap();
        assert_eq!(
            numbered(&dir, "next").unwrap_or_else(|f| panic!("{}", f.message)),
            "010_next"
        );
        assert_eq!(
            numbered(&dir, "7_mine").unwrap_or_else(|f| panic!("{}", f.message)),
            "7_mine"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_names_are_refused() {
        for name in ["", "../x", "a/b", ".hidden", "x.yaml"] {
            assert!(check_name(name).is_err(), "{name}");
        }
        assert!(check_name("add-email.v2").is_ok());
    }

    #[test]
    fn outside_a_project_the_schema_is_bundled() {
        let dir = temp_dir("bundled");
        let (reference, written) =
            schema_reference(&dir).unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!(reference, "./.tandem/migration.schema.json");
        assert_eq!(written, Some(dir.join(BUNDLED_SCHEMA)));
        // A second file reuses it.
        let (_, written) = schema_reference(&dir).unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!(written, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn inside_tandems_repository_the_schema_is_referenced() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations-examples");
        let (reference, written) =
            schema_reference(&dir).unwrap_or_else(|f| panic!("{}", f.message));
        assert_eq!(reference, "../schema/migration.schema.json");
        assert_eq!(written, None);
    }
}
