//! create_index, drop_index, set_replica_identity and rename_constraint: start → both versions
//! read and write → rollback (catalog identical) → start → complete → final catalog checked.

use crate::support::{catalog_snapshot, migration_file, TestDb};
use tokio_postgres::Client;

const SETUP: &str = r#"{"operations": [
  {"create_table": {"name": "items", "columns": [
    {"name": "id", "type": "serial", "pk": true},
    {"name": "name", "type": "text"},
    {"name": "code", "type": "text", "nullable": true},
    {"name": "price", "type": "bigint", "check": {"name": "price_positive", "constraint": "price > 0"}},
    {"name": "tag", "type": "text", "nullable": true}
  ], "constraints": [{"name": "items_name_price_key", "type": "unique", "columns": ["name", "price"]}]}}
]}"#;

const V1: &str = "public_01_setup";

/// tandem initialised, `01_setup` complete, three items written through the first version.
async fn setup() -> (TestDb, Client) {
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let file = migration_file("01_setup.json", SETUP);
    db.tandem_ok(&["start", "--complete", file.to_str().unwrap()]);
    let v1 = db.client_on(V1).await;
    v1.batch_execute(
        "INSERT INTO items (name, code, price, tag) VALUES
           ('apple', 'A1', 3, 'fruit'), ('pear', NULL, 5, 'fruit'), ('kale', NULL, 2, NULL)",
    )
    .await
    .unwrap();
    (db, v1)
}

/// The catalog snapshot plus what it leaves out and these operations change: replica
/// identities and the indexes they use.
async fn snapshot(client: &Client) -> String {
    let mut lines = catalog_snapshot(client).await;
    let extra = texts(
        client,
        "SELECT format('replica %s.%s %s %s', n.nspname, c.relname, c.relreplident,
                (SELECT string_agg(ic.relname, ',') FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                 WHERE i.indrelid = c.oid AND i.indisreplident))
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind = 'r' AND n.nspname = 'public' ORDER BY 1",
    )
    .await;
    for line in extra {
        lines.push('\n');
        lines.push_str(&line);
    }
    lines
}

async fn texts(client: &Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .iter()
        .map(|r| r.get::<_, Option<String>>(0).unwrap_or_default())
        .collect()
}

/// Starts `json` as migration `name`; `during` checks the started state. Then rollback (the
/// catalog must be as before), start again, `during` again, and complete.
async fn round_trip<F, Fut>(db: &TestDb, name: &str, json: &str, during: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let file = migration_file(&format!("{name}.json"), json);
    let path = file.to_str().unwrap();
    let client = db.client().await;
    let before = snapshot(&client).await;
    db.tandem_ok(&["start", path]);
    during().await;
    db.tandem_ok(&["rollback"]);
    assert_eq!(
        before,
        snapshot(&client).await,
        "rollback must leave the catalog identical"
    );
    db.tandem_ok(&["start", path]);
    during().await;
    db.tandem_ok(&["complete"]);
    assert_eq!(invalid_indexes(&client).await, 0);
}

async fn invalid_indexes(client: &Client) -> i64 {
    client
        .query_one("SELECT count(*) FROM pg_index WHERE NOT indisvalid", &[])
        .await
        .unwrap()
        .get(0)
}

