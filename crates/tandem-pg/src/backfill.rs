//! Runs a planned backfill: set-based batches over the table's pages in order (key ranges
//! where that cannot be trusted), each one short transaction that also records its checkpoint,
//! so a killed backfill resumes where it stopped. Honours the pause switch and replica lag
//! between batches, and sizes batches to a time budget.

use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tandem_core::ident::{qualified, quote_literal};
use tandem_core::plan::Backfill;
use tandem_core::sync::BACKFILL_MARKER;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls};

use crate::executor::{is_lock_timeout, Event, ExecError};
use crate::state::{BlockPass, Part, StateStore};

#[derive(Debug, Clone)]
pub struct BackfillOptions {
    /// Rows in the first batch; later batches adapt to `batch_time`.
    pub batch_size: i64,
    /// The time one batch (and so its row locks) should take.
    pub batch_time: Duration,
    /// No batch updates more rows than this, whatever its time budget allows.
    pub max_batch_rows: i64,
    /// A pause between batches, to leave room for the application.
    pub delay: Duration,
    /// Wait while any replica replays more than this far behind.
    pub max_replication_lag: Option<Duration>,
    /// Run batches with `session_replication_role = replica` where the role may and the
    /// backfill needs no trigger (see [`BackfillTriggers`]), so that the application's
    /// triggers do not fire for it. False is `--backfill-fire-triggers`: every trigger fires.
    pub skip_triggers_when_safe: bool,
    /// Take the table's pages in order (the main pass); false goes by key ranges only, which
    /// the benchmark uses as a comparison.
    pub by_pages: bool,
    /// Connections the page pass runs batches on at once. One UPDATE runs on one backend, and
    /// on one core; two finish a large table in about 60% of one's time (`just bench`).
    pub workers: usize,
}

impl Default for BackfillOptions {
    fn default() -> Self {
        BackfillOptions {
            batch_size: 5000,
            batch_time: Duration::from_millis(100),
            max_batch_rows: MAX_BATCH,
            delay: Duration::ZERO,
            max_replication_lag: None,
            skip_triggers_when_safe: true,
            by_pages: true,
            workers: 2,
        }
    }
}

const MIN_BATCH: i64 = 100;
/// The default cap on rows per batch (`--backfill-max-batch-rows`).
pub const MAX_BATCH: i64 = 100_000;

/// Where checkpoints go and which pause switch to watch.
pub struct Checkpoints<'a> {
    pub state: &'a StateStore,
    pub schema: &'a str,
    pub migration: &'a str,
}

/// Opens more connections set up like the session's own (search path, role), for the page
/// pass's extra workers.
#[derive(Clone)]
pub struct Connector {
    url: String,
    setup: String,
}

impl Connector {
    pub fn new(url: impl Into<String>, setup: impl Into<String>) -> Self {
        Connector {
            url: url.into(),
            setup: setup.into(),
        }
    }

    async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = tokio_postgres::connect(&self.url, NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        client.batch_execute(&self.setup).await?;
        Ok(client)
    }
}

impl fmt::Debug for Connector {
    // The URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connector").finish_non_exhaustive()
    }
}

/// Backfills `b`, resuming after its checkpoint. Returns the rows done in all.
///
/// The main pass walks the table's pages in order, as one full-table UPDATE would, with
/// `options.workers` connections taking the next free range of pages each (more connections
/// from `connector`). Every row the sync trigger has not marked lies in the pages that existed
/// when the pass began (any later write went through the trigger), and plain writes and
/// VACUUM never move a row out of its file; only a rewrite (VACUUM FULL, CLUSTER) does, and
/// it gives the table a new file. So when the file is the same at the end, the pass reached
/// every row. A table whose rows live in several files (partitions, inheritance children) is
/// passed file after file, and must end with the same files and the same partitions.
/// Otherwise, or where some rows have no pages to follow (a foreign-table partition), batches
/// over key ranges finish the rest, on one connection.
pub async fn run(
    client: &mut Client,
    b: &Backfill,
    options: &BackfillOptions,
    lock_timeout: Duration,
    connector: Option<&Connector>,
    checkpoints: Option<&Checkpoints<'_>>,
    observer: &(dyn Fn(Event) + Send + Sync),
) -> Result<u64, ExecError> {
    let failed = |f: Failure| match f {
        Failure::Db(error) => ExecError::StepFailed {
            step: format!("backfill {}", b.table),
            sql: b.update_blocks.clone(),
            error,
        },
        Failure::State(message) => ExecError::Bookkeeping(message),
    };
    let resumed = resume_point(client, b, checkpoints).await.map_err(failed)?;
    let began = Instant::now();
    let pages = pages(client, b).await.map_err(failed)?;
    let triggers = backfill_triggers(client, b, options.skip_triggers_when_safe)
        .await
        .map_err(|e| failed(Failure::Db(e)))?;
    if !triggers.firing.is_empty() {
        observer(Event::BackfillTriggersFire {
            table: b.table.clone(),
            triggers: triggers.firing.iter().map(|t| t.to_string()).collect(),
            why: triggers.why.clone(),
        });
    }
    let run = Run {
        b,
        options,
        lock_timeout,
        checkpoints,
        estimate: pages.rows_estimate,
        skip_triggers: triggers.replica,
        observer,
        tally: Mutex::new(Tally {
            done: resumed.rows_done,
            longest_batch: Duration::ZERO,
            largest_batch: 0,
        }),
        lag: Mutex::new(LagWatch::default()),
    };
    // A checkpoint with a key is the key-range pass's: the page pass is behind it.
    let in_key_pass = resumed.last_key.is_some();
    let keyless = b.key.is_empty();
    let mut pass = match resumed.block_pass {
        Some(pass) => Some(pass),
        None if (in_key_pass || !options.by_pages) && !keyless => None,
        None => pages.layout.new_pass(),
    };
    let mut reached_every_row = false;
    let mut workers = 1;
    if let (false, Some(p)) = (in_key_pass, pass.as_mut()) {
        if same_files(client, b, p).await.map_err(failed)? {
            // No more workers than there are first batches to give them.
            let first = Sizer::new(options, pages.densest).pages;
            let left = (p.end - p.next).max(0);
            let useful = usize::try_from((left + first - 1) / first).unwrap_or(1);
            let mut extra = more_workers(connector, options.workers.min(useful), &run).await;
            workers += extra.len();
            block_pass(client, &mut extra, &run, p, pages.densest)
                .await
                .map_err(failed)?;
            reached_every_row = same_files(client, b, p).await.map_err(failed)?;
        }
        if !reached_every_row {
            observer(Event::BackfillNotice {
                table: b.table.clone(),
                message: if keyless {
                    "the table was rewritten (or its partitions changed) during the backfill; it has no key, so its new pages are passed over again (rows already done are skipped)"
                } else {
                    "the table was rewritten (or its partitions changed) during the backfill; finishing by key ranges"
                }
                .into(),
            });
        }
    }
    if !reached_every_row && keyless {
        page_passes_again(client, &run).await.map_err(failed)?;
    } else if !reached_every_row {
        key_pass(client, &run, resumed.last_key, pass.as_ref())
            .await
            .map_err(failed)?;
    }
    let tally = run.tally.into_inner().unwrap_or_else(|e| e.into_inner());
    observer(Event::BackfillDone {
        table: b.table.clone(),
        rows: tally.done - resumed.rows_done,
        took: began.elapsed(),
        longest_batch: tally.longest_batch,
        largest_batch: tally.largest_batch,
        triggers_skipped: run.skip_triggers,
        workers,
    });
    Ok(tally.done)
}

