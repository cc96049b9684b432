//! Checks of the VRRP part of the Model, whichever format wrote it: what one instance needs,
//! what instances, scripts, sync groups and backends must agree on. Messages point at the line
//! of the keyword concerned when the front-end recorded it ([`Spots`]).
use std::net::IpAddr;

use fulcrum_vrrp::rules::{check_instance, InstanceShape};
use fulcrum_vrrp::{ConfigError, Version};

use crate::diag::Severity;
use crate::diag::{at, place};
use crate::partial::Spots;
use crate::{did_you_mean, Diagnostic};
use fulcrum_model::vrrp::VrrpInstance;
use fulcrum_model::{Model, Origin};

/// What keepalived settles once an instance is read, done the same way here so that fulcrum
/// and keepalived peers agree on the wire.
pub(crate) fn settle(inst: &mut VrrpInstance, spots: &Spots, version_set: bool, diags: &mut Vec<Diagnostic>) {
    let v6 = inst.vips.first().map(|v| v.addr.is_ipv6()).or_else(|| inst.unicast_src_ip.map(|a| a.is_ipv6()));
    // VRRPv2 carries IPv4 only: keepalived runs IPv6 instances as version 3 unless told otherwise.
    if v6 == Some(true) && !version_set {
        inst.version = 3;
    }
    if let Some(name) = inst.use_vmac.as_mut().filter(|n| n.is_empty()) {
        *name = format!("vrrp.{}", inst.vrid);
    }
    if inst.strict && inst.auth_pass.is_some() && inst.version == 2 {
        inst.auth_pass = None;
        let message = format!(
            "vrrp_instance '{}': authentication is dropped in strict mode (vrrp_strict), as keepalived does, so that adverts match keepalived peers",
            inst.name
        );
        let hint = "remove the authentication block, or vrrp_strict";
        diags.push(at(&spots.at("authentication", 0), Severity::Warning, message, Some(hint.into())));
    }
}

/// `use_vmac NAME`: an interface name the kernel takes (at most 15 bytes, no `/`, blanks or
/// `:`).
fn vmac_name(inst: &VrrpInstance, sp: &Spots, diags: &mut Vec<Diagnostic>) {
    let Some(name) = &inst.use_vmac else { return };
    let bad = name.len() > 15 || name.is_empty() || name.contains(['/', ':']) || name.contains(char::is_whitespace);
    if bad {
        let message = format!("use_vmac name '{name}' of vrrp_instance '{}' is not a valid interface name", inst.name);
        let hint = "at most 15 characters, without '/', ':' or blanks; the default is vrrp.VRID";
        diags.push(at(&sp.at("use_vmac", 0), Severity::Error, message, Some(hint.into())));
    }
}

fn family(addr: &IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

/// Checks of the VRRP part of a combined Model.
pub(crate) fn check(model: &Model, spots: &[Spots], diags: &mut Vec<Diagnostic>) {
    let spots_of = |kind: &'static str, origin: &Origin| {
        spots
            .iter()
            .find(|s| s.kind == kind && s.origin == *origin)
            .cloned()
            .unwrap_or_else(|| Spots::new(kind, origin.clone()))
    };
    for (i, inst) in model.vrrp.instances.iter().enumerate() {
        let sp = spots_of("vrrp_instance", &inst.origin);
        instance(inst, &sp, diags);
        references(model, inst, &sp, diags);
        let earlier = model.vrrp.instances.get(..i).unwrap_or_default();
        let v6 = |x: &VrrpInstance| x.vips.first().map(|v| v.addr.is_ipv6());
        if let Some(other) = earlier
            .iter()
            .find(|o| o.vrid == inst.vrid && o.vrid != 0 && o.interface == inst.interface && v6(o) == v6(inst))
        {
            let message = format!(
                "vrrp_instances '{}' and '{}' both use virtual_router_id {} on interface {}",
                other.name, inst.name, inst.vrid, inst.interface
            );
            let hint = format!("give each its own virtual_router_id (see {})", place(&other.origin));
            diags.push(at(&sp.at("virtual_router_id", 0), Severity::Error, message, Some(hint)));
        }
    }
    for script in &model.vrrp.scripts {
        if script.timeout.is_some_and(|t| t > script.interval) {
            let message = format!("vrrp_script '{}': timeout is longer than interval", script.name);
            diags.push(at(&script.origin, Severity::Warning, message, Some("runs would overlap".into())));
        }
    }
    sync_groups(model, &spots_of, diags);
}