/// `pg_get_indexdef` and validity of the index `name` in `public`, if it exists.
async fn index(client: &Client, name: &str) -> Option<(String, bool)> {
    client
        .query_opt(
            "SELECT pg_get_indexdef(i.indexrelid), i.indisvalid FROM pg_index i
             JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relname = $1",
            &[&name],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// Both versions read the rows and write one each; returns the names both see.
async fn both_versions_write(db: &TestDb, v1: &Client, v2_schema: &str, suffix: &str) {
    let v2 = db.client_on(v2_schema).await;
    v1.batch_execute(&format!(
        "INSERT INTO items (name, price) VALUES ('old-{suffix}', 7)"
    ))
    .await
    .unwrap();
    v2.batch_execute(&format!(
        "INSERT INTO items (name, price) VALUES ('new-{suffix}', 8)"
    ))
    .await
    .unwrap();
    let seen_old = texts(v1, "SELECT name FROM items ORDER BY id").await;
    let seen_new = texts(&v2, "SELECT name FROM items ORDER BY id").await;
    assert_eq!(seen_old, seen_new);
    assert!(seen_new.contains(&format!("old-{suffix}")));
    assert!(seen_new.contains(&format!("new-{suffix}")));
}

#[tokio::test]
async fn create_index_from_a_list_of_names() {
    let (db, v1) = setup().await;
    let c = db.client().await;
    let (db, v1, c) = (&db, &v1, &c);
    let expected = "CREATE INDEX items_name_tag_idx ON public.items USING btree (name, tag)";
    let migration = r#"{"operations": [{"create_index": {"name": "items_name_tag_idx", "table": "items", "columns": ["name", "tag"]}}]}"#;
    let round = &std::sync::atomic::AtomicUsize::new(0);
    round_trip(db, "02_idx", migration, || async move {
        assert_eq!(
            index(c, "items_name_tag_idx").await,
            Some((expected.to_string(), true))
        );
        let n = round.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        both_versions_write(db, v1, "public_02_idx", &n.to_string()).await;
    })
    .await;
    assert_eq!(
        index(c, "items_name_tag_idx").await,
        Some((expected.to_string(), true))
    );
    let v2 = db.client_on("public_02_idx").await;
    assert_eq!(
        texts(&v2, "SELECT count(*)::text FROM items").await,
        ["7"],
        "three rows, then two per start"
    );
}

#[tokio::test]
async fn create_index_with_opclass_sort_nulls_and_collation() {
    let (db, v1) = setup().await;
    let c = db.client().await;
    let (db, v1, c) = (&db, &v1, &c);
    let expected = r#"CREATE INDEX "Items Fancy" ON public.items USING btree (price DESC NULLS LAST, name COLLATE "C" text_pattern_ops, code NULLS FIRST)"#;
    let migration = r#"{"operations": [{"create_index": {"name": "Items Fancy", "table": "items", "method": "btree", "columns": [
        {"column": "price", "opclass": {"name": "int8_ops"}, "sort": "DESC", "nulls": "LAST"},
        {"column": "name", "collate": "C", "opclass": {"name": "pg_catalog.text_pattern_ops"}},
        {"column": "code", "sort": "asc", "nulls": "first"}]}}]}"#;
    let round = &std::sync::atomic::AtomicUsize::new(0);
    round_trip(db, "02_fancy", migration, || async move {
        assert_eq!(
            index(c, "Items Fancy").await,
            Some((expected.to_string(), true))
        );
        let n = round.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        both_versions_write(db, v1, "public_02_fancy", &n.to_string()).await;
    })
    .await;
    assert_eq!(
        index(c, "Items Fancy").await,
        Some((expected.to_string(), true))
    );
}

#[tokio::test]
async fn create_index_in_the_older_object_form() {
    let (db, _v1) = setup().await;
    let c = db.client().await;
    let (db, c) = (&db, &c);
    let migration = r#"{"operations": [{"create_index": {"name": "items_tag_desc", "table": "items",
        "columns": {"tag": {"sort": "DESC", "collate": "C"}}}}]}"#;
    round_trip(db, "02_obj", migration, || async move {
        assert!(index(c, "items_tag_desc").await.is_some());
    })
    .await;
    assert_eq!(
        index(c, "items_tag_desc").await,
        Some((
            r#"CREATE INDEX items_tag_desc ON public.items USING btree (tag COLLATE "C" DESC)"#
                .to_string(),
            true
        ))
    );
}

#[tokio::test]
async fn create_unique_partial_index_is_enforced_for_both_versions() {
    let (db, v1) = setup().await;
    let c = db.client().await;
    let (db, v1, c) = (&db, &v1, &c);
    let expected = "CREATE UNIQUE INDEX items_code_key ON public.items USING btree (code) WHERE (code IS NOT NULL)";
    let migration = r#"{"operations": [{"create_index": {"name": "items_code_key", "table": "items", "unique": true,
        "columns": ["code"], "predicate": "code IS NOT NULL"}}]}"#;
    round_trip(db, "02_code", migration, || async move {
        assert_eq!(
            index(c, "items_code_key").await,
            Some((expected.to_string(), true))
        );
        let v2 = db.client_on("public_02_code").await;
        let err = v1
            .batch_execute("INSERT INTO items (name, code, price) VALUES ('dup', 'A1', 1)")
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("items_code_key"), "{err:?}");
        assert!(v2
            .batch_execute("INSERT INTO items (name, code, price) VALUES ('dup', 'A1', 1)")
            .await
            .is_err());
        // NULL codes are outside the partial index.
        v1.batch_execute("INSERT INTO items (name, price) VALUES ('n1', 1)")
            .await
            .unwrap();
        v2.batch_execute("INSERT INTO items (name, price) VALUES ('n2', 1)")
            .await
            .unwrap();
        v1.batch_execute("DELETE FROM items WHERE name IN ('n1', 'n2')")
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        index(c, "items_code_key").await,
        Some((expected.to_string(), true))
    );
}

