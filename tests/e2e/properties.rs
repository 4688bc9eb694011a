//! Property: for random valid migrations over a random small schema, start → rollback leaves
//! the catalog identical, and start → complete gives the shape the planner predicted.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use crate::support::{catalog_snapshot, migration_file, TestDb};

/// A tiny deterministic generator, so that one proptest-chosen seed describes a whole case.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

#[derive(Clone, Debug)]
struct ModelTable {
    name: String,
    columns: Vec<(String, bool)>,
    /// Columns and tables added by the migration being generated: tandem asks for their final
    /// definition in the add_column/create_table itself, so they are not altered afterwards.
    added: Vec<String>,
    /// Columns an alter_column or create_constraint of this migration changed.
    changed: Vec<String>,
    /// Integer columns: the text expressions the changes use do not apply to them.
    integers: Vec<String>,
    created: bool,
}

const NAMES: &[&str] = &["alpha", "Beta", "gamma delta", "select", "é", "x\"y"];

fn fresh(rng: &mut Rng, taken: &[String], prefix: &str) -> String {
    loop {
        let n = format!("{prefix}{}{}", NAMES[rng.next(NAMES.len())], rng.next(100));
        if !taken.contains(&n) {
            return n;
        }
    }
}

fn random_schema(rng: &mut Rng) -> Vec<ModelTable> {
    let mut tables: Vec<ModelTable> = Vec::new();
    for _ in 0..1 + rng.next(3) {
        let taken: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        let mut columns = vec![("id".to_string(), false)];
        for _ in 0..1 + rng.next(3) {
            let names: Vec<String> = columns.iter().map(|c| c.0.clone()).collect();
            columns.push((fresh(rng, &names, "c_"), rng.next(2) == 0));
        }
        tables.push(ModelTable {
            name: fresh(rng, &taken, "t_"),
            columns,
            added: Vec::new(),
            changed: Vec::new(),
            integers: Vec::new(),
            created: false,
        });
    }
    tables
}

fn create_ops(tables: &[ModelTable]) -> Value {
    let ops: Vec<Value> = tables
        .iter()
        .map(|t| {
            let columns: Vec<Value> = t
                .columns
                .iter()
                .map(|(n, nullable)| {
                    if n == "id" {
                        json!({"name": "id", "type": "int", "pk": true})
                    } else {
                        json!({"name": n, "type": "text", "nullable": nullable, "default": "'d'"})
                    }
                })
                .collect();
            json!({"create_table": {"name": t.name, "columns": columns}})
        })
        .collect();
    json!({ "operations": ops })
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One to three operations valid against `tables`, applied to the model as they are chosen.
fn random_migration(rng: &mut Rng, tables: &mut Vec<ModelTable>) -> Value {
    let mut ops = Vec::new();
    for _ in 0..1 + rng.next(3) {
        let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        let ti = rng.next(tables.len());
        let t = &mut tables[ti];
        let cols: Vec<String> = t.columns.iter().map(|c| c.0.clone()).collect();
        // Indexes of the text columns that existed before this migration (never `id`), or
        // of any text column of a table it creates.
        let old: Vec<usize> = (1..t.columns.len())
            .filter(|i| t.created || !t.added.contains(&t.columns[*i].0))
            .filter(|i| !t.integers.contains(&t.columns[*i].0))
            .collect();
        let op = match rng.next(9) {
            0 => {
                let name = fresh(rng, &cols, "n_");
                t.columns.push((name.clone(), false));
                t.added.push(name.clone());
                json!({"add_column": {"table": t.name, "up": "'up-' || id", "column": {"name": name, "type": "text"}}})
            }
            1 => {
                let name = fresh(rng, &cols, "n_");
                t.columns.push((name.clone(), true));
                t.added.push(name.clone());
                t.integers.push(name.clone());
                json!({"add_column": {"table": t.name, "column": {"name": name, "type": "int", "nullable": true}}})
            }
            2 if t.columns.len() > 2
                && old.iter().any(|i| !t.changed.contains(&t.columns[*i].0)) =>
            {
                let unchanged: Vec<usize> = old
                    .iter()
                    .copied()
                    .filter(|i| !t.changed.contains(&t.columns[*i].0))
                    .collect();
                let (name, _) = t.columns.remove(unchanged[rng.next(unchanged.len())]);
                json!({"drop_column": {"table": t.name, "column": name, "down": "'down'"}})
            }
            3 if t.columns.len() > 1 => {
                let i = 1 + rng.next(t.columns.len() - 1);
                let to = fresh(rng, &cols, "r_");
                let from = std::mem::replace(&mut t.columns[i].0, to.clone());
                for a in t
                    .added
                    .iter_mut()
                    .chain(t.changed.iter_mut())
                    .chain(t.integers.iter_mut())
                    .filter(|a| **a == from)
                {
                    a.clone_from(&to);
                }
                json!({"rename_column": {"table": t.name, "from": from, "to": to}})
            }
            5 if !old.is_empty() => {
                let (name, _) = t.columns[old[rng.next(old.len())]].clone();
                t.changed.push(name.clone());
                json!({"alter_column": {"table": t.name, "column": name, "type": "varchar(300)", "up": format!("left({}, 300)", quote(&name))}})
            }
            6 if !old.is_empty() => {
                let i = old[rng.next(old.len())];
                let name = t.columns[i].0.clone();
                t.changed.push(name.clone());
                let nullable = !t.columns[i].1;
                t.columns[i].1 = nullable;
                let fill = format!("COALESCE({}, 'filled')", quote(&name));
                json!({"alter_column": {"table": t.name, "column": name, "nullable": nullable, "up": fill, "down": fill}})
            }
            7 if !old.is_empty() => {
                let (name, _) = t.columns[old[rng.next(old.len())]].clone();
                t.changed.push(name.clone());
                let check = format!("length({}) < 1000", quote(&name));
                json!({"create_constraint": {"table": t.name, "name": fresh(rng, &[], "chk_"), "type": "check", "columns": [name], "check": check, "up": {name.clone(): format!("left({}, 999)", quote(&name))}}})
            }
            4 => {
                let to = fresh(rng, &names, "rt_");
                let from = std::mem::replace(&mut t.name, to.clone());
                json!({"rename_table": {"from": from, "to": to}})
            }
            _ => {
                let name = fresh(rng, &names, "new_");
                tables.push(ModelTable {
                    name: name.clone(),
                    columns: vec![("id".into(), false), ("v".into(), true)],
                    added: Vec::new(),
                    changed: Vec::new(),
                    integers: Vec::new(),
                    created: true,
                });
                json!({"create_table": {"name": name, "columns": [{"name": "id", "type": "int", "pk": true}, {"name": "v", "type": "text", "nullable": true}]}})
            }
        };
        ops.push(op);
    }
    json!({ "operations": ops })
}

/// (table, [(column, nullable)]) of the live public schema, sorted by table.
async fn live_shape(db: &TestDb) -> Vec<(String, Vec<(String, bool)>)> {
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT c.relname::text, a.attname::text, NOT a.attnotnull FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
             WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY c.relname, a.attnum",
            &[],
        )
        .await
        .unwrap();
    let mut shape: Vec<(String, Vec<(String, bool)>)> = Vec::new();
    for r in rows {
        let (t, c, n): (String, String, bool) = (r.get(0), r.get(1), r.get(2));
        match shape.last_mut() {
            Some((name, cols)) if *name == t => cols.push((c, n)),
            _ => shape.push((t, vec![(c, n)])),
        }
    }
    shape
}

