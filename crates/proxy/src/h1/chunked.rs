//! The chunked transfer coding (RFC 9112 §7.1), read as it streams by. The proxy passes a
//! chunked body on as it came (chunk sizes, extensions and trailers included) and only needs
//! to know where each chunk's data lies and where the body ends; an HTTP/1.0 client gets the
//! data alone. Size lines are checked by httparse; a size line or trailer split across reads
//! is kept here until its end arrives.
use std::ops::Range;

/// The longest chunk-size line (with extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;
/// The most trailer bytes accepted after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("invalid chunk size line")]
    Size,
    #[error("chunk data not followed by CRLF")]
    DataEnd,
    #[error("chunk size or trailer line too long")]
    LineTooLong,
    #[error("invalid trailer section")]
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data: bytes left.
    Data(u64),
    /// After a chunk's data: the CRLF, of which `n` bytes were seen.
    DataEnd(u8),
    /// After the last chunk: trailer lines up to an empty line.
    Trailers,
    Done,
}

/// The state of one chunked body being read.
#[derive(Debug, Clone)]
pub struct Chunked {
    phase: Phase,
    /// The current size or trailer line, when it spans reads.
    line: Vec<u8>,
    trailer_bytes: usize,
    /// Data bytes seen so far.
    pub data: u64,
    /// The trailer field lines, without their line ends, when `keep_trailers` asked for them.
    pub trailers: Vec<Vec<u8>>,
    keep_trailers: bool,
}

/// What one call to [`Chunked::step`] found at the start of its input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkStep {
    /// Bytes of the input that belong to the body (framing and data).
    pub used: usize,
    /// Where chunk data lies in the input, if this step was data.
    pub data: Option<Range<usize>>,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked::new()
    }
}

impl Chunked {
    pub fn new() -> Chunked {
        Chunked {
            phase: Phase::Size,
            line: Vec::new(),
            trailer_bytes: 0,
            data: 0,
            trailers: Vec::new(),
            keep_trailers: false,
        }
    }

    /// A decoder that keeps the trailer fields (`trailers`), for a receiver that passes them on.
    pub fn keeping_trailers() -> Chunked {
        Chunked { keep_trailers: true, ..Chunked::new() }
    }

    /// Whether the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.phase == Phase::Done
    }

    /// Reads what it can from the start of `input`: one line, or one run of data. Call again
    /// on the rest while `used` is not zero and the body is not done.
    pub fn step(&mut self, input: &[u8]) -> Result<ChunkStep, ChunkError> {
        if input.is_empty() {
            return Ok(ChunkStep { used: 0, data: None });
        }
        match self.phase {
            Phase::Done => Ok(ChunkStep { used: 0, data: None }),
            Phase::Data(left) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(input.len());
                let left = left - n as u64;
                self.phase = if left == 0 { Phase::DataEnd(0) } else { Phase::Data(left) };
                self.data += n as u64;
                Ok(ChunkStep { used: n, data: Some(0..n) })
            }
            Phase::DataEnd(seen) => {
                let want: &[u8] = &b"\r\n"[usize::from(seen)..];
                let n = want.len().min(input.len());
                if input[..n] != want[..n] {
                    return Err(ChunkError::DataEnd);
                }
                self.phase = if n == want.len() { Phase::Size } else { Phase::DataEnd(seen + n as u8) };
                Ok(ChunkStep { used: n, data: None })
            }
            Phase::Size => {
                let Some(used) = self.take_line(input)? else {
                    return Ok(ChunkStep { used: input.len(), data: None });
                };
                // httparse reads an empty size (`\r\n`, `;ext\r\n`) as 0, the last chunk: a
                // server may not, and the body would end in two places.
                if !self.line.first().is_some_and(u8::is_ascii_hexdigit) {
                    return Err(ChunkError::Size);
                }
                let size = match httparse::parse_chunk_size(&self.line) {
                    Ok(httparse::Status::Complete((_, size))) => size,
                    _ => return Err(ChunkError::Size),
                };
                self.line.clear();
                self.phase = if size == 0 { Phase::Trailers } else { Phase::Data(size) };
                Ok(ChunkStep { used, data: None })
            }
            Phase::Trailers => {
                let Some(used) = self.take_line(input)? else {
                    return Ok(ChunkStep { used: input.len(), data: None });
                };
                self.trailer_bytes += self.line.len();
                if self.trailer_bytes > MAX_TRAILERS {
                    return Err(ChunkError::LineTooLong);
                }
                let line = self.line.strip_suffix(b"\r\n").ok_or(ChunkError::Trailers)?;
                if line.is_empty() {
                    self.phase = Phase::Done;
                } else if !valid_trailer(line) {
                    return Err(ChunkError::Trailers);
                } else if self.keep_trailers {
                    self.trailers.push(line.to_vec());
                }
                self.line.clear();
                Ok(ChunkStep { used, data: None })
            }
        }
    }

    /// Moves bytes up to the end of a line into `self.line`. Some(bytes used) once the line
    /// is whole, None when the input ended first (all of it was kept).
    fn take_line(&mut self, input: &[u8]) -> Result<Option<usize>, ChunkError> {
        let end = input.iter().position(|b| *b == b'\n');
        let take = end.map_or(input.len(), |e| e + 1);
        if self.line.len() + take > MAX_LINE {
            return Err(ChunkError::LineTooLong);
        }
        self.line.extend_from_slice(&input[..take]);
        Ok(end.map(|_| take))
    }

    /// Runs [`Chunked::step`] over all of `input` (or up to the body's end): the bytes that
    /// belong to the body, and `data` called with each run of chunk data.
    pub fn scan(&mut self, input: &[u8], mut data: impl FnMut(&[u8])) -> Result<usize, ChunkError> {
        let mut at = 0;
        while at < input.len() && !self.is_done() {
            let step = self.step(&input[at..])?;
            if let Some(range) = step.data {
                data(&input[at + range.start..at + range.end]);
            }
            if step.used == 0 {
                break;
            }
            at += step.used;
        }
        Ok(at)
    }
}

/// `name: value` with a token name.
fn valid_trailer(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|b| *b == b':') else { return false };
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    colon > 0
        && line[..colon].iter().all(tchar)
        && line[colon + 1..].iter().all(|b| *b == b'\t' || (*b >= 0x20 && *b != 0x7f))
}

/// A chunk-size line, on the stack.
#[derive(Debug, Clone, Copy)]
pub struct SizeLine {
    bytes: [u8; 18],
    len: usize,
}

impl SizeLine {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The chunk-size line for `len` bytes of data, in hex.
pub fn size_line(len: usize) -> SizeLine {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    let mut line = SizeLine { bytes: [0; 18], len: digits + 2 };
    for i in 0..digits {
        line.bytes[digits - 1 - i] = HEX[(len >> (i * 4)) & 0xf];
    }
    line.bytes[digits] = b'\r';
    line.bytes[digits + 1] = b'\n';
    line
}
