//! 2D image I/O and resizing.
//!
//! Conventions:
//! - images are returned **planar, channel-first**: `[C, H, W]` `f32` in `[0, 1]`; 8-bit samples
//!   are divided by 255, 16-bit by 65535; float samples (32-bit float TIFF) are taken as they
//!   are, 0 black and 1 white, so they must be finite and within `[0, 1]`: NaN, infinities and
//!   values outside that range are refused, naming the file and the pixel, because no rescaling
//!   rule (by 255? by the image's own range?) could be right for every source;
//!   gray gives `C = 1`, colour gives `C = 3`; alpha is dropped (not composited);
//! - masks are `[H, W]` `u8`, taken verbatim (no scaling) from 8-bit gray files, or from RGB(A)
//!   files whose three colour channels are equal (palette PNGs decode that way);
//! - sizes are `[height, width]`.
//!
//! The image header is checked against [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_PIXELS`] before any
//! pixel is decoded, so a hostile header cannot make a decoder allocate gigabytes; callers with
//! a memory budget judge the [`ImageHeader`] first ([`read_image_checked`]).
//!
//! A file that ends early is an error for every format, never a partly gray image: PNG and JPEG
//! must reach their end marker (IEND, EOI), and the TIFF and BMP decoders fail on a short read.

use std::io::{self, BufRead, Cursor, Read, Seek, SeekFrom};
use std::path::Path;

use ::image::{
    ColorType, DynamicImage, ImageDecoder, ImageEncoder, ImageFormat, ImageReader, Limits,
};

use super::{IoError, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, unreadable, write_atomic};

/// What an image's header announces, known before any pixel is decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageHeader {
    /// `[height, width]`.
    pub hw: [usize; 2],
    /// Channels of the planar result: 1 (gray) or 3 (colour).
    pub channels: usize,
    /// The most memory decoding holds at once: the decoder's pixel buffers, the file itself where
    /// the decoder reads it whole first (JPEG), and the planar `f32` result.
    pub decode_bytes: u64,
}

impl ImageHeader {
    pub fn pixels(&self) -> u64 {
        (self.hw[0] * self.hw[1]) as u64
    }

    /// Bytes of the planar `f32` result.
    pub fn planar_bytes(&self) -> u64 {
        self.pixels() * 4 * self.channels as u64
    }
}

/// Reads an image file (PNG, JPEG, BMP, TIFF; 8 or 16 bit, or float TIFF; gray, gray+alpha,
/// RGB or RGBA).
///
/// Returns `(channels, [h, w], pixels)` with `pixels` planar `[C, H, W]` in `[0, 1]`
/// (see the module docs for the conversion rules).
pub fn read_image(path: &Path) -> Result<(usize, [usize; 2], Vec<f32>), IoError> {
    read_image_checked(path, |_| Ok(()))
}

/// [`read_image`], asking `admit` first: it sees the [`ImageHeader`] before any pixel is
/// decoded, and its `Err(reason)` becomes [`IoError::Unreadable`] naming the file. This is how a
/// caller with a memory budget refuses an image before the image can exhaust it.
pub fn read_image_checked(
    path: &Path,
    admit: impl FnOnce(&ImageHeader) -> Result<(), String>,
) -> Result<(usize, [usize; 2], Vec<f32>), IoError> {
    decode_planar(path, open_file(path)?, admit)
}

/// [`read_image`] on an image already in memory (from a socket, a camera buffer); `name` only
/// labels errors.
pub fn decode_image(name: &Path, bytes: &[u8]) -> Result<(usize, [usize; 2], Vec<f32>), IoError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| unreadable(name, e))?;
    decode_planar(name, reader, |_| Ok(()))
}

/// Reads a label mask: `([h, w], values)` with the raw 8-bit values, row-major.
///
/// Accepts 8-bit single-channel gray, or 8-bit RGB / RGBA whose three colour channels are equal
/// at every pixel (alpha ignored). Anything else is [`IoError::BadMask`], because silently
/// converting colour or 16-bit masks would invent class values.
pub fn read_mask(path: &Path) -> Result<([usize; 2], Vec<u8>), IoError> {
    let (decoder, _) = open_decoder(path, open_file(path)?)?;
    let img = DynamicImage::from_decoder(decoder).map_err(|e| unreadable(path, e))?;
    let hw = [img.height() as usize, img.width() as usize];
    let values = match img {
        DynamicImage::ImageLuma8(b) => b.into_raw(),
        DynamicImage::ImageRgb8(b) => equal_channels(path, b.as_raw(), 3, hw[1])?,
        DynamicImage::ImageRgba8(b) => equal_channels(path, b.as_raw(), 4, hw[1])?,
        other => {
            return Err(IoError::BadMask {
                path: path.to_path_buf(),
                reason: format!("pixel format {:?}", other.color()),
            });
        }
    };
    Ok((hw, values))
}

