//! `userlist` sections at work: a request's Basic credentials checked against a list's users
//! (`http_auth(L)`, `http_auth_group(L)`, and `http-request auth` to ask for them). Hashed
//! passwords are checked with crypt(3)'s algorithms (pwhash); an answer is remembered by a
//! hash of the credentials (never the password itself), as each check costs milliseconds.
use std::collections::HashMap;
use std::sync::Mutex;

use fulcrum_model::{Password, User, Userlist};
use http::HeaderMap;

use crate::live::lock;

/// Credentials remembered before the memory is cleared.
const REMEMBERED: usize = 4096;

#[derive(Debug, Default)]
pub(crate) struct Userlists {
    lists: Vec<Userlist>,
    checked: Mutex<HashMap<u64, bool>>,
}

/// The user name and password of an `Authorization: Basic` header.
pub(crate) fn basic(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = super::rules::b64dec(token.trim().as_bytes())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

impl Userlists {
    pub(crate) fn new(lists: &[Userlist]) -> Userlists {
        Userlists { lists: lists.to_vec(), checked: Mutex::new(HashMap::new()) }
    }

    /// The user of list `list` whose credentials the request carries, if they are right.
    pub(crate) fn user(&self, list: &str, headers: &HeaderMap) -> Option<&User> {
        let (name, pass) = basic(headers)?;
        let user = self.lists.iter().find(|l| l.name == list)?.user(&name)?;
        let key = {
            let mut text = Vec::with_capacity(list.len() + name.len() + pass.len() + 2);
            for part in [list.as_bytes(), b"\0", name.as_bytes(), b"\0", pass.as_bytes()] {
                text.extend_from_slice(part);
            }
            xxhash_rust::xxh64::xxh64(&text, 0x6675_6c63_7275_6d00)
        };
        if let Some(ok) = lock(&self.checked).get(&key).copied() {
            return ok.then_some(user);
        }
        let ok = match &user.password {
            Password::Plain(p) => *p == pass,
            Password::Hashed(h) => pwhash::unix::verify(&pass, h),
        };
        let mut checked = lock(&self.checked);
        if checked.len() >= REMEMBERED {
            checked.clear();
        }
        checked.insert(key, ok);
        ok.then_some(user)
    }
}
