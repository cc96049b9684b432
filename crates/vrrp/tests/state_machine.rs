//! The state machine in virtual time: single instances driven by hand, and routers on a
//! simulated link (every advert goes through encode → wire → decode), covering every transition
//! of RFC 3768 / RFC 5798 §6.4 and the keepalived behaviours documented in the crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use fulcrum_vrrp::{
    check_ttl, decode, encode, master_down_interval, skew_time, Action, AddrContext, AdvertOutcome, Auth, Config,
    ConfigError, DecodeError, DiscardReason, IgnoredOption, InitialState, Instance, State, Version, VersionFields,
    VRRP_TTL,
};

fn us(n: u64) -> Duration {
    Duration::from_micros(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn addr(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

fn vip() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, 100))
}

fn v2(priority: u8, last: u8) -> Config {
    let mut c = Config::new(Version::V2, 51, priority, addr(last), vec![vip()]);
    c.auth = Auth::pass(b"secret12");
    c
}

fn v3(priority: u8, last: u8) -> Config {
    Config::new(Version::V3, 52, priority, addr(last), vec![vip()])
}

fn v3_ipv6(priority: u8, last: u16) -> Config {
    let me = IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last));
    let vips = vec![
        IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0x53, 1)),
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53)),
    ];
    Config::new(Version::V3, 53, priority, me, vips)
}

fn drain(instance: &mut Instance) -> Vec<Action> {
    std::iter::from_fn(|| instance.poll_action()).collect()
}

fn changed(from: State, to: State) -> Action {
    Action::StateChanged { from, to }
}

/// An instance started at `t0` whose startup actions were carried out.
fn started(config: Config, t0: Instant) -> Instance {
    let mut instance = Instance::new(config, t0).expect("valid config");
    drain(&mut instance);
    instance
}

/// A non-owner that became master (nobody else on the link) at its first timeout.
fn timed_out_to_master(config: Config, t0: Instant) -> Instance {
    let mut instance = started(config, t0);
    let deadline = instance.poll_timeout().expect("master-down timer");
    instance.handle_timeout(deadline);
    drain(&mut instance);
    assert_eq!(instance.state(), State::Master);
    instance
}

// ---------------------------------------------------------------------------------------------
// A simulated link.

struct Node {
    instance: Instance,
    ctx: AddrContext,
    /// Crashed: sends nothing, hears nothing, its timers no longer fire.
    crashed: bool,
    actions: Vec<(Duration, Action)>,
    rejected: Vec<(Duration, DecodeError)>,
    discarded: Vec<(Duration, DiscardReason)>,
}

struct InFlight {
    at: Instant,
    to: usize,
    ctx: AddrContext,
    bytes: Vec<u8>,
}

struct Link {
    t0: Instant,
    now: Instant,
    delay: Duration,
    nodes: Vec<Node>,
    wire: Vec<InFlight>,
}

impl Link {
    fn new(delay: Duration) -> Link {
        let t0 = Instant::now();
        Link { t0, now: t0, delay, nodes: Vec::new(), wire: Vec::new() }
    }

    fn at(&self, offset: Duration) -> Instant {
        self.t0 + offset
    }

    /// Starts a router at the current time.
    fn start(&mut self, config: Config) -> usize {
        let ctx = AddrContext::multicast(config.primary_address);
        let instance = Instance::new(config, self.now).expect("valid config");
        self.nodes.push(Node {
            instance,
            ctx,
            crashed: false,
            actions: Vec::new(),
            rejected: Vec::new(),
            discarded: Vec::new(),
        });
        let id = self.nodes.len() - 1;
        self.drain(id);
        id
    }

    /// Carries out the actions of node `id`: adverts go on the wire to every other node.
    fn drain(&mut self, id: usize) {
        let offset = self.now - self.t0;
        while let Some(action) = self.nodes[id].instance.poll_action() {
            self.nodes[id].actions.push((offset, action));
            if let Action::SendAdvert { priority } = action {
                let node = &self.nodes[id];
                let bytes = encode(&node.instance.advert(priority), &node.ctx).expect("encodable");
                for to in 0..self.nodes.len() {
                    if to != id {
                        self.wire.push(InFlight { at: self.now + self.delay, to, ctx: node.ctx, bytes: bytes.clone() });
                    }
                }
            }
        }
    }

    fn deliver(&mut self, packet: InFlight) {
        let offset = self.now - self.t0;
        let node = &mut self.nodes[packet.to];
        if node.crashed {
            return;
        }
        let expect = node.instance.config().decode_expect();
        let decoded = check_ttl(VRRP_TTL).and_then(|()| decode(&packet.bytes, &packet.ctx, &expect));
        match decoded {
            Err(e) => node.rejected.push((offset, e)),
            Ok(advert) => {
                let outcome = node.instance.handle_advert(&advert, packet.ctx.src, self.now);
                if let AdvertOutcome::Discarded(reason) = outcome {
                    node.discarded.push((offset, reason));
                }
            }
        }
        self.drain(packet.to);
    }

