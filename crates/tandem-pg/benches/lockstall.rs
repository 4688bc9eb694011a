//! The application's stall behind a DDL step that cannot get its lock, measured in the same
//! run for the old default (a fixed 500 ms lock timeout per try) and the adaptive default
//! (50 ms, growing per retry up to 120 ms). A session holds a lock that `ALTER TABLE` needs
//! (an open transaction that read the table) for about 2 s while the application runs one
//! `SELECT` after another on the table; the statements that arrive while tandem's lock
//! request is queued wait behind it. Reported per mode: the application's worst statement
//! latency, the step's total time (the whole `start`, blocked for most of it) and how many
//! times it retried.
//!
//! A second scenario, ordinary load: no long transaction, but four sessions that run
//! overlapping transactions of 0–60 ms on the table without pause, so the step must wait
//! for some of them each try: the adaptive default must not fail where the fixed one
//! succeeds, nor retry much more.
//!
//! Run with `just bench` (or `cargo bench -p tandem-pg --bench lockstall`); set
//! `TANDEM_BENCH_REPEATS` (default 3) for more runs per mode.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tandem_core::migration::{AddColumn, Column, Migration, Operation};
use tandem_pg::cluster::LocalCluster;
use tandem_pg::executor::{Event, ExecOptions, LockTimeout};
use tandem_pg::session::{Options, Session};
use tokio_postgres::{Client, NoTls};

/// How long the other session holds its lock.
const BLOCKER_HOLDS: Duration = Duration::from_millis(2000);

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// `--lock-timeout 500ms`: the old default.
    Fixed500,
    /// No `--lock-timeout`: the adaptive default.
    Adaptive,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Fixed500 => "fixed 500 ms (old default)",
            Mode::Adaptive => "adaptive (default)",
        }
    }
    fn lock_timeout(self) -> LockTimeout {
        match self {
            Mode::Fixed500 => LockTimeout::Fixed(Duration::from_millis(500)),
            Mode::Adaptive => LockTimeout::DEFAULT,
        }
    }
}

struct Measured {
    worst_app: Duration,
    app_statements: u64,
    step: Duration,
    retries: u32,
}

