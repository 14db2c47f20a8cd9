//! Grid transfer between V-cycle levels on channels-last tensors `[D][H][W][C]`: 2×2(×2)
//! average pooling (restriction of `v`, which keeps it on the simplex) and ×2 linear
//! prolongation (half-pixel centres, edge-clamped). In 2D, D = 1 and depth is left alone.

use core::ops::Range;

/// A channels-last tensor `[D][H][W][C]` on one V-cycle level (D = 1 in 2D).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    /// 2 or 3 spatial axes.
    pub dims: usize,
    /// `[D, H, W]`.
    pub size: [usize; 3],
    pub channels: usize,
}

impl Grid {
    /// The resampling factor of the depth axis: 2 in 3D, 1 (untouched) in 2D.
    fn depth_factor(&self) -> usize {
        if self.dims == 3 { 2 } else { 1 }
    }

    /// Output `[D, H, W]` of [`avg_pool`].
    fn pooled(&self) -> [usize; 3] {
        let [d, h, w] = self.size;
        [d / self.depth_factor(), h / 2, w / 2]
    }

    /// Output `[D, H, W]` of [`prolong`].
    fn prolonged(&self) -> [usize; 3] {
        let [d, h, w] = self.size;
        [d * self.depth_factor(), h * 2, w * 2]
    }

    /// Output rows (`z * H + y`) of [`avg_pool`]: the unit of work splitting.
    pub fn pooled_rows(&self) -> usize {
        let [d, h, _] = self.pooled();
        d * h
    }

    /// Output rows of [`prolong`].
    pub fn prolonged_rows(&self) -> usize {
        let [d, h, _] = self.prolonged();
        d * h
    }
}

/// 2×2(×2) average pooling of `x` (`grid`) into output rows `rows` (row = `z * H/2 + y` of
/// the `[D/2 or 1][H/2][W/2][C]` result); `out` holds exactly those rows.
pub fn avg_pool(x: &[f32], grid: &Grid, rows: Range<usize>, out: &mut [f32]) {
    let [_, h, w] = grid.size;
    let fd = grid.depth_factor();
    let [_, oh, ow] = grid.pooled();
    let weight = 1.0 / (fd * 4) as f32;
    let c = grid.channels;
    for (i, row) in rows.enumerate() {
        let (z, y) = (row / oh, row % oh);
        for xo in 0..ow {
            let o = (i * ow + xo) * c;
            let dst = &mut out[o..o + c];
            dst.fill(0.0);
            for dz in 0..fd {
                for dy in 0..2 {
                    let src_row = ((z * fd + dz) * h + y * 2 + dy) * w;
                    let s = (src_row + xo * 2) * c;
                    for (k, v) in dst.iter_mut().enumerate() {
                        *v += x[s + k] + x[s + c + k];
                    }
                }
            }
            dst.iter_mut().for_each(|v| *v *= weight);
        }
    }
}

/// The two source indices and weights of output index `o` of a ×2 linear prolongation of an
/// axis of length `n` (half-pixel centres, edge-clamped).
#[inline]
fn taps(o: usize, n: usize) -> [(usize, f32); 2] {
    let i = o / 2;
    let neighbour = if o.is_multiple_of(2) {
        i.saturating_sub(1)
    } else {
        (i + 1).min(n - 1)
    };
    [(i, 0.75), (neighbour, 0.25)]
}

/// ×2 linear prolongation of `x` (`grid`) into output rows `rows` (row = `z * 2H + y` of the
/// `[2D or D][2H][2W][C]` result); `out` holds exactly those rows. `out[2i] = ¾x[i] + ¼x[i−1]`,
/// `out[2i+1] = ¾x[i] + ¼x[i+1]` on each resampled axis, indices clamped to the edge.
pub fn prolong(x: &[f32], grid: &Grid, rows: Range<usize>, out: &mut [f32]) {
    let [d, h, w] = grid.size;
    let [_, oh, ow] = grid.prolonged();
    let c = grid.channels;
    let resample_depth = grid.depth_factor() == 2;
    // In 2D the depth "axis" is one plane copied with weight 1.
    let depth_taps = if resample_depth { 2 } else { 1 };
    for (i, row) in rows.enumerate() {
        let (z, y) = (row / oh, row % oh);
        let tz = if resample_depth {
            taps(z, d)
        } else {
            [(z, 1.0), (z, 0.0)]
        };
        let ty = taps(y, h);
        for xo in 0..ow {
            let tx = taps(xo, w);
            let o = (i * ow + xo) * c;
            let dst = &mut out[o..o + c];
            dst.fill(0.0);
            for &(iz, wz) in &tz[..depth_taps] {
                for &(iy, wy) in &ty {
                    for &(ix, wx) in &tx {
                        let wgt = wz * wy * wx;
                        let s = ((iz * h + iy) * w + ix) * c;
                        for (k, v) in dst.iter_mut().enumerate() {
                            *v += wgt * x[s + k];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    #[test]
    fn pool_averages_blocks() {
        // 2D, 2×4, 2 channels: channel k of pixel (y, x) = 10y + x + 100k.
        let x: Vec<f32> = (0..2)
            .flat_map(|y| {
                (0..4).flat_map(move |xx| (0..2).map(move |k| (10 * y + xx + 100 * k) as f32))
            })
            .collect();
        let mut out = [0.0; 4];
        let grid = Grid {
            dims: 2,
            size: [1, 2, 4],
            channels: 2,
        };
        avg_pool(&x, &grid, 0..grid.pooled_rows(), &mut out);
        assert_eq!(out, [5.5, 105.5, 7.5, 107.5]);
    }

    #[test]
    fn prolong_follows_the_formula_in_1d_and_keeps_constants() {
        // A 1×1×3 row, one channel.
        let x = [1.0, 2.0, 4.0];
        let mut out = [0.0; 2 * 6];
        let grid = Grid {
            dims: 2,
            size: [1, 1, 3],
            channels: 1,
        };
        prolong(&x, &grid, 0..grid.prolonged_rows(), &mut out);
        // Rows are identical (height 1 → 2, both clamped to row 0).
        let want = [1.0, 1.25, 1.75, 2.5, 3.5, 4.0];
        assert_eq!(&out[..6], &want);
        assert_eq!(&out[6..], &want);

        let ones = [1.0f32; 2 * 2 * 3 * 2];
        let mut out = [0.0; 4 * 4 * 6 * 2];
        let grid = Grid {
            dims: 3,
            size: [2, 2, 3],
            channels: 2,
        };
        prolong(&ones, &grid, 0..grid.prolonged_rows(), &mut out);
        assert!(out.iter().all(|&v| (v - 1.0).abs() < 1e-6));
    }
}
