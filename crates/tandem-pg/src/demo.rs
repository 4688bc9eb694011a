//! The SQL behind `tandem demo`: sample rows, and the "side by side" check that writes a row
//! through the old version and one through the new, then reads both back through both.
//!
//! Everything that is read is derived from the migration and the catalog: the tables a
//! migration touches are found by name in the version schemas, each version's view is mapped to
//! the base table it shows (so a renamed or set-aside table is still recognised), and its
//! columns come from `information_schema`. Only the writes are scripted, per example migration
//! (what an app of that version would plausibly run), because a meaningful row cannot be made
//! up generically. A migration without a script is still shown, with reads only.

use std::collections::BTreeSet;

use tandem_core::ident::{qualified, quote_ident};
use tandem_core::migration::{Migration, Operation};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use crate::executor::db_message;
use crate::session::Error;

/// Which app version a write or read goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The previous version, still running while the migration is in flight.
    Old,
    /// The version the migration creates.
    New,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Old => "old",
            Side::New => "new",
        }
    }
}

/// A bind parameter of a scripted write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Text(&'static str),
    Int(i32),
}

impl Value {
    fn boxed(&self) -> Box<dyn ToSql + Sync + Send> {
        match self {
            Value::Text(s) => Box::new(s.to_string()),
            Value::Int(i) => Box::new(*i),
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Value::Int(i) => write!(f, "{i}"),
        }
    }
}

/// A statement an app of one version runs, with its search_path set to that version's schema
/// (so table and column names are the ones that version sees).
#[derive(Debug, Clone)]
struct ScriptedWrite {
    side: Side,
    /// The table written, as the writing version names it.
    table: &'static str,
    /// An INSERT or UPDATE without RETURNING; the demo adds one to learn which row it wrote.
    sql: &'static str,
    params: Vec<Value>,
}

fn write(side: Side, table: &'static str, sql: &'static str, params: Vec<Value>) -> ScriptedWrite {
    ScriptedWrite {
        side,
        table,
        sql,
        params,
    }
}

/// Rows every later example builds on, written through the new version right after the
/// migration that creates their tables has started.
fn sample_rows(migration: &str) -> Vec<ScriptedWrite> {
    use Side::New;
    use Value::{Int, Text};
    match migration {
        "01_create_users_products" => vec![
            write(
                New,
                "users",
                "INSERT INTO users (name, nickname) VALUES ($1, $2), ($3, $4)",
                vec![
                    Text("Alice Smith"),
                    Text("ali"),
                    Text("Bob Jones"),
                    Text("bobby"),
                ],
            ),
            write(
                New,
                "products",
                "INSERT INTO products (sku, title, price_cents) VALUES ($1, $2, $3), ($4, $5, $6)",
                vec![
                    Text("TEA-01"),
                    Text("Green tea"),
                    Int(450),
                    Text("MUG-01"),
                    Text("Mug"),
                    Int(1200),
                ],
            ),
            write(
                New,
                "legacy_coupons",
                "INSERT INTO legacy_coupons (code, percent) VALUES ($1, $2)",
                vec![Text("WELCOME10"), Int(10)],
            ),
        ],
        "02_create_orders" => vec![write(
            New,
            "orders",
            "INSERT INTO orders (user_id, product_id, quantity) \
             SELECT u.id, p.id, o.quantity \
             FROM (VALUES ($1, $2, $3::int), ($4, $5, $6::int)) AS o (name, sku, quantity) \
             JOIN users u ON u.name = o.name JOIN products p ON p.sku = o.sku",
            vec![
                Text("Alice Smith"),
                Text("TEA-01"),
                Int(2),
                Text("Bob Jones"),
                Text("MUG-01"),
                Int(1),
            ],
        )],
        _ => Vec::new(),
    }
}

