//! `[vrrp]` in fulcrum's TOML: the keys of keepalived.conf's `vrrp_instance`, `vrrp_script` and
//! `vrrp_sync_group` in snake_case, durations with units ("1s", "100ms"). Checked by the same
//! code as keepalived.conf once read (`vrrp_checks`).
use std::net::IpAddr;
use std::time::Duration;

use super::{At, Doc, Node, Table};
use crate::diag::Problem;
use crate::partial::Spots;
use crate::values::parse_duration;
use fulcrum_model::vrrp::{Tracked, Vip, VrrpInstance, VrrpScript, VrrpState, VrrpSyncGroup};

const VRRP_KEYS: &[&str] = &[
    "router_id",
    "version",
    "strict",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "instance",
    "script",
    "sync_group",
];
const INSTANCE_KEYS: &[&str] = &[
    "name",
    "state",
    "interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "version",
    "auth_pass",
    "vips",
    "vips_excluded",
    "nopreempt",
    "preempt_delay",
    "unicast_src_ip",
    "unicast_peer",
    "garp_master_delay",
    "garp_master_repeat",
    "garp_master_refresh",
    "track_interface",
    "track_script",
    "track_backend",
    "notify_master",
    "notify_backup",
    "notify_fault",
    "notify_stop",
    "notify",
    "use_vmac",
    "strict",
    "accept",
];
const SCRIPT_KEYS: &[&str] = &["name", "script", "interval", "timeout", "weight", "rise", "fall"];
const SYNC_GROUP_KEYS: &[&str] =
    &["name", "group", "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify"];
const VIP_KEYS: &[&str] = &["address", "dev", "label"];
const TRACK_KEYS: &[&str] = &["name", "weight"];

/// keepalived.conf words people will type, and the TOML key that means the same.
pub(super) const VRRP_ALIASES: &[(&str, &str)] = &[
    ("virtual_ipaddress", "vips"),
    ("virtual_ipaddress_excluded", "vips_excluded"),
    ("vrid", "virtual_router_id"),
    ("unicast_peers", "unicast_peer"),
    ("vrrp_strict", "strict"),
    ("authentication", "auth_pass"),
    ("vrrp_version", "version"),
    ("instances", "instance"),
    ("vrrp_instance", "instance"),
    ("vrrp_script", "script"),
    ("vrrp_sync_group", "sync_group"),
    ("members", "group"),
];

/// `[vrrp]` settings that are defaults for its instances.
#[derive(Default)]
struct Defaults {
    version: Option<u8>,
    strict: bool,
    garp_master_delay: Option<Duration>,
    garp_master_repeat: Option<u32>,
    garp_master_refresh: Option<Duration>,
}

