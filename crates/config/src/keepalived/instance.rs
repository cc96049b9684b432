//! `vrrp_instance NAME { ... }`: one instance, with keepalived's defaults and semantics.
use std::net::IpAddr;
use std::time::Duration;

use super::keywords::*;
use super::tokenize::Stmt;
use super::{hint_for, segments, Parser};
use crate::diag::Problem;
use crate::partial::Spots;
use crate::values::parse_number;
use crate::values::{parse_seconds, parse_vip_addr, parse_weight};
use fulcrum_model::vrrp::{Tracked, Vip, VrrpInstance, VrrpState};
use fulcrum_model::Origin;

/// One instance while its block is read.
struct Draft {
    inst: VrrpInstance,
    spots: Spots,
    version_set: bool,
}

fn instance_arity(kw: &str) -> Option<usize> {
    match kw {
        "nopreempt" | "preempt" | "vrrp_strict" | "accept" | "no_accept" | "use_vmac" => Some(0),
        k if instance_ignored(k).is_some() || INSTANCE_UNSUPPORTED.contains(&k) => Some(0),
        k if k.starts_with("notify") => Some(0),
        "authentication" | "virtual_ipaddress" | "virtual_ipaddress_excluded" | "unicast_peer" => Some(0),
        k if k.starts_with("track_") => Some(0),
        _ => Some(1),
    }
}

impl Parser {
    pub(super) fn instance(&mut self, at: &Origin, name: &str, body: &[Stmt]) {
        let mut inst = VrrpInstance::new(name);
        inst.origin = at.clone();
        inst.version = self.defaults.version.unwrap_or(2);
        inst.strict = self.defaults.strict;
        if let Some(d) = self.defaults.garp_master_delay {
            inst.garp_master_delay = d;
        }
        if let Some(n) = self.defaults.garp_master_repeat {
            inst.garp_master_repeat = n;
        }
        if let Some(r) = self.defaults.garp_master_refresh {
            inst.garp_master_refresh = r;
        }
        let mut draft = Draft { inst, spots: Spots::new("vrrp_instance", at.clone()), version_set: false };
        let known: Vec<&str> =
            INSTANCE.iter().chain(INSTANCE_UNSUPPORTED).chain(IGNORED_INSTANCE_WORDS).copied().collect();
        let mut mcast_src: Option<(IpAddr, Origin)> = None;
        for item in body {
            let segments = segments(&item.words, &known, instance_arity);
            let count = segments.len();
            for (i, words) in segments.into_iter().enumerate() {
                let block = if i + 1 == count { item.block.as_deref() } else { None };
                self.instance_line(&item.at, &mut draft, words, block, &mut mcast_src);
            }
        }
        if let Some((addr, origin)) = mcast_src {
            if draft.inst.unicast_src_ip.is_none() {
                draft.inst.unicast_src_ip = Some(addr);
                draft.spots.add("unicast_src_ip", origin.line);
            }
            let why = "fulcrum sends adverts from this address (as unicast_src_ip does) and to the VRRP multicast group unless unicast_peer is given";
            self.warn(&origin, format!("'mcast_src_ip' is read as the source address of adverts: {why}"), None);
        }
        let Draft { mut inst, spots, version_set } = draft;
        crate::vrrp_checks::settle(&mut inst, &spots, version_set, &mut self.sink.diags);
        if let Some(first) = self.out.vrrp.instances.iter().find(|i| i.name == name) {
            let hint = Some(format!("first defined at {}", crate::diag::place(&first.origin)));
            return self.error(at, format!("vrrp_instance '{name}' is defined twice"), hint);
        }
        self.out.vrrp_spots.push(spots);
        self.out.vrrp.instances.push(inst);
    }