#[tokio::test]
async fn create_hash_index_with_storage_parameters() {
    let (db, v1) = setup().await;
    let c = db.client().await;
    let (db, v1, c) = (&db, &v1, &c);
    let expected =
        "CREATE INDEX items_tag_hash ON public.items USING hash (tag) WITH (fillfactor='70')";
    let migration = r#"{"operations": [{"create_index": {"name": "items_tag_hash", "table": "items", "method": "hash",
        "columns": [{"column": "tag"}], "storage_parameters": "fillfactor = 70"}}]}"#;
    let round = &std::sync::atomic::AtomicUsize::new(0);
    round_trip(db, "02_hash", migration, || async move {
        assert_eq!(
            index(c, "items_tag_hash").await,
            Some((expected.to_string(), true))
        );
        let n = round.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        both_versions_write(db, v1, "public_02_hash", &n.to_string()).await;
    })
    .await;
    assert_eq!(
        index(c, "items_tag_hash").await,
        Some((expected.to_string(), true))
    );
}

#[tokio::test]
async fn create_index_follows_a_column_renamed_in_the_same_migration() {
    let (db, v1) = setup().await;
    let c = db.client().await;
    let (db, v1, c) = (&db, &v1, &c);
    let migration = r#"{"operations": [
        {"rename_column": {"table": "items", "from": "tag", "to": "label"}},
        {"create_index": {"name": "items_label_idx", "table": "items", "columns": ["label"], "predicate": "label <> 'x'"}}]}"#;
    round_trip(db, "02_label", migration, || async move {
        // Built on the physical column, which keeps its old name until complete.
        assert_eq!(
            index(c, "items_label_idx").await,
            Some((
                "CREATE INDEX items_label_idx ON public.items USING btree (tag) WHERE (tag <> 'x'::text)"
                    .to_string(),
                true
            ))
        );
        let v2 = db.client_on("public_02_label").await;
        v2.batch_execute("INSERT INTO items (name, price, label) VALUES ('plum', 4, 'fruit')")
            .await
            .unwrap();
        assert_eq!(
            texts(v1, "SELECT tag FROM items WHERE name = 'plum'").await,
            ["fruit"]
        );
        v1.batch_execute("DELETE FROM items WHERE name = 'plum'")
            .await
            .unwrap();
    })
    .await;
    assert_eq!(
        index(c, "items_label_idx").await,
        Some((
            "CREATE INDEX items_label_idx ON public.items USING btree (label) WHERE (label <> 'x'::text)"
                .to_string(),
            true
        ))
    );
}

