//! The streaming frame decoder: bytes in, checked frames or rejections out.
//!
//! It never panics and never waits for bytes it will not use:
//!
//! - bytes before a magic (garbage, line noise) are dropped silently;
//! - a header with another version, or a length over the limit, is rejected as soon as its
//!   10 bytes are in, before any payload;
//! - a frame whose CRC does not match is rejected once its declared length is in.
//!
//! After a rejection the search for the next magic resumes at the byte after the rejected
//! frame's magic, not after its declared length: a truncated frame swallows the frames that
//! follow it into its "payload", and those are still in the buffer to be found again.

use embedded_io::Read;
use msnet_runtime::format::crc32;

use crate::protocol::{ErrorCode, FRAME_OVERHEAD, HEADER_LEN, Header, MAGIC};
use crate::protocol::{MAX_PAYLOAD_LEN, VERSION};

/// A frame whose CRC matched. Its type is not checked: message types are the device's
/// business, not the framing's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub kind: u8,
    pub payload: &'a [u8],
}

/// Why bytes that started with a magic were not a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    BadCrc,
    /// The line went idle before the frame was complete ([`Decoder::abandon_partial`]).
    Truncated,
    UnsupportedVersion(u8),
    PayloadTooLong(u32),
}

impl Rejection {
    /// The error code and reason byte that answer it.
    pub fn error(self) -> (ErrorCode, u8) {
        match self {
            Self::BadCrc => (ErrorCode::BadCrc, 0),
            Self::Truncated => (ErrorCode::Truncated, 0),
            Self::UnsupportedVersion(version) => (ErrorCode::UnsupportedVersion, version),
            Self::PayloadTooLong(_) => (ErrorCode::PayloadTooLong, 0),
        }
    }
}

/// What [`Decoder::poll`] found in the buffered bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    Frame(Frame<'a>),
    Rejected(Rejection),
}

/// The receive buffer was shorter than a frame with an empty payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiveBufferTooSmall;

/// Buffers received bytes in a caller-provided buffer and cuts frames out of them.
///
/// Use: [`Decoder::poll`] until it returns `None`, then [`Decoder::fill`] from the link, and
/// again. A frame is never copied: [`Event::Frame`] borrows the buffer.
pub struct Decoder<'buf> {
    buf: &'buf mut [u8],
    /// `buf[start..end]` holds the bytes received and not yet consumed
    /// (`start <= end <= buf.len()` always).
    start: usize,
    end: usize,
    /// Length of the frame the last `poll` lent out; it is consumed on the next call.
    lent: usize,
    max_payload_len: usize,
}

impl<'buf> Decoder<'buf> {
    /// A decoder accepting payloads up to `buf.len() - FRAME_OVERHEAD` bytes (at most
    /// [`MAX_PAYLOAD_LEN`]); give it [`crate::protocol::MAX_FRAME_LEN`] bytes to accept every
    /// valid frame.
    pub fn new(buf: &'buf mut [u8]) -> Result<Self, ReceiveBufferTooSmall> {
        let max_payload_len = buf
            .len()
            .checked_sub(FRAME_OVERHEAD)
            .ok_or(ReceiveBufferTooSmall)?
            .min(MAX_PAYLOAD_LEN);
        Ok(Self {
            buf,
            start: 0,
            end: 0,
            lent: 0,
            max_payload_len,
        })
    }

    /// The longest payload this decoder accepts.
    pub fn max_payload_len(&self) -> usize {
        self.max_payload_len
    }

    /// Reads once from `link` into the free end of the buffer and returns the bytes read
    /// (0: the link is at end of input). Call it after [`Decoder::poll`] returned `None`:
    /// then the bytes buffered are less than a maximum frame, so there is room.
    pub fn fill<R: Read>(&mut self, link: &mut R) -> Result<usize, R::Error> {
        self.release_lent();
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            // Moving the bytes down only when the end is reached keeps the copying linear
            // in the bytes received, even when the link hands them over one at a time.
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let space = &mut self.buf[self.end..];
        let read = link.read(space)?;
        // A `Read` that claims more than it was given room for is not trusted.
        self.end += read.min(space.len());
        Ok(read)
    }