/// What each example migration's two app versions write while it is in flight.
fn side_by_side_writes(migration: &str) -> Vec<ScriptedWrite> {
    use Side::{New, Old};
    use Value::{Int, Text};
    match migration {
        "01_create_users_products" => vec![
            write(
                New,
                "users",
                "INSERT INTO users (name) VALUES ($1)",
                vec![Text("Carol White")],
            ),
            write(
                New,
                "products",
                "INSERT INTO products (sku, title, price_cents) VALUES ($1, $2, $3)",
                vec![Text("SPOON-01"), Text("Tea spoon"), Int(300)],
            ),
            write(
                New,
                "legacy_coupons",
                "INSERT INTO legacy_coupons (code, percent, note) VALUES ($1, $2, $3)",
                vec![Text("SPRING20"), Int(20), Text("spring sale")],
            ),
        ],
        "02_create_orders" => vec![
            write(
                Old,
                "users",
                "INSERT INTO users (name, nickname) VALUES ($1, $2)",
                vec![Text("Dave Brown"), Text("dave")],
            ),
            write(
                New,
                "orders",
                "INSERT INTO orders (user_id, product_id) \
                 SELECT u.id, p.id FROM users u, products p WHERE u.name = $1 AND p.sku = $2",
                vec![Text("Dave Brown"), Text("MUG-01")],
            ),
        ],
        "03_add_user_email" => vec![
            write(
                Old,
                "users",
                "INSERT INTO users (name, nickname) VALUES ($1, $2)",
                vec![Text("Erin Gray"), Text("erin")],
            ),
            write(
                New,
                "users",
                "INSERT INTO users (name, email, referred_by) \
                 SELECT $1, $2, id FROM users WHERE name = $3",
                vec![Text("Frank Green"), Text("frank@shop.test"), Text("Alice Smith")],
            ),
        ],
        "04_rename_product_title" => vec![
            write(
                Old,
                "products",
                "INSERT INTO products (sku, title, price_cents) VALUES ($1, $2, $3)",
                vec![Text("KETTLE-01"), Text("Kettle"), Int(3500)],
            ),
            write(
                New,
                "products",
                "INSERT INTO products (sku, name, price_cents) VALUES ($1, $2, $3)",
                vec![Text("TEAPOT-01"), Text("Teapot"), Int(2800)],
            ),
            write(
                New,
                "products",
                "UPDATE products SET name = $1 WHERE sku = $2",
                vec![Text("Green tea (100 g)"), Text("TEA-01")],
            ),
        ],
        "05_add_order_status" => vec![
            write(
                Old,
                "orders",
                "INSERT INTO orders (user_id, product_id) \
                 SELECT u.id, p.id FROM users u, products p WHERE u.name = $1 AND p.sku = $2",
                vec![Text("Erin Gray"), Text("KETTLE-01")],
            ),
            write(
                New,
                "orders",
                "INSERT INTO orders (user_id, product_id, quantity, status) \
                 SELECT u.id, p.id, $3, $4 FROM users u, products p WHERE u.name = $1 AND p.sku = $2",
                vec![Text("Frank Green"), Text("TEAPOT-01"), Int(2), Text("paid")],
            ),
            write(
                New,
                "orders",
                "UPDATE orders SET status = $1 WHERE id = (SELECT min(id) FROM orders)",
                vec![Text("shipped")],
            ),
        ],
        "06_drop_user_nickname" => vec![
            write(
                Old,
                "users",
                "INSERT INTO users (name, nickname, email) VALUES ($1, $2, $3)",
                vec![Text("Grace Hall"), Text("gracie"), Text("grace@shop.test")],
            ),
            write(
                New,
                "users",
                "INSERT INTO users (name, email) VALUES ($1, $2)",
                vec![Text("Henry Adams"), Text("henry@shop.test")],
            ),
        ],
        "07_rename_orders_to_purchases" => vec![
            write(
                Old,
                "orders",
                "INSERT INTO orders (user_id, product_id) \
                 SELECT u.id, p.id FROM users u, products p WHERE u.name = $1 AND p.sku = $2",
                vec![Text("Grace Hall"), Text("TEA-01")],
            ),
            write(
                New,
                "purchases",
                "INSERT INTO purchases (user_id, product_id, status) \
                 SELECT u.id, p.id, $3 FROM users u, products p WHERE u.name = $1 AND p.sku = $2",
                vec![Text("Henry Adams"), Text("SPOON-01"), Text("paid")],
            ),
        ],
        "08_sql_audit_log" => vec![
            write(
                Old,
                "purchases",
                "INSERT INTO purchases (user_id, product_id) \
                 SELECT u.id, p.id FROM users u, products p WHERE u.name = $1 AND p.sku = $2",
                vec![Text("Alice Smith"), Text("TEAPOT-01")],
            ),
            write(
                New,
                "audit_log",
                "INSERT INTO audit_log (actor, action) VALUES ($1, $2)",
                vec![Text("Alice Smith"), Text("bought a teapot")],
            ),
        ],
        "09_drop_legacy_coupons" => vec![
            write(
                Old,
                "legacy_coupons",
                "INSERT INTO legacy_coupons (code, percent) VALUES ($1, $2)",
                vec![Text("LASTCALL50"), Int(50)],
            ),
            write(
                Old,
                "audit_log",
                "INSERT INTO audit_log (actor, action) VALUES ($1, $2)",
                vec![Text("checkout v8"), Text("issued coupon LASTCALL50")],
            ),
            write(
                New,
                "audit_log",
                "INSERT INTO audit_log (actor, action) VALUES ($1, $2)",
                vec![Text("admin"), Text("retired legacy coupons")],
            ),
        ],
        _ => Vec::new(),
    }
}