/// Connections for the page pass's workers beyond the first. A connection that cannot be
/// had (max_connections, say) only makes the backfill slower, so it goes on without it.
async fn more_workers(connector: Option<&Connector>, workers: usize, run: &Run<'_>) -> Vec<Client> {
    let Some(connector) = connector else {
        return Vec::new();
    };
    let mut clients = Vec::new();
    while clients.len() + 1 < workers {
        match connector.connect().await {
            Ok(client) => clients.push(client),
            Err(e) => {
                (run.observer)(Event::BackfillNotice {
                    table: run.b.table.clone(),
                    message: format!(
                        "could not open another connection ({}); going on with {} worker(s)",
                        crate::executor::db_message(&e),
                        clients.len() + 1
                    ),
                });
                break;
            }
        }
    }
    clients
}

/// What stays the same across one table's batches, and what they add up to.
struct Run<'a> {
    b: &'a Backfill,
    options: &'a BackfillOptions,
    lock_timeout: Duration,
    checkpoints: Option<&'a Checkpoints<'a>>,
    estimate: Option<u64>,
    skip_triggers: bool,
    observer: &'a (dyn Fn(Event) + Send + Sync),
    /// Shared by the workers; never held across an await.
    tally: Mutex<Tally>,
    /// Where the WAL was when, and whether the workers wait for a replica (shared by them).
    lag: Mutex<LagWatch>,
}

struct Tally {
    /// Rows done so far, counting those of earlier, interrupted runs.
    done: u64,
    longest_batch: Duration,
    /// The most rows one batch updated.
    largest_batch: u64,
}

impl Run<'_> {
    /// Waits out a pause or a lagging replica before the next batch.
    async fn before_batch(&self, client: &Client) -> Result<(), Failure> {
        wait_while_paused(client, self.b, self.checkpoints, self.observer).await?;
        wait_for_replicas(client, self).await
    }

    /// Counts a finished batch and tells the observer.
    fn after_batch(&self, rows: u64, took: Duration) {
        let done = {
            let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
            tally.done += rows;
            tally.longest_batch = tally.longest_batch.max(took);
            tally.largest_batch = tally.largest_batch.max(rows);
            tally.done
        };
        (self.observer)(Event::BackfillProgress {
            table: self.b.table.clone(),
            rows: done,
            estimate: self.estimate,
            batch_size: rows as i64,
        });
    }

    async fn between_batches(&self) {
        if !self.options.delay.is_zero() {
            tokio::time::sleep(self.options.delay).await;
        }
    }
}

/// The page pass's ranges, handed out to workers in order.
#[derive(Debug)]
struct Cursor {
    /// The first page not handed out.
    next: i64,
    end: i64,
    /// First pages of the ranges handed out whose batches have not committed.
    in_flight: Vec<i64>,
    /// Where each part's pages end: no range crosses one.
    part_ends: Vec<i64>,
}

impl Cursor {
    fn new(pass: &BlockPass) -> Self {
        Cursor {
            next: pass.next,
            end: pass.end,
            in_flight: Vec::new(),
            part_ends: segments(pass)
                .into_iter()
                .skip(1)
                .map(|(start, _)| start)
                .collect(),
        }
    }

    /// The next `pages` pages (fewer at the end of the pass or of a part), or None when all
    /// are handed out.
    fn claim(&mut self, pages: i64) -> Option<(i64, i64)> {
        if self.next >= self.end {
            return None;
        }
        let part_end = self.part_ends.iter().copied().find(|&e| e > self.next);
        let limit = part_end.unwrap_or(self.end).min(self.end);
        let range = (self.next, (self.next + pages).min(limit));
        self.next = range.1;
        self.in_flight.push(range.0);
        Some(range)
    }

    /// The page before which every range is done once the batch of the range starting at
    /// `from` commits: where a resumed pass may start.
    fn done_below(&self, from: i64) -> i64 {
        self.in_flight
            .iter()
            .copied()
            .filter(|&start| start != from)
            .fold(self.next, i64::min)
    }

    fn committed(&mut self, from: i64) {
        self.in_flight.retain(|&start| start != from);
    }
}

/// Batches over pages `[pass.next, pass.end)`, each sized to the time budget, on `client`
/// and each of `extra` at once.
async fn block_pass(
    client: &mut Client,
    extra: &mut [Client],
    run: &Run<'_>,
    pass: &mut BlockPass,
    densest: f64,
) -> Result<(), Failure> {
    let cursor = Mutex::new(Cursor::new(pass));
    let segments = segments(pass)
        .into_iter()
        .map(|(start, part)| {
            let sql = match part {
                Some(p) => run.b.update_blocks_of(&p.schema, &p.name),
                None => run.b.update_blocks.clone(),
            };
            (start, sql)
        })
        .collect::<Vec<_>>();
    let whole = &*pass;
    let workers = std::iter::once(client)
        .chain(extra.iter_mut())
        .map(|c| page_worker(c, run, &cursor, (whole, &segments), densest));
    futures_util::future::try_join_all(workers).await?;
    pass.next = pass.end;
    Ok(())
}

/// Where each part's pages start in the pass's numbering, and the part (None: the table's
/// one file).
fn segments(pass: &BlockPass) -> Vec<(i64, Option<&Part>)> {
    if pass.parts.is_empty() {
        return vec![(0, None)];
    }
    let mut start = 0;
    pass.parts
        .iter()
        .map(|p| {
            let first = start;
            start += p.pages;
            (first, Some(p))
        })
        .collect()
}

/// Sizes a worker's page batches from what its batches did: the time a row took (so the
/// rows a batch may hold within the budget, never more than `max_batch_rows`), and the
/// densest pages seen (so that a range of pages that comes after empty ones, which cost
/// almost nothing, cannot hold more rows than that). A VACUUMed table with long stretches of
/// empty pages has a low average density; sizing by it, or doubling over empty pages, gave
/// batches of 190,000 rows and seconds of row locks.
#[derive(Debug, Clone)]
struct Sizer {
    /// Pages in the next batch.
    pages: i64,
    /// Rows the next batch may update.
    rows: i64,
    /// The most rows per page any batch found (at least the sample taken before the pass).
    densest: f64,
    max_rows: i64,
    budget: Duration,
}

impl Sizer {
    fn new(options: &BackfillOptions, densest: f64) -> Self {
        let max_rows = options.max_batch_rows.max(1);
        let rows = options.batch_size.clamp(MIN_BATCH.min(max_rows), max_rows);
        let densest = densest.max(1.0);
        Sizer {
            pages: ((rows as f64 / densest) as i64).max(1),
            rows,
            densest,
            max_rows,
            budget: options.batch_time,
        }
    }

    /// After a batch of `pages` pages that updated `rows` rows in `took`.
    fn observe(&mut self, pages: i64, rows: u64, took: Duration) {
        let pages = pages.max(1);
        let took = took.max(Duration::from_micros(100));
        self.densest = self.densest.max(rows as f64 / pages as f64);
        if rows > 0 {
            // The rows that fit in the budget at this batch's time per row; at most twice the
            // last batch's rows (one fast batch says little), at least a handful.
            let fit = rows as f64 * self.budget.as_secs_f64() / took.as_secs_f64();
            let grow = (rows as f64 * 2.0).max(self.rows as f64);
            self.rows = (fit.min(grow) as i64).clamp(MIN_BATCH.min(self.max_rows), self.max_rows);
        }
        // The pages the budget allows at this batch's time per page (empty pages count too),
        // at most twice as many as this batch had, and no more than the rows allowed would
        // fill at the densest pages seen.
        let by_time = pages as f64 * self.budget.as_secs_f64() / took.as_secs_f64();
        let by_rows = self.rows as f64 / self.densest;
        self.pages = (by_time.min(pages as f64 * 2.0).min(by_rows) as i64).max(1);
    }
}