    /// Runs every delivery and timer up to `offset` from t0, in time order (deliveries before
    /// timers at the same instant, nodes in start order).
    fn run_until(&mut self, offset: Duration) {
        let end = self.at(offset);
        for _ in 0..1_000_000 {
            let next_packet = self.wire.iter().map(|p| p.at).min();
            let next_timer = self.nodes.iter().filter(|n| !n.crashed).filter_map(|n| n.instance.poll_timeout()).min();
            let next = match (next_packet, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (a, b) => match a.or(b) {
                    Some(t) => t,
                    None => break,
                },
            };
            if next > end {
                break;
            }
            self.now = self.now.max(next);
            if let Some(i) = self.wire.iter().position(|p| p.at <= self.now) {
                let packet = self.wire.remove(i);
                self.deliver(packet);
                continue;
            }
            for id in 0..self.nodes.len() {
                let node = &mut self.nodes[id];
                if !node.crashed && node.instance.poll_timeout().is_some_and(|t| t <= self.now) {
                    node.instance.handle_timeout(self.now);
                    self.drain(id);
                }
            }
        }
        self.now = self.now.max(end);
    }

    fn state(&self, id: usize) -> State {
        self.nodes[id].instance.state()
    }

    fn crash(&mut self, id: usize) {
        self.nodes[id].crashed = true;
    }

    fn shutdown(&mut self, id: usize) {
        let now = self.now;
        self.nodes[id].instance.shutdown(now);
        self.drain(id);
    }

    fn set_fault(&mut self, id: usize, fault: bool) {
        let now = self.now;
        self.nodes[id].instance.set_fault(fault, now);
        self.drain(id);
    }

    fn adjust_priority(&mut self, id: usize, adjustment: i32) {
        let now = self.now;
        self.nodes[id].instance.set_priority_adjustment(adjustment, now);
        self.drain(id);
    }

    fn force_backup(&mut self, id: usize) {
        let now = self.now;
        self.nodes[id].instance.force_backup(now);
        self.drain(id);
    }

    fn force_master(&mut self, id: usize) {
        let now = self.now;
        self.nodes[id].instance.force_master(now);
        self.drain(id);
    }

    /// (time, from, to) of every state change of node `id`.
    fn transitions(&self, id: usize) -> Vec<(Duration, State, State)> {
        self.nodes[id]
            .actions
            .iter()
            .filter_map(|(t, a)| match a {
                Action::StateChanged { from, to } => Some((*t, *from, *to)),
                _ => None,
            })
            .collect()
    }

    /// When node `id` last became master.
    fn became_master_at(&self, id: usize) -> Option<Duration> {
        self.transitions(id).into_iter().filter(|(_, _, to)| *to == State::Master).map(|(t, _, _)| t).next_back()
    }