/// Resizes a planar `[C, H, W]` image with bilinear interpolation and half-pixel centres
/// (output pixel `i` samples input coordinate `(i + 0.5) · in / out − 0.5`, clamped to the
/// border), the convention of PyTorch's `align_corners=False` without antialiasing.
///
/// # Panics
/// If `image.len() != channels · from_hw[0] · from_hw[1]` (a caller bug, not a data problem).
pub fn resize_bilinear(
    image: &[f32],
    channels: usize,
    from_hw: [usize; 2],
    to_hw: [usize; 2],
) -> Vec<f32> {
    assert_eq!(
        image.len(),
        channels * from_hw[0] * from_hw[1],
        "resize_bilinear: buffer length does not match {channels}×{from_hw:?}"
    );
    let [th, tw] = to_hw;
    if from_hw == to_hw {
        return image.to_vec();
    }
    if from_hw[0] == 0 || from_hw[1] == 0 {
        // Nothing to sample from: an empty source can only give an all-zero image.
        return vec![0.0; channels * th * tw];
    }
    let rows = bilinear_taps(from_hw[0], th);
    let cols = bilinear_taps(from_hw[1], tw);
    let plane_in = from_hw[0] * from_hw[1];
    let mut out = Vec::with_capacity(channels * th * tw);
    for plane in image.chunks_exact(plane_in) {
        for &(r0, r1, fr) in &rows {
            let (row0, row1) = (
                &plane[r0 * from_hw[1]..][..from_hw[1]],
                &plane[r1 * from_hw[1]..][..from_hw[1]],
            );
            for &(c0, c1, fc) in &cols {
                let top = row0[c0] + (row0[c1] - row0[c0]) * fc;
                let bottom = row1[c0] + (row1[c1] - row1[c0]) * fc;
                out.push(top + (bottom - top) * fr);
            }
        }
    }
    out
}

/// Resizes an `[H, W]` label map by nearest neighbour (half-pixel centres: output pixel `i`
/// takes input pixel `⌊(i + 0.5) · in / out⌋`). Only values present in the input can appear.
///
/// # Panics
/// If `labels.len() != from_hw[0] · from_hw[1]`, or the input is empty and the output is not.
pub fn resize_nearest(labels: &[u8], from_hw: [usize; 2], to_hw: [usize; 2]) -> Vec<u8> {
    assert_eq!(
        labels.len(),
        from_hw[0] * from_hw[1],
        "resize_nearest: buffer length does not match {from_hw:?}"
    );
    if from_hw == to_hw {
        return labels.to_vec();
    }
    let rows: Vec<usize> = (0..to_hw[0])
        .map(|i| nearest_tap(from_hw[0], to_hw[0], i))
        .collect();
    let cols: Vec<usize> = (0..to_hw[1])
        .map(|j| nearest_tap(from_hw[1], to_hw[1], j))
        .collect();
    let mut out = Vec::with_capacity(to_hw[0] * to_hw[1]);
    for &r in &rows {
        let row = &labels[r * from_hw[1]..][..from_hw[1]];
        out.extend(cols.iter().map(|&c| row[c]));
    }
    out
}

/// Writes an 8-bit gray PNG atomically (temporary file + rename).
pub fn write_gray_png(path: &Path, hw: [usize; 2], pixels: &[u8]) -> Result<(), IoError> {
    write_png(path, 1, hw, pixels)
}

/// Writes planar `[C, H, W]` values in `[0, 1]` (C = 1 or 3) as an 8-bit gray or RGB PNG,
/// atomically: the inverse of [`read_image`] up to 8-bit rounding.
pub fn write_image_png(
    path: &Path,
    channels: usize,
    hw: [usize; 2],
    planar: &[f32],
) -> Result<(), IoError> {
    let pixels = hw[0] * hw[1];
    if planar.len() != channels * pixels {
        return Err(IoError::BadBuffer {
            path: path.to_path_buf(),
            reason: format!("{} values for {channels}×{}×{}", planar.len(), hw[0], hw[1]),
        });
    }
    let interleaved: Vec<u8> = (0..pixels * channels)
        .map(|i| {
            let (p, c) = (i / channels, i % channels);
            (planar[c * pixels + p].clamp(0.0, 1.0) * 255.0).round() as u8
        })
        .collect();
    write_png(path, channels, hw, &interleaved)
}

