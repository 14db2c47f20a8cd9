//! The link protocol: frame layout, message types, error codes, and writing frames.
//! `PROTOCOL.md` in the crate folder is the normative description; the constants here are its
//! numbers.
//!
//! ```text
//! | magic "MSFC" | version u8 | type u8 | length u32 LE | payload | CRC-32 u32 LE |
//! ```

use embedded_io::Write;
use msnet_runtime::format::crc32;

/// First four bytes of every frame (ASCII "MSFC": MSNet fundus camera).
pub const MAGIC: [u8; 4] = *b"MSFC";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
/// Magic, version, type and payload length.
pub const HEADER_LEN: usize = 10;
/// The CRC-32 after the payload.
pub const CRC_LEN: usize = 4;
/// Bytes a frame adds to its payload.
pub const FRAME_OVERHEAD: usize = HEADER_LEN + CRC_LEN;

/// Largest region side the device accepts, in pixels.
pub const MAX_REGION_SIDE: usize = 256;
/// The region header: width and height, u16 LE each.
pub const REGION_HEADER_LEN: usize = 4;
/// Largest payload either side may send: a full-size region request.
pub const MAX_PAYLOAD_LEN: usize = REGION_HEADER_LEN + 3 * MAX_REGION_SIDE * MAX_REGION_SIDE;
/// Receive buffer length that lets a device accept every valid frame.
pub const MAX_FRAME_LEN: usize = FRAME_OVERHEAD + MAX_PAYLOAD_LEN;

/// Host → device: segment a disc-centred RGB region.
pub const TYPE_SEGMENT: u8 = 0x01;
/// Device → host: masks and measurements for a [`TYPE_SEGMENT`] request.
pub const TYPE_SEGMENT_RESULT: u8 = 0x81;
/// Device → host: a request or frame was refused ([`ErrorCode`] and reason).
pub const TYPE_ERROR: u8 = 0xFF;

/// Length of the fixed part of a [`TYPE_SEGMENT_RESULT`] payload, before the two run lists.
pub const RESULT_FIXED_LEN: usize = 32;
/// Payload length of a [`TYPE_ERROR`] frame: code and reason.
pub const ERROR_PAYLOAD_LEN: usize = 2;
/// The vertical cup-to-disc ratio reported when there is no disc (a ratio is never negative,
/// and a sentinel keeps the field free of NaN for hosts that compare numbers).
pub const VCDR_NO_DISC: f32 = -1.0;

/// What went wrong, the first byte of an error payload. The second byte is a reason whose
/// meaning depends on the code (see each variant).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// The CRC does not match (a corrupted frame, or a truncated one whose missing bytes were
    /// filled by the frames after it). Reason 0.
    BadCrc = 0x01,
    /// The line went idle in the middle of a frame. Reason 0.
    Truncated = 0x02,
    /// The header's version is not [`VERSION`]. Reason: the version received.
    UnsupportedVersion = 0x03,
    /// The header's length is over the device's limit. Reason 0.
    PayloadTooLong = 0x04,
    /// The message type is not a request this device serves. Reason: the type received.
    UnknownType = 0x05,
    /// The region is malformed. Reason: a [`RegionFault`].
    BadRegion = 0x06,
    /// The runtime refused to run (a device fault, not the host's). Reason: an
    /// [`InferenceFault`].
    InferenceFailed = 0x07,
    /// A mask needs more runs than the device can hold. Reason: a [`MaskKind`].
    MasksTooLarge = 0x08,
}

/// Reasons for [`ErrorCode::BadRegion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum RegionFault {
    /// The payload is shorter than the width and height fields.
    MissingSize = 1,
    /// Width or height is zero.
    Empty = 2,
    /// Width or height is over [`MAX_REGION_SIDE`].
    TooLarge = 3,
    /// The payload is not `4 + width · height · 3` bytes.
    LengthMismatch = 4,
}

/// Reasons for [`ErrorCode::InferenceFailed`], one per `msnet_runtime::RunError` variant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum InferenceFault {
    Buffer = 1,
    NonFiniteInput = 2,
    // 3 was "plan op invalid": plans are now checked once, when the device is set up.
    /// A value overflowed inside the network (the model's fault, not the region's).
    NonFiniteOutput = 4,
}

/// Reasons for [`ErrorCode::MasksTooLarge`]: which mask did not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MaskKind {
    Disc = 1,
    Cup = 2,
}

/// The fixed header fields of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub kind: u8,
    pub payload_len: u32,
}

impl Header {
    /// Reads the fields after the magic; `None` unless `bytes` holds a whole header that
    /// starts with [`MAGIC`].
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        let head = bytes.get(..HEADER_LEN)?;
        let (magic, rest) = head.split_first_chunk::<4>()?;
        let (&[version, kind], len) = rest.split_first_chunk::<2>()?;
        let len: [u8; 4] = len.try_into().ok()?;
        (*magic == MAGIC).then_some(Self {
            version,
            kind,
            payload_len: u32::from_le_bytes(len),
        })
    }
}

/// A segmentation request's region: 8-bit RGB, interleaved, row-major.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region<'a> {
    pub width: usize,
    pub height: usize,
    /// `width · height · 3` bytes.
    pub rgb: &'a [u8],
}

