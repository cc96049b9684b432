//! HAProxy's runtime API on the stats socket, for what fulcrum has of it: the stick tables
//! (`show table`, `clear table`, `set table`) and `help`. Commands come one per line or
//! separated by `;`; each answer ends with an empty line, as HAProxy's do, so that
//! `echo "show table web" | socat stdio /run/haproxy.sock` reads the same.
use std::fmt::Write;
use std::sync::Arc;

use fulcrum_model::TableData;
use fulcrum_proxy::{EntryView, LiveTable, Snapshot};

const HELP: &str = "The following commands are valid at this level:
  help           : this message
  show table [id]: report table usage stats or dump this table's contents
  clear table    : remove an entry from a table
  set table [id] : update or create a table entry's data
";

/// Runs each command of `text` against the running configuration; their answers.
pub fn execute(snap: &Snapshot, text: &str) -> String {
    let mut out = String::new();
    for line in text.split(['\n', ';']).map(str::trim).filter(|l| !l.is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["help"] => HELP.to_string(),
            ["show", "table"] => show_all(snap),
            ["show", "table", name, rest @ ..] => with_table(snap, name, |t| show(name, t, rest)),
            ["clear", "table", name, rest @ ..] => with_table(snap, name, |t| clear(t, rest)),
            ["set", "table", name, rest @ ..] => with_table(snap, name, |t| set(t, rest)),
            _ => format!("Unknown command: '{line}'\n{HELP}"),
        };
        out.push_str(&answer);
        out.push('\n');
    }
    out
}

fn with_table(snap: &Snapshot, name: &str, f: impl FnOnce(&LiveTable) -> String) -> String {
    match snap.stick_tables().into_iter().find(|(n, _)| n == name) {
        Some((_, t)) => f(&t),
        None => "No such table\n".to_string(),
    }
}

fn header(name: &str, t: &LiveTable) -> String {
    use fulcrum_model::TableKey as K;
    let kind = match t.cfg.key {
        K::Ip => "ip",
        K::Ipv6 => "ipv6",
        K::Integer => "integer",
        K::String { .. } => "string",
    };
    format!("# table: {name}, type: {kind}, size:{}, used:{}\n", t.cfg.size, t.len())
}

fn show_all(snap: &Snapshot) -> String {
    snap.stick_tables().iter().map(|(name, t)| header(name, t)).collect()
}

