//! Runs plan steps: each DDL statement under a short `lock_timeout`, retried with exponential
//! backoff and jitter while the budget lasts, so the application never queues behind tandem
//! for longer than the lock timeout. By default that timeout adapts: short at first, longer
//! on each retry of the same step, up to a cap that bounds the application's stall. Knows no
//! operation by name.

use std::time::{Duration, Instant};

use tandem_core::ident::quote_literal;
use tandem_core::plan::{Action, Step, Tx};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

/// How long each try of a DDL statement may wait for its lock. Whatever waits behind tandem's
/// queued lock request (every application statement on the table) waits at most this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockTimeout {
    /// `--lock-timeout`: every try waits exactly this long.
    Fixed(Duration),
    /// The default: the first try waits `first`, each retry of the same step twice as long
    /// as the one before (less up to a fifth of jitter), never more than `cap`.
    Adaptive { first: Duration, cap: Duration },
}

impl LockTimeout {
    /// The default: 50 ms, 100 ms, then 120 ms for every later try. Most lock waits under
    /// ordinary load are for transactions of a few milliseconds, which the first try
    /// outlasts; a longer blocker costs more tries within `--lock-retry-for`, not a longer
    /// stall. The cap keeps the application's worst wait behind tandem under 150 ms.
    pub const DEFAULT: LockTimeout = LockTimeout::Adaptive {
        first: Duration::from_millis(50),
        cap: Duration::from_millis(120),
    };

    /// The timeout of try `attempt` (from 1); `jitter` in [0, 1] shortens a grown timeout by
    /// up to a fifth of it, so that several waiting tools do not line up. The first try and a
    /// fixed timeout take none.
    pub fn for_attempt(&self, attempt: u32, jitter: f64) -> Duration {
        match *self {
            LockTimeout::Fixed(d) => d,
            LockTimeout::Adaptive { first, cap } => {
                if attempt <= 1 {
                    return first.min(cap);
                }
                let grown = first.saturating_mul(1u32 << (attempt - 1).min(16)).min(cap);
                let off = grown.mul_f64(jitter.clamp(0.0, 1.0) / 5.0);
                grown.saturating_sub(off).max(first.min(cap))
            }
        }
    }

    /// The longest sleep between tries. With the adaptive timeout each try stalls the
    /// application for at most the cap, so tries may come more often (1 s apart at most,
    /// against 5 s for a fixed timeout): about the same share of the time stalled as a
    /// fixed 500 ms timeout with its 5 s sleeps, in stalls a quarter as long, and the step
    /// goes sooner after its blocker ends.
    pub fn longest_sleep(&self) -> Duration {
        match self {
            LockTimeout::Fixed(_) => Duration::from_millis(5000),
            LockTimeout::Adaptive { .. } => Duration::from_millis(1000),
        }
    }

    /// The longest any try waits: the bound on the application's stall behind tandem.
    pub fn longest(&self) -> Duration {
        match *self {
            LockTimeout::Fixed(d) => d,
            LockTimeout::Adaptive { first, cap } => first.max(cap),
        }
    }
}

impl Default for LockTimeout {
    fn default() -> Self {
        LockTimeout::DEFAULT
    }
}

#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub lock_timeout: LockTimeout,
    /// How long to keep retrying a statement that cannot get its lock.
    pub lock_retry_for: Duration,
    pub backfill: crate::backfill::BackfillOptions,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions {
            lock_timeout: LockTimeout::DEFAULT,
            lock_retry_for: Duration::from_secs(600),
            backfill: crate::backfill::BackfillOptions::default(),
        }
    }
}

