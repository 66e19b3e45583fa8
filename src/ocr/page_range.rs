//! Which pages to read: `--pages 1-5,8,12-` (1-based, as printed on a PDF viewer's page field).

/// A page selection; empty means every page.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PageRange {
    /// Inclusive ranges; `None` as the end reads to the last page.
    pub spans: Vec<(usize, Option<usize>)>,
}

impl PageRange {
    /// Parses `1-5,8,12-`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let bad = |part: &str, why: &str| format!("pages {s:?}: {part:?} {why} (write e.g. 1-5,8,12-)");
        let mut spans = Vec::new();
        for part in s.split(',').map(str::trim) {
            let num = |t: &str| -> Result<usize, String> {
                match t.trim().parse::<usize>() {
                    Ok(0) => Err(bad(part, "counts from 0; pages start at 1")),
                    Ok(n) => Ok(n),
                    Err(_) => Err(bad(part, "is not a page number or range")),
                }
            };
            let span = match part.split_once('-') {
                Some((a, b)) if b.trim().is_empty() => (num(a)?, None),
                Some((a, b)) => (num(a)?, Some(num(b)?)),
                None => (num(part)?, Some(num(part)?)),
            };
            if let (a, Some(b)) = span {
                if b < a {
                    return Err(bad(part, "ends before it starts"));
                }
            }
            spans.push(span);
        }
        Ok(Self { spans })
    }

    /// The selected pages of a `count`-page document, ascending, each once; an error when the
    /// selection names no page of it.
    pub fn pages_of(&self, count: usize) -> Result<Vec<usize>, String> {
        if self.spans.is_empty() {
            return Ok((1..=count).collect());
        }
        let mut pages: Vec<usize> = self.spans.iter().flat_map(|&(a, b)| a..=b.unwrap_or(count).min(count)).collect();
        pages.sort_unstable();
        pages.dedup();
        if pages.is_empty() {
            return Err(format!("the selected pages are past the end: the document has {count} page(s)"));
        }
        Ok(pages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse_and_clip_to_the_document() {
        let r = PageRange::parse("8, 1-3,2-4, 12-").unwrap();
        assert_eq!(r.pages_of(13).unwrap(), [1, 2, 3, 4, 8, 12, 13]);
        assert_eq!(r.pages_of(3).unwrap(), [1, 2, 3]);
        assert_eq!(PageRange::default().pages_of(2).unwrap(), [1, 2]);
        assert!(PageRange::parse("5-9").unwrap().pages_of(3).unwrap_err().contains("3 page(s)"));
        assert!(PageRange::parse("0-2").unwrap_err().contains("pages start at 1"));
        assert!(PageRange::parse("4-2").unwrap_err().contains("ends before it starts"));
        assert!(PageRange::parse("a").unwrap_err().contains("not a page number"));
    }
}
