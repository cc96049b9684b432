//! The peers protocol as a peer receives it: a hello, then any bytes as messages. Every input
//! gives a hello, a status, messages or an error, never a panic; each message takes at least
//! two bytes; a decoded update made again by the Writer decodes to the same update.
#![no_main]
use fulcrum_peers::{HelloRead, Message, Reader, Writer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let HelloRead::Done(_, used) = fulcrum_peers::read_hello(data) {
        assert!(used <= data.len());
    }
    let _ = fulcrum_peers::read_status(data);
    let mut reader = Reader::default();
    let mut writer = Writer::default();
    let mut current = None;
    let mut at = 0;
    while at < data.len() {
        match reader.read(&data[at..]) {
            Ok(Some((message, used))) => {
                assert!(used >= 2 && at + used <= data.len());
                at += used;
                match message {
                    Message::Define(def) => {
                        let mut out = Vec::new();
                        writer.define(&mut out, &def);
                        current = Some(def);
                    }
                    Message::Update(Some(update)) => {
                        let Some(def) = &current else { continue };
                        let mut out = Vec::new();
                        writer.update(&mut out, def, &update);
                        // A fresh reader knows the definition and none of the names: the
                        // writer sends each name with its id the first time.
                        let mut again = Reader::default();
                        let mut d = Vec::new();
                        writer.define(&mut d, def);
                        again.read(&d).expect("own definition").expect("whole");
                        let (back, _) = again.read(&out).expect("own update").expect("whole");
                        if update.values.iter().all(|(_, v)| !matches!(v, fulcrum_peers::Value::Dict(_))) {
                            assert_eq!(back, Message::Update(Some(update)));
                        }
                    }
                    _ => {}
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
});
