//! Messages as HAProxy prints them: `[ALERT]    (PID) : config : parsing [FILE:LINE] : TEXT`,
//! with fulcrum's hint kept at the end of the text.
use fulcrum_config::{Diagnostic, Severity};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Alert,
    Warning,
    Notice,
}

impl Level {
    fn tag(self) -> &'static str {
        match self {
            Level::Alert => "[ALERT]",
            Level::Warning => "[WARNING]",
            Level::Notice => "[NOTICE]",
        }
    }
}

/// One line: the tag padded as HAProxy pads it, the PID, the text.
pub fn line(level: Level, text: &str) -> String {
    format!("{:<10} ({}) : {text}", level.tag(), std::process::id())
}

pub fn say(level: Level, text: &str) {
    eprintln!("{}", line(level, text));
}

/// A configuration diagnostic in HAProxy's words.
pub fn diagnostic(d: &Diagnostic) -> String {
    let level = match d.severity {
        Severity::Error => Level::Alert,
        Severity::Warning => Level::Warning,
        Severity::Notice => Level::Notice,
    };
    let place = if d.line > 0 {
        format!("parsing [{}:{}] : ", d.file.display(), d.line)
    } else {
        format!("{} : ", d.file.display())
    };
    let hint = d.hint.as_ref().map(|h| format!(" ({h})")).unwrap_or_default();
    line(level, &format!("config : {place}{}{hint}", d.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_as_haproxy() {
        let pid = std::process::id();
        assert_eq!(line(Level::Alert, "x"), format!("[ALERT]    ({pid}) : x"));
        assert_eq!(line(Level::Warning, "x"), format!("[WARNING]  ({pid}) : x"));
        assert_eq!(line(Level::Notice, "x"), format!("[NOTICE]   ({pid}) : x"));
        let d = Diagnostic {
            severity: Severity::Error,
            file: "h.cfg".into(),
            line: 3,
            message: "unknown keyword 'foo' in 'global' section".into(),
            hint: Some("did you mean log?".into()),
        };
        assert_eq!(
            diagnostic(&d),
            format!("[ALERT]    ({pid}) : config : parsing [h.cfg:3] : unknown keyword 'foo' in 'global' section (did you mean log?)")
        );
    }
}