#[tokio::test]
async fn a_failed_index_build_leaves_nothing_behind() {
    let (db, v1) = setup().await;
    v1.batch_execute("INSERT INTO items (name, price, tag) VALUES ('kale', 9, 'veg')")
        .await
        .unwrap();
    let c = &db.client().await;
    let before = snapshot(c).await;
    let file = migration_file(
        "02_unique_name.json",
        r#"{"operations": [{"create_index": {"name": "items_name_key", "table": "items", "unique": true, "columns": ["name"]}}]}"#,
    );
    let out = db.tandem(&["start", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("items_name_key"), "{stderr}");
    assert_eq!(invalid_indexes(c).await, 0, "no invalid index is left");
    assert_eq!(index(c, "items_name_key").await, None);
    assert_eq!(before, snapshot(c).await, "the catalog is as before start");
    // Failing after operations that did run: those are undone too.
    let mixed = migration_file(
        "02_mixed.json",
        r#"{"operations": [
            {"rename_constraint": {"table": "items", "from": "items_name_price_key", "to": "items_offer_key"}},
            {"set_replica_identity": {"table": "items", "identity": {"type": "full"}}},
            {"create_index": {"name": "items_tag_idx", "table": "items", "columns": ["tag"]}},
            {"create_index": {"name": "items_name_key", "table": "items", "unique": true, "columns": ["name"]}}]}"#,
    );
    let out = db.tandem(&["start", mixed.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(invalid_indexes(c).await, 0, "no invalid index is left");
    assert_eq!(before, snapshot(c).await, "the catalog is as before start");
    // Nothing is in flight: once the duplicate is gone the same migration starts.
    v1.batch_execute("DELETE FROM items WHERE name = 'kale' AND price = 9")
        .await
        .unwrap();
    db.tandem_ok(&["start", "--complete", file.to_str().unwrap()]);
    assert_eq!(
        index(c, "items_name_key").await,
        Some((
            "CREATE UNIQUE INDEX items_name_key ON public.items USING btree (name)".to_string(),
            true
        ))
    );
}

#[tokio::test]
async fn drop_index_waits_for_complete() {
    let (db, v1) = setup().await;
    let c = db.client().await;
    let (db, v1, c) = (&db, &v1, &c);
    let create = migration_file(
        "02_idx.json",
        r#"{"operations": [{"create_index": {"name": "items_tag_idx", "table": "items", "columns": ["tag"]}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", create.to_str().unwrap()]);
    let migration = r#"{"operations": [{"drop_index": {"name": "items_tag_idx"}}]}"#;
    let round = &std::sync::atomic::AtomicUsize::new(0);
    round_trip(db, "03_drop_idx", migration, || async move {
        assert_eq!(
            index(c, "items_tag_idx").await,
            Some((
                "CREATE INDEX items_tag_idx ON public.items USING btree (tag)".to_string(),
                true
            )),
            "the old version may still rely on the index"
        );
        let n = round.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let v2_old = db.client_on("public_02_idx").await;
        both_versions_write(db, &v2_old, "public_03_drop_idx", &n.to_string()).await;
    })
    .await;
    assert_eq!(index(c, "items_tag_idx").await, None);
    let _ = v1;
}

#[tokio::test]
async fn set_replica_identity_full_and_back() {
    let (db, v1) = setup().await;
    let c = db.client().await;
    let (db, v1, c) = (&db, &v1, &c);
    let identity = || async move {
        texts(
            c,
            "SELECT relreplident::text FROM pg_class WHERE oid = 'public.items'::regclass",
        )
        .await
    };
    let migration = r#"{"operations": [{"set_replica_identity": {"table": "items", "identity": {"type": "FULL"}}}]}"#;
    let round = &std::sync::atomic::AtomicUsize::new(0);
    round_trip(db, "02_full", migration, || async move {
        assert_eq!(identity().await, ["f"]);
        let n = round.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        both_versions_write(db, v1, "public_02_full", &n.to_string()).await;
    })
    .await;
    assert_eq!(identity().await, ["f"]);
}

#[tokio::test]
async fn set_replica_identity_restores_a_previous_index_or_full_identity() {
    let (db, _v1) = setup().await;
    let c = db.client().await;
    let (db, c) = (&db, &c);
    let identity = || async move {
        texts(
            c,
            "SELECT relreplident::text || ' ' || coalesce((SELECT string_agg(ic.relname, ',') FROM pg_index i
                 JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = 'public.items'::regclass
                 AND i.indisreplident), '-')
             FROM pg_class WHERE oid = 'public.items'::regclass",
        )
        .await
    };
    let full = migration_file(
        "02_full.json",
        r#"{"operations": [{"set_replica_identity": {"table": "items", "identity": {"type": "full"}}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", full.to_str().unwrap()]);
    assert_eq!(identity().await, ["f -"]);
    // FULL → USING INDEX; rollback brings FULL back.
    round_trip(
        db,
        "03_by_key",
        r#"{"operations": [{"set_replica_identity": {"table": "items", "identity": {"type": "index", "index": "items_pkey"}}}]}"#,
        || async move { assert_eq!(identity().await, ["i items_pkey"]) },
    )
    .await;
    assert_eq!(identity().await, ["i items_pkey"]);
    // USING INDEX → NOTHING; rollback brings the index back.
    round_trip(
        db,
        "04_nothing",
        r#"{"operations": [{"set_replica_identity": {"table": "items", "identity": {"type": "nothing"}}}]}"#,
        || async move { assert_eq!(identity().await, ["n -"]) },
    )
    .await;
    // NOTHING → DEFAULT.
    round_trip(
        db,
        "05_default",
        r#"{"operations": [{"set_replica_identity": {"table": "items", "identity": {"type": "default"}}}]}"#,
        || async move { assert_eq!(identity().await, ["d -"]) },
    )
    .await;
    assert_eq!(identity().await, ["d -"]);
}

#[tokio::test]
async fn rename_constraint_renames_at_complete_as_pgroll_does() {
    let (db, v1) = setup().await;
    let c = db.client().await;
    let (db, v1, c) = (&db, &v1, &c);
    let constraints = || async move {
        texts(
            c,
            "SELECT conname || ' ' || contype::text FROM pg_constraint
             WHERE conrelid = 'public.items'::regclass AND contype IN ('c', 'u') ORDER BY 1",
        )
        .await
    };
    let migration = r#"{"operations": [
        {"rename_constraint": {"table": "items", "from": "price_positive", "to": "Price Must Be Positive"}},
        {"rename_constraint": {"table": "items", "from": "items_name_price_key", "to": "items_unique_offer"}}]}"#;
    let round = &std::sync::atomic::AtomicUsize::new(0);
    round_trip(db, "02_rename_con", migration, || async move {
        // Until complete, the old version (which may name them) sees the names it knows.
        assert_eq!(
            constraints().await,
            ["items_name_price_key u", "price_positive c"]
        );
        assert!(index(c, "items_name_price_key").await.is_some());
        let v2 = db.client_on("public_02_rename_con").await;
        let err = v2
            .batch_execute("INSERT INTO items (name, price) VALUES ('free', 0)")
            .await
            .unwrap_err();
        assert!(format!("{err:?}").contains("price_positive"), "{err:?}");
        let err = v1
            .batch_execute("INSERT INTO items (name, price) VALUES ('apple', 3)")
            .await
            .unwrap_err();
        assert!(
            format!("{err:?}").contains("items_name_price_key"),
            "{err:?}"
        );
        let n = round.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        both_versions_write(db, v1, "public_02_rename_con", &n.to_string()).await;
    })
    .await;
    // Complete renamed them, and the index behind the unique constraint with it.
    assert_eq!(
        constraints().await,
        ["Price Must Be Positive c", "items_unique_offer u"]
    );
    assert_eq!(index(c, "items_name_price_key").await, None);
    let v2 = db.client_on("public_02_rename_con").await;
    let err = v2
        .batch_execute("INSERT INTO items (name, price) VALUES ('free', 0)")
        .await
        .unwrap_err();
    assert!(
        format!("{err:?}").contains("Price Must Be Positive"),
        "{err:?}"
    );
    assert_eq!(
        index(c, "items_unique_offer").await,
        Some((
            "CREATE UNIQUE INDEX items_unique_offer ON public.items USING btree (name, price)"
                .to_string(),
            true
        ))
    );
}