/// One worker of the page pass: takes the next free range until none is left.
async fn page_worker(
    client: &mut Client,
    run: &Run<'_>,
    cursor: &Mutex<Cursor>,
    (pass, segments): (&BlockPass, &[(i64, String)]),
    densest: f64,
) -> Result<(), Failure> {
    let lock = || cursor.lock().unwrap_or_else(|e| e.into_inner());
    let mut sizer = Sizer::new(run.options, densest);
    run.before_batch(client).await?;
    loop {
        // Its own statement: a guard in a `while let` would live through the awaits below.
        let claimed = lock().claim(sizer.pages);
        let Some((from, upto)) = claimed else {
            return Ok(());
        };
        let started = Instant::now();
        let rows = loop {
            match pages_batch(client, run, cursor, (from, upto), (pass, segments)).await {
                Ok(rows) => break rows,
                Err(Failure::Db(e)) if is_lock_timeout(&e) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    run.before_batch(client).await?;
                }
                Err(e) => return Err(e),
            }
        };
        lock().committed(from);
        let took = started.elapsed();
        run.after_batch(rows, took);
        sizer.observe(upto - from, rows, took);
        run.between_batches().await;
        run.before_batch(client).await?;
    }
}

/// One batch of the page pass in its own transaction, with its checkpoint.
async fn pages_batch(
    client: &mut Client,
    run: &Run<'_>,
    cursor: &Mutex<Cursor>,
    (from, upto): (i64, i64),
    (pass, segments): (&BlockPass, &[(i64, String)]),
) -> Result<u64, Failure> {
    // The part the range lies in (ranges never cross parts), and the range within it.
    let (start, sql) = segments
        .iter()
        .rev()
        .find(|(start, _)| *start <= from)
        .unwrap_or(&segments[0]);
    let tx = client.transaction().await?;
    begin_batch(&tx, run).await?;
    let (lower, upper) = (
        format!("({},0)", from - start),
        format!("({},0)", upto - start),
    );
    let rows = tx.execute(sql, &[&lower, &upper]).await?;
    // Read after the UPDATE, so that any range committed meanwhile counts as done. Another
    // worker's checkpoint may commit after this one with a lower position: a resumed pass
    // then only re-reads a few ranges, whose rows are marked and skipped.
    let next = cursor
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .done_below(from);
    let done = BlockPass {
        next,
        ..pass.clone()
    };
    checkpoint(&tx, run, None, Some(done), rows).await?;
    tx.commit().await?;
    Ok(rows)
}

/// Batches over key ranges after `last`: the rows no other pass reached.
/// For a table without a key, where a rewrite moved its rows under the page pass: new page
/// passes over the files as they are now, until one ends on the files it began on. The
/// done-marker keeps each row from being updated twice. A table rewritten again and again
/// (or one with a foreign-table partition) is refused rather than chased for ever.
async fn page_passes_again(client: &mut Client, run: &Run<'_>) -> Result<(), Failure> {
    const PASSES: usize = 5;
    for _ in 0..PASSES {
        let pages = pages(client, run.b).await?;
        let Some(mut pass) = pages.layout.new_pass() else {
            return Err(Failure::State(format!(
                "table {} has a foreign-table partition and no primary key or unique NOT NULL column: its rows cannot be backfilled in batches; add a primary key in an earlier migration",
                run.b.table
            )));
        };
        block_pass(client, &mut [], run, &mut pass, pages.densest).await?;
        if same_files(client, run.b, &pass).await? {
            return Ok(());
        }
    }
    Err(Failure::State(format!(
        "table {} was rewritten during each of {PASSES} backfill passes; run the backfill again once nothing rewrites it (`tandem backfill`)",
        run.b.table
    )))
}

async fn key_pass(
    client: &mut Client,
    run: &Run<'_>,
    mut last: Option<Vec<String>>,
    pass: Option<&BlockPass>,
) -> Result<(), Failure> {
    let max = run.options.max_batch_rows.max(1);
    let mut size = run.options.batch_size.clamp(MIN_BATCH.min(max), max);
    loop {
        run.before_batch(client).await?;
        let started = Instant::now();
        let (key, rows) = match key_batch(client, run, last.as_deref(), size, pass).await {
            Ok(Batch::Upto(key, rows)) => (Some(key), rows),
            Ok(Batch::Last(rows)) => (None, rows),
            Err(Failure::Db(e)) if is_lock_timeout(&e) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let took = started.elapsed();
        run.after_batch(rows, took);
        size = next_batch_size(size, rows, took, run.options.batch_time, max);
        let Some(key) = key else { return Ok(()) };
        last = Some(key);
        run.between_batches().await;
    }
}

/// Doubles a batch that ran well under its budget, halves one that ran well over.
pub fn next_batch_size(size: i64, rows: u64, took: Duration, budget: Duration, max: i64) -> i64 {
    let full = rows as i64 >= size;
    if full && took < budget / 2 {
        (size * 2).min(max)
    } else if took > budget * 2 {
        (size / 2).max(MIN_BATCH.min(max))
    } else {
        size
    }
}

/// Where an earlier, interrupted run of this backfill stopped.
#[derive(Default)]
struct Resumed {
    last_key: Option<Vec<String>>,
    block_pass: Option<BlockPass>,
    rows_done: u64,
}

async fn resume_point(
    client: &Client,
    b: &Backfill,
    checkpoints: Option<&Checkpoints<'_>>,
) -> Result<Resumed, Failure> {
    let Some(cp) = checkpoints else {
        return Ok(Resumed::default());
    };
    let progress = cp
        .state
        .backfill_progress(client, cp.schema, cp.migration)
        .await
        .map_err(into_db)?;
    Ok(progress
        .into_iter()
        .find(|p| p.table == b.table)
        .map(|p| Resumed {
            // The key pass records an empty key when one batch held the whole table.
            last_key: p.last_key.filter(|k| !k.is_empty()),
            block_pass: p.block_pass,
            rows_done: p.rows_done.max(0) as u64,
        })
        .unwrap_or_default())
}

/// The table's storage as the page pass sees it.
struct Pages {
    layout: Layout,
    /// The most rows a page of the table holds, as far as can be told before the pass: the
    /// densest of a sample of its pages, at least the average. Sizes the first batches and
    /// bounds the pages of any batch (see [`Sizer`]).
    densest: f64,
    /// The planner's row estimate (reltuples), for progress and ETA; None when never analysed.
    rows_estimate: Option<u64>,
}

enum Layout {
    /// All rows in the table's one file: size in pages, and the file.
    OneFile { count: i64, filenode: i64 },
    /// Rows in several plain tables: partitions, or inheritance children (and the parent).
    Parts(Vec<Part>),
    /// Some rows where pages cannot be followed (a foreign table among the partitions).
    KeysOnly,
}

impl Layout {
    fn new_pass(self) -> Option<BlockPass> {
        match self {
            Layout::OneFile { count, filenode } => Some(BlockPass {
                next: 0,
                end: count,
                filenode,
                parts: Vec::new(),
            }),
            Layout::Parts(parts) => Some(BlockPass {
                next: 0,
                end: parts.iter().map(|p| p.pages).sum(),
                filenode: 0,
                parts,
            }),
            Layout::KeysOnly => None,
        }
    }
}

/// `tree(oid)`: the table `$1` and every relation that inherits from it, directly or not
/// (partitions, sub-partitions, inheritance children).
const TREE: &str = "WITH RECURSIVE tree(oid) AS (
      SELECT $1::text::regclass::oid
    UNION
      SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid)";

/// One relation of the table's tree.
struct Relation {
    part: Part,
    kind: String,
    tuples: f64,
    relpages: f64,
}

