//! The VRRP state machine of one virtual router (RFC 3768 §6.4, RFC 5798 §6.4), as keepalived
//! 2.2.7 runs it. Sans-IO: inputs are method calls carrying `now`, outputs are [`Action`]s to
//! poll and one deadline to wait for.

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::codec::{Advert, Version, VersionFields, PRIORITY_OWNER, PRIORITY_STOP};
use crate::config::Config;
use crate::rules::ConfigError;
use crate::timers::{master_down_interval, skew_time};

/// RFC state of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Not running: before startup, and after [`Instance::shutdown`].
    Initialize,
    /// Listening for the master; takes over when the Master_Down timer expires.
    Backup,
    /// Owns the virtual addresses and advertises.
    Master,
    /// Cannot serve (interface down, tracked script failed): silent, addresses released.
    Fault,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Initialize => "INIT",
            State::Backup => "BACKUP",
            State::Master => "MASTER",
            State::Fault => "FAULT",
        })
    }
}

/// What the I/O layer must do, in the order polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority: build it with [`Instance::advert`], encode it
    /// and send it with TTL 255 to the multicast group. Priority 0 means "I am giving up".
    SendAdvert {
        /// Priority to advertise.
        priority: u8,
    },
    /// Entered MASTER: add the virtual addresses, then send gratuitous ARP (IPv4) or
    /// unsolicited neighbour advertisements (IPv6) for them. Always follows the first
    /// `SendAdvert` of the new master, so the old master drops the addresses first.
    BecomeMaster,
    /// Entered BACKUP: make sure the virtual addresses are not configured (removing addresses
    /// that are absent is fine: this is also emitted at startup, as keepalived clears leftovers).
    BecomeBackup,
    /// Entered FAULT: make sure the virtual addresses are not configured.
    BecomeFault,
    /// Shut down: make sure the virtual addresses are not configured; the instance is inert.
    Stopped,
    /// The state changed (for logs, notify scripts, metrics). Emitted after the action above.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
    },
}

/// Why [`Instance::handle_advert`] did not act on an advert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiscardReason {
    /// The instance is in FAULT or INIT: adverts are ignored.
    NotActive,
    /// Another VRID.
    OtherVrid,
    /// Another protocol version.
    WrongVersion,
    /// VRRPv2 advert interval differs from ours (keepalived drops it).
    IntervalMismatch,
    /// Advertisement interval 0.
    ZeroInterval,
    /// The advertised addresses are not exactly our virtual addresses (RFC "MAY verify";
    /// keepalived does, counting it as an address-list error).
    AddressListMismatch,
    /// A backup that preempts ignored a lower-priority master: its Master_Down timer keeps
    /// running, so it takes over when the timer expires.
    LowerPriority,
    /// Same priority from our own address: a loop or a duplicate configuration.
    OwnAddress,
}

/// Result of [`Instance::handle_advert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdvertOutcome {
    /// The state machine acted on the advert (timers, state or replies).
    Processed,
    /// The advert was ignored; nothing changed.
    Discarded(DiscardReason),
}

/// The master as last heard by a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterInfo {
    /// Source address of its adverts.
    pub address: IpAddr,
    /// Priority it advertised.
    pub priority: u8,
}

/// One VRRP instance. See the crate documentation for the event/poll protocol and the exact
/// keepalived behaviours reproduced.
#[derive(Debug)]
pub struct Instance {
    config: Config,
    interval: Duration,
    nopreempt: bool,
    preempt_delay: Duration,
    state: State,
    base_priority: u8,
    priority_adjustment: i32,
    effective_priority: u8,
    /// Master_Adver_Interval: our own, or (v3 backup) the master's.
    master_adver_interval: Duration,
    /// Adver_Timer in MASTER, Master_Down_Timer in BACKUP, none otherwise.
    deadline: Option<Instant>,
    /// While set and in the future, a preempting backup still accepts a lower-priority master.
    preempt_deadline: Option<Instant>,
    master: Option<MasterInfo>,
    actions: VecDeque<Action>,
}

impl Instance {
    /// Validates `config` and starts the instance at `now`: an address owner (priority 255)
    /// becomes MASTER at once, anything else enters BACKUP with its Master_Down timer running.
    pub fn new(config: Config, now: Instant) -> Result<Instance, ConfigError> {
        config.validate()?;
        let interval = config.advert_interval;
        let mut instance = Instance {
            nopreempt: config.effective_nopreempt(),
            preempt_delay: config.effective_preempt_delay(),
            interval,
            state: State::Initialize,
            base_priority: config.priority,
            priority_adjustment: 0,
            effective_priority: config.priority,
            master_adver_interval: interval,
            deadline: None,
            preempt_deadline: None,
            master: None,
            actions: VecDeque::new(),
            config,
        };
        instance.come_up(now);
        Ok(instance)
    }

