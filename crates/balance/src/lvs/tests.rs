//! The LVS schedulers against sequences worked out by hand from the kernel's rules, and
//! Maglev's properties.
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use fulcrum_model::{Algorithm, HashType, Lvs, LvsScheduler};

use super::{tables, Flow, Load, Thresholds};
use crate::{Scheduler, ServerId, Slot};

fn scheduler(kind: LvsScheduler, weights: &[u32]) -> Scheduler {
    scheduler_with(Lvs::new(kind), weights)
}

fn scheduler_with(lvs: Lvs, weights: &[u32]) -> Scheduler {
    let mut s = Scheduler::new(Algorithm::Lvs(lvs), HashType::MapBased);
    let slots: Vec<Slot> = weights.iter().enumerate().map(|(id, &weight)| Slot { id, weight }).collect();
    s.rebuild(&slots);
    s
}

fn flow(client: &str, destination: &str, now: Instant) -> Flow {
    Flow {
        client: client.parse().expect("client literal"),
        destination: destination.parse().expect("destination literal"),
        now,
    }
}

fn any_flow() -> Flow {
    flow("192.0.2.1:40000", "198.51.100.1:80", Instant::now())
}

/// Server letters: 0 → a, 1 → b, ...
fn letter(id: Option<ServerId>) -> char {
    id.map_or('-', |id| char::from(b'a' + id as u8))
}

/// `n` picks with the loads given per server (missing: idle, usable).
fn sequence(s: &mut Scheduler, n: usize, loads: &HashMap<ServerId, Option<Load>>) -> String {
    let f = any_flow();
    (0..n)
        .map(|_| letter(s.pick_flow(None, &f, &|id| loads.get(&id).copied().unwrap_or(Some(Load::default())))))
        .collect()
}

fn idle() -> HashMap<ServerId, Option<Load>> {
    HashMap::new()
}

fn active(counts: &[(ServerId, u32, u32)]) -> HashMap<ServerId, Option<Load>> {
    counts.iter().map(|&(id, active, inactive)| (id, Some(Load { active, inactive, overloaded: false }))).collect()
}

fn overloaded(id: ServerId) -> (ServerId, Option<Load>) {
    (id, Some(Load { overloaded: true, ..Load::default() }))
}

#[test]
fn rr_takes_turns_and_skips_weight_zero_and_overloaded() {
    let mut s = scheduler(LvsScheduler::Rr, &[1, 1, 0, 1]);
    assert_eq!(sequence(&mut s, 7, &idle()), "abdabda");
    let loads: HashMap<_, _> = [overloaded(1)].into_iter().collect();
    // The cursor is after a: b is skipped.
    assert_eq!(sequence(&mut s, 4, &loads), "dada");
    // Weights do not matter to rr beyond zero.
    let mut s = scheduler(LvsScheduler::Rr, &[5, 1]);
    assert_eq!(sequence(&mut s, 4, &idle()), "abab");
}

#[test]
fn rr_cursor_survives_a_removal() {
    let mut s = scheduler(LvsScheduler::Rr, &[1, 1, 1]);
    assert_eq!(sequence(&mut s, 2, &idle()), "ab");
    // b leaves: the cursor goes back to a, so c is next.
    s.rebuild(&[Slot { id: 0, weight: 1 }, Slot { id: 2, weight: 1 }]);
    assert_eq!(sequence(&mut s, 3, &idle()), "cac");
}

#[test]
fn wrr_steps_by_the_gcd_from_the_largest_weight() {
    let mut s = scheduler(LvsScheduler::Wrr, &[4, 3, 2]);
    assert_eq!(sequence(&mut s, 18, &idle()), "aababcabcaababcabc");
    // Weights 4 and 2: gcd 2, mw = 4 − 1 = 3.
    let mut s = scheduler(LvsScheduler::Wrr, &[4, 2]);
    assert_eq!(sequence(&mut s, 6, &idle()), "aabaab");
    // Weight 0 is never chosen.
    let mut s = scheduler(LvsScheduler::Wrr, &[0, 1, 1]);
    assert_eq!(sequence(&mut s, 4, &idle()), "bcbc");
}