    /// The next frame or rejection in the bytes buffered so far, or `None` when more bytes are
    /// needed. Garbage before a magic is dropped on the way.
    pub fn poll(&mut self) -> Option<Event<'_>> {
        self.release_lent();
        self.skip_to_magic();
        let pending = &self.buf[self.start..self.end];
        let header = Header::parse(pending)?;
        if header.version != VERSION {
            self.start += 1;
            return Some(Event::Rejected(Rejection::UnsupportedVersion(
                header.version,
            )));
        }
        let payload_len = match usize::try_from(header.payload_len) {
            Ok(len) if len <= self.max_payload_len => len,
            _ => {
                self.start += 1;
                return Some(Event::Rejected(Rejection::PayloadTooLong(
                    header.payload_len,
                )));
            }
        };
        let frame = pending.get(..FRAME_OVERHEAD + payload_len)?;
        let (body, crc) = frame.split_at(HEADER_LEN + payload_len);
        if crc32(0, body).to_le_bytes() != crc {
            self.start += 1;
            return Some(Event::Rejected(Rejection::BadCrc));
        }
        self.lent = frame.len();
        let (_, payload) = body.split_at(HEADER_LEN);
        Some(Event::Frame(Frame {
            kind: header.kind,
            payload,
        }))
    }

    /// Gives up on a frame that started but did not finish (the line went idle), so the bytes
    /// after its magic are searched again. Call it after [`Decoder::poll`] returned `None`.
    /// Returns [`Rejection::Truncated`] if a magic had been received; a lone partial magic at
    /// the end is dropped silently, as it is not known to be a frame.
    pub fn abandon_partial(&mut self) -> Option<Rejection> {
        self.release_lent();
        self.skip_to_magic();
        if self.end - self.start >= MAGIC.len() {
            self.start += 1;
            Some(Rejection::Truncated)
        } else {
            self.start = self.end;
            None
        }
    }

    fn release_lent(&mut self) {
        self.start += self.lent;
        self.lent = 0;
    }

    fn skip_to_magic(&mut self) {
        self.start += magic_start(&self.buf[self.start..self.end]);
    }
}