    /// Current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration (as given; see [`Config::ignored_options`] for what does not apply).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Priority advertised now: base priority plus adjustments, clamped to 1..=254 (255 stays).
    pub fn effective_priority(&self) -> u8 {
        self.effective_priority
    }

    /// Master_Adver_Interval: our own interval, or in a v3 backup the master's.
    pub fn master_adver_interval(&self) -> Duration {
        self.master_adver_interval
    }

    /// Skew_Time for our effective priority and the current Master_Adver_Interval.
    pub fn skew_time(&self) -> Duration {
        skew_time(self.config.version, self.effective_priority, self.master_adver_interval)
    }

    /// Master_Down_Interval for our effective priority and the current Master_Adver_Interval.
    pub fn master_down_interval(&self) -> Duration {
        master_down_interval(
            self.config.version,
            self.effective_priority,
            self.master_adver_interval,
            self.config.down_timer_adverts,
        )
    }

    /// The master a backup last accepted adverts from.
    pub fn current_master(&self) -> Option<MasterInfo> {
        self.master
    }

    /// The advert to send for [`Action::SendAdvert`] with `priority`.
    pub fn advert(&self, priority: u8) -> Advert {
        let units = self.config.interval_units().unwrap_or(1);
        let fields = match self.config.version {
            Version::V2 => VersionFields::V2 {
                advert_int_secs: u8::try_from(units).unwrap_or(u8::MAX),
                auth: self.config.auth.clone(),
            },
            Version::V3 => VersionFields::V3 { max_advert_int_cs: units },
        };
        Advert { vrid: self.config.vrid, priority, fields, addresses: self.config.vips.clone() }
    }

