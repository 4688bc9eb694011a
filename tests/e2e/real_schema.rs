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

fn procrastinate_schema() -> Option<PathBuf> {
    let file = match std::env::var_os("TANDEM_PROCRASTINATE_SQL") {
        Some(file) => PathBuf::from(file),
        None => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/real-schemas/procrastinate/procrastinate/sql/schema.sql"),
    };
    file.is_file().then_some(file)
}

/// procrastinate 3.10 (a Python job queue, <https://procrastinate.readthedocs.io>, MIT), its
/// schema as its package ships it (`procrastinate/sql/schema.sql`, from PyPI): two enums, a
/// composite type, plpgsql functions, seven triggers (`AFTER UPDATE OF status`, `WHEN
/// (new.scheduled_at IS NOT NULL …)`), identity and bigserial keys. A type change of
/// `scheduled_at`, which a trigger's WHEN reads: the backfill fires none of the app's
/// triggers, both versions' inserts fire them, and the trigger is made again over the new
/// column at complete.
#[tokio::test]
async fn procrastinate_is_adopted_and_its_trigger_bound_column_changes_type() {
    let Some(schema) = procrastinate_schema() else {
        eprintln!(
            "SKIPPED: procrastinate's schema is not in target/real-schemas (run `scripts/dev setup`, \
             which fetches it from PyPI, or set TANDEM_PROCRASTINATE_SQL)"
        );
        return;
    };
    let db = TestDb::new().await;
    psql_file(&db, &schema).expect("procrastinate's schema loads");
    let admin = db.client().await;
    admin
        .batch_execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at) VALUES
               ('default', 'send_mail', '{}', NULL),
               ('default', 'report', '{}', '2030-01-01 10:00:00.123+00'),
               ('emails', 'digest', '{}', '2030-01-02 10:00:00.456+00');",
        )
        .await
        .unwrap();
    let events =
        "SELECT format('%s %s', type, count(*)) FROM procrastinate_events GROUP BY type ORDER BY 1";
    assert_eq!(texts(&admin, events).await, ["deferred 3", "scheduled 2"]);
    let trigger = "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'procrastinate_trigger_scheduled_events_v1'";
    let trigger_before = texts(&admin, trigger).await;

    let (dir, _fresh) = baseline_round_trip(&db, "00_procrastinate").await;
    let scheduled = dir.join("01_scheduled_seconds.json");
    std::fs::write(
        &scheduled,
        r#"{"operations": [{"alter_column": {"table": "procrastinate_jobs", "column": "scheduled_at",
            "type": "timestamp(0) with time zone",
            "up": "date_trunc('second', scheduled_at)", "down": "scheduled_at"}}]}"#,
    )
    .unwrap();
    let plan = db.tandem_ok(&["plan", scheduled.to_str().unwrap()]);
    assert!(
        plan.contains(
            "trigger procrastinate_trigger_scheduled_events_v1 on table procrastinate_jobs"
        ) && plan.contains("rebuilt"),
        "{plan}"
    );
    start_roll_back_start(&db, &scheduled).await;
    // The backfill touched every job and fired none of procrastinate's triggers.
    assert_eq!(texts(&admin, events).await, ["deferred 3", "scheduled 2"]);
    let old = db.client_on("public_00_procrastinate").await;
    let new = db.client_on("public_01_scheduled_seconds").await;
    old.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at)
         VALUES ('default', 'old_app', '{}', '2030-02-01 08:00:00.789+00')",
        &[],
    )
    .await
    .unwrap();
    new.execute(
        "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at)
         VALUES ('default', 'new_app', '{}', '2030-03-01 08:00:00+00')",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(texts(&admin, events).await, ["deferred 5", "scheduled 4"]);
    assert_eq!(
        texts(
            &new,
            "SELECT format('%s %s', task_name, scheduled_at AT TIME ZONE 'UTC') FROM procrastinate_jobs
              WHERE scheduled_at IS NOT NULL ORDER BY id"
        )
        .await,
        [
            "report 2030-01-01 10:00:00",
            "digest 2030-01-02 10:00:00",
            "old_app 2030-02-01 08:00:00",
            "new_app 2030-03-01 08:00:00"
        ]
    );
    db.tandem_ok(&["complete"]);
    assert_eq!(texts(&admin, trigger).await, trigger_before);
    admin
        .execute(
            "INSERT INTO procrastinate_jobs (queue_name, task_name, args, scheduled_at)
             VALUES ('default', 'after', '{}', '2030-04-01 08:00:00.5+00')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(texts(&admin, events).await, ["deferred 6", "scheduled 5"]);
    assert_eq!(
        texts(
            &admin,
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute
              WHERE attrelid = 'procrastinate_jobs'::regclass AND attname = 'scheduled_at'"
        )
        .await,
        ["timestamp(0) with time zone"]
    );
    let out = db.tandem(&["diff", "--migrations", dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
