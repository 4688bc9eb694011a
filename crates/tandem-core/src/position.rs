//! Maps a JSON Pointer back to a line and column in the migration file's text.
//!
//! Parsers hand us a `serde_json::Value`, which has no positions, so problems found on the value
//! are located again by scanning the text. Two small scanners do it: one for flow syntax (all of
//! JSON, and YAML's `[...]`/`{...}`), one for block-style YAML as migration files use it. They
//! are best effort: anything they do not understand gives `None`, never a wrong guess on
//! purpose and never a panic, since they also run on files that failed to parse.

use crate::load::Format;

/// Deeper nesting than this is not a migration file; the limit keeps recursion off the stack's
/// edge on hostile input.
const MAX_DEPTH: usize = 256;

/// 1-based line and column (in characters) of the value at `pointer`; for an object member,
/// the position of its key.
pub fn locate(text: &str, format: Format, pointer: &str) -> Option<(usize, usize)> {
    let tokens = parse_pointer(pointer)?;
    let offset = match format {
        Format::Json => {
            let start = skip_space(text.as_bytes(), 0, false);
            Flow::new(text, false).find(start, &tokens, 0)?
        }
        Format::Yaml => Yaml::new(text).locate(&tokens)?,
    };
    line_column(text, offset)
}

/// RFC 6901 reference tokens; `None` for a string that is not a pointer.
fn parse_pointer(pointer: &str) -> Option<Vec<String>> {
    if pointer.is_empty() {
        return Some(Vec::new());
    }
    let rest = pointer.strip_prefix('/')?;
    Some(
        rest.split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect(),
    )
}

fn line_column(text: &str, offset: usize) -> Option<(usize, usize)> {
    let before = text.get(..offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..)?.chars().count() + 1;
    Some((line, column))
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Skips white space and, in YAML, `#` comments.
fn skip_space(bytes: &[u8], mut i: usize, comments: bool) -> usize {
    while i < bytes.len() {
        if is_space(bytes[i]) {
            i += 1;
        } else if comments && bytes[i] == b'#' {
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
        } else {
            break;
        }
    }
    i
}

/// End (exclusive) of the quoted string starting at `i`. Double quotes use backslash escapes;
/// YAML single quotes escape themselves by doubling.
fn quoted_end(bytes: &[u8], i: usize) -> Option<usize> {
    let quote = *bytes.get(i)?;
    let mut j = i + 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' if quote == b'"' => j += 2,
            b if b == quote => {
                if quote == b'\'' && bytes.get(j + 1) == Some(&b'\'') {
                    j += 2;
                } else {
                    return Some(j + 1);
                }
            }
            _ => j += 1,
        }
    }
    None
}

/// The text of a quoted string, unescaped well enough to compare with a pointer token.
fn unquote(raw: &str) -> Option<String> {
    if let Some(inner) = raw.strip_prefix('\'').and_then(|r| r.strip_suffix('\'')) {
        return Some(inner.replace("''", "'"));
    }
    // JSON's escapes are a subset of YAML's double-quoted ones, which is all keys use.
    serde_json::from_str::<String>(raw).ok()
}

/// Scanner for flow syntax: JSON, and YAML flow collections (which also allow plain scalars,
/// single quotes and comments).
struct Flow<'a> {
    text: &'a str,
    bytes: &'a [u8],
    yaml: bool,
}

impl<'a> Flow<'a> {
    fn new(text: &'a str, yaml: bool) -> Self {
        Flow {
            text,
            bytes: text.as_bytes(),
            yaml,
        }
    }

    fn space(&self, i: usize) -> usize {
        skip_space(self.bytes, i, self.yaml)
    }

    /// Offset of the value at `tokens` inside the value starting at `i`.
    fn find(&self, i: usize, tokens: &[String], depth: usize) -> Option<usize> {
        let Some((token, rest)) = tokens.split_first() else {
            return Some(i);
        };
        if depth > MAX_DEPTH {
            return None;
        }
        match self.bytes.get(i)? {
            b'{' => self.find_member(i + 1, token, rest, depth),
            b'[' => self.find_item(i + 1, token.parse().ok()?, rest, depth),
            _ => None,
        }
    }

    fn find_member(
        &self,
        mut i: usize,
        token: &str,
        rest: &[String],
        depth: usize,
    ) -> Option<usize> {
        loop {
            i = self.space(i);
            if *self.bytes.get(i)? == b'}' {
                return None;
            }
            let (key, key_end) = self.key(i)?;
            let mut j = self.space(key_end);
            let has_value = self.bytes.get(j) == Some(&b':');
            if has_value {
                j = self.space(j + 1);
            }
            if key == token {
                return if rest.is_empty() {
                    Some(i)
                } else if has_value {
                    self.find(j, rest, depth + 1)
                } else {
                    None
                };
            }
            if has_value {
                j = self.space(self.value_end(j)?);
            }
            match *self.bytes.get(j)? {
                b',' => i = j + 1,
                _ => return None,
            }
        }
    }

