//! ACLs compiled for the request path: regexes and networks are built once per snapshot.
use std::net::{IpAddr, SocketAddr};

use fulcrum_model::{Acl, Condition, Fetch, MatchKind};
use http::request::Parts;

use crate::CompileError;

/// An integer range; an open end is None.
type Range = (Option<i64>, Option<i64>);

#[derive(Debug)]
enum Matcher {
    Found,
    Int(Vec<Range>),
    Len(Vec<Range>),
    Dom(Vec<String>),
    Dir(Vec<String>),
    Exact(Vec<String>),
    Prefix(Vec<String>),
    Suffix(Vec<String>),
    Substring(Vec<String>),
    Regex(Vec<regex::Regex>),
    Ip(Vec<(IpAddr, u8)>),
    Bool,
}

#[derive(Debug)]
pub struct CompiledAcl {
    pub name: String,
    fetch: Fetch,
    /// `Fetch::Sample`, compiled.
    sample: Option<super::rules::CompiledSample>,
    matcher: Matcher,
    ignore_case: bool,
}

impl CompiledAcl {
    pub fn compile(acl: &Acl) -> Result<Self, CompileError> {
        let lower = |v: &Vec<String>| -> Vec<String> {
            if acl.ignore_case {
                v.iter().map(|p| p.to_ascii_lowercase()).collect()
            } else {
                v.clone()
            }
        };
        let matcher = match acl.kind {
            MatchKind::Exact => Matcher::Exact(lower(&acl.patterns)),
            MatchKind::Prefix => Matcher::Prefix(lower(&acl.patterns)),
            MatchKind::Suffix => Matcher::Suffix(lower(&acl.patterns)),
            MatchKind::Substring => Matcher::Substring(lower(&acl.patterns)),
            MatchKind::Regex => Matcher::Regex(
                acl.patterns
                    .iter()
                    .map(|p| {
                        regex::RegexBuilder::new(p)
                            .case_insensitive(acl.ignore_case)
                            .build()
                            .map_err(|source| CompileError::Regex { acl: acl.name.clone(), pattern: p.clone(), source })
                    })
                    .collect::<Result<_, _>>()?,
            ),
            MatchKind::Bool => Matcher::Bool,
            MatchKind::Found => Matcher::Found,
            MatchKind::Int => Matcher::Int(ranges(acl)?),
            MatchKind::Len => Matcher::Len(ranges(acl)?),
            MatchKind::Dom => Matcher::Dom(lower(&acl.patterns)),
            MatchKind::Dir => Matcher::Dir(lower(&acl.patterns)),
            MatchKind::Ip => Matcher::Ip(
                acl.patterns
                    .iter()
                    .map(|p| {
                        parse_net(p)
                            .ok_or_else(|| CompileError::AclAddress { acl: acl.name.clone(), pattern: p.clone() })
                    })
                    .collect::<Result<_, _>>()?,
            ),
        };
        let sample = match &acl.fetch {
            Fetch::Sample(s) => Some(super::rules::sample(s)?),
            _ => None,
        };
        Ok(CompiledAcl {
            name: acl.name.clone(),
            fetch: acl.fetch.clone(),
            sample,
            matcher,
            ignore_case: acl.ignore_case,
        })
    }

    /// A fetch that has nothing to read here (a path in `mode tcp`, a ClientHello that did not
    /// come) does not match, as in HAProxy.
    pub fn matches_facts(&self, facts: &Facts<'_>) -> bool {
        match &self.fetch {
            Fetch::Src => match &self.matcher {
                Matcher::Ip(nets) => nets.iter().any(|(net, len)| in_net(facts.client, *net, *len)),
                _ => self.match_str(&facts.client.to_string()),
            },
            Fetch::Path => facts.req.is_some_and(|req| self.match_str(req.uri.path())),
            Fetch::Method => facts.req.is_some_and(|req| self.match_str(req.method.as_str())),
            // The request's headers only: in a response rule's condition `hdr()` never matches,
            // as in HAProxy 2.6 (which warns about it).
            Fetch::Header(name) => facts.req.is_some_and(|req| {
                req.headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .any(|v| self.match_str(v.trim()))
            }),
            Fetch::ReqSslSni => facts.sni.is_some_and(|sni| self.match_str(sni)),
            Fetch::ReqSslHelloType => facts.hello_type.is_some_and(|t| self.match_str(&t.to_string())),
            Fetch::SslFc => facts.tls.is_some(),
            Fetch::SslCUsed => facts.tls.is_some_and(|t| t.client_cert),
            Fetch::SslFcSni => facts.tls.and_then(|t| t.sni.as_deref()).is_some_and(|v| self.match_str(v)),
            Fetch::SslFcProtocol => facts.tls.is_some_and(|t| self.match_str(t.protocol)),
            Fetch::SslFcAlpn => facts.tls.and_then(|t| t.alpn.as_deref()).is_some_and(|v| self.match_str(v)),
            Fetch::SslFcCipher => facts.tls.is_some_and(|t| self.match_str(t.cipher)),
            Fetch::SslCVerify => facts.tls.is_some_and(|_| self.match_str("0")),
            Fetch::SslCSDn => facts.tls.and_then(|t| t.client_subject.as_deref()).is_some_and(|v| self.match_str(v)),
            Fetch::Sample(_) => self.match_sample(facts),
        }
    }