/// Rows as text, with their column names; NULL is `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// One scripted write as it ran.
#[derive(Debug, Clone)]
pub struct WriteReport {
    pub side: Side,
    pub version_schema: String,
    pub sql: String,
    pub params: Vec<String>,
    /// How many rows it wrote.
    pub rows: usize,
}

/// One table as a version sees it.
#[derive(Debug, Clone)]
pub struct TableRead {
    pub version_schema: String,
    /// The table's name in this version, or `None` when this version does not have it.
    pub table: Option<String>,
    pub rows: Rows,
}

/// One base table, read through both versions.
#[derive(Debug, Clone)]
pub struct TableComparison {
    /// The base table, schema-qualified (`public.users`); a table that a `drop_table` set
    /// aside shows under its temporary name.
    pub base_table: String,
    pub old: Option<TableRead>,
    pub new: TableRead,
}

#[derive(Debug, Clone)]
pub struct SideBySide {
    pub writes: Vec<WriteReport>,
    pub tables: Vec<TableComparison>,
}

/// A view of a version schema and the base table it shows.
#[derive(Debug, Clone)]
struct ViewOf {
    view: String,
    base: String,
}

/// The demo's own connection, separate from tandem's session, as an app's would be.
pub struct DemoDb {
    client: Client,
}

fn database(e: tokio_postgres::Error) -> Error {
    Error::Database(db_message(&e))
}