async fn relations(client: &Client, b: &Backfill) -> Result<Vec<Relation>, Failure> {
    let rows = client
        .query(
            &format!(
                "{TREE} SELECT n.nspname::text, c.relname::text, c.relkind::text,
                    pg_relation_size(c.oid) / current_setting('block_size')::bigint,
                    COALESCE(pg_relation_filenode(c.oid)::bigint, 0),
                    c.reltuples::float8, c.relpages::float8
               FROM tree t JOIN pg_class c ON c.oid = t.oid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              ORDER BY c.oid"
            ),
            &[&b.schema_qualified()],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| Relation {
            part: Part {
                schema: r.get(0),
                name: r.get(1),
                pages: r.get(3),
                filenode: r.get(4),
            },
            kind: r.get(2),
            tuples: r.get(5),
            relpages: r.get(6),
        })
        .collect())
}

/// The relations holding rows; None if one of them has no pages to follow.
fn parts_of(relations: &[Relation]) -> Option<Vec<&Relation>> {
    let mut parts = Vec::new();
    for r in relations {
        match r.kind.as_str() {
            "r" => parts.push(r),
            // A partitioned table keeps no rows of its own.
            "p" => {}
            _ => return None,
        }
    }
    Some(parts)
}

async fn pages(client: &Client, b: &Backfill) -> Result<Pages, Failure> {
    let relations = relations(client, b).await?;
    let parts = parts_of(&relations).unwrap_or_default();
    let layout = match (relations.as_slice(), parts_of(&relations)) {
        ([one], _) if one.kind == "r" => Layout::OneFile {
            count: one.part.pages,
            filenode: one.part.filenode,
        },
        (_, Some(parts)) if !parts.is_empty() => {
            Layout::Parts(parts.iter().map(|r| r.part.clone()).collect())
        }
        _ => Layout::KeysOnly,
    };
    let analysed = parts.iter().filter(|r| r.tuples >= 0.0);
    let (tuples, relpages) = analysed
        .clone()
        .fold((0.0, 0.0), |(t, p), r| (t + r.tuples, p + r.relpages));
    let densest = {
        let average = if tuples > 0.0 && relpages > 0.0 {
            (tuples / relpages).max(1.0)
        } else {
            DEFAULT_ROWS_PER_PAGE
        };
        let total: i64 = parts.iter().map(|r| r.part.pages).sum();
        match &layout {
            Layout::KeysOnly => average,
            _ => densest_sampled(client, b, total).await?.max(average),
        }
    };
    Ok(Pages {
        layout,
        densest,
        rows_estimate: (analysed.count() > 0).then_some(tuples as u64),
    })
}

/// The most rows found on one page among about `SAMPLED_PAGES` pages of the table's
/// `total`, taken at random (TABLESAMPLE SYSTEM reads whole pages).
async fn densest_sampled(client: &Client, b: &Backfill, total: i64) -> Result<f64, Failure> {
    if total <= 0 {
        return Ok(0.0);
    }
    let percent = (100.0 * SAMPLED_PAGES / total as f64).min(100.0);
    let row = client
        .query_one(
            &format!(
                "SELECT COALESCE(max(n), 0)::float8 FROM (
                   SELECT count(*) AS n FROM {} TABLESAMPLE SYSTEM (($1::float8)::real)
                    GROUP BY tableoid, (ctid::text::point)[0]) s",
                b.schema_qualified()
            ),
            &[&percent],
        )
        .await?;
    Ok(row.get(0))
}

const SAMPLED_PAGES: f64 = 64.0;

/// A guess for a table never analysed: narrow rows, about this many to an 8 kB page.
const DEFAULT_ROWS_PER_PAGE: f64 = 60.0;

/// Whether the pass's page numbers still mean what they meant when it began: the same files
/// (no VACUUM FULL or CLUSTER rewrote one) and, for parts, the same parts (none attached,
/// whose rows no trigger converted, nor detached).
async fn same_files(client: &Client, b: &Backfill, pass: &BlockPass) -> Result<bool, Failure> {
    let relations = relations(client, b).await?;
    if pass.parts.is_empty() {
        return Ok(matches!(relations.as_slice(),
            [one] if one.kind == "r" && one.part.filenode == pass.filenode));
    }
    let Some(now) = parts_of(&relations) else {
        return Ok(false);
    };
    let file = |p: &Part| (p.schema.clone(), p.name.clone(), p.filenode);
    Ok(now.len() == pass.parts.len()
        && now
            .iter()
            .zip(&pass.parts)
            .all(|(n, p)| file(&n.part) == file(p)))
}

/// The settings every batch runs under: a short lock timeout, the marker the sync trigger
/// stands aside for, and no trigger dispatch when that is safe.
async fn begin_batch(tx: &tokio_postgres::Transaction<'_>, run: &Run<'_>) -> Result<(), Failure> {
    tx.batch_execute(&format!(
        "SET LOCAL lock_timeout = {}; SET LOCAL tandem.version = {}{}",
        quote_literal(&format!("{}ms", run.lock_timeout.as_millis())),
        quote_literal(BACKFILL_MARKER),
        if run.skip_triggers {
            "; SET LOCAL session_replication_role = replica"
        } else {
            ""
        }
    ))
    .await?;
    Ok(())
}

/// Records the batch's position and rows in its own transaction, so that both commit together.
async fn checkpoint(
    tx: &tokio_postgres::Transaction<'_>,
    run: &Run<'_>,
    last_key: Option<Vec<String>>,
    block_pass: Option<BlockPass>,
    rows: u64,
) -> Result<(), Failure> {
    let Some(cp) = run.checkpoints else {
        return Ok(());
    };
    let batch = crate::state::Checkpoint {
        table: &run.b.table,
        last_key,
        block_pass,
        rows_added: rows as i64,
        rows_estimate: run.estimate.map(|e| e as i64),
    };
    cp.state
        .checkpoint(tx, cp.schema, cp.migration, &batch)
        .await
        .map_err(into_db)
}

/// A state-store failure inside a batch, carried as the database error it almost always is.
#[derive(Debug)]
enum Failure {
    Db(tokio_postgres::Error),
    State(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Failure::Db(e)
    }
}

fn into_db(e: crate::state::StateError) -> Failure {
    match e {
        crate::state::StateError::Db(e) => Failure::Db(e),
        other => Failure::State(other.to_string()),
    }
}

/// Which triggers fire for a backfill's batches, and why.
///
/// The backfill is not an application write: by default its batches run with
/// `session_replication_role = replica`, so that the application's own triggers (those
/// enabled as usual, `tgenabled = 'O'`) and tandem's sync trigger do not fire for it. Besides
/// keeping a `BEFORE UPDATE` trigger from rewriting, say, `last_update` on every row, it is
/// faster: PostgreSQL no longer dispatches the sync trigger and evaluates its WHEN clause for
/// every row (about a tenth of a batch's time, measured with psql on 1M rows: 6.8 s against
/// 7.6 s; a trigger-free table took 6.2 s). It cannot save the row's second lock and read,
/// which PostgreSQL takes for any BEFORE UPDATE trigger before it asks whether the trigger is
/// enabled.
///
/// Replica mode is used when the role may set the parameter (a superuser, or PostgreSQL 15's
/// `GRANT SET ON PARAMETER session_replication_role`) and nothing it would switch off is
/// needed for the backfill to be correct. It is not used, and the triggers fire as for any
/// UPDATE, when:
/// - a *validated* foreign key covers a backfilled column (its checks are triggers; tandem's
///   own foreign keys on new and shadow columns are `NOT VALID` until complete, which
///   validates every row, so those need no check during the backfill);
/// - a deferrable unique, primary-key or exclusion constraint is on the table (it is
///   rechecked by a trigger);
/// - the table (or one of its partitions) has a rule (rules are switched off by replica mode
///   too, and tandem has always left them firing);
/// - the table has a trigger set `ENABLE REPLICA`, which would fire only in replica mode;
/// - `--backfill-fire-triggers` asks for it.
///
/// A trigger set `ENABLE ALWAYS` fires in replica mode too: that is the user's explicit
/// choice, and it is kept (and named).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackfillTriggers {
    /// The batches run with `session_replication_role = replica`.
    pub replica: bool,
    /// The application's triggers that fire for the backfill's UPDATEs (once per backfilled
    /// row, or once per batch for a statement trigger).
    pub firing: Vec<FiringTrigger>,
    /// Why the triggers enabled as usual fire (None in replica mode).
    pub why: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FiringTrigger {
    pub schema: String,
    pub table: String,
    pub name: String,
    /// `FOR EACH ROW` (else once per statement, so per batch).
    pub for_each_row: bool,
    /// Set `ENABLE ALWAYS`: it fires in replica mode too.
    pub always: bool,
}

