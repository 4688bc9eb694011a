//! Positions inside one SQL value: where a statement starts, where the parser stopped.

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Where PostgreSQL's parser gives up on `sql`: the start of the first token at which a
/// prefix of `sql` fails for a reason other than ending early. libpg_query reports the
/// message but not the position, and an LALR parser fails on the same token whether or not
/// the rest follows, so the shortest failing prefix finds it.
pub fn error_offset(sql: &str) -> Option<usize> {
    // Beyond this the quadratic search costs more than the position is worth.
    const MAX_TOKENS: usize = 4000;
    let tokens = pg_query::scan(sql).ok()?.tokens;
    if tokens.len() > MAX_TOKENS {
        return None;
    }
    tokens
        .iter()
        .find_map(|t| {
            let start = usize::try_from(t.start).ok()?;
            let end = usize::try_from(t.end).ok()?;
            match pg_query::parse(sql.get(..end)?, pg_query::ParserOptions::DEFAULT) {
                Err(pg_query::Error::Parse(m)) if !m.contains("at end of input") => Some(start),
                _ => None,
            }
        })
        .or_else(|| Some(sql.trim_end().len()))
}

/// The statement around byte `offset`: from the `;` before it to the `;` after it. For a
/// statement the parser rejected, where no statement boundaries are known.
pub fn statement_around(sql: &str, offset: usize) -> &str {
    let offset = offset.min(sql.len());
    let (before, after) = sql.split_at(floor_char_boundary(sql, offset));
    let start = before.rfind(';').map_or(0, |i| i + 1);
    let end = after.find(';').map_or(sql.len(), |i| before.len() + i + 1);
    sql[start..end].trim()
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based() {
        assert_eq!(line_column("abc", 0), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn the_failing_token_is_found() {
        let sql = "CREATE TABLE t (a int);\nALTER TABLE t ADD COLUMN b int nonsense;";
        let at = error_offset(sql).unwrap();
        assert_eq!(&sql[at..at + 8], "nonsense");
        assert_eq!(line_column(sql, at), (2, 32));
        assert_eq!(
            statement_around(sql, at),
            "ALTER TABLE t ADD COLUMN b int nonsense;"
        );
    }

    #[test]
    fn an_unfinished_statement_fails_at_its_end() {
        let sql = "CREATE TABLE t (a int";
        assert_eq!(error_offset(sql), Some(sql.len()));
    }
}
