//! The rise/fall state machine of one server, as HAProxy counts it. Pure: no I/O, no clock.
//!
//! HAProxy keeps a health counter in `0..=rise+fall-1`. A server is UP while the counter is at
//! or above `rise`. A success raises it, a failure lowers it; crossing `rise` from below marks
//! the server UP (and the counter jumps to the top), dropping under `rise` marks it DOWN (and the
//! counter falls to 0). A server starts UP at `rise`, so one failed check at start-up marks a
//! dead server DOWN at once, while a healthy one needs `fall` failures in a row.
use std::time::Duration;

/// A change of a server's health state, to log and to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    WentUp,
    WentDown,
}

/// Check intervals: `inter` when steady, `fastinter` while changing, `downinter` when down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    pub inter: Duration,
    pub fastinter: Duration,
    pub downinter: Duration,
}

#[derive(Debug, Clone)]
pub struct HealthMachine {
    rise: u32,
    fall: u32,
    health: u32,
    up: bool,
    /// Set by passive observation (`on-error fastinter|sudden-death|mark-down`): check at
    /// `fastinter` until the next check settles things.
    hurry: bool,
}

impl HealthMachine {
    pub fn new(rise: u32, fall: u32) -> Self {
        let rise = rise.max(1);
        let fall = fall.max(1);
        HealthMachine { rise, fall, health: rise, up: true, hurry: false }
    }

    /// A machine for a server that starts DOWN (needs `rise` successes).
    pub fn new_down(rise: u32, fall: u32) -> Self {
        let mut m = HealthMachine::new(rise, fall);
        m.health = 0;
        m.up = false;
        m
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    fn top(&self) -> u32 {
        self.rise.saturating_add(self.fall).saturating_sub(1)
    }

    /// Record a check result; returns the transition it caused, if any.
    pub fn record(&mut self, success: bool) -> Option<Transition> {
        self.hurry = false;
        if success {
            if self.health < self.top() {
                self.health += 1;
            }
            if !self.up && self.health >= self.rise {
                self.up = true;
                self.health = self.top();
                return Some(Transition::WentUp);
            }
            None
        } else {
            self.health = self.health.saturating_sub(1);
            if self.up && self.health < self.rise {
                self.up = false;
                self.health = 0;
                return Some(Transition::WentDown);
            }
            None
        }
    }

    /// `on-error sudden-death`: one more failure marks the server down.
    pub fn sudden_death(&mut self) {
        if self.up {
            self.health = self.rise;
        }
        self.hurry = true;
    }

    /// `on-error mark-down`: down now.
    pub fn mark_down(&mut self) -> Option<Transition> {
        self.hurry = true;
        if self.up {
            self.up = false;
            self.health = 0;
            return Some(Transition::WentDown);
        }
        None
    }

    /// `on-error fastinter`: check sooner.
    pub fn hurry(&mut self) {
        self.hurry = true;
    }

    /// When the next check is due after one that just completed.
    pub fn next_interval(&self, iv: &Intervals) -> Duration {
        if self.hurry {
            return iv.fastinter;
        }
        if !self.up && self.health == 0 {
            iv.downinter
        } else if self.up && self.health == self.top() {
            iv.inter
        } else {
            iv.fastinter
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv() -> Intervals {
        Intervals {
            inter: Duration::from_secs(2),
            fastinter: Duration::from_millis(500),
            downinter: Duration::from_secs(5),
        }
    }

    #[test]
    fn starts_up_and_a_dead_server_goes_down_on_first_failure() {
        let mut m = HealthMachine::new(2, 3);
        assert!(m.is_up());
        assert_eq!(m.record(false), Some(Transition::WentDown));
        assert!(!m.is_up());
    }

    #[test]
    fn healthy_server_needs_fall_failures_and_rise_successes() {
        let mut m = HealthMachine::new(2, 3);
        assert_eq!(m.record(true), None);
        assert_eq!(m.next_interval(&iv()), iv().fastinter);
        assert_eq!(m.record(true), None);
        assert_eq!(m.record(true), None);
        assert_eq!(m.next_interval(&iv()), iv().inter);
        assert_eq!(m.record(false), None);
        assert_eq!(m.next_interval(&iv()), iv().fastinter);
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(false), Some(Transition::WentDown));
        assert_eq!(m.next_interval(&iv()), iv().downinter);
        assert_eq!(m.record(true), None);
        assert_eq!(m.next_interval(&iv()), iv().fastinter);
        assert_eq!(m.record(true), Some(Transition::WentUp));
        assert_eq!(m.next_interval(&iv()), iv().inter);
    }

    #[test]
    fn a_success_in_between_resets_the_fall_count_partially() {
        let mut m = HealthMachine::new(2, 3);
        for _ in 0..5 {
            m.record(true);
        }
        m.record(false);
        m.record(false);
        m.record(true);
        // health went 4 -> 3 -> 2 -> 3: two more failures needed.
        assert_eq!(m.record(false), None);
        assert_eq!(m.record(false), Some(Transition::WentDown));
    }

    #[test]
    fn passive_actions() {
        let mut m = HealthMachine::new(2, 3);
        for _ in 0..4 {
            m.record(true);
        }
        m.sudden_death();
        assert_eq!(m.next_interval(&iv()), iv().fastinter);
        assert_eq!(m.record(false), Some(Transition::WentDown));
        let mut m = HealthMachine::new(2, 3);
        assert_eq!(m.mark_down(), Some(Transition::WentDown));
        assert_eq!(m.mark_down(), None);
        let mut m = HealthMachine::new_down(3, 1);
        assert!(!m.is_up());
        m.record(true);
        m.record(true);
        assert_eq!(m.record(true), Some(Transition::WentUp));
        assert_eq!(m.record(false), Some(Transition::WentDown));
    }
}
