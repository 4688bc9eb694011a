//! Identifier and literal quoting, and generated names that fit PostgreSQL's limits.
//!
//! Every identifier that reaches SQL goes through [`quote_ident`]; every value that is not a bind
//! parameter goes through [`quote_literal`]. Nothing else in the code base splices names.

/// PostgreSQL truncates identifiers longer than this many bytes (NAMEDATALEN - 1).
pub const MAX_IDENT_BYTES: usize = 63;

/// Quotes an identifier unconditionally, so upper case, spaces, quotes and reserved words all work.
pub fn quote_ident(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    out.push('"');
    for c in name.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `"schema"."name"`.
pub fn qualified(schema: &str, name: &str) -> String {
    format!("{}.{}", quote_ident(schema), quote_ident(name))
}

/// A string literal that is correct whatever `standard_conforming_strings` is set to.
pub fn quote_literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 3);
    if value.contains('\\') {
        out.push('E');
    }
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("''"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// A dollar-quoted body whose tag does not occur inside it, for function bodies that embed
/// user-written SQL expressions.
pub fn dollar_quote(body: &str) -> String {
    let mut n = 0u32;
    loop {
        let tag = if n == 0 {
            "$tandem$".to_string()
        } else {
            format!("$tandem{n}$")
        };
        if !body.contains(&tag) {
            return format!("{tag}{body}{tag}");
        }
        n += 1;
    }
}

/// Joins `parts` with `_` and, when the result is longer than 63 bytes, truncates it on a char
/// boundary and appends a hash of the full name, so distinct long names stay distinct.
pub fn bounded_name(parts: &[&str]) -> String {
    let full = parts.join("_");
    if full.len() <= MAX_IDENT_BYTES {
        return full;
    }
    let suffix = format!("_{:012x}", fnv1a64(full.as_bytes()) & 0xffff_ffff_ffff);
    let mut cut = MAX_IDENT_BYTES - suffix.len();
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &full[..cut], suffix)
}

fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotes_identifiers_and_literals() {
        assert_eq!(quote_ident("Order \"x\""), "\"Order \"\"x\"\"\"");
        assert_eq!(quote_ident("select"), "\"select\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(qualified("public", "T"), "\"public\".\"T\"");
    }

    #[test]
    fn dollar_quote_avoids_tags_in_the_body() {
        assert_eq!(dollar_quote("x"), "$tandem$x$tandem$");
        assert_eq!(dollar_quote("$tandem$"), "$tandem1$$tandem$$tandem1$");
    }

    proptest! {
        #[test]
        fn bounded_names_fit_and_do_not_collide(a in "\\PC{0,80}", b in "\\PC{0,80}") {
            let na = bounded_name(&["_tandem_new", &a]);
            let nb = bounded_name(&["_tandem_new", &b]);
            prop_assert!(na.len() <= MAX_IDENT_BYTES);
            prop_assert!(nb.len() <= MAX_IDENT_BYTES);
            if a != b {
                prop_assert_ne!(na, nb);
            }
        }

        #[test]
        fn short_names_are_kept_verbatim(a in "[a-z_]{1,40}") {
            prop_assert_eq!(bounded_name(&["_tandem", &a]), format!("_tandem_{a}"));
        }
    }
}
