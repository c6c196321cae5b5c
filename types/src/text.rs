//! Text that came from a server (or a plugin) made safe to show a person: control characters
//! (escape sequences, line breaks that forge table rows) and bidirectional overrides (which make
//! text read differently from what it is) are written as `\u{..}` escapes.

use std::borrow::Cow;

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// The text with every control character and bidirectional control escaped.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if needs_escape(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_forge_or_reorder_output() {
        assert_eq!(printable("7000777"), "7000777");
        assert_eq!(printable("jörg@bücher.example"), "jörg@bücher.example");
        assert_eq!(printable("id\u{1b}[31m\nzpa  mallory  added"), "id\\u{1b}[31m\\u{a}zpa  mallory  added");
        assert_eq!(printable("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        assert_eq!(printable("a\u{2066}b\u{7f}c\u{85}"), "a\\u{2066}b\\u{7f}c\\u{85}");
    }
}