impl fmt::Display for FiringTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {}",
            tandem_core::ident::quote_ident(&self.name),
            qualified(&self.schema, &self.table)
        )?;
        match (self.for_each_row, self.always) {
            (true, false) => Ok(()),
            (true, true) => write!(f, " (ENABLE ALWAYS)"),
            (false, false) => write!(f, " (statement trigger: once per batch)"),
            (false, true) => write!(f, " (ENABLE ALWAYS; statement trigger: once per batch)"),
        }
    }
}

impl BackfillTriggers {
    /// One line naming the triggers that fire and why (None when none does).
    pub fn warning(&self) -> Option<String> {
        if self.firing.is_empty() {
            return None;
        }
        let names: Vec<String> = self.firing.iter().map(|t| t.to_string()).collect();
        Some(firing_text(&names, self.why.as_deref()))
    }
}

/// `application trigger(s) fire once per backfilled row: … (why)`, for `plan` and `start`.
pub fn firing_text(names: &[String], why: Option<&str>) -> String {
    format!(
        "application trigger(s) fire once per backfilled row: {} ({})",
        names.join(", "),
        why.unwrap_or("set ENABLE ALWAYS: they fire in replica mode too")
    )
}

/// The `WITH` of [`backfill_triggers`]' queries: `tree`, the relations holding the table's
/// rows (none when the table does not exist yet, as in `plan` of a migration that creates
/// it), and `backfilled`, the backfilled columns there.
const TRIGGER_TREE: &str = "WITH RECURSIVE tree(oid) AS (
      SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass($1)
    UNION
      SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid),
  backfilled AS (
      SELECT a.attrelid, a.attnum FROM pg_attribute a JOIN tree t ON a.attrelid = t.oid
       WHERE a.attname = ANY ($2) AND NOT a.attisdropped)";

/// Decides whether `b`'s batches run in replica mode, and names the application triggers
/// that fire for them (see [`BackfillTriggers`]). `skip_when_safe` false is
/// `--backfill-fire-triggers`. Reads the catalog only; `plan` calls it too.
pub async fn backfill_triggers(
    client: &Client,
    b: &Backfill,
    skip_when_safe: bool,
) -> Result<BackfillTriggers, tokio_postgres::Error> {
    let may_set = client
        .batch_execute("SET session_replication_role = replica; RESET session_replication_role")
        .await
        .is_ok();
    let sync_trigger = tandem_core::sync::function_name(&b.table);
    let table = b.schema_qualified();
    // Triggers defined on a partitioned table are cloned onto each partition: named once.
    let triggers = client
        .query(
            &format!(
                "{TRIGGER_TREE}
                 SELECT n.nspname::text, c.relname::text, g.tgname::text, g.tgenabled::text,
                        (g.tgtype & 1) <> 0
                   FROM pg_trigger g JOIN tree t ON g.tgrelid = t.oid
                   JOIN pg_class c ON c.oid = g.tgrelid
                   JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE NOT g.tgisinternal AND g.tgparentid = 0 AND g.tgname <> $3
                    AND g.tgenabled <> 'D'
                    AND (g.tgtype & 16) <> 0  -- UPDATE
                    -- UPDATE OF names existing columns, never the backfilled ones
                    AND cardinality(g.tgattr::int2[]) = 0
                  ORDER BY 1, 2, 3"
            ),
            &[&table, &b.columns, &sync_trigger],
        )
        .await?;
    // What replica mode would switch off that the backfill needs (see BackfillTriggers).
    let blockers = client
        .query(
            &format!(
                "{TRIGGER_TREE}
                 SELECT 'the validated foreign key', k.conname::text, n.nspname::text, c.relname::text,
                        'covers a backfilled column'
                   FROM pg_constraint k
                   JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE k.contype = 'f' AND k.convalidated
                    AND EXISTS (SELECT 1 FROM backfilled f
                                 WHERE (f.attrelid = k.conrelid AND f.attnum = ANY (k.conkey))
                                    OR (f.attrelid = k.confrelid AND f.attnum = ANY (k.confkey)))
                 UNION ALL
                 SELECT 'the deferrable constraint', k.conname::text, n.nspname::text, c.relname::text,
                        'is rechecked by a trigger'
                   FROM pg_trigger g JOIN tree t ON g.tgrelid = t.oid
                   JOIN pg_constraint k ON k.oid = g.tgconstraint
                   JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE g.tgisinternal AND g.tgenabled <> 'D' AND k.contype <> 'f'
                 UNION ALL
                 SELECT 'the rule', r.rulename::text, n.nspname::text, c.relname::text,
                        'would not fire in replica mode'
                   FROM pg_rewrite r JOIN tree t ON r.ev_class = t.oid
                   JOIN pg_class c ON c.oid = r.ev_class JOIN pg_namespace n ON n.oid = c.relnamespace
                 UNION ALL
                 SELECT 'the trigger', g.tgname::text, n.nspname::text, c.relname::text,
                        'is ENABLE REPLICA (it would fire only in replica mode)'
                   FROM pg_trigger g JOIN tree t ON g.tgrelid = t.oid
                   JOIN pg_class c ON c.oid = g.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE NOT g.tgisinternal AND g.tgenabled = 'R' AND g.tgname <> $3
                  ORDER BY 1, 3, 4, 2
                  LIMIT 1"
            ),
            &[&table, &b.columns, &sync_trigger],
        )
        .await?;
    let blocker = blockers.first().map(|r| {
        format!(
            "{} {} on {} {}",
            r.get::<_, String>(0),
            tandem_core::ident::quote_ident(&r.get::<_, String>(1)),
            qualified(&r.get::<_, String>(2), &r.get::<_, String>(3)),
            r.get::<_, String>(4)
        )
    });
    let why = if !skip_when_safe {
        Some("--backfill-fire-triggers".to_string())
    } else if !may_set {
        Some(
            "the role may not set session_replication_role, which needs a superuser or, on \
             PostgreSQL 15, GRANT SET ON PARAMETER session_replication_role"
                .to_string(),
        )
    } else {
        blocker.map(|b| format!("replica mode is not used: {b}"))
    };
    let replica = why.is_none();
    // In replica mode only ENABLE ALWAYS triggers fire (ENABLE REPLICA ones would too, but
    // they keep replica mode off); otherwise all but ENABLE REPLICA ones do.
    let firing = triggers
        .iter()
        .filter(|r| {
            let enabled: String = r.get(3);
            if replica {
                enabled == "A"
            } else {
                enabled != "R"
            }
        })
        .map(|r| FiringTrigger {
            schema: r.get(0),
            table: r.get(1),
            name: r.get(2),
            always: r.get::<_, String>(3) == "A",
            for_each_row: r.get(4),
        })
        .collect();
    Ok(BackfillTriggers {
        replica,
        firing,
        why,
    })
}

/// [`backfill_triggers`] for each backfill step of the plan, by phase and step index (None
/// for a step that is not a backfill), for `tandem plan`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanTriggers {
    pub start: Vec<Option<BackfillTriggers>>,
    pub complete: Vec<Option<BackfillTriggers>>,
}