#[tokio::test]
async fn wrong_index_operations_are_refused_before_anything_runs() {
    let (db, _v1) = setup().await;
    let c = db.client().await;
    let (db, c) = (&db, &c);
    let before = snapshot(c).await;
    let cases: &[(&str, &str)] = &[
        (
            r#"{"create_index": {"name": "i", "table": "items", "method": "btree; DROP TABLE items", "columns": ["name"]}}"#,
            "/operations/0/create_index/method",
        ),
        (
            r#"{"create_index": {"name": "i", "table": "items", "columns": [{"column": "name", "sort": "DESC; --"}]}}"#,
            "/operations/0/create_index/columns/0/sort",
        ),
        (
            r#"{"create_index": {"name": "i", "table": "items", "columns": [{"column": "name", "nulls": "LAST)"}]}}"#,
            "/operations/0/create_index/columns/0/nulls",
        ),
        (
            r#"{"create_index": {"name": "i", "table": "items", "columns": ["nope"]}}"#,
            "/operations/0/create_index/columns/0",
        ),
        (
            r#"{"create_index": {"name": "items_pkey", "table": "items", "columns": ["name"]}}"#,
            "/operations/0/create_index/name",
        ),
        (
            r#"{"create_index": {"name": "i", "table": "nope", "columns": ["name"]}}"#,
            "/operations/0/create_index/table",
        ),
        (
            r#"{"create_index": {"name": "i", "table": "items", "columns": []}}"#,
            "/operations/0/create_index/columns",
        ),
        (
            r#"{"drop_index": {"name": "nope"}}"#,
            "/operations/0/drop_index/name",
        ),
        (
            r#"{"drop_index": {"name": "items_pkey"}}"#,
            "/operations/0/drop_index/name",
        ),
        (
            r#"{"set_replica_identity": {"table": "items", "identity": {"type": "full; DROP TABLE items"}}}"#,
            "/operations/0/set_replica_identity/identity/type",
        ),
        (
            r#"{"set_replica_identity": {"table": "items", "identity": {"type": "index"}}}"#,
            "/operations/0/set_replica_identity/identity",
        ),
        (
            r#"{"set_replica_identity": {"table": "items", "identity": {"type": "index", "index": "nope"}}}"#,
            "/operations/0/set_replica_identity/identity/index",
        ),
        (
            r#"{"rename_constraint": {"table": "items", "from": "nope", "to": "x"}}"#,
            "/operations/0/rename_constraint/from",
        ),
        (
            r#"{"rename_constraint": {"table": "items", "from": "price_positive", "to": "items_name_price_key"}}"#,
            "/operations/0/rename_constraint/to",
        ),
        (
            r#"{"rename_constraint": {"table": "items", "from": "items_name_price_key", "to": "items"}}"#,
            "/operations/0/rename_constraint/to",
        ),
    ];
    for (i, (op, pointer)) in cases.iter().enumerate() {
        let file = migration_file(
            &format!("02_bad_{i}.json"),
            &format!(r#"{{"operations": [{op}]}}"#),
        );
        let out = db.tandem(&["start", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{op}: {stderr}");
        assert!(
            stderr.contains(pointer),
            "{op}: expected {pointer} in {stderr}"
        );
    }
    assert_eq!(before, snapshot(c).await);
    // Problems only the whole migration shows.
    let migrations: &[(&str, &str)] = &[
        (
            r#"{"drop_index": {"name": "items_tag_idx"}}, {"create_index": {"name": "items_tag_idx", "table": "items", "columns": ["name"]}}"#,
            "/operations/1/create_index/name",
        ),
        (
            r#"{"alter_column": {"table": "items", "column": "price", "type": "numeric", "up": "price", "down": "price::bigint"}},
               {"rename_constraint": {"table": "items", "from": "price_positive", "to": "positive"}}"#,
            "/operations/1/rename_constraint/from",
        ),
    ];
    let create = migration_file(
        "02_tag.json",
        r#"{"operations": [{"create_index": {"name": "items_tag_idx", "table": "items", "columns": ["tag"]}}]}"#,
    );
    db.tandem_ok(&["start", "--complete", create.to_str().unwrap()]);
    let before = snapshot(c).await;
    for (i, (ops, pointer)) in migrations.iter().enumerate() {
        let file = migration_file(
            &format!("03_bad_{i}.json"),
            &format!(r#"{{"operations": [{ops}]}}"#),
        );
        let out = db.tandem(&["start", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{ops}: {stderr}");
        assert!(
            stderr.contains(pointer),
            "{ops}: expected {pointer} in {stderr}"
        );
    }
    // A replica identity needs a unique index over NOT NULL columns.
    let file = migration_file(
        "03_tag_idx.json",
        r#"{"operations": [{"create_index": {"name": "items_tag_idx2", "table": "items", "columns": ["tag"]}},
            {"set_replica_identity": {"table": "items", "identity": {"type": "index", "index": "items_tag_idx2"}}}]}"#,
    );
    let out = db.tandem(&["start", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/operations/1/set_replica_identity/identity/index")
            && stderr.contains("not unique"),
        "{stderr}"
    );
    assert_eq!(before, snapshot(c).await);
}

#[tokio::test]
async fn an_index_over_a_column_altered_in_the_same_migration_is_built_on_its_shadow() {
    let (db, v1) = setup().await;
    let c = db.client().await;
    let (db, v1, c) = (&db, &v1, &c);
    let migration = r#"{"operations": [
        {"alter_column": {"table": "items", "column": "price", "type": "numeric(12,2)", "up": "price", "down": "price::bigint"}},
        {"create_index": {"name": "items_price_idx", "table": "items", "columns": [{"column": "price", "sort": "DESC"}], "predicate": "price > 1"}}]}"#;
    let round = &std::sync::atomic::AtomicUsize::new(0);
    round_trip(db, "02_numeric", migration, || async move {
        assert_eq!(
            index(c, "items_price_idx").await,
            Some((
                "CREATE INDEX items_price_idx ON public.items USING btree (_tandem_new_price DESC) WHERE (_tandem_new_price > (1)::numeric)".to_string(),
                true
            )),
            "built on the shadow column the new version reads"
        );
        let n = round.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        both_versions_write(db, v1, "public_02_numeric", &n.to_string()).await;
    })
    .await;
    assert_eq!(
        index(c, "items_price_idx").await,
        Some((
            "CREATE INDEX items_price_idx ON public.items USING btree (price DESC) WHERE (price > (1)::numeric)".to_string(),
            true
        ))
    );
    assert_eq!(
        texts(c, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'public.items'::regclass AND attname = 'price'").await,
        ["numeric(12,2)"]
    );
}