/// Writes interleaved 8-bit gray (`channels` 1) or RGB (3) pixels as a PNG, atomically.
fn write_png(path: &Path, channels: usize, hw: [usize; 2], pixels: &[u8]) -> Result<(), IoError> {
    let bad = |reason: String| IoError::BadBuffer {
        path: path.to_path_buf(),
        reason,
    };
    if pixels.len() != hw[0] * hw[1] * channels {
        return Err(bad(format!(
            "{} values given for a {}×{} image of {channels} channel(s)",
            pixels.len(),
            hw[0],
            hw[1]
        )));
    }
    let (Ok(h), Ok(w)) = (u32::try_from(hw[0]), u32::try_from(hw[1])) else {
        return Err(bad(format!("size {hw:?} does not fit a PNG")));
    };
    let color = match channels {
        1 => ::image::ExtendedColorType::L8,
        3 => ::image::ExtendedColorType::Rgb8,
        c => return Err(bad(format!("{c} channels (PNGs here are gray or RGB)"))),
    };
    let mut bytes = Cursor::new(Vec::new());
    ::image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(pixels, w, h, color)
        .map_err(|e| IoError::Write {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    write_atomic(path, bytes.get_ref())
}

/// Opens an image file for decoding.
fn open_file(path: &Path) -> Result<ImageReader<io::BufReader<std::fs::File>>, IoError> {
    ImageReader::open(path)
        .map_err(|e| unreadable(path, e))?
        // Trust the content over the extension: a PNG saved as `.bmp` still reads.
        .with_guessed_format()
        .map_err(|e| unreadable(path, e))
}

/// A decoder for `reader` once its file is known to be complete and its announced size is within
/// the limits, with the number of bytes of the encoded file the decoder holds in memory.
fn open_decoder<'a, R: BufRead + Seek + 'a>(
    path: &Path,
    reader: ImageReader<R>,
) -> Result<(impl ImageDecoder + 'a, u64), IoError> {
    let Some(format) = reader.format() else {
        return Err(unreadable(path, "not a PNG, JPEG, BMP or TIFF image"));
    };
    let mut inner = reader.into_inner();
    check_complete(path, format, &mut inner)?;
    let file_len = inner
        .seek(SeekFrom::End(0))
        .and_then(|len| inner.rewind().map(|()| len))
        .map_err(|e| unreadable(path, e))?;
    let mut reader = ImageReader::with_format(inner, format);
    let mut limits = Limits::default();
    // Room for the largest accepted image at 4 channels × 16 bit; our own size check below
    // rejects anything bigger with a clearer message than the decoder's.
    limits.max_alloc = Some(MAX_IMAGE_PIXELS as u64 * 8);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| unreadable(path, e))?;
    let (w, h) = decoder.dimensions();
    let (w, h) = (w as usize, h as usize);
    if w > MAX_IMAGE_SIDE || h > MAX_IMAGE_SIDE || w * h > MAX_IMAGE_PIXELS {
        return Err(IoError::TooLarge {
            path: path.to_path_buf(),
            width: w,
            height: h,
        });
    }
    if w == 0 || h == 0 {
        return Err(unreadable(path, format!("empty image ({w}×{h})")));
    }
    // The JPEG decoder reads the whole file into memory before decoding it.
    let in_memory = if format == ImageFormat::Jpeg {
        file_len
    } else {
        0
    };
    Ok((decoder, in_memory))
}

/// Refuses a file that ends before its format's end marker.
///
/// The JPEG decoder (zune-jpeg, run leniently by the `image` crate) fills the missing part of a
/// cut file with gray and reports success, so an early end is found here rather than left to each
/// decoder; PNG is walked the same way, so that a file cut anywhere, even after its pixel data,
/// is refused alike. TIFF and BMP locate their data by offsets and sizes, and their decoders
/// fail on a short read.
fn check_complete<R: BufRead + Seek>(
    path: &Path,
    format: ImageFormat,
    reader: &mut R,
) -> Result<(), IoError> {
    let (name, complete) = match format {
        ImageFormat::Png => ("PNG", png_reaches_iend(reader)),
        ImageFormat::Jpeg => ("JPEG", jpeg_reaches_eoi(reader)),
        _ => return Ok(()),
    };
    match complete {
        Ok(true) => Ok(()),
        Ok(false) => Err(unreadable(
            path,
            format!(
                "truncated {name} file: it ends before its end marker (cut short, or still being \
                 written)"
            ),
        )),
        Err(e) => Err(unreadable(path, e)),
    }
}

/// Whether the chunks of a PNG lead, length by length, to a whole IEND chunk.
fn png_reaches_iend<R: BufRead + Seek>(r: &mut R) -> io::Result<bool> {
    // The 8-byte signature was checked when the format was recognised.
    r.seek(SeekFrom::Start(8))?;
    loop {
        let mut head = [0u8; 8];
        if !read_full(r, &mut head)? {
            return Ok(false);
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        if &head[4..] == b"IEND" {
            return read_full(r, &mut [0u8; 4]);
        }
        // Data and CRC. Read through, not seek: seeking past the end of a file succeeds.
        let skip = u64::from(len) + 4;
        if io::copy(&mut r.by_ref().take(skip), &mut io::sink())? < skip {
            return Ok(false);
        }
    }
}

/// Whether a JPEG's marker segments lead to its EOI marker. Segments are skipped by their
/// length, so the EOI of an embedded EXIF thumbnail does not count; entropy-coded data is
/// scanned for the next marker (`FF 00` is a stuffed byte, `FF D0`–`FF D7` restart markers).
/// Data after EOI (the video of a "motion photo") is allowed.
fn jpeg_reaches_eoi<R: BufRead + Seek>(r: &mut R) -> io::Result<bool> {
    // SOI, checked when the format was recognised.
    r.seek(SeekFrom::Start(2))?;
    loop {
        // Skip to the next 0xFF, then past fill bytes (more 0xFF) to the marker code.
        let code = loop {
            let buf = r.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            match buf.iter().position(|&b| b == 0xFF) {
                Some(i) => r.consume(i + 1),
                None => {
                    let n = buf.len();
                    r.consume(n);
                    continue;
                }
            }
            let mut code = [0xFF];
            while code[0] == 0xFF {
                if !read_full(r, &mut code)? {
                    return Ok(false);
                }
            }
            break code[0];
        };
        match code {
            0xD9 => return Ok(true),
            // Stuffed byte, restart markers, TEM: no length follows.
            0x00 | 0x01 | 0xD0..=0xD7 => {}
            _ => {
                let mut len = [0u8; 2];
                if !read_full(r, &mut len)? {
                    return Ok(false);
                }
                let skip = u64::from(u16::from_be_bytes(len).saturating_sub(2));
                if io::copy(&mut r.by_ref().take(skip), &mut io::sink())? < skip {
                    return Ok(false);
                }
            }
        }
    }
}

/// Fills `buf`; `false` if the data ends first.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sample types of the decoder outputs [`read_image`] takes.
#[derive(Clone, Copy)]
enum Sample {
    U8,
    U16,
    F32,
}

/// How a decoder's interleaved pixels map to planar channels: `(samples per pixel, colour
/// channels kept, sample type)`; alpha, always last, is the sample not kept.
fn layout(color: ColorType) -> Option<(usize, usize, Sample)> {
    use Sample::*;
    Some(match color {
        ColorType::L8 => (1, 1, U8),
        ColorType::La8 => (2, 1, U8),
        ColorType::Rgb8 => (3, 3, U8),
        ColorType::Rgba8 => (4, 3, U8),
        ColorType::L16 => (1, 1, U16),
        ColorType::La16 => (2, 1, U16),
        ColorType::Rgb16 => (3, 3, U16),
        ColorType::Rgba16 => (4, 3, U16),
        ColorType::Rgb32F => (3, 3, F32),
        ColorType::Rgba32F => (4, 3, F32),
        _ => return None,
    })
}

/// Decodes straight from the decoder's own interleaved bytes into the planar `f32` result, the
/// only two full-size buffers, after `admit` has seen the header.
fn decode_planar<R: BufRead + Seek>(
    path: &Path,
    reader: ImageReader<R>,
    admit: impl FnOnce(&ImageHeader) -> Result<(), String>,
) -> Result<(usize, [usize; 2], Vec<f32>), IoError> {
    let format = reader.format();
    let (decoder, in_memory) = open_decoder(path, reader)?;
    let color = decoder.color_type();
    let Some((stride, keep, sample)) = layout(color) else {
        return Err(unreadable(
            path,
            format!("unsupported pixel format {color:?}"),
        ));
    };
    let (w, h) = decoder.dimensions();
    let hw = [h as usize, w as usize];
    let raw_bytes = decoder.total_bytes();
    // The TIFF decoder decodes into a buffer of its own, then copies it into ours.
    let copies = if format == Some(ImageFormat::Tiff) {
        2
    } else {
        1
    };
    let planar_bytes = (hw[0] * hw[1] * keep * 4) as u64;
    let header = ImageHeader {
        hw,
        channels: keep,
        decode_bytes: raw_bytes * copies + in_memory + planar_bytes,
    };
    admit(&header).map_err(|reason| unreadable(path, reason))?;
    let mut raw = zeroed::<u8>(path, raw_bytes)?;
    decoder
        .read_image(&mut raw)
        .map_err(|e| unreadable(path, e))?;
    let n = hw[0] * hw[1];
    let mut out = zeroed::<f32>(path, (keep * n) as u64)?;
    // The decoder writes 16-bit and float samples in native byte order.
    match sample {
        Sample::U8 => to_planar(&raw, stride, keep, &mut out, |[b]: [u8; 1]| {
            f32::from(b) / 255.0
        }),
        Sample::U16 => to_planar(&raw, stride, keep, &mut out, |b: [u8; 2]| {
            f32::from(u16::from_ne_bytes(b)) / 65535.0
        }),
        Sample::F32 => {
            to_planar(&raw, stride, keep, &mut out, f32::from_ne_bytes);
            drop(raw);
            if let Some(i) = out.iter().position(|v| !(0.0..=1.0).contains(v)) {
                let (c, p) = (i / n, i % n);
                return Err(unreadable(
                    path,
                    format!(
                        "float sample {} at x={}, y={} (channel {c}): float images are read as \
                         they are, 0 black and 1 white, so every sample must be finite and \
                         within [0, 1]",
                        out[i],
                        p % w as usize,
                        p / w as usize
                    ),
                ));
            }
        }
    }
    Ok((keep, hw, out))
}

/// Writes interleaved pixels of `stride` samples of `S` bytes each into planar `out`
/// (`[keep, H, W]`), keeping the first `keep` samples of each pixel.
fn to_planar<const S: usize>(
    raw: &[u8],
    stride: usize,
    keep: usize,
    out: &mut [f32],
    unit: impl Fn([u8; S]) -> f32,
) {
    let n = out.len() / keep;
    for (p, px) in raw.chunks_exact(stride * S).take(n).enumerate() {
        for c in 0..keep {
            let mut b = [0u8; S];
            b.copy_from_slice(&px[c * S..][..S]);
            out[c * n + p] = unit(b);
        }
    }
}

/// A zeroed buffer of `n` values; a failed allocation is an error naming the file, not an abort.
fn zeroed<T: Clone + Default>(path: &Path, n: u64) -> Result<Vec<T>, IoError> {
    let fail = || {
        unreadable(
            path,
            format!(
                "cannot allocate {n} values of {} bytes to decode it",
                size_of::<T>()
            ),
        )
    };
    let n = usize::try_from(n).map_err(|_| fail())?;
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| fail())?;
    v.resize(n, T::default());
    Ok(v)
}

/// The first channel of interleaved RGB(A) pixels, if all three colour channels agree.
fn equal_channels(
    path: &Path,
    raw: &[u8],
    stride: usize,
    width: usize,
) -> Result<Vec<u8>, IoError> {
    let mut out = Vec::with_capacity(raw.len() / stride);
    for (i, px) in raw.chunks_exact(stride).enumerate() {
        if px[0] != px[1] || px[0] != px[2] {
            return Err(IoError::BadMask {
                path: path.to_path_buf(),
                reason: format!(
                    "colour pixel ({}, {}, {}) at x={}, y={}",
                    px[0],
                    px[1],
                    px[2],
                    i % width.max(1),
                    i / width.max(1)
                ),
            });
        }
        out.push(px[0]);
    }
    Ok(out)
}

/// For each output index along one axis: the two input indices and the weight of the second.
fn bilinear_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f32)> {
    let scale = n_in as f64 / n_out as f64;
    let last = n_in - 1;
    (0..n_out)
        .map(|i| {
            let src = ((i as f64 + 0.5) * scale - 0.5).clamp(0.0, last as f64);
            let i0 = src.floor() as usize;
            let i1 = (i0 + 1).min(last);
            (i0, i1, (src - i0 as f64) as f32)
        })
        .collect()
}

