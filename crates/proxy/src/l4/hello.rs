//! The start of a TLS connection as a `mode tcp` frontend reads it, without terminating it:
//! the type of the first handshake message (`req.ssl_hello_type`, 1 for a ClientHello) and the
//! server name a ClientHello asks for (`req.ssl_sni`). As HAProxy, only the first TLS record is
//! read (a ClientHello fits in one); any bytes give an answer, never a panic.

/// What the first bytes say so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// Not enough bytes yet to tell.
    Partial,
    /// Not a TLS handshake record.
    NotTls,
    /// A handshake record: its first message's type; for a ClientHello, the server name.
    Handshake { kind: u8, sni: Option<String> },
}

/// The largest TLS record (2^14 bytes of plaintext, plus the allowance for expansion).
const MAX_RECORD: usize = 16384 + 2048;

/// Reads what `data` holds of the connection's first bytes.
pub fn parse(data: &[u8]) -> Hello {
    let Some(header) = data.get(..5) else {
        // One byte tells a handshake record from anything else.
        return if data.first().is_some_and(|b| *b != 22) { Hello::NotTls } else { Hello::Partial };
    };
    // Content type 22 (handshake), protocol major version 3.
    if header[0] != 22 || header[1] != 3 {
        return Hello::NotTls;
    }
    let length = usize::from(u16::from_be_bytes([header[3], header[4]]));
    if length == 0 || length > MAX_RECORD {
        return Hello::NotTls;
    }
    let Some(record) = data.get(5..5 + length) else {
        // The type is known as soon as the message's first byte is in.
        return match data.get(5) {
            Some(&kind) if kind != 1 => Hello::Handshake { kind, sni: None },
            _ => Hello::Partial,
        };
    };
    let kind = record[0];
    let sni = if kind == 1 { client_hello_sni(record) } else { None };
    Hello::Handshake { kind, sni }
}

/// The host name of the server_name extension of the ClientHello in `record` (which starts
/// with the handshake header), if it is there and well formed.
fn client_hello_sni(record: &[u8]) -> Option<String> {
    let mut r = Reader(record);
    r.take(1)?; // handshake type
    let body_len = r.u24()?;
    let mut body = Reader(r.take(body_len)?);
    body.take(2 + 32)?; // client version, random
    let session = usize::from(body.u8()?);
    body.take(session)?;
    let ciphers = usize::from(body.u16()?);
    body.take(ciphers)?;
    let compression = usize::from(body.u8()?);
    body.take(compression)?;
    let ext_len = usize::from(body.u16()?);
    let mut exts = Reader(body.take(ext_len)?);
    while !exts.0.is_empty() {
        let ext_type = exts.u16()?;
        let len = usize::from(exts.u16()?);
        let data = exts.take(len)?;
        if ext_type != 0 {
            continue;
        }
        let mut list = Reader(data);
        let list_len = usize::from(list.u16()?);
        let mut names = Reader(list.take(list_len)?);
        while !names.0.is_empty() {
            let name_type = names.u8()?;
            let len = usize::from(names.u16()?);
            let name = names.take(len)?;
            if name_type == 0 {
                let name = std::str::from_utf8(name).ok()?;
                return name.bytes().all(|b| b.is_ascii_graphic()).then(|| name.to_ascii_lowercase());
            }
        }
        return None;
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn u24(&mut self) -> Option<usize> {
        self.take(3).map(|b| usize::from(b[0]) << 16 | usize::from(b[1]) << 8 | usize::from(b[2]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ClientHello record asking for `name` (or no server_name extension).
    pub(crate) fn client_hello(name: Option<&str>) -> Vec<u8> {
        let mut ext = Vec::new();
        if let Some(name) = name {
            let n = name.as_bytes();
            let mut sn = Vec::new();
            sn.extend(u16::try_from(n.len() + 3).expect("short").to_be_bytes());
            sn.push(0);
            sn.extend(u16::try_from(n.len()).expect("short").to_be_bytes());
            sn.extend(n);
            // An unrelated extension first (supported_versions), then server_name.
            ext.extend([0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04]);
            ext.extend([0x00, 0x00]);
            ext.extend(u16::try_from(sn.len()).expect("short").to_be_bytes());
            ext.extend(sn);
        }
        let mut body = vec![0x03, 0x03];
        body.extend([7u8; 32]);
        body.push(0); // session id
        body.extend([0x00, 0x02, 0x13, 0x01]); // one cipher suite
        body.extend([0x01, 0x00]); // null compression
        body.extend(u16::try_from(ext.len()).expect("short").to_be_bytes());
        body.extend(ext);
        let mut hs = vec![1];
        hs.extend(&u32::try_from(body.len()).expect("short").to_be_bytes()[1..]);
        hs.extend(body);
        let mut record = vec![22, 3, 1];
        record.extend(u16::try_from(hs.len()).expect("short").to_be_bytes());
        record.extend(hs);
        record
    }

    #[test]
    fn reads_the_server_name() {
        let hello = client_hello(Some("API.Example.com"));
        assert_eq!(parse(&hello), Hello::Handshake { kind: 1, sni: Some("api.example.com".into()) });
        assert_eq!(parse(&client_hello(None)), Hello::Handshake { kind: 1, sni: None });
        // Every prefix is either partial or already typed; never a wrong name.
        for cut in 0..hello.len() {
            match parse(&hello[..cut]) {
                Hello::Partial | Hello::Handshake { kind: 1, sni: None } => {}
                other => panic!("prefix of {cut} bytes: {other:?}"),
            }
        }
    }

    #[test]
    fn other_bytes_are_not_tls() {
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
        assert_eq!(parse(b"G"), Hello::NotTls);
        assert_eq!(parse(b""), Hello::Partial);
        assert_eq!(parse(&[22, 3, 1, 0, 0]), Hello::NotTls);
        assert_eq!(parse(&[22, 2, 0, 0, 5, 1]), Hello::NotTls);
        // A record that lies about its lengths yields no name.
        let mut broken = client_hello(Some("a.example"));
        let last = broken.len() - 1;
        broken[last] = 0xff;
        broken.truncate(last - 3);
        let len = u16::try_from(broken.len() - 5).expect("short").to_be_bytes();
        broken[3..5].copy_from_slice(&len);
        assert!(matches!(parse(&broken), Hello::Handshake { kind: 1, sni: None }));
    }
}
