//! Bringing a region to the network's input: bilinear resize of 8-bit interleaved RGB to the
//! plan's size, channels-first f32 in [0, 1] (the plan normalises it itself).

use crate::protocol::Region;

/// The region's pixels or the output buffer do not have the lengths their sizes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SizeMismatch;

/// Resizes `region` to `width × height` into `out`, channels-first `[3][height][width]`, each
/// value `byte / 255`.
///
/// Pixel centres are aligned (`src = (dst + 0.5) · src_len / dst_len − 0.5`, clamped to the
/// image), as OpenCV's `INTER_LINEAR`, PyTorch's `align_corners=False` and `msnet-run`'s
/// host preprocessing do, so a region already at the plan's size is copied exactly and a
/// shrink does not shift the image.
pub fn resize_bilinear(
    region: &Region<'_>,
    width: usize,
    height: usize,
    out: &mut [f32],
) -> Result<(), SizeMismatch> {
    let plane = width.checked_mul(height).ok_or(SizeMismatch)?;
    let pixels_in = region
        .width
        .checked_mul(region.height)
        .and_then(|n| n.checked_mul(3));
    if region.width == 0
        || region.height == 0
        || pixels_in != Some(region.rgb.len())
        || plane.checked_mul(3) != Some(out.len())
    {
        return Err(SizeMismatch);
    }
    let (red, rest) = out.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    // Every index below is inside the buffers whose lengths were checked above: taps are
    // clamped to the region, output indices run over `plane`.
    let rgb = region.rgb;
    for y in 0..height {
        let (y0, y1, fy) = taps(y, height, region.height);
        for x in 0..width {
            let (x0, x1, fx) = taps(x, width, region.width);
            let at = |row: usize, col: usize| 3 * (row * region.width + col);
            let corners = [at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1)];
            let i = y * width + x;
            for (c, channel) in [&mut *red, &mut *green, &mut *blue].into_iter().enumerate() {
                let [p00, p01, p10, p11] = corners.map(|k| f32::from(rgb[k + c]));
                let top = p00 + (p01 - p00) * fx;
                let bottom = p10 + (p11 - p10) * fx;
                channel[i] = (top + (bottom - top) * fy) / 255.0;
            }
        }
    }
    Ok(())
}

/// The two source samples around output position `dst` and the weight of the second.
fn taps(dst: usize, dst_len: usize, src_len: usize) -> (usize, usize, f32) {
    let last = src_len - 1;
    let scale = src_len as f32 / dst_len as f32;
    let src = ((dst as f32 + 0.5) * scale - 0.5).clamp(0.0, last as f32);
    // `src` is in [0, last], so the cast floors it to a valid index.
    let lo = src as usize;
    (lo, (lo + 1).min(last), src - lo as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(width: usize, height: usize, rgb: &[u8]) -> Region<'_> {
        Region { width, height, rgb }
    }

    #[test]
    fn same_size_is_an_exact_copy_to_channels_first() {
        let rgb: std::vec::Vec<u8> = (0..2 * 3 * 3).map(|v| (v * 13) as u8).collect();
        let mut out = [0f32; 18];
        resize_bilinear(&region(3, 2, &rgb), 3, 2, &mut out).unwrap();
        for p in 0..6 {
            for c in 0..3 {
                assert_eq!(out[c * 6 + p], f32::from(rgb[p * 3 + c]) / 255.0);
            }
        }
    }

    #[test]
    fn a_horizontal_ramp_stays_a_ramp_when_doubled() {
        // Columns 0, 100, 200 in every channel; doubled to 6 columns with centres aligned,
        // the samples fall at -0.25 (clamped), 0.25, 0.75, 1.25, 1.75, 2.25 (clamped).
        let rgb: std::vec::Vec<u8> = (0..3).flat_map(|x| [100 * x as u8; 3]).collect();
        let mut out = [0f32; 18];
        resize_bilinear(&region(3, 1, &rgb), 6, 1, &mut out).unwrap();
        let expected = [0.0, 25.0, 75.0, 125.0, 175.0, 200.0].map(|v: f32| v / 255.0);
        for c in 0..3 {
            for (got, want) in out[c * 6..c * 6 + 6].iter().zip(expected) {
                assert!((got - want).abs() < 1e-6, "{got} vs {want}");
            }
        }
    }

    #[test]
    fn a_two_to_one_shrink_averages_pixel_pairs() {
        let rgb = [10, 20, 30, 50, 60, 70, 90, 100, 110, 130, 140, 150];
        let mut out = [0f32; 6];
        resize_bilinear(&region(4, 1, &rgb), 2, 1, &mut out).unwrap();
        let expected = [30.0, 110.0, 40.0, 120.0, 50.0, 130.0].map(|v: f32| v / 255.0);
        for (got, want) in out.iter().zip(expected) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    #[test]
    fn inconsistent_lengths_are_refused() {
        let mut out = [0f32; 12];
        assert_eq!(
            resize_bilinear(&region(2, 2, &[0; 11]), 2, 2, &mut out),
            Err(SizeMismatch)
        );
        assert_eq!(
            resize_bilinear(&region(2, 2, &[0; 12]), 3, 2, &mut out),
            Err(SizeMismatch)
        );
        assert_eq!(
            resize_bilinear(&region(0, 2, &[]), 2, 2, &mut out),
            Err(SizeMismatch)
        );
        assert!(resize_bilinear(&region(2, 2, &[0; 12]), 2, 2, &mut out).is_ok());
    }
}
