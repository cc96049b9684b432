//! Health checking: the pure rise/fall [`HealthMachine`], the TCP/HTTP checkers, and the loop
//! that runs a server's checks and feeds the machine ([`check_loop`]).
#![forbid(unsafe_code)]

mod check;
pub mod keepalived;
mod machine;
mod task;
mod tcpcheck;

pub use check::{run_check, CheckOutcome, CheckSpec, CheckTls, CompiledHttpCheck};
pub use machine::{HealthMachine, Intervals, Transition};
pub use task::{check_loop, CheckPlan, CheckSink};
pub use tcpcheck::{ldap_reply, mysql_reply, CompiledTcpCheck, Reply};