impl<'a> Region<'a> {
    /// Reads a [`TYPE_SEGMENT`] payload: width u16 LE, height u16 LE, then the pixels.
    pub fn parse(payload: &'a [u8]) -> Result<Self, RegionFault> {
        let (size, rgb) = payload
            .split_first_chunk::<REGION_HEADER_LEN>()
            .ok_or(RegionFault::MissingSize)?;
        let width = usize::from(u16::from_le_bytes([size[0], size[1]]));
        let height = usize::from(u16::from_le_bytes([size[2], size[3]]));
        if width == 0 || height == 0 {
            return Err(RegionFault::Empty);
        }
        if width > MAX_REGION_SIDE || height > MAX_REGION_SIDE {
            return Err(RegionFault::TooLarge);
        }
        // Both sides are at most 256, so this cannot overflow.
        if rgb.len() != width * height * 3 {
            return Err(RegionFault::LengthMismatch);
        }
        Ok(Self { width, height, rgb })
    }
}

/// The measurements of a [`TYPE_SEGMENT_RESULT`] payload (the run lists follow them).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Measurements {
    /// Mask size: the plan's input size, not the region's.
    pub width: u16,
    pub height: u16,
    /// Pixels in each mask.
    pub disc_area: u32,
    pub cup_area: u32,
    /// Rows from the top-most to the bottom-most pixel of each mask (0 when empty).
    pub disc_rows: u16,
    pub cup_rows: u16,
    /// `cup_rows / disc_rows`, or [`VCDR_NO_DISC`] when `disc_area` is 0.
    pub vertical_cdr: f32,
    /// Microseconds spent resizing the region, running the network, and measuring and
    /// run-length encoding the masks.
    pub preprocess_us: u32,
    pub inference_us: u32,
    pub postprocess_us: u32,
}

impl Measurements {
    /// The fixed part of the payload, [`RESULT_FIXED_LEN`] bytes.
    pub fn to_bytes(&self) -> [u8; RESULT_FIXED_LEN] {
        let mut out = [0u8; RESULT_FIXED_LEN];
        let fields: [&[u8]; 10] = [
            &self.width.to_le_bytes(),
            &self.height.to_le_bytes(),
            &self.disc_area.to_le_bytes(),
            &self.cup_area.to_le_bytes(),
            &self.disc_rows.to_le_bytes(),
            &self.cup_rows.to_le_bytes(),
            &self.vertical_cdr.to_le_bytes(),
            &self.preprocess_us.to_le_bytes(),
            &self.inference_us.to_le_bytes(),
            &self.postprocess_us.to_le_bytes(),
        ];
        // The field lengths are constants adding up to RESULT_FIXED_LEN.
        let mut rest = out.as_mut_slice();
        for field in fields {
            let (slot, tail) = rest.split_at_mut(field.len());
            slot.copy_from_slice(field);
            rest = tail;
        }
        out
    }
}

/// Writes one frame to a link: the header at [`FrameWriter::begin`], the payload in pieces,
/// the CRC at [`FrameWriter::finish`]. The CRC is computed on the way, so a payload never has
/// to be assembled in memory.
pub struct FrameWriter<'w, W: Write> {
    link: &'w mut W,
    crc: u32,
}

impl<'w, W: Write> FrameWriter<'w, W> {
    /// Writes the header of a frame of type `kind` whose payload will be `payload_len` bytes.
    pub fn begin(link: &'w mut W, kind: u8, payload_len: u32) -> Result<Self, W::Error> {
        let mut head = [0u8; HEADER_LEN];
        let (magic, rest) = head.split_at_mut(MAGIC.len());
        magic.copy_from_slice(&MAGIC);
        let (kind_bytes, len) = rest.split_at_mut(2);
        kind_bytes.copy_from_slice(&[VERSION, kind]);
        len.copy_from_slice(&payload_len.to_le_bytes());
        let mut writer = Self { link, crc: 0 };
        writer.put(&head)?;
        Ok(writer)
    }

    /// Writes payload bytes.
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), W::Error> {
        self.crc = crc32(self.crc, bytes);
        self.link.write_all(bytes)
    }

    /// Writes `values` as u16 LE, in chunks so the link sees few large writes.
    pub fn put_u16s(&mut self, values: &[u16]) -> Result<(), W::Error> {
        let mut chunk = [0u8; 128];
        for group in values.chunks(chunk.len() / 2) {
            for (pair, v) in chunk.chunks_exact_mut(2).zip(group) {
                pair.copy_from_slice(&v.to_le_bytes());
            }
            // `group` holds at most 64 values, so this is within `chunk`.
            self.put(&chunk[..2 * group.len()])?;
        }
        Ok(())
    }

    /// Writes the CRC and flushes the link.
    pub fn finish(self) -> Result<(), W::Error> {
        self.link.write_all(&self.crc.to_le_bytes())?;
        self.link.flush()
    }
}

/// Writes a complete frame whose payload is at hand.
pub fn write_frame<W: Write>(link: &mut W, kind: u8, payload: &[u8]) -> Result<(), W::Error> {
    // Payloads at hand are at most a receive buffer long, far below 4 GiB.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let mut frame = FrameWriter::begin(link, kind, len)?;
    frame.put(payload)?;
    frame.finish()
}

/// Writes an error frame.
pub fn write_error<W: Write>(link: &mut W, code: ErrorCode, reason: u8) -> Result<(), W::Error> {
    write_frame(link, TYPE_ERROR, &[code as u8, reason])
}
