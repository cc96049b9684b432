//! The rules of `vrrp_sync_group`, as keepalived 2.2 applies them (`vrrp_sync.c`), decided from
//! the status the other members publish. Pure: the driver asks, then feeds the answer to its
//! core with `set_fault`, `force_backup` or `force_master`.
//!
//! keepalived keeps, per instance, the state it would be in without its group (`wantstate`):
//! MASTER once its Master_Down timer expired, BACKUP again as soon as it accepts an advert
//! from a master. Here that is [`InstanceStatus::wants_master`]. The rules:
//!
//! - **FAULT**: a member at fault by itself puts every member in FAULT (`vrrp_sync_fault`).
//! - **BACKUP**: a member that follows a master of higher or equal priority
//!   ([`InstanceStatus::outranked`]) drags the MASTER members to BACKUP (`vrrp_sync_backup`).
//! - **MASTER**: a member whose Master_Down timer expires goes MASTER only if the group is
//!   already MASTER (another member is) or every other member wants MASTER too; otherwise it
//!   stays BACKUP with a fresh Master_Down timer and keeps wanting MASTER
//!   (`vrrp_sync_can_goto_master`, which prefers BACKUP "to avoid thrashing"). When the last
//!   member gets there, the group goes MASTER at once: the member that goes first pulls the
//!   held-back ones along (`vrrp_sync_master`), without waiting for their own timers.
//!
//! Members that do not run (no status published) are left out, as keepalived leaves out a group
//! name that matches no instance. An address owner (priority 255) is not held back.

use crate::InstanceStatus;
use fulcrum_vrrp::State;

/// The published status of each other member of the group (`None`: not running).
pub(crate) type Others<'a> = [Option<&'a InstanceStatus>];

fn running<'a>(others: &'a Others<'a>) -> impl Iterator<Item = &'a InstanceStatus> + 'a {
    others.iter().flatten().copied()
}

/// Another member is at fault by itself: the whole group is FAULT.
pub(crate) fn fault(others: &Others<'_>) -> bool {
    running(others).any(|s| s.own_fault)
}

/// Another member follows a better master: a MASTER member must go BACKUP.
pub(crate) fn outranked(others: &Others<'_>) -> bool {
    running(others).any(|s| s.outranked)
}

/// Whether a member that wants MASTER may go MASTER now (keepalived's
/// `vrrp_sync_can_goto_master`, plus the BACKUP rule above).
pub(crate) fn can_goto_master(others: &Others<'_>) -> bool {
    if outranked(others) || fault(others) {
        return false;
    }
    let group_is_master = running(others).any(|s| s.state == State::Master);
    group_is_master || running(others).all(|s| s.wants_master)
}

/// Whether a member going from `from` to `to` moves the group: the group's log line and notify
/// scripts then run, once per group transition (keepalived's `send_group_notifies`). The first
/// member to enter MASTER or FAULT moves it; BACKUP too, unless the group is MASTER and this
/// member merely (re)starts beside it (a reload); the last member to stop stops it.
pub(crate) fn moves_group(others: &Others<'_>, from: State, to: State) -> bool {
    let any_in = |state: State| running(others).any(|s| s.state == state);
    match to {
        State::Master | State::Fault => !any_in(to),
        State::Backup => !any_in(State::Backup) && (from == State::Master || !any_in(State::Master)),
        State::Initialize => running(others).all(|s| s.state == State::Initialize),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: State) -> InstanceStatus {
        InstanceStatus {
            state,
            priority: 100,
            own_fault: false,
            master: None,
            outranked: false,
            wants_master: state == State::Master,
        }
    }

    fn waiting() -> InstanceStatus {
        status(State::Backup)
    }

    fn held_back() -> InstanceStatus {
        InstanceStatus { wants_master: true, ..status(State::Backup) }
    }

    fn following_better_master() -> InstanceStatus {
        InstanceStatus { outranked: true, ..status(State::Backup) }
    }

    #[test]
    fn goes_master_only_when_every_member_wants_to() {
        // The other member's timer has not expired yet (startup): hold back.
        assert!(!can_goto_master(&[Some(&waiting())]));
        // It expired too (held back): go, and pull it along.
        assert!(can_goto_master(&[Some(&held_back())]));
        // One of two others still waits.
        assert!(!can_goto_master(&[Some(&held_back()), Some(&waiting())]));
        assert!(can_goto_master(&[Some(&held_back()), Some(&held_back())]));
        // No other member running, or none at all.
        assert!(can_goto_master(&[None]));
        assert!(can_goto_master(&[]));
    }

    #[test]
    fn joins_a_group_that_is_already_master() {
        // A member restarted by a reload while the others are MASTER joins them at its timer.
        assert!(can_goto_master(&[Some(&status(State::Master)), Some(&waiting())]));
    }

    #[test]
    fn a_better_master_or_a_fault_holds_the_group_back() {
        assert!(!can_goto_master(&[Some(&following_better_master())]));
        assert!(!can_goto_master(&[Some(&status(State::Master)), Some(&following_better_master())]));
        let faulty = InstanceStatus { own_fault: true, ..status(State::Fault) };
        assert!(!can_goto_master(&[Some(&faulty)]));
        assert!(fault(&[Some(&waiting()), Some(&faulty)]));
        assert!(!fault(&[Some(&status(State::Fault))])); // in FAULT only because of the group
        assert!(outranked(&[None, Some(&following_better_master())]));
    }

    #[test]
    fn the_first_member_to_move_moves_the_group() {
        let (init, backup, master, fault) = (State::Initialize, State::Backup, State::Master, State::Fault);
        // Startup: the first member to enter BACKUP (the other has not published yet).
        assert!(moves_group(&[None], init, backup));
        assert!(!moves_group(&[Some(&waiting())], init, backup));
        // To MASTER: the first one, not the ones it pulls.
        assert!(moves_group(&[Some(&held_back())], backup, master));
        assert!(!moves_group(&[Some(&status(master))], backup, master));
        // A MASTER member that hears a better master drags the group to BACKUP; the members it
        // drags do not move it again.
        assert!(moves_group(&[Some(&status(master))], master, backup));
        assert!(!moves_group(&[Some(&following_better_master())], master, backup));
        // A member restarted by a reload beside a MASTER group does not make it BACKUP.
        assert!(!moves_group(&[Some(&status(master))], init, backup));
        // FAULT: the first member; leaving FAULT: the first back in BACKUP.
        assert!(moves_group(&[Some(&status(master))], master, fault));
        assert!(!moves_group(&[Some(&status(fault))], backup, fault));
        assert!(moves_group(&[Some(&status(fault))], fault, backup));
        // Stopping: the last member to stop (a member stopped alone by a reload does not).
        assert!(!moves_group(&[Some(&status(master))], master, init));
        assert!(moves_group(&[Some(&status(init))], master, init));
        assert!(moves_group(&[None], backup, init));
    }
}
