//! Paper-style overlays: predicted and true class contours drawn over the input image, as PNG.
//!
//! Conventions:
//!
//! * The image is upscaled with nearest-neighbour sampling by [`upscale_factor`]: ×3 when its
//!   larger side is at most 128 pixels (a 112×112 image gives 336×336), ×2 up to 256, ×1 beyond.
//!   Label maps are upscaled the same way and contours are traced at the upscaled resolution, so
//!   they are one output pixel thin.
//! * Contours are the [`boundary`] of each foreground class (index ≥ 1; background is not
//!   drawn), with the metrics' conventions: face connectivity, image edge counts as outside.
//! * Prediction: a solid contour in a fixed per-class colour ([`class_colour`]: red, green, blue,
//!   orange, purple, cyan, magenta, then repeating).
//! * Ground truth: a dashed contour in [`TRUTH_COLOUR`] (pure yellow), drawn on top of the
//!   prediction. Where both contours coincide the line alternates yellow and the class colour.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::metrics::boundary;

/// Colour of the (dashed) ground-truth contour: pure yellow.
pub const TRUTH_COLOUR: [u8; 3] = [255, 255, 0];

/// Length in output pixels of each dash and each gap of the truth contour.
const DASH: usize = 4;

/// Prediction colours of foreground classes 1, 2, 3, ...; none is yellow.
const PALETTE: [[u8; 3]; 7] = [
    [230, 25, 75],  // red
    [60, 180, 75],  // green
    [0, 130, 200],  // blue
    [245, 130, 48], // orange
    [145, 30, 180], // purple
    [70, 240, 240], // cyan
    [240, 50, 230], // magenta
];

/// Colour of the predicted contour of foreground class `class` (≥ 1); the palette repeats after
/// seven classes. Class 0 (background) is never drawn but maps to the last colour.
pub fn class_colour(class: usize) -> [u8; 3] {
    PALETTE[(class + PALETTE.len() - 1) % PALETTE.len()]
}

/// The 8-bit sample an overlay shows for an image value in `[0, 1]` (clamped; NaN reads as 0).
pub fn to_8bit(value: f32) -> u8 {
    if value.is_nan() {
        0
    } else {
        (value.clamp(0.0, 1.0) * 255.0).round() as u8
    }
}

/// Nearest-neighbour upscale factor of an `[H, W]` image: 3 when `max(H, W) <= 128`, 2 when
/// `<= 256`, otherwise 1.
pub fn upscale_factor(hw: [usize; 2]) -> usize {
    match hw[0].max(hw[1]) {
        0..=128 => 3,
        129..=256 => 2,
        _ => 1,
    }
}

/// Why an overlay could not be written. Every message names the output file.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// `channels` is neither 1 nor 3.
    #[error("overlay {}: image has {channels} channels, expected 1 (gray) or 3 (RGB)", .path.display())]
    Channels {
        /// Output file.
        path: PathBuf,
        /// The channel count given.
        channels: usize,
    },
    /// An empty image, or one too large for a PNG.
    #[error("overlay {}: image size {hw:?} is empty or too large", .path.display())]
    Size {
        /// Output file.
        path: PathBuf,
        /// The `[H, W]` given.
        hw: [usize; 2],
    },
    /// The image or a label map does not have the length that the size asks for.
    #[error("overlay {}: {what} has {actual} values but {expected} were expected for size {hw:?}", .path.display())]
    Length {
        /// Output file.
        path: PathBuf,
        /// `"image"`, `"prediction"` or `"truth"`.
        what: &'static str,
        /// Its length.
        actual: usize,
        /// The expected length.
        expected: usize,
        /// The `[H, W]` given.
        hw: [usize; 2],
    },
    /// A label value `>= classes`.
    #[error("overlay {}: {what} pixel {index} has class {value} but only {classes} classes exist", .path.display())]
    ClassOutOfRange {
        /// Output file.
        path: PathBuf,
        /// `"prediction"` or `"truth"`.
        what: &'static str,
        /// Flat index of the first offending pixel.
        index: usize,
        /// Its value.
        value: u8,
        /// The number of classes.
        classes: usize,
    },
    /// PNG encoding failed.
    #[error("overlay {}: cannot encode PNG: {cause}", .path.display())]
    Encode {
        /// Output file.
        path: PathBuf,
        /// The encoder's error (in the message, so not a `source()`: printed once).
        cause: image::ImageError,
    },
    /// Creating, writing, syncing or renaming the temporary file failed.
    #[error("overlay {}: {action} {}: {cause}", .path.display(), .file.display())]
    Io {
        /// Output file.
        path: PathBuf,
        /// What failed, e.g. `"cannot create"`.
        action: &'static str,
        /// The file acted on (the temporary file).
        file: PathBuf,
        /// The I/O error (in the message, so not a `source()`: printed once).
        cause: std::io::Error,
    },
}