pub async fn plan_triggers(
    client: &Client,
    plan: &tandem_core::plan::Plan,
    skip_when_safe: bool,
) -> Result<PlanTriggers, tokio_postgres::Error> {
    let mut out = PlanTriggers::default();
    for (steps, triggers) in [
        (&plan.start, &mut out.start),
        (&plan.complete, &mut out.complete),
    ] {
        for step in steps {
            triggers.push(match &step.action {
                tandem_core::plan::Action::Backfill(b) => {
                    Some(backfill_triggers(client, b, skip_when_safe).await?)
                }
                tandem_core::plan::Action::Sql { .. } => None,
            });
        }
    }
    Ok(out)
}

async fn wait_while_paused(
    client: &Client,
    b: &Backfill,
    checkpoints: Option<&Checkpoints<'_>>,
    observer: &(dyn Fn(Event) + Send + Sync),
) -> Result<(), Failure> {
    let Some(cp) = checkpoints else { return Ok(()) };
    let mut told = false;
    while cp
        .state
        .is_paused(client, cp.schema, cp.migration)
        .await
        .map_err(into_db)?
    {
        if !told {
            observer(Event::BackfillWaiting {
                table: b.table.clone(),
                reason: "paused (run `tandem resume` to continue)".into(),
            });
            told = true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(())
}

/// A replica's replay position as pg_stat_replication reports it (LSNs as byte offsets).
#[derive(Debug, Clone)]
struct Replica {
    name: String,
    replay: f64,
    /// `replay_lag`: measured when the replica last replayed, so stale once no WAL flows.
    replay_lag: Option<Duration>,
}

/// The primary's WAL position and its replicas'.
struct WalSnapshot {
    current: f64,
    replicas: Vec<Replica>,
}

async fn wal_snapshot(client: &Client) -> Result<WalSnapshot, Failure> {
    let rows = client
        .query(
            "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::float8,
                    COALESCE(NULLIF(r.application_name, ''), host(r.client_addr), 'pid ' || r.pid),
                    (r.replay_lsn - '0/0'::pg_lsn)::float8,
                    EXTRACT(EPOCH FROM r.replay_lag)::float8
               FROM (SELECT 1) one
               LEFT JOIN pg_stat_replication r ON r.replay_lsn IS NOT NULL",
            &[],
        )
        .await?;
    let current = rows.first().map(|r| r.get::<_, f64>(0)).unwrap_or(0.0);
    let replicas = rows
        .iter()
        .filter_map(|r| {
            Some(Replica {
                name: r.get::<_, Option<String>>(1)?,
                replay: r.get::<_, Option<f64>>(2)?,
                replay_lag: r
                    .get::<_, Option<f64>>(3)
                    .map(|s| Duration::from_secs_f64(s.max(0.0))),
            })
        })
        .collect();
    Ok(WalSnapshot { current, replicas })
}

/// The primary's WAL position as the backfill saw it over time, and the wait in progress.
#[derive(Default)]
struct LagWatch {
    /// (when, WAL position then), oldest first.
    samples: std::collections::VecDeque<(Instant, f64)>,
    waiting: Option<Waiting>,
}

/// The workers wait until every replica has replayed up to `target`: the primary's WAL
/// position when the wait began.
#[derive(Clone, Copy)]
struct Waiting {
    target: f64,
    /// When the current figure was last shown.
    shown: Instant,
}

const LAG_SAMPLES: usize = 4096;

impl LagWatch {
    fn sample(&mut self, at: Instant, lsn: f64) {
        if self.samples.back().is_none_or(|&(_, l)| lsn > l) {
            self.samples.push_back((at, lsn));
        }
        while self.samples.len() > LAG_SAMPLES {
            self.samples.pop_front();
        }
    }

    /// How long `replica` has been behind: since the primary wrote the oldest WAL it has not
    /// replayed, as far as the samples tell; where they do not reach back that far (the
    /// replica was behind before the backfill began), at least what pg_stat_replication
    /// last measured. A replica that has replayed everything is not behind, whatever a stale
    /// `replay_lag` says.
    fn lag(&self, now: Instant, current: f64, replica: &Replica) -> Duration {
        if replica.replay >= current {
            return Duration::ZERO;
        }
        let unreplayed = self
            .samples
            .iter()
            .find(|&&(_, lsn)| lsn > replica.replay)
            .map(|&(at, _)| now.saturating_duration_since(at))
            .unwrap_or_default();
        let covered = self
            .samples
            .front()
            .is_some_and(|&(_, lsn)| lsn <= replica.replay);
        if covered {
            unreplayed
        } else {
            unreplayed.max(replica.replay_lag.unwrap_or_default())
        }
    }
}

/// `1.5 MB` and the like.
fn bytes_text(bytes: f64) -> String {
    let bytes = bytes.max(0.0);
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.1} MB", bytes / (1024.0 * 1024.0))
    } else if bytes >= 1024.0 {
        format!("{:.1} kB", bytes / 1024.0)
    } else {
        format!("{bytes:.0} bytes")
    }
}

/// The replica furthest behind `target`, in words: `replica "standby1" is 1.5 MB of WAL
/// (about 12.3 s) behind`.
fn behind_text(watch: &LagWatch, now: Instant, snap: &WalSnapshot, target: f64) -> Option<String> {
    snap.replicas
        .iter()
        .filter(|r| r.replay < target)
        .max_by(|a, b| a.replay.total_cmp(&b.replay).reverse())
        .map(|r| {
            format!(
                "replica {} is {} of WAL (about {:.1} s) behind",
                quote_literal(&r.name),
                bytes_text(snap.current - r.replay),
                watch.lag(now, snap.current, r).as_secs_f64()
            )
        })
}