/// What the executor reports while it works; the CLI renders it.
#[derive(Debug, Clone)]
pub enum Event {
    Step {
        description: String,
    },
    LockRetry {
        description: String,
        attempt: u32,
        /// The lock timeout the failed try waited for.
        lock_timeout: Duration,
        /// The sleep before the next try.
        wait: Duration,
        blockers: String,
    },
    BackfillProgress {
        table: String,
        rows: u64,
        /// The planner's estimate of the table's rows, when it has one.
        estimate: Option<u64>,
        batch_size: i64,
    },
    /// A step (or a transaction of steps) committed: the strongest lock it took and how long
    /// it held it (from its transaction's start to its commit).
    StepDone {
        description: String,
        lock: tandem_core::plan::Lock,
        held: Duration,
    },
    /// The backfill is waiting between batches: paused, or a replica lags.
    BackfillWaiting {
        table: String,
        reason: String,
    },
    /// While the backfill waits for a replica: how far behind it is now (a few times a
    /// minute at most; the `BackfillWaiting` before it said why it waits).
    BackfillLag {
        table: String,
        behind: String,
    },
    /// Something the user should know about a backfill that goes on: it fell back to key
    /// ranges, or runs on fewer connections than asked for.
    BackfillNotice {
        table: String,
        message: String,
    },
    /// Application triggers that fire for the backfill's UPDATEs (once per backfilled row),
    /// and why the batches could not switch them off (None: set ENABLE ALWAYS).
    BackfillTriggersFire {
        table: String,
        triggers: Vec<String>,
        why: Option<String>,
    },
    /// A table's backfill finished: the rows this run updated, how long it took, and its
    /// longest batch (the longest any row lock was held).
    BackfillDone {
        table: String,
        rows: u64,
        took: Duration,
        longest_batch: Duration,
        /// The most rows one batch updated.
        largest_batch: u64,
        /// The batches ran with session_replication_role = replica (no trigger fired but
        /// those set ENABLE ALWAYS).
        triggers_skipped: bool,
        /// Connections the page pass ran batches on at once.
        workers: usize,
    },
}

#[derive(Debug)]
pub enum ExecError {
    /// The lock could not be had within the retry budget.
    LockTimeout {
        step: String,
        attempts: u32,
        blockers: String,
    },
    /// PostgreSQL refused a statement.
    /// tandem's own bookkeeping (the state schema) failed.
    Bookkeeping(String),
    StepFailed {
        step: String,
        sql: String,
        error: tokio_postgres::Error,
    },
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecError::LockTimeout { step, attempts, blockers } => write!(
                f,
                "could not get the lock to {step} after {attempts} attempts; blocking sessions: {blockers}"
            ),
            ExecError::Bookkeeping(m) => write!(f, "could not record progress in the state schema: {m}"),
            ExecError::StepFailed { step, sql, error } => {
                write!(f, "failed to {step}: {}", db_message(error))?;
                match failing_line(sql, error) {
                    Some((line, text)) => write!(f, "\n  at line {line} of its SQL: {text}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl std::error::Error for ExecError {}

/// The line of `sql` where PostgreSQL says the error is (its position counts characters from
/// 1), when `sql` is more than one line: a long `sql` operation (a baseline) names the statement
/// that failed.
fn failing_line(sql: &str, error: &tokio_postgres::Error) -> Option<(usize, String)> {
    let db = error.as_db_error()?;
    let position = match db.position()? {
        tokio_postgres::error::ErrorPosition::Original(p) => *p as usize,
        tokio_postgres::error::ErrorPosition::Internal { .. } => return None,
    };
    if !sql.contains('\n') {
        return None;
    }
    let before: String = sql.chars().take(position.saturating_sub(1)).collect();
    let line = before.matches('\n').count();
    let text = sql.lines().nth(line)?.trim();
    Some((line + 1, text.to_string()))
}

/// PostgreSQL's own message, detail and hint, rather than the driver's "db error".
pub fn db_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => {
            let mut s = db.message().to_string();
            if let Some(d) = db.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" [hint: {h}]"));
            }
            s
        }
        None => error.to_string(),
    }
}

pub struct Executor<'a> {
    client: &'a mut Client,
    options: ExecOptions,
    observer: &'a (dyn Fn(Event) + Send + Sync),
    tracking: Option<Tracking<'a>>,
    /// More connections for a backfill's workers; without it a backfill runs on one.
    connector: Option<&'a crate::backfill::Connector>,
    /// How long the last successful attempt of a chunk took: what it held its locks for.
    last_hold: Duration,
}

/// Bookkeeping for a migration's start: each chunk records how many start steps are done in
/// its own transaction, so a killed start resumes exactly after the last committed step, and
/// backfills checkpoint into the state schema.
pub struct Tracking<'a> {
    pub state: &'a crate::state::StateStore,
    pub schema: &'a str,
    pub migration: &'a str,
    /// The phase whose steps are run, and the index among them of the first step given.
    pub phase: tandem_core::plan::Phase,
    pub offset: usize,
}

