//! Reading keepalived.conf's syntax into statements: blanks separate words, `{` and `}` open
//! and close blocks wherever they are (`authentication { auth_type PASS }` on one line, or
//! `{` alone on the next line), `#` or `!` anywhere outside quotes begins a comment, double
//! quotes keep blanks (`\"` and `\\` inside them), and `include GLOB` at the start of a line
//! reads other files in its place (relative to the including file).
use std::path::{Path, PathBuf};

use crate::diag::{Severity, Sink};
use fulcrum_model::Origin;

/// One statement: its words, all on one line (the first is the keyword), and its block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stmt {
    pub at: Origin,
    pub words: Vec<String>,
    pub block: Option<Vec<Stmt>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// A word; `quoted` when it was written in double quotes (never `include` or a brace).
    Word {
        quoted: bool,
    },
    Open,
    Close,
}

#[derive(Debug, Clone)]
struct Tok {
    kind: Kind,
    text: String,
    at: Origin,
}

/// Deeper includes are a loop or a mistake; keepalived stops too.
const MAX_INCLUDE_DEPTH: usize = 8;
/// Deeper blocks are garbage, and would cost stack.
const MAX_BLOCK_DEPTH: usize = 16;

/// The statements of a file and of the files it includes; problems go to `sink`.
pub(crate) fn read(text: &str, file: &Path, sink: &mut Sink) -> Vec<Stmt> {
    let mut toks = Vec::new();
    let mut stack = vec![file.to_path_buf()];
    lex_file(text, file, sink, &mut toks, &mut stack);
    let mut pos = 0;
    let mut stmts = Vec::new();
    build(&toks, &mut pos, None, 0, sink, &mut stmts);
    stmts
}

fn lex_file(text: &str, file: &Path, sink: &mut Sink, toks: &mut Vec<Tok>, stack: &mut Vec<PathBuf>) {
    for (index, raw) in text.lines().enumerate() {
        let at = Origin { file: file.to_path_buf(), line: index + 1 };
        let mut line = Vec::new();
        if let Err(message) = lex_line(raw, &at, &mut line) {
            sink.push_in(file, Severity::Error, at.line, message.to_string(), None);
        }
        match line.first() {
            Some(Tok { kind: Kind::Word { quoted: false }, text, .. }) if text == "include" => {
                let patterns: Vec<String> = line.iter().skip(1).map(|t| t.text.clone()).collect();
                include(&patterns, &at, sink, toks, stack);
            }
            _ => toks.extend(line),
        }
    }
}

/// A quoted string not closed on its line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unmatched quote: a quoted string is not closed on this line")]
struct UnmatchedQuote;