    /// (time, priority) of the adverts node `id` sent.
    fn adverts(&self, id: usize) -> Vec<(Duration, u8)> {
        self.nodes[id]
            .actions
            .iter()
            .filter_map(|(t, a)| match a {
                Action::SendAdvert { priority } => Some((*t, *priority)),
                _ => None,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Timers.

#[test]
fn skew_and_master_down_values() {
    // (version, priority, Master_Adver_Interval, Skew_Time, Master_Down_Interval), in µs.
    let table = [
        (Version::V2, 100, 1_000_000, 609_375, 3_609_375),
        (Version::V2, 150, 1_000_000, 414_062, 3_414_062),
        (Version::V2, 200, 1_000_000, 218_750, 3_218_750),
        (Version::V2, 1, 1_000_000, 996_093, 3_996_093),
        (Version::V2, 254, 3_000_000, 7_812, 9_007_812),
        (Version::V2, 100, 5_000_000, 609_375, 15_609_375),
        (Version::V3, 100, 1_000_000, 609_375, 3_609_375),
        (Version::V3, 100, 100_000, 60_937, 360_937),
        (Version::V3, 120, 100_000, 53_125, 353_125),
        (Version::V3, 200, 1_000_000, 218_750, 3_218_750),
        (Version::V3, 254, 10_000, 78, 30_078),
        (Version::V3, 1, 40_950_000, 40_790_039, 163_640_039),
    ];
    for (version, priority, interval, skew, down) in table {
        let interval = us(interval);
        assert_eq!(skew_time(version, priority, interval), us(skew), "{version} {priority} {interval:?}");
        assert_eq!(master_down_interval(version, priority, interval, 3), us(down), "{version} {priority} {interval:?}");
    }
}

#[test]
fn backup_takes_over_exactly_at_master_down_interval() {
    let cases = [
        (v2(100, 1), 3_609_375),
        (v2(150, 1), 3_414_062),
        (v2(1, 1), 3_996_093),
        (Config { advert_interval: ms(100), ..v3(120, 1) }, 353_125),
        (v3_ipv6(200, 1), 3_218_750),
        (Config { advert_interval: ms(10), ..v3(254, 1) }, 30_078),
    ];
    for (config, down) in cases {
        let t0 = Instant::now();
        let mut vr = Instance::new(config, t0).expect("valid");
        assert_eq!(drain(&mut vr), vec![Action::BecomeBackup, changed(State::Initialize, State::Backup)]);
        assert_eq!(vr.poll_timeout(), Some(t0 + us(down)));
        vr.handle_timeout(t0 + us(down - 1));
        assert_eq!(vr.state(), State::Backup);
        assert_eq!(vr.poll_action(), None);
        vr.handle_timeout(t0 + us(down));
        let priority = vr.effective_priority();
        assert_eq!(
            drain(&mut vr),
            vec![Action::SendAdvert { priority }, Action::BecomeMaster, changed(State::Backup, State::Master)]
        );
        // As master, it advertises every interval.
        let interval = vr.config().advert_interval;
        assert_eq!(vr.poll_timeout(), Some(t0 + us(down) + interval));
        vr.handle_timeout(t0 + us(down) + interval);
        assert_eq!(drain(&mut vr), vec![Action::SendAdvert { priority }]);
    }
}

// ---------------------------------------------------------------------------------------------
// Initialize.

#[test]
fn address_owner_becomes_master_at_startup() {
    let t0 = Instant::now();
    let mut vr = Instance::new(v2(255, 1), t0).expect("valid");
    assert_eq!(vr.state(), State::Master);
    assert_eq!(
        drain(&mut vr),
        vec![Action::SendAdvert { priority: 255 }, Action::BecomeMaster, changed(State::Initialize, State::Master)]
    );
    assert_eq!(vr.poll_timeout(), Some(t0 + secs(1)));
    // Adjustments never apply to an owner.
    vr.set_priority_adjustment(-100, t0);
    assert_eq!(vr.effective_priority(), 255);
}

#[test]
fn state_master_waits_like_a_backup_and_ignores_nopreempt() {
    // keepalived 2.2.7: a non-owner `state MASTER` instance enters BACKUP and waits a full
    // Master_Down_Interval (observed: 3.414 s for priority 150, 1 s interval).
    let t0 = Instant::now();
    let config = Config { initial_state: InitialState::Master, nopreempt: true, preempt_delay: secs(5), ..v2(150, 1) };
    assert_eq!(config.ignored_options(), vec![IgnoredOption::NoPreempt, IgnoredOption::PreemptDelay]);
    let mut vr = Instance::new(config, t0).expect("valid");
    assert_eq!(vr.state(), State::Backup);
    assert_eq!(vr.poll_timeout(), Some(t0 + us(3_414_062)));
    // nopreempt is ignored: a lower-priority master is not accepted.
    let lower = vr.advert(100);
    assert_eq!(vr.handle_advert(&lower, addr(2), t0 + secs(1)), AdvertOutcome::Discarded(DiscardReason::LowerPriority));
    assert_eq!(vr.poll_timeout(), Some(t0 + us(3_414_062)));
}

#[test]
fn ignored_option_combinations() {
    let owner = Config { nopreempt: true, ..v2(255, 1) };
    assert_eq!(owner.ignored_options(), vec![IgnoredOption::NoPreempt]);
    let both = Config { nopreempt: true, preempt_delay: secs(1), ..v2(100, 1) };
    assert_eq!(both.ignored_options(), vec![IgnoredOption::PreemptDelay]);
    assert!(v2(100, 1).ignored_options().is_empty());
    assert!(!IgnoredOption::NoPreempt.to_string().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Two routers.

#[test]
fn backup_stays_backup_while_adverts_arrive() {
    let mut link = Link::new(ms(1));
    let a = link.start(v3(200, 1));
    let b = link.start(v3(100, 2));
    link.run_until(secs(60));
    assert_eq!(link.state(a), State::Master);
    assert_eq!(link.state(b), State::Backup);
    assert_eq!(link.transitions(b), vec![(Duration::ZERO, State::Initialize, State::Backup)]);
    assert_eq!(link.became_master_at(a), Some(us(3_218_750)));
    assert_eq!(link.nodes[b].instance.current_master().map(|m| (m.address, m.priority)), Some((addr(1), 200)));
    assert!(link.nodes[b].rejected.is_empty());
    assert!(link.nodes[b].discarded.is_empty());
}

#[test]
fn higher_priority_backup_preempts() {
    let mut link = Link::new(ms(1));
    let a = link.start(v2(100, 1));
    link.run_until(secs(5));
    assert_eq!(link.state(a), State::Master);
    let b = link.start(v2(200, 2));
    link.run_until(secs(20));
    // B discards A's lower adverts and takes over when its own Master_Down timer expires.
    assert_eq!(link.became_master_at(b), Some(secs(5) + us(3_218_750)));
    assert!(link.nodes[b].discarded.iter().all(|(_, r)| *r == DiscardReason::LowerPriority));
    // A hears B's first advert one link delay later and steps down.
    assert_eq!(link.state(a), State::Backup);
    assert_eq!(link.transitions(a).last(), Some(&(secs(5) + us(3_218_750) + ms(1), State::Master, State::Backup)));
    assert_eq!(link.state(b), State::Master);
}

#[test]
fn nopreempt_backup_does_not_take_over_from_a_live_master() {
    let mut link = Link::new(ms(1));
    let a = link.start(v2(100, 1));
    link.run_until(secs(5));
    let b = link.start(Config { nopreempt: true, ..v2(200, 2) });
    link.run_until(secs(60));
    assert_eq!(link.state(a), State::Master);
    assert_eq!(link.state(b), State::Backup);
    // ...but it does take over when the master dies.
    link.crash(a);
    let last_advert = link.adverts(a).last().expect("adverts").0;
    link.run_until(secs(80));
    assert_eq!(link.state(b), State::Master);
    assert_eq!(link.became_master_at(b), Some(last_advert + ms(1) + us(3_218_750)));
}

#[test]
fn preempt_delay_counts_from_the_first_lower_advert_heard() {
    let mut link = Link::new(ms(1));
    let a = link.start(v2(100, 1));
    link.run_until(secs(5));
    let b = link.start(Config { preempt_delay: secs(2), ..v2(150, 2) });
    link.run_until(secs(30));
    // A advertises at 3.609375 s + k s; B first hears one at 5.610375 s, accepts A's adverts
    // until 7.610375 s (exclusive), then discards them and takes over Master_Down_Interval
    // (3.414062 s) after the last one it accepted (6.610375 s).
    let first_heard = us(5_610_375);
    assert_eq!(link.became_master_at(b), Some(first_heard + secs(1) + us(3_414_062)));
    assert_eq!(link.nodes[b].discarded.first(), Some(&(first_heard + secs(2), DiscardReason::LowerPriority)));
    assert_eq!(link.state(a), State::Backup);

    // Without the delay, B would have taken over 3.414062 s after starting.
    let mut control = Link::new(ms(1));
    control.start(v2(100, 1));
    control.run_until(secs(5));
    let b = control.start(v2(150, 2));
    control.run_until(secs(30));
    assert_eq!(control.became_master_at(b), Some(secs(5) + us(3_414_062)));
}

#[test]
fn preempt_delay_is_cancelled_by_a_higher_advert() {
    let t0 = Instant::now();
    let mut vr = Instance::new(Config { preempt_delay: secs(2), ..v2(150, 2) }, t0).expect("valid");
    let lower = vr.advert(100);
    let higher = vr.advert(200);
    let accept = AdvertOutcome::Processed;
    assert_eq!(vr.handle_advert(&lower, addr(1), t0 + secs(1)), accept); // delay until 3 s
    assert_eq!(vr.handle_advert(&higher, addr(3), t0 + secs(2)), accept); // cancels it
    assert_eq!(vr.handle_advert(&lower, addr(1), t0 + secs(4)), accept); // restarts: until 6 s
    assert_eq!(vr.handle_advert(&lower, addr(1), t0 + ms(5_999)), accept);
    assert_eq!(vr.handle_advert(&lower, addr(1), t0 + secs(6)), AdvertOutcome::Discarded(DiscardReason::LowerPriority));
    assert_eq!(vr.poll_timeout(), Some(t0 + ms(5_999) + us(3_414_062)));
}

#[test]
fn equal_priorities_the_higher_address_wins() {
    // Two equal backups started together time out together; the lower address yields.
    let mut link = Link::new(ms(1));
    let low = link.start(v3(100, 1));
    let high = link.start(v3(100, 2));
    link.run_until(secs(30));
    assert_eq!(link.became_master_at(low), Some(us(3_609_375)));
    assert_eq!(link.became_master_at(high), Some(us(3_609_375)));
    assert_eq!(link.state(high), State::Master);
    assert_eq!(link.state(low), State::Backup);
    assert_eq!(link.transitions(low).last(), Some(&(us(3_610_375), State::Master, State::Backup)));
    // The winner answered the loser's advert at once (keepalived "forcing new election").
    assert!(link.adverts(high).contains(&(us(3_610_375), 100)));

    // An established master is not preempted by an equal backup, whatever its address (RFC:
    // a backup accepts priority >= its own).
    let mut link = Link::new(ms(1));
    let low = link.start(v3(100, 1));
    link.run_until(secs(10));
    let high = link.start(v3(100, 2));
    link.run_until(secs(60));
    assert_eq!(link.state(low), State::Master);
    assert_eq!(link.state(high), State::Backup);
}

#[test]
fn master_steps_down_for_a_higher_advert() {
    let t0 = Instant::now();
    let mut vr = timed_out_to_master(v3(150, 5), t0);
    let now = t0 + secs(5);
    // Lower priority, and equal priority from a lower address: we stay master and answer.
    for (priority, from) in [(100, addr(9)), (150, addr(4))] {
        let advert = vr.advert(priority);
        assert_eq!(vr.handle_advert(&advert, from, now), AdvertOutcome::Processed);
        assert_eq!(drain(&mut vr), vec![Action::SendAdvert { priority: 150 }]);
        assert_eq!(vr.poll_timeout(), Some(now + secs(1)));
    }
    // Equal priority from our own address: a loop, ignored.
    let same = vr.advert(150);
    assert_eq!(vr.handle_advert(&same, addr(5), now), AdvertOutcome::Discarded(DiscardReason::OwnAddress));
    // Equal priority from a higher address: we yield.
    let mut higher = vr.advert(150);
    higher.fields = VersionFields::V3 { max_advert_int_cs: 50 };
    assert_eq!(vr.handle_advert(&higher, addr(6), now), AdvertOutcome::Processed);
    assert_eq!(drain(&mut vr), vec![Action::BecomeBackup, changed(State::Master, State::Backup)]);
    // v3: the new master's interval is adopted at once.
    assert_eq!(vr.master_adver_interval(), ms(500));
    assert_eq!(vr.poll_timeout(), Some(now + ms(1500) + us(207_031)));
}

#[test]
fn lower_prio_no_advert_and_higher_prio_send_advert() {
    let t0 = Instant::now();
    let config = Config { lower_prio_no_advert: true, higher_prio_send_advert: true, ..v2(150, 5) };
    let mut vr = timed_out_to_master(config, t0);
    let deadline = vr.poll_timeout();
    let lower = vr.advert(100);
    assert_eq!(vr.handle_advert(&lower, addr(9), t0 + ms(4500)), AdvertOutcome::Processed);
    assert_eq!(drain(&mut vr), vec![]);
    assert_eq!(vr.poll_timeout(), deadline);
    let higher = vr.advert(200);
    vr.handle_advert(&higher, addr(9), t0 + ms(4600));
    assert_eq!(
        drain(&mut vr),
        vec![Action::SendAdvert { priority: 150 }, Action::BecomeBackup, changed(State::Master, State::Backup)]
    );
}

#[test]
fn two_address_owners_one_yields() {
    let t0 = Instant::now();
    let mut vr = started(v2(255, 1), t0);
    let other = vr.advert(255);
    vr.handle_advert(&other, addr(2), t0 + ms(10));
    assert_eq!(vr.state(), State::Backup);
    assert_eq!(vr.effective_priority(), 254);
}

// ---------------------------------------------------------------------------------------------
// Priority 0 and shutdown.

#[test]
fn priority_zero_gives_fast_failover() {
    let mut link = Link::new(ms(1));
    let a = link.start(v3(200, 1));
    let b = link.start(v3(100, 2));
    link.run_until(secs(10));
    link.shutdown(a);
    assert_eq!(link.adverts(a).last(), Some(&(secs(10), 0)));
    link.run_until(secs(20));
    // B takes over Skew_Time (0.609375 s) after hearing priority 0, not 3.6 s.
    assert_eq!(link.became_master_at(b), Some(secs(10) + ms(1) + us(609_375)));

    // Compare: a crash (no priority 0) costs the whole Master_Down_Interval.
    let mut link = Link::new(ms(1));
    let a = link.start(v3(200, 1));
    let b = link.start(v3(100, 2));
    link.run_until(secs(10));
    link.crash(a);
    let last = link.adverts(a).last().expect("adverts").0;
    link.run_until(secs(20));
    assert_eq!(link.became_master_at(b), Some(last + ms(1) + us(3_609_375)));
}

#[test]
fn shutdown_sends_priority_zero_and_releases_addresses() {
    let t0 = Instant::now();
    let mut vr = started(v3_ipv6(255, 1), t0);
    vr.shutdown(t0 + secs(2));
    assert_eq!(
        drain(&mut vr),
        vec![Action::SendAdvert { priority: 0 }, Action::Stopped, changed(State::Master, State::Initialize)]
    );
    assert_eq!(vr.poll_timeout(), None);
    let advert = vr.advert(100);
    let peer = vr.config().primary_address;
    assert_eq!(vr.handle_advert(&advert, peer, t0 + secs(3)), AdvertOutcome::Discarded(DiscardReason::NotActive));
    vr.set_fault(false, t0 + secs(3));
    vr.shutdown(t0 + secs(3));
    assert_eq!(drain(&mut vr), vec![]);

    // A backup stops without advertising.
    let mut backup = started(v2(100, 1), t0);
    backup.shutdown(t0 + secs(1));
    assert_eq!(drain(&mut backup), vec![Action::Stopped, changed(State::Backup, State::Initialize)]);
}

#[test]
fn master_answers_priority_zero_at_once() {
    let t0 = Instant::now();
    let mut vr = started(v2(255, 1), t0);
    let stop = vr.advert(0);
    let now = t0 + ms(700);
    assert_eq!(vr.handle_advert(&stop, addr(2), now), AdvertOutcome::Processed);
    assert_eq!(drain(&mut vr), vec![Action::SendAdvert { priority: 255 }]);
    assert_eq!(vr.poll_timeout(), Some(now + secs(1)));
}

// ---------------------------------------------------------------------------------------------
// Fault.

#[test]
fn fault_enter_and_leave() {
    let mut link = Link::new(ms(1));
    let a = link.start(v2(200, 1));
    let b = link.start(v2(100, 2));
    link.run_until(secs(10));
    assert_eq!(link.state(a), State::Master);

    // The master's interface goes down: priority 0, addresses released, backup takes over fast.
    link.set_fault(a, true);
    let a_actions: Vec<Action> =
        link.nodes[a].actions.iter().filter(|(t, _)| *t == secs(10)).map(|(_, a)| *a).collect();
    assert_eq!(
        a_actions,
        vec![Action::SendAdvert { priority: 0 }, Action::BecomeFault, changed(State::Master, State::Fault)]
    );
    assert_eq!(link.nodes[a].instance.poll_timeout(), None);
    link.run_until(secs(20));
    assert_eq!(link.state(a), State::Fault);
    assert_eq!(link.became_master_at(b), Some(secs(10) + ms(1) + us(609_375)));
    assert!(link.nodes[a].discarded.iter().all(|(_, r)| *r == DiscardReason::NotActive));
    assert!(!link.nodes[a].discarded.is_empty());

    // The interface comes back: BACKUP with a full Master_Down_Interval, then it preempts.
    link.set_fault(a, false);
    assert_eq!(link.transitions(a).last(), Some(&(secs(20), State::Fault, State::Backup)));
    link.run_until(secs(40));
    assert_eq!(link.became_master_at(a), Some(secs(20) + us(3_218_750)));
    assert_eq!(link.state(b), State::Backup);

    // A backup entering FAULT says nothing on the wire.
    link.set_fault(b, true);
    assert_eq!(link.nodes[b].actions.last(), Some(&(secs(40), changed(State::Backup, State::Fault))));
    assert_ne!(link.adverts(b).last().map(|(t, _)| *t), Some(secs(40)));
}

#[test]
fn owner_leaving_fault_becomes_master_at_once() {
    let t0 = Instant::now();
    let mut vr = Instance::new(v2(255, 1), t0).expect("valid");
    vr.set_fault(true, t0 + secs(1));
    vr.set_fault(true, t0 + secs(1)); // idempotent
    drain(&mut vr);
    vr.set_fault(false, t0 + secs(2));
    assert_eq!(
        drain(&mut vr),
        vec![Action::SendAdvert { priority: 255 }, Action::BecomeMaster, changed(State::Fault, State::Master)]
    );
}

// ---------------------------------------------------------------------------------------------
// Priority adjustments.

#[test]
fn priority_adjustment_clamps_and_moves_the_backup_timer() {
    let t0 = Instant::now();
    let mut vr = Instance::new(v2(100, 2), t0).expect("valid");
    let master = vr.advert(150);
    vr.handle_advert(&master, addr(1), t0 + secs(1));
    assert_eq!(vr.poll_timeout(), Some(t0 + secs(1) + us(3_609_375)));
    vr.set_priority_adjustment(100, t0 + secs(2));
    assert_eq!(vr.effective_priority(), 200);
    // Skew_Time went from 0.609375 s to 0.21875 s: the deadline moves by the difference.
    assert_eq!(vr.poll_timeout(), Some(t0 + secs(1) + us(3_218_750)));
    vr.set_priority_adjustment(1000, t0 + secs(2));
    assert_eq!(vr.effective_priority(), 254);
    vr.set_priority_adjustment(-1000, t0 + secs(2));
    assert_eq!(vr.effective_priority(), 1);
    vr.set_priority_adjustment(i32::MIN, t0 + secs(2));
    assert_eq!(vr.effective_priority(), 1);
    vr.set_priority_adjustment(0, t0 + secs(2));
    assert_eq!(vr.effective_priority(), 100);
    assert_eq!(vr.poll_timeout(), Some(t0 + secs(1) + us(3_609_375)));
}

#[test]
fn lowering_the_master_priority_lets_the_backup_preempt() {
    let mut link = Link::new(ms(1));
    let a = link.start(v2(150, 1));
    let b = link.start(v2(100, 2));
    link.run_until(secs(10));
    assert_eq!(link.state(a), State::Master);
    // A tracked script with weight -60 fails on A: 150 - 60 = 90 < 100.
    link.adjust_priority(a, -60);
    link.run_until(secs(30));
    let last_150 = link.adverts(a).iter().rfind(|(_, p)| *p == 150).expect("adverts").0;
    assert_eq!(link.became_master_at(b), Some(last_150 + ms(1) + us(3_609_375)));
    assert_eq!(link.state(a), State::Backup);
    assert!(link.adverts(a).iter().any(|(_, p)| *p == 90));
}

#[test]
fn raising_a_backup_priority_lets_it_preempt() {
    let mut link = Link::new(ms(1));
    let a = link.start(v3(150, 1));
    let b = link.start(v3(100, 2));
    link.run_until(secs(10));
    link.adjust_priority(b, 100);
    link.run_until(secs(30));
    assert_eq!(link.state(b), State::Master);
    assert_eq!(link.state(a), State::Backup);
    assert_eq!(link.nodes[b].instance.effective_priority(), 200);
}

// ---------------------------------------------------------------------------------------------
// Advert intervals.

#[test]
fn v3_backup_adopts_the_master_interval() {
    let mut link = Link::new(ms(1));
    let a = link.start(Config { advert_interval: ms(500), ..v3(200, 1) });
    let b = link.start(Config { advert_interval: secs(2), ..v3(100, 2) });
    link.run_until(secs(5));
    assert_eq!(link.became_master_at(a), Some(us(1_609_375)));
    let backup = &link.nodes[b].instance;
    assert_eq!(backup.master_adver_interval(), ms(500));
    // 3 × 0.5 s + (156 × 50 cs / 256) = 1.5 s + 0.3046875 s.
    assert_eq!(backup.skew_time(), us(304_687));
    assert_eq!(backup.master_down_interval(), us(1_804_687));
    link.crash(a);
    let last = link.adverts(a).last().expect("adverts").0;
    assert_eq!(last, us(4_609_375));
    link.run_until(secs(20));
    assert_eq!(link.became_master_at(b), Some(last + ms(1) + us(1_804_687)));
    // As master it advertises its own interval again.
    let master = &link.nodes[b].instance;
    assert_eq!(master.master_adver_interval(), secs(2));
    assert_eq!(master.advert(100).fields, VersionFields::V3 { max_advert_int_cs: 200 });
}

#[test]
fn v2_interval_mismatch_is_rejected() {
    // keepalived drops adverts with another interval: both routers end up master, each
    // logging the mismatch. This is why operators must keep advert_int equal on v2.
    let mut link = Link::new(ms(1));
    let a = link.start(v2(200, 1));
    let b = link.start(Config { advert_interval: secs(2), ..v2(100, 2) });
    link.run_until(secs(20));
    assert_eq!(link.state(a), State::Master);
    assert_eq!(link.state(b), State::Master);
    assert!(link.nodes[b]
        .rejected
        .iter()
        .all(|(_, e)| *e == DecodeError::IntervalMismatch { expected_secs: 2, got_secs: 1 }));
    assert!(!link.nodes[b].rejected.is_empty());
    assert!(!link.nodes[a].rejected.is_empty());

    // The state machine applies the same rule to adverts handed to it directly.
    let t0 = Instant::now();
    let mut vr = Instance::new(v2(100, 2), t0).expect("valid");
    let mut other = vr.advert(200);
    other.fields = VersionFields::V2 { advert_int_secs: 2, auth: Auth::pass(b"secret12") };
    assert_eq!(vr.handle_advert(&other, addr(1), t0), AdvertOutcome::Discarded(DiscardReason::IntervalMismatch));
}

// ---------------------------------------------------------------------------------------------
// Advert validation and configuration.

#[test]
fn adverts_that_are_not_for_us_are_discarded() {
    let t0 = Instant::now();
    let mut vr = Instance::new(v3(100, 2), t0).expect("valid");
    let deadline = vr.poll_timeout();
    let good = vr.advert(200);
    let cases = [
        (fulcrum_vrrp::Advert { vrid: 99, ..good.clone() }, DiscardReason::OtherVrid),
        (
            fulcrum_vrrp::Advert { fields: VersionFields::V2 { advert_int_secs: 1, auth: Auth::None }, ..good.clone() },
            DiscardReason::WrongVersion,
        ),
        (
            fulcrum_vrrp::Advert { fields: VersionFields::V3 { max_advert_int_cs: 0 }, ..good.clone() },
            DiscardReason::ZeroInterval,
        ),
        (fulcrum_vrrp::Advert { addresses: vec![addr(99)], ..good.clone() }, DiscardReason::AddressListMismatch),
        (fulcrum_vrrp::Advert { addresses: vec![vip(), addr(99)], ..good.clone() }, DiscardReason::AddressListMismatch),
    ];
    for (advert, reason) in cases {
        assert_eq!(vr.handle_advert(&advert, addr(1), t0 + secs(1)), AdvertOutcome::Discarded(reason));
    }
    assert_eq!(vr.poll_timeout(), deadline);
    // Backups hearing priority 0 shorten their timer to Skew_Time.
    let stop = vr.advert(0);
    assert_eq!(vr.handle_advert(&stop, addr(1), t0 + secs(1)), AdvertOutcome::Processed);
    assert_eq!(vr.poll_timeout(), Some(t0 + secs(1) + us(609_375)));
}

#[test]
fn config_validation() {
    let v6 = v3_ipv6(100, 1);
    let cases = [
        (Config { vrid: 0, ..v2(100, 1) }, ConfigError::Vrid),
        (v2(0, 1), ConfigError::Priority),
        (
            Config { advert_interval: ms(1500), ..v2(100, 1) },
            ConfigError::AdvertInterval { version: Version::V2, interval: ms(1500) },
        ),
        (
            Config { advert_interval: secs(256), ..v2(100, 1) },
            ConfigError::AdvertInterval { version: Version::V2, interval: secs(256) },
        ),
        (
            Config { advert_interval: ms(40_960), ..v3(100, 1) },
            ConfigError::AdvertInterval { version: Version::V3, interval: ms(40_960) },
        ),
        (
            Config { advert_interval: ms(15), ..v3(100, 1) },
            ConfigError::AdvertInterval { version: Version::V3, interval: ms(15) },
        ),
        (
            Config { advert_interval: Duration::ZERO, ..v3(100, 1) },
            ConfigError::AdvertInterval { version: Version::V3, interval: Duration::ZERO },
        ),
        (Config { down_timer_adverts: 0, ..v3(100, 1) }, ConfigError::DownTimerAdverts(0)),
        (Config { version: Version::V2, auth: Auth::None, ..v6.clone() }, ConfigError::V2Ipv6),
        (
            Config { primary_address: "2001:db8::1".parse().expect("addr"), ..v6.clone() },
            ConfigError::Ipv6PrimaryNotLinkLocal("2001:db8::1".parse().expect("addr")),
        ),
        (Config { auth: Auth::pass(b"x"), ..v3(100, 1) }, ConfigError::V3Auth),
        (Config { vips: vec![], ..v3(100, 1) }, ConfigError::NoVips),
        (Config { vips: vec![vip(); 256], ..v3(100, 1) }, ConfigError::TooManyVips(256)),
        (Config { vips: vec![vip(), v6.primary_address], ..v3(100, 1) }, ConfigError::VipFamily(v6.primary_address)),
    ];
    for (config, error) in cases {
        assert!(!error.to_string().is_empty());
        assert_eq!(config.validate(), Err(error.clone()));
        assert_eq!(Instance::new(config, Instant::now()).map(|_| ()), Err(error));
    }
    // Boundaries that are valid.
    for config in [
        Config { advert_interval: secs(255), ..v2(1, 1) },
        Config { advert_interval: ms(40_950), ..v3(255, 1) },
        Config { advert_interval: ms(10), ..v3(254, 1) },
        Config { vips: vec![], ..v2(100, 1) },
    ] {
        assert_eq!(config.validate(), Ok(()));
    }
}

#[test]
fn decode_expect_follows_the_config() {
    let config = v2(100, 1);
    let expect = config.decode_expect();
    assert_eq!(expect.version, Version::V2);
    assert_eq!(expect.vrid, Some(51));
    assert_eq!(expect.auth, Auth::pass(b"secret12"));
    assert_eq!(expect.v2_advert_int_secs, Some(1));
    assert_eq!(v3(100, 1).decode_expect().v2_advert_int_secs, None);
}

// ---------------------------------------------------------------------------------------------
// Forced transitions (the inputs sync groups use).

#[test]
fn force_backup_from_master_gives_up_with_priority_zero() {
    let t0 = Instant::now();
    let mut vr = timed_out_to_master(v3(150, 5), t0);
    let now = t0 + ms(5_250);
    vr.force_backup(now);
    assert_eq!(
        drain(&mut vr),
        vec![Action::SendAdvert { priority: 0 }, Action::BecomeBackup, changed(State::Master, State::Backup)]
    );
    assert_eq!(vr.state(), State::Backup);
    assert_eq!(vr.current_master(), None);
    // A full Master_Down_Interval (3 s + 0.414062 s for priority 150) from now.
    assert_eq!(vr.poll_timeout(), Some(now + us(3_414_062)));
    // Nobody else advertises: it takes over again when that timer expires.
    vr.handle_timeout(now + us(3_414_061));
    assert_eq!(drain(&mut vr), vec![]);
    vr.handle_timeout(now + us(3_414_062));
    assert_eq!(
        drain(&mut vr),
        vec![Action::SendAdvert { priority: 150 }, Action::BecomeMaster, changed(State::Backup, State::Master)]
    );
}

#[test]
fn force_backup_from_backup_restarts_the_master_down_timer() {
    let t0 = Instant::now();
    let mut vr = started(v2(100, 2), t0);
    let master = vr.advert(150);
    assert_eq!(vr.handle_advert(&master, addr(1), t0 + secs(1)), AdvertOutcome::Processed);
    assert_eq!(vr.poll_timeout(), Some(t0 + secs(1) + us(3_609_375)));
    // The timer expired, the group holds the member back: a fresh full interval, no action.
    let expired = t0 + secs(1) + us(3_609_375);
    vr.force_backup(expired);
    assert_eq!(drain(&mut vr), vec![]);
    assert_eq!(vr.state(), State::Backup);
    assert_eq!(vr.poll_timeout(), Some(expired + us(3_609_375)));
    assert_eq!(vr.current_master().map(|m| m.priority), Some(150));
    // Earlier than the deadline works the same (a plain restart).
    vr.force_backup(t0 + secs(6));
    assert_eq!(vr.poll_timeout(), Some(t0 + secs(6) + us(3_609_375)));
}

#[test]
fn forced_transitions_do_nothing_in_fault_and_init() {
    let t0 = Instant::now();
    let mut vr = timed_out_to_master(v2(100, 1), t0);
    vr.set_fault(true, t0 + secs(5));
    drain(&mut vr);
    for now in [t0 + secs(6), t0 + secs(7)] {
        vr.force_backup(now);
        vr.force_master(now);
        assert_eq!(drain(&mut vr), vec![]);
        assert_eq!(vr.state(), State::Fault);
        assert_eq!(vr.poll_timeout(), None);
    }
    vr.shutdown(t0 + secs(8));
    drain(&mut vr);
    vr.force_backup(t0 + secs(9));
    vr.force_master(t0 + secs(9));
    assert_eq!(drain(&mut vr), vec![]);
    assert_eq!(vr.state(), State::Initialize);
    assert_eq!(vr.poll_timeout(), None);
}

#[test]
fn force_master_from_backup_takes_over_at_once() {
    let t0 = Instant::now();
    // A v3 backup that adopted its master's 0.5 s interval.
    let mut vr = started(v3(100, 2), t0);
    let mut master = vr.advert(100);
    master.fields = VersionFields::V3 { max_advert_int_cs: 50 };
    vr.handle_advert(&master, addr(1), t0 + secs(1));
    assert_eq!(vr.master_adver_interval(), ms(500));
    let now = t0 + ms(1_200);
    vr.force_master(now);
    assert_eq!(
        drain(&mut vr),
        vec![Action::SendAdvert { priority: 100 }, Action::BecomeMaster, changed(State::Backup, State::Master)]
    );
    // As a master it advertises its own interval again, from now.
    assert_eq!(vr.master_adver_interval(), secs(1));
    assert_eq!(vr.poll_timeout(), Some(now + secs(1)));
    assert_eq!(vr.current_master(), None);
    // Already master: nothing, the Adver timer keeps its deadline.
    vr.force_master(now + ms(300));
    assert_eq!(drain(&mut vr), vec![]);
    assert_eq!(vr.poll_timeout(), Some(now + secs(1)));
}

#[test]
fn force_master_does_not_beat_a_better_master() {
    let mut link = Link::new(ms(1));
    let a = link.start(v3(200, 1));
    let b = link.start(v3(100, 2));
    link.run_until(secs(10));
    assert_eq!(link.state(a), State::Master);
    // A sync group pulls B to MASTER: B advertises 100, A answers at once with 200 (a lower
    // master forces a new election) and B steps down when it hears it.
    link.force_master(b);
    assert_eq!(link.transitions(b).last(), Some(&(secs(10), State::Backup, State::Master)));
    link.run_until(secs(11));
    assert_eq!(link.state(a), State::Master);
    assert_eq!(link.state(b), State::Backup);
    assert!(link.adverts(a).contains(&(secs(10) + ms(1), 200)));
    assert_eq!(link.transitions(b).last(), Some(&(secs(10) + ms(2), State::Master, State::Backup)));
}

#[test]
fn forced_backup_master_hands_over_in_skew_time_then_preempts_back() {
    let mut link = Link::new(ms(1));
    let a = link.start(v3(200, 1));
    let b = link.start(v3(100, 2));
    link.run_until(secs(10));
    assert_eq!(link.state(a), State::Master);
    // A's sync group drags it to BACKUP: priority 0, so B takes over after Skew_Time.
    link.force_backup(a);
    assert_eq!(link.adverts(a).last(), Some(&(secs(10), 0)));
    link.run_until(secs(11));
    assert_eq!(link.became_master_at(b), Some(secs(10) + ms(1) + us(609_375)));
    // Nothing holds A back any more: it discards B's lower adverts and preempts when its own
    // Master_Down timer (started when it was forced) expires.
    link.run_until(secs(20));
    assert_eq!(link.became_master_at(a), Some(secs(10) + us(3_218_750)));
    assert_eq!(link.state(b), State::Backup);
}