/// Test hook for fault injection: `TANDEM_CRASH_AFTER_STEPS=N` makes the process die, like a
/// SIGKILL, right after its Nth committed chunk of steps (counted over the whole process).
fn crash_point_reached() -> bool {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static DONE: AtomicUsize = AtomicUsize::new(0);
    let Some(limit) = std::env::var("TANDEM_CRASH_AFTER_STEPS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    else {
        return false;
    };
    DONE.fetch_add(1, Ordering::SeqCst) + 1 >= limit
}

impl<'a> Executor<'a> {
    pub fn new(
        client: &'a mut Client,
        options: ExecOptions,
        observer: &'a (dyn Fn(Event) + Send + Sync),
    ) -> Self {
        Executor {
            client,
            options,
            observer,
            tracking: None,
            connector: None,
            last_hold: Duration::ZERO,
        }
    }

    pub fn tracking(mut self, tracking: Tracking<'a>) -> Self {
        self.tracking = Some(tracking);
        self
    }

    pub fn connector(mut self, connector: &'a crate::backfill::Connector) -> Self {
        self.connector = Some(connector);
        self
    }

    /// The statement recording that the start steps before `end` are done, if tracked.
    fn record_sql(&self, end: usize) -> Option<String> {
        let t = self.tracking.as_ref()?;
        Some(
            t.state
                .steps_done_sql(t.schema, t.migration, t.phase, t.offset + end),
        )
    }

    /// Runs `steps` in order; consecutive steps of one transaction group run together.
    pub async fn run(&mut self, steps: &[Step]) -> Result<(), ExecError> {
        self.run_counted(steps).await.map_err(|(_, e)| e)
    }

    /// Like [`Executor::run`], but a failure also says how many steps had run completely.
    pub async fn run_counted(&mut self, steps: &[Step]) -> Result<(), (usize, ExecError)> {
        let mut i = 0;
        while i < steps.len() {
            let end = group_end(steps, i);
            let chunk = &steps[i..end];
            let record = self.record_sql(end);
            match &chunk[0].action {
                Action::Backfill(b) => {
                    (self.observer)(Event::Step {
                        description: chunk[0].description.clone(),
                    });
                    self.backfill(b).await.map_err(|e| (i, e))?;
                    self.record_outside(record).await.map_err(|e| (i, e))?;
                }
                Action::Sql { .. } if chunk[0].tx == Tx::None => {
                    self.run_with_retries(chunk, None)
                        .await
                        .map_err(|e| (i, e))?;
                    self.record_outside(record).await.map_err(|e| (i, e))?;
                }
                Action::Sql { .. } => self
                    .run_with_retries(chunk, record.as_deref())
                    .await
                    .map_err(|e| (i, e))?,
            }
            if let Action::Sql { .. } = chunk[0].action {
                let lock = chunk
                    .iter()
                    .map(|s| s.lock)
                    .max()
                    .unwrap_or(tandem_core::plan::Lock::None);
                let description = chunk
                    .iter()
                    .map(|s| s.description.as_str())
                    .collect::<Vec<_>>()
                    .join(", then ");
                (self.observer)(Event::StepDone {
                    description,
                    lock,
                    held: self.last_hold,
                });
            }
            if crash_point_reached() {
                std::process::abort();
            }
            i = end;
        }
        Ok(())
    }

    /// Records progress after a step that cannot share a transaction with the record: a
    /// repeat after a crash in between is harmless (an index build drops its leftover first,
    /// a backfill skips finished rows).
    async fn record_outside(&mut self, record: Option<String>) -> Result<(), ExecError> {
        if let Some(sql) = record {
            self.client
                .batch_execute(&sql)
                .await
                .map_err(|e| ExecError::Bookkeeping(db_message(&e)))?;
        }
        Ok(())
    }

