//! A rules file: what `ipvsadm-save -n` (or `ipvsadm -S -n`) prints, one ipvsadm command a
//! line, with or without a leading `ipvsadm`; `#` lines are comments (as `ipvsadm-restore`
//! drops them). `-A`/`-E`/`-D`, `-a`/`-e`/`-d`, `-C` and `--set` build the services; errors
//! name the line with ipvsadm's message.
use std::path::Path;

use fulcrum_model::{Model, Origin};

use super::{apply, parse, Command};
use crate::diag::{Severity, Sink};
use crate::partial::{BindRef, Partial};

/// Whether a file reads as ipvsadm rules: its first command line is `-A`/`-a` (or `ipvsadm -A`).
pub(crate) fn looks_like(text: &str) -> bool {
    text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).take(1).any(|l| {
        let l = l.strip_prefix("ipvsadm").map_or(l, str::trim_start);
        ["-A ", "-a ", "--add-service ", "--add-server ", "-C", "--set "].iter().any(|p| l.starts_with(p))
    })
}

/// The words of a rules line (ipvsadm's own tokenizing: blanks, no quoting; `ipvsadm` dropped).
pub fn words(line: &str) -> Vec<String> {
    line.split([' ', '\t', '\r']).filter(|w| !w.is_empty() && *w != "ipvsadm").map(str::to_string).collect()
}

pub(crate) fn parse_file(text: &str, file: &Path) -> (Partial, Sink) {
    let mut sink = Sink::new(file, false);
    let mut model = Model::default();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let command = match parse("ipvsadm", &words(trimmed)) {
            Ok(c) => c,
            Err(e) => {
                sink.error(number, e.message, None);
                continue;
            }
        };
        if !matches!(
            command,
            Command::AddService(_)
                | Command::EditService(_)
                | Command::DeleteService(_)
                | Command::AddServer(_)
                | Command::EditServer(_)
                | Command::DeleteServer(..)
                | Command::Clear
                | Command::Set(..)
        ) {
            let hint = Some("a rules file holds what ipvsadm-save -n prints: -A and -a lines".to_string());
            sink.push_in(
                file,
                Severity::Error,
                number,
                "this ipvsadm command does not belong in a rules file".into(),
                hint,
            );
            continue;
        }
        let before: Vec<String> = model.backends.iter().map(|b| b.name.clone()).collect();
        if let Err(e) = apply(&mut model, &command) {
            sink.error(number, e.message, None);
            continue;
        }
        // New services and servers come from this line.
        let origin = Origin { file: file.to_path_buf(), line: number };
        for fe in model.frontends.iter_mut().filter(|f| !before.contains(&f.name)) {
            fe.origin = origin.clone();
        }
        for be in &mut model.backends {
            if !before.contains(&be.name) {
                be.origin = origin.clone();
            }
            for s in be.servers.iter_mut().filter(|s| s.origin.file.as_os_str().is_empty()) {
                s.origin = origin.clone();
            }
        }
    }
    let mut out = Partial::default();
    for fe in &model.frontends {
        for addr in &fe.binds {
            let udp = fe.mode == fulcrum_model::Mode::Udp;
            out.binds.push(BindRef { frontend: fe.name.clone(), addr: *addr, udp, origin: fe.origin.clone() });
        }
    }
    if model.global.ipvs_timeouts != fulcrum_model::IpvsTimeouts::default() {
        out.global.ipvs_timeouts = Some(model.global.ipvs_timeouts);
    }
    out.frontends = model.frontends;
    out.backends = model.backends;
    (out, sink)
}
