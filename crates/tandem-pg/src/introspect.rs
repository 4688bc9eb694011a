//! Reads the live definition of one PostgreSQL schema into the tandem-core model.
//!
//! Every kind of object (tables, columns, constraints, indexes) comes from a single catalog
//! query for the whole namespace, so the cost does not grow with the number of tables; rows are
//! attached to their table by oid afterwards.

use std::collections::HashMap;

use tandem_core::schema::{
    Column, Constraint, ConstraintKind, Grant, Index, ReplicaIdentity, Schema, Table,
};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Error, Row};

/// Ordinary and partitioned tables; views, sequences and foreign tables are not migrated.
/// `relreplident` 'i' names its index through `indisreplident`.
const TABLES_SQL: &str = "
    SELECT c.oid, c.relname::text, obj_description(c.oid, 'pg_class'),
           c.relreplident::text,
           (SELECT ic.relname::text
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
            WHERE i.indrelid = c.oid AND i.indisreplident
            LIMIT 1),
           (SELECT p.relname::text
            FROM pg_inherits h JOIN pg_class p ON p.oid = h.inhparent
            WHERE h.inhrelid = c.oid AND p.relnamespace = c.relnamespace
            ORDER BY h.inhseqno
            LIMIT 1),
           c.relkind = 'p'
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
    ORDER BY c.relname";

/// A generated column keeps its expression in pg_attrdef too, so `default` and `generated`
/// are split on `attgenerated` to keep the expression from showing up as a default.
const COLUMNS_SQL: &str = "
    SELECT a.attrelid,
           a.attname::text,
           format_type(a.atttypid, a.atttypmod),
           NOT a.attnotnull,
           CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END,
           CASE a.attidentity WHEN 'a' THEN 'ALWAYS' WHEN 'd' THEN 'BY DEFAULT' END,
           CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END,
           col_description(a.attrelid, a.attnum)
    FROM pg_attribute a
    JOIN pg_class c ON c.oid = a.attrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
      AND a.attnum > 0 AND NOT a.attisdropped
    ORDER BY a.attrelid, a.attnum";

/// `conkey` is unnested WITH ORDINALITY because key order matters (primary keys, foreign keys);
/// a 0 in it (an exclusion constraint over an expression) becomes "" as for indexes.
const CONSTRAINTS_SQL: &str = "
    SELECT con.conrelid,
           con.conname::text,
           con.contype::text,
           ARRAY(SELECT coalesce(a.attname::text, '')
                 FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
                 LEFT JOIN pg_attribute a
                   ON a.attrelid = con.conrelid AND a.attnum = k.attnum
                 ORDER BY k.ord),
           pg_get_constraintdef(con.oid),
           con.convalidated
    FROM pg_constraint con
    JOIN pg_class c ON c.oid = con.conrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
    ORDER BY con.conrelid, con.conname";

/// Only the first `indnkeyatts` entries of `indkey` are key columns; the rest are INCLUDE
/// columns, which do not take part in uniqueness. A foreign key also sets `conindid` (to the
/// referenced table's index), hence the `contype` filter when looking for the owning constraint.
const INDEXES_SQL: &str = "
    SELECT i.indrelid,
           ic.relname::text,
           ARRAY(SELECT coalesce(a.attname::text, '')
                 FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
                 LEFT JOIN pg_attribute a
                   ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE k.ord <= i.indnkeyatts
                 ORDER BY k.ord),
           i.indisunique,
           i.indisprimary,
           pg_get_indexdef(i.indexrelid),
           (SELECT con.conname::text
            FROM pg_constraint con
            WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x')
            LIMIT 1)
    FROM pg_index i
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_class c ON c.oid = i.indrelid
    JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
    ORDER BY i.indrelid, ic.relname";

/// Table privileges of every role but the current one (which will own the views tandem
/// creates, and so needs no grant). A NULL `relacl` means the owner's default privileges,
/// spelled out by `acldefault`, so a table owner other than the current role is kept too.
/// Grantee 0 is PUBLIC, named `public` (a name no role can have).
const TABLE_GRANTS_SQL: &str = "
    SELECT c.oid,
           CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee)::text END,
           a.privilege_type::text,
           a.is_grantable
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    CROSS JOIN LATERAL aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) a
    WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
      AND a.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
    ORDER BY c.oid, 2, 3";

