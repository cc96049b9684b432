//! Scheduler behaviour, algorithm by algorithm, as an HAProxy user would check it.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::{Algorithm, HashType, Scheduler, ServerId, Slot};

fn slots(weights: &[u32]) -> Vec<Slot> {
    weights.iter().enumerate().map(|(id, &weight)| Slot { id, weight }).collect()
}

fn scheduler(algorithm: Algorithm, weights: &[u32]) -> Scheduler {
    let mut scheduler = Scheduler::new(algorithm, HashType::MapBased);
    scheduler.rebuild(&slots(weights));
    scheduler
}

fn idle(_: ServerId) -> Option<u32> {
    Some(0)
}

fn picks(scheduler: &mut Scheduler, count: usize, load: &dyn Fn(ServerId) -> Option<u32>) -> Vec<ServerId> {
    (0..count).filter_map(|_| scheduler.pick(None, load)).collect()
}

fn counts(picked: &[ServerId], servers: usize) -> Vec<usize> {
    let mut counts = vec![0; servers];
    for &id in picked {
        counts[id] += 1;
    }
    counts
}

/// Longest run of one server, reading the sequence as a cycle.
fn longest_run(sequence: &[ServerId], server: ServerId) -> usize {
    let doubled: Vec<ServerId> = sequence.iter().chain(sequence).copied().collect();
    doubled.split(|&id| id != server).map(<[ServerId]>::len).max().unwrap_or(0)
}

fn every_algorithm() -> Vec<(Algorithm, HashType)> {
    let mut all = vec![
        (Algorithm::RoundRobin, HashType::MapBased),
        (Algorithm::StaticRr, HashType::MapBased),
        (Algorithm::LeastConn, HashType::MapBased),
        (Algorithm::First, HashType::MapBased),
        (Algorithm::Random { draws: 0 }, HashType::MapBased),
        (Algorithm::Random { draws: 1 }, HashType::MapBased),
        (Algorithm::Random { draws: 2 }, HashType::MapBased),
        (Algorithm::Random { draws: u32::MAX }, HashType::MapBased),
    ];
    let hashes = [
        Algorithm::Source,
        Algorithm::Uri { whole: false, len: None, depth: None, path_only: false },
        Algorithm::UrlParam { name: "user".into() },
        Algorithm::Hdr { name: "host".into(), use_domain_only: false },
    ];
    for algorithm in hashes {
        all.push((algorithm.clone(), HashType::MapBased));
        all.push((algorithm, HashType::Consistent));
    }
    all
}

fn page_key(i: usize) -> Vec<u8> {
    format!("/page{i}").into_bytes()
}

/// Which server each of `keys` hashes to, everything idle.
fn assignment(scheduler: &mut Scheduler, keys: &[Vec<u8>]) -> Vec<Option<ServerId>> {
    keys.iter().map(|key| scheduler.pick(Some(key), &idle)).collect()
}

// ---- roundrobin ---------------------------------------------------------------------------