    /// A sample expression's value, matched as the method says.
    fn match_sample(&self, facts: &Facts<'_>) -> bool {
        use super::rules::Value;
        let Some(sample) = &self.sample else { return false };
        let empty = super::rules::Vars::default();
        // `http_auth_group(L) G1 G2`: the authenticated user is in one of the groups.
        if let (fulcrum_model::rules::SampleFetch::HttpAuthGroup(list), Matcher::Exact(groups)) =
            (&sample.fetch, &self.matcher)
        {
            let users = facts.vars.and_then(|v| v.users());
            let user = users.zip(facts.req).and_then(|(u, req)| u.user(list.as_str(), &req.headers));
            return user.is_some_and(|u| u.groups.iter().any(|g| groups.contains(g)));
        }
        let Some(value) = super::rules::eval(sample, facts.req, facts.resp, &facts.scope(&empty)) else { return false };
        let within = |ranges: &[Range], n: i64| {
            ranges.iter().any(|(lo, hi)| lo.is_none_or(|l| n >= l) && hi.is_none_or(|h| n <= h))
        };
        match &self.matcher {
            Matcher::Found => true,
            Matcher::Bool => match &value {
                Value::Bool(b) => *b,
                other => other.as_int().is_some_and(|n| n != 0),
            },
            Matcher::Int(r) => value.as_int().is_some_and(|n| within(r, n)),
            Matcher::Len(r) => within(r, value.into_string().len() as i64),
            Matcher::Ip(nets) => {
                let ip = match value {
                    Value::Ip(ip) => Some(ip),
                    other => other.into_string().trim().parse().ok(),
                };
                ip.is_some_and(|ip| nets.iter().any(|(n, l)| in_net(ip, *n, *l)))
            }
            _ => self.match_str(&value.into_string()),
        }
    }

    fn match_str(&self, value: &str) -> bool {
        let owned;
        let v = if self.ignore_case && !matches!(self.matcher, Matcher::Regex(_)) {
            owned = value.to_ascii_lowercase();
            owned.as_str()
        } else {
            value
        };
        match &self.matcher {
            Matcher::Exact(p) => p.iter().any(|p| v == p),
            Matcher::Prefix(p) => p.iter().any(|p| v.starts_with(p.as_str())),
            Matcher::Suffix(p) => p.iter().any(|p| v.ends_with(p.as_str())),
            Matcher::Substring(p) => p.iter().any(|p| v.contains(p.as_str())),
            Matcher::Regex(r) => r.iter().any(|r| r.is_match(v)),
            Matcher::Ip(nets) => v.parse().map(|ip| nets.iter().any(|(n, l)| in_net(ip, *n, *l))).unwrap_or(false),
            Matcher::Bool => !v.is_empty(),
            Matcher::Found => true,
            Matcher::Int(r) | Matcher::Len(r) => {
                let n = match &self.matcher {
                    Matcher::Len(_) => Some(v.len() as i64),
                    _ => v.trim().parse().ok(),
                };
                n.is_some_and(|n| r.iter().any(|(lo, hi)| lo.is_none_or(|l| n >= l) && hi.is_none_or(|h| n <= h)))
            }
            Matcher::Dom(p) => p.iter().any(|p| words_in(v, p, &['.', '/', '?', ':', '#'])),
            Matcher::Dir(p) => p.iter().any(|p| words_in(v, p, &['/', '?', '#'])),
        }
    }
}

/// `-m dom` / `-m dir`: `pattern` as whole words of `value`, delimited by `delims`.
pub(crate) fn words_in(value: &str, pattern: &str, delims: &[char]) -> bool {
    let trimmed = pattern.trim_matches(|c| delims.contains(&c));
    if trimmed.is_empty() {
        return false;
    }
    let mut from = 0;
    while let Some(i) = value[from..].find(trimmed) {
        let start = from + i;
        let end = start + trimmed.len();
        let before = value[..start].chars().next_back().is_none_or(|c| delims.contains(&c));
        let after = value[end..].chars().next().is_none_or(|c| delims.contains(&c));
        if before && after {
            return true;
        }
        from = start + trimmed.chars().next().map_or(1, char::len_utf8);
    }
    false
}

/// `LO:HI` patterns (see `MatchKind::Int`).
fn ranges(acl: &Acl) -> Result<Vec<Range>, CompileError> {
    acl.patterns
        .iter()
        .map(|p| {
            let bad = || CompileError::AclAddress { acl: acl.name.clone(), pattern: p.clone() };
            let (lo, hi) = p.split_once(':').ok_or_else(bad)?;
            let end = |t: &str| if t.is_empty() { Ok(None) } else { t.parse().map(Some).map_err(|_| bad()) };
            Ok((end(lo)?, end(hi)?))
        })
        .collect()
}

