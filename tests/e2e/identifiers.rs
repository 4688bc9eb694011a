//! Identifiers with capitals, spaces, quotes and reserved words work everywhere.

use crate::support::{catalog_snapshot, migration_file, TestDb};

#[tokio::test]
async fn awkward_identifiers_survive_every_phase() {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let create = r#"{"operations": [{"create_table": {"name": "Order Items", "columns": [
        {"name": "select", "type": "int", "pk": true},
        {"name": "Quote\"d", "type": "text"},
        {"name": "user", "type": "text", "nullable": true}]}}]}"#;
    db.tandem_ok(&[
        "start",
        "--complete",
        migration_file("01_Create-Items.v1.json", create)
            .to_str()
            .unwrap(),
    ]);
    let v1 = db.client_on("public_01_Create-Items.v1").await;
    v1.batch_execute(r#"INSERT INTO "Order Items" ("select", "Quote""d") VALUES (1, 'it''s')"#)
        .await
        .unwrap();
    let change = r#"{"operations": [
        {"add_column": {"table": "Order Items", "up": "upper(\"Quote\"\"d\")", "column": {"name": "Grand Total", "type": "text"}}},
        {"rename_column": {"table": "Order Items", "from": "user", "to": "Group"}},
        {"drop_column": {"table": "Order Items", "column": "Quote\"d", "down": "lower(\"Grand Total\")"}}]}"#;
    let file = migration_file("02_Change Items.json", change);
    let client = db.client().await;
    let before = catalog_snapshot(&client).await;
    db.tandem_ok(&["start", file.to_str().unwrap()]);
    db.tandem_ok(&["rollback"]);
    assert_eq!(before, catalog_snapshot(&client).await);
    db.tandem_ok(&["start", file.to_str().unwrap()]);
    let v2 = db.client_on("public_02_Change Items").await;
    let rows = v2
        .query(r#"SELECT "Grand Total" FROM "Order Items""#, &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "IT'S");
    v2.batch_execute(
        r#"INSERT INTO "Order Items" ("select", "Grand Total", "Group") VALUES (2, 'ABC', 'g')"#,
    )
    .await
    .unwrap();
    let rows = v1
        .query(
            r#"SELECT "Quote""d", "user" FROM "Order Items" WHERE "select" = 2"#,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, String>(0), "abc");
    assert_eq!(rows[0].get::<_, String>(1), "g");
    assert_eq!(
        db.tandem_ok(&["latest", "schema"]).trim(),
        "public_02_Change Items"
    );
    db.tandem_ok(&["complete"]);
    let rows = v2
        .query(
            r#"SELECT "Grand Total", "Group" FROM "Order Items" ORDER BY "select""#,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
}