#[test]
fn wrr_with_the_heaviest_overloaded_keeps_the_others_proportions() {
    let mut s = scheduler(LvsScheduler::Wrr, &[4, 3, 2]);
    let loads: HashMap<_, _> = [overloaded(0)].into_iter().collect();
    // cw 4 finds nobody, drops to 3: b; 2: b c; 1: b c; back to 4, straight to 3: b; ...
    assert_eq!(sequence(&mut s, 10, &loads), "bbcbcbbcbc");
    let everyone: HashMap<_, _> = [overloaded(0), overloaded(1), overloaded(2)].into_iter().collect();
    assert_eq!(sequence(&mut s, 2, &everyone), "--");
}

#[test]
fn wrr_with_huge_weights_answers_fast() {
    let mut s = scheduler(LvsScheduler::Wrr, &[65535, 1, 65534]);
    let loads: HashMap<_, _> = [overloaded(0), overloaded(2)].into_iter().collect();
    assert_eq!(sequence(&mut s, 3, &loads), "bbb");
}

#[test]
fn lc_uses_overhead_and_ignores_weights() {
    // Overheads: a 256, b 300, c 256: a (first of the least).
    let mut s = scheduler(LvsScheduler::Lc, &[1, 5, 1]);
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 1, 0), (1, 0, 300), (2, 1, 0)])), "a");
    // b's inactive connections weigh 1/256 of an active one: 255 inactive beat 1 active.
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 1, 0), (1, 0, 255), (2, 1, 1)])), "b");
}

#[test]
fn wlc_sed_nq_compare_by_weight() {
    // wlc: a 256/1, b 512/3 → b.
    let mut s = scheduler(LvsScheduler::Wlc, &[1, 3]);
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 1, 0), (1, 2, 0)])), "b");
    // Equal ratios: the first stays.
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 1, 0), (1, 3, 0)])), "a");
    // sed: (0+1)/1 against (1+1)/3 → b.
    let mut s = scheduler(LvsScheduler::Sed, &[1, 3]);
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 0, 0), (1, 1, 0)])), "b");
    // sed ignores inactive connections.
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 0, 0), (1, 1, 999)])), "b");
    // nq: an idle server first, whatever the ratios.
    let mut s = scheduler(LvsScheduler::Nq, &[1, 3]);
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 0, 0), (1, 1, 0)])), "a");
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 1, 0), (1, 2, 0)])), "b");
}

#[test]
fn fo_and_ovf_prefer_the_heaviest() {
    let mut s = scheduler(LvsScheduler::Fo, &[2, 5, 5]);
    assert_eq!(sequence(&mut s, 2, &active(&[(1, 100, 0)])), "bb");
    let loads: HashMap<_, _> = [overloaded(1)].into_iter().collect();
    assert_eq!(sequence(&mut s, 1, &loads), "c");
    // ovf: a (5) has 6 active, more than its weight; b and c (3) tie: b.
    let mut s = scheduler(LvsScheduler::Ovf, &[5, 3, 3]);
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 6, 0), (1, 3, 0)])), "b");
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 5, 0), (1, 3, 0)])), "a");
    assert_eq!(sequence(&mut s, 1, &active(&[(0, 6, 0), (1, 4, 0), (2, 4, 0)])), "-");
}

#[test]
fn dh_maps_destinations_round_robin_over_buckets() {
    // 10.0.0.1 → bucket 177 (0x0a000001 × 2654435761, low byte), 177 mod 3 = 0: a.
    // 10.0.0.2 → bucket 98, 98 mod 3 = 2: c.
    assert_eq!(tables::dh_bucket("10.0.0.1".parse().expect("ip")), 177);
    assert_eq!(tables::dh_bucket("10.0.0.2".parse().expect("ip")), 98);
    let mut s = scheduler(LvsScheduler::Dh, &[1, 9, 1]);
    let now = Instant::now();
    let pick = |s: &mut Scheduler, to: &str| {
        letter(s.pick_flow(None, &flow("192.0.2.7:1000", to, now), &|_| Some(Load::default())))
    };
    assert_eq!(pick(&mut s, "10.0.0.1:80"), 'a');
    assert_eq!(pick(&mut s, "10.0.0.2:80"), 'c');
    // No fallback: the destination's server is down to weight 0, nothing is chosen.
    s.rebuild(&[Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 9 }, Slot { id: 2, weight: 0 }]);
    assert_eq!(pick(&mut s, "10.0.0.2:80"), '-');
}