/// Waits while a replica lags more than `--max-replication-lag`: from then until every
/// replica has replayed the WAL written up to that moment (its LSN), not until a lag figure
/// drops. One waiting line per table, whichever of its workers noticed first; then the
/// current figure every few seconds.
async fn wait_for_replicas(client: &Client, run: &Run<'_>) -> Result<(), Failure> {
    let Some(max) = run.options.max_replication_lag else {
        return Ok(());
    };
    let watch = || run.lag.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let snap = wal_snapshot(client).await?;
        let now = Instant::now();
        let (waiting, told) = {
            let mut w = watch();
            w.sample(now, snap.current);
            match w.waiting {
                Some(waiting) => (Some(waiting.target), None),
                None => {
                    let lagging = snap
                        .replicas
                        .iter()
                        .any(|r| w.lag(now, snap.current, r) > max);
                    if lagging {
                        w.waiting = Some(Waiting {
                            target: snap.current,
                            shown: now,
                        });
                        let text = behind_text(&w, now, &snap, snap.current);
                        (Some(snap.current), text)
                    } else {
                        (None, None)
                    }
                }
            }
        };
        if let Some(text) = told {
            (run.observer)(Event::BackfillWaiting {
                table: run.b.table.clone(),
                reason: format!(
                    "{text}, more than {} ms; going on once it has replayed what was written until now",
                    max.as_millis()
                ),
            });
        }
        let Some(target) = waiting else {
            return Ok(());
        };
        if snap.replicas.iter().all(|r| r.replay >= target) {
            let mut w = watch();
            if w.waiting.is_some_and(|x| x.target == target) {
                w.waiting = None;
            }
            return Ok(());
        }
        let figure = {
            let mut w = watch();
            let due = w
                .waiting
                .as_ref()
                .is_some_and(|x| now.duration_since(x.shown) >= LAG_FIGURE_EVERY);
            if due {
                if let Some(x) = w.waiting.as_mut() {
                    x.shown = now;
                }
                behind_text(&w, now, &snap, target)
            } else {
                None
            }
        };
        if let Some(behind) = figure {
            (run.observer)(Event::BackfillLag {
                table: run.b.table.clone(),
                behind,
            });
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

const LAG_FIGURE_EVERY: Duration = Duration::from_secs(5);

/// What one batch did.
enum Batch {
    /// Rows up to and including this key are done; more may follow.
    Upto(Vec<String>, u64),
    /// The rest of the table is done.
    Last(u64),
}

/// One batch of the key-range pass in its own transaction, with its checkpoint. The sync
/// trigger stands aside (its WHEN clause sees the backfill marker): the batch computes `up`
/// itself and marks its rows.
async fn key_batch(
    client: &mut Client,
    run: &Run<'_>,
    last: Option<&[String]>,
    size: i64,
    pass: Option<&BlockPass>,
) -> Result<Batch, Failure> {
    let b = run.b;
    let tx = client.transaction().await?;
    begin_batch(&tx, run).await?;
    let lower: Vec<&(dyn ToSql + Sync)> = last
        .unwrap_or_default()
        .iter()
        .map(|k| k as &(dyn ToSql + Sync))
        .collect();
    let offset = size - 1;
    let mut params = lower.clone();
    params.push(&offset);
    let upper_row = tx
        .query_opt(&b.upper_bound[usize::from(last.is_some())], &params)
        .await?;
    let upper: Option<Vec<String>> =
        upper_row.map(|r| (0..b.key.len()).map(|i| r.get::<_, String>(i)).collect());
    let mut params = lower;
    if let Some(u) = &upper {
        params.extend(u.iter().map(|k| k as &(dyn ToSql + Sync)));
    }
    let variant = usize::from(last.is_some()) + 2 * usize::from(upper.is_some());
    let rows = tx.execute(&b.update[variant], &params).await?;
    let key = upper.as_deref().or(last).unwrap_or_default().to_vec();
    checkpoint(&tx, run, Some(key), pass.cloned(), rows).await?;
    tx.commit().await?;
    Ok(match upper {
        Some(key) => Batch::Upto(key, rows),
        None => Batch::Last(rows),
    })
}

trait Qualified {
    fn schema_qualified(&self) -> String;
}

impl Qualified for Backfill {
    fn schema_qualified(&self) -> String {
        qualified(&self.schema, &self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database of its own with `t(id, v, w)` and `rows` rows, the backfill's plan to set
    /// `w = v * 2`, the URL to reach it and the database's name.
    async fn table_to_backfill(rows: i64) -> (Client, Backfill, String, String) {
        use std::sync::atomic::{AtomicU32, Ordering};
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let admin_url = crate::test_server::admin_url();
        let (admin, connection) = tokio_postgres::connect(&admin_url, NoTls).await.unwrap();
        tokio::spawn(connection);
        let name = format!(
            "tandem_backfill_test_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        admin
            .batch_execute(&format!(
                "CREATE DATABASE {}",
                tandem_core::ident::quote_ident(&name)
            ))
            .await
            .unwrap();
        let url = format!("{admin_url} dbname={name}");
        let (client, connection) = tokio_postgres::connect(&url, NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "CREATE TABLE public.t (id bigint PRIMARY KEY, v bigint, w bigint, {} boolean);
                 INSERT INTO public.t (id, v) SELECT g, g FROM generate_series(1, {rows}) g;
                 ANALYZE public.t",
                tandem_core::ident::quote_ident(tandem_core::backfill::DONE_COLUMN)
            ))
            .await
            .unwrap();
        let schema = crate::introspect::read_schema(&client, "public")
            .await
            .unwrap();
        let request = tandem_core::backfill::Request {
            pointer: "/operations/0".into(),
            assignments: vec![("w".into(), "v * 2".into())],
        };
        let b = tandem_core::backfill::plan("public", &schema, "t", &request).unwrap();
        (client, b, url, name)
    }

    async fn drop_database(name: &str) {
        let (admin, connection) = tokio_postgres::connect(&crate::test_server::admin_url(), NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        admin
            .batch_execute(&format!(
                "DROP DATABASE {} WITH (FORCE)",
                tandem_core::ident::quote_ident(name)
            ))
            .await
            .unwrap();
    }

    /// Runs the backfill with `workers` and more connections from `connector` (given the
    /// database's URL), and returns its events; checks every row.
    async fn backfill_with(
        workers: usize,
        connector: impl FnOnce(&str) -> Connector,
    ) -> Vec<Event> {
        let (mut client, b, url, name) = table_to_backfill(20_000).await;
        let connector = connector(&url);
        let options = BackfillOptions {
            workers,
            batch_size: 500,
            ..BackfillOptions::default()
        };
        let events = Mutex::new(Vec::new());
        let observer = |e: Event| events.lock().unwrap().push(e);
        let lock_timeout = Duration::from_millis(500);
        let done = run(
            &mut client,
            &b,
            &options,
            lock_timeout,
            Some(&connector),
            None,
            &observer,
        )
        .await
        .unwrap();
        assert_eq!(done, 20_000);
        let wrong: i64 = client
            .query_one(
                "SELECT count(*) FROM public.t WHERE w IS DISTINCT FROM v * 2",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(wrong, 0);
        drop(client);
        drop_database(&name).await;
        events.into_inner().unwrap()
    }

    fn workers_used(events: &[Event]) -> usize {
        events
            .iter()
            .find_map(|e| match e {
                Event::BackfillDone { workers, .. } => Some(*workers),
                _ => None,
            })
            .expect("a BackfillDone event")
    }

    #[tokio::test]
    async fn the_page_pass_runs_on_as_many_connections_as_asked() {
        let events = backfill_with(3, |url| Connector::new(url, "SET search_path = public")).await;
        assert_eq!(workers_used(&events), 3);
    }

    #[tokio::test]
    async fn a_worker_connection_that_cannot_be_had_only_means_fewer_workers() {
        let nowhere =
            |_: &str| Connector::new("host=/nonexistent/tandem port=1 user=x dbname=x", "");
        let events = backfill_with(3, nowhere).await;
        assert_eq!(workers_used(&events), 1);
        assert!(
            events.iter().any(|e| matches!(e,
                Event::BackfillNotice { message, .. } if message.contains("going on with 1 worker"))),
            "the user is told: {events:?}"
        );
    }

    #[tokio::test]
    async fn replica_throttling_reads_wal_positions_and_goes_on_without_replicas() {
        let (mut client, b, _, name) = table_to_backfill(1000).await;
        let snap = wal_snapshot(&client).await.ok().unwrap();
        assert!(snap.current > 0.0);
        assert!(snap.replicas.is_empty());
        let options = BackfillOptions {
            max_replication_lag: Some(Duration::from_millis(1)),
            batch_size: 100,
            workers: 1,
            ..BackfillOptions::default()
        };
        let events = Mutex::new(Vec::new());
        let observer = |e: Event| events.lock().unwrap().push(e);
        let done = run(
            &mut client,
            &b,
            &options,
            Duration::from_millis(500),
            None,
            None,
            &observer,
        )
        .await
        .unwrap();
        assert_eq!(done, 1000);
        assert!(!events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::BackfillWaiting { .. })));
        drop(client);
        drop_database(&name).await;
    }

    #[tokio::test]
    async fn replica_mode_is_kept_off_where_a_trigger_guards_a_backfilled_column() {
        let (client, b, _, name) = table_to_backfill(10).await;
        let decide = || async { backfill_triggers(&client, &b, true).await.unwrap() };
        assert_eq!(
            decide().await,
            BackfillTriggers {
                replica: true,
                firing: Vec::new(),
                why: None
            }
        );
        // tandem's own foreign keys on new columns are NOT VALID until complete validates them.
        client
            .batch_execute(
                "CREATE TABLE public.p (id bigint PRIMARY KEY);
                 ALTER TABLE public.t ADD CONSTRAINT t_w_fk FOREIGN KEY (w) REFERENCES public.p NOT VALID",
            )
            .await
            .unwrap();
        assert!(decide().await.replica);
        // A validated one would let a dangling value in unchecked.
        client
            .batch_execute("ALTER TABLE public.t VALIDATE CONSTRAINT t_w_fk")
            .await
            .unwrap();
        let validated = decide().await;
        assert!(!validated.replica);
        assert_eq!(
            validated.why.as_deref(),
            Some(
                "replica mode is not used: the validated foreign key \"t_w_fk\" on \"public\".\"t\" covers a backfilled column"
            )
        );
        // A foreign key on a column the backfill leaves alone needs no check.
        client
            .batch_execute(
                "ALTER TABLE public.t DROP CONSTRAINT t_w_fk;
                 INSERT INTO public.p SELECT g FROM generate_series(1, 10) g;
                 ALTER TABLE public.t ADD CONSTRAINT t_v_fk FOREIGN KEY (v) REFERENCES public.p",
            )
            .await
            .unwrap();
        assert!(decide().await.replica);
        // A deferrable unique constraint is rechecked by a trigger that replica mode skips.
        client
            .batch_execute(
                "ALTER TABLE public.t ADD CONSTRAINT t_v_key UNIQUE (v) DEFERRABLE INITIALLY DEFERRED",
            )
            .await
            .unwrap();
        let deferrable = decide().await;
        assert!(!deferrable.replica);
        assert!(
            deferrable
                .why
                .unwrap()
                .contains("deferrable constraint \"t_v_key\""),
            "named"
        );
        drop(client);
        drop_database(&name).await;
    }

    #[test]
    fn ranges_are_handed_out_in_order_and_the_checkpoint_never_passes_an_unfinished_one() {
        let mut cursor = Cursor::new(&BlockPass {
            next: 5,
            end: 30,
            filenode: 1,
            parts: Vec::new(),
        });
        assert_eq!(cursor.claim(10), Some((5, 15)));
        assert_eq!(cursor.claim(10), Some((15, 25)));
        // The second range's batch commits first: the first one is still being updated.
        assert_eq!(cursor.done_below(15), 5);
        cursor.committed(15);
        assert_eq!(
            cursor.done_below(5),
            25,
            "both done, nothing else handed out"
        );
        cursor.committed(5);
        assert_eq!(cursor.claim(10), Some((25, 30)), "the last range is short");
        assert_eq!(cursor.claim(10), None);
        assert_eq!(cursor.done_below(25), 30);
    }

    #[test]
    fn no_range_crosses_from_one_part_into_the_next() {
        let part = |name: &str, pages| Part {
            schema: "public".into(),
            name: name.into(),
            pages,
            filenode: 7,
        };
        let pass = BlockPass {
            next: 0,
            end: 25,
            filenode: 0,
            parts: vec![part("p1", 10), part("empty", 0), part("p2", 15)],
        };
        let mut cursor = Cursor::new(&pass);
        assert_eq!(cursor.claim(8), Some((0, 8)));
        assert_eq!(cursor.claim(8), Some((8, 10)), "p1 ends at 10");
        assert_eq!(cursor.claim(8), Some((10, 18)), "p2's first 8 pages");
        assert_eq!(cursor.claim(8), Some((18, 25)));
        assert_eq!(cursor.claim(8), None);
        let starts: Vec<(i64, Option<&str>)> = segments(&pass)
            .into_iter()
            .map(|(start, p)| (start, p.map(|p| p.name.as_str())))
            .collect();
        assert_eq!(
            starts,
            [(0, Some("p1")), (10, Some("empty")), (10, Some("p2"))]
        );
    }

    fn sizer(densest: f64) -> Sizer {
        Sizer::new(
            &BackfillOptions {
                batch_size: 1000,
                batch_time: Duration::from_millis(100),
                max_batch_rows: 10_000,
                ..BackfillOptions::default()
            },
            densest,
        )
    }

    #[test]
    fn page_batches_follow_the_time_per_row_observed() {
        let mut s = sizer(100.0);
        assert_eq!(s.pages, 10, "1000 rows at 100 a page");
        // 1000 rows in 10 ms: ten times as many fit, but a batch at most doubles.
        s.observe(10, 1000, Duration::from_millis(10));
        assert_eq!((s.rows, s.pages), (2000, 20));
        // 2000 rows in 400 ms: 500 fit.
        s.observe(20, 2000, Duration::from_millis(400));
        assert_eq!((s.rows, s.pages), (500, 5));
        // Never more than the cap.
        for _ in 0..20 {
            let pages = s.pages;
            s.observe(pages, (pages * 100) as u64, Duration::from_millis(1));
        }
        assert_eq!((s.rows, s.pages), (10_000, 100));
    }

    #[test]
    fn empty_pages_do_not_grow_a_batch_past_the_rows_the_densest_pages_would_hold() {
        let mut s = sizer(100.0);
        s.observe(10, 1000, Duration::from_millis(50));
        let rows = s.rows;
        // A long stretch of empty pages, each batch over it nearly free.
        for _ in 0..30 {
            let pages = s.pages;
            s.observe(pages, 0, Duration::from_micros(200));
        }
        assert_eq!(s.rows, rows, "empty pages say nothing of the time per row");
        assert!(
            s.pages as f64 * 100.0 <= rows as f64,
            "the next range, were it dense, holds no more rows than allowed: {s:?}"
        );
        // A sparse sample underestimated density: the first dense batch raises it.
        let mut s = sizer(10.0);
        s.observe(100, 10_000, Duration::from_millis(100));
        assert_eq!(s.densest, 100.0);
        assert!(s.pages * 100 <= s.rows);
    }

    #[test]
    fn replica_lag_comes_from_the_wal_it_has_not_replayed_not_a_stale_figure() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let replica = |replay: f64, stale: u64| Replica {
            name: "standby".into(),
            replay,
            replay_lag: Some(Duration::from_secs(stale)),
        };
        let mut w = LagWatch::default();
        w.sample(at(0), 1000.0);
        w.sample(at(10), 2000.0);
        w.sample(at(20), 3000.0);
        // Caught up: not behind, however old pg_stat_replication's last measurement is.
        assert_eq!(w.lag(at(30), 3000.0, &replica(3000.0, 99)), Duration::ZERO);
        // Replayed up to 1500: the WAL at 2000, written by second 10, waits since then.
        assert_eq!(
            w.lag(at(30), 3000.0, &replica(1500.0, 99)),
            Duration::from_secs(20),
            "the samples reach back: the stale figure is not used"
        );
        // Behind before the first sample: at least what PostgreSQL measured.
        assert_eq!(
            w.lag(at(30), 3000.0, &replica(500.0, 45)),
            Duration::from_secs(45)
        );
        assert_eq!(
            w.lag(at(30), 3000.0, &replica(500.0, 1)),
            Duration::from_secs(30)
        );
        assert_eq!(bytes_text(1536.0), "1.5 kB");
    }

    #[test]
    fn batch_size_follows_the_time_budget() {
        let budget = Duration::from_millis(100);
        assert_eq!(
            next_batch_size(1000, 1000, Duration::from_millis(10), budget, MAX_BATCH),
            2000
        );
        assert_eq!(
            next_batch_size(1000, 400, Duration::from_millis(10), budget, MAX_BATCH),
            1000,
            "a short last batch says nothing"
        );
        assert_eq!(
            next_batch_size(1000, 1000, Duration::from_millis(300), budget, MAX_BATCH),
            500
        );
        assert_eq!(
            next_batch_size(1000, 1000, Duration::from_millis(100), budget, MAX_BATCH),
            1000
        );
        assert_eq!(
            next_batch_size(MAX_BATCH, 1, Duration::from_millis(1), budget, MAX_BATCH),
            MAX_BATCH
        );
        assert_eq!(
            next_batch_size(MIN_BATCH, 1, Duration::from_secs(9), budget, MAX_BATCH),
            MIN_BATCH
        );
    }
}
