//! Showing the lint's findings and refusing a start on them; the rules live in tandem-lint.

use tandem_core::migration::Migration;
use tandem_core::schema::Schema;
use tandem_lint::{Finding, Hazard};

use crate::style::Paint;
use crate::Failure;

/// `--allow-hazard NAME`: a hazard by its snake_case name.
pub fn parse_hazard(name: &str) -> Result<Hazard, String> {
    Hazard::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Hazard::ALL.iter().map(|h| h.name()).collect();
        format!("unknown hazard \"{name}\" (one of: {})", names.join(", "))
    })
}

/// The findings of one migration file, each knowing its file.
pub struct FileFindings {
    pub file: String,
    pub findings: Vec<Finding>,
}

impl FileFindings {
    pub fn of(file: &str, migration: &Migration, schema: Option<&Schema>) -> FileFindings {
        FileFindings {
            file: file.to_string(),
            findings: tandem_lint::lint(migration, schema),
        }
    }

    /// The findings as JSON objects, each with its `file`.
    pub fn json(&self) -> Vec<serde_json::Value> {
        self.findings
            .iter()
            .map(|f| {
                let mut value = serde_json::to_value(f).unwrap_or_default();
                if let Some(object) = value.as_object_mut() {
                    object.insert("file".into(), self.file.clone().into());
                }
                value
            })
            .collect()
    }

    /// Every finding, one paragraph each (`file: pointer (warning: …): …`), with the flag
    /// that allows a refusal.
    pub fn text(&self, allowed: &[Hazard]) -> String {
        self.findings
            .iter()
            .map(|f| {
                let mut text = format!("{}: {f}", self.file);
                if f.is_refusal() {
                    let note = if allowed.contains(&f.hazard) {
                        format!("\n  allowed by --allow-hazard {}", f.hazard)
                    } else {
                        format!(
                            "\n  hint: to run it anyway, pass --allow-hazard {}",
                            f.hazard
                        )
                    };
                    text.push_str(&note);
                }
                text.push('\n');
                text
            })
            .collect()
    }

    /// Refuses (exit 2) while a refusal that `allowed` does not name remains.
    pub fn refuse_unless_allowed(&self, allowed: &[Hazard]) -> Result<(), Failure> {
        let refused = tandem_lint::refusals(&self.findings, allowed);
        if refused.is_empty() {
            return Ok(());
        }
        let lines: Vec<String> = refused
            .iter()
            .map(|f| {
                format!(
                    "{}: {f}\n  hint: to run it anyway, pass --allow-hazard {}",
                    self.file, f.hazard
                )
            })
            .collect();
        Err(Failure {
            code: 2,
            message: format!(
                "refused: {} hazard(s) in the raw SQL; nothing was changed\n{}",
                refused.len(),
                lines.join("\n")
            ),
        })
    }

    /// Prints the warnings (and allowed refusals) on stderr: a start goes on after them.
    pub fn warn(&self, allowed: &[Hazard]) {
        if self.findings.is_empty() {
            return;
        }
        let paint = Paint::stderr();
        eprint!("{}", paint.yellow(&self.text(allowed)));
    }
}