#[test]
fn sh_fills_buckets_by_weight_and_falls_back_when_asked() {
    // Weights 2,1: buckets a a b a a b ...; bucket mod 3 < 2 is a.
    // 10.0.0.1 → 39 (a), 10.0.0.2 → 137 (b), 10.0.0.3 → 235 (a); with port 1234: 10.0.0.1 → 128 (b).
    assert_eq!(tables::sh_bucket("10.0.0.1".parse().expect("ip"), 0, 0), 39);
    assert_eq!(tables::sh_bucket("10.0.0.2".parse().expect("ip"), 0, 0), 137);
    assert_eq!(tables::sh_bucket("10.0.0.1".parse().expect("ip"), 1234, 0), 128);
    let now = Instant::now();
    let pick = |s: &mut Scheduler, from: &str, b_usable: bool| {
        letter(s.pick_flow(None, &flow(from, "198.51.100.1:80", now), &|id| {
            Some(Load { overloaded: id == 1 && !b_usable, ..Load::default() })
        }))
    };
    let mut s = scheduler(LvsScheduler::Sh, &[2, 1]);
    assert_eq!(pick(&mut s, "10.0.0.1:1234", true), 'a');
    assert_eq!(pick(&mut s, "10.0.0.2:1", true), 'b');
    assert_eq!(pick(&mut s, "10.0.0.3:1", true), 'a');
    assert_eq!(pick(&mut s, "10.0.0.2:1", false), '-');
    let mut with_port = Lvs::new(LvsScheduler::Sh);
    with_port.port = true;
    let mut s = scheduler_with(with_port, &[2, 1]);
    assert_eq!(pick(&mut s, "10.0.0.1:1234", true), 'b');
    // Fallback: 10.0.0.2's walk starts at offset 137: bucket (137 + 137) mod 256 = 18 → a.
    let mut fallback = Lvs::new(LvsScheduler::Sh);
    fallback.fallback = true;
    let mut s = scheduler_with(fallback, &[2, 1]);
    assert_eq!(pick(&mut s, "10.0.0.2:1", false), 'a');
}

#[test]
fn lblc_remembers_a_destination_until_its_server_is_overloaded() {
    let mut s = scheduler(LvsScheduler::Lblc, &[2, 2]);
    let t0 = Instant::now();
    let to = |s: &mut Scheduler, dest: &str, at: Instant, loads: &HashMap<ServerId, Option<Load>>| {
        letter(s.pick_flow(None, &flow("192.0.2.1:5000", dest, at), &|id| {
            loads.get(&id).copied().unwrap_or(Some(Load::default()))
        }))
    };
    // First: wlc picks a (both idle); then a is remembered although b is lighter.
    assert_eq!(to(&mut s, "10.0.0.1:80", t0, &idle()), 'a');
    assert_eq!(to(&mut s, "10.0.0.1:80", t0, &active(&[(0, 2, 0)])), 'a');
    // A new destination goes to the lightest: b.
    assert_eq!(to(&mut s, "10.0.0.9:80", t0, &active(&[(0, 2, 0)])), 'b');
    // a has 3 active (> weight 2) while b has 0 (< half of 2): overloaded, move to b, and stay.
    assert_eq!(to(&mut s, "10.0.0.1:80", t0, &active(&[(0, 3, 0)])), 'b');
    assert_eq!(to(&mut s, "10.0.0.1:80", t0, &active(&[(1, 1, 0)])), 'b');
    // More than its weight but nobody below half of theirs: not overloaded.
    assert_eq!(to(&mut s, "10.0.0.1:80", t0, &active(&[(0, 1, 0), (1, 3, 0)])), 'b');
    // Forgotten after a day unused: wlc again (a is lighter).
    let later = t0 + super::locality::EXPIRE;
    assert_eq!(to(&mut s, "10.0.0.1:80", later, &active(&[(1, 1, 0)])), 'a');
}

