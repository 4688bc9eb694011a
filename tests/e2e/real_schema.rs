//! The schema of a real application nobody here wrote: LedgerSMB 1.6 (accounting and ERP,
//! <https://ledgersmb.org>, GPL-2+), as Debian ships it in the `ledgersmb` package: 166
//! tables, 16 views (recursive ones among them), 478 functions, 21 application triggers,
//! 81 sequences, 258 foreign keys, rules and composite types. `scripts/dev setup` fetches the
//! package into `target/real-schemas/`; the schema is loaded with psql exactly as LedgerSMB's
//! own loader does (its base file, then its `changes` and `modules` in their LOADORDER).
//!
//! It is adopted with `baseline` (and diff must then say identical, and the baseline must
//! rebuild it elsewhere), then migrated the way its developers might: a type and NOT NULL
//! change of a column under three recursive views and an application trigger, a rename
//! under a view, with old and new app versions writing meanwhile, rollback leaving the
//! catalog identical; and, refused before anything changes, a rename that would break one of
//! its functions and a drop of a column a view needs.

use std::path::{Path, PathBuf};

use crate::support::{
    baseline_round_trip, catalog_snapshot, migration_file, start_roll_back_start, texts, TestDb,
};

fn ledgersmb_sql() -> Option<PathBuf> {
    let dir = match std::env::var_os("TANDEM_LEDGERSMB_SQL") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/real-schemas/ledgersmb/usr/share/ledgersmb/sql"),
    };
    dir.join("Pg-database.sql").is_file().then_some(dir)
}

/// Runs one of LedgerSMB's SQL files with psql (they use COPY … FROM stdin).
fn psql_file(db: &TestDb, file: &Path) -> Result<(), String> {
    let out = tandem_pg::cluster::client_command("psql")
        .args([
            "-X",
            "-q",
            "-1",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &db.url,
            "-f",
        ])
        .arg(file)
        .output()
        .map_err(|e| format!("cannot run psql: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn load_order(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("LOADORDER"))
        .expect("LOADORDER")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(String::from)
        .collect()
}

/// LedgerSMB's own load sequence. Changes marked `!` may fail (its convention: fixes for
/// older databases); `Duplicates_Functions.sql` is a check that needs a file the package
/// does not ship.
fn load_ledgersmb(db: &TestDb, sql: &Path) {
    psql_file(db, &sql.join("Pg-database.sql")).expect("LedgerSMB's base schema loads");
    for change in load_order(&sql.join("changes")) {
        let (optional, file) = match change.strip_prefix('!') {
            Some(f) => (true, f.to_string()),
            None => (false, change.clone()),
        };
        if let Err(e) = psql_file(db, &sql.join("changes").join(&file)) {
            assert!(optional, "change {file} failed: {e}");
        }
    }
    for module in load_order(&sql.join("modules")) {
        if module == "Duplicates_Functions.sql" {
            continue;
        }
        psql_file(db, &sql.join("modules").join(&module))
            .unwrap_or_else(|e| panic!("module {module} failed: {e}"));
    }
}

const HEADING_DESCRIPTION: &str = r#"{"operations": [{"alter_column": {
    "table": "account_heading", "column": "description",
    "type": "varchar(200)", "nullable": false,
    "up": "coalesce(description, 'heading ' || accno)", "down": "description"}}]}"#;

const MENU_TITLE: &str = r#"{"operations": [{"rename_column": {"table": "menu_node", "from": "label", "to": "title"}}]}"#;

const INSERTED_AT: &str = r#"{"operations": [{"rename_column": {"table": "cr_report_line", "from": "insert_time", "to": "inserted_at"}}]}"#;