/// The input index nearest to the centre of output pixel `i` (exact integer arithmetic).
fn nearest_tap(n_in: usize, n_out: usize, i: usize) -> usize {
    ((2 * i + 1) * n_in / (2 * n_out)).min(n_in.saturating_sub(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
    use msnet::fsutil::scratch_dir as test_dir;
    use std::fs;

    #[test]
    fn reads_rgb_bmp_planar_in_unit_range() {
        let dir = test_dir("img-bmp");
        let p = dir.join("a.bmp");
        let img = ImageBuffer::from_fn(3, 2, |x, y| Rgb([(x * 100) as u8, (y * 255) as u8, 51]));
        img.save(&p).unwrap();
        let (c, hw, px) = read_image(&p).unwrap();
        assert_eq!((c, hw), (3, [2, 3]));
        // Planar: the red plane first, row-major.
        assert_eq!(&px[..3], &[0.0, 100.0 / 255.0, 200.0 / 255.0]);
        assert_eq!(&px[6..9], &[0.0, 0.0, 0.0]);
        assert_eq!(&px[9..12], &[1.0, 1.0, 1.0]);
        assert!(px[12..].iter().all(|&v| v == 0.2));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sixteen_bit_png_scales_to_unit_range() {
        let dir = test_dir("img-16");
        let p = dir.join("g16.png");
        let img: ImageBuffer<Luma<u16>, Vec<u16>> =
            ImageBuffer::from_raw(4, 1, vec![0, 257, 32768, 65535]).unwrap();
        img.save(&p).unwrap();
        let (c, hw, px) = read_image(&p).unwrap();
        assert_eq!((c, hw), (1, [1, 4]));
        assert_eq!(px[0], 0.0);
        assert!((px[1] - 257.0 / 65535.0).abs() < 1e-7);
        assert!((px[2] - 0.500_007_6).abs() < 1e-6);
        assert_eq!(px[3], 1.0);

        let p = dir.join("rgba16.png");
        let img: ImageBuffer<Rgba<u16>, Vec<u16>> =
            ImageBuffer::from_raw(1, 1, vec![65535, 0, 13107, 0]).unwrap();
        img.save(&p).unwrap();
        let (c, _, px) = read_image(&p).unwrap();
        assert_eq!(c, 3, "alpha must be dropped");
        assert_eq!(px, vec![1.0, 0.0, 0.2]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gray_alpha_drops_alpha() {
        let dir = test_dir("img-la");
        let p = dir.join("la.png");
        let img: ImageBuffer<LumaA<u8>, Vec<u8>> =
            ImageBuffer::from_raw(2, 1, vec![255, 0, 0, 255]).unwrap();
        img.save(&p).unwrap();
        assert_eq!(read_image(&p).unwrap(), (1, [1, 2], vec![1.0, 0.0]));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn truncated_png_is_unreadable_naming_the_file() {
        let dir = test_dir("img-trunc");
        let p = dir.join("cut.png");
        let img = ImageBuffer::from_fn(64, 64, |x, y| Rgb([x as u8, y as u8, (x ^ y) as u8]));
        img.save(&p).unwrap();
        let bytes = fs::read(&p).unwrap();
        fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_image(&p).unwrap_err();
        assert!(matches!(e, IoError::Unreadable { .. }), "{e:?}");
        assert!(e.to_string().contains("cut.png"), "{e}");
        // The in-memory decoder agrees with the file decoder, on whole and cut bytes.
        let name = Path::new("frame-7");
        let whole = decode_image(name, &bytes).unwrap();
        assert_eq!((whole.0, whole.1), (3, [64, 64]));
        let e = decode_image(name, &bytes[..bytes.len() / 2]).unwrap_err();
        assert!(e.to_string().contains("frame-7"), "{e}");
        let e = read_mask(&dir.join("missing.png")).unwrap_err();
        assert!(e.to_string().contains("missing.png"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A noisy 48×40 RGB image encoded as `format`, so every part of the file carries data.
    fn encoded(format: ImageFormat) -> Vec<u8> {
        let img = ImageBuffer::from_fn(48, 40, |x, y| {
            let v = (x * 7 + y * 13) ^ (x * y);
            Rgb([v as u8, (v >> 2) as u8, (x * 5) as u8])
        });
        let mut bytes = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut bytes, format)
            .unwrap();
        bytes.into_inner()
    }

    #[test]
    fn a_file_cut_anywhere_is_an_error_naming_it_in_every_format() {
        let dir = test_dir("img-cut");
        for (format, ext) in [
            (ImageFormat::Png, "png"),
            (ImageFormat::Jpeg, "jpg"),
            (ImageFormat::Bmp, "bmp"),
            (ImageFormat::Tiff, "tif"),
        ] {
            let bytes = encoded(format);
            let whole = dir.join(format!("whole.{ext}"));
            fs::write(&whole, &bytes).unwrap();
            assert_eq!(read_image(&whole).unwrap().1, [40, 48], "{ext}");
            let cut = dir.join(format!("cut.{ext}"));
            let n = bytes.len();
            for keep in [n - 1, n - 2, n - 3, n * 9 / 10, n * 3 / 4, n / 2, n / 4, 30] {
                fs::write(&cut, &bytes[..keep]).unwrap();
                let e = read_image(&cut).unwrap_err();
                assert!(
                    matches!(e, IoError::Unreadable { .. }),
                    "{ext} {keep}/{n}: {e:?}"
                );
                assert!(e.to_string().contains(&format!("cut.{ext}")), "{e}");
                let e = decode_image(Path::new("frame"), &bytes[..keep]).unwrap_err();
                assert!(e.to_string().contains("frame"), "{ext} {keep}/{n}: {e}");
            }
            let e = read_mask(&cut).unwrap_err();
            assert!(e.to_string().contains(&format!("cut.{ext}")), "{e}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn jpeg_end_is_found_past_thumbnails_and_before_trailing_data() {
        let jpeg = encoded(ImageFormat::Jpeg);
        // An APP1 segment holding a complete JPEG "thumbnail" (SOI … EOI) right after SOI.
        let thumb = [0xFF, 0xD8, 0xFF, 0xD9];
        let mut with_thumb = jpeg[..2].to_vec();
        with_thumb.extend([0xFF, 0xE1, 0, (2 + 6 + thumb.len()) as u8]);
        with_thumb.extend(b"Exif\0\0");
        with_thumb.extend(thumb);
        with_thumb.extend(&jpeg[2..]);
        let name = Path::new("thumb.jpg");
        assert_eq!(decode_image(name, &with_thumb).unwrap().1, [40, 48]);
        let e = decode_image(name, &with_thumb[..with_thumb.len() * 2 / 3]).unwrap_err();
        assert!(e.to_string().contains("truncated JPEG"), "{e}");
        // A "motion photo": more data after EOI.
        let mut motion = jpeg.clone();
        motion.extend(b"\0\0\0\x18ftypmp42 and a video");
        assert_eq!(decode_image(name, &motion).unwrap().1, [40, 48]);
    }

    #[test]
    fn float_tiff_is_taken_as_is_and_refuses_non_finite_or_out_of_range_samples() {
        let dir = test_dir("img-float");
        let p = dir.join("f.tif");
        let save = |values: [f32; 6]| {
            let img: ImageBuffer<Rgb<f32>, Vec<f32>> =
                ImageBuffer::from_raw(2, 1, values.to_vec()).unwrap();
            DynamicImage::ImageRgb32F(img).save(&p).unwrap();
        };
        save([0.0, 0.25, 1.0, 0.5, 0.75, 0.125]);
        let (c, hw, px) = read_image(&p).unwrap();
        assert_eq!((c, hw), (3, [1, 2]));
        assert_eq!(px, vec![0.0, 0.5, 0.25, 0.75, 1.0, 0.125]);
        for (bad, shown) in [
            (f32::NAN, "NaN"),
            (f32::INFINITY, "inf"),
            (1.5, "1.5"),
            (-0.25, "-0.25"),
            (255.0, "255"),
        ] {
            save([0.0, 0.25, 1.0, 0.5, bad, 0.125]);
            let e = read_image(&p).unwrap_err().to_string();
            assert!(
                e.contains("f.tif") && e.contains(shown) && e.contains("x=1, y=0 (channel 1)"),
                "{e}"
            );
            assert!(e.contains("within [0, 1]"), "{e}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_header_is_judged_before_any_pixel_is_decoded() {
        let dir = test_dir("img-admit");
        let p = dir.join("wide.png");
        let img: ImageBuffer<Rgba<u8>, Vec<u8>> = ImageBuffer::new(300, 200);
        img.save(&p).unwrap();
        let mut seen = None;
        let (c, hw, _) = read_image_checked(&p, |h| {
            seen = Some(*h);
            Ok(())
        })
        .unwrap();
        assert_eq!((c, hw), (3, [200, 300]));
        // The decoder's RGBA bytes and the planar RGB f32 result.
        let n = 300 * 200;
        assert_eq!(
            seen,
            Some(ImageHeader {
                hw: [200, 300],
                channels: 3,
                decode_bytes: n * 4 + n * 12,
            })
        );
        let e = read_image_checked(&p, |h| Err(format!("{} pixels is too many", h.pixels())))
            .unwrap_err();
        assert!(matches!(e, IoError::Unreadable { .. }), "{e:?}");
        assert!(
            e.to_string().contains("wide.png: 60000 pixels is too many"),
            "{e}"
        );

        // A JPEG's decoder also holds the file itself; a TIFF's decodes into a copy first.
        let jpeg = encoded(ImageFormat::Jpeg);
        let jp = dir.join("a.jpg");
        fs::write(&jp, &jpeg).unwrap();
        let tp = dir.join("a.tif");
        fs::write(&tp, encoded(ImageFormat::Tiff)).unwrap();
        let n = 48 * 40;
        for (path, want) in [(&jp, n * 15 + jpeg.len() as u64), (&tp, n * 18)] {
            let mut got = 0;
            read_image_checked(path, |h| {
                got = h.decode_bytes;
                Ok(())
            })
            .unwrap();
            assert_eq!(got, want, "{}", path.display());
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn oversized_header_is_rejected_before_decoding() {
        let dir = test_dir("img-big");
        let p = dir.join("huge.png");
        // A valid 20000×1 PNG: small on disk, but over the per-side limit.
        let img: ImageBuffer<Luma<u8>, Vec<u8>> = ImageBuffer::new(20_000, 1);
        img.save(&p).unwrap();
        let e = read_image(&p).unwrap_err();
        assert!(
            matches!(e, IoError::TooLarge { width: 20_000, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("huge.png"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn masks_accept_gray_and_equal_rgb_reject_colour() {
        let dir = test_dir("img-mask");
        let gray = dir.join("g.png");
        let img: ImageBuffer<Luma<u8>, Vec<u8>> =
            ImageBuffer::from_raw(3, 1, vec![0, 128, 255]).unwrap();
        img.save(&gray).unwrap();
        assert_eq!(read_mask(&gray).unwrap(), ([1, 3], vec![0, 128, 255]));

        let rgb = dir.join("rgb.png");
        let img: ImageBuffer<Rgb<u8>, Vec<u8>> =
            ImageBuffer::from_raw(2, 1, vec![7, 7, 7, 2, 2, 2]).unwrap();
        img.save(&rgb).unwrap();
        assert_eq!(read_mask(&rgb).unwrap(), ([1, 2], vec![7, 2]));

        let colour = dir.join("colour.png");
        let img: ImageBuffer<Rgb<u8>, Vec<u8>> =
            ImageBuffer::from_raw(2, 1, vec![7, 7, 7, 2, 9, 2]).unwrap();
        img.save(&colour).unwrap();
        let e = read_mask(&colour).unwrap_err();
        assert!(matches!(e, IoError::BadMask { .. }), "{e:?}");
        assert!(
            e.to_string().contains("colour.png") && e.to_string().contains("x=1"),
            "{e}"
        );

        let g16 = dir.join("g16.png");
        let img: ImageBuffer<Luma<u16>, Vec<u16>> = ImageBuffer::new(2, 2);
        img.save(&g16).unwrap();
        assert!(matches!(read_mask(&g16), Err(IoError::BadMask { .. })));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gray_png_write_roundtrips_atomically() {
        let dir = test_dir("img-write");
        let p = dir.join("out.png");
        let px: Vec<u8> = (0..12).map(|v| v * 20).collect();
        write_gray_png(&p, [3, 4], &px).unwrap();
        assert_eq!(read_mask(&p).unwrap(), ([3, 4], px));
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        let e = write_gray_png(&p, [3, 3], &[0; 12]).unwrap_err();
        assert!(matches!(e, IoError::BadBuffer { .. }), "{e:?}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rgb_png_write_roundtrips_to_8_bits() {
        let dir = test_dir("img-write-rgb");
        let p = dir.join("rgb.png");
        let planar: Vec<f32> = (0..3 * 2 * 5).map(|v| v as f32 / 29.0).collect();
        write_image_png(&p, 3, [2, 5], &planar).unwrap();
        let (c, hw, back) = read_image(&p).unwrap();
        assert_eq!((c, hw), (3, [2, 5]));
        assert!(
            back.iter()
                .zip(&planar)
                .all(|(a, b)| (a - b).abs() <= 0.5 / 255.0 + 1e-6)
        );
        let e = write_image_png(&p, 2, [1, 1], &[0.0, 0.0]).unwrap_err();
        assert!(e.to_string().contains("2 channels"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resize_nearest_keeps_only_existing_values() {
        let src: Vec<u8> = (0..7 * 5).map(|i| [0u8, 3, 9][i % 3]).collect();
        for to in [[3, 2], [16, 11], [7, 5], [1, 1], [40, 3]] {
            let out = resize_nearest(&src, [7, 5], to);
            assert_eq!(out.len(), to[0] * to[1]);
            assert!(out.iter().all(|v| [0, 3, 9].contains(v)), "{to:?}: {out:?}");
        }
        // Exact halving picks one pixel of each 2×2 block.
        let src = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16];
        assert_eq!(resize_nearest(&src, [4, 4], [2, 2]), vec![6, 8, 14, 16]);
    }

    #[test]
    fn bilinear_uses_half_pixel_centres() {
        // 2 → 4 along a row: centres at -0.25, 0.25, 0.75, 1.25 → clamp / interpolate.
        let out = resize_bilinear(&[0.0, 1.0], 1, [1, 2], [1, 4]);
        assert_eq!(out, vec![0.0, 0.25, 0.75, 1.0]);
        // Exact halving averages each 2×2 block, per channel.
        let img = [0.0, 1.0, 2.0, 3.0, 10.0, 10.0, 10.0, 10.0];
        assert_eq!(resize_bilinear(&img, 2, [2, 2], [1, 1]), vec![1.5, 10.0]);
        // A constant image stays constant whatever the size.
        let out = resize_bilinear(&[0.3; 400 * 400], 1, [400, 400], [128, 128]);
        assert!(out.iter().all(|&v| (v - 0.3).abs() < 1e-6));
    }
}
