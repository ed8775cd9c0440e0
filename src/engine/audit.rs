//! A read checked against the API's own counts: where the API states how
//! many rows a read holds (a page's `contacts_count`, an activity's count of
//! sends or opens in its stats), the rows delivered must reach it.
//!
//! Counts may move while a run reads: rows join (new opens, new contacts),
//! and contacts changed during the run leave the window they were counted
//! in. So only a shortfall is suspect, and it gets one more read: a chain
//! is read again from its first page, a report parent again from its
//! bookmark. A shortfall that remains fails the stream, naming the parent,
//! the count and the rows, and that parent's position does not advance.

use crate::error::Error;

/// What the audit of one stream's read found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audit {
    /// The stream's reads are held to counts the API states
    /// ([`crate::streams::StreamDef::audited`]).
    pub declared: bool,
    /// Reads (chains or report parents) compared with a count.
    pub checked: u64,
    /// Rows the counts of those reads stated, and rows delivered for them.
    pub expected: u64,
    pub delivered: u64,
    /// Reads the count could not be held to: resumed mid-chain, whose
    /// earlier rows were delivered by an earlier run.
    pub unchecked: u64,
    /// Reads read once more after a first shortfall.
    pub reread: u64,
    /// Reads still short after their second read.
    pub short: Vec<Shortfall>,
}

/// A read that delivered fewer rows than its count said, twice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// What was read: an endpoint and its window, or a parent value.
    pub read: String,
    /// Where the count comes from (`contacts_count`, `/stats/em_sends`).
    pub count: String,
    pub expected: u64,
    pub delivered: u64,
}

impl Audit {
    /// A read whose rows reached its count (after a second read if
    /// `reread`).
    pub fn passed(&mut self, expected: u64, delivered: u64) {
        self.checked += 1;
        self.expected += expected;
        self.delivered += delivered;
    }

    pub fn failed(&mut self, shortfall: Shortfall) {
        self.checked += 1;
        self.expected += shortfall.expected;
        self.delivered += shortfall.delivered;
        self.short.push(shortfall);
    }

    pub fn merge(&mut self, other: Audit) {
        self.declared |= other.declared;
        self.checked += other.checked;
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.unchecked += other.unchecked;
        self.reread += other.reread;
        self.short.extend(other.short);
    }

    /// `ok`, or `SHORT` when a read stayed short.
    pub fn verdict(&self) -> &'static str {
        if self.short.is_empty() {
            "ok"
        } else {
            "SHORT"
        }
    }

    /// The run's one line for the stream: expected, delivered, verdict.
    pub fn summary(&self, stream: &str) -> String {
        let mut line = format!(
            "audit {stream}: {} expected by the API's counts, {} delivered, {} ({} reads checked",
            self.expected,
            self.delivered,
            self.verdict(),
            self.checked
        );
        if self.reread > 0 {
            line.push_str(&format!(", {} read twice", self.reread));
        }
        if self.unchecked > 0 {
            line.push_str(&format!(
                ", {} resumed mid-read not checked",
                self.unchecked
            ));
        }
        line.push(')');
        line
    }

    /// The stream's error when reads stayed short: each named, with the
    /// count it fell short of.
    pub fn error(&self) -> Option<Error> {
        let first = self.short.first()?;
        let mut message = format!(
            "{} delivered {} rows where the API's count `{}` says {}, after reading \
             it twice",
            first.read, first.delivered, first.count, first.expected
        );
        if self.short.len() > 1 {
            let more: Vec<String> = self
                .short
                .iter()
                .skip(1)
                .take(5)
                .map(|short| format!("{} ({} of {})", short.read, short.delivered, short.expected))
                .collect();
            let etc = if self.short.len() > 6 { ", …" } else { "" };
            message.push_str(&format!(
                "; and {} more such reads: {}{etc}",
                self.short.len() - 1,
                more.join(", ")
            ));
        }
        message.push_str(
            ". Their position is not saved as read: the next run reads them again. Rows may be \
             missing from the API's answers; if this repeats, report it with this message.",
        );
        Some(Error::system(message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(read: &str, expected: u64, delivered: u64) -> Shortfall {
        Shortfall {
            read: read.into(),
            count: "/stats/em_sends".into(),
            expected,
            delivered,
        }
    }

    #[test]
    fn the_summary_and_the_error_name_what_fell_short() {
        let mut audit = Audit::default();
        audit.passed(10, 12);
        assert_eq!(audit.verdict(), "ok");
        assert!(audit.error().is_none());
        assert_eq!(
            audit.summary("email_sends"),
            "audit email_sends: 10 expected by the API's counts, 12 delivered, ok (1 reads checked)"
        );
        let mut more = Audit {
            reread: 1,
            ..Audit::default()
        };
        more.failed(short("activity a1", 5, 4));
        more.failed(short("activity a2", 7, 0));
        audit.merge(more);
        assert_eq!(audit.verdict(), "SHORT");
        assert_eq!(
            (audit.checked, audit.expected, audit.delivered),
            (3, 22, 16)
        );
        assert!(audit
            .summary("email_sends")
            .contains("SHORT (3 reads checked, 1 read twice)"));
        let error = audit.error().unwrap();
        assert!(
            error.message.starts_with(
                "activity a1 delivered 4 rows where the API's count \
                 `/stats/em_sends` says 5"
            ),
            "{error}"
        );
        assert!(error.message.contains("activity a2 (0 of 7)"), "{error}");
    }
}