/// A filter of `show table` and `clear table`: `data.TYPE OP VALUE` or `key K`.
enum Filter {
    All,
    Key(String),
    Data(TableData, &'static str, u64),
}

fn filter(t: &LiveTable, words: &[&str]) -> Result<Filter, String> {
    match words {
        [] => Ok(Filter::All),
        ["key", k] => match t.key_of(k) {
            Some(_) => Ok(Filter::Key((*k).to_string())),
            None => Err("Unable to parse the key\n".to_string()),
        },
        [d, op, v] if d.starts_with("data.") => {
            let data = TableData::from_name(&d["data.".len()..]).filter(|x| t.stores(*x));
            let data = data.ok_or("Data type not stored in this table\n")?;
            let op = ["eq", "ne", "lt", "le", "gt", "ge"]
                .into_iter()
                .find(|o| o == op)
                .ok_or("Require an operator among \"eq\", \"ne\", \"le\", \"ge\", \"lt\", \"gt\"\n")?;
            let v = v.parse().map_err(|_| "Require a valid integer value to compare against\n")?;
            Ok(Filter::Data(data, op, v))
        }
        _ => {
            Err("Optional argument only supports \"data.<store_data_type>\" <operator> <value> and key <key>\n".into())
        }
    }
}

fn keeps(f: &Filter, e: &EntryView) -> bool {
    match f {
        Filter::All => true,
        Filter::Key(k) => e.key == *k,
        Filter::Data(d, op, v) => {
            let x = e.data.iter().find(|(t, _)| t == d).map_or(0, |(_, x)| *x);
            match *op {
                "eq" => x == *v,
                "ne" => x != *v,
                "lt" => x < *v,
                "le" => x <= *v,
                "gt" => x > *v,
                _ => x >= *v,
            }
        }
    }
}

/// HAProxy's escaping of a string key.
fn escaped(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            ' ' | '=' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\x1b' => out.push_str("\\e"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

fn show(name: &str, t: &LiveTable, words: &[&str]) -> String {
    let f = match filter(t, words) {
        Ok(f) => f,
        Err(e) => return e,
    };
    let mut out = header(name, t);
    let names = t.server_names();
    let sticky = !names.is_empty();
    for (i, e) in t.entries().iter().filter(|e| keeps(&f, e)).enumerate() {
        // No pointer to show: a stable number in its place, as scripts only read after it.
        let _ = write!(out, "0x{:012x}: key={} use=0 exp={}", i + 1, escaped(&e.key), e.expire_ms.unwrap_or(0));
        if sticky {
            let _ = write!(out, " server_id={}", e.server_id);
        }
        let mut data: Vec<(TableData, u64)> = e.data.clone();
        data.sort_by_key(|(d, _)| order(*d));
        for (d, v) in data {
            match t.period(d) {
                Some(p) => {
                    let _ = write!(out, " {}({p})={v}", d.name());
                }
                None => {
                    let _ = write!(out, " {}={v}", d.name());
                }
            }
        }
        if sticky {
            let server =
                names.iter().find(|(id, _)| *id == e.server_id && e.server_id != 0).map(|(_, n)| Arc::clone(n));
            let _ = write!(out, " server_key={}", server.as_deref().unwrap_or("-"));
        }
        out.push('\n');
    }
    out
}

/// The data types in HAProxy's order (its data type numbers).
fn order(d: TableData) -> u8 {
    match d {
        TableData::Gpt0 => 1,
        TableData::Gpc0 => 2,
        TableData::Gpc0Rate => 3,
        TableData::ConnCnt => 4,
        TableData::ConnRate => 5,
        TableData::ConnCur => 6,
        TableData::SessCnt => 7,
        TableData::SessRate => 8,
        TableData::HttpReqCnt => 9,
        TableData::HttpReqRate => 10,
        TableData::HttpErrCnt => 11,
        TableData::HttpErrRate => 12,
        TableData::Gpc1 => 17,
        TableData::Gpc1Rate => 18,
    }
}

fn clear(t: &LiveTable, words: &[&str]) -> String {
    match filter(t, words) {
        Err(e) => e,
        Ok(Filter::Key(k)) => {
            if let Some(key) = t.key_of(&k) {
                t.remove(&key);
            }
            String::new()
        }
        Ok(f) => {
            t.clear_where(&|e| keeps(&f, e));
            String::new()
        }
    }
}

fn set(t: &LiveTable, words: &[&str]) -> String {
    let ["key", k, rest @ ..] = words else { return "'set table' expects 'key' and a key\n".into() };
    let Some(key) = t.key_of(k) else { return "Unable to parse the key\n".into() };
    let mut server = None;
    let mut values = Vec::new();
    let mut pairs = rest.chunks(2);
    for pair in &mut pairs {
        let [d, v] = pair else { return "'set table' expects data.TYPE VALUE pairs\n".into() };
        let Ok(v) = v.parse::<u64>() else { return "Require a valid integer value to store\n".into() };
        match d.strip_prefix("data.") {
            Some("server_id") => server = u32::try_from(v).ok(),
            Some(name) => match TableData::from_name(name).filter(|x| t.stores(*x) && !x.is_rate()) {
                Some(x) => values.push((x, v)),
                None => return "Data type not stored in this table\n".into(),
            },
            None => return "'set table' expects data.TYPE VALUE pairs\n".into(),
        }
    }
    t.set_values(key, server, &values);
    String::new()
}