#[test]
fn roundrobin_5_1_1_exact_sequence_and_counts() {
    let mut rr = scheduler(Algorithm::RoundRobin, &[5, 1, 1]);
    assert_eq!(picks(&mut rr, 7, &idle), vec![0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(picks(&mut rr, 7, &idle), vec![0, 0, 1, 0, 2, 0, 0], "the cycle repeats");
    assert_eq!(counts(&picks(&mut rr, 700, &idle), 3), vec![500, 100, 100]);
}

#[test]
fn roundrobin_3_2_and_equal_weights() {
    let mut rr = scheduler(Algorithm::RoundRobin, &[3, 2]);
    assert_eq!(picks(&mut rr, 10, &idle), vec![0, 1, 0, 1, 0, 0, 1, 0, 1, 0]);
    assert_eq!(counts(&picks(&mut rr, 500, &idle), 2), vec![300, 200]);
    let mut equal = scheduler(Algorithm::RoundRobin, &[4, 4, 4]);
    assert_eq!(picks(&mut equal, 6, &idle), vec![0, 1, 2, 0, 1, 2]);
}

#[test]
fn roundrobin_spreads_a_heavy_server() {
    let mut rr = scheduler(Algorithm::RoundRobin, &[1, 10]);
    let cycle = picks(&mut rr, 11, &idle);
    assert_eq!(counts(&cycle, 2), vec![1, 10]);
    let mut rr = scheduler(Algorithm::RoundRobin, &[2, 10]);
    let cycle = picks(&mut rr, 12, &idle);
    assert!(longest_run(&cycle, 1) <= 5, "{cycle:?}");
}

#[test]
fn roundrobin_identical_rebuild_continues_the_sequence() {
    let mut uninterrupted = scheduler(Algorithm::RoundRobin, &[5, 1, 1]);
    let expected = picks(&mut uninterrupted, 14, &idle);
    let mut rebuilt = scheduler(Algorithm::RoundRobin, &[5, 1, 1]);
    let mut got = picks(&mut rebuilt, 3, &idle);
    rebuilt.rebuild(&slots(&[5, 1, 1]));
    got.extend(picks(&mut rebuilt, 11, &idle));
    assert_eq!(got, expected);
}

#[test]
fn roundrobin_returning_server_gets_no_burst() {
    let mut rr = scheduler(Algorithm::RoundRobin, &[1, 1, 1]);
    picks(&mut rr, 31, &idle);
    // Server 2 goes down for a while (mid-cycle), then comes back.
    rr.rebuild(&[Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 1 }]);
    let without = counts(&picks(&mut rr, 40, &idle), 3);
    assert_eq!(without[2], 0);
    assert!(without[0].abs_diff(without[1]) <= 2, "{without:?}");
    rr.rebuild(&slots(&[1, 1, 1]));
    let after = picks(&mut rr, 30, &idle);
    assert!(counts(&after[..6], 3)[2] <= 2, "{after:?}");
    for count in counts(&after, 3) {
        assert!((9..=11).contains(&count), "{after:?}");
    }
}

#[test]
fn roundrobin_weight_change_keeps_running() {
    // A slowstart ramp: weights change every few picks; the share follows the weights.
    let mut rr = scheduler(Algorithm::RoundRobin, &[10, 1]);
    let mut picked = Vec::new();
    for ramp in 1..=10 {
        rr.rebuild(&slots(&[10, ramp]));
        picked.extend(picks(&mut rr, 10 + ramp as usize, &idle));
    }
    let newcomer = counts(&picked, 2)[1];
    assert!((45..=65).contains(&newcomer), "{newcomer}");
}

#[test]
fn roundrobin_skipped_server_leaves_others_proportional() {
    let mut rr = scheduler(Algorithm::RoundRobin, &[1, 2, 3]);
    let skip_2 = |id: ServerId| (id != 2).then_some(0);
    let picked = picks(&mut rr, 300, &skip_2);
    assert_eq!(counts(&picked, 3), vec![100, 200, 0]);
    // Back from being skipped: no catch-up burst for server 2 (its fair share is 3 of 6).
    let after = picks(&mut rr, 6, &idle);
    assert_eq!(counts(&after, 3), vec![1, 2, 3], "{after:?}");
}

// ---- static-rr ----------------------------------------------------------------------------

#[test]
fn static_rr_exact_sequences() {
    let mut srr = scheduler(Algorithm::StaticRr, &[5, 1, 1]);
    assert_eq!(picks(&mut srr, 14, &idle), vec![0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    assert_eq!(counts(&picks(&mut srr, 700, &idle), 3), vec![500, 100, 100]);
    let mut srr = scheduler(Algorithm::StaticRr, &[3, 2]);
    assert_eq!(picks(&mut srr, 5, &idle), vec![0, 1, 0, 1, 0]);
    assert_eq!(counts(&picks(&mut srr, 500, &idle), 2), vec![300, 200]);
    let mut srr = scheduler(Algorithm::StaticRr, &[30, 20]);
    assert_eq!(picks(&mut srr, 5, &idle), vec![0, 1, 0, 1, 0], "weights reduced by gcd");
}

#[test]
fn static_rr_skipped_turns_are_passed_over() {
    let mut srr = scheduler(Algorithm::StaticRr, &[5, 1, 1]);
    let skip_1 = |id: ServerId| (id != 1).then_some(0);
    let picked = picks(&mut srr, 600, &skip_1);
    assert_eq!(counts(&picked, 3), vec![500, 0, 100]);
}

#[test]
fn static_rr_identical_rebuild_keeps_the_cursor() {
    let mut srr = scheduler(Algorithm::StaticRr, &[5, 1, 1]);
    let mut got = picks(&mut srr, 3, &idle);
    srr.rebuild(&slots(&[5, 1, 1]));
    got.extend(picks(&mut srr, 4, &idle));
    assert_eq!(got, vec![0, 0, 1, 0, 2, 0, 0]);
}

#[test]
fn static_rr_huge_weights_keep_proportions() {
    let mut srr = scheduler(Algorithm::StaticRr, &[u32::MAX, u32::MAX / 3, 1]);
    let picked = counts(&picks(&mut srr, 100_000, &idle), 3);
    assert!(picked[2] >= 1, "{picked:?}");
    let ratio = picked[0] as f64 / picked[1] as f64;
    assert!((2.9..3.1).contains(&ratio), "{picked:?}");
}

// ---- leastconn ----------------------------------------------------------------------------

/// Runs `count` picks where every pick opens a connection that stays open.
fn leastconn_run(scheduler: &mut Scheduler, active: &RefCell<Vec<u32>>, count: usize) -> Vec<ServerId> {
    let mut picked = Vec::new();
    for _ in 0..count {
        let load = |id: ServerId| active.borrow().get(id).copied();
        let Some(id) = scheduler.pick(None, &load) else {
            break;
        };
        active.borrow_mut()[id] += 1;
        picked.push(id);
    }
    picked
}

#[test]
fn leastconn_busy_server_waits_until_others_catch_up() {
    let mut lc = scheduler(Algorithm::LeastConn, &[1, 1, 1]);
    let active = RefCell::new(vec![10, 0, 0]);
    let first = leastconn_run(&mut lc, &active, 20);
    assert_eq!(counts(&first, 3), vec![0, 10, 10]);
    for prefix in 1..=first.len() {
        let so_far = counts(&first[..prefix], 3);
        assert!(so_far[1].abs_diff(so_far[2]) <= 1, "equal servers take turns: {first:?}");
    }
    let next = leastconn_run(&mut lc, &active, 30);
    assert_eq!(counts(&next, 3), vec![10, 10, 10]);
}

#[test]
fn leastconn_respects_weights() {
    let mut lc = scheduler(Algorithm::LeastConn, &[2, 1]);
    let active = RefCell::new(vec![0, 0]);
    leastconn_run(&mut lc, &active, 30);
    assert_eq!(*active.borrow(), vec![20, 10]);
    // With weight 3 vs 1 and a skewed start, the heavy server absorbs until 3:1 is restored.
    let mut lc = scheduler(Algorithm::LeastConn, &[3, 1]);
    let active = RefCell::new(vec![0, 10]);
    let picked = leastconn_run(&mut lc, &active, 30);
    assert_eq!(&picked[..29], &[0; 29]);
    assert_eq!(*active.borrow(), vec![30, 10]);
}

#[test]
fn leastconn_idle_servers_share_by_weight() {
    // Short requests: nothing is ever active, every pick is a tie.
    let mut lc = scheduler(Algorithm::LeastConn, &[2, 1]);
    assert_eq!(picks(&mut lc, 6, &idle), vec![0, 1, 0, 0, 1, 0]);
    let mut lc = scheduler(Algorithm::LeastConn, &[1, 1, 1]);
    assert_eq!(picks(&mut lc, 6, &idle), vec![0, 1, 2, 0, 1, 2]);
}

// ---- first --------------------------------------------------------------------------------

#[test]
fn first_fills_servers_in_declaration_order() {
    // Given out of order: `first` follows ids, not slot order.
    let mut first = Scheduler::new(Algorithm::First, HashType::MapBased);
    first.rebuild(&[Slot { id: 2, weight: 1 }, Slot { id: 0, weight: 1 }, Slot { id: 1, weight: 1 }]);
    let maxconn = 2;
    let active = RefCell::new(vec![0u32; 3]);
    let mut picked = Vec::new();
    for _ in 0..7 {
        let load = |id: ServerId| active.borrow().get(id).copied().filter(|&a| a < maxconn);
        match first.pick(None, &load) {
            Some(id) => {
                active.borrow_mut()[id] += 1;
                picked.push(Some(id));
            }
            None => picked.push(None),
        }
    }
    assert_eq!(picked, vec![Some(0), Some(0), Some(1), Some(1), Some(2), Some(2), None]);
    // A connection on server 0 closes: the next request goes back to server 0.
    active.borrow_mut()[0] -= 1;
    let load = |id: ServerId| active.borrow().get(id).copied().filter(|&a| a < maxconn);
    assert_eq!(first.pick(None, &load), Some(0));
}

// ---- hashing ------------------------------------------------------------------------------

#[test]
fn map_based_spreads_consecutive_keys_evenly() {
    let keys: Vec<Vec<u8>> = (1..=10_000).map(page_key).collect();
    for weights in [&[1u32, 1, 1, 1][..], &[1, 1, 1, 1, 1, 1, 1], &[2, 1, 1], &[256, 100, 30]] {
        let mut map = scheduler(Algorithm::Uri { whole: false, len: None, depth: None, path_only: false }, weights);
        let assigned: Vec<ServerId> = assignment(&mut map, &keys).into_iter().flatten().collect();
        assert_eq!(assigned.len(), keys.len());
        let total: u32 = weights.iter().sum();
        for (server, &count) in counts(&assigned, weights.len()).iter().enumerate() {
            let fair = keys.len() as f64 * f64::from(weights[server]) / f64::from(total);
            let deviation = (count as f64 - fair).abs() / fair;
            assert!(deviation <= 0.10, "weights {weights:?} server {server}: {count} vs {fair}");
        }
    }
}

#[test]
fn hashing_is_deterministic_across_schedulers() {
    let keys: Vec<Vec<u8>> = (1..=500).map(page_key).collect();
    for hash_type in [HashType::MapBased, HashType::Consistent] {
        let mut a = Scheduler::new(Algorithm::Source, hash_type);
        let mut b = Scheduler::with_seed(Algorithm::Source, hash_type, 99);
        a.rebuild(&slots(&[1, 2, 3]));
        b.rebuild(&slots(&[1, 2, 3]));
        assert_eq!(assignment(&mut a, &keys), assignment(&mut b, &keys));
        assert_eq!(assignment(&mut a, &keys), assignment(&mut a, &keys));
    }
}

fn consistent(weights: &[u32]) -> Scheduler {
    let mut ring = Scheduler::new(Algorithm::Source, HashType::Consistent);
    ring.rebuild(&slots(weights));
    ring
}

#[test]
fn consistent_removal_moves_only_the_removed_servers_keys() {
    let keys: Vec<Vec<u8>> = (1..=10_000).map(page_key).collect();
    let mut ring = consistent(&[1, 1, 1, 1]);
    let before = assignment(&mut ring, &keys);
    ring.rebuild(&slots(&[1, 1, 1]));
    let after = assignment(&mut ring, &keys);
    let mut moved = 0;
    for (old, new) in before.iter().zip(&after) {
        if old != new {
            moved += 1;
            assert_eq!(*old, Some(3), "only keys of the removed server move");
            assert!(new.is_some());
        }
    }
    let share = f64::from(moved) / keys.len() as f64;
    assert!((0.15..=0.35).contains(&share), "moved {share}");
    assert_eq!(before.iter().filter(|&&s| s == Some(3)).count(), moved as usize);
}

#[test]
fn consistent_addition_moves_a_fifth_to_the_new_server() {
    let keys: Vec<Vec<u8>> = (1..=10_000).map(page_key).collect();
    let mut ring = consistent(&[1, 1, 1, 1]);
    let before = assignment(&mut ring, &keys);
    ring.rebuild(&slots(&[1, 1, 1, 1, 1]));
    let after = assignment(&mut ring, &keys);
    let mut moved = 0;
    for (old, new) in before.iter().zip(&after) {
        if old != new {
            moved += 1;
            assert_eq!(*new, Some(4), "moved keys all go to the new server");
        }
    }
    let share = f64::from(moved) / keys.len() as f64;
    assert!((0.12..=0.28).contains(&share), "moved {share}");
}

#[test]
fn consistent_spread_follows_weights() {
    let keys: Vec<Vec<u8>> = (1..=10_000).map(page_key).collect();
    for weights in [&[1u32, 1, 1, 1][..], &[1, 3], &[10, 10, 20]] {
        let mut ring = consistent(weights);
        let assigned: Vec<ServerId> = assignment(&mut ring, &keys).into_iter().flatten().collect();
        let total: u32 = weights.iter().sum();
        for (server, &count) in counts(&assigned, weights.len()).iter().enumerate() {
            let fair = keys.len() as f64 * f64::from(weights[server]) / f64::from(total);
            let deviation = (count as f64 - fair).abs() / fair;
            assert!(deviation <= 0.25, "weights {weights:?} server {server}: {count} vs {fair}");
        }
    }
}

#[test]
fn consistent_weight_change_moves_keys_only_to_or_from_that_server() {
    let keys: Vec<Vec<u8>> = (1..=10_000).map(page_key).collect();
    let mut ring = consistent(&[4, 4, 4]);
    let before = assignment(&mut ring, &keys);
    ring.rebuild(&slots(&[4, 4, 8]));
    let after = assignment(&mut ring, &keys);
    for (old, new) in before.iter().zip(&after) {
        if old != new {
            assert_eq!(*new, Some(2));
        }
    }
}

#[test]
fn hash_skip_walks_to_a_fixed_next_candidate() {
    for hash_type in [HashType::MapBased, HashType::Consistent] {
        let mut hashed = Scheduler::new(Algorithm::Source, hash_type);
        hashed.rebuild(&slots(&[1, 1, 1, 1]));
        for i in 0..200 {
            let key = page_key(i);
            let Some(home) = hashed.pick(Some(&key), &idle) else { panic!("no server") };
            let not_home = |id: ServerId| (id != home).then_some(0);
            let second = hashed.pick(Some(&key), &not_home);
            assert!(second.is_some() && second != Some(home));
            assert_eq!(hashed.pick(Some(&key), &not_home), second, "deterministic");
            let neither = |id: ServerId| (id != home && Some(id) != second).then_some(0);
            let third = hashed.pick(Some(&key), &neither);
            assert!(third.is_some() && third != Some(home) && third != second);
            assert_eq!(hashed.pick(Some(&key), &idle), Some(home), "home again once free");
        }
    }
}

#[test]
fn hash_without_key_falls_back_to_round_robin() {
    for hash_type in [HashType::MapBased, HashType::Consistent] {
        let mut hashed = Scheduler::new(Algorithm::UrlParam { name: "user".into() }, hash_type);
        hashed.rebuild(&slots(&[5, 1, 1]));
        assert_eq!(picks(&mut hashed, 7, &idle), vec![0, 0, 1, 0, 2, 0, 0]);
    }
}

// ---- random -------------------------------------------------------------------------------

fn random_counts(draws: u32, weights: &[u32], load: &dyn Fn(ServerId) -> Option<u32>) -> Vec<usize> {
    let mut random = Scheduler::with_seed(Algorithm::Random { draws }, HashType::MapBased, 7);
    random.rebuild(&slots(weights));
    counts(&picks(&mut random, 10_000, load), weights.len())
}

#[test]
fn random_two_choices_avoid_a_loaded_server() {
    let busy_0 = |id: ServerId| Some(if id == 0 { 100 } else { 1 });
    // Plain random ignores load: about a quarter.
    let plain = random_counts(1, &[1, 1, 1, 1], &busy_0);
    assert!((2200..2800).contains(&plain[0]), "{plain:?}");
    // Two choices: server 0 only wins when both draws hit it, 1/16 of the time.
    let two = random_counts(2, &[1, 1, 1, 1], &busy_0);
    assert!((450..800).contains(&two[0]), "{two:?}");
    for &other in &two[1..] {
        assert!((2900..3400).contains(&other), "{two:?}");
    }
}

#[test]
fn random_draws_follow_weights() {
    let weighted = random_counts(1, &[3, 1], &idle);
    assert!((7200..7800).contains(&weighted[0]), "{weighted:?}");
}

#[test]
fn random_is_reproducible_per_seed() {
    let run = |seed| {
        let mut random = Scheduler::with_seed(Algorithm::Random { draws: 2 }, HashType::MapBased, seed);
        random.rebuild(&slots(&[1, 1, 1, 1]));
        picks(&mut random, 50, &idle)
    };
    assert_eq!(run(1), run(1));
    assert_ne!(run(1), run(2));
    let mut default_a = scheduler(Algorithm::Random { draws: 2 }, &[1, 1, 1]);
    let mut default_b = scheduler(Algorithm::Random { draws: 2 }, &[1, 1, 1]);
    assert_eq!(picks(&mut default_a, 50, &idle), picks(&mut default_b, 50, &idle));
}

#[test]
fn random_finds_the_last_free_server() {
    let mut random = scheduler(Algorithm::Random { draws: 2 }, &[100, 100, 100, 1]);
    let only_3 = |id: ServerId| (id == 3).then_some(0);
    for _ in 0..100 {
        assert_eq!(random.pick(None, &only_3), Some(3));
    }
}

// ---- every algorithm ----------------------------------------------------------------------

#[test]
fn empty_slots_give_none() {
    for (algorithm, hash_type) in every_algorithm() {
        let mut scheduler = Scheduler::new(algorithm.clone(), hash_type);
        assert_eq!(scheduler.pick(Some(b"k"), &idle), None, "{algorithm:?}");
        assert_eq!(scheduler.pick(None, &idle), None, "{algorithm:?}");
        scheduler.rebuild(&slots(&[1, 1]));
        scheduler.rebuild(&[]);
        assert_eq!(scheduler.pick(Some(b"k"), &idle), None, "{algorithm:?}");
        assert_eq!(scheduler.pick(None, &idle), None, "{algorithm:?}");
    }
}

#[test]
fn weight_zero_is_never_picked() {
    for (algorithm, hash_type) in every_algorithm() {
        let mut scheduler = Scheduler::new(algorithm.clone(), hash_type);
        scheduler.rebuild(&slots(&[0, 3, 0, 1]));
        for i in 0..500 {
            let key = page_key(i);
            let key = (i % 3 != 0).then_some(key.as_slice());
            let picked = scheduler.pick(key, &idle);
            assert!(matches!(picked, Some(1) | Some(3)), "{algorithm:?}: {picked:?}");
        }
        scheduler.rebuild(&slots(&[0, 0]));
        assert_eq!(scheduler.pick(Some(b"k"), &idle), None, "{algorithm:?}");
        assert_eq!(scheduler.pick(None, &idle), None, "{algorithm:?}");
    }
}

#[test]
fn skipped_servers_are_never_returned() {
    for (algorithm, hash_type) in every_algorithm() {
        let mut scheduler = Scheduler::new(algorithm.clone(), hash_type);
        scheduler.rebuild(&slots(&[3, 1, 2, 5, 1]));
        let asked = RefCell::new(HashMap::<ServerId, u32>::new());
        for i in 0..1000 {
            // A rotating set of full servers, like retries with `option redispatch`.
            let skipped = [i % 5, (i * 3 + 1) % 5];
            let load = |id: ServerId| {
                *asked.borrow_mut().entry(id).or_default() += 1;
                (!skipped.contains(&id)).then_some((id as u32 * 7 + i as u32) % 11)
            };
            let key = page_key(i);
            let key = (i % 4 != 0).then_some(key.as_slice());
            let picked = scheduler.pick(key, &load);
            let Some(id) = picked else { panic!("{algorithm:?}: a server was free") };
            assert!(!skipped.contains(&id), "{algorithm:?} returned skipped {id}");
        }
        let refuse_all = |_: ServerId| None;
        assert_eq!(scheduler.pick(Some(b"k"), &refuse_all), None, "{algorithm:?}");
        assert_eq!(scheduler.pick(None, &refuse_all), None, "{algorithm:?}");
    }
}

#[test]
fn huge_weights_and_arbitrary_keys_do_not_panic() {
    let weights = [u32::MAX, u32::MAX, 1, u32::MAX / 7, 0];
    let keys: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0xff; 4096], (0..=255).collect(), b"\r\n\0".to_vec()];
    for (algorithm, hash_type) in every_algorithm() {
        let mut scheduler = Scheduler::new(algorithm.clone(), hash_type);
        scheduler.rebuild(&slots(&weights));
        let saturated = |_: ServerId| Some(u32::MAX);
        for key in &keys {
            assert!(scheduler.pick(Some(key), &idle).is_some(), "{algorithm:?}");
            assert!(scheduler.pick(Some(key), &saturated).is_some(), "{algorithm:?}");
        }
        assert!(scheduler.pick(None, &saturated).is_some(), "{algorithm:?}");
        // Duplicate ids and a very sparse id space.
        scheduler.rebuild(&[Slot { id: usize::MAX, weight: 2 }, Slot { id: usize::MAX, weight: 1 }]);
        assert_eq!(scheduler.pick(Some(b"x"), &idle), Some(usize::MAX), "{algorithm:?}");
        assert_eq!(scheduler.pick(None, &idle), Some(usize::MAX), "{algorithm:?}");
    }
}

#[test]
fn accessors_report_the_configuration() {
    let scheduler = Scheduler::new(Algorithm::Hdr { name: "host".into(), use_domain_only: true }, HashType::Consistent);
    assert_eq!(scheduler.algorithm(), &Algorithm::Hdr { name: "host".into(), use_domain_only: true });
    assert_eq!(scheduler.hash_type(), HashType::Consistent);
}

#[test]
fn schedulers_and_tables_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Scheduler>();
    assert_send_sync::<crate::PersistTable<std::net::IpAddr>>();
}
