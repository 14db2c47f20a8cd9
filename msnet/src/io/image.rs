//! 2D image I/O and resizing.
//!
//! Conventions:
//! - images are returned **planar, channel-first**: `[C, H, W]` `f32` in `[0, 1]`; 8-bit samples
//!   are divided by 255, 16-bit by 65535, float TIFF samples are clamped to `[0, 1]` (NaN → 0);
//!   gray gives `C = 1`, colour gives `C = 3`; alpha is dropped (not composited);
//! - masks are `[H, W]` `u8`, taken verbatim (no scaling) from 8-bit gray files, or from RGB(A)
//!   files whose three colour channels are equal (palette PNGs decode that way);
//! - sizes are `[height, width]`.
//!
//! The image header is checked against [`MAX_IMAGE_SIDE`] and [`MAX_IMAGE_PIXELS`] before any
//! pixel is decoded, so a hostile header cannot make a decoder allocate gigabytes.

use std::io::{BufRead, Cursor, Seek};
use std::path::Path;

use ::image::{DynamicImage, ImageDecoder, ImageEncoder, ImageReader, Limits};

use super::{IoError, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE, unreadable, write_atomic};

/// Reads an image file (PNG, JPEG, BMP, TIFF; 8 or 16 bit; gray, gray+alpha, RGB or RGBA).
///
/// Returns `(channels, [h, w], pixels)` with `pixels` planar `[C, H, W]` in `[0, 1]`
/// (see the module docs for the conversion rules).
pub fn read_image(path: &Path) -> Result<(usize, [usize; 2], Vec<f32>), IoError> {
    planar_image(path, decode(path)?)
}

/// [`read_image`] on an image already in memory (from a socket, a camera buffer); `name` only
/// labels errors.
pub fn decode_image(name: &Path, bytes: &[u8]) -> Result<(usize, [usize; 2], Vec<f32>), IoError> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| unreadable(name, e))?;
    planar_image(name, decode_from(name, reader)?)
}

/// The decoded image as `(channels, [h, w], planar pixels)` (see the module docs).
fn planar_image(path: &Path, img: DynamicImage) -> Result<(usize, [usize; 2], Vec<f32>), IoError> {
    let hw = [img.height() as usize, img.width() as usize];
    let planar = match &img {
        DynamicImage::ImageLuma8(b) => planar(b.as_raw(), 1, 1, hw, u8_unit),
        DynamicImage::ImageLumaA8(b) => planar(b.as_raw(), 2, 1, hw, u8_unit),
        DynamicImage::ImageRgb8(b) => planar(b.as_raw(), 3, 3, hw, u8_unit),
        DynamicImage::ImageRgba8(b) => planar(b.as_raw(), 4, 3, hw, u8_unit),
        DynamicImage::ImageLuma16(b) => planar(b.as_raw(), 1, 1, hw, u16_unit),
        DynamicImage::ImageLumaA16(b) => planar(b.as_raw(), 2, 1, hw, u16_unit),
        DynamicImage::ImageRgb16(b) => planar(b.as_raw(), 3, 3, hw, u16_unit),
        DynamicImage::ImageRgba16(b) => planar(b.as_raw(), 4, 3, hw, u16_unit),
        DynamicImage::ImageRgb32F(b) => planar(b.as_raw(), 3, 3, hw, f32_unit),
        DynamicImage::ImageRgba32F(b) => planar(b.as_raw(), 4, 3, hw, f32_unit),
        other => {
            return Err(unreadable(
                path,
                format!("unsupported pixel format {:?}", other.color()),
            ));
        }
    };
    let channels = planar.len() / (hw[0] * hw[1]).max(1);
    Ok((channels, hw, planar))
}

/// Reads a label mask: `([h, w], values)` with the raw 8-bit values, row-major.
///
/// Accepts 8-bit single-channel gray, or 8-bit RGB / RGBA whose three colour channels are equal
/// at every pixel (alpha ignored). Anything else is [`IoError::BadMask`], because silently
/// converting colour or 16-bit masks would invent class values.
pub fn read_mask(path: &Path) -> Result<([usize; 2], Vec<u8>), IoError> {
    let img = decode(path)?;
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

/// Opens and decodes an image file.
fn decode(path: &Path) -> Result<DynamicImage, IoError> {
    let reader = ImageReader::open(path)
        .map_err(|e| unreadable(path, e))?
        // Trust the content over the extension: a PNG saved as `.bmp` still reads.
        .with_guessed_format()
        .map_err(|e| unreadable(path, e))?;
    decode_from(path, reader)
}

/// Decodes an image, checking its announced size against the limits before any pixel.
fn decode_from<R: BufRead + Seek>(
    path: &Path,
    mut reader: ImageReader<R>,
) -> Result<DynamicImage, IoError> {
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
    DynamicImage::from_decoder(decoder).map_err(|e| unreadable(path, e))
}

/// Converts interleaved pixels (`stride` samples per pixel) to planar `[keep, H, W]`, keeping
/// the first `keep` samples of each pixel (so alpha, always last, is dropped).
fn planar<T: Copy>(
    raw: &[T],
    stride: usize,
    keep: usize,
    hw: [usize; 2],
    to_unit: fn(T) -> f32,
) -> Vec<f32> {
    let n = hw[0] * hw[1];
    let mut out = vec![0.0; keep * n];
    for (p, px) in raw.chunks_exact(stride).take(n).enumerate() {
        for (c, &v) in px[..keep].iter().enumerate() {
            out[c * n + p] = to_unit(v);
        }
    }
    out
}

fn u8_unit(v: u8) -> f32 {
    f32::from(v) / 255.0
}

fn u16_unit(v: u16) -> f32 {
    f32::from(v) / 65535.0
}

fn f32_unit(v: f32) -> f32 {
    // `clamp` keeps NaN, so map it explicitly: a NaN pixel must not poison the network input.
    if v.is_nan() { 0.0 } else { v.clamp(0.0, 1.0) }
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
    use crate::io::test_dir;
    use ::image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
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
