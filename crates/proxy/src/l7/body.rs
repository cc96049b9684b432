//! Moving a message body from one side to the other as it arrives: what was read with the
//! head first, then reads straight from the source socket into the worker's scratch buffer and
//! out to the destination. A body is never held whole; at most one read waits for a slow
//! destination.
use std::time::{Duration, Instant};

use bytes::BytesMut;

use crate::h1::{size_line, ChunkError, Chunked, Framing};
use crate::io::{IoFail, Side};
use crate::l7::headers::ClientFraming;

/// Why a body stopped.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The source closed before the body's end.
    Truncated,
    /// The source took longer than its idle timeout, or failed.
    Read(IoFail),
    /// The chunked framing is broken.
    Framing(ChunkError),
    /// The body went over the limit.
    TooLarge,
    /// The destination failed or took nothing for its idle timeout.
    Write(IoFail),
}

/// How one body is read and written.
pub(crate) struct Transfer<'a> {
    pub framing: Framing,
    pub out: ClientFraming,
    /// Most data bytes accepted (`max_request_body`).
    pub limit: Option<u64>,
    /// How long the source may send nothing.
    pub read_idle: Duration,
    /// How long the destination may take nothing.
    pub write_idle: Duration,
    /// Written before the body's first bytes, in the same system call (the head).
    pub prefix: Option<&'a [u8]>,
}

/// What a finished transfer leaves.
#[derive(Debug, Default)]
pub(crate) struct Moved {
    /// Bytes written to the destination, the prefix excluded.
    pub bytes: u64,
    /// Bytes read past the body's end (the next message, or garbage).
    pub extra: Option<BytesMut>,
}

enum Progress {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
    Done,
}

struct Copier<'t, 'a> {
    t: &'t mut Transfer<'a>,
    progress: Progress,
    data: u64,
    moved: Moved,
}

impl Copier<'_, '_> {
    /// Takes the body's part of `input` and sends it on; the rest is kept as `extra`.
    fn feed(&mut self, input: &[u8], to: &mut Side) -> Result<(), BodyError> {
        let prefix = self.t.prefix.take().unwrap_or_default();
        let write = |to: &mut Side, parts: &[&[u8]]| to.send(parts).map_err(|e| BodyError::Write(IoFail::Io(e)));
        let used = match &mut self.progress {
            // A message without a body: the head alone (what follows is not this message's).
            Progress::Done => {
                write(to, &[prefix])?;
                0
            }
            Progress::Length(left) => {
                let n = usize::try_from(*left).unwrap_or(usize::MAX).min(input.len());
                *left -= n as u64;
                self.data += n as u64;
                write(to, &[prefix, &input[..n]])?;
                self.moved.bytes += n as u64;
                if *left == 0 {
                    self.progress = Progress::Done;
                }
                n
            }
            Progress::Chunked(chunked) => {
                let dechunk = self.t.out == ClientFraming::Dechunk;
                let (used, bytes) = feed_chunked(chunked, input, prefix, dechunk, to)?;
                self.moved.bytes += bytes;
                self.data = chunked.data;
                if chunked.is_done() {
                    self.progress = Progress::Done;
                }
                used
            }
            Progress::UntilClose => {
                if input.is_empty() {
                    write(to, &[prefix])?;
                } else if self.t.out == ClientFraming::Chunk {
                    let line = size_line(input.len());
                    write(to, &[prefix, line.as_bytes(), input, b"\r\n"])?;
                } else {
                    write(to, &[prefix, input])?;
                }
                self.data += input.len() as u64;
                self.moved.bytes += input.len() as u64;
                input.len()
            }
        };
        if self.t.limit.is_some_and(|limit| self.data > limit) {
            return Err(BodyError::TooLarge);
        }
        if used < input.len() {
            let extra = self.moved.extra.get_or_insert_with(BytesMut::new);
            extra.extend_from_slice(&input[used..]);
        }
        Ok(())
    }

    /// The source closed: the end of a close-delimited body, else a truncated one.
    fn end_of_stream(&mut self, to: &mut Side) -> Result<(), BodyError> {
        match self.progress {
            Progress::UntilClose => {
                self.progress = Progress::Done;
                if self.t.out == ClientFraming::Chunk {
                    to.send(&[b"0\r\n\r\n"]).map_err(|e| BodyError::Write(IoFail::Io(e)))?;
                }
                Ok(())
            }
            Progress::Done => Ok(()),
            _ => Err(BodyError::Truncated),
        }
    }
}

/// A chunked body's part of `input`, passed on as it came (or its data alone, `dechunk`) after
/// `prefix`. Returns the bytes of `input` used and the bytes written.
fn feed_chunked(
    chunked: &mut Chunked,
    input: &[u8],
    prefix: &[u8],
    dechunk: bool,
    to: &mut Side,
) -> Result<(usize, u64), BodyError> {
    let failed = |e| BodyError::Write(IoFail::Io(e));
    if !dechunk {
        let used = chunked.scan(input, |_| {}).map_err(BodyError::Framing)?;
        to.send(&[prefix, &input[..used]]).map_err(failed)?;
        return Ok((used, used as u64));
    }
    let mut error = None;
    let mut first = Some(prefix);
    let mut bytes = 0;
    let used = chunked
        .scan(input, |data| {
            let head = first.take().unwrap_or_default();
            if error.is_none() {
                error = to.send(&[head, data]).err();
            }
            bytes += data.len() as u64;
        })
        .map_err(BodyError::Framing)?;
    // No data in this input: the prefix still goes.
    if let Some(prefix) = first.filter(|p| !p.is_empty()) {
        error = error.or(to.send(&[prefix]).err());
    }
    match error {
        Some(e) => Err(failed(e)),
        None => Ok((used, bytes)),
    }
}

/// Moves the body: `buffered` first (what was read with the head; what lies past the body's
/// end is returned in [`Moved::extra`]), then from `from` until the body ends.
pub(crate) async fn transfer(
    from: &mut Side,
    buffered: Option<BytesMut>,
    to: &mut Side,
    mut t: Transfer<'_>,
) -> Result<Moved, BodyError> {
    let progress = match t.framing {
        Framing::Empty | Framing::Length(0) => Progress::Done,
        Framing::Length(n) => Progress::Length(n),
        Framing::Chunked => Progress::Chunked(Chunked::new()),
        Framing::UntilClose => Progress::UntilClose,
    };
    let (read_idle, write_idle) = (t.read_idle, t.write_idle);
    let mut c = Copier { t: &mut t, progress, data: 0, moved: Moved::default() };
    if let Some(buf) = buffered.filter(|b| !b.is_empty()) {
        c.feed(&buf, to)?;
    }
    while !matches!(c.progress, Progress::Done) {
        if to.has_pending() {
            to.flush(Some(write_idle)).await.map_err(BodyError::Write)?;
        }
        let deadline = Some(Instant::now() + read_idle);
        let fed = from
            .read_with(deadline, |input| if input.is_empty() { c.end_of_stream(to) } else { c.feed(input, to) })
            .await
            .map_err(BodyError::Read)?;
        fed?;
    }
    if let Some(prefix) = c.t.prefix.take() {
        to.send(&[prefix]).map_err(|e| BodyError::Write(IoFail::Io(e)))?;
    }
    to.flush(Some(write_idle)).await.map_err(BodyError::Write)?;
    Ok(c.moved)
}
