//! Diagnostics: every problem names the file, line, column and key path, and says what is
//! allowed. `gslbd check` prints them; `serve` and reload refuse a config that has errors.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in a config file (1-based; 0 when the problem is about the file as a whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Loc {
    pub line: u32,
    pub column: u32,
}

impl Loc {
    pub const FILE: Loc = Loc { line: 0, column: 0 };

    pub fn from_saphyr(l: serde_saphyr::Location) -> Loc {
        Loc {
            line: l.line() as u32,
            column: l.column() as u32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    pub loc: Loc,
    /// Key path inside the file, e.g. `records.www.A[1]`; empty for file-level problems.
    pub path: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    /// `file:line:column: [warning: ]path: message` — the shape compilers use, so editors and
    /// CI logs can jump to the place.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.loc.line > 0 {
            write!(f, ":{}:{}", self.loc.line, self.loc.column)?;
        }
        f.write_str(": ")?;
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// The diagnostics of one load, in the order they were found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
}

impl Diagnostics {
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count()
    }

    pub fn has_errors(&self) -> bool {
        self.error_count() > 0
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.items.push(d);
    }

    pub fn extend(&mut self, other: Diagnostics) {
        self.items.extend(other.items);
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.items {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for one file.
pub struct Reporter<'a> {
    file: &'a Path,
    out: &'a mut Diagnostics,
}

impl<'a> Reporter<'a> {
    pub fn new(file: &'a Path, out: &'a mut Diagnostics) -> Self {
        Reporter { file, out }
    }

    pub fn file(&self) -> &Path {
        self.file
    }

    /// Errors collected so far (in all files of this load).
    pub fn error_count(&self) -> usize {
        self.out.error_count()
    }

    pub fn error(&mut self, loc: Loc, path: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Error, loc, path.into(), message.into());
    }

    pub fn warning(&mut self, loc: Loc, path: impl Into<String>, message: impl Into<String>) {
        self.push(Severity::Warning, loc, path.into(), message.into());
    }

    fn push(&mut self, severity: Severity, loc: Loc, path: String, message: String) {
        self.out.push(Diagnostic {
            severity,
            file: self.file.to_path_buf(),
            loc,
            path,
            message,
        });
    }
}
