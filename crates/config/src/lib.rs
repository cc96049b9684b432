//! fulcrum's configuration: the [`Model`] and the front-ends that produce it.
#![forbid(unsafe_code)]

mod diag;
pub mod model;

pub use diag::{did_you_mean, Diagnostic, Severity};
pub use model::*;
mod load;
pub use load::{load_files, load_str, Format, LoadOptions, Loaded};
