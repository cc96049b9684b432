//! HAProxy's conditional blocks (`.if`, `.elif`, `.else`, `.endif`) and the expressions they
//! test, as HAProxy 2.6 reads them: `defined(NAME)`, `feature(NAME)`, `streq(A,B)`,
//! `strneq(A,B)`, `version_atleast(V)`, `version_before(V)`, a number (0 false, any other true),
//! an empty word (false), joined by `!`, `&&`, `||` and parentheses. The line is split into
//! words (quotes, `${VAR}`) before the expression is read, as HAProxy does.

/// The HAProxy version whose configuration language fulcrum reads: `version_atleast()` and
/// `version_before()` compare with it, and `haproxy -v` names it.
pub const HAPROXY_VERSION: &str = "2.6.0";

/// HAProxy's build features that fulcrum has, as `haproxy -vv` lists them (`+NAME`) and as
/// `feature(NAME)` tests them. Only what fulcrum really does: scripts (and HAProxy's test
/// runner) decide from this list which tests and configuration paths apply.
pub const FEATURES: &[&str] = &["EPOLL", "THREAD", "ACCEPT4", "GETADDRINFO", "PRCTL"];

/// Nested `.if` blocks deeper than this are refused (HAProxy allows as many).
const MAX_DEPTH: usize = 128;

/// Why an expression cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CondError {
    #[error("unknown predicate '{0}'")]
    UnknownPredicate(String),
    #[error("'{0}' takes {1} argument(s)")]
    Arity(String, usize),
    #[error("unparsable conditional expression near '{0}'")]
    Syntax(String),
    #[error("missing ')'")]
    Unclosed,
    #[error("'{0}' is not a version number")]
    Version(String),
}

/// Evaluates a condition written as on a `.if` line (`haproxy -cc EXPR`): split into words
/// first, as a configuration line is (quotes, `"$VAR"`), then evaluated.
pub fn eval_text(text: &str, env: &dyn Fn(&str) -> bool) -> Result<bool, CondError> {
    let line = super::tokenize::tokenize(text).map_err(|e| CondError::Syntax(e.to_string()))?;
    eval(&line.words, env)
}

/// Evaluates one condition, its words already split (quotes removed, variables expanded).
/// `env` answers `defined()`. An empty condition is false, as in HAProxy.
pub fn eval(words: &[String], env: &dyn Fn(&str) -> bool) -> Result<bool, CondError> {
    let text = words.join(" ");
    let mut reader = Reader { rest: text.as_str(), env };
    if reader.rest.trim().is_empty() {
        return Ok(false);
    }
    let value = reader.or()?;
    reader.skip_blanks();
    if !reader.rest.is_empty() {
        return Err(CondError::Syntax(reader.rest.chars().take(20).collect()));
    }
    Ok(value)
}

struct Reader<'a> {
    rest: &'a str,
    env: &'a dyn Fn(&str) -> bool,
}

impl Reader<'_> {
    fn skip_blanks(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_blanks();
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn or(&mut self) -> Result<bool, CondError> {
        let mut value = self.and()?;
        while self.eat("||") {
            // Both sides are read (a syntax error on the right is an error either way).
            let right = self.and()?;
            value = value || right;
        }
        Ok(value)
    }

    fn and(&mut self) -> Result<bool, CondError> {
        let mut value = self.term()?;
        while self.eat("&&") {
            let right = self.term()?;
            value = value && right;
        }
        Ok(value)
    }

    fn term(&mut self) -> Result<bool, CondError> {
        if self.eat("!") {
            return Ok(!self.term()?);
        }
        if self.eat("(") {
            let value = self.or()?;
            return if self.eat(")") { Ok(value) } else { Err(CondError::Unclosed) };
        }
        self.skip_blanks();
        let end = self.rest.find(|c: char| c.is_whitespace() || "()&|!".contains(c)).unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        if self.rest.starts_with('(') && !word.is_empty() {
            self.rest = &self.rest[1..];
            let args = self.args()?;
            return self.predicate(word, &args);
        }
        if word.is_empty() {
            return Err(CondError::Syntax(self.rest.chars().take(20).collect()));
        }
        // A number: 0 is false, any other true. Anything else is a mistake, not a string.
        word.parse::<i64>().map(|n| n != 0).map_err(|_| CondError::Syntax(word.to_string()))
    }

    /// The arguments of a predicate, up to its closing parenthesis, split at commas.
    fn args(&mut self) -> Result<Vec<String>, CondError> {
        let close = self.rest.find(')').ok_or(CondError::Unclosed)?;
        let inside = &self.rest[..close];
        self.rest = &self.rest[close + 1..];
        if inside.trim().is_empty() {
            return Ok(Vec::new());
        }
        Ok(inside.split(',').map(|a| a.trim().to_string()).collect())
    }

    fn predicate(&self, name: &str, args: &[String]) -> Result<bool, CondError> {
        let arity = match name {
            "defined" | "feature" | "version_atleast" | "version_before" => 1,
            "streq" | "strneq" => 2,
            _ => return Err(CondError::UnknownPredicate(name.to_string())),
        };
        if args.len() != arity {
            return Err(CondError::Arity(name.to_string(), arity));
        }
        let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
        Ok(match name {
            "defined" => (self.env)(arg(0)),
            "feature" => FEATURES.contains(&arg(0)),
            "streq" => arg(0) == arg(1),
            "strneq" => arg(0) != arg(1),
            "version_atleast" => version(HAPROXY_VERSION)? >= version(arg(0))?,
            _ => version(HAPROXY_VERSION)? < version(arg(0))?,
        })
    }
}