impl DemoDb {
    pub async fn connect(url: &str) -> Result<DemoDb, Error> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|e| Error::CannotConnect(db_message(&e)))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client
            .batch_execute("SET application_name = 'tandem demo'")
            .await
            .map_err(database)?;
        Ok(DemoDb { client })
    }

    /// The tables (views) a version schema shows, or `None` when the schema does not exist.
    pub async fn version_tables(&self, version_schema: &str) -> Result<Option<Vec<String>>, Error> {
        let exists = self
            .client
            .query_opt(
                "SELECT 1 FROM pg_namespace WHERE nspname = $1",
                &[&version_schema],
            )
            .await
            .map_err(database)?
            .is_some();
        if !exists {
            return Ok(None);
        }
        let rows = self
            .client
            .query(
                "SELECT c.relname::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relkind = 'v' ORDER BY 1",
                &[&version_schema],
            )
            .await
            .map_err(database)?;
        Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
    }

    /// Writes the example data set's rows for `migration` (if it has any) through
    /// `version_schema`; returns how many rows were written.
    pub async fn load_sample_rows(
        &mut self,
        migration: &str,
        version_schema: &str,
    ) -> Result<usize, Error> {
        let mut total = 0;
        for w in sample_rows(migration) {
            total += self.run_write(&w, version_schema).await?.0;
        }
        Ok(total)
    }

    /// Runs the scripted writes of `migration` (old version's through `old`, new version's
    /// through `new`), then reads every table the migration touched or the writes wrote
    /// through both versions: the rows just written plus the two first rows of the table.
    pub async fn side_by_side(
        &mut self,
        migration: &Migration,
        old: Option<&str>,
        new: &str,
    ) -> Result<SideBySide, Error> {
        let old_views = match old {
            Some(o) => self.views_of(o).await?,
            None => Vec::new(),
        };
        let new_views = self.views_of(new).await?;
        let find = |views: &[ViewOf], name: &str| {
            views
                .iter()
                .find(|v| v.view == name)
                .map(|v| v.base.clone())
        };

        // Base tables to show, in first-mentioned order.
        let mut bases: Vec<String> = Vec::new();
        let mut add = |base: Option<String>| {
            if let Some(b) = base {
                if !bases.contains(&b) {
                    bases.push(b);
                }
            }
        };
        for name in touched_tables(migration) {
            add(find(&new_views, &name).or_else(|| find(&old_views, &name)));
        }
        // Tables one version has and the other has not (raw SQL can create or drop any).
        let old_bases: BTreeSet<&String> = old_views.iter().map(|v| &v.base).collect();
        let new_bases: BTreeSet<&String> = new_views.iter().map(|v| &v.base).collect();
        if old.is_some() {
            for b in new_bases.symmetric_difference(&old_bases) {
                add(Some((*b).clone()));
            }
        }

        // The writes, and the keys of the rows they wrote, per base table.
        let mut writes = Vec::new();
        let mut keys: Vec<(String, String)> = Vec::new();
        for w in side_by_side_writes(&migration.name) {
            let (schema, views) = match (w.side, old) {
                (Side::Old, Some(o)) => (o, &old_views),
                (Side::Old, None) => continue,
                (Side::New, _) => (new, &new_views),
            };
            let (count, written) = self.run_write(&w, schema).await?;
            if let Some(base) = find(views, w.table) {
                add(Some(base.clone()));
                keys.extend(written.into_iter().map(|k| (base.clone(), k)));
            }
            writes.push(WriteReport {
                side: w.side,
                version_schema: schema.to_string(),
                sql: w.sql.to_string(),
                params: w.params.iter().map(|p| p.to_string()).collect(),
                rows: count,
            });
        }

        let mut tables = Vec::new();
        for base in bases {
            let wanted: Vec<String> = keys
                .iter()
                .filter(|(b, _)| *b == base)
                .map(|(_, k)| k.clone())
                .collect();
            let old_read = match old {
                Some(o) => {
                    let view = old_views.iter().find(|v| v.base == base);
                    Some(self.read(o, view.map(|v| v.view.as_str()), &wanted).await?)
                }
                None => None,
            };
            let view = new_views.iter().find(|v| v.base == base);
            let new_read = self
                .read(new, view.map(|v| v.view.as_str()), &wanted)
                .await?;
            tables.push(TableComparison {
                base_table: base,
                old: old_read,
                new: new_read,
            });
        }
        Ok(SideBySide { writes, tables })
    }

    /// The views of a version schema and the base table each one shows.
    async fn views_of(&self, version_schema: &str) -> Result<Vec<ViewOf>, Error> {
        let rows = self
            .client
            .query(
                "SELECT DISTINCT v.relname::text, format('%I.%I', tn.nspname, t.relname) \
                 FROM pg_class v \
                 JOIN pg_namespace n ON n.oid = v.relnamespace \
                 JOIN pg_rewrite r ON r.ev_class = v.oid \
                 JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid \
                   AND d.refclassid = 'pg_class'::regclass \
                 JOIN pg_class t ON t.oid = d.refobjid AND t.relkind IN ('r', 'p') \
                 JOIN pg_namespace tn ON tn.oid = t.relnamespace \
                 WHERE n.nspname = $1 AND v.relkind = 'v' \
                 ORDER BY 1",
                &[&version_schema],
            )
            .await
            .map_err(database)?;
        Ok(rows
            .iter()
            .map(|r| ViewOf {
                view: r.get(0),
                base: r.get(1),
            })
            .collect())
    }

    /// The view's columns in order, each with its `information_schema` data type.
    async fn columns(
        &self,
        version_schema: &str,
        view: &str,
    ) -> Result<Vec<(String, String)>, Error> {
        let rows = self
            .client
            .query(
                "SELECT column_name::text, data_type::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                &[&version_schema, &view],
            )
            .await
            .map_err(database)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    /// Runs one write as its app version would: in a transaction whose search_path is that
    /// version's schema. Returns the number of rows written and their keys (the first column
    /// of the writer's view, as text).
    async fn run_write(
        &mut self,
        w: &ScriptedWrite,
        version_schema: &str,
    ) -> Result<(usize, Vec<String>), Error> {
        let columns = self.columns(version_schema, w.table).await?;
        let Some((key, _)) = columns.first() else {
            return Err(Error::Database(format!(
                "the demo script writes to \"{}\", which version schema \"{version_schema}\" does not have",
                w.table
            )));
        };
        let sql = format!("{} RETURNING {}::text", w.sql, quote_ident(key));
        let boxed: Vec<Box<dyn ToSql + Sync + Send>> = w.params.iter().map(Value::boxed).collect();
        let params: Vec<&(dyn ToSql + Sync)> = boxed
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let failed = |e: tokio_postgres::Error| {
            Error::Database(format!(
                "the {} version ({version_schema}) could not write: {}\n  statement: {}",
                w.side.as_str(),
                db_message(&e),
                w.sql
            ))
        };
        let tx = self.client.transaction().await.map_err(database)?;
        tx.batch_execute(&format!(
            "SET LOCAL search_path TO {}",
            quote_ident(version_schema)
        ))
        .await
        .map_err(failed)?;
        let rows = tx.query(&sql, &params).await.map_err(failed)?;
        tx.commit().await.map_err(failed)?;
        let written: Vec<String> = rows
            .iter()
            .filter_map(|r| r.get::<_, Option<String>>(0))
            .collect();
        Ok((rows.len(), written))
    }

    /// Reads a version's view: the rows whose key is in `keys`, plus the table's first two
    /// rows (by key) for context. Timestamps are shown to the minute.
    async fn read(
        &self,
        version_schema: &str,
        view: Option<&str>,
        keys: &[String],
    ) -> Result<TableRead, Error> {
        let Some(view) = view else {
            return Ok(TableRead {
                version_schema: version_schema.to_string(),
                table: None,
                rows: Rows {
                    columns: Vec::new(),
                    rows: Vec::new(),
                },
            });
        };
        let columns = self.columns(version_schema, view).await?;
        let Some((key, _)) = columns.first() else {
            return Ok(TableRead {
                version_schema: version_schema.to_string(),
                table: Some(view.to_string()),
                rows: Rows {
                    columns: Vec::new(),
                    rows: Vec::new(),
                },
            });
        };
        let exprs: Vec<String> = columns
            .iter()
            .map(|(name, data_type)| {
                let col = format!("t.{}", quote_ident(name));
                if data_type.starts_with("timestamp") {
                    format!("to_char({col}, 'YYYY-MM-DD HH24:MI')")
                } else {
                    format!("{col}::text")
                }
            })
            .collect();
        let relation = qualified(version_schema, view);
        let key = quote_ident(key);
        let sql = format!(
            "SELECT {} FROM {relation} AS t \
             WHERE t.{key}::text = ANY($1) OR t.{key} IN (SELECT {key} FROM {relation} ORDER BY {key} LIMIT 2) \
             ORDER BY t.{key}",
            exprs.join(", ")
        );
        let rows = self
            .client
            .query(&sql, &[&keys])
            .await
            .map_err(|e| Error::Database(format!("reading {relation}: {}", db_message(&e))))?;
        Ok(TableRead {
            version_schema: version_schema.to_string(),
            table: Some(view.to_string()),
            rows: Rows {
                columns: columns.into_iter().map(|(n, _)| n).collect(),
                rows: rows
                    .iter()
                    .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
                    .collect(),
            },
        })
    }
}

