//! Arbitrary bytes through the frame decoder, read in chunks of any size, into a receive
//! buffer of the full or a small size. Every frame it yields must re-encode to a frame that
//! decodes to the same thing, and a segmentation request's region must parse and resize
//! without panicking.
//!
//! Random bytes almost never carry a matching CRC, so each input is also decoded a second
//! time with the CRC of every frame-shaped run of bytes fixed up: that reaches the paths
//! behind the CRC check (requests, regions, resynchronisation after good frames).
//!
//! ```sh
//! cargo +nightly fuzz run frame_decode -- -max_total_time=600
//! ```
#![no_main]

use embedded_io::{ErrorType, Read};
use libfuzzer_sys::fuzz_target;
use msnet_fundus_camera::decoder::{Decoder, Event, Frame};
use msnet_fundus_camera::preprocess::resize_bilinear;
use msnet_fundus_camera::protocol::{
    CRC_LEN, FRAME_OVERHEAD, Header, MAGIC, MAX_FRAME_LEN, Region, TYPE_SEGMENT, write_frame,
};
use msnet_runtime::format::crc32;

/// A link that hands over at most `chunk` bytes per read.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
}

impl ErrorType for Chunked<'_> {
    type Error = core::convert::Infallible;
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let n = buf.len().min(self.chunk).min(self.data.len());
        let (now, later) = self.data.split_at(n);
        buf[..n].copy_from_slice(now);
        self.data = later;
        Ok(n)
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, stream)) = data.split_first() else {
        return;
    };
    // Low six bits: the read size; bit 6: a small receive buffer (a device with a lower limit).
    let chunk = usize::from(knobs & 0x3f) + 1;
    let receive_len = if knobs & 0x40 == 0 {
        MAX_FRAME_LEN
    } else {
        FRAME_OVERHEAD + usize::from(knobs & 0x3f) * 16
    };
    decode(stream, chunk, receive_len);
    decode(&fix_crcs(stream, receive_len), chunk, receive_len);
});

/// Decodes `stream` to its end, then as if the line went idle.
fn decode(stream: &[u8], chunk: usize, receive_len: usize) {
    let mut receive = vec![0u8; receive_len];
    let mut decoder = Decoder::new(&mut receive).expect("room for an empty frame");
    let max_payload_len = decoder.max_payload_len();
    let mut link = Chunked {
        data: stream,
        chunk,
    };
    loop {
        while let Some(event) = decoder.poll() {
            if let Event::Frame(frame) = event {
                assert!(frame.payload.len() <= max_payload_len);
                handle(frame);
            }
        }
        match decoder.fill(&mut link) {
            Ok(0) => break,
            Ok(_) => {}
            Err(never) => match never {},
        }
    }
    while decoder.abandon_partial().is_some() {
        while let Some(event) = decoder.poll() {
            if let Event::Frame(frame) = event {
                handle(frame);
            }
        }
    }
}

/// Re-encodes `frame` and checks it decodes back; parses and resizes a region request.
fn handle(frame: Frame<'_>) {
    let mut encoded = vec![0u8; FRAME_OVERHEAD + frame.payload.len()];
    write_frame(&mut encoded.as_mut_slice(), frame.kind, frame.payload).expect("room");
    let mut receive = vec![0u8; encoded.len()];
    let mut again = Decoder::new(&mut receive).expect("room");
    again
        .fill(&mut encoded.as_slice())
        .expect("slices do not fail");
    assert_eq!(again.poll(), Some(Event::Frame(frame)));

    if frame.kind == TYPE_SEGMENT
        && let Ok(region) = Region::parse(frame.payload)
    {
        let mut input = [0f32; 3 * 16 * 12];
        resize_bilinear(&region, 16, 12, &mut input).expect("a parsed region is consistent");
        assert!(input.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

/// A copy of `stream` in which every run of bytes shaped like a frame (magic, version,
/// type, a length the receive buffer allows, and that many bytes) gets the right CRC.
fn fix_crcs(stream: &[u8], receive_len: usize) -> Vec<u8> {
    let mut fixed = stream.to_vec();
    let mut at = 0;
    while let Some(tail) = fixed.get(at..) {
        let Some(offset) = tail.windows(MAGIC.len()).position(|w| w == MAGIC) else {
            break;
        };
        at += offset;
        let end = Header::parse(&fixed[at..])
            .map(|h| h.payload_len as usize + FRAME_OVERHEAD)
            .filter(|&len| len <= receive_len)
            .map(|len| at + len)
            .filter(|&end| end <= fixed.len());
        match end {
            Some(end) => {
                let crc = crc32(0, &fixed[at..end - CRC_LEN]);
                fixed[end - CRC_LEN..end].copy_from_slice(&crc.to_le_bytes());
                at = end;
            }
            None => at += 1,
        }
    }
    fixed
}
