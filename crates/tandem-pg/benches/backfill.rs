//! Backfill throughput against its physical limit, measured in the same run: one plain
//! `UPDATE t SET w = v * 2` over the whole table versus tandem's batched, checkpointed
//! backfill of the same expression at default settings, on identical fresh tables.
//! Also reports the longest time a batch (and so any row lock) was held.
//!
//! Run with `just bench` (or `cargo bench -p tandem-pg --bench backfill`); set
//! `TANDEM_BENCH_ROWS=100000,1000000` to choose the sizes.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tandem_core::migration::{AddColumn, AlterColumn, Column, Migration, Operation, RenameColumn};
use tandem_core::plan::Lock;
use tandem_pg::cluster::LocalCluster;
use tandem_pg::executor::{Event, ExecOptions};
use tandem_pg::session::{Options, Session};
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

async fn fill(client: &Client, table: &str, rows: i64) {
    // Separate statements: VACUUM cannot run inside the implicit transaction of a batch.
    let statements = [
        format!("CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint NOT NULL, pad text)"),
        format!("INSERT INTO {table} SELECT g, g, 'some padding to make rows realistic' FROM generate_series(1, {rows}) g"),
        format!("VACUUM ANALYZE {table}"),
        "CHECKPOINT".to_string(),
    ];
    for sql in statements {
        client.batch_execute(&sql).await.expect("fill table");
    }
}

/// One UPDATE of every row: the physical limit of a backfill.
async fn single_update(client: &Client, rows: i64) -> Duration {
    fill(client, "baseline", rows).await;
    client
        .batch_execute("ALTER TABLE baseline ADD COLUMN w bigint")
        .await
        .unwrap();
    let started = Instant::now();
    client
        .batch_execute("UPDATE baseline SET w = v * 2")
        .await
        .unwrap();
    started.elapsed()
}

/// tandem's backfill of the same column; returns its duration and the longest batch.
async fn tandem_backfill(url: &str, client: &Client, rows: i64) -> (Duration, Duration) {
    fill(client, "items", rows).await;
    let mut exec = ExecOptions::default();
    // Knobs for exploring; the reported figures use the defaults.
    if let Some(ms) = std::env::var("TANDEM_BENCH_BATCH_TIME_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        exec.backfill.batch_time = Duration::from_millis(ms);
    }
    if let Some(n) = std::env::var("TANDEM_BENCH_BATCH_SIZE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        exec.backfill.batch_size = n;
    }
    let options = Options {
        schema: "public".into(),
        state_schema: "tandem".into(),
        role: None,
        exec,
    };
    let mut session = Session::connect(url, options).await.expect("session");
    session.init().await.expect("init");
    let migration = Migration {
        name: "02_add_w".into(),
        version_schema: None,
        operations: vec![Operation::AddColumn(AddColumn {
            table: "items".into(),
            up: Some("v * 2".into()),
            column: Column {
                name: "w".into(),
                type_name: "bigint".into(),
                nullable: Some(true),
                unique: None,
                pk: None,
                default: None,
                comment: None,
                check: None,
                references: None,
                generated: None,
            },
        })],
    };
    // (backfill started, last batch finished, longest gap between batches)
    let times: Mutex<(Option<Instant>, Option<Instant>, Duration)> =
        Mutex::new((None, None, Duration::ZERO));
    let observer = |event: Event| {
        let mut t = times.lock().unwrap();
        let now = Instant::now();
        match event {
            Event::Step { description } if description.starts_with("backfill") => {
                *t = (Some(now), Some(now), Duration::ZERO)
            }
            Event::BackfillProgress { .. } => {
                if let Some(last) = t.1 {
                    t.2 = t.2.max(now - last);
                }
                t.1 = Some(now);
            }
            _ => {}
        }
    };
    session.start(&migration, &observer).await.expect("start");
    let (begun, ended, longest) = *times.lock().unwrap();
    let total = ended.zip(begun).map(|(e, b)| e - b).unwrap_or_default();
    (total, longest)
}

const REPEATS: usize = 3;

