//! `no_accept` (and `vrrp_strict`, which implies it): a master that is not the address owner
//! drops traffic addressed to its virtual addresses, as keepalived 2.2.7 does with nftables
//! (`ip daddr @vips drop` on input, `ip saddr @vips drop` on output, neighbour discovery let
//! through so that IPv6 addresses still resolve).
//!
//! Each instance has its own table, `inet fulcrum_NAME_VRID`, written with the `nft` command in
//! one atomic batch when the instance becomes MASTER and deleted (with everything in it) when it
//! leaves MASTER or stops, by the crash guard after a crash, and at start (a leftover of a run
//! whose guard could not clean up). Nothing else of the ruleset is touched. Without `nft` the
//! instance runs and logs an error saying what to install.

use std::io::{self, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The drop rules of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoAccept {
    /// The instance's table (in family `inet`).
    pub table: String,
    /// The addresses to drop traffic to and from.
    pub vips: Vec<IpAddr>,
}

/// The table name of instance `name` with `vrid`: letters, digits and `_` only.
pub fn table_name(name: &str, vrid: u8) -> String {
    let clean: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    format!("fulcrum_{clean}_{vrid}")
}

/// The `nft` program, if installed (looked up in PATH, then /usr/sbin and /sbin, which a
/// service's PATH may lack).
pub fn nft_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("nft"))
        .find(|p| p.is_file())
}

/// What to say when `nft` is missing.
pub const NFT_MISSING: &str = "the nft command is not installed (install nftables, e.g. apt-get install nftables)";

fn list(addrs: &[&IpAddr]) -> String {
    addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

impl NoAccept {
    /// The nft script that (re)creates the table.
    pub fn script(&self) -> String {
        let v4: Vec<&IpAddr> = self.vips.iter().filter(|a| a.is_ipv4()).collect();
        let v6: Vec<&IpAddr> = self.vips.iter().filter(|a| a.is_ipv6()).collect();
        let chain = |name: &str, hook: &str, dir: &str| {
            let mut c = format!("    chain {name} {{\n        type filter hook {hook} priority -1; policy accept;\n");
            if !v6.is_empty() {
                c.push_str("        icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept\n");
            }
            if !v4.is_empty() {
                c.push_str(&format!("        ip {dir} {{ {} }} drop\n", list(&v4)));
            }
            if !v6.is_empty() {
                c.push_str(&format!("        ip6 {dir} {{ {} }} drop\n", list(&v6)));
            }
            c.push_str("    }\n");
            c
        };
        format!(
            "{}table inet {} {{\n{}{}}}\n",
            remove_script(&self.table),
            self.table,
            chain("in", "input", "daddr"),
            chain("out", "output", "saddr")
        )
    }

    /// Installs the drop rules (replacing the table atomically).
    pub fn block(&self, nft: &PathBuf) -> io::Result<()> {
        run(nft, &self.script())
    }
}

/// Deleting a table that may not exist: `add` first makes the `delete` always valid.
fn remove_script(table: &str) -> String {
    format!("add table inet {table}\ndelete table inet {table}\n")
}

/// Deletes table `table` (family inet) and its rules; an absent table is not an error.
pub fn unblock(nft: &PathBuf, table: &str) -> io::Result<()> {
    run(nft, &remove_script(table))
}

fn run(nft: &PathBuf, script: &str) -> io::Result<()> {
    let mut child = Command::new(nft)
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("{} -f -: {}", nft.display(), String::from_utf8_lossy(&out.stderr).trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_nft_identifiers() {
        assert_eq!(table_name("VI_1", 51), "fulcrum_VI_1_51");
        assert_eq!(table_name("web-vip.2", 7), "fulcrum_web_vip_2_7");
    }

    #[test]
    fn script_drops_both_directions() {
        let rules = NoAccept {
            table: "fulcrum_VI_1_51".into(),
            vips: vec!["10.0.0.100".parse().expect("ip"), "10.0.0.101".parse().expect("ip")],
        };
        let s = rules.script();
        assert!(s.starts_with("add table inet fulcrum_VI_1_51\ndelete table inet fulcrum_VI_1_51\n"), "{s}");
        assert!(s.contains("type filter hook input priority -1; policy accept;"), "{s}");
        assert!(s.contains("ip daddr { 10.0.0.100, 10.0.0.101 } drop"), "{s}");
        assert!(s.contains("ip saddr { 10.0.0.100, 10.0.0.101 } drop"), "{s}");
        assert!(!s.contains("icmpv6"), "{s}");
        let v6 = NoAccept { table: "t".into(), vips: vec!["fd00::1".parse().expect("ip")] };
        assert!(v6.script().contains("nd-neighbor-solicit"));
        assert!(v6.script().contains("ip6 daddr { fd00::1 } drop"));
    }
}
