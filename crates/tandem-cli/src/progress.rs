//! Progress of long work on stderr: a progress bar on a terminal, a plain line every few
//! seconds otherwise, JSON lines with `--json`.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tandem_pg::executor::Event;

pub struct Progress {
    json: bool,
    terminal: bool,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    bar: Option<ProgressBar>,
    /// (table, when its backfill started, when we last printed a plain line)
    backfill: Option<(String, Instant, Instant)>,
}

impl Progress {
    pub fn new(json: bool) -> Progress {
        Progress {
            json,
            terminal: std::io::stderr().is_terminal(),
            state: Mutex::new(State::default()),
        }
    }

    pub fn show(&self, event: Event) {
        if self.json {
            eprintln!("{}", crate::render::event_json(&event));
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::BackfillProgress {
                table,
                rows,
                estimate,
                batch_size,
            } => self.backfill(&mut state, &table, rows, estimate, batch_size),
            // Lock-hold timings are for --json readers and benchmarks.
            Event::StepDone { .. } => {}
            Event::BackfillWaiting { table, reason } => say(
                &state,
                &format!("    backfill of \"{table}\" waits: {reason}"),
            ),
            // The current figure: on the bar where there is one; the waiting line said why.
            Event::BackfillLag { table, behind } => match &state.bar {
                Some(bar) => bar.set_message(format!("backfill of \"{table}\" waits: {behind}")),
                None => eprintln!("    backfill of \"{table}\" still waits: {behind}"),
            },
            Event::BackfillNotice { table, message } => {
                say(&state, &format!("    backfill of \"{table}\": {message}"))
            }
            e @ Event::BackfillTriggersFire { .. } => say(&state, &crate::render::event_text(&e)),
            other => {
                if let Some(bar) = state.bar.take() {
                    bar.finish_and_clear();
                }
                state.backfill = None;
                eprintln!("{}", crate::render::event_text(&other));
            }
        }
    }

    fn backfill(
        &self,
        state: &mut State,
        table: &str,
        rows: u64,
        estimate: Option<u64>,
        batch_size: i64,
    ) {
        let now = Instant::now();
        let fresh = state.backfill.as_ref().is_none_or(|(t, _, _)| t != table);
        if fresh {
            state.backfill = Some((table.to_string(), now, now));
            if self.terminal {
                state.bar = Some(new_bar(estimate));
            }
        }
        let Some((_, started, printed)) = state.backfill.as_mut() else {
            return;
        };
        let rate = rows as f64 / started.elapsed().as_secs_f64().max(0.001);
        let line = describe(table, rows, estimate, rate, batch_size);
        if let Some(bar) = &state.bar {
            if let Some(total) = estimate {
                bar.set_length(total.max(rows));
            }
            bar.set_position(rows);
            bar.set_message(line);
        } else if now.duration_since(*printed) >= Duration::from_secs(2) {
            *printed = now;
            eprintln!("    {line}");
        }
    }
}

fn new_bar(estimate: Option<u64>) -> ProgressBar {
    let bar = match estimate {
        Some(total) if total > 0 => ProgressBar::new(total),
        _ => ProgressBar::new_spinner(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("    [{bar:30}] {msg}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// `backfilled 12000 of ~50000 rows of "users" (8000 rows/s, about 5 s left, batches of 5000)`
pub fn describe(
    table: &str,
    rows: u64,
    estimate: Option<u64>,
    rate: f64,
    batch_size: i64,
) -> String {
    let of = estimate.map(|e| format!(" of ~{e}")).unwrap_or_default();
    let eta = match estimate {
        Some(total) if total > rows && rate > 0.0 => {
            format!(", about {} s left", ((total - rows) as f64 / rate).ceil())
        }
        _ => String::new(),
    };
    format!("backfilled {rows}{of} rows of \"{table}\" ({rate:.0} rows/s{eta}, batches of {batch_size})")
}

fn say(state: &State, line: &str) {
    match &state.bar {
        Some(bar) => bar.println(line),
        None => eprintln!("{line}"),
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = state.bar.take() {
            bar.finish_and_clear();
        }
    }
}
