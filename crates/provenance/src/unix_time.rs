//! Unix seconds as they appear in bundles and trusted roots, shown as RFC 3339 in errors.

use std::fmt;

/// A point in time in Unix seconds, displayed as RFC 3339 (`2024-04-02T19:19:09Z`) so that
/// an error about validity windows can be read without a converter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Rfc3339(pub i64);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let formatted = time::OffsetDateTime::from_unix_timestamp(self.0)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
        match formatted {
            Some(text) => f.write_str(&text),
            // Outside what `time` represents (year > 9999): still say what it is.
            None => write!(f, "@{} (unix seconds)", self.0),
        }
    }
}

/// A closed validity range in Unix seconds; `None` ends are open (the trusted root's
/// `validFor` may omit `end`, and in principle `start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First second of validity, if bounded.
    pub start: Option<i64>,
    /// Last second of validity, if bounded.
    pub end: Option<i64>,
}

impl Window {
    /// Whether `t` lies inside the window, both ends included.
    pub fn contains(&self, t: i64) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t <= e)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.start {
            Some(s) => write!(f, "{}", Rfc3339(s))?,
            None => f.write_str("any time")?,
        }
        f.write_str(" .. ")?;
        match self.end {
            Some(e) => write!(f, "{}", Rfc3339(e)),
            None => f.write_str("no end"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_rfc3339() {
        assert_eq!(Rfc3339(1_712_085_549).to_string(), "2024-04-02T19:19:09Z");
        assert_eq!(
            Rfc3339(i64::MAX).to_string(),
            format!("@{} (unix seconds)", i64::MAX)
        );
    }

    #[test]
    fn window_bounds_are_inclusive() {
        let w = Window {
            start: Some(10),
            end: Some(20),
        };
        assert!(!w.contains(9) && w.contains(10) && w.contains(20) && !w.contains(21));
        let open = Window {
            start: None,
            end: None,
        };
        assert!(open.contains(i64::MIN) && open.contains(i64::MAX));
    }
}
