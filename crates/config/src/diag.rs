//! Diagnostics: every message names the file and line, and the fix where there is one.
use std::fmt;
use std::path::{Path, PathBuf};

use fulcrum_model::Origin;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
    /// Said for information (a `.notice` line): neither an error nor a warning.
    Notice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub file: PathBuf,
    /// 1-based; 0 when the message is about the file as a whole.
    pub line: usize,
    pub message: String,
    /// How to fix it ("did you mean roundrobin?").
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    /// `FILE:LINE: message (hint)`; warnings say so.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        write!(f, ": ")?;
        match self.severity {
            Severity::Warning => write!(f, "warning: ")?,
            Severity::Notice => write!(f, "notice: ")?,
            Severity::Error => {}
        }
        write!(f, "{}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// A diagnostic at the place a Model object (or one of its keywords) was written.
pub(crate) fn at(origin: &Origin, severity: Severity, message: String, hint: Option<String>) -> Diagnostic {
    Diagnostic { severity, file: origin.file.clone(), line: origin.line, message, hint }
}

/// `FILE:LINE` of an origin, for hints that point at another line ("first defined at ...").
pub(crate) fn place(origin: &Origin) -> String {
    format!("{}:{}", origin.file.display(), origin.line)
}

/// The closest candidate to a misspelt word, if it is close enough to be a likely slip.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // Keywords are short; a huge word is no slip, and comparing it would cost time.
    if word.len() > 64 {
        return None;
    }
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len().max(3) / 3).max(1) + 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// What went wrong with one directive or value, before it is placed at a file and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Problem {
    /// The input is wrong: always an error.
    Invalid { message: String, hint: Option<String> },
    /// Valid for HAProxy (or the format) but not implemented by fulcrum: an error, or a warning
    /// under `--lenient` (the directive is then ignored).
    Unsupported { message: String, hint: Option<String> },
}

impl Problem {
    /// The message and its hint, as one line.
    pub(crate) fn text(&self) -> String {
        let (Problem::Invalid { message, hint } | Problem::Unsupported { message, hint }) = self;
        match hint {
            Some(h) => format!("{message} ({h})"),
            None => message.clone(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Problem::Invalid { message: message.into(), hint: None }
    }

    pub(crate) fn unsupported(message: impl Into<String>) -> Self {
        Problem::Unsupported { message: message.into(), hint: None }
    }

    pub(crate) fn hint(mut self, text: impl Into<String>) -> Self {
        match &mut self {
            Problem::Invalid { hint, .. } | Problem::Unsupported { hint, .. } => *hint = Some(text.into()),
        }
        self
    }

    /// "unknown WHAT 'word'" with a did-you-mean hint from `candidates`.
    pub(crate) fn unknown<'a>(what: &str, word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        let problem = Problem::invalid(format!("unknown {what} '{word}'"));
        match did_you_mean(word, candidates) {
            Some(best) => problem.hint(format!("did you mean {best}?")),
            None => problem,
        }
    }
}

impl From<crate::values::ValueError> for Problem {
    fn from(error: crate::values::ValueError) -> Self {
        Problem::invalid(error.to_string())
    }
}

/// Collects the diagnostics of one file, in the order they are found.
#[derive(Debug)]
pub(crate) struct Sink {
    pub file: PathBuf,
    pub lenient: bool,
    pub diags: Vec<Diagnostic>,
    /// Keys of notes already given, for warnings that should appear once per file.
    once: Vec<String>,
}

impl Sink {
    pub(crate) fn new(file: &std::path::Path, lenient: bool) -> Self {
        Sink { file: file.to_path_buf(), lenient, diags: Vec::new(), once: Vec::new() }
    }

    fn push(&mut self, severity: Severity, line: usize, message: String, hint: Option<String>) {
        self.diags.push(Diagnostic { severity, file: self.file.clone(), line, message, hint });
    }

    pub(crate) fn error(&mut self, line: usize, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Error, line, message.into(), hint);
    }

    pub(crate) fn warn(&mut self, line: usize, message: impl Into<String>, hint: Option<String>) {
        self.push(Severity::Warning, line, message.into(), hint);
    }

    pub(crate) fn notice(&mut self, line: usize, message: impl Into<String>) {
        self.push(Severity::Notice, line, message.into(), None);
    }

    /// A warning given only the first time `key` is seen in this file.
    pub(crate) fn warn_once(&mut self, key: &str, line: usize, message: impl Into<String>, hint: Option<String>) {
        if !self.once.iter().any(|k| k == key) {
            self.once.push(key.to_string());
            self.warn(line, message, hint);
        }
    }

    pub(crate) fn report(&mut self, line: usize, problem: Problem) {
        let file = self.file.clone();
        self.report_in(&file, line, problem);
    }

    /// A diagnostic about another file than the Sink's own (an included file).
    pub(crate) fn push_in(
        &mut self,
        file: &Path,
        severity: Severity,
        line: usize,
        message: String,
        hint: Option<String>,
    ) {
        self.diags.push(Diagnostic { severity, file: file.to_path_buf(), line, message, hint });
    }

    pub(crate) fn report_in(&mut self, file: &Path, line: usize, problem: Problem) {
        match problem {
            Problem::Invalid { message, hint } => self.push_in(file, Severity::Error, line, message, hint),
            Problem::Unsupported { message, hint } if self.lenient => {
                self.push_in(file, Severity::Warning, line, format!("{message}; ignored (lenient mode)"), hint)
            }
            Problem::Unsupported { message, hint } => {
                let lenient = "or use --lenient to ignore it";
                let hint = Some(match hint {
                    Some(h) => format!("{h}; {lenient}"),
                    None => lenient.trim_start_matches("or ").to_string(),
                });
                self.push_in(file, Severity::Error, line, message, hint)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let algos = ["roundrobin", "static-rr", "leastconn", "first", "source"];
        assert_eq!(did_you_mean("roundrobbin", algos), Some("roundrobin"));
        assert_eq!(did_you_mean("leastcon", algos), Some("leastconn"));
        assert_eq!(did_you_mean("zzzzzzzz", algos), None);
    }
}