    fn find_item(
        &self,
        mut i: usize,
        index: usize,
        rest: &[String],
        depth: usize,
    ) -> Option<usize> {
        let mut n = 0;
        loop {
            i = self.space(i);
            if *self.bytes.get(i)? == b']' {
                return None;
            }
            if n == index {
                return self.find(i, rest, depth + 1);
            }
            let j = self.space(self.value_end(i)?);
            match *self.bytes.get(j)? {
                b',' => i = j + 1,
                _ => return None,
            }
            n += 1;
        }
    }

    /// A member's key and the offset just past it.
    fn key(&self, i: usize) -> Option<(String, usize)> {
        match *self.bytes.get(i)? {
            b'"' | b'\'' => {
                let end = quoted_end(self.bytes, i)?;
                Some((unquote(self.text.get(i..end)?)?, end))
            }
            _ if self.yaml => {
                let end = self.plain_end(i, true);
                Some((self.text.get(i..end)?.trim_end().to_string(), end))
            }
            _ => None,
        }
    }

    /// End of a plain scalar in flow context; a key also stops at `: `.
    fn plain_end(&self, mut i: usize, key: bool) -> usize {
        let b = self.bytes;
        while i < b.len() {
            match b[i] {
                b',' | b']' | b'}' | b'\n' => break,
                b'#' if i > 0 && is_space(b[i - 1]) => break,
                b':' if key && b.get(i + 1).is_none_or(|&c| is_space(c) || c == b',') => break,
                _ => i += 1,
            }
        }
        i
    }

    /// End (exclusive) of the value starting at `i`.
    fn value_end(&self, i: usize) -> Option<usize> {
        match *self.bytes.get(i)? {
            b'"' => quoted_end(self.bytes, i),
            b'\'' if self.yaml => quoted_end(self.bytes, i),
            b'{' | b'[' => self.collection_end(i),
            _ if self.yaml => Some(self.plain_end(i, false)),
            _ => {
                let mut j = i;
                while j < self.bytes.len() && !matches!(self.bytes[j], b',' | b']' | b'}') {
                    j += 1;
                }
                Some(j)
            }
        }
    }

    /// End of a bracketed collection, found by counting brackets outside strings; iterative so
    /// deep nesting cannot exhaust the stack.
    fn collection_end(&self, start: usize) -> Option<usize> {
        let b = self.bytes;
        let mut depth = 0usize;
        let mut i = start;
        // A quote opens a string only where a scalar may start: `don't` is a plain scalar.
        let mut at_scalar_start = true;
        while i < b.len() {
            let c = b[i];
            match c {
                b'"' | b'\'' if at_scalar_start && (c == b'"' || self.yaml) => {
                    i = quoted_end(b, i)?;
                    at_scalar_start = false;
                    continue;
                }
                b'#' if self.yaml && (i == 0 || is_space(b[i - 1])) => {
                    while i < b.len() && b[i] != b'\n' {
                        i += 1;
                    }
                    continue;
                }
                b'[' | b'{' => depth += 1,
                b']' | b'}' => {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(i + 1);
                    }
                }
                _ => {}
            }
            at_scalar_start =
                matches!(c, b'[' | b'{' | b',' | b':') || (is_space(c) && at_scalar_start);
            i += 1;
        }
        None
    }
}

/// A block-YAML node and where it starts.
enum Node {
    Map(Vec<(String, usize, Node)>),
    Seq(Vec<(usize, Node)>),
    /// A flow collection, scanned on demand by [`Flow`].
    Flow(usize),
    Leaf,
}

/// One line of the file: where it starts and how far it is indented.
struct Line {
    start: usize,
    end: usize,
    indent: usize,
}

struct Yaml<'a> {
    text: &'a str,
    bytes: &'a [u8],
    lines: Vec<Line>,
}

/// The result of parsing a node: the node, where it starts, and the first line after it.
type Parsed = (Node, usize, usize);

impl<'a> Yaml<'a> {
    fn new(text: &'a str) -> Self {
        let mut lines = Vec::new();
        let mut start = 0;
        for piece in text.split_inclusive('\n') {
            let end = start + piece.trim_end_matches(['\n', '\r']).len();
            let indent = piece.bytes().take_while(|&b| b == b' ').count();
            lines.push(Line { start, end, indent });
            start += piece.len();
        }
        Yaml {
            text,
            bytes: text.as_bytes(),
            lines,
        }
    }