    fn instance_line(
        &mut self,
        at: &Origin,
        draft: &mut Draft,
        words: &[String],
        block: Option<&[Stmt]>,
        mcast_src: &mut Option<(IpAddr, Origin)>,
    ) {
        let kw = words.first().map(String::as_str).unwrap_or_default();
        let args = words.get(1..).unwrap_or_default();
        let block_keyword = matches!(
            kw,
            "authentication"
                | "virtual_ipaddress"
                | "virtual_ipaddress_excluded"
                | "unicast_peer"
                | "track_interface"
                | "track_script"
                | "track_backend"
        );
        if block_keyword {
            self.extra(at, kw, args, 0);
            let Some(body) = block else {
                return self.error(at, format!("'{kw}' needs a block"), Some(format!("write {kw} {{ ... }}")));
            };
            return self.instance_block(at, draft, kw, body);
        }
        if let Some(why) = instance_ignored(kw) {
            return self.warn(at, format!("'{kw}' is ignored: {why}"), None);
        }
        if INSTANCE_UNSUPPORTED.contains(&kw) {
            return self.report(at, Problem::unsupported(format!("vrrp_instance '{kw}' is not supported yet")));
        }
        self.no_block(at, kw, block);
        let inst = &mut draft.inst;
        let key: &'static str = match INSTANCE.iter().find(|k| **k == kw) {
            Some(k) => k,
            None => {
                let all: Vec<&str> = INSTANCE
                    .iter()
                    .chain(INSTANCE_UNSUPPORTED)
                    .copied()
                    .chain(IGNORED_INSTANCE_WORDS.iter().copied())
                    .collect();
                let problem = Problem::invalid(format!("unknown vrrp_instance keyword '{kw}'"));
                let problem = match hint_for(kw, &[&all]) {
                    Some(h) => problem.hint(h),
                    None => problem,
                };
                return self.report(at, problem);
            }
        };
        draft.spots.add(key, at.line);
        if matches!(key, "nopreempt" | "preempt" | "vrrp_strict" | "accept" | "no_accept") {
            self.extra(at, kw, args, 0);
            match key {
                "nopreempt" => inst.nopreempt = true,
                // The default, as keepalived reads it: undoes an earlier `nopreempt`.
                "preempt" => inst.nopreempt = false,
                "vrrp_strict" => inst.strict = true,
                _ => inst.accept = Some(key == "accept"),
            }
            return;
        }
        let result: Result<(), Problem> = match key {
            "use_vmac" => {
                self.extra(at, kw, args, 1);
                // The default name needs the VRID, which may come later: settled at the end.
                inst.use_vmac = Some(args.first().cloned().unwrap_or_default());
                Ok(())
            }
            "notify_master" | "notify_backup" | "notify_fault" | "notify_stop" | "notify" => {
                if let Some(command) = self.command(at, kw, args) {
                    let slot = match key {
                        "notify_master" => &mut inst.notify_master,
                        "notify_backup" => &mut inst.notify_backup,
                        "notify_fault" => &mut inst.notify_fault,
                        "notify_stop" => &mut inst.notify_stop,
                        _ => &mut inst.notify,
                    };
                    *slot = Some(command);
                }
                Ok(())
            }
            _ => match self.one(at, kw, args) {
                Some(value) => instance_value(inst, key, value, &mut draft.version_set, mcast_src, at),
                None => Ok(()),
            },
        };
        if let Err(problem) = result {
            draft.spots.reported.push(key);
            self.report(at, problem);
        }
    }

    fn instance_block(&mut self, at: &Origin, draft: &mut Draft, kw: &str, body: &[Stmt]) {
        match kw {
            "authentication" => self.authentication(at, draft, body),
            "virtual_ipaddress" | "virtual_ipaddress_excluded" => {
                let excluded = kw.ends_with("excluded");
                for item in body {
                    self.vip_line(item, draft, excluded);
                }
            }
            "unicast_peer" => {
                for item in body {
                    let mut words = item.words.iter();
                    while let Some(word) = words.next() {
                        if word == "min_ttl" || word == "max_ttl" {
                            words.next();
                            self.report(
                                &item.at,
                                Problem::unsupported(format!("unicast_peer option '{word}' is not supported yet")),
                            );
                            continue;
                        }
                        match word.parse::<IpAddr>() {
                            Ok(addr) => {
                                draft.spots.add("unicast_peer", item.at.line);
                                draft.inst.unicast_peers.push(addr);
                            }
                            Err(_) => {
                                draft.spots.reported.push("unicast_peer");
                                self.error(
                                    &item.at,
                                    format!("invalid unicast peer '{word}' (expected an IP address)"),
                                    None,
                                );
                            }
                        }
                    }
                }
            }
            _ => {
                let key: &'static str = match kw {
                    "track_interface" => "track_interface",
                    "track_script" => "track_script",
                    _ => "track_backend",
                };
                for item in body {
                    self.track_line(item, draft, key);
                }
            }
        }
    }

    fn authentication(&mut self, at: &Origin, draft: &mut Draft, body: &[Stmt]) {
        draft.spots.add("authentication", at.line);
        let mut auth_type: Option<(String, Origin)> = None;
        let mut pass: Option<(String, Origin)> = None;
        for item in body {
            for words in segments(&item.words, &["auth_type", "auth_pass"], |_| Some(1)) {
                let kw = words.first().map(String::as_str).unwrap_or_default();
                let args = words.get(1..).unwrap_or_default();
                match kw {
                    "auth_type" | "auth_pass" => {
                        let Some(value) = self.one(&item.at, kw, args) else { continue };
                        let slot = if kw == "auth_type" { &mut auth_type } else { &mut pass };
                        *slot = Some((value.to_string(), item.at.clone()));
                    }
                    k => {
                        self.report(&item.at, Problem::unknown("authentication keyword", k, ["auth_type", "auth_pass"]))
                    }
                }
            }
        }
        match auth_type.as_ref().map(|(t, o)| (t.as_str(), o)) {
            Some(("PASS", _)) | None => {}
            Some(("AH", o)) => {
                let o = o.clone();
                draft.spots.reported.push("authentication");
                let hint = Some("use PASS, or no authentication block".to_string());
                return self.error(
                    &o,
                    "AH authentication is not supported (deprecated by RFC 3768 errata); use PASS or none",
                    hint,
                );
            }
            Some((other, o)) => {
                let o = o.clone();
                draft.spots.reported.push("authentication");
                return self.report(&o, Problem::unknown("auth_type", other, ["PASS", "AH"]));
            }
        }
        match (auth_type, pass) {
            (Some(_), Some((p, o))) => {
                if p.chars().count() > 8 {
                    let kept: String = p.chars().take(8).collect();
                    let message =
                        format!("auth_pass is longer than 8 characters: keepalived (and fulcrum) use only '{kept}'");
                    self.warn(&o, message, Some("shorten it to 8 characters".into()));
                }
                let truncated: String = p.chars().take(8).collect();
                draft.inst.auth_pass = Some(truncated);
            }
            (Some((_, o)), None) => {
                draft.spots.reported.push("authentication");
                self.error(
                    &o,
                    "authentication with auth_type PASS needs auth_pass",
                    Some("add e.g. auth_pass 1111".into()),
                );
            }
            (None, Some((_, o))) => {
                draft.spots.reported.push("authentication");
                self.error(&o, "auth_pass without auth_type", Some("add auth_type PASS".into()));
            }
            (None, None) => {}
        }
    }

    /// `ADDR[/PREFIX] [dev IF] [label L] [brd B] [scope S]`, several on one line if need be.
    fn vip_line(&mut self, item: &Stmt, draft: &mut Draft, excluded: bool) {
        const OPTIONS: &[&str] = &["dev", "label", "brd", "broadcast", "scope"];
        let key = if excluded { "vip_excluded" } else { "vip" };
        let mut words = item.words.iter().peekable();
        let mut current: Option<Vip> = None;
        let flush = |current: &mut Option<Vip>, draft: &mut Draft| {
            if let Some(vip) = current.take() {
                draft.spots.add(key, item.at.line);
                if excluded {
                    draft.inst.vips_excluded.push(vip);
                } else {
                    draft.inst.vips.push(vip);
                }
            }
        };
        while let Some(word) = words.next() {
            let w = word.as_str();
            if current.is_some() && (OPTIONS.contains(&w) || VIP_UNSUPPORTED.contains(&w)) {
                let takes_value = !matches!(w, "home" | "-nodad" | "nodad" | "noprefixroute" | "autojoin" | "no_track");
                let value = if takes_value { words.next().cloned() } else { None };
                if takes_value && value.is_none() {
                    self.error(&item.at, format!("'{w}' needs a value"), None);
                    break;
                }
                let value = value.unwrap_or_default();
                let Some(vip) = current.as_mut() else { break };
                match w {
                    "dev" => vip.dev = Some(value),
                    "label" => vip.label = Some(value),
                    "brd" | "broadcast" => self.warn(&item.at, format!("'{w} {value}' is ignored: fulcrum adds virtual addresses without a broadcast address, as keepalived does by default"), None),
                    "scope" => self.warn(&item.at, format!("'scope {value}' is ignored: fulcrum adds virtual addresses with scope global"), None),
                    _ => self.report(&item.at, Problem::unsupported(format!("virtual address option '{w}' is not supported yet"))),
                }
                continue;
            }
            match parse_vip_addr(w) {
                Ok((addr, prefix)) => {
                    flush(&mut current, draft);
                    current = Some(Vip { addr, prefix, dev: None, label: None });
                }
                Err(e) => {
                    draft.spots.reported.push("vip");
                    if current.is_some() {
                        let problem = Problem::unknown("virtual address option", w, OPTIONS.iter().copied());
                        self.report(&item.at, problem);
                    } else {
                        self.error(&item.at, e.to_string(), None);
                    }
                    break;
                }
            }
        }
        flush(&mut current, draft);
        if item.block.is_some() {
            self.error(&item.at, "a virtual address takes no block", None);
        }
    }

    /// `NAME [weight N]` in track_interface, track_script or track_backend.
    fn track_line(&mut self, item: &Stmt, draft: &mut Draft, key: &'static str) {
        let mut words = item.words.iter().peekable();
        while let Some(name) = words.next() {
            let mut tracked = Tracked { name: name.clone(), weight: None };
            if words.peek().is_some_and(|w| *w == "weight") {
                words.next();
                match words.next().map(|w| parse_weight(w)) {
                    Some(Ok(w)) => tracked.weight = Some(w),
                    Some(Err(e)) => self.error(&item.at, e.to_string(), None),
                    None => self.error(&item.at, "'weight' needs a value", None),
                }
                if words.peek().is_some_and(|w| *w == "reverse") {
                    words.next();
                    self.report(&item.at, Problem::unsupported("'weight ... reverse' is not supported yet"));
                }
            }
            draft.spots.add(key, item.at.line);
            let list = match key {
                "track_interface" => &mut draft.inst.track_interfaces,
                "track_script" => &mut draft.inst.track_scripts,
                _ => &mut draft.inst.track_backends,
            };
            list.push(tracked);
        }
        if item.block.is_some() {
            self.error(&item.at, format!("an entry of {key} takes no block"), None);
        }
    }
}