fn lex_line(raw: &str, at: &Origin, out: &mut Vec<Tok>) -> Result<(), UnmatchedQuote> {
    let mut chars = raw.chars().peekable();
    let mut word = String::new();
    let mut in_word = false;
    let push_word = |word: &mut String, in_word: &mut bool, quoted: bool, out: &mut Vec<Tok>| {
        if *in_word {
            out.push(Tok { kind: Kind::Word { quoted }, text: std::mem::take(word), at: at.clone() });
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => push_word(&mut word, &mut in_word, false, out),
            // As keepalived: a comment may start anywhere outside quotes.
            '#' | '!' => break,
            '{' | '}' => {
                push_word(&mut word, &mut in_word, false, out);
                let kind = if c == '{' { Kind::Open } else { Kind::Close };
                out.push(Tok { kind, text: c.to_string(), at: at.clone() });
            }
            '"' if !in_word => {
                let mut closed = false;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' if matches!(chars.peek(), Some('"') | Some('\\')) => word.extend(chars.next()),
                        q => word.push(q),
                    }
                }
                if !closed {
                    // Read to the end of the line, as keepalived does, so that only this is reported.
                    in_word = true;
                    push_word(&mut word, &mut in_word, true, out);
                    return Err(UnmatchedQuote);
                }
                in_word = true;
                push_word(&mut word, &mut in_word, true, out);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    push_word(&mut word, &mut in_word, false, out);
    Ok(())
}

/// `include GLOB...`: the matching files, in name order, read in place of the line.
fn include(patterns: &[String], at: &Origin, sink: &mut Sink, toks: &mut Vec<Tok>, stack: &mut Vec<PathBuf>) {
    if patterns.is_empty() {
        let hint = Some("e.g. include /etc/keepalived/conf.d/*.conf".to_string());
        return sink.push_in(&at.file, Severity::Error, at.line, "'include' needs a file name or pattern".into(), hint);
    }
    if stack.len() > MAX_INCLUDE_DEPTH {
        let message = format!("includes are nested more than {MAX_INCLUDE_DEPTH} deep");
        return sink.push_in(&at.file, Severity::Error, at.line, message, Some("is a file including itself?".into()));
    }
    let dir = at.file.parent().map(Path::to_path_buf).unwrap_or_default();
    for pattern in patterns {
        let full = if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { dir.join(pattern) };
        let files = glob(&full);
        if files.is_empty() {
            let message = format!("include '{pattern}' matches no file (looked for {})", full.display());
            sink.push_in(&at.file, Severity::Error, at.line, message, None);
        }
        for path in files {
            if stack.contains(&path) {
                let message = format!("'{}' includes itself", path.display());
                sink.push_in(&at.file, Severity::Error, at.line, message, None);
                continue;
            }
            match std::fs::read(&path) {
                Ok(bytes) => {
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    stack.push(path.clone());
                    lex_file(&text, &path, sink, toks, stack);
                    stack.pop();
                }
                Err(e) => {
                    let message = format!("cannot read included file '{}': {e}", path.display());
                    sink.push_in(&at.file, Severity::Error, at.line, message, None);
                }
            }
        }
    }
}

/// The files a pattern names: `*`, `?` and `[...]` in any component, as the shell's glob.
fn glob(pattern: &Path) -> Vec<PathBuf> {
    let mut found = vec![PathBuf::new()];
    for component in pattern.components() {
        let part = component.as_os_str().to_string_lossy();
        if !part.contains(['*', '?', '[']) {
            found = found.into_iter().map(|p| p.join(component.as_os_str())).collect();
            continue;
        }
        let mut next = Vec::new();
        for dir in &found {
            let listing = if dir.as_os_str().is_empty() { Path::new(".") } else { dir.as_path() };
            let Ok(entries) = std::fs::read_dir(listing) else { continue };
            let mut names: Vec<String> =
                entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
            names.sort();
            for name in names {
                // As the shell: a leading dot is only matched by a leading dot.
                if (!name.starts_with('.') || part.starts_with('.')) && wildcard(&part, &name) {
                    next.push(dir.join(&name));
                }
            }
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found
}

/// Whether `name` matches the shell pattern `pattern` (`*`, `?`, `[abc]`, `[a-z]`, `[!a]`).
fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    // Positions to resume from after the last `*`, for backtracking without recursion.
    let (mut pi, mut ni, mut star): (usize, usize, Option<(usize, usize)>) = (0, 0, None);
    while ni < n.len() {
        let here = n.get(ni).copied().unwrap_or_default();
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => class(&p, pi, here),
            Some(c) if *c == here => Some(pi + 1),
            _ => None,
        };
        match (step, star) {
            (Some(next), _) => {
                pi = next;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            (None, None) => return false,
        }
    }
    p.get(pi..).unwrap_or_default().iter().all(|c| *c == '*')
}

/// A `[...]` class at `start`: the position after it when `c` is in it.
fn class(p: &[char], start: usize, c: char) -> Option<usize> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let first = i;
    while let Some(&x) = p.get(i) {
        if x == ']' && i > first {
            return (matched != negate).then_some(i + 1);
        }
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|e| *e != ']') {
            let end = p.get(i + 2).copied().unwrap_or(x);
            matched |= x <= c && c <= end;
            i += 3;
        } else {
            matched |= x == c;
            i += 1;
        }
    }
    // No closing bracket: a literal '['.
    (c == '[').then_some(start + 1)
}

