//! fulcrum's configuration front-ends: haproxy.cfg, keepalived.conf and fulcrum's own TOML, each
//! producing the [`fulcrum_model::Model`], with diagnostics that name the file, the line and the fix.
#![forbid(unsafe_code)]

mod acl;
mod diag;
mod haproxy;
pub mod ipvsadm;
mod keepalived;
mod load;
mod lvs;
mod partial;
mod sample;
mod toml;
mod validate;
mod values;
mod vrrp_checks;

pub use diag::{did_you_mean, Diagnostic, Severity};

/// HAProxy's vocabulary as fulcrum reads it (docs/haproxy-compat.md is held to it).
pub mod haproxy_vocabulary {
    pub use crate::haproxy::keywords::{lookup, Context, Keyword, Support, VOCABULARY};
}
/// HAProxy's conditional expressions (`.if`, `haproxy -cc`), the version and features they test.
pub mod haproxy_conditions {
    pub use crate::haproxy::cond::{eval, eval_text, CondError, FEATURES, HAPROXY_VERSION};
}
/// Sample expressions and log-format strings as rules write them (the fuzz target reads them
/// through this): the parsed form, or the error's text.
pub mod haproxy_samples {
    use crate::sample::{parse_log_format_in, parse_sample_in, Dir};
    use fulcrum_model::rules::{LogFormat, Sample};

    fn dir(response: bool) -> Dir {
        if response {
            Dir::Response
        } else {
            Dir::Request
        }
    }

    /// A sample expression of a request (`response` false) or response rule.
    pub fn sample(text: &str, response: bool) -> Result<Sample, String> {
        parse_sample_in(text, dir(response)).map_err(|p| p.text())
    }

    /// A log-format string of a request or response rule.
    pub fn log_format(text: &str, response: bool) -> Result<LogFormat, String> {
        parse_log_format_in(text, dir(response)).map_err(|p| p.text())
    }
}
pub use load::{load_files, load_str, Format, LoadOptions, Loaded};

/// The checks of a whole configuration on a Model changed at run time (`fulcrum ctl`): its
/// errors, empty when it may run.
pub fn check_model(model: &fulcrum_model::Model) -> Vec<Diagnostic> {
    let mut diags = Vec::new();
    validate::validate(model, std::path::Path::new("(runtime)"), &[], false, &mut diags);
    diags.retain(|d| d.severity == Severity::Error);
    diags
}
