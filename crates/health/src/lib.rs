//! Health checking: the pure rise/fall [`HealthMachine`] and the TCP/HTTP checkers.
#![forbid(unsafe_code)]

mod check;
mod machine;

pub use check::{run_check, CheckOutcome, CheckSpec, CompiledHttpCheck};
pub use machine::{HealthMachine, Intervals, Transition};