/// Who a request comes from and what it has set so far: what conditions read besides the
/// message (ports and the bind address for sample fetches, the transaction's variables).
pub(crate) struct Who<'a> {
    pub peer: SocketAddr,
    pub bind: SocketAddr,
    pub tls: Option<&'a fulcrum_tls::Negotiated>,
    pub vars: &'a super::rules::Vars,
}

/// What a condition can look at: the client's address always; the request in `mode http`;
/// the TLS ClientHello's server name and handshake type in `mode tcp`, once read.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    pub client: IpAddr,
    pub req: Option<&'a Parts>,
    pub sni: Option<&'a str>,
    pub hello_type: Option<u8>,
    /// What a TLS connection fulcrum terminated negotiated (`ssl_fc*`, `ssl_c_*`).
    pub tls: Option<&'a fulcrum_tls::Negotiated>,
    /// The client's and the bind's full addresses, and the variables (sample fetches).
    pub peer: Option<SocketAddr>,
    pub bind: Option<SocketAddr>,
    pub vars: Option<&'a super::rules::Vars>,
    /// The response, in response rules (`status`, `res.hdr`, `res.cook`).
    pub resp: Option<super::rules::Resp<'a>>,
}

impl<'a> Facts<'a> {
    /// The facts of an HTTP transaction (without its request: set `req`).
    pub fn of(who: &Who<'a>) -> Facts<'a> {
        Facts {
            client: who.peer.ip(),
            req: None,
            sni: None,
            hello_type: None,
            tls: who.tls,
            peer: Some(who.peer),
            bind: Some(who.bind),
            vars: Some(who.vars),
            resp: None,
        }
    }

    /// A connection's facts before any request (`mode tcp`, UDP).
    pub fn connection(peer: SocketAddr, bind: Option<SocketAddr>) -> Facts<'a> {
        Facts {
            client: peer.ip(),
            req: None,
            sni: None,
            hello_type: None,
            tls: None,
            peer: Some(peer),
            bind,
            vars: None,
            resp: None,
        }
    }

    /// What a sample expression reads of these facts (`empty`: the variables when there are
    /// none).
    pub(crate) fn scope<'b>(&'b self, empty: &'b super::rules::Vars) -> super::rules::Scope<'b> {
        super::rules::Scope {
            client: self.peer.unwrap_or(SocketAddr::new(self.client, 0)),
            bind: self.bind.unwrap_or(SocketAddr::new(IpAddr::from([0, 0, 0, 0]), 0)),
            tls: self.tls,
            frontend: "",
            backend: None,
            vars: self.vars.unwrap_or(empty),
        }
    }
}

/// `ADDR` or `ADDR/LEN`.
pub fn parse_net(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
        None => (s.parse::<IpAddr>().ok()?, None),
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len = len.unwrap_or(max);
    (len <= max).then_some((addr, len))
}

pub fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        _ => ip,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// A condition with ACL names resolved to indexes.
#[derive(Debug)]
pub struct CompiledCondition {
    unless: bool,
    alternatives: Vec<Vec<(bool, usize)>>,
}

impl CompiledCondition {
    pub fn compile(cond: &Condition, acls: &[CompiledAcl]) -> Result<Self, CompileError> {
        let alternatives = cond
            .alternatives
            .iter()
            .map(|terms| {
                terms
                    .iter()
                    .map(|t| {
                        acls.iter()
                            .position(|a| a.name == t.acl)
                            .map(|i| (t.negate, i))
                            .ok_or_else(|| CompileError::UnknownAcl(t.acl.clone()))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CompiledCondition { unless: cond.unless, alternatives })
    }

    pub fn eval(&self, acls: &[CompiledAcl], req: &Parts, who: &Who<'_>) -> bool {
        self.eval_facts(acls, &Facts { req: Some(req), ..Facts::of(who) })
    }

    pub fn eval_facts(&self, acls: &[CompiledAcl], facts: &Facts<'_>) -> bool {
        let hit = self.alternatives.iter().any(|terms| {
            terms.iter().all(|(negate, i)| acls.get(*i).is_some_and(|a| a.matches_facts(facts)) != *negate)
        });
        hit != self.unless
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks() {
        let (n, l) = parse_net("10.0.0.0/8").expect("valid");
        assert!(in_net("10.1.2.3".parse().expect("ip"), n, l));
        assert!(!in_net("11.1.2.3".parse().expect("ip"), n, l));
        assert!(in_net("::ffff:10.1.2.3".parse().expect("ip"), n, l));
        let (n, l) = parse_net("0.0.0.0/0").expect("valid");
        assert!(in_net("8.8.8.8".parse().expect("ip"), n, l));
        assert!(parse_net("10.0.0.0/33").is_none());
        assert!(parse_net("nonsense").is_none());
    }
}