impl Doc<'_> {
    pub(super) fn vrrp(&mut self, node: &At<Node>) {
        let Some(mut t) = self.table(node, "[vrrp]".into()) else { return };
        if let Some((id, _)) = self.string(&mut t, "router_id") {
            self.out.vrrp.router_id = Some(id);
        }
        let mut defaults = Defaults { version: self.vrrp_version(&mut t), ..Defaults::default() };
        defaults.strict = self.boolean(&mut t, "strict").unwrap_or(false);
        defaults.garp_master_delay = self.vrrp_duration(&mut t, "garp_master_delay");
        defaults.garp_master_repeat = self.integer(&mut t, "garp_master_repeat");
        defaults.garp_master_refresh = self.vrrp_duration(&mut t, "garp_master_refresh");
        if let Some(node) = t.get("script") {
            for item in self.tables(node, "vrrp.script") {
                self.vrrp_script(item);
            }
        }
        if let Some(node) = t.get("instance") {
            for item in self.tables(node, "vrrp.instance") {
                self.vrrp_instance(item, &defaults);
            }
        }
        if let Some(node) = t.get("sync_group") {
            for item in self.tables(node, "vrrp.sync_group") {
                self.vrrp_sync_group(item);
            }
        }
        self.finish(t, VRRP_KEYS);
    }

    /// A duration with a unit: a bare number would be seconds to keepalived users and
    /// milliseconds to HAProxy users.
    fn vrrp_duration(&mut self, t: &mut Table<'_>, key: &str) -> Option<Duration> {
        let node = t.get(key)?;
        let line = self.line_of(node);
        match node.get_ref() {
            Node::Str(s) if s.bytes().last().is_some_and(|b| b.is_ascii_alphabetic()) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.sink.error(line, format!("'{key}': {e}"), None);
                    None
                }
            },
            _ => {
                let hint = Some(format!("write e.g. {key} = \"1s\" or \"100ms\""));
                self.sink.error(line, format!("'{key}' must be a duration with a unit"), hint);
                None
            }
        }
    }

    fn vrrp_version(&mut self, t: &mut Table<'_>) -> Option<u8> {
        let node = t.get("version")?;
        let line = self.line_of(node);
        match node.get_ref() {
            Node::Int(2) => Some(2),
            Node::Int(3) => Some(3),
            _ => {
                self.sink.error(line, "version must be 2 or 3", None);
                None
            }
        }
    }

    fn vrrp_name(&mut self, t: &mut Table<'_>, what: &str) -> Option<(String, usize)> {
        match self.string(t, "name") {
            Some((name, line)) if !name.is_empty() && !name.contains(char::is_whitespace) => Some((name, line)),
            Some((name, line)) => {
                self.sink.error(line, format!("invalid {what} name '{name}'"), Some("names are one word".into()));
                None
            }
            None => {
                let hint = Some(format!("add name = \"...\" to this [[{what}]]"));
                self.sink.error(t.line, format!("{what} without a name"), hint);
                None
            }
        }
    }

    fn vrrp_script(&mut self, node: &At<Node>) {
        let Some(mut t) = self.table(node, "[[vrrp.script]]".into()) else { return };
        let Some((name, line)) = self.vrrp_name(&mut t, "vrrp.script") else {
            t.used.iter_mut().for_each(|u| *u = true);
            return;
        };
        t.context = format!("vrrp script '{name}'");
        let mut script = VrrpScript::new(name.clone(), self.origin(line));
        match self.string(&mut t, "script") {
            Some((s, _)) if !s.trim().is_empty() => script.script = s,
            _ => {
                let hint = Some("add e.g. script = \"/usr/bin/killall -0 haproxy\"".to_string());
                self.sink.error(line, format!("vrrp script '{name}' has no 'script'"), hint);
            }
        }
        if let Some(d) = self.vrrp_duration(&mut t, "interval") {
            match d.is_zero() {
                true => self.sink.error(line, "interval must be greater than 0", None),
                false => script.interval = d,
            }
        }
        script.timeout = self.vrrp_duration(&mut t, "timeout");
        if let Some(w) = self.vrrp_weight(&mut t) {
            script.weight = w;
        }
        for key in ["rise", "fall"] {
            match self.integer::<u32>(&mut t, key) {
                Some(0) => self.sink.error(line, format!("{key} must be at least 1"), None),
                Some(n) if key == "rise" => script.rise = n,
                Some(n) => script.fall = n,
                None => {}
            }
        }
        self.finish(t, SCRIPT_KEYS);
        if let Some(first) = self.out.vrrp.scripts.iter().find(|s| s.name == name) {
            let hint = Some(format!("first defined on line {}", first.origin.line));
            return self.sink.error(line, format!("vrrp script '{name}' is defined twice"), hint);
        }
        self.out.vrrp.scripts.push(script);
    }

    fn vrrp_weight(&mut self, t: &mut Table<'_>) -> Option<i32> {
        let node = t.get("weight")?;
        let line = self.line_of(node);
        let Node::Int(n) = node.get_ref() else {
            self.wrong_type(node, "weight", "an integer");
            return None;
        };
        match crate::values::parse_weight(&n.to_string()) {
            Ok(w) => Some(w),
            Err(e) => {
                self.sink.error(line, e.to_string(), None);
                None
            }
        }
    }

    fn vrrp_instance(&mut self, node: &At<Node>, defaults: &Defaults) {
        let Some(mut t) = self.table(node, "[[vrrp.instance]]".into()) else { return };
        let Some((name, line)) = self.vrrp_name(&mut t, "vrrp.instance") else {
            t.used.iter_mut().for_each(|u| *u = true);
            return;
        };
        t.context = format!("vrrp instance '{name}'");
        let mut inst = VrrpInstance::new(name.clone());
        inst.origin = self.origin(line);
        // fulcrum's own defaults are the fast ones: VRRPv3 with 100 ms adverts, so a pair fails
        // over in a few hundred milliseconds (keepalived.conf keeps keepalived's v2 / 1 s).
        inst.version = defaults.version.unwrap_or(3);
        inst.advert_int = std::time::Duration::from_millis(100);
        inst.strict = defaults.strict;
        inst.garp_master_delay = defaults.garp_master_delay.unwrap_or(inst.garp_master_delay);
        inst.garp_master_repeat = defaults.garp_master_repeat.unwrap_or(inst.garp_master_repeat);
        inst.garp_master_refresh = defaults.garp_master_refresh.filter(|d| !d.is_zero());
        let mut spots = Spots::new("vrrp_instance", inst.origin.clone());
        self.instance_scalars(&mut t, &mut inst, &mut spots);
        let version_at = t.entries.iter().find(|(k, _)| k.value == "version").map(|(k, _)| self.line_of(k));
        if let Some(line) = version_at {
            spots.add("version", line);
        }
        if let Some(v) = self.vrrp_version(&mut t) {
            inst.version = v;
        }
        // VRRPv2 counts whole seconds: its default interval is keepalived's 1 s.
        if inst.version == 2 && !spots.has("advert_int") {
            inst.advert_int = std::time::Duration::from_secs(1);
        }
        self.instance_lists(&mut t, &mut inst, &mut spots);
        self.finish(t, INSTANCE_KEYS);
        crate::vrrp_checks::settle(&mut inst, &spots, version_at.is_some(), &mut self.sink.diags);
        if let Some(first) = self.out.vrrp.instances.iter().find(|i| i.name == name) {
            let hint = Some(format!("first defined on line {}", first.origin.line));
            return self.sink.error(line, format!("vrrp instance '{name}' is defined twice"), hint);
        }
        self.out.vrrp_spots.push(spots);
        self.out.vrrp.instances.push(inst);
    }

    /// Records where `key` is, and returns its node.
    fn spot<'n>(&self, t: &mut Table<'n>, spots: &mut Spots, key: &'static str) -> Option<&'n At<Node>> {
        let node = t.get(key)?;
        spots.add(key, self.line_of(node));
        Some(node)
    }

    fn instance_scalars(&mut self, t: &mut Table<'_>, inst: &mut VrrpInstance, spots: &mut Spots) {
        if let Some(node) = self.spot(t, spots, "state") {
            match node.get_ref() {
                Node::Str(s) if s.eq_ignore_ascii_case("MASTER") => inst.state = VrrpState::Master,
                Node::Str(s) if s.eq_ignore_ascii_case("BACKUP") => inst.state = VrrpState::Backup,
                Node::Str(s) => {
                    let line = self.line_of(node);
                    self.report(line, Problem::unknown("state", s, ["MASTER", "BACKUP"]));
                }
                _ => self.wrong_type(node, "state", "\"MASTER\" or \"BACKUP\""),
            }
        }
        if let Some((interface, line)) = self.string(t, "interface") {
            spots.add("interface", line);
            inst.interface = interface;
        }
        for key in ["virtual_router_id", "priority"] {
            let Some(node) = self.spot(t, spots, key) else { continue };
            let line = self.line_of(node);
            match node.get_ref() {
                Node::Int(n @ 1..=255) => {
                    let n = u8::try_from(*n).unwrap_or(u8::MAX);
                    if key == "priority" {
                        inst.priority = n;
                    } else {
                        inst.vrid = n;
                    }
                }
                Node::Int(n) => {
                    spots.reported.push(key);
                    self.sink.error(line, format!("{key} {n} is out of range (1 to 255)"), None);
                }
                _ => self.wrong_type(node, key, "an integer from 1 to 255"),
            }
        }
        if let Some(line) = t.entries.iter().find(|(k, _)| k.value == "advert_int").map(|(k, _)| self.line_of(k)) {
            spots.add("advert_int", line);
            match self.vrrp_duration(t, "advert_int") {
                Some(d) => inst.advert_int = d,
                None => spots.reported.push("advert_int"),
            }
        }
        if let Some((pass, line)) = self.string(t, "auth_pass") {
            spots.add("authentication", line);
            if pass.chars().count() > 8 {
                let kept: String = pass.chars().take(8).collect();
                let message =
                    format!("auth_pass is longer than 8 characters: keepalived (and fulcrum) use only '{kept}'");
                self.sink.warn(line, message, Some("shorten it to 8 characters".into()));
            }
            inst.auth_pass = Some(pass.chars().take(8).collect());
        }
        if let Some(node) = self.spot(t, spots, "nopreempt") {
            match node.get_ref() {
                Node::Bool(b) => inst.nopreempt = *b,
                _ => self.wrong_type(node, "nopreempt", "true or false"),
            }
        }
        if let Some(d) = self.vrrp_duration(t, "preempt_delay") {
            inst.preempt_delay = d;
        }
        if let Some((addr, line)) = self.string(t, "unicast_src_ip") {
            spots.add("unicast_src_ip", line);
            match addr.parse::<IpAddr>() {
                Ok(a) => inst.unicast_src_ip = Some(a),
                Err(_) => {
                    self.sink.error(line, format!("invalid unicast_src_ip '{addr}' (expected an IP address)"), None)
                }
            }
        }
        if let Some(d) = self.vrrp_duration(t, "garp_master_delay") {
            inst.garp_master_delay = d;
        }
        if let Some(n) = self.integer(t, "garp_master_repeat") {
            inst.garp_master_repeat = n;
        }
        if let Some(d) = self.vrrp_duration(t, "garp_master_refresh") {
            inst.garp_master_refresh = (!d.is_zero()).then_some(d);
        }
        inst.notify_master = self.string(t, "notify_master").map(|(s, _)| s);
        inst.notify_backup = self.string(t, "notify_backup").map(|(s, _)| s);
        inst.notify_fault = self.string(t, "notify_fault").map(|(s, _)| s);
        inst.notify_stop = self.string(t, "notify_stop").map(|(s, _)| s);
        inst.notify = self.string(t, "notify").map(|(s, _)| s);
        if let Some(node) = t.get("use_vmac") {
            match node.get_ref() {
                Node::Bool(true) => inst.use_vmac = Some(String::new()),
                Node::Bool(false) => inst.use_vmac = None,
                Node::Str(s) => inst.use_vmac = Some(s.clone()),
                _ => self.wrong_type(node, "use_vmac", "true, false or an interface name"),
            }
        }
        if let Some(b) = self.boolean(t, "strict") {
            inst.strict = b;
        }
        inst.accept = self.boolean(t, "accept");
    }

    fn instance_lists(&mut self, t: &mut Table<'_>, inst: &mut VrrpInstance, spots: &mut Spots) {
        for (key, spot) in [("vips", "vip"), ("vips_excluded", "vip_excluded")] {
            let Some(node) = t.get(key) else { continue };
            let Node::Array(items) = node.get_ref() else {
                self.wrong_type(node, key, "an array of addresses");
                continue;
            };
            for item in items {
                let line = self.line_of(item);
                match self.vip(item) {
                    Some(vip) => {
                        spots.add(spot, line);
                        if key == "vips" {
                            inst.vips.push(vip);
                        } else {
                            inst.vips_excluded.push(vip);
                        }
                    }
                    None => spots.reported.push("vip"),
                }
            }
        }
        for (addr, line) in self.strings(t, "unicast_peer") {
            match addr.parse::<IpAddr>() {
                Ok(a) => {
                    spots.add("unicast_peer", line);
                    inst.unicast_peers.push(a);
                }
                Err(_) => {
                    self.sink.error(line, format!("invalid unicast peer '{addr}' (expected an IP address)"), None)
                }
            }
        }
        for key in ["track_interface", "track_script", "track_backend"] {
            let Some(node) = t.get(key) else { continue };
            let Node::Array(items) = node.get_ref() else {
                self.wrong_type(node, key, "an array of names or { name, weight } tables");
                continue;
            };
            for item in items {
                let Some(tracked) = self.tracked(item, key) else { continue };
                spots.add(key, self.line_of(item));
                match key {
                    "track_interface" => inst.track_interfaces.push(tracked),
                    "track_script" => inst.track_scripts.push(tracked),
                    _ => inst.track_backends.push(tracked),
                }
            }
        }
    }

    /// `"10.0.0.10/24 dev eth0 label eth0:1"` or `{ address = "10.0.0.10/24", dev = "eth0" }`.
    fn vip(&mut self, item: &At<Node>) -> Option<Vip> {
        let line = self.line_of(item);
        let (addr, dev, label) = match item.get_ref() {
            Node::Str(text) => {
                let mut words = text.split_whitespace();
                let addr = words.next().unwrap_or_default().to_string();
                let (mut dev, mut label) = (None, None);
                while let Some(option) = words.next() {
                    let Some(value) = words.next() else {
                        self.sink.error(line, format!("'{option}' needs a value in virtual address '{text}'"), None);
                        return None;
                    };
                    match option {
                        "dev" => dev = Some(value.to_string()),
                        "label" => label = Some(value.to_string()),
                        other => {
                            self.report(line, Problem::unknown("virtual address option", other, ["dev", "label"]));
                            return None;
                        }
                    }
                }
                (addr, dev, label)
            }
            Node::Table(_) => {
                let mut vt = self.table(item, "a virtual address".into())?;
                let addr = self.string(&mut vt, "address");
                let dev = self.string(&mut vt, "dev").map(|(s, _)| s);
                let label = self.string(&mut vt, "label").map(|(s, _)| s);
                self.finish(vt, VIP_KEYS);
                let Some((addr, _)) = addr else {
                    self.sink.error(
                        line,
                        "virtual address without 'address'",
                        Some("e.g. { address = \"10.0.0.10/24\" }".into()),
                    );
                    return None;
                };
                (addr, dev, label)
            }
            _ => {
                self.wrong_type(item, "vips", "an array of strings or tables");
                return None;
            }
        };
        match crate::values::parse_vip_addr(&addr) {
            Ok((addr, prefix)) => Some(Vip { addr, prefix, dev, label }),
            Err(e) => {
                self.sink.error(line, e.to_string(), None);
                None
            }
        }
    }

    /// `"eth1"` or `{ name = "eth1", weight = -10 }`.
    fn tracked(&mut self, item: &At<Node>, key: &str) -> Option<Tracked> {
        match item.get_ref() {
            Node::Str(name) => Some(Tracked { name: name.clone(), weight: None }),
            Node::Table(_) => {
                let mut tt = self.table(item, format!("an entry of {key}"))?;
                let name = self.string(&mut tt, "name");
                let weight = self.vrrp_weight(&mut tt);
                self.finish(tt, TRACK_KEYS);
                match name {
                    Some((name, _)) => Some(Tracked { name, weight }),
                    None => {
                        let line = self.line_of(item);
                        self.sink.error(line, format!("an entry of {key} without a name"), None);
                        None
                    }
                }
            }
            _ => {
                self.wrong_type(item, key, "a name or a { name, weight } table");
                None
            }
        }
    }

    fn vrrp_sync_group(&mut self, node: &At<Node>) {
        let Some(mut t) = self.table(node, "[[vrrp.sync_group]]".into()) else { return };
        let Some((name, line)) = self.vrrp_name(&mut t, "vrrp.sync_group") else {
            t.used.iter_mut().for_each(|u| *u = true);
            return;
        };
        t.context = format!("vrrp sync group '{name}'");
        let origin = self.origin(line);
        let mut spots = Spots::new("vrrp_sync_group", origin.clone());
        let mut instances = Vec::new();
        for (member, line) in self.strings(&mut t, "group") {
            spots.add("group", line);
            instances.push(member);
        }
        let group = VrrpSyncGroup {
            name: name.clone(),
            origin,
            instances,
            notify_master: self.string(&mut t, "notify_master").map(|(s, _)| s),
            notify_backup: self.string(&mut t, "notify_backup").map(|(s, _)| s),
            notify_fault: self.string(&mut t, "notify_fault").map(|(s, _)| s),
            notify_stop: self.string(&mut t, "notify_stop").map(|(s, _)| s),
            notify: self.string(&mut t, "notify").map(|(s, _)| s),
        };
        self.finish(t, SYNC_GROUP_KEYS);
        if let Some(first) = self.out.vrrp.sync_groups.iter().find(|g| g.name == name) {
            let hint = Some(format!("first defined on line {}", first.origin.line));
            return self.sink.error(line, format!("vrrp sync group '{name}' is defined twice"), hint);
        }
        self.out.vrrp_spots.push(spots);
        self.out.vrrp.sync_groups.push(group);
    }
}