    fn locate(&self, tokens: &[String]) -> Option<usize> {
        let Some(first) = self.document_start() else {
            // A file of comments is an empty document, which starts where the file does.
            return tokens.is_empty().then_some(0);
        };
        let line = &self.lines[first];
        let (node, at, _) = self.block(first, line.start + line.indent, 0, 0)?;
        if tokens.is_empty() {
            return Some(at);
        }
        self.walk(&node, tokens)
    }

    /// Offset of the value at the non-empty `tokens` inside `node`.
    fn walk(&self, node: &Node, tokens: &[String]) -> Option<usize> {
        let (token, rest) = tokens.split_first()?;
        let (at, child) = match node {
            Node::Map(entries) => {
                // serde keeps the last of duplicate keys, so the position should too.
                let (_, key_at, child) = entries.iter().rev().find(|(k, _, _)| k == token)?;
                (*key_at, child)
            }
            Node::Seq(items) => {
                let (item_at, child) = items.get(token.parse::<usize>().ok()?)?;
                (*item_at, child)
            }
            Node::Flow(start) => return Flow::new(self.text, true).find(*start, tokens, 0),
            Node::Leaf => return None,
        };
        if rest.is_empty() {
            Some(at)
        } else {
            self.walk(child, rest)
        }
    }

    /// The first line with content, past `---` and directives.
    fn document_start(&self) -> Option<usize> {
        let mut i = self.next_content(0)?;
        loop {
            let content = self.content(i);
            let marker = content == "---" || content.starts_with("--- ");
            if !(marker || content.starts_with('%')) {
                return Some(i);
            }
            if marker && content.len() > 4 {
                return None; // a node on the `---` line itself: not worth the trouble
            }
            i = self.next_content(i + 1)?;
        }
    }