/// The roles (but the current one) with USAGE on the schema, as for tables.
const SCHEMA_USAGE_SQL: &str = "
    SELECT DISTINCT
           CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee)::text END
    FROM pg_namespace n
    CROSS JOIN LATERAL aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) a
    WHERE n.nspname = $1 AND a.privilege_type = 'USAGE'
      AND a.grantee <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
    ORDER BY 1";

/// `ALTER DEFAULT PRIVILEGES` for tables the current role creates: global entries and those
/// `IN SCHEMA` the base schema (PostgreSQL applies both to a new table).
const DEFAULT_GRANTS_SQL: &str = "
    SELECT DISTINCT
           CASE WHEN a.grantee = 0 THEN 'public' ELSE pg_get_userbyid(a.grantee)::text END,
           a.privilege_type::text,
           a.is_grantable
    FROM pg_default_acl d
    CROSS JOIN LATERAL aclexplode(d.defaclacl) a
    WHERE d.defaclobjtype = 'r'
      AND d.defaclrole = (SELECT oid FROM pg_roles WHERE rolname = current_user)
      AND (d.defaclnamespace = 0
           OR d.defaclnamespace = (SELECT oid FROM pg_namespace WHERE nspname = $1))
      AND a.grantee <> d.defaclrole
    ORDER BY 1, 2";

/// Reads the tables of the namespace `schema`, with their columns, constraints and indexes.
///
/// The four catalog queries are pipelined but each sees its own snapshot; a caller that needs
/// a consistent picture while DDL may run concurrently should call this inside a
/// `REPEATABLE READ` transaction. Rows of a table that appeared between queries are ignored.
/// A namespace that does not exist reads as a schema without tables.
pub async fn read_schema(client: &Client, schema: &str) -> Result<Schema, Error> {
    let params: &[&(dyn ToSql + Sync)] = &[&schema];
    let (tables, columns, constraints, indexes) = tokio::try_join!(
        client.query(TABLES_SQL, params),
        client.query(COLUMNS_SQL, params),
        client.query(CONSTRAINTS_SQL, params),
        client.query(INDEXES_SQL, params),
    )?;
    let (table_grants, usage, default_grants) = tokio::try_join!(
        client.query(TABLE_GRANTS_SQL, params),
        client.query(SCHEMA_USAGE_SQL, params),
        client.query(DEFAULT_GRANTS_SQL, params),
    )?;
    let mut tables = TablesByOid::new(&tables)?;
    for row in &columns {
        if let Some(table) = tables.get_mut(row.try_get(0)?) {
            table.columns.push(column(row)?);
        }
    }
    for row in &constraints {
        if let Some(table) = tables.get_mut(row.try_get(0)?) {
            table.constraints.push(constraint(row)?);
        }
    }
    for row in &indexes {
        if let Some(table) = tables.get_mut(row.try_get(0)?) {
            table.indexes.push(index(row)?);
        }
    }
    for row in &table_grants {
        if let Some(table) = tables.get_mut(row.try_get(0)?) {
            table.grants.push(grant(row, 1)?);
        }
    }
    let mut tables = tables.into_tables();
    for table in &mut tables {
        table.primary_key = primary_key(&table.constraints);
    }
    Ok(Schema {
        name: schema.to_string(),
        tables,
        usage: usage
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?,
        default_grants: default_grants
            .iter()
            .map(|r| grant(r, 0))
            .collect::<Result<_, _>>()?,
    })
}

/// A grant from the columns grantee, privilege, grantable starting at `first`.
fn grant(row: &Row, first: usize) -> Result<Grant, Error> {
    Ok(Grant {
        grantee: row.try_get(first)?,
        privilege: row.try_get(first + 1)?,
        grantable: row.try_get(first + 2)?,
    })
}

/// Tables in name order, addressable by the oid the other queries report.
struct TablesByOid {
    tables: Vec<Table>,
    positions: HashMap<u32, usize>,
}

impl TablesByOid {
    fn new(rows: &[Row]) -> Result<Self, Error> {
        let mut tables = Vec::with_capacity(rows.len());
        let mut positions = HashMap::with_capacity(rows.len());
        for row in rows {
            positions.insert(row.try_get(0)?, tables.len());
            tables.push(table(row)?);
        }
        Ok(Self { tables, positions })
    }

    fn get_mut(&mut self, oid: u32) -> Option<&mut Table> {
        let position = *self.positions.get(&oid)?;
        self.tables.get_mut(position)
    }

    fn into_tables(self) -> Vec<Table> {
        self.tables
    }
}

