use super::*;

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace().map(|b| u8::from_str_radix(b, 16).expect("hex")).collect()
}

#[test]
fn varints_as_haproxy_writes_them() {
    for (v, bytes) in [
        (0u64, "00"),
        (239, "ef"),
        (240, "f0 00"),
        (241, "f1 00"),
        (256, "f0 01"),
        (1000, "f8 2f"),
        (2287, "ff 7f"),
        (2288, "f0 80 00"),
        (10000, "f0 e2 03"),
        (60000, "f0 97 1c"),
        (70000, "f0 88 21"),
        (1_800_000, "f0 e5 ed 05"),
        (33_818_864, "f0 80 80 80 00"),
        (4_294_967_295, "ff f0 fe fe 7e"),
        (524_289, "f1 f1 fe 00"),
    ] {
        let mut out = Vec::new();
        encode_varint(v, &mut out);
        assert_eq!(out, hex(bytes), "{v}");
        assert_eq!(decode_varint(&out), Ok(Some((v, out.len()))), "{v}");
        assert_eq!(decode_varint(&out[..out.len() - 1]), Ok(None), "{v} cut short");
    }
    for v in [u64::MAX, u64::MAX - 1, 1 << 63, 123_456_789_012] {
        let mut out = Vec::new();
        encode_varint(v, &mut out);
        assert_eq!(decode_varint(&out), Ok(Some((v, out.len()))), "{v}");
    }
    assert!(decode_varint(&[0xff; 11]).is_err());
}

#[test]
fn hellos_and_statuses() {
    assert_eq!(hello("pyB", "hapA", 15012), b"HAProxyS 2.1\npyB\nhapA 15012 1\n");
    let got = read_hello(b"HAProxyS 2.1\r\nme\r\nyou 12 1\r\nrest");
    assert_eq!(got, HelloRead::Done(Hello { minor: 1, called: "me".into(), caller: "you".into() }, 28));
    assert_eq!(read_hello(b"HAProxyS 2.1\nme\n"), HelloRead::Incomplete);
    for (text, code) in [
        ("HAPROXYS 2.1\na\nb 1 1\n", 501),
        ("HAProxyS 3.0\na\nb 1 1\n", 502),
        ("HAProxyS 2.2\na\nb 1 1\n", 502),
        ("HAProxyS 2.x\na\nb 1 1\n", 502),
        ("HAProxyS 2.1\na\nb\n", 501),
    ] {
        assert_eq!(read_hello(text.as_bytes()), HelloRead::Refused(code), "{text:?}");
    }
    assert_eq!(read_hello(&[b'x'; 300]), HelloRead::Refused(501));
    assert_eq!(read_status(b"200\nxx"), Some((200, 4)));
    assert_eq!(read_status(b"503\r\n"), Some((503, 5)));
    assert_eq!(read_status(b"20"), None);
}

