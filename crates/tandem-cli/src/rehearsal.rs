//! `tandem migrate --report`: a rehearsal of the pending migrations against a production-like
//! copy records, for every step, how long it took, the lock it held and the rows it
//! backfilled; `--max-exclusive-ms` turns an ACCESS EXCLUSIVE hold that is too long for
//! production into a failing exit code, so CI rejects the migration before it ships.

use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;
use tandem_core::plan::{Lock, Phase};
use tandem_pg::executor::Event;

/// One step as it ran.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub migration: String,
    pub phase: Phase,
    pub description: String,
    /// The strongest table lock the step took (a backfill holds row locks: ROW_EXCLUSIVE).
    pub lock: Lock,
    /// How long the step held its lock: its transaction, or the whole backfill.
    pub duration_ms: f64,
    /// Lock timeouts the step met (and retried) before it got through.
    pub lock_retries: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows_backfilled: Option<u64>,
    /// For a backfill: its longest batch, the longest any row lock was held.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub longest_batch_ms: Option<f64>,
    /// For a backfill: the most rows one batch updated (and so held locked at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub largest_batch_rows: Option<u64>,
}

/// The report file `--report` writes.
#[derive(Debug, Serialize)]
pub struct Report {
    pub steps: Vec<StepRecord>,
    /// The step that held ACCESS EXCLUSIVE longest, if any did.
    pub longest_exclusive: Option<StepRecord>,
    pub max_exclusive_ms: Option<u64>,
    /// Every ACCESS EXCLUSIVE step over the limit.
    pub over_limit: Vec<StepRecord>,
    /// No step went over the limit and nothing failed.
    pub passed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Default)]
pub struct Recorder {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    migration: String,
    phase: Option<Phase>,
    retries: u32,
    steps: Vec<StepRecord>,
}

impl Recorder {
    /// The events that follow belong to this phase of this migration.
    pub fn begin(&self, migration: &str, phase: Phase) {
        let mut s = self.lock();
        s.migration = migration.to_string();
        s.phase = Some(phase);
        s.retries = 0;
    }

    pub fn record(&self, event: &Event) {
        let mut s = self.lock();
        let (description, lock, held, rows, longest, largest) = match event {
            Event::LockRetry { .. } => {
                s.retries += 1;
                return;
            }
            Event::StepDone {
                description,
                lock,
                held,
            } => (description.clone(), *lock, *held, None, None, None),
            Event::BackfillDone {
                table,
                rows,
                took,
                longest_batch,
                largest_batch,
                ..
            } => (
                format!("backfill \"{table}\""),
                Lock::RowExclusive,
                *took,
                Some(*rows),
                Some(ms(*longest_batch)),
                Some(*largest_batch),
            ),
            _ => return,
        };
        let record = StepRecord {
            migration: s.migration.clone(),
            phase: s.phase.unwrap_or(Phase::Start),
            description,
            lock,
            duration_ms: ms(held),
            lock_retries: std::mem::take(&mut s.retries),
            rows_backfilled: rows,
            longest_batch_ms: longest,
            largest_batch_rows: largest,
        };
        s.steps.push(record);
    }

    /// The first ACCESS EXCLUSIVE step that held its lock longer than `limit`.
    pub fn first_over(&self, limit: Duration) -> Option<StepRecord> {
        over_limit(&self.lock().steps, ms(limit)).next().cloned()
    }

    pub fn report(&self, max_exclusive_ms: Option<u64>, error: Option<String>) -> Report {
        let steps = self.lock().steps.clone();
        let longest_exclusive = steps
            .iter()
            .filter(|s| s.lock == Lock::AccessExclusive)
            .max_by(|a, b| a.duration_ms.total_cmp(&b.duration_ms))
            .cloned();
        let over: Vec<StepRecord> = max_exclusive_ms
            .map(|limit| over_limit(&steps, limit as f64).cloned().collect())
            .unwrap_or_default();
        Report {
            passed: over.is_empty() && error.is_none(),
            steps,
            longest_exclusive,
            max_exclusive_ms,
            over_limit: over,
            error,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn over_limit(steps: &[StepRecord], limit_ms: f64) -> impl Iterator<Item = &StepRecord> {
    steps
        .iter()
        .filter(move |s| s.lock == Lock::AccessExclusive && s.duration_ms > limit_ms)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(description: &str, lock: Lock, held_ms: u64) -> Event {
        Event::StepDone {
            description: description.into(),
            lock,
            held: Duration::from_millis(held_ms),
        }
    }

    #[test]
    fn records_steps_by_phase_and_finds_the_longest_exclusive_hold() {
        let r = Recorder::default();
        r.begin("01_a", Phase::Start);
        r.record(&Event::LockRetry {
            description: "add column".into(),
            attempt: 1,
            lock_timeout: Duration::from_millis(50),
            wait: Duration::from_millis(10),
            blockers: String::new(),
        });
        r.record(&done("add column", Lock::AccessExclusive, 3));
        r.record(&Event::BackfillDone {
            table: "users".into(),
            rows: 42,
            took: Duration::from_millis(900),
            longest_batch: Duration::from_millis(40),
            largest_batch: 21,
            triggers_skipped: true,
            workers: 2,
        });
        r.begin("01_a", Phase::Complete);
        r.record(&done("rename column", Lock::AccessExclusive, 7));
        r.record(&done(
            "validate constraint",
            Lock::ShareUpdateExclusive,
            500,
        ));

        let report = r.report(Some(5), None);
        assert_eq!(report.steps.len(), 4);
        assert_eq!(report.steps[0].lock_retries, 1);
        assert_eq!(report.steps[1].rows_backfilled, Some(42));
        assert_eq!(report.steps[1].lock, Lock::RowExclusive);
        assert_eq!(report.steps[2].phase, Phase::Complete);
        let longest = report.longest_exclusive.expect("an exclusive step");
        assert_eq!(longest.description, "rename column");
        // The 900 ms backfill and 500 ms validation do not block readers: not over the limit.
        assert_eq!(report.over_limit.len(), 1);
        assert!(!report.passed);
        assert_eq!(
            r.first_over(Duration::from_millis(5)).unwrap().description,
            "rename column"
        );
        assert!(r.first_over(Duration::from_millis(7)).is_none());
        assert!(r.report(None, None).passed);
        assert!(!r.report(None, Some("boom".into())).passed);
    }
}