fn table(row: &Row) -> Result<Table, Error> {
    let name: String = row.try_get(1)?;
    Ok(Table {
        physical: name.clone(),
        name,
        comment: row.try_get(2)?,
        replica_identity: replica_identity(row.try_get(3)?, row.try_get(4)?),
        parent: row.try_get(5)?,
        partitioned: row.try_get(6)?,
        ..Table::default()
    })
}

/// 'i' whose index was dropped behaves as NOTHING (pg_class documentation).
fn replica_identity(relreplident: &str, index: Option<String>) -> Option<ReplicaIdentity> {
    match (relreplident, index) {
        ("f", _) => Some(ReplicaIdentity::Full),
        ("i", Some(index)) => Some(ReplicaIdentity::Index { index }),
        ("n" | "i", _) => Some(ReplicaIdentity::Nothing),
        _ => None,
    }
}

fn column(row: &Row) -> Result<Column, Error> {
    let name: String = row.try_get(1)?;
    Ok(Column {
        physical: name.clone(),
        name,
        type_name: row.try_get(2)?,
        nullable: row.try_get(3)?,
        default: row.try_get(4)?,
        identity: row.try_get(5)?,
        generated: row.try_get(6)?,
        comment: row.try_get(7)?,
    })
}

fn constraint(row: &Row) -> Result<Constraint, Error> {
    Ok(Constraint {
        name: row.try_get(1)?,
        kind: constraint_kind(row.try_get(2)?),
        columns: row.try_get(3)?,
        definition: row.try_get(4)?,
        validated: row.try_get(5)?,
    })
}

fn constraint_kind(contype: &str) -> ConstraintKind {
    match contype {
        "p" => ConstraintKind::PrimaryKey,
        "u" => ConstraintKind::Unique,
        "c" => ConstraintKind::Check,
        "f" => ConstraintKind::ForeignKey,
        "x" => ConstraintKind::Exclude,
        _ => ConstraintKind::Other,
    }
}

fn index(row: &Row) -> Result<Index, Error> {
    Ok(Index {
        name: row.try_get(1)?,
        columns: row.try_get(2)?,
        unique: row.try_get(3)?,
        primary: row.try_get(4)?,
        definition: row.try_get(5)?,
        constraint: row.try_get(6)?,
    })
}

