//! Positions inside one SQL value: where a statement starts, where the parser stopped.

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

/// Where PostgreSQL's parser gives up on `sql`: the start of the token it stopped at.
/// libpg_query reports the message but not the position. An LALR parser stops on the same
/// token whether or not the rest follows, so a prefix of `sql` fails early (at a token, not
/// "at end of input") exactly when it reaches that token: a binary search over token ends
/// finds it in a few parses. `None` when the tokens cannot be read; the end when only the
/// end of input is wrong.
pub fn error_offset(sql: &str) -> Option<usize> {
    let tokens = pg_query::scan(sql).ok()?.tokens;
    let fails_early = |end: i32| {
        let prefix = usize::try_from(end).ok().and_then(|e| sql.get(..e));
        matches!(
            prefix.map(|p| pg_query::parse(p, pg_query::ParserOptions::DEFAULT)),
            Some(Err(pg_query::Error::Parse(m))) if !m.contains("at end of input")
        )
    };
    let first_failing = tokens.partition_point(|t| !fails_early(t.end));
    match tokens.get(first_failing) {
        Some(token) => usize::try_from(token.start).ok(),
        None => Some(sql.trim_end().len()),
    }
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
    fn the_failing_token_is_found_in_long_sql() {
        let mut sql = "SELECT 1;\n".repeat(2000);
        sql.push_str("SELECT FROM WHERE;");
        let at = error_offset(&sql).unwrap();
        assert_eq!(&sql[at..at + 5], "WHERE");
    }

    #[test]
    fn an_unfinished_statement_fails_at_its_end() {
        let sql = "CREATE TABLE t (a int";
        assert_eq!(error_offset(sql), Some(sql.len()));
    }
}