const IGNORED_INSTANCE_WORDS: &[&str] =
    &["dont_track_primary", "smtp_alert", "lvs_sync_daemon_interface", "debug", "native_ipv6", "skip_check_adv_addr"];

/// A single-valued vrrp_instance keyword.
fn instance_value(
    inst: &mut VrrpInstance,
    key: &str,
    value: &str,
    version_set: &mut bool,
    mcast_src: &mut Option<(IpAddr, Origin)>,
    at: &Origin,
) -> Result<(), Problem> {
    match key {
        "state" => {
            inst.state = match value.to_ascii_uppercase().as_str() {
                "MASTER" => VrrpState::Master,
                "BACKUP" => VrrpState::Backup,
                _ => return Err(Problem::unknown("state", value, ["MASTER", "BACKUP"])),
            }
        }
        "interface" => inst.interface = value.to_string(),
        "virtual_router_id" => {
            inst.vrid = match parse_number::<u32>(value, "virtual_router_id")? {
                n @ 1..=255 => n as u8,
                n => return Err(Problem::invalid(format!("virtual_router_id {n} is out of range (1 to 255)"))),
            }
        }
        "priority" => {
            inst.priority = match parse_number::<u32>(value, "priority")? {
                n @ 1..=255 => n as u8,
                n => return Err(Problem::invalid(format!("priority {n} is out of range (1 to 255)"))),
            }
        }
        "advert_int" => inst.advert_int = parse_seconds(value, "advert_int")?,
        "version" => {
            *version_set = true;
            inst.version = match value {
                "2" => 2,
                "3" => 3,
                _ => return Err(Problem::invalid(format!("version must be 2 or 3, not '{value}'"))),
            }
        }
        "preempt_delay" => {
            let d = parse_seconds(value, "preempt_delay")?;
            if d > Duration::from_secs(1000) {
                return Err(Problem::invalid(format!("preempt_delay {value} is out of range (0 to 1000 seconds)")));
            }
            inst.preempt_delay = d;
        }
        "unicast_src_ip" | "mcast_src_ip" => {
            let addr: IpAddr = value
                .parse()
                .map_err(|_| Problem::invalid(format!("invalid {key} '{value}' (expected an IP address)")))?;
            if key == "mcast_src_ip" {
                *mcast_src = Some((addr, at.clone()));
            } else {
                inst.unicast_src_ip = Some(addr);
            }
        }
        "garp_master_delay" => inst.garp_master_delay = parse_seconds(value, key)?,
        "garp_master_repeat" => inst.garp_master_repeat = parse_number(value, key)?,
        "garp_master_refresh" => {
            let d = parse_seconds(value, key)?;
            inst.garp_master_refresh = (!d.is_zero()).then_some(d);
        }
        "strict_mode" => {
            inst.strict = match value {
                "on" | "true" | "yes" => true,
                "off" | "false" | "no" => false,
                _ => return Err(Problem::unknown("strict_mode value", value, ["on", "off"])),
            }
        }
        _ => return Err(Problem::invalid(format!("'{key}' cannot be read here"))),
    }
    Ok(())
}