/// Index of the first byte that starts a magic, or starts a prefix of one that runs to the end
/// of `bytes` (the rest may still arrive); `bytes.len()` if none does.
fn magic_start(bytes: &[u8]) -> usize {
    let mut at = 0;
    while let Some(found) = bytes
        .get(at..)
        .and_then(|tail| tail.iter().position(|&b| b == MAGIC[0]))
    {
        let candidate = bytes.get(at + found..).unwrap_or_default();
        let compared = candidate.len().min(MAGIC.len());
        if candidate.get(..compared) == MAGIC.get(..compared) {
            return at + found;
        }
        at += found + 1;
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{MAX_FRAME_LEN, write_frame};

    /// Encodes one frame into `out` and returns its length.
    fn encode(kind: u8, payload: &[u8], out: &mut [u8]) -> usize {
        let total = out.len();
        let mut rest = &mut out[..];
        write_frame(&mut rest, kind, payload).unwrap();
        total - rest.len()
    }

    /// Feeds `input` in chunks of `chunk` bytes and collects what the decoder reports:
    /// `Ok((kind, payload))` for frames, `Err(rejection)` otherwise.
    fn decode_all(
        input: &[u8],
        chunk: usize,
        buf: &mut [u8],
    ) -> std::vec::Vec<Result<(u8, std::vec::Vec<u8>), Rejection>> {
        let mut decoder = Decoder::new(buf).unwrap();
        let mut events = std::vec::Vec::new();
        let drain = |decoder: &mut Decoder<'_>, events: &mut std::vec::Vec<_>| {
            while let Some(event) = decoder.poll() {
                events.push(match event {
                    Event::Frame(f) => Ok((f.kind, f.payload.to_vec())),
                    Event::Rejected(r) => Err(r),
                });
            }
        };
        for mut piece in input.chunks(chunk) {
            drain(&mut decoder, &mut events);
            while !piece.is_empty() {
                decoder.fill(&mut piece).unwrap();
                drain(&mut decoder, &mut events);
            }
        }
        // The input is over: the line is idle.
        while let Some(r) = decoder.abandon_partial() {
            events.push(Err(r));
            drain(&mut decoder, &mut events);
        }
        events
    }

    #[test]
    fn magic_start_finds_whole_and_trailing_partial_magics() {
        assert_eq!(magic_start(b""), 0);
        assert_eq!(magic_start(b"xyz"), 3);
        assert_eq!(magic_start(b"xxMSFCyy"), 2);
        assert_eq!(magic_start(b"MSxMSFC"), 3);
        assert_eq!(magic_start(b"abcMS"), 3);
        assert_eq!(magic_start(b"abcMSx"), 6);
        assert_eq!(magic_start(b"MMSF"), 1);
    }

    #[test]
    fn frames_survive_any_chunking_and_garbage() {
        let mut stream = std::vec![0u8; 256];
        let mut at = 0;
        stream[at..at + 5].copy_from_slice(b"\x00MS\xffM");
        at += 5;
        at += encode(0x01, b"first", &mut stream[at..]);
        stream[at..at + 3].copy_from_slice(b"MSF");
        at += 3;
        at += encode(0x42, b"", &mut stream[at..]);
        at += encode(0x01, &[7; 40], &mut stream[at..]);
        let expected = [
            (0x01, b"first".to_vec()),
            (0x42, std::vec![]),
            (0x01, std::vec![7; 40]),
        ];
        for chunk in [1, 2, 3, 7, 64, 256] {
            let mut buf = std::vec![0u8; MAX_FRAME_LEN];
            let events = decode_all(&stream[..at], chunk, &mut buf);
            let frames: std::vec::Vec<_> = expected.iter().cloned().map(Ok).collect();
            assert_eq!(events, frames, "chunk {chunk}");
        }
    }

    #[test]
    fn bad_headers_are_rejected_before_their_payload() {
        let mut buf = std::vec![0u8; 64];
        let mut decoder = Decoder::new(&mut buf).unwrap();
        assert_eq!(decoder.max_payload_len(), 64 - FRAME_OVERHEAD);
        // Only the 10 header bytes: the verdict must not wait for the 51 payload bytes.
        let mut header: &[u8] = b"MSFC\x01\x01\x33\x00\x00\x00";
        decoder.fill(&mut header).unwrap();
        assert_eq!(
            decoder.poll(),
            Some(Event::Rejected(Rejection::PayloadTooLong(51)))
        );
        assert_eq!(decoder.poll(), None);
        let mut header: &[u8] = b"MSFC\x02\x01\x00\x00\x00\x00";
        decoder.fill(&mut header).unwrap();
        assert_eq!(
            decoder.poll(),
            Some(Event::Rejected(Rejection::UnsupportedVersion(2)))
        );
        assert_eq!(decoder.poll(), None);
        assert_eq!(decoder.abandon_partial(), None);
    }

    #[test]
    fn a_truncated_frame_gives_back_the_frames_it_swallowed() {
        let mut stream = std::vec![0u8; 512];
        let cut = encode(0x01, &[9; 100], &mut stream) - 30;
        let mut at = cut;
        at += encode(0x01, b"second", &mut stream[at..]);
        at += encode(0x01, &[5; 80], &mut stream[at..]);
        let mut buf = std::vec![0u8; 512];
        // The cut frame's declared length is covered by the frames after it: its CRC fails,
        // and both are found again.
        let events = decode_all(&stream[..at], 5, &mut buf);
        assert_eq!(
            events,
            [
                Err(Rejection::BadCrc),
                Ok((0x01, b"second".to_vec())),
                Ok((0x01, std::vec![5; 80]))
            ]
        );
        // Only the first follows: the declared length is never reached, and the line going
        // idle gives the follower back.
        let end = cut + encode(0x01, b"second", &mut stream[cut..]);
        let events = decode_all(&stream[..end], 5, &mut buf);
        assert_eq!(
            events,
            [Err(Rejection::Truncated), Ok((0x01, b"second".to_vec()))]
        );
    }

    #[test]
    fn a_corrupted_frame_is_rejected_and_the_next_one_decoded() {
        let mut stream = std::vec![0u8; 128];
        let first = encode(0x01, b"payload", &mut stream);
        stream[12] ^= 0x10;
        let end = first + encode(0x01, b"next", &mut stream[first..]);
        let mut buf = std::vec![0u8; 128];
        let events = decode_all(&stream[..end], 128, &mut buf);
        assert_eq!(
            events,
            [Err(Rejection::BadCrc), Ok((0x01, b"next".to_vec()))]
        );
    }

    #[test]
    fn a_receive_buffer_smaller_than_a_frame_is_refused() {
        let mut buf = [0u8; FRAME_OVERHEAD - 1];
        assert!(Decoder::new(&mut buf).is_err());
        let mut buf = [0u8; FRAME_OVERHEAD];
        assert_eq!(Decoder::new(&mut buf).unwrap().max_payload_len(), 0);
    }
}