#[test]
fn lblcr_grows_a_set_under_load_and_sheds_its_busiest() {
    let mut s = scheduler(LvsScheduler::Lblcr, &[2, 2, 2]);
    let t0 = Instant::now();
    let to = |s: &mut Scheduler, at: Instant, loads: &HashMap<ServerId, Option<Load>>| {
        letter(s.pick_flow(None, &flow("192.0.2.1:5000", "10.0.0.1:80", at), &|id| {
            loads.get(&id).copied().unwrap_or(Some(Load::default()))
        }))
    };
    assert_eq!(to(&mut s, t0, &idle()), 'a');
    // a overloaded (3 > 2, c idle): wlc over all picks b (lighter than a, first of b/c); set {b, a}.
    assert_eq!(to(&mut s, t0, &active(&[(0, 3, 0)])), 'b');
    // The set's least loaded member now: a (1 active) against b (2 active).
    assert_eq!(to(&mut s, t0, &active(&[(0, 1, 0), (1, 2, 0), (2, 0, 0)])), 'a');
    // Used half a day later, so the entry lives on.
    let half = t0 + super::locality::EXPIRE / 2;
    assert_eq!(to(&mut s, half, &active(&[(0, 1, 0), (1, 2, 0)])), 'a');
    // A day without change: the busiest member (b) leaves; a serves.
    let later = t0 + super::locality::EXPIRE;
    assert_eq!(to(&mut s, later, &active(&[(0, 1, 0), (1, 2, 0)])), 'a');
    // Only a is left: its overload brings in the lightest server, c.
    assert_eq!(to(&mut s, later, &active(&[(0, 3, 0), (1, 2, 0)])), 'c');
}

#[test]
fn thresholds_follow_the_kernel_overload_rules() {
    let upper = Thresholds { upper: 4, lower: 0 };
    assert!(!upper.after_add(false, 3));
    assert!(upper.after_add(false, 4));
    // Cleared below three quarters of the upper threshold: 3 × 4 = 12 is not below 12.
    assert!(upper.after_remove(true, 3));
    assert!(!upper.after_remove(true, 2));
    let both = Thresholds { upper: 4, lower: 2 };
    assert!(both.after_remove(true, 2));
    assert!(!both.after_remove(true, 1));
    let none = Thresholds::default();
    assert!(!none.after_add(false, 1_000_000));
    assert!(!none.after_remove(true, 5));
}

fn maglev(weights: &[u32], fallback: bool) -> Scheduler {
    let mut lvs = Lvs::new(LvsScheduler::Mh);
    lvs.fallback = fallback;
    let mut s = Scheduler::new(Algorithm::Lvs(lvs), HashType::MapBased)
        .with_identities((0..weights.len() as u64).map(|i| 0xabcd_0000 + i).collect());
    let slots: Vec<Slot> = weights.iter().enumerate().map(|(id, &weight)| Slot { id, weight }).collect();
    s.rebuild(&slots);
    s
}

fn clients(n: u32) -> impl Iterator<Item = SocketAddr> {
    (0..n).map(|i| SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 7)), 40000))
}

fn spread(s: &mut Scheduler, n: u32) -> (HashMap<ServerId, u32>, Vec<Option<ServerId>>) {
    let now = Instant::now();
    let mut counts = HashMap::new();
    let mut chosen = Vec::new();
    for client in clients(n) {
        let f = Flow { client, destination: "198.51.100.1:80".parse().expect("literal"), now };
        let picked = s.pick_flow(None, &f, &|_| Some(Load::default()));
        if let Some(id) = picked {
            *counts.entry(id).or_insert(0) += 1;
        }
        chosen.push(picked);
    }
    (counts, chosen)
}

#[test]
fn maglev_spreads_by_weight() {
    let n = 100_000;
    let (counts, _) = spread(&mut maglev(&[1, 1, 1, 1, 1], false), n);
    for id in 0..5 {
        let share = f64::from(counts[&id]) / f64::from(n);
        assert!((share - 0.2).abs() < 0.02, "server {id}: {share}");
    }
    let (counts, _) = spread(&mut maglev(&[1, 2, 3], false), n);
    for (id, weight) in [(0, 1.0), (1, 2.0), (2, 3.0)] {
        let share = f64::from(counts[&id]) / f64::from(n);
        assert!((share - weight / 6.0).abs() < 0.02, "server {id}: {share}");
    }
}

