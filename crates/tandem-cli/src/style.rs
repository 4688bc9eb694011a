//! Colours for human output, written as ANSI codes by hand: only when the stream is a
//! terminal and `NO_COLOR` is unset or empty (<https://no-color.org>), and never for `TERM=dumb`.

use std::io::IsTerminal;

/// Whether to colour one output stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint {
    on: bool,
}

impl Paint {
    pub fn stdout() -> Paint {
        Paint::when(std::io::stdout().is_terminal())
    }

    pub fn stderr() -> Paint {
        Paint::when(std::io::stderr().is_terminal())
    }

    /// Colours when `terminal` and the environment allows it.
    fn when(terminal: bool) -> Paint {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Paint {
            on: terminal && !no_color && !dumb,
        }
    }

    /// Never colours (JSON output, tests).
    #[cfg(test)]
    pub fn off() -> Paint {
        Paint { on: false }
    }

    #[cfg(test)]
    pub fn on() -> Paint {
        Paint { on: true }
    }

    fn wrap(self, code: &str, text: &str) -> String {
        if self.on && !text.is_empty() {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.wrap("1", text)
    }
    pub fn dim(self, text: &str) -> String {
        self.wrap("2", text)
    }
    pub fn red(self, text: &str) -> String {
        self.wrap("1;31", text)
    }
    pub fn green(self, text: &str) -> String {
        self.wrap("32", text)
    }
    pub fn yellow(self, text: &str) -> String {
        self.wrap("33", text)
    }
    pub fn cyan(self, text: &str) -> String {
        self.wrap("36", text)
    }
}

/// `text` left-aligned in `width` columns, then painted: padding first, so colour codes never
/// upset the alignment.
pub fn pad(text: &str, width: usize, paint: impl Fn(&str) -> String) -> String {
    let fill = width.saturating_sub(text.chars().count());
    format!("{}{}", paint(text), " ".repeat(fill))
}

/// An error for stderr: `error:` in red, hint lines in cyan.
pub fn error_text(message: &str, paint: Paint) -> String {
    let mut out = String::new();
    for (i, line) in message.lines().enumerate() {
        if i == 0 {
            out.push_str(&format!("{} {line}", paint.red("error:")));
        } else if let Some(hint) = line.trim_start().strip_prefix("hint:") {
            let indent = &line[..line.len() - line.trim_start().len()];
            out.push_str(&format!("\n{indent}{}{hint}", paint.cyan("hint:")));
        } else {
            out.push_str(&format!("\n{line}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_only_when_on() {
        assert_eq!(Paint::off().red("x"), "x");
        assert_eq!(Paint::on().red("x"), "\x1b[1;31mx\x1b[0m");
        assert_eq!(Paint::on().green(""), "");
    }

    #[test]
    fn padding_ignores_colour_codes() {
        assert_eq!(pad("ab", 4, |s| Paint::on().bold(s)), "\x1b[1mab\x1b[0m  ");
        assert_eq!(pad("abcdef", 4, |s| s.to_string()), "abcdef");
    }

    #[test]
    fn errors_colour_the_prefix_and_hints() {
        let text = "bad thing\n  detail\n  hint: do this";
        assert_eq!(
            error_text(text, Paint::off()),
            "error: bad thing\n  detail\n  hint: do this"
        );
        assert_eq!(
            error_text(text, Paint::on()),
            "\x1b[1;31merror:\x1b[0m bad thing\n  detail\n  \x1b[36mhint:\x1b[0m do this"
        );
    }
}