#[tokio::test]
async fn ledgersmb_is_adopted_migrated_by_both_versions_and_completed() {
    let Some(sql) = ledgersmb_sql() else {
        eprintln!(
            "SKIPPED: LedgerSMB's schema is not in target/real-schemas (run `scripts/dev setup`, \
             which fetches Debian's ledgersmb package, or set TANDEM_LEDGERSMB_SQL)"
        );
        return;
    };
    let db = TestDb::new().await;
    load_ledgersmb(&db, &sql);
    let admin = db.client().await;
    assert_eq!(
        texts(
            &admin,
            "SELECT format('%s tables, %s views, %s triggers',
                (SELECT count(*) FROM pg_class WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace),
                (SELECT count(*) FROM pg_class WHERE relkind = 'v' AND relnamespace = 'public'::regnamespace),
                (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal))"
        )
        .await,
        ["166 tables, 16 views, 21 triggers"]
    );
    admin
        .batch_execute(
            "INSERT INTO account_heading (id, accno, parent_id, description, category) VALUES
               (1, '1000', NULL, 'Assets', 'A'), (2, '1100', 1, NULL, 'A'),
               (3, '2000', NULL, 'Liabilities', 'L')",
        )
        .await
        .unwrap();

    // Adopt it: the baseline rebuilds the schema exactly, here and in an empty database.
    let (dir, _fresh) = baseline_round_trip(&db, "00_ledgersmb").await;
    let old = db.client_on("public_00_ledgersmb").await;

    // A type and NOT NULL change under the recursive tree views and the loop-check trigger.
    let heading = dir.join("01_heading_description.json");
    std::fs::write(&heading, HEADING_DESCRIPTION).unwrap();
    start_roll_back_start(&db, &heading).await;
    let new = db.client_on("public_01_heading_description").await;
    old.execute(
        "INSERT INTO account_heading (id, accno, parent_id, description) VALUES (4, '1200', 1, NULL)",
        &[],
    )
    .await
    .unwrap();
    new.execute(
        "INSERT INTO account_heading (id, accno, parent_id, description) VALUES (5, '2100', 3, 'Payables')",
        &[],
    )
    .await
    .unwrap();
    let headings = "SELECT format('%s %s', accno, description) FROM account_heading ORDER BY accno";
    assert_eq!(
        texts(&new, headings).await,
        [
            "1000 Assets",
            "1100 heading 1100",
            "1200 heading 1200",
            "2000 Liabilities",
            "2100 Payables"
        ]
    );
    assert_eq!(
        texts(&old, headings).await,
        [
            "1000 Assets",
            "1100 ",
            "1200 ",
            "2000 Liabilities",
            "2100 Payables"
        ]
    );
    db.tandem_ok(&["complete"]);
    let tree = "SELECT format('%s %s %s', accno, level, description) FROM account_heading_tree ORDER BY accno";
    assert_eq!(
        texts(&admin, tree).await,
        [
            "1000 1 Assets",
            "1100 2 heading 1100",
            "1200 2 heading 1200",
            "2000 1 Liabilities",
            "2100 2 Payables"
        ]
    );
    assert_eq!(
        texts(
            &admin,
            "SELECT format('%s %s', c.relname, format_type(a.atttypid, a.atttypmod))
               FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
              WHERE c.relnamespace = 'public'::regnamespace AND a.attname = 'description'
                AND c.relname IN ('account_heading', 'account_heading_tree',
                                  'account_heading_derived_category')
              ORDER BY 1"
        )
        .await,
        [
            "account_heading character varying(200)",
            "account_heading_derived_category character varying(200)",
            "account_heading_tree character varying(200)"
        ]
    );

    // Renaming menu_node.label would break LedgerSMB's own menu_insert function, whose body
    // names it (PostgreSQL does not track names in function bodies): refused, naming it.
    let label = dir.join("02_menu_title.json");
    std::fs::write(&label, MENU_TITLE).unwrap();
    let out = db.tandem(&["start", label.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("function menu_insert(")
            && err.contains("column label of table menu_node, which its body names"),
        "{err}"
    );
    std::fs::remove_file(&label).unwrap();

    // A rename under a view that no function names: each version sees its name; the view
    // (recon_payee, over five tables) follows.
    let rename = dir.join("02_inserted_at.json");
    std::fs::write(&rename, INSERTED_AT).unwrap();
    start_roll_back_start(&db, &rename).await;
    let new2 = db.client_on("public_02_inserted_at").await;
    let old2 = db.client_on("public_01_heading_description").await;
    assert_eq!(
        texts(
            &new2,
            "SELECT count(*)::text FROM information_schema.columns
              WHERE table_schema = 'public_02_inserted_at' AND table_name = 'cr_report_line'
                AND column_name = 'inserted_at'"
        )
        .await,
        ["1"]
    );
    assert_eq!(
        texts(
            &old2,
            "SELECT count(*)::text FROM cr_report_line WHERE insert_time IS NULL"
        )
        .await,
        ["0"]
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(
        texts(
            &admin,
            "SELECT (pg_get_viewdef('recon_payee') LIKE '%inserted_at%')::text"
        )
        .await,
        ["true"]
    );

    // Dropping a column that a view needs is refused, naming the view, before any change.
    let before = catalog_snapshot(&admin).await;
    let drop = migration_file(
        "03_drop_gl_reference.json",
        r#"{"operations": [{"drop_column": {"table": "gl", "column": "reference"}}]}"#,
    );
    let out = db.tandem(&["start", drop.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("view tx_report depends on column reference of table gl"),
        "{err}"
    );
    assert_eq!(before, catalog_snapshot(&admin).await);

    // The files still describe the database exactly.
    let out = db.tandem(&["diff", "--migrations", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