/// Statements up to the `}` that closes the block opened at `open` (None: the file level).
fn build(toks: &[Tok], pos: &mut usize, open: Option<&Origin>, depth: usize, sink: &mut Sink, out: &mut Vec<Stmt>) {
    while let Some(tok) = toks.get(*pos) {
        *pos += 1;
        match tok.kind {
            Kind::Close if open.is_some() => return,
            Kind::Close => {
                let hint = Some("is there one '}' too many?".to_string());
                sink.push_in(&tok.at.file, Severity::Error, tok.at.line, "unexpected '}'".into(), hint);
            }
            Kind::Open => {
                let mut body = Vec::new();
                if depth >= MAX_BLOCK_DEPTH {
                    let message = format!("blocks are nested more than {MAX_BLOCK_DEPTH} deep");
                    sink.push_in(&tok.at.file, Severity::Error, tok.at.line, message, None);
                    skip_block(toks, pos);
                    continue;
                }
                build(toks, pos, Some(&tok.at), depth + 1, sink, &mut body);
                // `{` alone on a line belongs to the statement before it.
                match out.last_mut() {
                    Some(last) if last.block.is_none() => last.block = Some(body),
                    _ => {
                        let message = "'{' without a keyword before it".to_string();
                        sink.push_in(&tok.at.file, Severity::Error, tok.at.line, message, None);
                    }
                }
            }
            Kind::Word { .. } => {
                let mut words = vec![tok.text.clone()];
                while let Some(next) = toks.get(*pos).filter(|t| matches!(t.kind, Kind::Word { .. }) && t.at == tok.at)
                {
                    words.push(next.text.clone());
                    *pos += 1;
                }
                out.push(Stmt { at: tok.at.clone(), words, block: None });
                if let Some(next) = toks.get(*pos).filter(|t| t.kind == Kind::Open && t.at == tok.at) {
                    *pos += 1;
                    let mut body = Vec::new();
                    if depth >= MAX_BLOCK_DEPTH {
                        let message = format!("blocks are nested more than {MAX_BLOCK_DEPTH} deep");
                        sink.push_in(&next.at.file, Severity::Error, next.at.line, message, None);
                        skip_block(toks, pos);
                        continue;
                    }
                    build(toks, pos, Some(&next.at), depth + 1, sink, &mut body);
                    if let Some(last) = out.last_mut() {
                        last.block = Some(body);
                    }
                }
            }
        }
    }
    if let Some(open) = open {
        let message = "this block is not closed: '}' is missing".to_string();
        sink.push_in(&open.file, Severity::Error, open.line, message, None);
    }
}

fn skip_block(toks: &[Tok], pos: &mut usize) {
    let mut depth = 1usize;
    while let Some(tok) = toks.get(*pos) {
        *pos += 1;
        match tok.kind {
            Kind::Open => depth += 1,
            Kind::Close => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            Kind::Word { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stmts(text: &str) -> (Vec<Stmt>, Vec<String>) {
        let mut sink = Sink::new(Path::new("k.conf"), false);
        let stmts = read(text, Path::new("k.conf"), &mut sink);
        sink.diags.sort_by_key(|d| d.line);
        (stmts, sink.diags.iter().map(ToString::to_string).collect())
    }

    fn shape(stmts: &[Stmt]) -> String {
        stmts
            .iter()
            .map(|s| match &s.block {
                Some(b) => format!("{}@{} {{{}}}", s.words.join(" "), s.at.line, shape(b)),
                None => format!("{}@{}", s.words.join(" "), s.at.line),
            })
            .collect::<Vec<_>>()
            .join("; ")
    }

    #[test]
    fn blocks_on_one_line_or_many() {
        let (s, d) =
            stmts("authentication { auth_type PASS auth_pass 1111 }\nvrrp_instance VI_1\n{\n  state MASTER # c\n}\n");
        assert!(d.is_empty(), "{d:?}");
        assert_eq!(
            shape(&s),
            "authentication@1 {auth_type PASS auth_pass 1111@1}; vrrp_instance VI_1@2 {state MASTER@4}"
        );
        let (s, _) = stmts("virtual_ipaddress {10.0.0.1\n10.0.0.2}\n! comment\nx \"a b!\" c!d\n");
        assert_eq!(shape(&s), "virtual_ipaddress@1 {10.0.0.1@1; 10.0.0.2@2}; x a b! c@4");
    }

    #[test]
    fn unbalanced_braces_and_quotes() {
        let (_, d) = stmts("a {\n b\n");
        assert_eq!(d, ["k.conf:1: this block is not closed: '}' is missing"]);
        let (_, d) = stmts("}\nx \"open\n");
        assert_eq!(d[0], "k.conf:1: unexpected '}' (is there one '}' too many?)");
        assert!(d[1].starts_with("k.conf:2: unmatched quote"));
        let (_, d) = stmts(&"{".repeat(10_000));
        assert!(!d.is_empty());
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.conf", "a.conf"));
        assert!(!wildcard("*.conf", "a.cfg"));
        assert!(wildcard("vi_?.conf", "vi_1.conf"));
        assert!(wildcard("[a-c]*", "beta"));
        assert!(!wildcard("[!a-c]*", "beta"));
        assert!(wildcard("a*b*c", "aXXbYYc"));
        assert!(!wildcard("a*b*c", "aXXbYY"));
        assert!(wildcard("[", "["));
    }
}
