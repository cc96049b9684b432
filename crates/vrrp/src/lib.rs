//! VRRP for fulcrum, sans-IO: the packet codec and the state machine of VRRPv2 (RFC 3768) and
//! VRRPv3 (RFC 5798), behaving on the wire and in time as keepalived 2.2.7 does, so that a
//! fulcrum node and a keepalived node can share a virtual router.
//!
//! This crate has no sockets, no netlink, no clock and no async runtime. The I/O layer (another
//! module) owns those and drives this core, in the style of quinn-proto:
//!
//! ```text
//!   raw socket (IPPROTO_VRRP)                         timer
//!        │ bytes, src, dst, ttl                         │ sleep until poll_timeout()
//!        ▼                                              ▼
//!   parse_ipv4_packet (IPv4) → check_ttl → decode → Instance::handle_advert / handle_timeout
//!                                                       │
//!                                     poll_action() until None
//!        ┌──────────────────┬────────────────┬─────────┴────────┬────────────────────┐
//!   SendAdvert{priority}  BecomeMaster     BecomeBackup /     StateChanged{from,to}
//!   encode(advert(p))     add VIPs, GARP/NA  BecomeFault/Stopped  log, notify scripts
//!   send, TTL 255                          remove VIPs
//! ```
//!
//! Time is an explicit [`std::time::Instant`] argument everywhere, so tests run two instances
//! against each other in virtual time, deterministically.
//!
//! ```
//! use std::net::{IpAddr, Ipv4Addr};
//! use std::time::{Duration, Instant};
//! use fulcrum_vrrp::{Action, AddrContext, Config, Instance, State, Version, decode, encode};
//!
//! let vip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100));
//! let me = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
//! let config = Config::new(Version::V3, 51, 100, me, vec![vip]);
//! let t0 = Instant::now();
//! let mut vr = Instance::new(config, t0).expect("valid config");
//! assert_eq!(vr.state(), State::Backup);
//! // Nobody advertises: the Master_Down timer (3 s + Skew_Time) expires and we take over.
//! assert_eq!(vr.poll_timeout(), Some(t0 + Duration::from_micros(3_609_375)));
//! while vr.poll_action().is_some() {}
//! vr.handle_timeout(t0 + Duration::from_secs(4));
//! assert_eq!(vr.poll_action(), Some(Action::SendAdvert { priority: 100 }));
//! assert_eq!(vr.poll_action(), Some(Action::BecomeMaster));
//! let ctx = AddrContext::multicast(me);
//! let bytes = encode(&vr.advert(100), &ctx).expect("encodable");
//! let back = decode(&bytes, &ctx, &vr.config().decode_expect()).expect("valid");
//! assert_eq!(back, vr.advert(100));
//! ```
//!
//! # Codec
//!
//! [`encode`] produces the VRRP payload only (the kernel writes the IP header on a raw socket);
//! [`decode`] validates everything RFC 3768/5798 §7.1 and keepalived validate and returns a
//! precise [`DecodeError`]. It never panics, whatever the bytes. The VRRPv3 checksum covers the
//! IP pseudo-header for IPv4 too (keepalived rejects a message-only v3 checksum); VRRPv2 sums the
//! message only. [`parse_ipv4_packet`] strips the IPv4 header that an IPv4 raw socket delivers.
//! Byte fixtures captured from keepalived 2.2.7 (`tests/fixtures/`) decode and re-encode to the
//! identical bytes.
//!
//! # State machine: keepalived 2.2.7 behaviours reproduced (read from its source, and observed)
//!
//! - **Startup.** Priority 255 (address owner) becomes MASTER at once. Anything else enters
//!   BACKUP with a full Master_Down_Interval. `state MASTER` ([`InitialState::Master`]) does
//!   *not* shorten that: keepalived 2.2.7 only fast-starts an owner (or a reloaded master, or a
//!   sync-group member); a non-owner with `state MASTER` waits 3 × advert_int + Skew_Time like
//!   any backup, and observed captures agree (a `state MASTER` priority-150 v2 instance became
//!   master 3.414 s after start). Its only effect here is that keepalived ignores `nopreempt`
//!   and `preempt_delay` with it ([`Config::ignored_options`]).
//! - **Timers.** Skew_Time is `(256 - prio)/256` s for v2 and `(256 - prio) × Master_Adver_Interval
//!   / 256` for v3 (interval in whole centiseconds), in truncated microseconds as keepalived
//!   computes them; Master_Down_Interval = `down_timer_adverts` (3) × Master_Adver_Interval +
//!   Skew_Time. A v3 backup adopts the interval of the master it accepts; a v2 instance drops
//!   adverts whose interval differs from its own.
//! - **Backup.** Accepts (restarts Master_Down timer) an advert whose priority is ≥ its own, or
//!   any advert when `nopreempt`, or a lower one during the preempt delay. Equal priority is
//!   accepted whatever the source address: as in the RFCs, a backup never preempts an equal
//!   master; the address tie-break acts between two routers that are both master (e.g. two
//!   equal backups that time out together) and the lower address yields. A priority-0 advert
//!   sets the timer to Skew_Time (fast failover).
//! - **preempt_delay.** The delay starts when a backup first accepts a lower-priority advert
//!   (after startup, or since entering BACKUP, or since it last heard a priority ≥ its own,
//!   which cancels the delay). Until it ends, lower-priority adverts are accepted; afterwards they
//!   are discarded, so the backup takes over one Master_Down_Interval after the last advert it
//!   accepted. Observed with keepalived (preempt_delay 2, advert_int 1, priority 150 against
//!   100): adverts accepted at +0 s and +1 s after the first one heard, discarded from +2 s,
//!   takeover at +1 s + 3.414 s. keepalived's man page ("delay until preemption ... when seeing
//!   a lower priority master", "approximately" advert timeout + preempt_delay) describes the
//!   same thing loosely; its code, reproduced here, counts from the first lower advert heard.
//! - **Master.** A priority-0 advert makes it advertise at once (and restart its Adver timer). A
//!   lower priority (or equal priority from a lower address) is answered with an immediate
//!   advert, unless `lower_prio_no_advert`. A higher priority (or equal from a higher address)
//!   makes it BACKUP (with `higher_prio_send_advert`, after one last advert). Two owners (255
//!   each): keepalived lowers its own priority to 254 and yields.
//! - **Fault.** Entering FAULT from MASTER sends a priority-0 advert and releases the addresses;
//!   adverts are ignored in FAULT; leaving it enters BACKUP with a full Master_Down_Interval
//!   (an owner goes MASTER at once).
//! - **Priority adjustments** (tracked scripts/interfaces with weights): effective priority =
//!   base + sum of weights, clamped to 1..=254, never applied to an owner. A backup's running
//!   Master_Down timer moves by the change in Skew_Time; a master advertises the new priority
//!   from its next advert on.
//! - **Shutdown.** A master sends a priority-0 advert; addresses are released; state INIT.
//! - **Forced transitions** (for sync groups, whose rules live in the I/O layer because they
//!   span instances): [`Instance::force_backup`] (a master gives up with a priority-0 advert and
//!   waits a full Master_Down_Interval; a backup restarts its Master_Down timer) and
//!   [`Instance::force_master`] (a backup takes over as if its Master_Down timer had expired).
//!   Neither acts in FAULT or INIT.
//!
//! Not modelled here: sync-group policy (which member moves when), IPsec AH (rejected), VMAC, accept mode, garp timing, unicast
//! peer lists (the codec and machine work for unicast; peer filtering belongs to the I/O layer).
#![forbid(unsafe_code)]

mod codec;
mod config;
mod instance;
pub mod rules;
mod timers;

pub use codec::{
    check_ttl, decode, encode, is_ipv6_link_local, parse_ipv4_packet, AddrContext, Advert, Auth, DecodeError,
    DecodeExpect, EncodeError, Ipv4Packet, Version, VersionFields, AUTH_TYPE_AH, AUTH_TYPE_NONE, AUTH_TYPE_PASS,
    HEADER_LEN, IPPROTO_AH, IPPROTO_VRRP, MULTICAST_V4, MULTICAST_V6, PRIORITY_OWNER, PRIORITY_STOP, TYPE_ADVERT,
    V2_AUTH_DATA_LEN, V3_MAX_INTERVAL_CS, VRRP_TTL,
};
pub use config::{Config, IgnoredOption, InitialState};
pub use instance::{Action, AdvertOutcome, DiscardReason, Instance, MasterInfo, State};
pub use rules::ConfigError;
pub use timers::{master_down_interval, skew_time};