/// `2.6`, `2.4.18`, `2.5-dev3` as comparable numbers (a missing part is 0; a `-dev` suffix is
/// before the release, as HAProxy orders it).
fn version(text: &str) -> Result<[i64; 4], CondError> {
    let bad = || CondError::Version(text.to_string());
    let (numbers, dev) = match text.split_once("-dev") {
        Some((n, d)) => (n, d.parse::<i64>().map_err(|_| bad())? - 1_000_000),
        None => (text.split('-').next().unwrap_or_default(), 0),
    };
    let mut out = [0i64; 4];
    for (slot, part) in out.iter_mut().zip(numbers.split('.')) {
        *slot = part.parse().map_err(|_| bad())?;
    }
    if numbers.split('.').count() > 3 || numbers.is_empty() {
        return Err(bad());
    }
    out[3] = dev;
    Ok(out)
}

/// Where the parser stands in nested `.if` blocks.
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    frames: Vec<Frame>,
}

#[derive(Debug)]
struct Frame {
    line: usize,
    branch: Branch,
    seen_else: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Branch {
    /// The lines are read.
    Taking,
    /// An earlier branch was taken (or none can be): skip until `.endif`.
    Done,
    /// No branch taken yet: a later `.elif` or `.else` may be.
    Waiting,
}

/// A conditional directive out of place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BlockError {
    #[error("'{0}' without a matching '.if'")]
    Unmatched(&'static str),
    #[error("'{0}' after '.else' in the block opened at line {1}")]
    AfterElse(&'static str, usize),
    #[error("'.if' blocks nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("'.if' at line {0} has no matching '.endif' before the end of the file")]
    NotClosed(usize),
}

impl Blocks {
    /// Whether lines here are read (every enclosing block is in its taken branch).
    pub(crate) fn active(&self) -> bool {
        self.frames.iter().all(|f| f.branch == Branch::Taking)
    }

    /// `.if`: `cond` is evaluated by the caller only when `active()` (before the `.if`);
    /// `None` otherwise.
    pub(crate) fn open(&mut self, line: usize, cond: Option<bool>) -> Result<(), BlockError> {
        if self.frames.len() >= MAX_DEPTH {
            return Err(BlockError::TooDeep);
        }
        let branch = match cond {
            Some(true) => Branch::Taking,
            Some(false) => Branch::Waiting,
            None => Branch::Done,
        };
        self.frames.push(Frame { line, branch, seen_else: false });
        Ok(())
    }

    /// Whether an `.elif` here needs its condition evaluated (no branch taken yet, enclosing
    /// blocks active).
    pub(crate) fn elif_pending(&self) -> bool {
        let outer = self.frames.len().saturating_sub(1);
        let enclosing = self.frames.get(..outer).unwrap_or_default();
        enclosing.iter().all(|f| f.branch == Branch::Taking)
            && self.frames.last().is_some_and(|f| f.branch == Branch::Waiting && !f.seen_else)
    }

    /// `.elif`, with its condition's value when `elif_pending()` said to evaluate it.
    pub(crate) fn elif(&mut self, cond: Option<bool>) -> Result<(), BlockError> {
        let frame = self.frames.last_mut().ok_or(BlockError::Unmatched(".elif"))?;
        if frame.seen_else {
            return Err(BlockError::AfterElse(".elif", frame.line));
        }
        frame.branch = match (frame.branch, cond) {
            (Branch::Waiting, Some(true)) => Branch::Taking,
            (Branch::Waiting, _) => Branch::Waiting,
            _ => Branch::Done,
        };
        Ok(())
    }

    pub(crate) fn otherwise(&mut self) -> Result<(), BlockError> {
        let frame = self.frames.last_mut().ok_or(BlockError::Unmatched(".else"))?;
        if frame.seen_else {
            return Err(BlockError::AfterElse(".else", frame.line));
        }
        frame.seen_else = true;
        frame.branch = if frame.branch == Branch::Waiting { Branch::Taking } else { Branch::Done };
        Ok(())
    }

    pub(crate) fn close(&mut self) -> Result<(), BlockError> {
        self.frames.pop().map(|_| ()).ok_or(BlockError::Unmatched(".endif"))
    }

    /// At the end of a file: every block must be closed.
    pub(crate) fn finish(&mut self) -> Result<(), BlockError> {
        match self.frames.first() {
            Some(frame) => {
                let line = frame.line;
                self.frames.clear();
                Err(BlockError::NotClosed(line))
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(text: &str) -> Result<bool, CondError> {
        let words: Vec<String> = text.split_whitespace().map(String::from).collect();
        eval(&words, &|name| name == "SET")
    }

    #[test]
    fn predicates() {
        assert_eq!(ev("defined(SET)"), Ok(true));
        assert_eq!(ev("defined(UNSET)"), Ok(false));
        assert_eq!(ev("feature(THREAD)"), Ok(true));
        assert_eq!(ev("feature(OPENSSL)"), Ok(false));
        assert_eq!(ev("streq(a,a)"), Ok(true));
        assert_eq!(ev("streq(a,b)"), Ok(false));
        assert_eq!(ev("strneq(a,b)"), Ok(true));
        assert_eq!(ev("streq(,)"), Ok(true));
        assert_eq!(ev("version_atleast(2.4)"), Ok(true));
        assert_eq!(ev("version_atleast(2.6)"), Ok(true));
        assert_eq!(ev("version_atleast(2.6.1)"), Ok(false));
        assert_eq!(ev("version_atleast(2.6-dev2)"), Ok(true));
        assert_eq!(ev("version_before(2.7)"), Ok(true));
        assert_eq!(ev("version_before(2.6)"), Ok(false));
        assert_eq!(ev("1"), Ok(true));
        assert_eq!(ev("0"), Ok(false));
        assert_eq!(eval(&[String::new()], &|_| false), Ok(false));
        assert_eq!(ev("-1000 && 200"), Ok(true));
    }

    #[test]
    fn operators() {
        assert_eq!(ev("!defined(UNSET)"), Ok(true));
        assert_eq!(ev("defined(SET) && feature(OPENSSL)"), Ok(false));
        assert_eq!(ev("defined(UNSET) || 1"), Ok(true));
        assert_eq!(ev("0 || 1 && 0"), Ok(false));
        assert_eq!(ev("( 0 || 1 ) && 1"), Ok(true));
        assert_eq!(ev("!(0||0)"), Ok(true));
        assert_eq!(ev("!!1"), Ok(true));
    }

    /// The cases of HAProxy's own test of `-cc` (reg-tests/startup/check_condition.vtc).
    #[test]
    fn as_haproxy_reads_them() {
        let env = |name: &str| name == "HOME";
        let t = |text: &str| eval_text(text, &env);
        assert_eq!(t("streq(foo,'foo')"), Ok(true));
        assert_eq!(t("streq(\"foo bar\",'foo bar')"), Ok(true));
        assert_eq!(t("streq(foo,bar)"), Ok(false));
        assert_eq!(t("1&&!0&&!((streq(a,b)||!streq(a,a)&&1)||strneq(a,a))"), Ok(true));
        assert_eq!(t("1   &&!   0&&    !((streq(a,b)||!streq(a,a)&&1)||strneq(a,a))"), Ok(true));
        assert_eq!(t("1 && !0 && !((streq(a,b) || !streq(a,a) && 1) || strneq(a,b))"), Ok(false));
        assert_eq!(t("1 && !0 && !((streq(a,a) || !streq(a,a) && 1) || strneq(a,a))"), Ok(false));
        assert_eq!(t(""), Ok(false));
        assert!(t("200rrr").is_err());
        assert!(t("!(0))").is_err());
        assert!(t("streq(a,\"a)").is_err());
        assert_eq!(t("version_atleast(1024)"), Ok(false));
    }

    #[test]
    fn errors() {
        assert_eq!(ev("nosuch(x)"), Err(CondError::UnknownPredicate("nosuch".into())));
        assert_eq!(ev("streq(a)"), Err(CondError::Arity("streq".into(), 2)));
        assert_eq!(ev("defined(A"), Err(CondError::Unclosed));
        assert_eq!(ev("(1"), Err(CondError::Unclosed));
        assert!(matches!(ev("yes"), Err(CondError::Syntax(_))));
        assert!(matches!(ev("1 1"), Err(CondError::Syntax(_))));
        assert!(matches!(ev("1 &&"), Err(CondError::Syntax(_))));
        assert_eq!(ev("version_atleast(two)"), Err(CondError::Version("two".into())));
    }

    #[test]
    fn blocks() {
        let mut b = Blocks::default();
        assert!(b.active());
        b.open(1, Some(false)).expect("placed");
        assert!(!b.active());
        assert!(b.elif_pending());
        b.elif(Some(true)).expect("placed");
        assert!(b.active());
        assert!(!b.elif_pending());
        b.otherwise().expect("placed");
        assert!(!b.active());
        assert_eq!(b.otherwise(), Err(BlockError::AfterElse(".else", 1)));
        b.close().expect("placed");
        assert_eq!(b.close(), Err(BlockError::Unmatched(".endif")));
        // Inside a skipped block nothing is taken, whatever the conditions.
        b.open(10, Some(false)).expect("placed");
        b.open(11, None).expect("placed");
        assert!(!b.elif_pending());
        b.otherwise().expect("placed");
        assert!(!b.active());
        b.close().expect("placed");
        b.otherwise().expect("placed");
        assert!(b.active());
        b.open(20, Some(true)).expect("placed");
        assert_eq!(b.finish(), Err(BlockError::NotClosed(10)));
    }
}
