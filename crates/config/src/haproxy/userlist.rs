//! `userlist NAME` sections: `group NAME [users U1,U2...]` and `user NAME [password HASH |
//! insecure-password TEXT] [groups G1,G2...]`, as HAProxy 2.6 reads them. A hash must be one
//! fulcrum can check (crypt(3)'s SHA-512, SHA-256, MD5, bcrypt or DES forms): another is an
//! error at its line, never a user who can never log in.
use fulcrum_model::{Password, User, Userlist};

use super::Parser;
use crate::diag::Problem;

/// A userlist being read: its users, and the groups with the users they list.
#[derive(Debug)]
pub(super) struct UserlistState {
    pub list: Userlist,
    pub line: usize,
    groups: Vec<(String, Vec<String>, usize)>,
}

impl UserlistState {
    pub(super) fn new(name: String, line: usize) -> UserlistState {
        UserlistState { list: Userlist { name, users: Vec::new() }, line, groups: Vec::new() }
    }
}

/// Whether a crypt(3) hash is of a form fulcrum checks.
pub(crate) fn known_hash(hash: &str) -> bool {
    let modular = ["$6$", "$5$", "$1$", "$2a$", "$2b$", "$2y$"];
    let des = hash.len() == 13 && hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    modular.iter().any(|p| hash.starts_with(p)) || des
}

fn names(list: &str) -> Vec<String> {
    list.split(',').filter(|n| !n.is_empty()).map(str::to_string).collect()
}

impl Parser {
    pub(super) fn userlist_line(&mut self, st: &mut UserlistState, line: usize, words: &[String]) {
        if let Err(problem) = Self::userlist_keyword(st, line, words) {
            self.sink.report(line, problem);
        }
    }

    fn userlist_keyword(st: &mut UserlistState, line: usize, words: &[String]) -> Result<(), Problem> {
        match words {
            [kw, name, rest @ ..] if kw == "group" => {
                if st.groups.iter().any(|(g, _, _)| g == name) {
                    return Err(Problem::invalid(format!(
                        "group '{name}' is already defined in userlist '{}'",
                        st.list.name
                    )));
                }
                let users = match rest {
                    [] => Vec::new(),
                    [kw, list] if kw == "users" => names(list),
                    _ => return Err(Problem::invalid("'group' takes: NAME [users U1,U2...]")),
                };
                st.groups.push((name.clone(), users, line));
                Ok(())
            }
            [kw, name, rest @ ..] if kw == "user" => {
                if st.list.user(name).is_some() {
                    return Err(Problem::invalid(format!(
                        "user '{name}' is already defined in userlist '{}'",
                        st.list.name
                    )));
                }
                let mut password = None;
                let mut groups = Vec::new();
                let mut words = rest.iter();
                while let Some(word) = words.next() {
                    let mut value = || words.next().ok_or_else(|| Problem::invalid(format!("'{word}' needs a value")));
                    match word.as_str() {
                        "password" => {
                            let hash = value()?;
                            if !known_hash(hash) {
                                return Err(Problem::unsupported(format!(
                                    "the password hash of user '{name}' is of a form fulcrum cannot check yet"
                                ))
                                .hint("use a SHA-512 crypt hash (mkpasswd -m sha-512), SHA-256, MD5 ($1$) or bcrypt"));
                            }
                            password = Some(Password::Hashed(hash.clone()));
                        }
                        "insecure-password" => password = Some(Password::Plain(value()?.clone())),
                        "groups" => groups = names(value()?),
                        other => {
                            return Err(Problem::unknown(
                                "user option",
                                other,
                                ["password", "insecure-password", "groups"],
                            ))
                        }
                    }
                }
                let password = password.ok_or_else(|| {
                    Problem::invalid(format!("user '{name}' has no password"))
                        .hint("add 'password HASH' (mkpasswd -m sha-512) or 'insecure-password TEXT'")
                })?;
                st.list.users.push(User { name: name.clone(), password, groups });
                Ok(())
            }
            [kw, ..] => Err(Problem::unknown("userlist keyword", kw, ["group", "user"])),
            [] => Ok(()),
        }
    }

    /// The end of a userlist: each group's users get it; a group naming an unknown user, or
    /// a user naming an unknown group, is an error, as in HAProxy.
    pub(super) fn finish_userlist(&mut self, st: UserlistState) {
        let UserlistState { mut list, line, groups } = st;
        for user in &list.users {
            for g in &user.groups {
                if !groups.iter().any(|(name, _, _)| name == g) {
                    self.sink.error(
                        line,
                        format!(
                            "user '{}' is in group '{g}', which userlist '{}' does not define",
                            user.name, list.name
                        ),
                        None,
                    );
                }
            }
        }
        for (group, users, at) in &groups {
            for u in users {
                match list.users.iter_mut().find(|user| &user.name == u) {
                    Some(user) if !user.groups.contains(group) => user.groups.push(group.clone()),
                    Some(_) => {}
                    None => self.sink.error(
                        *at,
                        format!("group '{group}' lists user '{u}', who is not defined in userlist '{}'", list.name),
                        None,
                    ),
                }
            }
        }
        if self.out.userlists.iter().any(|l| l.name == list.name) {
            self.sink.error(line, format!("userlist '{}' is already defined", list.name), None);
            return;
        }
        self.out.userlists.push(list);
    }
}