/// The tables a migration's operations name, as the version that knows them calls them.
fn touched_tables(migration: &Migration) -> Vec<String> {
    let mut names = Vec::new();
    for op in &migration.operations {
        let named: Vec<&str> = match op {
            Operation::CreateTable(o) => vec![&o.name],
            Operation::AddColumn(o) => vec![&o.table],
            Operation::AlterColumn(o) => vec![&o.table],
            Operation::RenameColumn(o) => vec![&o.table],
            Operation::DropColumn(o) => vec![&o.table],
            Operation::RenameTable(o) => vec![&o.to, &o.from],
            Operation::DropTable(o) => vec![&o.name],
            Operation::CreateIndex(o) => vec![&o.table],
            Operation::CreateConstraint(o) => vec![&o.table],
            Operation::DropConstraint(o) => vec![&o.table],
            Operation::DropMulticolumnConstraint(o) => vec![&o.table],
            Operation::RenameConstraint(o) => vec![&o.table],
            Operation::SetReplicaIdentity(o) => vec![&o.table],
            Operation::DropIndex(_) | Operation::Sql(_) => Vec::new(),
        };
        for n in named {
            if !names.iter().any(|m| m == n) {
                names.push(n.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the example migrations, from `migrations-examples/`.
    fn example_names() -> Vec<String> {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations-examples");
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                let stem = path.file_stem()?.to_str()?.to_string();
                matches!(path.extension()?.to_str()?, "yaml" | "yml" | "json").then_some(stem)
            })
            .collect();
        names.sort();
        names
    }

    #[test]
    fn every_example_migration_has_writes_from_both_versions() {
        let names = example_names();
        assert!(names.len() >= 7, "{names:?}");
        for (i, name) in names.iter().enumerate() {
            let writes = side_by_side_writes(name);
            assert!(
                writes.iter().any(|w| w.side == Side::New),
                "{name}: no write through the new version"
            );
            // The first migration has no earlier version to write through.
            if i > 0 {
                assert!(
                    writes.iter().any(|w| w.side == Side::Old),
                    "{name}: no write through the old version"
                );
            }
        }
    }

    #[test]
    fn every_scripted_write_binds_every_parameter() {
        for name in example_names() {
            let name = name.as_str();
            let writes: Vec<ScriptedWrite> = sample_rows(name)
                .into_iter()
                .chain(side_by_side_writes(name))
                .collect();
            for w in writes {
                let highest = (1..=20)
                    .filter(|i| w.sql.contains(&format!("${i}")))
                    .max()
                    .unwrap_or(0);
                assert_eq!(highest, w.params.len(), "{name}: {}", w.sql);
            }
        }
    }
}