fn instance(inst: &VrrpInstance, sp: &Spots, diags: &mut Vec<Diagnostic>) {
    let name = &inst.name;
    protocol_rules(inst, sp, diags);
    if inst.interface.is_empty() && !sp.was_reported("interface") {
        let hint = Some("add e.g. interface eth0".to_string());
        diags.push(at(&sp.origin, Severity::Error, format!("vrrp_instance '{name}' has no interface"), hint));
    }
    // keepalived's own rule, whatever the version: an instance holds at least one address.
    if inst.vips.is_empty() && inst.vips_excluded.is_empty() && !sp.was_reported("vip") {
        let hint = Some("add e.g. virtual_ipaddress { 192.168.200.16/24 }".to_string());
        diags.push(at(&sp.origin, Severity::Error, format!("vrrp_instance '{name}' has no virtual address"), hint));
    }
    vmac_name(inst, sp, diags);
    let mut error = |origin: Origin, message: String, hint: &str| {
        diags.push(at(&origin, Severity::Error, message, (!hint.is_empty()).then(|| hint.to_string())))
    };
    // The instance's family is its first address's; the others must follow (excluded addresses
    // may mix). The addresses themselves are the protocol's rule (above); these are keepalived's.
    let first = inst.vips.first().map(|v| v.addr).or(inst.unicast_src_ip).or(inst.unicast_peers.first().copied());
    if let Some(first) = first {
        if let Some(src) = inst.unicast_src_ip.filter(|a| a.is_ipv4() != first.is_ipv4()) {
            error(
                sp.at("unicast_src_ip", 0),
                format!(
                    "unicast_src_ip {src} of vrrp_instance '{name}' is {}, the instance is {}",
                    family(&src),
                    family(&first)
                ),
                "",
            );
        }
        for (i, peer) in inst.unicast_peers.iter().enumerate().filter(|(_, a)| a.is_ipv4() != first.is_ipv4()) {
            error(
                sp.at("unicast_peer", i),
                format!(
                    "unicast peer {peer} of vrrp_instance '{name}' is {}, the instance is {}",
                    family(peer),
                    family(&first)
                ),
                "",
            );
        }
    }
    if inst.strict && !inst.unicast_peers.is_empty() {
        error(
            sp.at("unicast_peer", 0),
            format!("vrrp_instance '{name}' has unicast peers, which strict mode (vrrp_strict) forbids"),
            "remove vrrp_strict, or unicast_peer",
        );
    }
    if inst.priority == 255 {
        let message = format!("priority 255 makes vrrp_instance '{name}' the address owner: keepalived requires its virtual addresses to be local addresses of this host");
        diags.push(at(
            &sp.at("priority", 0),
            Severity::Warning,
            message,
            Some("use 254 or less unless this host owns the addresses".into()),
        ));
    }
    if inst.nopreempt && inst.state == fulcrum_model::vrrp::VrrpState::Master {
        let message = format!("nopreempt has no effect with state MASTER (vrrp_instance '{name}')");
        diags.push(at(
            &sp.at("nopreempt", 0),
            Severity::Warning,
            message,
            Some("use state BACKUP on every node with nopreempt".into()),
        ));
    }
}

/// What VRRP itself allows ([`fulcrum_vrrp::rules`], which the VRRP engine checks again before
/// an instance runs), each broken rule reported at the keyword to change.
fn protocol_rules(inst: &VrrpInstance, sp: &Spots, diags: &mut Vec<Diagnostic>) {
    let name = &inst.name;
    let version = if inst.version == 3 { Version::V3 } else { Version::V2 };
    let vips: Vec<IpAddr> = inst.vips.iter().map(|v| v.addr).collect();
    let shape = InstanceShape {
        version,
        vrid: inst.vrid,
        priority: inst.priority,
        advert_interval: inst.advert_int,
        authenticated: inst.auth_pass.is_some(),
        vips: &vips,
    };
    for broken in check_instance(&shape) {
        let (key, message, hint) = match broken {
            ConfigError::Vrid => (
                "virtual_router_id",
                format!("vrrp_instance '{name}' has no virtual_router_id"),
                "add e.g. virtual_router_id 51 (1 to 255, the same on every node of the pair)".to_string(),
            ),
            ConfigError::Priority => {
                ("priority", format!("priority of vrrp_instance '{name}' must be from 1 to 255"), String::new())
            }
            ConfigError::AdvertInterval { version: Version::V2, .. } => (
                "advert_int",
                format!("advert_int {} of vrrp_instance '{name}' is not valid for VRRP version 2 (whole seconds from 1 to 255)", inst.advert_int.as_secs_f64()),
                "use version 3 for sub-second adverts (0.01 to 40.95 seconds)".to_string(),
            ),
            ConfigError::AdvertInterval { version: Version::V3, .. } => (
                "advert_int",
                format!("advert_int {} of vrrp_instance '{name}' is not valid for VRRP version 3 (0.01 to 40.95 seconds, in hundredths)", inst.advert_int.as_secs_f64()),
                String::new(),
            ),
            ConfigError::V3Auth => (
                "authentication",
                format!("vrrp_instance '{name}' uses authentication, which VRRP version 3 does not have (RFC 5798)"),
                "remove the authentication block, or use version 2".to_string(),
            ),
            ConfigError::V2Ipv6 => (
                "version",
                format!("vrrp_instance '{name}' has IPv6 addresses, which VRRP version 2 cannot carry"),
                "use version 3".to_string(),
            ),
            // No address at all is reported above (keepalived's rule, for every version).
            ConfigError::NoVips if vips.is_empty() && inst.vips_excluded.is_empty() => continue,
            ConfigError::NoVips => (
                "vip",
                format!("vrrp_instance '{name}' has only excluded addresses: VRRP version 3 adverts need one"),
                "move one address to virtual_ipaddress".to_string(),
            ),
            ConfigError::TooManyVips(n) => (
                "vip",
                format!("vrrp_instance '{name}' has {n} virtual addresses; an advert carries at most 255"),
                "put the others in virtual_ipaddress_excluded".to_string(),
            ),
            ConfigError::VipFamily(addr) => {
                let first = vips.first().copied().unwrap_or(addr);
                let i = vips.iter().position(|a| *a == addr).unwrap_or(0);
                let message = format!(
                    "virtual address {addr} of vrrp_instance '{name}' is {}, the instance is {}",
                    family(&addr),
                    family(&first)
                );
                let hint = "put addresses of the other family in virtual_ipaddress_excluded, or in another instance";
                diags.push(at(&sp.at("vip", i), Severity::Error, message, Some(hint.into())));
                continue;
            }
            // Only the running host can break these (the advert source address).
            ConfigError::DownTimerAdverts(_) | ConfigError::Ipv6PrimaryNotLinkLocal(_) => continue,
        };
        if sp.was_reported(key) {
            continue;
        }
        // A missing VRID is about the instance; the others about the keyword's line.
        let origin = if matches!(broken, ConfigError::Vrid) { sp.origin.clone() } else { sp.at(key, 0) };
        diags.push(at(&origin, Severity::Error, message, (!hint.is_empty()).then_some(hint)));
    }
}

