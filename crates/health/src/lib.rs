//! Health checking: the pure rise/fall [`HealthMachine`], the TCP/HTTP checkers, and the loop
//! that runs a server's checks and feeds the machine ([`check_loop`]).
#![forbid(unsafe_code)]

mod check;
mod check_tls;
pub mod keepalived;
mod machine;
mod task;
mod tcpcheck;

pub use check::{run_check, CheckOutcome, CheckSpec, CompiledHttpCheck};
pub use check_tls::CheckTls;
pub use machine::{HealthMachine, Intervals, Transition};
pub use task::{check_loop, CheckPlan, CheckSink};
pub use tcpcheck::{ldap_reply, mysql_reply, CompiledTcpCheck, Reply};