/// Draws predicted (solid, per-class colour) and true (dashed, yellow) class contours over a gray
/// or RGB image and writes it as a PNG at `path`, like a paper figure.
///
/// * `image`: `[C, H, W]` row-major 8-bit samples ([`to_8bit`] of `[0, 1]` values), `C =
///   channels` is 1 (gray, replicated to RGB) or 3. 8-bit, because the overlay of a full-size
///   photograph is drawn while its floats, four times the size, would otherwise still be held.
/// * `hw`: `[H, W]`; `pred`, and `truth` when there is one, `H * W` labels in `0..classes`.
///
/// The output is upscaled by [`upscale_factor`]`(hw)` (×3 for a 112×112 input). Only foreground
/// classes (≥ 1) are drawn. The file is written atomically ([`msnet::fsutil::write_atomic`]), so `path`
/// is either the old file or the complete new one.
///
/// # Errors
/// [`OverlayError`] naming `path`: bad channel count, empty/too-large size, length mismatches,
/// labels out of range, encoding or I/O failures.
pub fn write_overlay(
    path: &Path,
    image: &[u8],
    channels: usize,
    hw: [usize; 2],
    pred: &[u8],
    truth: Option<&[u8]>,
    classes: usize,
) -> Result<(), OverlayError> {
    let rgb = render_overlay(path, image, channels, hw, pred, truth, classes)?;
    // Encoded straight into the file: a full-size photograph's PNG is not held in memory too.
    let mut failed = None;
    let written = msnet::fsutil::write_atomic_with(path, |file| {
        let png = image::codecs::png::PngEncoder::new(std::io::BufWriter::new(file));
        rgb.write_with_encoder(png).map_err(|e| match e {
            image::ImageError::IoError(e) => e,
            e => {
                failed = Some(e);
                std::io::Error::other("cannot encode")
            }
        })
    });
    if let Some(cause) = failed {
        return Err(OverlayError::Encode {
            path: path.to_owned(),
            cause,
        });
    }
    written.map_err(|e| OverlayError::Io {
        path: path.to_owned(),
        action: e.action,
        file: e.path,
        cause: e.source,
    })
}

