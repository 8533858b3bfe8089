//! The baseline for benchmarks: one full regex pass per kind, then overlap resolution. Same
//! recognizers and validators as [`crate::Scanner`], so only the scanning strategy differs.

use crate::kind::PiiKind;
use crate::recognizer::Recognizer;
use crate::recognizers;
use crate::scanner::{build, Finding};
use regex::Regex;

/// Scans the text once per kind; kept only to measure what the single-pass scanner saves.
pub struct NaiveScanner {
    passes: Vec<(Box<dyn Recognizer>, Regex)>,
}

impl NaiveScanner {
    /// One regex per built-in kind, in the given order.
    pub fn new(kinds: &[PiiKind]) -> Result<NaiveScanner, regex::Error> {
        let passes = kinds
            .iter()
            .filter_map(recognizers::built_in)
            .map(|r| build(r.pattern()).map(|re| (r, re)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NaiveScanner { passes })
    }

    /// All confirmed values; where two kinds overlap the earlier-starting one wins.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut all = Vec::new();
        for (priority, (rec, re)) in self.passes.iter().enumerate() {
            for m in re.find_iter(text) {
                if let Some(c) = rec.confirm(text, m.range()) {
                    all.push((
                        c.span.start,
                        priority,
                        Finding {
                            kind: rec.kind(),
                            span: c.span,
                            label: c.label,
                        },
                    ));
                }
            }
        }
        all.sort_by_key(|(start, priority, _)| (*start, *priority));
        let mut out: Vec<Finding> = Vec::new();
        for (_, _, f) in all {
            if out.last().is_none_or(|last| f.span.start >= last.span.end) {
                out.push(f);
            }
        }
        out
    }
}