async fn one_run(cluster: &LocalCluster, mode: Mode, run: usize, busy: bool) -> Measured {
    let tag = match mode {
        Mode::Fixed500 => "fixed",
        Mode::Adaptive => "adaptive",
    };
    let load = if busy { "busy" } else { "blocked" };
    let url = cluster
        .create_database(&format!("stall_{load}_{tag}_{run}"))
        .await
        .expect("database");
    let setup = connect(&url).await;
    setup
        .batch_execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, v bigint NOT NULL); \
             INSERT INTO items SELECT g, g FROM generate_series(1, 1000) g; ANALYZE items",
        )
        .await
        .expect("table");
    let exec = ExecOptions {
        lock_timeout: mode.lock_timeout(),
        ..ExecOptions::default()
    };
    let options = Options {
        schema: "public".into(),
        state_schema: "tandem".into(),
        role: None,
        exec,
    };
    let mut session = Session::connect(&url, options).await.expect("session");
    session.init().await.expect("init");

    // The application: one short statement after another, each timed.
    let done = Arc::new(AtomicBool::new(false));
    let app = connect(&url).await;
    let app_done = done.clone();
    let app_task = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        let mut n = 0u64;
        while !app_done.load(Ordering::Relaxed) {
            let began = Instant::now();
            app.query_one("SELECT count(*) FROM items WHERE id < 100", &[])
                .await
                .expect("app query");
            worst = worst.max(began.elapsed());
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (worst, n)
    });

    let mut others = Vec::new();
    if busy {
        // Ordinary load: four sessions, each one short transaction (0-60 ms) after another.
        for worker in 0..4u64 {
            let client = connect(&url).await;
            let busy_done = done.clone();
            others.push(tokio::spawn(async move {
                let mut i = worker;
                while !busy_done.load(Ordering::Relaxed) {
                    i = i.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    let ms = (i >> 33) % 61;
                    client
                        .batch_execute(&format!(
                            "BEGIN; SELECT count(*) FROM items WHERE id < 100; SELECT pg_sleep({ms} / 1000.0); COMMIT"
                        ))
                        .await
                        .expect("busy transaction");
                }
            }));
        }
    } else {
        // The blocker: an open transaction that read the table, for BLOCKER_HOLDS.
        let blocker = connect(&url).await;
        blocker
            .batch_execute("BEGIN; SELECT count(*) FROM items")
            .await
            .expect("blocker");
        others.push(tokio::spawn(async move {
            tokio::time::sleep(BLOCKER_HOLDS).await;
            blocker.batch_execute("COMMIT").await.expect("commit");
        }));
    }
    tokio::time::sleep(Duration::from_millis(50)).await;

    let migration = Migration {
        name: "02_add_note".into(),
        version_schema: None,
        recorded_version_schema: None,
        operations: vec![Operation::AddColumn(AddColumn {
            table: "items".into(),
            up: None,
            column: Column {
                name: "note".into(),
                type_name: "text".into(),
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
    let retries = AtomicU32::new(0);
    let timeouts = Mutex::new(Vec::new());
    let observer = |event: Event| {
        if let Event::LockRetry { lock_timeout, .. } = event {
            retries.fetch_add(1, Ordering::Relaxed);
            timeouts.lock().unwrap().push(lock_timeout.as_millis());
        }
    };
    let began = Instant::now();
    session.start(&migration, &observer).await.expect("start");
    let step = began.elapsed();
    // A little more of the application after the step, then stop.
    tokio::time::sleep(Duration::from_millis(100)).await;
    done.store(true, Ordering::Relaxed);
    let (worst_app, app_statements) = app_task.await.unwrap();
    for task in others {
        task.await.unwrap();
    }
    eprintln!(
        "  {load}, {} run {run}: worst app statement {:.1} ms over {app_statements} statements, start {:.0} ms, lock timeouts of the failed tries {:?} ms",
        mode.name(),
        worst_app.as_secs_f64() * 1000.0,
        step.as_secs_f64() * 1000.0,
        timeouts.lock().unwrap()
    );
    Measured {
        worst_app,
        app_statements,
        step,
        retries: retries.load(Ordering::Relaxed),
    }
}

fn repeats() -> usize {
    std::env::var("TANDEM_BENCH_REPEATS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let cluster = LocalCluster::start().expect("throwaway PostgreSQL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for busy in [false, true] {
        let modes = [Mode::Fixed500, Mode::Adaptive];
        let mut results: Vec<(Mode, Vec<Measured>)> =
            modes.iter().map(|m| (*m, Vec::new())).collect();
        runtime.block_on(async {
            for run in 0..repeats() {
                // Alternating, so that neither mode always runs first.
                let mut order = modes;
                order.rotate_left(run % 2);
                for mode in order {
                    let m = one_run(&cluster, mode, run, busy).await;
                    results.iter_mut().find(|r| r.0 == mode).unwrap().1.push(m);
                }
            }
        });
        if busy {
            println!(
                "ordinary load: four sessions of 0-60 ms transactions on the table, no long one"
            );
        } else {
            println!(
                "application stall behind a blocked DDL step (a session holds a conflicting lock for {} ms)",
                BLOCKER_HOLDS.as_millis()
            );
        }
        println!(
            "{:>28}  {:>16}  {:>16}  {:>12}  {:>14}  {:>14}",
            "lock timeout",
            "worst app (max)",
            "worst app (med)",
            "step (med)",
            "retries (med)",
            "app statements"
        );
        let mut worst_of = Vec::new();
        for (mode, runs) in &results {
            let worst = runs.iter().map(|r| r.worst_app).max().unwrap_or_default();
            let worst_med = median(runs.iter().map(|r| ms(r.worst_app)).collect());
            let step = median(runs.iter().map(|r| ms(r.step)).collect());
            let retries = median(runs.iter().map(|r| f64::from(r.retries)).collect());
            let max_retries = runs.iter().map(|r| r.retries).max().unwrap_or(0);
            let statements = median(runs.iter().map(|r| r.app_statements as f64).collect());
            println!(
                "{:>28}  {:>14.1}ms  {:>14.1}ms  {:>10.0}ms  {:>8.0} (max {max_retries})  {:>10.0}",
                mode.name(),
                ms(worst),
                worst_med,
                step,
                retries,
                statements
            );
            worst_of.push((ms(worst), step));
        }
        println!(
            "adaptive / fixed 500 ms: worst app statement {:.2}x, step time {:.2}x ({} runs per mode; target: worst app statement <= 150 ms)",
            worst_of[1].0 / worst_of[0].0.max(1e-9),
            worst_of[1].1 / worst_of[0].1.max(1e-9),
            repeats()
        );
        println!();
    }
}