/// Builds the upscaled overlay picture in memory (see [`write_overlay`]).
///
/// # Errors
/// As [`write_overlay`], except the encoding and I/O errors; `path` only names the figure.
pub fn render_overlay(
    path: &Path,
    image: &[u8],
    channels: usize,
    hw: [usize; 2],
    pred: &[u8],
    truth: Option<&[u8]>,
    classes: usize,
) -> Result<image::RgbImage, OverlayError> {
    let [h, w] = hw;
    let size_err = || OverlayError::Size {
        path: path.to_owned(),
        hw,
    };
    if channels != 1 && channels != 3 {
        return Err(OverlayError::Channels {
            path: path.to_owned(),
            channels,
        });
    }
    let scale = upscale_factor(hw);
    let n = h.checked_mul(w).filter(|&n| n > 0).ok_or_else(size_err)?;
    let (h2, w2) = (h * scale, w * scale); // cannot overflow: n * 9 fits below
    let n2 = n.checked_mul(scale * scale * 3).ok_or_else(size_err)?;
    let (Ok(w2u), Ok(h2u)) = (u32::try_from(w2), u32::try_from(h2)) else {
        return Err(size_err());
    };
    let check_len = |what: &'static str, actual: usize, expected: usize| {
        if actual == expected {
            Ok(())
        } else {
            Err(OverlayError::Length {
                path: path.to_owned(),
                what,
                actual,
                expected,
                hw,
            })
        }
    };
    check_len("image", image.len(), n * channels)?;
    check_len("prediction", pred.len(), n)?;
    if let Some(truth) = truth {
        check_len("truth", truth.len(), n)?;
    }
    let maps = std::iter::once(("prediction", pred)).chain(truth.map(|t| ("truth", t)));
    for (what, labels) in maps {
        if let Some((index, &value)) = labels
            .iter()
            .enumerate()
            .find(|&(_, &v)| usize::from(v) >= classes)
        {
            return Err(OverlayError::ClassOutOfRange {
                path: path.to_owned(),
                what,
                index,
                value,
                classes,
            });
        }
    }

    // Source pixel of every output pixel (nearest neighbour).
    let src = |i2: usize| (i2 / w2 / scale) * w + (i2 % w2) / scale;
    let mut buf = Vec::with_capacity(n2);
    for i2 in 0..h2 * w2 {
        let i = src(i2);
        for c in 0..3 {
            let channel = if channels == 1 { 0 } else { c };
            buf.push(image[channel * n + i]);
        }
    }
    // A large image is not upscaled: its label maps are used as they are, not copied.
    fn at_scale<'a>(labels: &'a [u8], scale: usize, src: impl Fn(usize) -> usize) -> Cow<'a, [u8]> {
        if scale == 1 {
            Cow::Borrowed(labels)
        } else {
            Cow::Owned(
                (0..labels.len() * scale * scale)
                    .map(|i2| labels[src(i2)])
                    .collect(),
            )
        }
    }
    let pred_up = at_scale(pred, scale, src);
    let truth_up = truth.map(|t| at_scale(t, scale, src));
    let shape = [1, h2, w2];
    let mut paint = |labels: &[u8], class: u8, colour: [u8; 3], dashed: bool| {
        let mask: Vec<bool> = labels.iter().map(|&v| v == class).collect();
        for (i2, on) in boundary(&mask, shape).into_iter().enumerate() {
            let (y, x) = (i2 / w2, i2 % w2);
            if on && (!dashed || ((x + y) / DASH).is_multiple_of(2)) {
                buf[3 * i2..3 * i2 + 3].copy_from_slice(&colour);
            }
        }
    };
    // Labels are u8, so classes above 255 cannot occur in the maps.
    let drawn = 1..=u8::try_from(classes.saturating_sub(1)).unwrap_or(u8::MAX);
    for class in drawn.clone() {
        paint(&pred_up, class, class_colour(usize::from(class)), false);
    }
    if let Some(truth_up) = &truth_up {
        for class in drawn {
            paint(truth_up, class, TRUTH_COLOUR, true);
        }
    }
    image::RgbImage::from_raw(w2u, h2u, buf).ok_or_else(size_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("msnet-overlay-{}-{name}", std::process::id()))
    }

    /// A 20x30 test case: a gray ramp, truth class 1 box and class 2 box, prediction shifted.
    fn case() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
        let (h, w) = (20, 30);
        let image: Vec<u8> = (0..h * w)
            .map(|i| to_8bit((i % w) as f32 / w as f32 * 0.8))
            .collect();
        let label = |dx: usize| -> Vec<u8> {
            (0..h * w)
                .map(|i| {
                    let (y, x) = (i / w, i % w);
                    if (4..12).contains(&y) && (3 + dx..12 + dx).contains(&x) {
                        1
                    } else if (8..16).contains(&y) && (16..26).contains(&x) {
                        2
                    } else {
                        0
                    }
                })
                .collect()
        };
        (image, label(2), label(0))
    }

    #[test]
    fn overlay_writes_upscaled_png_with_truth_and_prediction_colours() {
        let (image, pred, truth) = case();
        let path = temp_path("gray.png");
        write_overlay(&path, &image, 1, [20, 30], &pred, Some(&truth), 3).expect("overlay written");
        let png = image::open(&path).expect("PNG readable").to_rgb8();
        assert_eq!(upscale_factor([20, 30]), 3);
        assert_eq!(png.dimensions(), (90, 60));
        let has = |colour: [u8; 3]| png.pixels().any(|p| p.0 == colour);
        assert!(has(TRUTH_COLOUR), "no truth contour");
        assert!(has(class_colour(1)), "no class-1 prediction contour");
        assert!(has(class_colour(2)), "no class-2 prediction contour");
        // Background far from any contour keeps the (gray) image value.
        let p = png.get_pixel(0, 59).0;
        assert_eq!((p[0], p[1], p[2]), (0, 0, 0));
        std::fs::remove_file(&path).expect("cleanup");
    }

    #[test]
    fn overlay_of_rgb_112x112_is_336x336() {
        let n = 112 * 112;
        let mut image = vec![0u8; 3 * n];
        image[..n].fill(255); // red channel
        let mut truth = vec![0u8; n];
        truth[50 * 112 + 40..50 * 112 + 70].fill(1);
        let path = temp_path("rgb.png");
        write_overlay(&path, &image, 3, [112, 112], &truth, Some(&truth), 2).expect("written");
        let png = image::open(&path).expect("PNG readable").to_rgb8();
        assert_eq!(png.dimensions(), (336, 336));
        assert_eq!(png.get_pixel(0, 0).0, [255, 0, 0]);
        assert!(png.pixels().any(|p| p.0 == TRUTH_COLOUR));
        std::fs::remove_file(&path).expect("cleanup");
    }

    #[test]
    fn a_large_overlay_keeps_8bit_pixels_and_draws_no_truth_when_there_is_none() {
        let (h, w) = (260, 300);
        assert_eq!(upscale_factor([h, w]), 1);
        let image: Vec<u8> = (0..h * w).map(|i| (i % 251) as u8).collect();
        let mut pred = vec![0u8; h * w];
        for y in 100..150 {
            pred[y * w + 80..y * w + 200].fill(1);
        }
        let rgb = render_overlay(Path::new("large.png"), &image, 1, [h, w], &pred, None, 2)
            .expect("rendered");
        assert_eq!(rgb.dimensions(), (300, 260));
        // Away from the contour every sample is the image's own, unchanged.
        assert_eq!(rgb.get_pixel(7, 3).0, [image[3 * w + 7]; 3]);
        assert_eq!(rgb.get_pixel(120, 120).0, [image[120 * w + 120]; 3]);
        assert_eq!(rgb.get_pixel(80, 100).0, class_colour(1));
        assert!(!rgb.pixels().any(|p| p.0 == TRUTH_COLOUR));
        assert_eq!(
            [to_8bit(f32::NAN), to_8bit(-1.0), to_8bit(0.5), to_8bit(2.0)],
            [0, 0, 128, 255]
        );
    }

    #[test]
    fn overlay_rejects_bad_input_naming_the_file() {
        let (image, pred, truth) = case();
        let path = temp_path("bad.png");
        let err = write_overlay(&path, &image, 2, [20, 30], &pred, Some(&truth), 3).unwrap_err();
        assert!(err.to_string().contains("bad.png"), "{err}");
        let err =
            write_overlay(&path, &image, 1, [20, 30], &pred[1..], Some(&truth), 3).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("prediction") && msg.contains("599"), "{msg}");
        let err = write_overlay(&path, &image, 1, [20, 30], &pred, Some(&truth), 2).unwrap_err();
        assert!(err.to_string().contains("class 2"), "{err}");
        assert!(write_overlay(&path, &[], 1, [0, 30], &[], None, 3).is_err());
        let missing_dir = temp_path("no-such-dir").join("x.png");
        let err =
            write_overlay(&missing_dir, &image, 1, [20, 30], &pred, Some(&truth), 3).unwrap_err();
        assert!(err.to_string().contains("x.png"), "{err}");
        assert!(!path.exists());
    }
}