fn predicted_shape(plan: &Value) -> Vec<(String, Vec<(String, bool)>)> {
    let mut shape: Vec<(String, Vec<(String, bool)>)> = plan["schema_after"]["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let cols = t["columns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["name"].as_str().unwrap().to_string(),
                        c["nullable"].as_bool().unwrap(),
                    )
                })
                .collect();
            (t["name"].as_str().unwrap().to_string(), cols)
        })
        .collect();
    shape.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    shape
}

async fn check_case(seed: u64) {
    let mut rng = Rng(seed | 1);
    let db = TestDb::new().await;
    db.tandem_ok(&["init"]);
    let mut tables = random_schema(&mut rng);
    let setup = migration_file("01_setup.json", &create_ops(&tables).to_string());
    db.tandem_ok(&["start", "--complete", setup.to_str().unwrap()]);
    let client = db.client().await;
    for t in &tables {
        let name = t.name.replace('"', "\"\"");
        client
            .batch_execute(&format!(
                "INSERT INTO public.\"{name}\" (id) SELECT g FROM generate_series(1, 20) g"
            ))
            .await
            .unwrap();
    }
    let migration = random_migration(&mut rng, &mut tables);
    let file = migration_file("02_random.json", &migration.to_string());
    let path = file.to_str().unwrap();
    let plan: Value = serde_json::from_str(&db.tandem_ok(&["plan", "--json", path])).unwrap();
    let before = catalog_snapshot(&client).await;
    db.tandem_ok(&["start", path]);
    db.tandem_ok(&["rollback"]);
    assert_eq!(
        before,
        catalog_snapshot(&client).await,
        "rollback of {migration}"
    );
    db.tandem_ok(&["start", "--complete", path]);
    let mut live = live_shape(&db).await;
    live.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    assert_eq!(live, predicted_shape(&plan), "complete of {migration}");
}

#[test]
fn random_migrations_roll_back_cleanly_and_complete_as_planned() {
    let cases = std::env::var("TANDEM_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A failure prints its seed; this replays that one case.
    if let Some(seed) = std::env::var("TANDEM_PROPTEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        runtime.block_on(check_case(seed));
        return;
    }
    runner
        .run(&any::<u64>(), |seed| {
            runtime.block_on(check_case(seed));
            Ok(())
        })
        .unwrap();
}
