//! `tandem convert [FILE|-]`: SQL DDL in, a migration file out on stdout; the notes (statements
//! kept as `sql`, placeholders to fill in) on stderr.

use std::io::Read;
use std::path::Path;

use tandem_core::baseline::migration_file_text;
use tandem_core::load::Format;
use tandem_core::migration::MigrationFile;
use tandem_lint::convert::convert;

use crate::{style, Failure};

pub fn run(file: Option<&Path>, json: bool, name: Option<String>) -> Result<(), Failure> {
    let (display, sql) = read(file)?;
    let conversion = convert(&sql).map_err(|e| Failure {
        code: 2,
        message: format!(
            "{display}:{}:{}: {}\n  hint: fix the SQL; tandem convert reads it with PostgreSQL's own parser",
            e.line, e.column, e.message
        ),
    })?;
    if conversion.operations.is_empty() {
        return Err(Failure {
            code: 2,
            message: format!("{display} holds no SQL statement\n  hint: give a file of DDL statements, or pipe them in"),
        });
    }
    let migration = MigrationFile {
        schema_url: None,
        name,
        version_schema: None,
        operations: conversion.operations.clone(),
    };
    let format = if json { Format::Json } else { Format::Yaml };
    print!("{}", migration_file_text(&migration, format));
    let paint = style::Paint::stderr();
    for note in &conversion.notes {
        let key = conversion
            .operations
            .get(note.operation)
            .map_or("", |op| op.key());
        eprintln!(
            "{} /operations/{}/{key}: {}",
            paint.cyan("note:"),
            note.operation,
            note.message
        );
        if !note.statement.is_empty() {
            let first = note.statement.lines().next().unwrap_or_default();
            let more = if note.statement.lines().nth(1).is_some() {
                " …"
            } else {
                ""
            };
            eprintln!("  {}", paint.dim(&format!("from: {first}{more}")));
        }
    }
    Ok(())
}

/// The SQL: from the file, or from stdin for `-` or no file.
fn read(file: Option<&Path>) -> Result<(String, String), Failure> {
    match file {
        Some(path) if path != Path::new("-") => {
            let text = std::fs::read_to_string(path).map_err(|e| Failure {
                code: 2,
                message: format!(
                    "cannot read {}: {e}\n  hint: check the path, or pipe the SQL in with `-`",
                    path.display()
                ),
            })?;
            Ok((path.display().to_string(), text))
        }
        _ => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|e| Failure {
                    code: 2,
                    message: format!("cannot read stdin: {e}\n  hint: pipe SQL text in"),
                })?;
            Ok(("stdin".to_string(), text))
        }
    }
}