#[test]
fn maglev_moves_about_one_nth_when_a_server_leaves() {
    let n = 50_000;
    for servers in [5usize, 10] {
        let mut s = maglev(&vec![1; servers], false);
        let (_, before) = spread(&mut s, n);
        // The last-but-one server leaves (identities stay with the others).
        let gone = servers - 2;
        let slots: Vec<Slot> = (0..servers).filter(|&id| id != gone).map(|id| Slot { id, weight: 1 }).collect();
        s.rebuild(&slots);
        let (_, after) = spread(&mut s, n);
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        let moved_share = moved as f64 / f64::from(n);
        let ideal = 1.0 / servers as f64;
        assert!(moved_share < ideal + 0.04, "{servers} servers: {moved_share} moved");
        assert!(before.iter().zip(&after).all(|(b, a)| *b != Some(gone) || *a != Some(gone)));
    }
}

#[test]
fn maglev_table_is_full_and_quiescent_servers_keep_their_buckets() {
    let mut s = maglev(&[1, 1, 1], false);
    let (_, before) = spread(&mut s, 20_000);
    // b to weight 0: its clients get nothing (no fallback), the others do not move.
    s.rebuild(&[Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 0 }, Slot { id: 2, weight: 1 }]);
    let (_, after) = spread(&mut s, 20_000);
    for (b, a) in before.iter().zip(&after) {
        if *b == Some(1) {
            assert_eq!(*a, None);
        } else {
            assert_eq!(b, a);
        }
    }
    // With mh-fallback, b's clients go elsewhere and the others still do not move.
    let mut s = maglev(&[1, 1, 1], true);
    s.rebuild(&[Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 0 }, Slot { id: 2, weight: 1 }]);
    let (_, fell_back) = spread(&mut s, 20_000);
    for (b, a) in before.iter().zip(&fell_back) {
        assert!(a.is_some() && *a != Some(1));
        if *b != Some(1) {
            assert_eq!(b, a);
        }
    }
}

#[test]
fn maglev_table_sizes_and_degenerate_lists() {
    // 251 buckets: weights ÷ gcd up to 7 keep their value (3 of ilog2(251) = 7 bits).
    let mut table = tables::Maglev::new(251);
    table.rebuild(&[Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 3 }], &|id| id as u64);
    assert!(table.lookup().iter().all(Option::is_some));
    let b = table.lookup().iter().filter(|x| **x == Some(1)).count();
    assert!((183..=194).contains(&b), "weight 3 of 4 should own about 188 of 251 buckets, got {b}");
    // 13 buckets leave one bit of weight: 1 and 3 both take one bucket per turn, as in the kernel.
    let mut table = tables::Maglev::new(13);
    table.rebuild(&[Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 3 }], &|id| id as u64);
    let b = table.lookup().iter().filter(|x| **x == Some(1)).count();
    assert!((6..=7).contains(&b), "{b}");
    // A server at weight 0 keeps the buckets of its last weight; one that never had a weight
    // takes none.
    table.rebuild(&[Slot { id: 0, weight: 0 }], &|id| id as u64);
    assert!(table.lookup().iter().all(|x| *x == Some(0)));
    let mut fresh = tables::Maglev::new(13);
    fresh.rebuild(&[Slot { id: 5, weight: 0 }], &|id| id as u64);
    assert!(fresh.lookup().iter().all(Option::is_none));
    table.rebuild(&[], &|id| id as u64);
    let mut s = maglev(&[], false);
    assert_eq!(spread(&mut s, 10).0.len(), 0);
}

#[test]
fn every_scheduler_survives_empty_and_all_refused() {
    for kind in LvsScheduler::ALL {
        let mut s = scheduler(kind, &[]);
        assert_eq!(s.pick_flow(None, &any_flow(), &|_| Some(Load::default())), None, "{kind:?}");
        let mut s = scheduler(kind, &[1, 2, 3]);
        assert_eq!(s.pick_flow(None, &any_flow(), &|_| None), None, "{kind:?}");
        let picked = s.pick_flow(None, &any_flow(), &|_| Some(Load::default()));
        assert!(picked.is_some(), "{kind:?}");
        let _ = Duration::ZERO;
    }
}

#[test]
fn wrr_three_one() {
    let mut s = scheduler(LvsScheduler::Wrr, &[3, 1]);
    assert_eq!(sequence(&mut s, 8, &idle()), "aaabaaab");
}
