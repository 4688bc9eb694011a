//! Just enough SQL lexing to tell which column names an `up`/`down` expression mentions, so
//! the sync trigger declares locals only for those (every local costs on every write).

/// The identifiers in `sql`, as PostgreSQL would resolve them: unquoted ones folded to lower
/// case, quoted ones verbatim. String literals, dollar-quoted strings and comments are skipped.
pub fn identifiers(sql: &str) -> Vec<String> {
    identifier_spans(sql).into_iter().map(|s| s.name).collect()
}

/// An identifier token: its resolved name and where it is, in chars.
struct Span {
    name: String,
    start: usize,
    end: usize,
}

/// `sql` with every reference to column `from` pointed at `to` instead: for copying a check
/// or index definition onto a shadow column. Qualified names (`t.col`) and function calls are
/// left alone.
pub fn rename_column_refs(sql: &str, from: &str, to: &str) -> String {
    replace_column_refs(sql, from, &crate::ident::quote_ident(to))
}

/// `sql` with every unqualified reference to column `from` (not a function call) replaced by
/// the text `with`.
fn replace_column_refs(sql: &str, from: &str, with: &str) -> String {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::new();
    let mut at = 0;
    for span in identifier_spans(sql) {
        let qualified = span.start > 0 && chars[span.start - 1] == '.';
        let call = chars[span.end..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
        if span.name == from && !qualified && !call {
            out.extend(&chars[at..span.start]);
            out.push_str(with);
            at = span.end;
        }
    }
    out.extend(&chars[at..]);
    out
}

/// Functions whose value differs per row: as a column default they make PostgreSQL fill
/// every existing row, rewriting the table under ACCESS EXCLUSIVE.
pub const VOLATILE_FUNCTIONS: &[&str] = &[
    "random",
    "clock_timestamp",
    "timeofday",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "uuidv4",
    "uuidv7",
    "nextval",
    "txid_current",
];

/// Whether `sql` calls one of [`VOLATILE_FUNCTIONS`] (schema-qualified or not).
pub fn calls_volatile_function(sql: &str) -> bool {
    let chars: Vec<char> = sql.chars().collect();
    identifier_spans(sql).iter().any(|span| {
        let call = chars[span.end..].iter().find(|c| !c.is_whitespace()) == Some(&'(');
        call && VOLATILE_FUNCTIONS.contains(&span.name.as_str())
    })
}

/// `sql` with every reference to column `from` replaced by the expression `expr`, in
/// parentheses: for chaining two operations' `up` on one column (the later one reads what the
/// earlier one computed). Qualified names and function calls are left alone.
pub fn substitute_column(sql: &str, from: &str, expr: &str) -> String {
    replace_column_refs(sql, from, &format!("({expr})"))
}

/// `sql` with several column references renamed at once (`a→b` and `b→a` swap correctly).
pub fn rename_column_refs_all(sql: &str, renames: &[(String, String)]) -> String {
    let temp = |i: usize| format!("\u{1}tandem{i}\u{1}");
    let staged = renames
        .iter()
        .enumerate()
        .fold(sql.to_string(), |s, (i, (from, _))| {
            rename_column_refs(&s, from, &temp(i))
        });
    renames.iter().enumerate().fold(staged, |s, (i, (_, to))| {
        s.replace(
            &crate::ident::quote_ident(&temp(i)),
            &crate::ident::quote_ident(to),
        )
    })
}

fn identifier_spans(sql: &str) -> Vec<Span> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            i = skip_quoted(&chars, i, '\'');
        } else if c == '"' {
            let end = skip_quoted(&chars, i, '"');
            let inner: String = chars[i + 1..end.saturating_sub(1).max(i + 1)]
                .iter()
                .collect();
            out.push(Span {
                name: inner.replace("\"\"", "\""),
                start: i,
                end,
            });
            i = end;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i = skip_block_comment(&chars, i);
        } else if c == '$' {
            i = skip_dollar(&chars, i);
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            out.push(Span {
                name: word.to_lowercase(),
                start,
                end: i,
            });
        } else {
            i += 1;
        }
    }
    out
}

/// Index just past the closing quote (a doubled quote does not close).
fn skip_quoted(chars: &[char], start: usize, quote: char) -> usize {
    let mut i = start + 1;
    while i < chars.len() {
        if chars[i] == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

fn skip_block_comment(chars: &[char], start: usize) -> usize {
    let mut i = start + 2;
    while i + 1 < chars.len() {
        if chars[i] == '*' && chars[i + 1] == '/' {
            return i + 2;
        }
        i += 1;
    }
    chars.len()
}

/// Skips `$tag$ ... $tag$`; a lone `$` (a parameter like `$1`) is stepped over.
fn skip_dollar(chars: &[char], start: usize) -> usize {
    let mut i = start + 1;
    while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
        i += 1;
    }
    if chars.get(i) != Some(&'$')
        || chars[start + 1..i]
            .first()
            .is_some_and(|c| c.is_ascii_digit())
    {
        return start + 1;
    }
    let tag: Vec<char> = chars[start..=i].to_vec();
    let mut j = i + 1;
    while j + tag.len() <= chars.len() {
        if chars[j..j + tag.len()] == tag[..] {
            return j + tag.len();
        }
        j += 1;
    }
    chars.len()
}

#[cfg(test)]
mod tests {
    use super::{identifiers, rename_column_refs};

    #[test]
    fn renames_bare_references_only() {
        assert_eq!(
            rename_column_refs(
                "CHECK ((price > 0) AND (t.price < 9) AND price(1) = 'price')",
                "price",
                "_tandem_new_price"
            ),
            "CHECK ((\"_tandem_new_price\" > 0) AND (t.price < 9) AND price(1) = 'price')"
        );
        assert_eq!(
            rename_column_refs("(\"Name\" <> '')", "Name", "x"),
            "(\"x\" <> '')"
        );
    }

    #[test]
    fn finds_names_and_skips_literals_and_comments() {
        let ids = identifiers(
            "UPPER(Name) || 'x ''y'' z' || \"Full \"\"N\"\"\" -- note\n /* c */ $q$ w $q$ || $1",
        );
        assert_eq!(ids, vec!["upper", "name", "Full \"N\""]);
    }
}