    /// The line's text after its indentation.
    fn content(&self, line: usize) -> &'a str {
        let l = &self.lines[line];
        self.text.get(l.start + l.indent..l.end).unwrap_or("")
    }

    /// The first line at or after `line` that is neither blank nor only a comment.
    fn next_content(&self, mut line: usize) -> Option<usize> {
        while line < self.lines.len() {
            let c = self.content(line).trim_start();
            if !c.is_empty() && !c.starts_with('#') {
                return Some(line);
            }
            line += 1;
        }
        None
    }

    fn line_of(&self, offset: usize) -> usize {
        self.lines
            .partition_point(|l| l.start <= offset)
            .saturating_sub(1)
    }

    fn column(&self, offset: usize) -> usize {
        offset - self.lines[self.line_of(offset)].start
    }

    /// Parses the block node starting at byte offset `at` on `line`; a scalar there continues
    /// on lines indented past `owner`, the column of the key or dash it belongs to.
    fn block(&self, line: usize, at: usize, owner: usize, depth: usize) -> Option<Parsed> {
        if depth > MAX_DEPTH {
            return None;
        }
        let rest = self.text.get(at..self.lines[line].end)?;
        if rest == "-" || rest.starts_with("- ") {
            self.sequence(line, at, depth)
        } else if rest.starts_with('[') || rest.starts_with('{') {
            let end = Flow::new(self.text, true).collection_end(at)?;
            Some((Node::Flow(at), at, self.line_of(end.saturating_sub(1)) + 1))
        } else if self.key_end(at, line).is_some() {
            self.mapping(line, at, depth)
        } else {
            Some((Node::Leaf, at, self.scalar_end(line, at, owner)))
        }
    }

    fn sequence(&self, mut line: usize, at: usize, depth: usize) -> Option<Parsed> {
        let column = self.column(at);
        let mut items = Vec::new();
        let mut dash = at;
        loop {
            let after = skip_inline_space(self.bytes, dash + 1, self.lines[line].end);
            let (child, child_at, next) =
                if after >= self.lines[line].end || self.bytes[after] == b'#' {
                    self.nested(line + 1, column, dash, false, depth)?
                } else {
                    self.block(line, after, column, depth + 1)?
                };
            items.push((child_at, child));
            match self.next_content(next) {
                Some(n) if self.lines[n].indent == column && is_dash(self.content(n)) => {
                    line = n;
                    dash = self.lines[n].start + column;
                }
                n => return Some((Node::Seq(items), at, n.unwrap_or(self.lines.len()))),
            }
        }
    }

    fn mapping(&self, mut line: usize, at: usize, depth: usize) -> Option<Parsed> {
        let column = self.column(at);
        let mut entries = Vec::new();
        let mut key_at = at;
        loop {
            let (key, colon) = self.key_end(key_at, line)?;
            let value_at = skip_inline_space(self.bytes, colon + 1, self.lines[line].end);
            let value_at = skip_properties(self.bytes, value_at, self.lines[line].end);
            let (child, next) = self.map_value(line, column, key_at, value_at, depth)?;
            entries.push((key, key_at, child));
            match self.next_content(next) {
                Some(n) if self.lines[n].indent == column && !is_dash(self.content(n)) => {
                    line = n;
                    key_at = self.lines[n].start + column;
                }
                n => return Some((Node::Map(entries), at, n.unwrap_or(self.lines.len()))),
            }
        }
    }

    /// The value of a `key:` whose text (if any) starts at `value_at` on `line`.
    fn map_value(
        &self,
        line: usize,
        column: usize,
        key_at: usize,
        value_at: usize,
        depth: usize,
    ) -> Option<(Node, usize)> {
        let end = self.lines[line].end;
        if value_at >= end || self.bytes[value_at] == b'#' {
            let (child, _, next) = self.nested(line + 1, column, key_at, true, depth)?;
            return Some((child, next));
        }
        if matches!(self.bytes[value_at], b'[' | b'{') {
            let (child, _, next) = self.block(line, value_at, column, depth + 1)?;
            return Some((child, next));
        }
        // Plain, quoted and block (`|`, `>`) scalars all end where the indentation does.
        Some((Node::Leaf, self.scalar_end(line, value_at, column)))
    }

    /// A node on the lines after a `key:` or `-` with nothing after it. A mapping's value may be
    /// a sequence at the key's own indentation.
    fn nested(
        &self,
        line: usize,
        parent: usize,
        owner: usize,
        in_map: bool,
        depth: usize,
    ) -> Option<Parsed> {
        let Some(n) = self.next_content(line) else {
            return Some((Node::Leaf, owner, self.lines.len()));
        };
        let indent = self.lines[n].indent;
        let compact_seq = in_map && indent == parent && is_dash(self.content(n));
        if indent > parent || compact_seq {
            self.block(n, self.lines[n].start + indent, parent, depth + 1)
        } else {
            Some((Node::Leaf, owner, n))
        }
    }

    /// The first line after a scalar starting at `at`: quoted scalars may span lines, and plain
    /// or block scalars continue on lines indented past the owner's `column`.
    fn scalar_end(&self, line: usize, at: usize, column: usize) -> usize {
        let mut last = line;
        if matches!(self.bytes.get(at), Some(b'"' | b'\'')) {
            if let Some(end) = quoted_end(self.bytes, at) {
                last = self.line_of(end.saturating_sub(1));
            }
        }
        let mut n = last + 1;
        while n < self.lines.len() {
            let blank = self.content(n).trim().is_empty();
            if !blank && self.lines[n].indent <= column {
                break;
            }
            n += 1;
        }
        n
    }

    /// The key of a `key: value` line starting at `at`, and the offset of its colon.
    fn key_end(&self, at: usize, line: usize) -> Option<(String, usize)> {
        let end = self.lines[line].end;
        let b = self.bytes;
        let first = *b.get(at)?;
        if matches!(first, b'"' | b'\'') {
            let close = quoted_end(b, at).filter(|&c| c <= end)?;
            let colon = skip_inline_space(b, close, end);
            return (b.get(colon) == Some(&b':') && ends_indicator(b, colon + 1, end))
                .then(|| Some((unquote(self.text.get(at..close)?)?, colon)))?;
        }
        if matches!(
            first,
            b'#' | b'[' | b'{' | b'|' | b'>' | b'?' | b'&' | b'*' | b'!' | b'%' | b'@' | b'`'
        ) {
            return None;
        }
        let mut i = at;
        while i < end {
            match b[i] {
                b'#' if i > at && is_space(b[i - 1]) => return None,
                b':' if ends_indicator(b, i + 1, end) => {
                    let key = self.text.get(at..i)?.trim_end().to_string();
                    return Some((key, i));
                }
                _ => i += 1,
            }
        }
        None
    }
}

fn is_dash(content: &str) -> bool {
    content == "-" || content.starts_with("- ")
}

/// Whether a `:` or `-` indicator is followed by white space or the end of the line.
fn ends_indicator(bytes: &[u8], i: usize, end: usize) -> bool {
    i >= end || is_space(bytes[i])
}

fn skip_inline_space(bytes: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && matches!(bytes[i], b' ' | b'\t') {
        i += 1;
    }
    i
}