fn primary_key(constraints: &[Constraint]) -> Vec<String> {
    constraints
        .iter()
        .find(|c| c.kind == ConstraintKind::PrimaryKey)
        .map(|c| c.columns.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use tandem_core::ident::quote_ident;
    use tokio_postgres::{Config, NoTls};

    use super::*;

    fn base_config() -> Config {
        crate::test_server::admin_url()
            .parse()
            .expect("TANDEM_TEST_PG_URL is not a valid connection string")
    }

    /// Unique across the tests of this process and across concurrent test processes.
    fn fresh_database_name() -> String {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("tandem_introspect_{}_{nanos}_{n}", std::process::id())
    }

    async fn connect(config: &Config) -> Result<Client, Error> {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// Runs `fixture` in a database of its own and reads `schema` back. The database is dropped
    /// before any assertion runs, so a failing test does not leave it behind.
    async fn read_fixture(fixture: &str, schema: &str) -> Schema {
        let config = base_config();
        let admin = connect(&config).await.expect("dev server not reachable");
        let database = quote_ident(&fresh_database_name());
        admin
            .batch_execute(&format!("CREATE DATABASE {database}"))
            .await
            .unwrap();
        let mut test_config = config.clone();
        test_config.dbname(database.trim_matches('"'));
        let read = async {
            let client = connect(&test_config).await?;
            client.batch_execute(fixture).await?;
            read_schema(&client, schema).await
        }
        .await;
        admin
            .batch_execute(&format!("DROP DATABASE {database} WITH (FORCE)"))
            .await
            .unwrap();
        read.unwrap()
    }

    fn column(name: &str, type_name: &str, nullable: bool) -> Column {
        Column {
            name: name.to_string(),
            physical: name.to_string(),
            type_name: type_name.to_string(),
            nullable,
            ..Column::default()
        }
    }

    fn constraint(
        name: &str,
        kind: ConstraintKind,
        columns: &[&str],
        definition: &str,
        validated: bool,
    ) -> Constraint {
        Constraint {
            name: name.to_string(),
            kind,
            columns: strings(columns),
            definition: definition.to_string(),
            validated,
        }
    }

    fn index(
        name: &str,
        columns: &[&str],
        (unique, primary): (bool, bool),
        definition: &str,
        constraint: Option<&str>,
    ) -> Index {
        Index {
            name: name.to_string(),
            columns: strings(columns),
            unique,
            primary,
            definition: definition.to_string(),
            constraint: constraint.map(str::to_string),
        }
    }

    fn table(name: &str) -> Table {
        Table {
            name: name.to_string(),
            physical: name.to_string(),
            ..Table::default()
        }
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn some(s: &str) -> Option<String> {
        Some(s.to_string())
    }

    const ORDERS_FIXTURE: &str = r#"
        CREATE SCHEMA "App ""Core""";
        CREATE TYPE "App ""Core""".mood AS ENUM ('happy', 'sad');
        CREATE TABLE "App ""Core""".orders (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            ref integer GENERATED BY DEFAULT AS IDENTITY,
            customer text NOT NULL,
            status text DEFAULT 'new',
            "Amount Due" numeric(10,2)
        );
        CREATE TABLE "App ""Core"""."Order Items" (
            "Order ID" bigint REFERENCES "App ""Core""".orders (id) ON DELETE CASCADE,
            line_no integer,
            sku varchar(255) NOT NULL,
            legacy text,
            price numeric(10,2) NOT NULL DEFAULT 0,
            quantity integer NOT NULL DEFAULT 1 CHECK (quantity > 0),
            total numeric GENERATED ALWAYS AS (price * quantity) STORED,
            tags text[] NOT NULL DEFAULT '{}',
            mood "App ""Core""".mood DEFAULT 'happy',
            "say ""hi""" text,
            PRIMARY KEY ("Order ID", line_no),
            CONSTRAINT "Order Items_sku_key" UNIQUE (sku, "Order ID")
        );
        ALTER TABLE "App ""Core"""."Order Items" DROP COLUMN legacy;
        ALTER TABLE "App ""Core"""."Order Items"
            ADD CONSTRAINT "Price ""Positive""" CHECK (price >= 0) NOT VALID;
        CREATE INDEX orders_open_idx ON "App ""Core""".orders (customer) WHERE status <> 'done';
        CREATE UNIQUE INDEX "Orders Lower Customer"
            ON "App ""Core""".orders (lower(customer), id);
        CREATE UNIQUE INDEX orders_ref_idx ON "App ""Core""".orders (ref) INCLUDE (customer);
        COMMENT ON TABLE "App ""Core""".orders IS 'Customer''s orders';
        COMMENT ON COLUMN "App ""Core"""."Order Items"."Order ID" IS 'Points at "orders"';
    "#;

    fn expected_order_items() -> Table {
        use ConstraintKind::*;
        Table {
            columns: vec![
                Column {
                    comment: some(r#"Points at "orders""#),
                    ..column("Order ID", "bigint", false)
                },
                column("line_no", "integer", false),
                column("sku", "character varying(255)", false),
                Column {
                    default: some("0"),
                    ..column("price", "numeric(10,2)", false)
                },
                Column {
                    default: some("1"),
                    ..column("quantity", "integer", false)
                },
                Column {
                    generated: some("(price * (quantity)::numeric)"),
                    ..column("total", "numeric", true)
                },
                Column {
                    default: some("'{}'::text[]"),
                    ..column("tags", "text[]", false)
                },
                Column {
                    default: some(r#"'happy'::"App ""Core""".mood"#),
                    ..column("mood", r#""App ""Core""".mood"#, true)
                },
                column(r#"say "hi""#, "text", true),
            ],
            primary_key: strings(&["Order ID", "line_no"]),
            constraints: vec![
                constraint(
                    "Order Items_Order ID_fkey",
                    ForeignKey,
                    &["Order ID"],
                    r#"FOREIGN KEY ("Order ID") REFERENCES "App ""Core""".orders(id) ON DELETE CASCADE"#,
                    true,
                ),
                constraint(
                    "Order Items_pkey",
                    PrimaryKey,
                    &["Order ID", "line_no"],
                    r#"PRIMARY KEY ("Order ID", line_no)"#,
                    true,
                ),
                constraint(
                    "Order Items_quantity_check",
                    Check,
                    &["quantity"],
                    "CHECK ((quantity > 0))",
                    true,
                ),
                constraint(
                    "Order Items_sku_key",
                    Unique,
                    &["sku", "Order ID"],
                    r#"UNIQUE (sku, "Order ID")"#,
                    true,
                ),
                constraint(
                    r#"Price "Positive""#,
                    Check,
                    &["price"],
                    "CHECK ((price >= (0)::numeric)) NOT VALID",
                    false,
                ),
            ],
            indexes: vec![
                index(
                    "Order Items_pkey",
                    &["Order ID", "line_no"],
                    (true, true),
                    r#"CREATE UNIQUE INDEX "Order Items_pkey" ON "App ""Core"""."Order Items" USING btree ("Order ID", line_no)"#,
                    Some("Order Items_pkey"),
                ),
                index(
                    "Order Items_sku_key",
                    &["sku", "Order ID"],
                    (true, false),
                    r#"CREATE UNIQUE INDEX "Order Items_sku_key" ON "App ""Core"""."Order Items" USING btree (sku, "Order ID")"#,
                    Some("Order Items_sku_key"),
                ),
            ],
            ..table("Order Items")
        }
    }

    fn expected_orders() -> Table {
        Table {
            columns: vec![
                Column {
                    identity: some("ALWAYS"),
                    ..column("id", "bigint", false)
                },
                Column {
                    identity: some("BY DEFAULT"),
                    ..column("ref", "integer", false)
                },
                column("customer", "text", false),
                Column {
                    default: some("'new'::text"),
                    ..column("status", "text", true)
                },
                column("Amount Due", "numeric(10,2)", true),
            ],
            primary_key: strings(&["id"]),
            constraints: vec![constraint(
                "orders_pkey",
                ConstraintKind::PrimaryKey,
                &["id"],
                "PRIMARY KEY (id)",
                true,
            )],
            indexes: vec![
                index(
                    "Orders Lower Customer",
                    &["", "id"],
                    (true, false),
                    r#"CREATE UNIQUE INDEX "Orders Lower Customer" ON "App ""Core""".orders USING btree (lower(customer), id)"#,
                    None,
                ),
                index(
                    "orders_open_idx",
                    &["customer"],
                    (false, false),
                    r#"CREATE INDEX orders_open_idx ON "App ""Core""".orders USING btree (customer) WHERE (status <> 'done'::text)"#,
                    None,
                ),
                index(
                    "orders_pkey",
                    &["id"],
                    (true, true),
                    r#"CREATE UNIQUE INDEX orders_pkey ON "App ""Core""".orders USING btree (id)"#,
                    Some("orders_pkey"),
                ),
                index(
                    "orders_ref_idx",
                    &["ref"],
                    (true, false),
                    r#"CREATE UNIQUE INDEX orders_ref_idx ON "App ""Core""".orders USING btree (ref) INCLUDE (customer)"#,
                    None,
                ),
            ],
            comment: some("Customer's orders"),
            ..table("orders")
        }
    }

    #[tokio::test]
    async fn introspect_reads_columns_constraints_and_indexes() {
        let schema = read_fixture(ORDERS_FIXTURE, r#"App "Core""#).await;
        let expected = Schema {
            name: r#"App "Core""#.to_string(),
            tables: vec![expected_order_items(), expected_orders()],
            ..Schema::default()
        };
        assert_eq!(schema, expected);
    }

    const PARTITIONS_FIXTURE: &str = r#"
        CREATE SCHEMA app;
        CREATE TABLE app.events (
            id bigint NOT NULL,
            at date NOT NULL,
            PRIMARY KEY (id, at)
        ) PARTITION BY RANGE (at);
        CREATE TABLE app.events_2024 PARTITION OF app.events
            FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
        CREATE TABLE app.slots (
            starts timestamptz,
            ends timestamptz,
            EXCLUDE USING gist (tstzrange(starts, ends) WITH &&)
        );
        CREATE FUNCTION app.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NULL; END';
        CREATE CONSTRAINT TRIGGER slots_audit AFTER INSERT ON app.slots
            FOR EACH ROW EXECUTE FUNCTION app.noop();
    "#;

    fn expected_event_table(name: &str, only: &str) -> Table {
        let pkey = format!("{name}_pkey");
        Table {
            columns: vec![column("id", "bigint", false), column("at", "date", false)],
            primary_key: strings(&["id", "at"]),
            constraints: vec![constraint(
                &pkey,
                ConstraintKind::PrimaryKey,
                &["id", "at"],
                "PRIMARY KEY (id, at)",
                true,
            )],
            indexes: vec![index(
                &pkey,
                &["id", "at"],
                (true, true),
                &format!("CREATE UNIQUE INDEX {pkey} ON {only}app.{name} USING btree (id, at)"),
                Some(&pkey),
            )],
            ..table(name)
        }
    }

    fn expected_slots() -> Table {
        Table {
            columns: vec![
                column("starts", "timestamp with time zone", true),
                column("ends", "timestamp with time zone", true),
            ],
            constraints: vec![
                constraint(
                    "slots_audit",
                    ConstraintKind::Other,
                    &[],
                    "TRIGGER",
                    true,
                ),
                constraint(
                    "slots_tstzrange_excl",
                    ConstraintKind::Exclude,
                    &[""],
                    "EXCLUDE USING gist (tstzrange(starts, ends) WITH &&)",
                    true,
                ),
            ],
            indexes: vec![index(
                "slots_tstzrange_excl",
                &[""],
                (false, false),
                "CREATE INDEX slots_tstzrange_excl ON app.slots USING gist (tstzrange(starts, ends))",
                Some("slots_tstzrange_excl"),
            )],
            ..table("slots")
        }
    }

    #[tokio::test]
    async fn introspect_reads_partitions_exclusions_and_constraint_triggers() {
        let schema = read_fixture(PARTITIONS_FIXTURE, "app").await;
        let expected = Schema {
            name: "app".to_string(),
            tables: vec![
                Table {
                    partitioned: true,
                    ..expected_event_table("events", "ONLY ")
                },
                Table {
                    parent: Some("events".to_string()),
                    ..expected_event_table("events_2024", "")
                },
                expected_slots(),
            ],
            ..Schema::default()
        };
        assert_eq!(schema, expected);
    }

    const NEIGHBOURS_FIXTURE: &str = r#"
        CREATE SCHEMA app;
        CREATE SCHEMA app2;
        CREATE TABLE app.t (a integer);
        CREATE TABLE app2.u (b integer);
        CREATE TABLE public.t (c integer PRIMARY KEY);
        CREATE VIEW app.v AS SELECT a FROM app.t;
        CREATE MATERIALIZED VIEW app.mv AS SELECT a FROM app.t;
        CREATE SEQUENCE app.s;
        CREATE TYPE app.composite AS (x integer);
        CREATE DOMAIN app.positive AS integer CHECK (VALUE > 0);
    "#;

    #[tokio::test]
    async fn introspect_ignores_other_namespaces_and_relation_kinds() {
        let schema = read_fixture(NEIGHBOURS_FIXTURE, "app").await;
        let expected = Schema {
            name: "app".to_string(),
            tables: vec![Table {
                columns: vec![column("a", "integer", true)],
                ..table("t")
            }],
            ..Schema::default()
        };
        assert_eq!(schema, expected);
    }

    #[tokio::test]
    async fn introspect_reads_a_missing_namespace_as_empty() {
        let schema = read_fixture("CREATE TABLE public.t (a integer)", "nowhere").await;
        let expected = Schema {
            name: "nowhere".to_string(),
            tables: vec![],
            ..Schema::default()
        };
        assert_eq!(schema, expected);
    }

    #[tokio::test]
    async fn introspect_reads_grants_usage_and_default_privileges() {
        let role = fresh_database_name().replace("introspect", "role");
        let r = quote_ident(&role);
        let fixture = format!(
            "CREATE ROLE {r};
             CREATE SCHEMA app;
             GRANT USAGE ON SCHEMA app TO {r};
             CREATE TABLE app.t (a integer);
             CREATE TABLE app.u (b integer);
             GRANT SELECT, UPDATE ON app.t TO {r};
             GRANT INSERT ON app.t TO {r} WITH GRANT OPTION;
             GRANT SELECT ON app.t TO PUBLIC;
             ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO {r};
             ALTER DEFAULT PRIVILEGES GRANT DELETE ON TABLES TO {r};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT UPDATE ON TABLES TO {r};"
        );
        let schema = read_fixture(&fixture, "app").await;
        let grant = |grantee: &str, privilege: &str, grantable: bool| Grant {
            grantee: grantee.to_string(),
            privilege: privilege.to_string(),
            grantable,
        };
        let expected = Schema {
            name: "app".to_string(),
            tables: vec![
                Table {
                    columns: vec![column("a", "integer", true)],
                    grants: vec![
                        grant("public", "SELECT", false),
                        grant(&role, "INSERT", true),
                        grant(&role, "SELECT", false),
                        grant(&role, "UPDATE", false),
                    ],
                    ..table("t")
                },
                Table {
                    columns: vec![column("b", "integer", true)],
                    // Created before the default privileges: none.
                    ..table("u")
                },
            ],
            usage: vec![role.clone()],
            default_grants: vec![grant(&role, "DELETE", false), grant(&role, "SELECT", false)],
        };
        assert_eq!(schema, expected);
    }
}
