//! From an image file to the model's input: refuse, from its header, an image over the memory
//! budget, decode it, match the model's channels (gray replicated to RGB, RGB averaged to gray),
//! reject non-finite pixels, bilinear resize to the plan's size. The normalisation is not here:
//! it is the plan's first op.

use std::path::Path;

use anyhow::{Result, bail};
use msnet_io::fit::InputFit;
use msnet_io::{ImageHeader, decode_image, read_image_checked};

/// Bytes per image pixel that `segment` holds at the image's own size beside the image's 8-bit
/// copy, while its outputs are written: the label map (1), and, while the overlay is drawn
/// and encoded, its RGB picture (3) and either the contour maps (2) or the PNG encoder's
/// compressed stream, which it holds whole and grows by doubling (up to 3 bytes per pixel for
/// a picture that does not compress, held twice while it grows): 14 measured on noise.
pub const SEGMENT_BYTES_PER_PIXEL: u64 = 15;

/// The default of `--max-image-mib`: the shipped systemd unit caps the service at
/// `MemoryMax=256M`, and the engine (arena, plan, threads) and the binary take the rest.
pub const DEFAULT_MAX_IMAGE_MIB: u64 = 192;

/// The memory one image may take (`--max-image-mib`).
#[derive(clap::Args, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageBudget {
    /// Refuse an image that would need more than this many MiB, judged from its header before
    /// any pixel is decoded.
    ///
    /// The need is the largest of three moments: decoding (the decoder's buffer, the file
    /// itself for JPEG, the image as 32-bit floats: 3 + 12 bytes per pixel for 8-bit RGB),
    /// trading the floats for the 8-bit copy the overlay is drawn on (12 + 3), and writing the
    /// full-size mask and overlay (the 8-bit copy and up to 15 bytes per pixel for a picture
    /// whose PNG does not compress), so an 8-bit RGB image needs at most 18 bytes per pixel:
    /// 12 MP about 206 MiB. The default fits the
    /// shipped systemd unit (MemoryMax=256M) with room for the engine; a refused image fails
    /// alone (in `watch`: moved to failed/), the run goes on.
    #[arg(long, value_name = "MIB", default_value_t = DEFAULT_MAX_IMAGE_MIB)]
    pub max_image_mib: u64,
}

impl ImageBudget {
    /// The bytes `segment` holds at its peak for the image `header` announces.
    pub fn need(header: &ImageHeader) -> u64 {
        let shown = header.pixels() * header.channels as u64;
        header
            .decode_bytes
            .max(header.planar_bytes() + shown)
            .max(shown + header.pixels() * SEGMENT_BYTES_PER_PIXEL)
    }

    /// `Err` with the reason when the image `header` announces is over the budget.
    fn admit(&self, header: &ImageHeader) -> Result<(), String> {
        let need = Self::need(header);
        if need <= self.max_image_mib << 20 {
            return Ok(());
        }
        Err(format!(
            "a {}×{} image needs about {} MiB to decode and segment, over the budget of {} MiB \
             (--max-image-mib)",
            header.hw[1],
            header.hw[0],
            need.div_ceil(1 << 20),
            self.max_image_mib
        ))
    }
}

/// An image read for the model: its own planar pixels (for the overlay) and the model's input.
pub struct ModelImage {
    pub channels: usize,
    /// The image's own `[h, w]`.
    pub hw: [usize; 2],
    /// `[channels, h, w]` in [0, 1].
    pub planar: Vec<f32>,
    /// `[want, size[0], size[1]]`.
    pub input: Vec<f32>,
}

/// An image as its overlay shows it: 8-bit samples ([`msnet_eval::overlay::to_8bit`]), planar
/// `[channels, h, w]`.
pub struct ShownImage {
    pub channels: usize,
    pub hw: [usize; 2],
    pub pixels: Vec<u8>,
}

impl ModelImage {
    /// The image's 8-bit copy for its overlay. It takes the image, so that its floats (four
    /// times the size) are freed before the full-size outputs are made: the peak of
    /// segmenting an image then stays that of decoding it.
    pub fn into_shown(self) -> ShownImage {
        ShownImage {
            channels: self.channels,
            hw: self.hw,
            pixels: self
                .planar
                .iter()
                .map(|&v| msnet_eval::overlay::to_8bit(v))
                .collect(),
        }
    }
}

/// Reads the image at `path` within `budget` and makes the model's input from it
/// ([`model_input`]).
pub fn read_model_image(
    path: &Path,
    budget: &ImageBudget,
    want: usize,
    size: [usize; 2],
    fit: InputFit,
) -> Result<ModelImage> {
    let (channels, hw, planar) = read_image_checked(path, |h| budget.admit(h))?;
    let input = model_input(path, channels, hw, &planar, want, size, fit)?;
    Ok(ModelImage {
        channels,
        hw,
        planar,
        input,
    })
}

