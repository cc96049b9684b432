//! Splitting a haproxy.cfg line into words as HAProxy does: blanks separate words, `#` starts a
//! comment, `\` escapes (`\ `, `\#`, `\\`, `\'`, `\"`, `\r`, `\n`, `\t`, `\xHH`; any other
//! escaped character keeps its backslash, so regexes like `\.` survive), double quotes keep
//! blanks and expand `$VAR`/`${VAR}` from the environment, single quotes keep everything.

/// The words of one line, and notes about it (undefined environment variables).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Line {
    pub words: Vec<String>,
    pub notes: Vec<String>,
}

/// A line that cannot be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenizeError {
    #[error("unmatched quote: a quoted string is not closed on this line")]
    UnmatchedQuote,
    #[error("invalid escape '\\x{0}' (expected two hexadecimal digits)")]
    HexEscape(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Quote {
    None,
    Single,
    Double,
}

pub(crate) fn tokenize(text: &str) -> Result<Line, TokenizeError> {
    tokenize_with(text, &|name| std::env::var(name).ok())
}

pub(crate) fn tokenize_with(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Line, TokenizeError> {
    let mut line = Line::default();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote = Quote::None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Quote::Single, '\'') => quote = Quote::None,
            (Quote::Single, c) => word.push(c),
            (Quote::None, c) if c.is_whitespace() => {
                if in_word {
                    line.words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (Quote::None, '#') => break,
            (Quote::None, '\'') => {
                quote = Quote::Single;
                in_word = true;
            }
            (Quote::None, '"') => {
                quote = Quote::Double;
                in_word = true;
            }
            (Quote::Double, '"') => quote = Quote::None,
            (_, '\\') => {
                in_word = true;
                escape(&mut chars, &mut word)?;
            }
            (Quote::Double, '$') => expand(&mut chars, &mut word, &mut line.notes, env),
            (_, c) => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if quote != Quote::None {
        return Err(TokenizeError::UnmatchedQuote);
    }
    if in_word {
        line.words.push(word);
    }
    Ok(line)
}

fn escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>, word: &mut String) -> Result<(), TokenizeError> {
    let Some(next) = chars.next() else {
        word.push('\\');
        return Ok(());
    };
    match next {
        ' ' | '#' | '\\' | '\'' | '"' | '$' => word.push(next),
        'r' => word.push('\r'),
        'n' => word.push('\n'),
        't' => word.push('\t'),
        'x' => {
            let hex: String = [chars.next(), chars.next()].into_iter().flatten().collect();
            let byte = u8::from_str_radix(&hex, 16)
                .ok()
                .filter(|_| hex.len() == 2)
                .ok_or_else(|| TokenizeError::HexEscape(hex.clone()))?;
            word.push(char::from(byte));
        }
        other => {
            word.push('\\');
            word.push(other);
        }
    }
    Ok(())
}

fn expand(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    word: &mut String,
    notes: &mut Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
) {
    let braced = chars.peek() == Some(&'{');
    if braced {
        chars.next();
    }
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (!name.is_empty() && c.is_ascii_digit());
        if !ok {
            break;
        }
        name.push(c);
        chars.next();
    }
    // `${NAME-default}`: the default when NAME is not set (HAProxy 2.3 and later).
    let mut default = None;
    if braced && chars.peek() == Some(&'-') && !name.is_empty() {
        chars.next();
        let mut text = String::new();
        while let Some(&c) = chars.peek() {
            if c == '}' {
                break;
            }
            text.push(c);
            chars.next();
        }
        default = Some(text);
    }
    if braced {
        if chars.peek() == Some(&'}') {
            chars.next();
        } else {
            // Not a variable reference after all: keep the text as written.
            word.push_str("${");
            word.push_str(&name);
            return;
        }
    }
    if name.is_empty() {
        word.push('$');
        if braced {
            word.push_str("{}");
        }
        return;
    }
    match (env(&name), default) {
        (Some(value), _) => word.push_str(&value),
        (None, Some(default)) => word.push_str(&default),
        (None, None) => notes.push(format!("environment variable '{name}' is not set; it expands to an empty string")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        let env = |name: &str| (name == "PORT").then(|| "8080".to_string());
        tokenize_with(text, &env).expect("tokenizes").words
    }

    #[test]
    fn splits_and_comments() {
        assert_eq!(words("  server s1 10.0.0.1:80   check # comment"), ["server", "s1", "10.0.0.1:80", "check"]);
        assert_eq!(words("# only a comment"), Vec::<String>::new());
        assert_eq!(words("stats auth a:b#c"), ["stats", "auth", "a:b"]);
        assert_eq!(words("stats auth a:b\\#c"), ["stats", "auth", "a:b#c"]);
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(words("stats realm Haproxy\\ Statistics"), ["stats", "realm", "Haproxy Statistics"]);
        assert_eq!(words("stats realm \"Haproxy Statistics\""), ["stats", "realm", "Haproxy Statistics"]);
        assert_eq!(words("x 'a b $PORT \\n'"), ["x", "a b $PORT \\n"]);
        assert_eq!(words("bind \"*:$PORT\""), ["bind", "*:8080"]);
        assert_eq!(words("bind \"*:${PORT}\""), ["bind", "*:8080"]);
        assert_eq!(words("timeout client \"${NOPE-5s}\""), ["timeout", "client", "5s"]);
        assert_eq!(words("bind \"*:${PORT-81}\""), ["bind", "*:8080"]);
        assert_eq!(words("x \"${NOPE-}\""), ["x", ""]);
        assert_eq!(words("bind *:$PORT"), ["bind", "*:$PORT"]);
        assert_eq!(words("a \"\" b"), ["a", "", "b"]);
        assert_eq!(words("acl x path_reg ^/api\\.v1$"), ["acl", "x", "path_reg", "^/api\\.v1$"]);
        assert_eq!(
            words("option httpchk GET / HTTP/1.1\\r\\nHost:\\ www"),
            ["option", "httpchk", "GET", "/", "HTTP/1.1\r\nHost: www"]
        );
        assert_eq!(words("x \\x41"), ["x", "A"]);
        assert!(tokenize_with("x \"open", &|_| None).is_err());
        assert!(tokenize_with("x \\xZZ", &|_| None).is_err());
        let line = tokenize_with("user \"$NOPE\"", &|_| None).expect("tokenizes");
        assert_eq!(line.words, ["user", ""]);
        assert_eq!(line.notes.len(), 1);
    }
}
