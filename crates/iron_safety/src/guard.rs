//! A compiled scanner plus the actions of one direction: scans a text, records detections and
//! returns the redacted text.

use crate::audit::Tally;
use crate::kind::{Action, Direction, PiiKind};
use crate::policy::SafetyPolicy;
use crate::scanner::{Finding, Scanner};

/// The order kinds are tried in when candidates start at the same position.
pub const SCAN_ORDER: [PiiKind; 7] = [
    PiiKind::Secret,
    PiiKind::Email,
    PiiKind::Iban,
    PiiKind::CreditCard,
    PiiKind::UsSsn,
    PiiKind::IpAddress,
    PiiKind::Phone,
];

/// Scanner and actions for one direction; cheap to share behind an `Arc`.
pub struct TextGuard {
    direction: Direction,
    scanner: Scanner,
    actions: Vec<(PiiKind, Action)>,
}

impl TextGuard {
    /// Compiles the scanner for every kind whose action in `direction` is not `Off`.
    pub fn new(policy: &SafetyPolicy, direction: Direction) -> Result<TextGuard, regex::Error> {
        let dp = policy.direction(direction);
        let mut actions = Vec::new();
        let kinds: Vec<PiiKind> = SCAN_ORDER
            .iter()
            .filter(|k| dp.action(k, direction) != Action::Off)
            .cloned()
            .collect();
        let custom: Vec<(String, String)> = policy
            .custom
            .iter()
            .filter(|c| dp.action(&PiiKind::Custom(c.name.clone()), direction) != Action::Off)
            .map(|c| (c.name.clone(), c.pattern.clone()))
            .collect();
        let scanner = Scanner::new(&kinds, &custom)?;
        for kind in scanner.kinds() {
            let a = dp.action(&kind, direction);
            actions.push((kind, a));
        }
        Ok(TextGuard {
            direction,
            scanner,
            actions,
        })
    }

    /// Request or response.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The action for `kind` (`Off` when the kind is not scanned).
    pub fn action(&self, kind: &PiiKind) -> Action {
        self.actions
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(Action::Off, |(_, a)| *a)
    }

    /// The confirmed values in `text`.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        self.scanner.scan(text)
    }

    /// The confirmed values in `text` starting at or after byte `start`.
    pub fn scan_from(&self, text: &str, start: usize) -> Vec<Finding> {
        self.scanner.scan_from(text, start)
    }

    /// Scans `text`, records every value in `tally`, and returns the text with redact- and
    /// block-action values replaced by placeholders, or `None` when nothing was replaced.
    pub fn process(&self, text: &str, tally: &mut Tally) -> Option<String> {
        let findings = self.scanner.scan(text);
        self.apply(text, &findings, tally)
    }

    /// Records `findings` of `text` and applies their replacements (`None` when nothing changes).
    pub fn apply(&self, text: &str, findings: &[Finding], tally: &mut Tally) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        for f in findings {
            let Some(value) = text.get(f.span.clone()) else {
                continue;
            };
            let action = self.action(&f.kind);
            tally.record(&f.kind, action, value, f.label);
            if matches!(action, Action::Redact | Action::Block) {
                let buf = out.get_or_insert_with(|| String::with_capacity(text.len()));
                buf.push_str(&text[copied..f.span.start]);
                buf.push_str(&f.kind.placeholder());
                copied = f.span.end;
            }
        }
        out.map(|mut s| {
            s.push_str(&text[copied..]);
            s
        })
    }
}