/// The image `planar` (`[channels, H, W]` at `hw`, values in [0, 1]) as the model's input:
/// `[want, size[0], size[1]]`, brought to that size by the model's `fit`
/// ([`msnet_io::fit::InputFit::of`] its config). `path` labels errors.
///
/// The image is fitted before its channels are matched: resizing and cropping are linear, so
/// the order does not change the result beyond rounding, and this way no full-size copy of
/// the image is made.
pub fn model_input(
    path: &Path,
    channels: usize,
    hw: [usize; 2],
    planar: &[f32],
    want: usize,
    size: [usize; 2],
    fit: InputFit,
) -> Result<Vec<f32>> {
    let pixels = hw[0] * hw[1];
    if planar.len() != channels * pixels {
        bail!(
            "{}: {} values for {channels} channels of {}×{}",
            path.display(),
            planar.len(),
            hw[1],
            hw[0]
        );
    }
    if channels != want && (channels, want) != (1, 3) && (channels, want) != (3, 1) {
        bail!(
            "{}: {channels} channels, the model takes {want}",
            path.display()
        );
    }
    if let Some(i) = planar.iter().position(|v| !v.is_finite()) {
        bail!("{}: pixel value {i} is NaN or infinite", path.display());
    }
    let resized = fit.image(planar, channels, hw, size);
    let n = size[0] * size[1];
    Ok(match (channels, want) {
        (1, 3) => resized.repeat(3),
        (3, 1) => (0..n)
            .map(|p| (resized[p] + resized[n + p] + resized[2 * n + p]) / 3.0)
            .collect(),
        _ => resized,
    })
}

/// Decodes image bytes (PNG, JPEG, BMP, TIFF) into the model's input, as `segment` does with a
/// file: `(model input, the image's own [h, w])`.
pub fn decode_model_input(
    name: &Path,
    bytes: &[u8],
    want: usize,
    size: [usize; 2],
    fit: InputFit,
) -> Result<(Vec<f32>, [usize; 2])> {
    let (channels, hw, planar) = decode_image(name, bytes)?;
    Ok((
        model_input(name, channels, hw, &planar, want, size, fit)?,
        hw,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: InputFit = InputFit::Resize;

    #[test]
    fn channels_are_matched_and_sizes_checked() {
        let p = Path::new("x.png");
        // 1×2 gray to 3 channels at 2×2: replicated, then resized.
        let rgb = model_input(p, 1, [1, 2], &[0.0, 1.0], 3, [2, 2], R).unwrap();
        assert_eq!(rgb.len(), 12);
        assert_eq!(&rgb[..4], &rgb[4..8]);
        assert_eq!(&rgb[..4], &[0.0, 1.0, 0.0, 1.0]);
        // RGB to gray averages.
        let gray = model_input(p, 3, [1, 1], &[0.3, 0.6, 0.9], 1, [1, 1], R).unwrap();
        assert!((gray[0] - 0.6).abs() < 1e-6);
        let gray =
            model_input(p, 3, [1, 2], &[0.0, 0.6, 0.3, 0.3, 0.6, 0.0], 1, [1, 1], R).unwrap();
        assert!((gray[0] - 0.3).abs() < 1e-6, "{gray:?}");
        let e = model_input(p, 2, [1, 1], &[0.0, 0.0], 3, [1, 1], R).unwrap_err();
        assert!(e.to_string().contains("2 channels"), "{e}");
        let e = model_input(p, 1, [2, 2], &[0.0; 3], 1, [1, 1], R).unwrap_err();
        assert!(e.to_string().contains("3 values"), "{e}");
        let e = model_input(p, 1, [1, 1], &[f32::NAN], 1, [1, 1], R).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
    }

    #[test]
    fn the_budget_covers_the_decode_and_the_full_size_outputs() {
        let rgb8 = ImageHeader {
            hw: [3000, 4000],
            channels: 3,
            decode_bytes: 12_000_000 * 15,
        };
        // Writing the outputs, on the 8-bit copy, outweighs decoding (3 + 12).
        assert_eq!(ImageBudget::need(&rgb8), 12_000_000 * 18);
        let budget = ImageBudget { max_image_mib: 192 };
        let e = budget.admit(&rgb8).unwrap_err();
        assert!(e.contains("4000×3000") && e.contains("206 MiB"), "{e}");
        assert!(e.contains("--max-image-mib"), "{e}");
        assert!(ImageBudget { max_image_mib: 206 }.admit(&rgb8).is_ok());
        // A float TIFF's decode outweighs segmenting it.
        let f32_rgba = ImageHeader {
            decode_bytes: 12_000_000 * (32 + 12),
            ..rgb8
        };
        assert_eq!(ImageBudget::need(&f32_rgba), 12_000_000 * 44);
    }

    #[test]
    fn garbage_bytes_are_an_error_naming_the_source() {
        let e = decode_model_input(
            Path::new("camera-frame"),
            b"\x89PNG\r\n\x1a\nnope",
            3,
            [8, 8],
            R,
        )
        .unwrap_err();
        assert!(e.to_string().contains("camera-frame"), "{e}");
    }
}