    async fn backfill(&mut self, b: &tandem_core::plan::Backfill) -> Result<(), ExecError> {
        let checkpoints = self
            .tracking
            .as_ref()
            .map(|t| crate::backfill::Checkpoints {
                state: t.state,
                schema: t.schema,
                migration: t.migration,
            });
        crate::backfill::run(
            self.client,
            b,
            &self.options.backfill,
            // A batch's UPDATE waits for row locks, with the application's writers of those
            // rows queued behind it: the same bound as the DDL.
            self.options.lock_timeout.longest(),
            self.connector,
            checkpoints.as_ref(),
            self.observer,
        )
        .await?;
        Ok(())
    }

    async fn run_with_retries(
        &mut self,
        chunk: &[Step],
        record: Option<&str>,
    ) -> Result<(), ExecError> {
        let started = Instant::now();
        let mut attempt = 0u32;
        let description = chunk
            .iter()
            .map(|s| s.description.as_str())
            .collect::<Vec<_>>()
            .join(", then ");
        for step in chunk {
            (self.observer)(Event::Step {
                description: step.description.clone(),
            });
        }
        loop {
            attempt += 1;
            let attempt_began = Instant::now();
            let timeout = self.options.lock_timeout.for_attempt(attempt, jitter());
            match self.try_chunk(chunk, record, timeout).await {
                Ok(()) => {
                    self.last_hold = attempt_began.elapsed();
                    return Ok(());
                }
                Err((step, error)) if is_lock_timeout(&error) => {
                    let blockers = self.blockers().await;
                    if started.elapsed() >= self.options.lock_retry_for {
                        return Err(ExecError::LockTimeout {
                            step: step.description.clone(),
                            attempts: attempt,
                            blockers,
                        });
                    }
                    let wait = backoff(attempt, self.options.lock_timeout.longest_sleep());
                    (self.observer)(Event::LockRetry {
                        description: description.clone(),
                        attempt,
                        lock_timeout: timeout,
                        wait,
                        blockers,
                    });
                    tokio::time::sleep(wait).await;
                }
                Err((step, error)) => {
                    return Err(ExecError::StepFailed {
                        step: step.description.clone(),
                        sql: step.sql_text().unwrap_or_default().to_string(),
                        error,
                    })
                }
            }
        }
    }

    async fn try_chunk<'s>(
        &mut self,
        chunk: &'s [Step],
        record: Option<&str>,
        timeout: Duration,
    ) -> Result<(), (&'s Step, tokio_postgres::Error)> {
        let timeout = format!("{}ms", timeout.as_millis());
        if chunk[0].tx == Tx::None {
            return self.try_concurrently(&chunk[0]).await;
        }
        let tx = self
            .client
            .transaction()
            .await
            .map_err(|e| (&chunk[0], e))?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {}",
            quote_literal(&timeout)
        ))
        .await
        .map_err(|e| (&chunk[0], e))?;
        for step in chunk {
            tx.batch_execute(step.sql_text().unwrap_or_default())
                .await
                .map_err(|e| (step, e))?;
        }
        if let Some(record) = record {
            tx.batch_execute(record)
                .await
                .map_err(|e| (&chunk[chunk.len() - 1], e))?;
        }
        tx.commit().await.map_err(|e| (&chunk[chunk.len() - 1], e))
    }

    /// A statement outside any transaction (`CREATE/DROP INDEX CONCURRENTLY`). Its waits are
    /// for older transactions to finish, with locks that never make the application queue,
    /// so it gets the whole retry budget as its timeout rather than the short DDL one. A failed
    /// build leaves an invalid index behind: the step's cleanup drops it before any retry.
    async fn try_concurrently<'s>(
        &mut self,
        step: &'s Step,
    ) -> Result<(), (&'s Step, tokio_postgres::Error)> {
        let timeout = format!(
            "{}ms",
            self.options
                .lock_retry_for
                .max(self.options.lock_timeout.longest())
                .as_millis()
        );
        self.client
            .batch_execute(&format!("SET lock_timeout = {}", quote_literal(&timeout)))
            .await
            .map_err(|e| (step, e))?;
        let result = self
            .client
            .batch_execute(step.sql_text().unwrap_or_default())
            .await;
        if result.is_err() {
            if let Some(cleanup) = &step.cleanup {
                let _ = self.client.batch_execute(cleanup).await;
            }
        }
        let _ = self.client.batch_execute("RESET lock_timeout").await;
        result.map_err(|e| (step, e))
    }

    /// Sessions that hold locks on tandem's tables right now, for the retry log line.
    async fn blockers(&self) -> String {
        let rows = self
            .client
            .query(
                                // Our wait has ended by now, so pg_blocking_pids() of our own backend says
                // nothing: name the sessions holding locks on the schema's tables instead.
                "SELECT DISTINCT a.pid, coalesce(a.state, ''), left(coalesce(a.query, ''), 60), a.xact_start \
                 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                 JOIN pg_stat_activity a ON a.pid = l.pid \
                 WHERE l.granted AND l.pid <> pg_backend_pid() AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                   AND c.relnamespace = current_schema()::regnamespace \
                 ORDER BY a.xact_start LIMIT 5",
                &[],
            )
            .await;
        match rows {
            Ok(rows) if !rows.is_empty() => rows
                .iter()
                .map(|r| {
                    format!(
                        "pid {} ({}: {})",
                        r.get::<_, i32>(0),
                        r.get::<_, String>(1),
                        r.get::<_, String>(2)
                    )
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => "none found".to_string(),
        }
    }
}

fn group_end(steps: &[Step], start: usize) -> usize {
    match &steps[start].tx {
        Tx::Group(g) if matches!(steps[start].action, Action::Sql { .. }) => {
            let mut end = start + 1;
            while end < steps.len()
                && steps[end].tx == Tx::Group(g.clone())
                && matches!(steps[end].action, Action::Sql { .. })
            {
                end += 1;
            }
            end
        }
        _ => start + 1,
    }
}

pub fn is_lock_timeout(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::LOCK_NOT_AVAILABLE)
}

