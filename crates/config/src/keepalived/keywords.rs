//! keepalived's vocabulary: what fulcrum reads, what it accepts and ignores (and why), what it
//! knows but does not do yet, and the words used for "did you mean" hints.

pub(super) const TOP: &[&str] = &[
    "global_defs",
    "vrrp_script",
    "vrrp_instance",
    "vrrp_sync_group",
    "virtual_server",
    "virtual_server_group",
    "include",
];

/// Top-level blocks keepalived has and fulcrum does not read yet.
pub(super) const TOP_UNSUPPORTED: &[&str] = &[
    "static_ipaddress",
    "static_routes",
    "static_rules",
    "linkbeat_interfaces",
    "vrrp_track_process",
    "vrrp_track_file",
    "track_file",
    "track_process",
    "bfd_instance",
    "garp_group",
    "net_namespace",
    "net_namespace_ipvs",
    "namespace_with_ipsets",
    "use_pid_dir",
    "instance",
    "SSL",
];

pub(super) const GLOBAL: &[&str] = &[
    "router_id",
    "vrrp_version",
    "vrrp_strict",
    "vrrp_garp_master_delay",
    "vrrp_garp_master_repeat",
    "vrrp_garp_master_refresh",
];

/// global_defs settings fulcrum accepts and ignores, with why.
pub(super) fn global_ignored(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "notification_email"
        | "notification_email_from"
        | "smtp_server"
        | "smtp_connect_timeout"
        | "smtp_helo"
        | "email_faults"
        | "smtp_alert"
        | "smtp_alert_vrrp"
        | "smtp_alert_checker" => "fulcrum does not send mail; run a notify script (notify_master, notify) to alert",
        "vrrp_skip_check_adv_addr" => {
            "it only tunes keepalived's own comparison of the address list in received adverts"
        }
        "vrrp_garp_interval" | "vrrp_gna_interval" => {
            "it sets keepalived's pause between gratuitous ARPs/NAs on one interface; fulcrum paces them itself"
        }
        "enable_script_security" | "script_user" => {
            "fulcrum runs scripts as its own user; choose it with User= in the systemd unit"
        }
        "max_auto_priority"
        | "vrrp_priority"
        | "checker_priority"
        | "bfd_priority"
        | "vrrp_rt_priority"
        | "checker_rt_priority"
        | "bfd_rt_priority"
        | "vrrp_no_swap"
        | "checker_no_swap"
        | "bfd_no_swap"
        | "vrrp_cpu_affinity"
        | "checker_cpu_affinity"
        | "bfd_cpu_affinity"
        | "vrrp_rlimit_rttime"
        | "checker_rlimit_rttime"
        | "bfd_rlimit_rttime"
        | "rlimit_rttime" => "it sets the scheduling of keepalived's own processes; use the systemd unit for fulcrum's",
        "lvs_id" => "it is keepalived 1.x's name for router_id, used for LVS sync; write router_id",
        "process_names" | "process_name" | "vrrp_process_name" | "checker_process_name" | "bfd_process_name" => {
            "fulcrum is one process"
        }
        "enable_snmp_vrrp"
        | "enable_snmp_keepalived"
        | "enable_snmp_checker"
        | "enable_snmp_rfc"
        | "enable_snmp_rfcv2"
        | "enable_snmp_rfcv3"
        | "enable_traps"
        | "snmp_socket" => "fulcrum exposes Prometheus /metrics instead of SNMP",
        "vrrp_iptables" | "vrrp_ipsets" | "nftables" | "nftables_priority" | "nftables_counters" => {
            "they name keepalived's own firewall table or chains; fulcrum enforces no_accept with one nftables table per instance (inet fulcrum_NAME_VRID)"
        }
        "linkbeat_use_polling"
        | "vrrp_netlink_cmd_rcv_bufs"
        | "vrrp_netlink_cmd_rcv_bufs_force"
        | "vrrp_netlink_monitor_rcv_bufs"
        | "vrrp_netlink_monitor_rcv_bufs_force"
        | "vrrp_rx_bufs_policy"
        | "vrrp_rx_bufs_multiplier" => "it tunes keepalived's own netlink and socket buffers",
        _ => return None,
    })
}

