//! Model answers read back: models put structured answers (JSON, HTML, Markdown) inside a
//! Markdown code fence, with prose around it.

/// The text inside the first ```` ``` ```` fence of `s` (its language line dropped; an unclosed
/// fence runs to the end), or all of `s` when it has none; trimmed.
pub fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    let Some(open) = t.find("```") else { return t };
    let after = &t[open + 3..];
    let body = after.split_once('\n').map_or(after, |(_, rest)| rest);
    body.find("```").map_or(body, |close| &body[..close]).trim()
}

#[cfg(test)]
mod tests {
    use super::strip_fence;

    #[test]
    fn fences_with_and_without_language_and_end() {
        assert_eq!(strip_fence("Sure:\n```json\n[1]\n```\nbye"), "[1]");
        assert_eq!(strip_fence("```\nx\n"), "x");
        assert_eq!(strip_fence("  plain  "), "plain");
    }
}