/// Exponential backoff from 50 ms, capped at `cap`, with up to 50% jitter so that several
/// waiting tools do not retry in lockstep.
/// While tandem sleeps, the application statements that queued behind its lock request run.
fn backoff(attempt: u32, cap: Duration) -> Duration {
    let cap = u64::try_from(cap.as_millis()).unwrap_or(u64::MAX);
    let base = 50u64.saturating_mul(1 << attempt.min(7)).min(cap);
    Duration::from_millis(base / 2 + (jitter() * (base / 2) as f64) as u64)
}

/// A number in [0, 1] that differs from call to call and between processes.
fn jitter() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    f64::from(nanos % 1000) / 999.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn the_default_lock_timeout_grows_per_retry_up_to_its_cap() {
        let t = LockTimeout::DEFAULT;
        let tries: Vec<u128> = (1..=6).map(|a| ms(t.for_attempt(a, 0.0))).collect();
        assert_eq!(tries, [50, 100, 120, 120, 120, 120]);
        assert_eq!(ms(t.longest()), 120);
        // Jitter only shortens a grown timeout, never below the first nor above the cap.
        for a in 1..=10 {
            for j in [0.0, 0.3, 1.0] {
                let d = t.for_attempt(a, j);
                assert!(
                    d >= Duration::from_millis(50) && d <= t.longest(),
                    "{a} {j} {d:?}"
                );
            }
        }
        assert_eq!(ms(t.for_attempt(1, 1.0)), 50);
        assert_eq!(ms(t.for_attempt(2, 1.0)), 80);
        assert_eq!(ms(t.for_attempt(40, 0.0)), 120);
    }

    #[test]
    fn a_fixed_lock_timeout_is_the_same_every_try() {
        let t = LockTimeout::Fixed(Duration::from_millis(300));
        for a in 1..=10 {
            assert_eq!(ms(t.for_attempt(a, 0.7)), 300);
        }
        assert_eq!(ms(t.longest()), 300);
    }

    #[test]
    fn backoff_sleeps_grow_with_jitter_and_a_cap() {
        for cap in [1000, 5000] {
            for a in 1..=20 {
                let d = backoff(a, Duration::from_millis(cap));
                let base = 50u64.saturating_mul(1 << a.min(7)).min(cap);
                assert!(
                    ms(d) >= u128::from(base / 2) && ms(d) <= u128::from(base),
                    "{a} {d:?}"
                );
            }
        }
        assert_eq!(
            LockTimeout::DEFAULT.longest_sleep(),
            Duration::from_millis(1000)
        );
        assert_eq!(
            LockTimeout::Fixed(Duration::from_millis(500)).longest_sleep(),
            Duration::from_millis(5000)
        );
    }
}
