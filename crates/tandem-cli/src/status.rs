//! `tandem status` for people: an aligned, coloured table of the history.

use tandem_pg::session::Status;

use crate::style::{pad, Paint};

/// The history as an aligned table, the latest version marked, then what to run next.
pub fn table(status: &Status, paint: Paint) -> String {
    let next = format!("{} {}\n", paint.cyan("next:"), status.next);
    if !status.initialized {
        return format!(
            "schema {}: tandem is not initialized here\n{next}",
            paint.bold(&format!("\"{}\"", status.schema))
        );
    }
    let mut out = format!(
        "schema {} · latest version schema: {}\n",
        paint.bold(&format!("\"{}\"", status.schema)),
        paint.green(&status.latest_schema)
    );
    if status.history.is_empty() {
        out.push_str("no migrations applied yet\n");
        out.push_str(&next);
        return out;
    }
    let rows: Vec<[String; 5]> = status
        .history
        .iter()
        .enumerate()
        .map(|(i, m)| {
            [
                (i + 1).to_string(),
                m.name.clone(),
                m.phase.as_str().replace('_', " "),
                m.version_schema.clone(),
                m.updated_at
                    .get(..19)
                    .unwrap_or(&m.updated_at)
                    .replace('T', " "),
            ]
        })
        .collect();
    let header = ["#", "MIGRATION", "PHASE", "VERSION SCHEMA", "UPDATED (UTC)"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    out.push('\n');
    let titles: Vec<String> = header
        .iter()
        .zip(widths)
        .map(|(h, w)| pad(h, w, |s| paint.dim(s)))
        .collect();
    out.push_str(&format!("  {}\n", titles.join("  ").trim_end()));
    for (row, m) in rows.iter().zip(&status.history) {
        let phase = |s: &str| match m.phase.as_str() {
            "complete" => paint.green(s),
            "started" | "completing" => paint.yellow(s),
            _ => paint.dim(s),
        };
        let latest = m.version_schema == status.latest_schema;
        let cells = [
            pad(&row[0], widths[0], |s| paint.dim(s)),
            pad(&row[1], widths[1], |s| paint.bold(s)),
            pad(&row[2], widths[2], phase),
            pad(&row[3], widths[3], |s| {
                if latest {
                    paint.green(s)
                } else {
                    s.to_string()
                }
            }),
            row[4].clone(),
        ];
        let mark = if latest {
            format!("  {}", paint.green("← latest"))
        } else {
            String::new()
        };
        out.push_str(&format!("  {}{mark}\n", cells.join("  ")));
    }
    out.push('\n');
    if let Some(m) = &status.in_flight {
        out.push_str(&format!(
            "{} {} ({}{})\n",
            paint.yellow("in flight:"),
            m.name,
            m.phase.as_str().replace('_', " "),
            if status.paused {
                ", backfill paused"
            } else {
                ""
            }
        ));
        for b in &status.backfill {
            let share = match b.rows_estimate {
                Some(estimate) if estimate > 0 => format!(
                    " of ~{estimate} ({}%)",
                    (b.rows_done.saturating_mul(100) / estimate).min(100)
                ),
                _ => String::new(),
            };
            out.push_str(&format!(
                "  backfill of \"{}\": {} rows{share}\n",
                b.table, b.rows_done
            ));
        }
    }
    out.push_str(&next);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_pg::session::MigrationSummary;
    use tandem_pg::state::{BackfillProgress, Phase};

    fn summary(name: &str, phase: Phase) -> MigrationSummary {
        MigrationSummary {
            name: name.to_string(),
            parent: None,
            version_schema: format!("public_{name}"),
            phase,
            created_at: "2026-05-01T10:22:33.123456Z".to_string(),
            updated_at: "2026-05-01T10:25:00.000001Z".to_string(),
        }
    }

    #[test]
    fn the_history_is_an_aligned_table_with_the_latest_marked() {
        let started = summary("03_split_name", Phase::Started);
        let status = Status {
            schema: "public".to_string(),
            initialized: true,
            latest_schema: "public_03_split_name".to_string(),
            in_flight: Some(started.clone()),
            history: vec![summary("01_users", Phase::Complete), started],
            backfill: vec![BackfillProgress {
                table: "users".to_string(),
                last_key: None,
                rows_done: 500,
                rows_estimate: Some(2000),
                block_pass: None,
            }],
            paused: true,
            next: "run `tandem complete`".to_string(),
        };
        let expected = "\
schema \"public\" · latest version schema: public_03_split_name

  #  MIGRATION      PHASE     VERSION SCHEMA        UPDATED (UTC)
  1  01_users       complete  public_01_users       2026-05-01 10:25:00
  2  03_split_name  started   public_03_split_name  2026-05-01 10:25:00  ← latest

in flight: 03_split_name (started, backfill paused)
  backfill of \"users\": 500 rows of ~2000 (25%)
next: run `tandem complete`
";
        assert_eq!(table(&status, Paint::off()), expected);
        let coloured = table(&status, Paint::on());
        assert!(coloured.contains("\x1b[33mstarted\x1b[0m   "), "{coloured}");
        assert_eq!(strip_ansi(&coloured), expected);
    }

    #[test]
    fn an_uninitialized_database_says_what_to_run() {
        let status = Status {
            schema: "app".to_string(),
            initialized: false,
            latest_schema: "app".to_string(),
            in_flight: None,
            history: Vec::new(),
            backfill: Vec::new(),
            paused: false,
            next: "run `tandem init`".to_string(),
        };
        assert_eq!(
            table(&status, Paint::off()),
            "schema \"app\": tandem is not initialized here\nnext: run `tandem init`\n"
        );
    }

    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }
}
