//! HAProxy's variable-length integers: one byte below 240; else the low four bits over 0xF0,
//! then seven bits per byte (bit 7 set on all but the last), each step taking away what the
//! previous byte stood for.
use crate::Error;

/// Appends `v` encoded.
pub fn encode_varint(mut v: u64, out: &mut Vec<u8>) {
    if v < 240 {
        out.push(v as u8);
        return;
    }
    out.push((v as u8) | 0xF0);
    v = (v - 240) >> 4;
    while v >= 128 {
        out.push((v as u8) | 0x80);
        v = (v - 128) >> 7;
    }
    out.push(v as u8);
}

/// The number at the start of `buf` and the bytes it took; None when `buf` ends before it
/// does. More than ten bytes, or a value past 64 bits, is an error.
pub fn decode_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, Error> {
    let Some(&first) = buf.first() else { return Ok(None) };
    let mut v = u64::from(first);
    if first < 240 {
        return Ok(Some((v, 1)));
    }
    let mut shift = 4u32;
    for (i, &b) in buf.iter().enumerate().skip(1) {
        if i >= 10 {
            return Err(Error::Protocol("a number longer than ten bytes"));
        }
        let add = u64::from(b).checked_shl(shift).filter(|a| a >> shift == u64::from(b));
        v = add.and_then(|a| v.checked_add(a)).ok_or(Error::Protocol("a number past 64 bits"))?;
        if b < 128 {
            return Ok(Some((v, i + 1)));
        }
        shift += 7;
    }
    Ok(None)
}