/// The longest ACCESS EXCLUSIVE hold during start and during complete of a migration that
/// adds a NOT NULL column, changes a column's type and renames one: every contract step of
/// such a migration must be catalog-only, so the figures should not grow with the table.
async fn exclusive_holds(url: &str, client: &Client, rows: i64) -> (Duration, Duration) {
    fill(client, "accounts", rows).await;
    let options = Options {
        schema: "public".into(),
        state_schema: "tandem".into(),
        role: None,
        exec: ExecOptions::default(),
    };
    let mut session = Session::connect(url, options).await.expect("session");
    session.init().await.expect("init");
    let alter = AlterColumn {
        table: "accounts".into(),
        column: "v".into(),
        name: None,
        type_name: Some("numeric".into()),
        nullable: None,
        default: None,
        comment: None,
        unique: None,
        check: None,
        references: None,
        up: None,
        down: None,
    };
    let migration = Migration {
        name: "02_change".into(),
        version_schema: None,
        operations: vec![
            Operation::AddColumn(AddColumn {
                table: "accounts".into(),
                up: Some("v * 2".into()),
                column: Column {
                    name: "w".into(),
                    type_name: "bigint".into(),
                    nullable: Some(false),
                    unique: None,
                    pk: None,
                    default: None,
                    comment: None,
                    check: None,
                    references: None,
                    generated: None,
                },
            }),
            Operation::AlterColumn(alter),
            Operation::RenameColumn(RenameColumn {
                table: "accounts".into(),
                from: "pad".into(),
                to: "note".into(),
            }),
        ],
    };
    let longest = Mutex::new(Duration::ZERO);
    let observer = |event: Event| {
        if let Event::StepDone {
            lock: Lock::AccessExclusive,
            held,
            ..
        } = event
        {
            let mut l = longest.lock().unwrap();
            *l = (*l).max(held);
        }
    };
    session.start(&migration, &observer).await.expect("start");
    let start = std::mem::take(&mut *longest.lock().unwrap());
    session.complete(&observer).await.expect("complete");
    let complete = *longest.lock().unwrap();
    (start, complete)
}

fn main() {
    let sizes: Vec<i64> = std::env::var("TANDEM_BENCH_ROWS")
        .unwrap_or_else(|_| "100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let cluster = LocalCluster::start().expect("throwaway PostgreSQL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!("backfill throughput: tandem's batched backfill vs one UPDATE of the whole table");
    println!(
        "{:>10}  {:>12}  {:>12}  {:>8}  {:>14}",
        "rows", "UPDATE", "tandem", "ratio", "longest batch"
    );
    for rows in sizes.iter().copied() {
        runtime.block_on(async {
            // Alternating runs on fresh databases; the median ratio is reported, since other
            // load on the machine shifts single runs.
            let mut runs = Vec::new();
            for run in 0..REPEATS {
                let db = format!("bench_{rows}_{run}");
                let url = cluster.create_database(&db).await.expect("database");
                let client = connect(&url).await;
                let baseline = single_update(&client, rows).await;
                let (tandem, longest) = tandem_backfill(&url, &client, rows).await;
                runs.push((
                    baseline.as_secs_f64() / tandem.as_secs_f64().max(1e-9),
                    baseline,
                    tandem,
                    longest,
                ));
            }
            runs.sort_by(|a, b| a.0.total_cmp(&b.0));
            let (ratio, baseline, tandem, _) = runs[runs.len() / 2];
            let longest = runs.iter().map(|r| r.3).max().unwrap_or_default();
            println!(
                "{rows:>10}  {:>10.0}ms  {:>10.0}ms  {ratio:>7.2}x  {:>12.1}ms",
                baseline.as_secs_f64() * 1000.0,
                tandem.as_secs_f64() * 1000.0,
                longest.as_secs_f64() * 1000.0
            );
        });
    }
    println!("ratio = UPDATE time / tandem time, median of {REPEATS} runs (tandem's throughput relative to the single UPDATE; target >= 0.85); longest batch = the longest any row lock was held, over all runs");
    println!();
    println!("longest ACCESS EXCLUSIVE hold (add NOT NULL column + type change + rename)");
    println!("{:>10}  {:>12}  {:>12}", "rows", "start", "complete");
    for rows in &sizes {
        runtime.block_on(async {
            let url = cluster
                .create_database(&format!("locks_{rows}"))
                .await
                .expect("database");
            let client = connect(&url).await;
            let (start, complete) = exclusive_holds(&url, &client, *rows).await;
            println!(
                "{rows:>10}  {:>10.1}ms  {:>10.1}ms",
                start.as_secs_f64() * 1000.0,
                complete.as_secs_f64() * 1000.0
            );
        });
    }
    println!("target: <= 50 ms and flat across sizes");
}