/// Frames HAProxy 2.6 sent and accepted, decoded and made again byte for byte.
#[test]
fn captured_frames() {
    let mut r = Reader::default();
    // "be1" with stick on src: server_id and server_key, expire 30 min.
    let define = hex("0a 82 0f 02 03 62 65 31 04 04 f1 f1 fe 00 f0 e5 ed 05");
    let (m, n) = r.read(&define).expect("valid").expect("whole");
    assert_eq!(n, define.len());
    let Message::Define(def) = m else { panic!("{m:?}") };
    assert_eq!(
        def,
        TableDef {
            id: 2,
            name: "be1".into(),
            key_type: KeyType::Ipv4,
            key_len: 4,
            data: 0x80001,
            expire_ms: 1_800_000,
            params: vec![]
        }
    );
    let mut w = Writer::default();
    let mut out = Vec::new();
    w.define(&mut out, &def);
    assert_eq!(out, define);
    // key 127.0.0.1, server_id 1, server_key "s1" (first time: with the name; then its id).
    let first = hex("0a 80 0e 00 00 00 01 7f 00 00 01 01 04 01 02 73 31");
    let again = hex("0a 80 0b 00 00 00 03 7f 00 00 01 01 01 01");
    for (frame, id) in [(&first, 1), (&again, 3)] {
        let (m, _) = r.read(frame).expect("valid").expect("whole");
        let want = Update {
            id: Some(id),
            expire_ms: None,
            key: vec![127, 0, 0, 1],
            values: vec![(0, Value::Sint(1)), (19, Value::Dict(Some("s1".into())))],
        };
        assert_eq!(m, Message::Update(Some(want.clone())));
        let mut out = Vec::new();
        w.update(&mut out, &def, &want);
        assert_eq!(&out, frame);
    }
    // A string table with a rate: "/t1", gpc0 and http_req_rate(10s).
    let define = hex("0a 82 10 01 03 2f 74 31 06 11 f4 31 f0 97 1c 0a f0 e2 03");
    let (m, _) = r.read(&define).expect("valid").expect("whole");
    let Message::Define(t1) = m else { panic!("{m:?}") };
    assert_eq!(
        (t1.name.as_str(), t1.key_type, t1.key_len, t1.params.clone()),
        ("/t1", KeyType::String, 17, vec![(10, 10000, 0)])
    );
    let timed = hex("0a 85 14 00 00 00 01 00 00 da bc 03 66 6f 6f 07 fc ee c3 e8 28 00 00");
    let (m, _) = r.read(&timed).expect("valid").expect("whole");
    let Message::Update(Some(u)) = m else { panic!("{m:?}") };
    assert_eq!((u.id, u.expire_ms, u.key.as_slice()), (Some(1), Some(55996), &b"foo"[..]));
    assert!(matches!(u.values.as_slice(), [(2, Value::Uint(7)), (10, Value::Freq { curr: 0, prev: 0, .. })]));
    let mut out = Vec::new();
    w.update(&mut out, &t1, &u);
    assert_eq!(out, timed);
    // An integer table, an incremental timed update, and HAProxy's ack.
    let define = hex("0a 82 0d 03 03 62 65 32 02 04 f3 f1 3e f0 e2 03");
    let (m, _) = r.read(&define).expect("valid").expect("whole");
    assert!(matches!(m, Message::Define(TableDef { key_type: KeyType::Integer, data: 131075, .. })));
    let incr = hex("0a 86 0c 00 00 17 6c 00 01 11 70 fc 03 00 00");
    let (m, _) = r.read(&incr).expect("valid").expect("whole");
    let Message::Update(Some(u)) = m else { panic!("{m:?}") };
    assert_eq!((u.id, u.expire_ms, u.key.as_slice()), (None, Some(5996), &[0, 1, 0x11, 0x70][..]));
    assert_eq!(u.values, [(0, Value::Sint(300)), (1, Value::Uint(0)), (17, Value::Uint(0))]);
    let ack = hex("0a 84 05 05 00 00 00 c8");
    assert_eq!(r.read(&ack), Ok(Some((Message::Ack { table_id: 5, update: 200 }, ack.len()))));
    let mut out = Vec::new();
    w.ack(&mut out, 5, 200);
    assert_eq!(out, ack);
    // Controls: two bytes, several in one buffer.
    let mut out = Vec::new();
    w.control(&mut out, Control::Heartbeat);
    w.control(&mut out, Control::ResyncFinished);
    assert_eq!(out, [0, 4, 0, 1]);
    assert_eq!(r.read(&out), Ok(Some((Message::Control(Control::Heartbeat), 2))));
}

#[test]
fn bad_input_is_an_error_or_waits() {
    let mut r = Reader::default();
    assert_eq!(r.read(&[0x0a]), Ok(None));
    assert_eq!(r.read(&[0x0a, 0x80, 0x05, 0, 0]), Ok(None), "a body not all there yet");
    assert_eq!(r.read(&[0xff, 0x00]), Err(Error::Protocol("a message of the reserved class")));
    assert!(matches!(r.read(&hex("0a 80 f0 88 21")), Err(Error::TooLarge(70000))));
    // An update without a definition is skipped, framed by its length.
    assert_eq!(r.read(&hex("0a 80 02 aa bb 00 04")), Ok(Some((Message::Update(None), 5))));
    // A definition with an unknown key type, an empty name, a truncated field.
    assert!(r.read(&hex("0a 82 06 01 01 61 09 04 00")).is_err());
    assert!(r.read(&hex("0a 82 05 01 00 04 04 00")).is_err());
    assert!(r.read(&hex("0a 82 03 01 05 61")).is_err());
    // An update cut inside its values, and a dictionary id out of range.
    let define = hex("0a 82 0f 02 03 62 65 31 04 04 f1 f1 fe 00 f0 e5 ed 05");
    r.read(&define).expect("valid");
    assert!(r.read(&hex("0a 80 06 00 00 00 01 7f 00")).is_err());
    assert!(r.read(&hex("0a 80 0b 00 00 00 01 7f 00 00 01 01 01 f0")).is_err());
    // Unknown classes and types are skipped.
    assert_eq!(r.read(&[0x07, 0x01]), Ok(Some((Message::Unknown, 2))));
    assert_eq!(r.read(&[0x0a, 0x99, 0x01, 0x00]), Ok(Some((Message::Unknown, 4))));
}
