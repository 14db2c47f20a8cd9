//! From a decoded image to the model's input: match the model's channels (gray replicated to
//! RGB, RGB averaged to gray), reject non-finite pixels, bilinear resize to the plan's size.
//! The normalisation is not here: it is the plan's first op.

use std::path::Path;

use anyhow::{Result, bail};
use msnet::io::{decode_image, resize_bilinear};

/// The image `planar` (`[channels, H, W]` at `hw`, values in [0, 1]) as the model's input:
/// `[want, size[0], size[1]]`. `path` labels errors.
pub fn model_input(
    path: &Path,
    channels: usize,
    hw: [usize; 2],
    planar: &[f32],
    want: usize,
    size: [usize; 2],
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
    let matched: Vec<f32> = match (channels, want) {
        (c, w) if c == w => planar.to_vec(),
        (1, 3) => planar.repeat(3),
        (3, 1) => (0..pixels)
            .map(|p| (planar[p] + planar[pixels + p] + planar[2 * pixels + p]) / 3.0)
            .collect(),
        (c, w) => bail!("{}: {c} channels, the model takes {w}", path.display()),
    };
    if let Some(i) = matched.iter().position(|v| !v.is_finite()) {
        bail!("{}: pixel value {i} is NaN or infinite", path.display());
    }
    Ok(resize_bilinear(&matched, want, hw, size))
}

/// Decodes image bytes (PNG, JPEG, BMP, TIFF) into the model's input, as `segment` does with a
/// file: `(model input, the image's own [h, w])`.
pub fn decode_model_input(
    name: &Path,
    bytes: &[u8],
    want: usize,
    size: [usize; 2],
) -> Result<(Vec<f32>, [usize; 2])> {
    let (channels, hw, planar) = decode_image(name, bytes)?;
    Ok((model_input(name, channels, hw, &planar, want, size)?, hw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_are_matched_and_sizes_checked() {
        let p = Path::new("x.png");
        // 1×2 gray to 3 channels at 2×2: replicated, then resized.
        let rgb = model_input(p, 1, [1, 2], &[0.0, 1.0], 3, [2, 2]).unwrap();
        assert_eq!(rgb.len(), 12);
        assert_eq!(&rgb[..4], &rgb[4..8]);
        // RGB to gray averages.
        let gray = model_input(p, 3, [1, 1], &[0.3, 0.6, 0.9], 1, [1, 1]).unwrap();
        assert!((gray[0] - 0.6).abs() < 1e-6);
        let e = model_input(p, 2, [1, 1], &[0.0, 0.0], 3, [1, 1]).unwrap_err();
        assert!(e.to_string().contains("2 channels"), "{e}");
        let e = model_input(p, 1, [2, 2], &[0.0; 3], 1, [1, 1]).unwrap_err();
        assert!(e.to_string().contains("3 values"), "{e}");
        let e = model_input(p, 1, [1, 1], &[f32::NAN], 1, [1, 1]).unwrap_err();
        assert!(e.to_string().contains("NaN"), "{e}");
    }

    #[test]
    fn garbage_bytes_are_an_error_naming_the_source() {
        let e = decode_model_input(
            Path::new("camera-frame"),
            b"\x89PNG\r\n\x1a\nnope",
            3,
            [8, 8],
        )
        .unwrap_err();
        assert!(e.to_string().contains("camera-frame"), "{e}");
    }
}