fn references(model: &Model, inst: &VrrpInstance, sp: &Spots, diags: &mut Vec<Diagnostic>) {
    for (i, tracked) in inst.track_scripts.iter().enumerate() {
        if !model.vrrp.scripts.iter().any(|s| s.name == tracked.name) {
            let message =
                format!("vrrp_instance '{}' tracks script '{}', which is not defined", inst.name, tracked.name);
            let hint = did_you_mean(&tracked.name, model.vrrp.scripts.iter().map(|s| s.name.as_str()))
                .map(|b| format!("did you mean {b}?"))
                .unwrap_or_else(|| format!("define it with vrrp_script {} {{ script \"...\" }}", tracked.name));
            diags.push(at(&sp.at("track_script", i), Severity::Error, message, Some(hint)));
        }
    }
    for (i, tracked) in inst.track_backends.iter().enumerate() {
        if model.backend(&tracked.name).is_none() {
            let message =
                format!("vrrp_instance '{}' tracks backend '{}', which is not defined", inst.name, tracked.name);
            let hint = did_you_mean(&tracked.name, model.backends.iter().map(|b| b.name.as_str()))
                .map(|b| format!("did you mean {b}?"))
                .unwrap_or_else(|| {
                    "track_backend names a backend of the haproxy.cfg or TOML file loaded with this one".into()
                });
            diags.push(at(&sp.at("track_backend", i), Severity::Error, message, Some(hint)));
        }
    }
}

fn sync_groups(model: &Model, spots_of: &dyn Fn(&'static str, &Origin) -> Spots, diags: &mut Vec<Diagnostic>) {
    let mut member_of: Vec<(&str, &str, Origin)> = Vec::new();
    for group in &model.vrrp.sync_groups {
        let sp = spots_of("vrrp_sync_group", &group.origin);
        if group.instances.is_empty() {
            let message = format!("vrrp_sync_group '{}' has no instance", group.name);
            diags.push(at(&group.origin, Severity::Error, message, Some("add e.g. group { VI_1 VI_2 }".into())));
        }
        for (i, name) in group.instances.iter().enumerate() {
            let origin = sp.at("group", i);
            if !model.vrrp.instances.iter().any(|x| &x.name == name) {
                let message = format!("vrrp_sync_group '{}' names instance '{name}', which is not defined", group.name);
                let hint = did_you_mean(name, model.vrrp.instances.iter().map(|x| x.name.as_str()))
                    .map(|b| format!("did you mean {b}?"));
                diags.push(at(&origin, Severity::Error, message, hint));
                continue;
            }
            if let Some((_, other, first)) = member_of.iter().find(|(n, _, _)| n == name) {
                let message = format!("instance '{name}' is in two sync groups ('{other}' and '{}')", group.name);
                diags.push(at(&origin, Severity::Error, message, Some(format!("first at {}", place(first)))));
                continue;
            }
            member_of.push((name, &group.name, origin));
        }
    }
}