    /// When [`Instance::handle_timeout`] must next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Next action to carry out.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Timer expiry: a MASTER advertises, a BACKUP whose Master_Down timer expired takes over.
    /// Calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.state {
            State::Backup => self.become_master(now),
            State::Master => self.send_advert(now),
            State::Initialize | State::Fault => self.deadline = None,
        }
    }

    /// A received advert that [`crate::decode`] accepted, from IP source `src`.
    pub fn handle_advert(&mut self, advert: &Advert, src: IpAddr, now: Instant) -> AdvertOutcome {
        if let Err(reason) = self.check_advert(advert) {
            return AdvertOutcome::Discarded(reason);
        }
        match self.state {
            State::Backup => self.backup_receive(advert, src, now),
            State::Master => self.master_receive(advert, src, now),
            State::Initialize | State::Fault => AdvertOutcome::Discarded(DiscardReason::NotActive),
        }
    }

    /// Stops the instance (RFC Shutdown event): a MASTER sends a priority-0 advert so a backup
    /// takes over after Skew_Time; the addresses are released; the instance becomes inert.
    pub fn shutdown(&mut self, _now: Instant) {
        if self.state == State::Initialize {
            return;
        }
        if self.state == State::Master {
            self.actions.push_back(Action::SendAdvert { priority: PRIORITY_STOP });
        }
        self.enter(State::Initialize, Action::Stopped);
        self.deadline = None;
    }

    /// Enters (`true`) or leaves (`false`) FAULT: interface down, tracked script or tracked
    /// interface without weight failed. The caller aggregates its fault sources into one flag.
    /// A MASTER entering FAULT sends a priority-0 advert first, as keepalived does. Leaving FAULT
    /// goes to BACKUP with a full Master_Down_Interval, or straight to MASTER for an owner.
    pub fn set_fault(&mut self, fault: bool, now: Instant) {
        match (fault, self.state) {
            (true, State::Backup | State::Master) => {
                if self.state == State::Master {
                    self.actions.push_back(Action::SendAdvert { priority: PRIORITY_STOP });
                }
                self.deadline = None;
                self.master = None;
                self.enter(State::Fault, Action::BecomeFault);
            }
            (false, State::Fault) => self.come_up(now),
            _ => {}
        }
    }

    /// Forces BACKUP: the input a sync group uses to drag a member along (keepalived's
    /// `vrrp_sync_backup`), or to hold a member back whose Master_Down timer expired while the
    /// group cannot go MASTER (keepalived's `vrrp_sync_can_goto_master`).
    ///
    /// - MASTER: sends a priority-0 advert (so a backup of this VRID takes over after Skew_Time,
    ///   not Master_Down_Interval; keepalived sends none here), releases the addresses
    ///   ([`Action::BecomeBackup`], then `StateChanged` MASTER → BACKUP) and starts the
    ///   Master_Down timer.
    /// - BACKUP: restarts the Master_Down timer for a full Master_Down_Interval from `now`; no
    ///   action. The master last heard is kept.
    /// - FAULT, INIT: nothing. FAULT is left only by `set_fault(false)`; INIT is inert.
    pub fn force_backup(&mut self, now: Instant) {
        match self.state {
            State::Master => {
                self.actions.push_back(Action::SendAdvert { priority: PRIORITY_STOP });
                self.master = None;
                self.become_backup(now);
            }
            State::Backup => self.deadline = now.checked_add(self.master_down_interval()),
            State::Initialize | State::Fault => {}
        }
    }

    /// Forces MASTER now, as if the Master_Down timer had expired: the input a sync group uses
    /// to pull a held-back member to MASTER with the others (keepalived's `vrrp_sync_master`).
    /// From BACKUP: [`Action::SendAdvert`], [`Action::BecomeMaster`], `StateChanged` BACKUP →
    /// MASTER, Adver timer. In MASTER, FAULT and INIT: nothing (a group never overrides a
    /// fault). A better master on the link still wins: it answers our advert and we step down.
    pub fn force_master(&mut self, now: Instant) {
        if self.state == State::Backup {
            self.become_master(now);
        }
    }

    /// Sets the sum of the weights of failed/succeeded tracked scripts and interfaces
    /// (`track_script`, `track_interface` with `weight`). The effective priority is
    /// `priority + adjustment` clamped to 1..=254; an owner (255) is never adjusted. A backup's
    /// running Master_Down timer moves by the change in Skew_Time (keepalived); a master
    /// advertises the new priority from its next advert on.
    pub fn set_priority_adjustment(&mut self, adjustment: i32, now: Instant) {
        self.priority_adjustment = adjustment;
        let new = self.priority_with_adjustment();
        if new == self.effective_priority {
            return;
        }
        let old_skew = self.skew_time();
        self.effective_priority = new;
        let new_skew = self.skew_time();
        if let (State::Backup, Some(deadline)) = (self.state, self.deadline) {
            let moved = if new_skew >= old_skew {
                deadline.checked_add(new_skew - old_skew)
            } else {
                deadline.checked_sub(old_skew - new_skew)
            };
            self.deadline = Some(moved.unwrap_or(deadline).max(now));
        }
    }

    fn priority_with_adjustment(&self) -> u8 {
        if self.base_priority == PRIORITY_OWNER {
            return PRIORITY_OWNER;
        }
        let total = i64::from(self.base_priority) + i64::from(self.priority_adjustment);
        u8::try_from(total.clamp(1, i64::from(PRIORITY_OWNER - 1))).unwrap_or(1)
    }

    /// Validation keepalived applies to every advert before the state machine sees it.
    fn check_advert(&self, advert: &Advert) -> Result<(), DiscardReason> {
        if matches!(self.state, State::Initialize | State::Fault) {
            return Err(DiscardReason::NotActive);
        }
        if advert.vrid != self.config.vrid {
            return Err(DiscardReason::OtherVrid);
        }
        if advert.version() != self.config.version {
            return Err(DiscardReason::WrongVersion);
        }
        if advert.interval().is_zero() {
            return Err(DiscardReason::ZeroInterval);
        }
        if self.config.version == Version::V2 && advert.interval() != self.interval {
            return Err(DiscardReason::IntervalMismatch);
        }
        let same_set = advert.addresses.len() == self.config.vips.len()
            && self.config.vips.iter().all(|v| advert.addresses.contains(v));
        if !same_set {
            return Err(DiscardReason::AddressListMismatch);
        }
        Ok(())
    }

    /// RFC 3768 §6.4.2 / RFC 5798 §6.4.2, with keepalived's preempt_delay.
    fn backup_receive(&mut self, advert: &Advert, src: IpAddr, now: Instant) -> AdvertOutcome {
        if advert.priority == PRIORITY_STOP {
            // The master is leaving: take over after Skew_Time, not Master_Down_Interval.
            self.deadline = now.checked_add(self.skew_time());
            return AdvertOutcome::Processed;
        }
        let outranks_us = advert.priority >= self.effective_priority;
        let in_preempt_delay = !self.preempt_delay.is_zero() && self.preempt_deadline.is_none_or(|until| until > now);
        if !(self.nopreempt || outranks_us || in_preempt_delay) {
            // Preempting: let the Master_Down timer run out.
            return AdvertOutcome::Discarded(DiscardReason::LowerPriority);
        }
        if self.config.version == Version::V3 {
            self.master_adver_interval = advert.interval();
        }
        self.deadline = now.checked_add(self.master_down_interval());
        self.master = Some(MasterInfo { address: src, priority: advert.priority });
        if !self.preempt_delay.is_zero() {
            if outranks_us {
                self.preempt_deadline = None;
            } else if self.preempt_deadline.is_none() {
                self.preempt_deadline = now.checked_add(self.preempt_delay);
            }
        }
        AdvertOutcome::Processed
    }

    /// RFC 3768 §6.4.3 / RFC 5798 §6.4.3, with keepalived's replies to lower priorities.
    fn master_receive(&mut self, advert: &Advert, src: IpAddr, now: Instant) -> AdvertOutcome {
        let ours = self.effective_priority;
        let address_order = compare_same_family(src, self.config.primary_address);
        let theirs_wins = advert.priority > ours || (advert.priority == ours && address_order == Ordering::Greater);
        if advert.priority == PRIORITY_STOP {
            // Another master stopped: assert ourselves at once.
            self.send_advert(now);
            return AdvertOutcome::Processed;
        }
        if advert.priority == ours && address_order == Ordering::Equal {
            return AdvertOutcome::Discarded(DiscardReason::OwnAddress);
        }
        if advert.priority == ours && ours == PRIORITY_OWNER {
            // Two address owners: a configuration error. keepalived drops its own priority to
            // 254 so that one of them yields.
            self.base_priority = PRIORITY_OWNER - 1;
            self.effective_priority = self.priority_with_adjustment();
            return self.master_receive(advert, src, now);
        }
        if !theirs_wins {
            // A lower-priority router thinks it is master: force a new election now.
            if !self.config.lower_prio_no_advert {
                self.send_advert(now);
            }
            return AdvertOutcome::Processed;
        }
        if self.config.higher_prio_send_advert {
            self.actions.push_back(Action::SendAdvert { priority: ours });
        }
        if self.config.version == Version::V3 {
            self.master_adver_interval = advert.interval();
        }
        self.master = Some(MasterInfo { address: src, priority: advert.priority });
        self.become_backup(now);
        AdvertOutcome::Processed
    }

    /// Startup, and leaving FAULT.
    fn come_up(&mut self, now: Instant) {
        self.master_adver_interval = self.interval;
        self.master = None;
        if self.base_priority == PRIORITY_OWNER {
            self.become_master(now);
        } else {
            self.become_backup(now);
        }
    }

    fn become_master(&mut self, now: Instant) {
        self.master_adver_interval = self.interval;
        self.master = None;
        self.preempt_deadline = None;
        // Advert first, so that the old master drops the addresses before our gratuitous ARPs.
        self.actions.push_back(Action::SendAdvert { priority: self.effective_priority });
        self.enter(State::Master, Action::BecomeMaster);
        self.deadline = now.checked_add(self.interval);
    }

    fn become_backup(&mut self, now: Instant) {
        self.preempt_deadline = None;
        self.enter(State::Backup, Action::BecomeBackup);
        self.deadline = now.checked_add(self.master_down_interval());
    }

    fn send_advert(&mut self, now: Instant) {
        self.actions.push_back(Action::SendAdvert { priority: self.effective_priority });
        self.deadline = now.checked_add(self.interval);
    }

    fn enter(&mut self, to: State, action: Action) {
        let from = self.state;
        self.state = to;
        self.actions.push_back(action);
        if from != to {
            self.actions.push_back(Action::StateChanged { from, to });
        }
    }
}

/// Orders two addresses of the same family numerically; addresses of different families are
/// never ahead of each other (keepalived compares only within a family).
fn compare_same_family(a: IpAddr, b: IpAddr) -> Ordering {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.cmp(&b),
        (IpAddr::V6(a), IpAddr::V6(b)) => a.cmp(&b),
        _ => Ordering::Equal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn addresses_compare_numerically_within_a_family() {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 10));
        assert_eq!(compare_same_family(a, b), Ordering::Less);
        let v6: IpAddr = "fe80::1".parse().expect("addr");
        assert_eq!(compare_same_family(a, v6), Ordering::Equal);
    }
}
