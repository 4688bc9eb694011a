//! Backfill throughput against its physical limit, measured in the same run: one plain
//! `UPDATE t SET w = v * 2` over the whole table versus tandem's batched, checkpointed
//! backfill of the same expression at default settings (and on one connection, as the UPDATE
//! runs), on identical fresh tables.
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
    // No autovacuum: after one run's full-table UPDATE it would clean that table while the
    // next run is being timed, on the same two cores.
    let statements = [
        format!("CREATE TABLE {table} (id bigint PRIMARY KEY, v bigint NOT NULL, pad text) WITH (autovacuum_enabled = false)"),
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

/// How tandem's backfill runs in one measurement.
#[derive(Clone, Copy, PartialEq)]
enum Variant {
    /// The defaults (two workers).
    Defaults,
    /// The defaults but one connection, like the UPDATE.
    OneWorker,
    /// Triggers kept firing, as for a role that may not set session_replication_role.
    TriggersFired,
    /// Batches over key ranges only, as before the page pass (and for partitioned tables).
    KeyRanges,
}

/// tandem's backfill of the same column; returns its duration and the longest batch.
async fn tandem_backfill(
    url: &str,
    client: &Client,
    rows: i64,
    variant: Variant,
) -> (Duration, Duration) {
    let table = match variant {
        Variant::Defaults => "items",
        Variant::OneWorker => "items_one",
        Variant::TriggersFired => "items_fired",
        Variant::KeyRanges => "items_keys",
    };
    fill(client, table, rows).await;
    let mut exec = ExecOptions::default();
    exec.backfill.skip_triggers_when_safe = variant != Variant::TriggersFired;
    exec.backfill.by_pages = variant != Variant::KeyRanges;
    if variant == Variant::OneWorker {
        exec.backfill.workers = 1;
    }
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
        name: format!("02_add_w_{table}"),
        version_schema: None,
        recorded_version_schema: None,
        operations: vec![Operation::AddColumn(AddColumn {
            table: table.into(),
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
    let measured: Mutex<Option<(Duration, Duration)>> = Mutex::new(None);
    let observer = |event: Event| {
        if let Event::BackfillDone {
            took,
            longest_batch,
            ..
        } = event
        {
            *measured.lock().unwrap() = Some((took, longest_batch));
        }
    };
    session.start(&migration, &observer).await.expect("start");
    session.complete(&observer).await.expect("complete");
    let measured = *measured.lock().unwrap();
    measured.expect("the backfill ran")
}

/// One repeat's measurements.
struct Run {
    baseline: Duration,
    tandem: Duration,
    one: Duration,
    fired: Duration,
    keys: Duration,
    longest: Duration,
}

/// Runs per size (`TANDEM_BENCH_REPEATS`, default 3); medians are reported.
fn repeats() -> usize {
    std::env::var("TANDEM_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

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
        recorded_version_schema: None,
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
        "{:>10}  {:>10}  {:>10}  {:>7}  {:>10}  {:>7}  {:>16}  {:>7}  {:>10}  {:>7}  {:>13}",
        "rows",
        "UPDATE",
        "tandem",
        "ratio",
        "1 worker",
        "ratio",
        "triggers fired",
        "ratio",
        "key ranges",
        "ratio",
        "longest batch"
    );
    for rows in sizes.iter().copied() {
        runtime.block_on(async {
            // Alternating runs on fresh databases; the median of each ratio is reported,
            // since other load on the machine shifts single runs.
            let mut runs = Vec::new();
            for run in 0..repeats() {
                let db = format!("bench_{rows}_{run}");
                let url = cluster.create_database(&db).await.expect("database");
                let client = connect(&url).await;
                let baseline = single_update(&client, rows).await;
                // The order rotates, so that no variant always runs right after the UPDATE.
                let mut order = [
                    Variant::Defaults,
                    Variant::OneWorker,
                    Variant::TriggersFired,
                    Variant::KeyRanges,
                ];
                order.rotate_left(run % 4);
                let mut measured = Vec::new();
                for variant in order {
                    measured.push((variant, tandem_backfill(&url, &client, rows, variant).await));
                }
                let of = |v: Variant| measured.iter().find(|m| m.0 == v).expect("measured").1;
                let ((tandem, longest), (one, longest_one), (fired, longest_fired), (keys, _)) = (
                    of(Variant::Defaults),
                    of(Variant::OneWorker),
                    of(Variant::TriggersFired),
                    of(Variant::KeyRanges),
                );
                eprintln!(
                    "  {rows} rows, run {run}: UPDATE {:.0} ms, tandem {:.0} ms, 1 worker {:.0} ms, triggers fired {:.0} ms, key ranges {:.0} ms",
                    baseline.as_secs_f64() * 1000.0,
                    tandem.as_secs_f64() * 1000.0,
                    one.as_secs_f64() * 1000.0,
                    fired.as_secs_f64() * 1000.0,
                    keys.as_secs_f64() * 1000.0
                );
                runs.push(Run {
                    baseline,
                    tandem,
                    one,
                    fired,
                    keys,
                    longest: longest.max(longest_one).max(longest_fired),
                });
            }
            let ratio = |pick: fn(&Run) -> Duration| {
                let mut ratios: Vec<(f64, Duration)> = runs
                    .iter()
                    .map(|r| {
                        let d = pick(r);
                        (r.baseline.as_secs_f64() / d.as_secs_f64().max(1e-9), d)
                    })
                    .collect();
                ratios.sort_by(|a, b| a.0.total_cmp(&b.0));
                ratios[ratios.len() / 2]
            };
            let (skip_ratio, tandem) = ratio(|r| r.tandem);
            let (one_ratio, one) = ratio(|r| r.one);
            let (fired_ratio, fired) = ratio(|r| r.fired);
            let (keys_ratio, keys) = ratio(|r| r.keys);
            let mut baselines: Vec<Duration> = runs.iter().map(|r| r.baseline).collect();
            baselines.sort();
            let longest = runs.iter().map(|r| r.longest).max().unwrap_or_default();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "{rows:>10}  {:>8.0}ms  {:>8.0}ms  {skip_ratio:>6.2}x  {:>8.0}ms  {one_ratio:>6.2}x  {:>14.0}ms  {fired_ratio:>6.2}x  {:>8.0}ms  {keys_ratio:>6.2}x  {:>11.1}ms",
                ms(baselines[baselines.len() / 2]),
                ms(tandem),
                ms(one),
                ms(fired),
                ms(keys),
                ms(longest)
            );
        });
    }
    println!("ratio = UPDATE time / backfill time, median of {} runs (target >= 0.85). tandem: the defaults: two workers, and", repeats());
    println!("triggers skipped (session_replication_role = replica) when the role may and no validated foreign key, rule or");
    println!("deferrable constraint needs them. 1 worker: the defaults on one connection, as the UPDATE. triggers fired: the defaults");
    println!("for a role that may not skip them, or --backfill-fire-triggers. key ranges: batches over primary-key ranges instead of");
    println!("pages (the fallback pass, on one connection).");
    println!("longest batch = the longest any row lock was held.");
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
