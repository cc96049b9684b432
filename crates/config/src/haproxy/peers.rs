//! `peers NAME` sections: the processes that keep stick tables in step, as HAProxy 2.6 reads
//! them: `peer NAME ADDR:PORT` lines (the old style), or `bind ADDR:PORT` with `server NAME
//! [ADDR:PORT]` lines (the new one; the local peer's `server` has no address), `table NAME
//! type ...` lines, `disabled` and `enabled`.
use fulcrum_model::{Origin, Peer, Peers};

use super::Parser;
use crate::diag::Problem;
use crate::values::{parse_host_port, resolve};

/// Keywords of a peers section.
const KEYWORDS: &[&str] =
    &["peer", "server", "bind", "table", "disabled", "enabled", "default-server", "default-bind", "log"];

/// A peers section being read, and which style its peers are written in.
#[derive(Debug)]
pub(super) struct PeersState {
    pub section: Peers,
    old_style: Option<usize>,
    new_style: Option<usize>,
}

impl PeersState {
    pub(super) fn new(name: String, origin: Origin) -> PeersState {
        let section = Peers { name, origin, peers: Vec::new(), bind: None, tables: Vec::new(), disabled: false };
        PeersState { section, old_style: None, new_style: None }
    }
}

impl Parser {
    pub(super) fn peers_line(&mut self, st: &mut PeersState, line: usize, words: &[String]) {
        if let Err(problem) = self.peers_keyword(st, line, words) {
            self.sink.report(line, problem);
        }
    }

    fn peers_keyword(&mut self, st: &mut PeersState, line: usize, words: &[String]) -> Result<(), Problem> {
        let keyword = words.first().map(String::as_str).unwrap_or_default();
        let args = words.get(1..).unwrap_or_default();
        let mixed = || {
            Problem::invalid("'peer' and 'bind'/'server' lines cannot be mixed in one peers section")
                .hint("write every peer as 'peer NAME ADDR:PORT', or use 'bind' with 'server' lines")
        };
        match keyword {
            "peer" | "server" => {
                let (name, addr, params) = match (keyword, args) {
                    ("peer", [name, addr, params @ ..]) => (name, Some(addr), params),
                    ("peer", _) => {
                        return Err(Problem::invalid("'peer' needs a name and an address")
                            .hint("e.g. peer lb1 192.0.2.1:10000"))
                    }
                    (_, [name]) => (name, None, &[][..]),
                    (_, [name, addr, params @ ..]) => (name, Some(addr), params),
                    _ => return Err(Problem::invalid("'server' needs a name").hint("e.g. server lb2 192.0.2.2:10000")),
                };
                let style = if keyword == "peer" { &mut st.old_style } else { &mut st.new_style };
                style.get_or_insert(line);
                if st.old_style.is_some() && st.new_style.is_some() {
                    return Err(mixed());
                }
                if let Some(other) = st.section.peers.iter().find(|p| p.name == *name) {
                    return Err(Problem::invalid(format!(
                        "peer '{name}' is already defined in peers section '{}' (line {})",
                        st.section.name, other.line
                    )));
                }
                if !crate::acl::valid_acl_name(name) {
                    return Err(Problem::invalid(format!("invalid peer name '{name}'")));
                }
                self.peer_params(line, params)?;
                let addr = match addr {
                    Some(a) => {
                        let hp = parse_host_port(a)?;
                        if hp.port.is_none() {
                            return Err(
                                Problem::invalid(format!("peer '{name}' needs a port")).hint(format!("e.g. {a}:10000"))
                            );
                        }
                        Some(resolve(&hp, "peer address")?)
                    }
                    None => None,
                };
                st.section.peers.push(Peer { name: name.clone(), addr, line });
            }
            "bind" => {
                st.new_style.get_or_insert(line);
                if st.old_style.is_some() {
                    return Err(mixed());
                }
                let [addr, params @ ..] = args else {
                    return Err(Problem::invalid("'bind' needs an address").hint("e.g. bind 192.0.2.1:10000"));
                };
                if st.section.bind.is_some() {
                    return Err(Problem::invalid("a peers section has one 'bind' line"));
                }
                self.peer_params(line, params)?;
                let hp = parse_host_port(addr)?;
                if hp.port.is_none() {
                    return Err(Problem::invalid("the peers 'bind' needs a port").hint(format!("e.g. {addr}:10000")));
                }
                st.section.bind = Some(resolve(&hp, "peers bind address")?);
            }
            "table" => {
                let [name, rest @ ..] = args else {
                    return Err(Problem::invalid("'table' needs a name and a type")
                        .hint("e.g. table sessions type string len 32 size 100k expire 30m"));
                };
                if st.section.tables.iter().any(|(n, _)| n == name) {
                    return Err(Problem::invalid(format!(
                        "table '{name}' is already declared in peers section '{}'",
                        st.section.name
                    )));
                }
                if rest.iter().any(|w| w == "peers") {
                    return Err(Problem::invalid("a table of a peers section is shared with its peers: drop 'peers'"));
                }
                let mut table = super::backend::parse_stick_table(rest)?;
                table.peers = Some(st.section.name.clone());
                st.section.tables.push((name.clone(), table));
            }
            "disabled" => st.section.disabled = true,
            "enabled" => st.section.disabled = false,
            "default-server" | "default-bind" | "log" => {
                self.sink.warn(line, format!("'{keyword}' in a peers section is ignored"), None);
            }
            other => return Err(Problem::unknown("peers keyword", other, KEYWORDS.iter().copied())),
        }
        Ok(())
    }

    /// The parameters after a peer's address: TLS between peers is not there yet; the others
    /// have no meaning for a peer.
    fn peer_params(&mut self, line: usize, params: &[String]) -> Result<(), Problem> {
        if let Some(tls) = params.iter().find(|p| matches!(p.as_str(), "ssl" | "crt" | "ca-file" | "verify")) {
            return Err(Problem::unsupported(format!("'{tls}' between peers is not supported yet"))
                .hint("peers speak in clear text; keep them on a private network"));
        }
        if !params.is_empty() {
            self.sink.warn(line, format!("'{}' on a peer line is ignored", params.join(" ")), None);
        }
        Ok(())
    }

    /// The end of a peers section: a section without peers is refused, as HAProxy does.
    pub(super) fn finish_peers(&mut self, st: PeersState) {
        let section = st.section;
        if section.peers.is_empty() {
            let hint = Some("add e.g. 'peer lb1 192.0.2.1:10000' for each node, this one included".to_string());
            self.sink.error(section.origin.line, format!("peers section '{}' has no peer", section.name), hint);
            return;
        }
        if let Some(duplicate) = self.out.peers.iter().find(|p| p.name == section.name) {
            let message =
                format!("peers section '{}' is already defined (line {})", section.name, duplicate.origin.line);
            self.sink.error(section.origin.line, message, None);
            return;
        }
        self.out.peers.push(section);
    }
}
