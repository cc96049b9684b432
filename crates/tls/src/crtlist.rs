//! `crt-list FILE`: one certificate a line, `PATH [[ssl-options]] [SNI filters...]`; `#`
//! starts a comment. A filter is a name (`*.example.com` for a wildcard) the certificate is
//! served for, in place of the names it carries; `!name` excludes one. Options in brackets
//! that fulcrum does not apply per certificate are refused with the line, never skipped.

/// One line of a crt-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub file: String,
    pub filters: Vec<String>,
    pub line: usize,
}

/// The entries of a crt-list, or the first bad line and why.
pub fn parse(text: &str) -> Result<Vec<Entry>, (usize, String)> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.split_once('#').map_or(raw, |(before, _)| before).trim();
        if content.is_empty() {
            continue;
        }
        let (file, rest) = match content.split_once(char::is_whitespace) {
            Some((file, rest)) => (file, rest.trim_start()),
            None => (content, ""),
        };
        let rest = if let Some(after) = rest.strip_prefix('[') {
            let Some((options, after)) = after.split_once(']') else {
                return Err((line, "'[' opens SSL options that no ']' closes".into()));
            };
            if !options.trim().is_empty() {
                return Err((
                    line,
                    format!(
                        "per-certificate SSL options [{}] are not supported yet: set them on the bind line",
                        options.trim()
                    ),
                ));
            }
            after
        } else {
            rest
        };
        let mut filters = Vec::new();
        for filter in rest.split_whitespace() {
            let name = filter.trim_start_matches('!');
            let valid = !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'*' | b'_'))
                && !name[1..].contains('*');
            if !valid {
                return Err((line, format!("'{filter}' is not an SNI filter (a name, *.domain, or !name)")));
            }
            filters.push(filter.to_string());
        }
        out.push(Entry { file: file.to_string(), filters, line });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_filters_and_comments() {
        let text = "# certificates\n/etc/ssl/a.pem\n\nb.pem www.example.com *.example.org !admin.example.org # x\nc.pem [] c.example.net\n";
        let entries = parse(text).expect("valid");
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0], Entry { file: "/etc/ssl/a.pem".into(), filters: vec![], line: 2 });
        assert_eq!(entries[1].filters, ["www.example.com", "*.example.org", "!admin.example.org"]);
        assert_eq!(entries[1].line, 4);
        assert_eq!(entries[2].filters, ["c.example.net"]);
    }

    #[test]
    fn bad_lines_name_their_line() {
        assert_eq!(parse("a.pem\nb.pem [alpn h2] x.example\n").map_err(|e| e.0), Err(2));
        assert!(parse("a.pem [alpn h2 x\n").is_err());
        assert_eq!(parse("a.pem www.*.example\n").map_err(|e| e.0), Err(1));
        assert!(parse("a.pem bad/name\n").is_err());
    }
}
