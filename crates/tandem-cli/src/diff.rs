//! `tandem diff`: does the database match its migration files (or another database)?
//! Exit code 0 when they match, 1 when they differ, 2 when the comparison cannot be made.

use std::path::PathBuf;

use clap::{ArgGroup, Args};
use tandem_core::diff::{Difference, Labels};
use tandem_pg::diff::{
    compare_databases, compare_with_migrations, Comparison, MigrationsDiff, Scratch,
};

use crate::args::Global;
use crate::{files, options, url, Failure};

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("source").required(true).args(["migrations", "from"])))]
pub struct DiffArgs {
    /// Compare the database (--postgres-url) with the one the migration files of DIR build,
    /// replayed into a scratch database.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["from", "to"])]
    pub migrations: Option<PathBuf>,
    /// Replay on a fresh database of this server (created, then dropped) instead of a
    /// throwaway local PostgreSQL.
    #[arg(long, value_name = "URL", requires = "migrations")]
    pub scratch_url: Option<String>,
    /// Replay only the files the database has applied (by name), leaving out new ones.
    #[arg(long, requires = "migrations")]
    pub applied_only: bool,
    /// Compare two databases: this one ...
    #[arg(long, value_name = "URL", requires = "to")]
    pub from: Option<String>,
    /// ... with this one.
    #[arg(long, value_name = "URL", requires = "from")]
    pub to: Option<String>,
    #[arg(long)]
    pub json: bool,
}

/// Every failure to compare is exit code 2; "they differ" is 1.
fn cannot_compare(message: String) -> Failure {
    Failure { code: 2, message }
}

pub async fn run(g: &Global, args: &DiffArgs) -> Result<(), Failure> {
    let (comparison, labels, what, hint) = match (&args.migrations, &args.from, &args.to) {
        (Some(dir), _, _) => {
            let migrations = files::load_dir(dir).map_err(|problems| {
                let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
                cannot_compare(lines.join("\n"))
            })?;
            let live = url(g).map_err(|f| cannot_compare(f.message))?;
            let scratch = match &args.scratch_url {
                Some(url) => Scratch::Server(url.clone()),
                None => Scratch::Local,
            };
            if !args.json {
                let place = match scratch {
                    Scratch::Local => "a throwaway PostgreSQL",
                    Scratch::Server(_) => "a scratch database",
                };
                eprintln!(
                    "replaying the migration files of {} into {place}",
                    dir.display()
                );
            }
            let json = args.json;
            let replayed = move |name: &str| {
                if !json {
                    eprintln!("  - {name}");
                }
            };
            let options = options(g);
            let input = MigrationsDiff {
                url: &live,
                migrations: &migrations,
                scratch: &scratch,
                applied_only: args.applied_only,
                options: &options,
            };
            let comparison = compare_with_migrations(&input, &replayed)
                .await
                .map_err(|e| cannot_compare(e.to_string()))?;
            let what = format!("the database and the migration files of {}", dir.display());
            let hint = "change the database through a new migration file, or undo the change made outside tandem";
            (comparison, Labels::LIVE_MIGRATIONS, what, hint)
        }
        (None, Some(from), Some(to)) => {
            let comparison = compare_databases(from, to, &g.schema)
                .await
                .map_err(|e| cannot_compare(e.to_string()))?;
            let what = "the two databases".to_string();
            let hint = "the lines above say what each database has that the other lacks";
            (comparison, Labels::FROM_TO, what, hint)
        }
        _ => {
            return Err(cannot_compare(
                "pass --migrations DIR, or --from URL and --to URL".into(),
            ))
        }
    };
    if args.json {
        let text = serde_json::to_string_pretty(&json(&comparison, labels)).unwrap_or_default();
        println!("{text}");
    } else {
        if let Some(name) = &comparison.scratch_database {
            eprintln!("replayed into scratch database \"{name}\", dropped since");
        }
        for note in &comparison.notes {
            eprintln!("note: {note}");
        }
        for difference in &comparison.differences {
            println!("{}", difference.describe(labels));
        }
        if comparison.differences.is_empty() {
            println!(
                "no differences: {what} have the same schema \"{}\"",
                g.schema
            );
        }
    }
    match comparison.differences.len() {
        0 => Ok(()),
        n => Err(Failure {
            code: 1,
            message: format!(
                "{what} differ: {n} difference{}\n  hint: {hint}",
                if n == 1 { "" } else { "s" }
            ),
        }),
    }
}

/// `{"equal", "sides", "replayed", "notes", "scratch_database", "differences"}`; in each difference the values of
/// the two sides are keyed by the sides' labels (`live`/`migrations`, `from`/`to`).
pub fn json(comparison: &Comparison, labels: Labels<'_>) -> serde_json::Value {
    let differences: Vec<serde_json::Value> = comparison
        .differences
        .iter()
        .map(|d| difference_json(d, labels))
        .collect();
    serde_json::json!({
        "equal": comparison.differences.is_empty(),
        "sides": [labels.a, labels.b],
        "replayed": comparison.replayed,
        "notes": comparison.notes,
        "scratch_database": comparison.scratch_database,
        "differences": differences,
    })
}

fn difference_json(d: &Difference, labels: Labels<'_>) -> serde_json::Value {
    let mut value = serde_json::to_value(d).unwrap_or_default();
    if let Some(object) = value.as_object_mut() {
        for (key, label) in [("a", labels.a), ("b", labels.b)] {
            if let Some(v) = object.remove(key) {
                object.insert(label.to_string(), v);
            }
        }
        if let Some(side) = object.get_mut("only_in") {
            let label = match side.as_str() {
                Some("a") => labels.a,
                _ => labels.b,
            };
            *side = label.into();
        }
        object.insert("message".into(), d.describe(labels).to_string().into());
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_core::diff::Side;

    #[test]
    fn json_names_the_sides() {
        let comparison = Comparison {
            differences: vec![
                Difference::ColumnDefault {
                    table: "users".into(),
                    column: "email".into(),
                    a: Some("'x'::text".into()),
                    b: None,
                },
                Difference::Table {
                    table: "t".into(),
                    only_in: Side::A,
                },
            ],
            replayed: vec!["01_init".into()],
            notes: vec![],
            scratch_database: None,
        };
        assert_eq!(
            json(&comparison, Labels::LIVE_MIGRATIONS),
            serde_json::json!({
                "equal": false,
                "sides": ["live", "migrations"],
                "replayed": ["01_init"],
                "notes": [],
                "scratch_database": null,
                "differences": [
                    {"kind": "column_default", "table": "users", "column": "email",
                     "live": "'x'::text", "migrations": null,
                     "message": "column \"users\".\"email\": default differs: 'x'::text (live) vs none (migrations)"},
                    {"kind": "table", "table": "t", "only_in": "live",
                     "message": "table \"t\": only in live"},
                ],
            })
        );
    }
}