/// global_defs settings keepalived has and fulcrum does not do yet.
pub(super) const GLOBAL_UNSUPPORTED: &[&str] = &[
    "vrrp_mcast_group4",
    "vrrp_mcast_group6",
    "dynamic_interfaces",
    "default_interface",
    "vrrp_higher_prio_send_advert",
    "vrrp_lower_prio_no_advert",
    "vrrp_garp_lower_prio_delay",
    "vrrp_garp_lower_prio_repeat",
    "vrrp_garp_master_refresh_repeat",
    "vrrp_notify_fifo",
    "vrrp_notify_fifo_script",
    "notify_fifo",
    "notify_fifo_script",
    "lvs_sync_daemon",
    "lvs_timeouts",
    "lvs_flush",
    "lvs_flush_onstop",
    "vrrp_min_garp",
    "vrrp_down_timer_adverts",
    "vrrp_version_3_strict",
    "vrrp_check_unicast_src",
    "vrrp_startup_delay",
];

pub(super) const INSTANCE: &[&str] = &[
    "state",
    "interface",
    "virtual_router_id",
    "priority",
    "advert_int",
    "version",
    "authentication",
    "virtual_ipaddress",
    "virtual_ipaddress_excluded",
    "nopreempt",
    "preempt",
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
    "vrrp_strict",
    "strict_mode",
    "accept",
    "no_accept",
    "mcast_src_ip",
];

/// vrrp_instance settings fulcrum accepts and ignores, with why.
pub(super) fn instance_ignored(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "dont_track_primary" => {
            "fulcrum always tracks the instance's interface: when it goes down, the instance goes FAULT"
        }
        "smtp_alert" => "fulcrum does not send mail; run a notify script to alert",
        "lvs_sync_daemon_interface" => "it drives LVS connection sync, which fulcrum does not run",
        "debug" => "use RUST_LOG=debug for fulcrum's own debug output",
        "native_ipv6" => "fulcrum takes the family from the addresses",
        "skip_check_adv_addr" => "it only tunes keepalived's own comparison of the address list in received adverts",
        "kernel_rx_buf_size" => "it tunes keepalived's own socket buffer",
        _ => return None,
    })
}

pub(super) const INSTANCE_UNSUPPORTED: &[&str] = &[
    "virtual_routes",
    "virtual_rules",
    "track_file",
    "track_process",
    "track_bfd",
    "unicast_ttl",
    "garp_lower_prio_delay",
    "garp_lower_prio_repeat",
    "garp_master_refresh_repeat",
    "lower_prio_no_advert",
    "higher_prio_send_advert",
    "check_unicast_src",
    "down_timer_adverts",
    "use_ipvlan",
    "vmac_xmit_base",
    "unicast_fault_no_peer",
    "old_unicast_checksum",
    "promote_secondaries",
    "notify_priority_changes",
    "notify_master_rx_lower_pri",
    "notify_deleted",
    "mcast_dst_ip",
    "track_src_ip",
    "linkbeat_use_polling",
];

pub(super) const SCRIPT: &[&str] = &["script", "interval", "timeout", "weight", "rise", "fall", "user", "init_fail"];

pub(super) const SYNC_GROUP: &[&str] =
    &["group", "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify", "smtp_alert"];

pub(super) const SYNC_GROUP_UNSUPPORTED: &[&str] = &[
    "track_script",
    "track_interface",
    "track_file",
    "track_process",
    "track_bfd",
    "global_tracking",
    "sync_group_tracking_weight",
];

/// Per-address options of `virtual_ipaddress` that keepalived has and fulcrum does not do yet.
pub(super) const VIP_UNSUPPORTED: &[&str] =
    &["peer", "home", "-nodad", "nodad", "noprefixroute", "autojoin", "no_track", "preferred_lft", "track_group"];
