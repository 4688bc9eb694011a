//! The CLI's helpers: `create`, `completions`, hints on every error, colours only on a
//! terminal without NO_COLOR, and `status` as a table.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{migration_file, TestDb};

fn tandem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env_remove("TANDEM_PG_URL")
        .env_remove("DATABASE_URL")
        .output()
        .expect("run tandem")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tandem-cli-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// An error ends with a `hint:` line naming the next step.
fn assert_error_with_hint(out: &Output, code: i32, what: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{what}: {stderr}");
    // Progress lines may come first; the error is last.
    let error = stderr
        .find("error: ")
        .filter(|&i| i == 0 || stderr[..i].ends_with('\n'))
        .map(|i| &stderr[i..])
        .unwrap_or_else(|| panic!("{what}: no error line: {stderr}"));
    assert!(error.contains("\n  hint: "), "{what} has no hint: {stderr}");
    assert!(
        !stderr.contains('\x1b'),
        "{what}: colour on a pipe: {stderr:?}"
    );
}

#[test]
fn create_writes_a_file_that_validates_only_once_filled_in() {
    let dir = temp_dir("create");
    let d = dir.to_str().unwrap();
    let out = tandem(&["create", "add_email", "--dir", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let file = PathBuf::from(text(&out.stdout).trim());
    assert_eq!(file, dir.join("01_add_email.yaml"));
    assert!(text(&out.stderr).contains("tandem validate"));
    let yaml = std::fs::read_to_string(&file).unwrap();
    assert!(
        yaml.starts_with("# yaml-language-server: $schema=./.tandem/migration.schema.json\n"),
        "{yaml}"
    );
    assert!(dir.join(".tandem/migration.schema.json").is_file());

    // Empty, it does not validate: it can never be applied by mistake.
    let out = tandem(&["validate", file.to_str().unwrap()]);
    assert_error_with_hint(&out, 2, "validate of an empty scaffold");
    assert!(
        text(&out.stderr).contains("/operations"),
        "{}",
        text(&out.stderr)
    );

    // JSON, numbered after the YAML file; the same name again is refused.
    let out = tandem(&["create", "drop_nickname", "--dir", d, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json_file = dir.join("02_drop_nickname.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json_file).unwrap()).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"$schema": "./.tandem/migration.schema.json", "operations": []})
    );
    let out = tandem(&["create", "02_drop_nickname", "--dir", d]);
    assert_error_with_hint(&out, 2, "create of an existing name");
    let out = tandem(&["create", "../escape", "--dir", d]);
    assert_error_with_hint(&out, 2, "create of a path");

    // Filled in, the whole folder validates (the schema copy in .tandem/ is not a migration).
    std::fs::write(
        &file,
        yaml.replace(
            "operations: []",
            "operations:\n  - create_table:\n      name: users\n      columns:\n        - {name: id, type: serial, pk: true}",
        ),
    )
    .unwrap();
    std::fs::remove_file(&json_file).unwrap();
    let out = tandem(&["validate", d]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn create_in_tandems_repository_points_at_its_schema() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tandem-cli-create-test");
    let _ = std::fs::remove_dir_all(&dir);
    let out = tandem(&["create", "x", "--dir", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let yaml = std::fs::read_to_string(dir.join("01_x.yaml")).unwrap();
    assert!(
        yaml.starts_with("# yaml-language-server: $schema=../../schema/migration.schema.json\n"),
        "{yaml}"
    );
    assert!(!dir.join(".tandem").exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, marker) in [
        ("bash", "complete -F _tandem"),
        ("zsh", "#compdef tandem"),
        ("fish", "complete -c tandem"),
    ] {
        let out = tandem(&["completions", shell]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("rollback"), "{shell}");
    }
    let out = tandem(&["completions", "tcsh"]);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn every_error_says_what_to_do_next() {
    assert_error_with_hint(&tandem(&["status"]), 2, "no database");
    let db = TestDb::new().await;
    assert_error_with_hint(&db.tandem(&["complete"]), 1, "complete before init");
    assert_error_with_hint(&db.tandem(&["pause"]), 1, "pause before init");
    db.tandem_ok(&["init"]);
    assert_error_with_hint(&db.tandem(&["rollback"]), 1, "nothing in flight");
    let bad = migration_file(
        "01_bad.json",
        r#"{"operations": [{"drop_table": {"name": "nope"}}]}"#,
    );
    assert_error_with_hint(
        &db.tandem(&["start", bad.to_str().unwrap()]),
        2,
        "a migration invalid for this database",
    );
    let sql = migration_file(
        "01_fails.json",
        r#"{"operations": [{"sql": {"up": "SELECT 1/0"}}]}"#,
    );
    assert_error_with_hint(
        &db.tandem(&["start", sql.to_str().unwrap()]),
        1,
        "a start whose SQL fails",
    );
    let good = migration_file(
        "01_users.json",
        r#"{"operations": [{"create_table": {"name": "users", "columns": [{"name": "id", "type": "serial", "pk": true}]}}]}"#,
    );
    db.tandem_ok(&["start", good.to_str().unwrap()]);
    assert_error_with_hint(
        &db.tandem(&["start", good.to_str().unwrap()]),
        1,
        "a second start while one is in flight",
    );
    assert_error_with_hint(
        &db.tandem(&["--role", "nobody_at_all", "status"]),
        1,
        "a role that does not exist",
    );
}

/// `command` run under a pseudo-terminal (util-linux `script`), so that stdout is a tty.
fn on_a_terminal(db: &TestDb, args: &str, no_color: Option<&str>) -> Option<String> {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to make a pseudo-terminal");
        return None;
    }
    let mut command = Command::new("script");
    command
        .args([
            "-qec",
            &format!("{} {args}", env!("CARGO_BIN_EXE_tandem")),
            "/dev/null",
        ])
        .env("TANDEM_PG_URL", &db.url)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        command.env("NO_COLOR", v);
    }
    let out = command.output().expect("run script");
    assert!(out.status.success(), "{}", text(&out.stdout));
    Some(text(&out.stdout))
}

#[tokio::test]
async fn status_is_a_table_coloured_only_on_a_terminal_without_no_color() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let good = migration_file(
        "01_users.json",
        r#"{"operations": [{"create_table": {"name": "users", "columns": [{"name": "id", "type": "serial", "pk": true}]}}]}"#,
    );
    db.tandem_ok(&["start", good.to_str().unwrap()]);
    let plain = db.tandem_ok(&["status"]);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    let lines: Vec<&str> = plain.lines().collect();
    assert!(
        lines[2].starts_with("  #  MIGRATION  PHASE    VERSION SCHEMA "),
        "{plain}"
    );
    assert!(
        lines[3].starts_with("  1  01_users   started  public_01_users "),
        "{plain}"
    );
    assert!(lines[3].ends_with("← latest"), "{plain}");
    assert!(plain.contains("in flight: 01_users (started)"), "{plain}");

    let Some(coloured) = on_a_terminal(&db, "status", None) else {
        return;
    };
    assert!(coloured.contains("\x1b[33mstarted\x1b[0m"), "{coloured:?}");
    let uncoloured = on_a_terminal(&db, "status", Some("1")).unwrap();
    assert!(!uncoloured.contains('\x1b'), "{uncoloured:?}");
    // An empty NO_COLOR does not count (no-color.org).
    let coloured = on_a_terminal(&db, "status", Some("")).unwrap();
    assert!(coloured.contains('\x1b'), "{coloured:?}");
}