/// Skips an anchor (`&a`) or tag (`!!str`) before a value: they do not change where it is.
fn skip_properties(bytes: &[u8], mut i: usize, end: usize) -> usize {
    while i < end && matches!(bytes[i], b'&' | b'!') {
        while i < end && !is_space(bytes[i]) {
            i += 1;
        }
        i = skip_inline_space(bytes, i, end);
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "\
# a comment
operations:
  - add_column:
      table: users
      column:
        name: email   # trailing
        type: text
        nullable: \"yes\"
  - sql:
      up: |
        SELECT 1;
        SELECT 2;
      down: 'it''s'
  -   create_index:
        name: idx
        columns: [a, {column: b, sort: DESC}]
  - drop_table:
      name: x
    rename_table: {from: a, to: b}
tail:
- one
- 'two: three'
";

    fn y(pointer: &str) -> Option<(usize, usize)> {
        locate(YAML, Format::Yaml, pointer)
    }

    #[test]
    fn yaml_block_mappings_and_sequences() {
        assert_eq!(y(""), Some((2, 1)));
        assert_eq!(y("/operations"), Some((2, 1)));
        assert_eq!(y("/operations/0"), Some((3, 5)));
        assert_eq!(y("/operations/0/add_column"), Some((3, 5)));
        assert_eq!(y("/operations/0/add_column/column/name"), Some((6, 9)));
        assert_eq!(y("/operations/0/add_column/column/nullable"), Some((8, 9)));
        assert_eq!(y("/operations/1/sql/down"), Some((13, 7)));
        assert_eq!(y("/operations/2/create_index/name"), Some((15, 9)));
        assert_eq!(y("/operations/3/rename_table"), Some((19, 5)));
        assert_eq!(y("/tail/1"), Some((22, 3)));
    }

    #[test]
    fn yaml_flow_collections_are_scanned() {
        assert_eq!(y("/operations/2/create_index/columns"), Some((16, 9)));
        assert_eq!(y("/operations/2/create_index/columns/1"), Some((16, 22)));
        assert_eq!(
            y("/operations/2/create_index/columns/1/sort"),
            Some((16, 34))
        );
        assert_eq!(y("/operations/3/rename_table/to"), Some((19, 29)));
    }

    #[test]
    fn yaml_missing_paths_are_none() {
        assert_eq!(y("/operations/9"), None);
        assert_eq!(y("/operations/0/add_column/nope"), None);
        assert_eq!(y("/operations/1/sql/up/x"), None);
        assert_eq!(y("no-slash"), None);
    }

    #[test]
    fn yaml_compact_sequence_under_key() {
        let text = "operations:\n- sql:\n    up: a\n- sql:\n    up: b\nname: n\n";
        assert_eq!(
            locate(text, Format::Yaml, "/operations/1/sql/up"),
            Some((5, 5))
        );
        assert_eq!(locate(text, Format::Yaml, "/name"), Some((6, 1)));
    }

    #[test]
    fn yaml_document_marker_and_quoted_keys() {
        let text = "---\n\"operations\":\n  - 'drop_index':\n      name: i\n";
        assert_eq!(
            locate(text, Format::Yaml, "/operations/0/drop_index/name"),
            Some((4, 7))
        );
    }

    #[test]
    fn json_members_items_and_escapes() {
        let text = "{\n  \"a\\\"b\": 1,\n  \"operations\": [\n    {\"sql\": {\"up\": \"x]}\"}},\n    {\"a/b\": [1, 2]}\n  ]\n}";
        let j = |p| locate(text, Format::Json, p);
        assert_eq!(j(""), Some((1, 1)));
        assert_eq!(j("/a\"b"), Some((2, 3)));
        assert_eq!(j("/operations/0/sql/up"), Some((4, 14)));
        assert_eq!(j("/operations/1"), Some((5, 5)));
        assert_eq!(j("/operations/1/a~1b/1"), Some((5, 17)));
        assert_eq!(j("/operations/2"), None);
    }

    #[test]
    fn columns_count_characters() {
        let text = "{\"é\": 1, \"b\": 2}";
        assert_eq!(locate(text, Format::Json, "/b"), Some((1, 10)));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(text in "\\PC*", pointer in "(/[a-z0-9~]{0,3}){0,4}") {
            let _ = locate(&text, Format::Yaml, &pointer);
            let _ = locate(&text, Format::Json, &pointer);
        }

        #[test]
        fn never_panics_on_syntax_soup(text in "[-:\\[\\]{},'\"#|> \\n\\\\a0]{0,80}", pointer in "(/[a0]{0,1}){0,4}") {
            let _ = locate(&text, Format::Yaml, &pointer);
            let _ = locate(&text, Format::Json, &pointer);
        }
    }
}
