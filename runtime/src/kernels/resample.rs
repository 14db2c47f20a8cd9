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
    let [_, _, ow] = grid.prolonged();
    let c = grid.channels;
    for (i, row) in rows.enumerate() {
        let taps = RowTaps::new(grid, row);
        for xo in 0..ow {
            let o = (i * ow + xo) * c;
            let dst = &mut out[o..o + c];
            dst.fill(0.0);
            taps.for_each(xo, |s, wgt| {
                for (k, v) in dst.iter_mut().enumerate() {
                    *v += wgt * x[s + k];
                }
            });
        }
    }
}

/// The coarse cells that one output row of [`prolong`] reads, shared by [`prolong`] and
/// [`prolong_adjoint`] so that the adjoint is the transpose by construction.
struct RowTaps<'g> {
    grid: &'g Grid,
    tz: [(usize, f32); 2],
    ty: [(usize, f32); 2],
    /// In 2D the depth "axis" is one plane copied with weight 1.
    depth_taps: usize,
}

impl<'g> RowTaps<'g> {
    fn new(grid: &'g Grid, row: usize) -> Self {
        let [d, h, _] = grid.size;
        let [_, oh, _] = grid.prolonged();
        let (z, y) = (row / oh, row % oh);
        let resample_depth = grid.depth_factor() == 2;
        Self {
            grid,
            tz: if resample_depth {
                taps(z, d)
            } else {
                [(z, 1.0), (z, 0.0)]
            },
            ty: taps(y, h),
            depth_taps: if resample_depth { 2 } else { 1 },
        }
    }

    /// Calls `f(offset, weight)` for each coarse cell output column `xo` reads: `offset` is
    /// the cell's first channel in the coarse tensor.
    #[inline]
    fn for_each(&self, xo: usize, mut f: impl FnMut(usize, f32)) {
        let [_, h, w] = self.grid.size;
        let tx = taps(xo, w);
        for &(iz, wz) in &self.tz[..self.depth_taps] {
            for &(iy, wy) in &self.ty {
                for &(ix, wx) in &tx {
                    f(((iz * h + iy) * w + ix) * self.grid.channels, wz * wy * wx);
                }
            }
        }
    }
}

/// Adjoint (transpose) of [`avg_pool`] over the whole tensor, for backpropagation: `grid` is
/// the fine grid (the pool's input), `dy` the full pooled-size gradient, and `dx` (full fine
/// size) is overwritten with the gradient w.r.t. the pool's input. Each fine cell gets its
/// block's `dy` times the pool weight; a trailing row, column or plane that the pool floors
/// away gets 0.
pub fn avg_pool_adjoint(dy: &[f32], grid: &Grid, dx: &mut [f32]) {
    let [d, h, w] = grid.size;
    let fd = grid.depth_factor();
    let [od, oh, ow] = grid.pooled();
    let c = grid.channels;
    // Up front: a short `dx` would otherwise be left partly stale, not rejected.
    assert_eq!(dx.len(), d * h * w * c, "avg_pool_adjoint: dx length");
    assert_eq!(dy.len(), od * oh * ow * c, "avg_pool_adjoint: dy length");
    let weight = 1.0 / (fd * 4) as f32;
    // Blocks do not overlap, so every covered cell is written exactly once; the floored
    // remainder is whatever this fill leaves.
    dx.fill(0.0);
    for row in 0..od * oh {
        let (z, y) = (row / oh, row % oh);
        for xo in 0..ow {
            let g = &dy[(row * ow + xo) * c..][..c];
            for dz in 0..fd {
                for ddy in 0..2 {
                    let dst_row = ((z * fd + dz) * h + y * 2 + ddy) * w;
                    let s = (dst_row + xo * 2) * c;
                    for (k, &g) in g.iter().enumerate() {
                        dx[s + k] = weight * g;
                        dx[s + c + k] = weight * g;
                    }
                }
            }
        }
    }
}

/// Adjoint (transpose) of [`prolong`] over the whole tensor, for backpropagation: `grid` is
/// the coarse grid (the prolongation's input), `dy` the full prolonged-size gradient, and `dx`
/// (coarse size) is overwritten with the gradient w.r.t. the prolongation's input.
///
/// Scatters each fine cell's `dy` back along the very taps [`prolong`] read, so it is the
/// exact transpose edge clamping included: at an edge both taps of an axis land on the same
/// coarse index and both weights arrive there (¾ + ¼). The scatter order is fixed (fine cells
/// in row-major order), so the result is deterministic.
pub fn prolong_adjoint(dy: &[f32], grid: &Grid, dx: &mut [f32]) {
    let [d, h, w] = grid.size;
    let [od, oh, ow] = grid.prolonged();
    let c = grid.channels;
    assert_eq!(dx.len(), d * h * w * c, "prolong_adjoint: dx length");
    assert_eq!(dy.len(), od * oh * ow * c, "prolong_adjoint: dy length");
    dx.fill(0.0);
    for row in 0..od * oh {
        let taps = RowTaps::new(grid, row);
        for xo in 0..ow {
            let g = &dy[(row * ow + xo) * c..][..c];
            taps.for_each(xo, |s, wgt| {
                for (v, &g) in dx[s..s + c].iter_mut().zip(g) {
                    *v += wgt * g;
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::kernels::test_support::XorShift;
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

    fn grids() -> Vec<Grid> {
        let mut v = Vec::new();
        for channels in [1, 3, 16] {
            for size in [
                [1, 1, 1],
                [1, 2, 2],
                [1, 4, 6],
                [1, 5, 7],
                [1, 3, 8],
                [1, 1, 5],
            ] {
                v.push(Grid {
                    dims: 2,
                    size,
                    channels,
                });
            }
            for size in [
                [1, 1, 1],
                [2, 2, 2],
                [2, 4, 6],
                [3, 5, 7],
                [5, 2, 3],
                [4, 1, 9],
            ] {
                v.push(Grid {
                    dims: 3,
                    size,
                    channels,
                });
            }
        }
        v
    }

    /// `<A x, y> == <x, Aᵀ y>` in f64, to 1e-5 of the sum of |terms| on the left.
    fn assert_adjoint(ax: &[f32], y: &[f32], x: &[f32], aty: &[f32], what: &str) {
        let dot = |a: &[f32], b: &[f32]| -> f64 {
            a.iter().zip(b).map(|(&a, &b)| a as f64 * b as f64).sum()
        };
        let mag: f64 = ax
            .iter()
            .zip(y)
            .map(|(&a, &b)| (a as f64 * b as f64).abs())
            .sum();
        let (lhs, rhs) = (dot(ax, y), dot(x, aty));
        assert!(
            (lhs - rhs).abs() <= 1e-5 * mag.max(1e-30),
            "{what}: <Ax, y> = {lhs}, <x, Aᵀy> = {rhs}"
        );
    }

    #[test]
    fn avg_pool_adjoint_is_the_transpose() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for grid in grids() {
            let [d, h, w] = grid.pooled();
            let x = rng.fill(grid.size.iter().product::<usize>() * grid.channels);
            let y = rng.fill(d * h * w * grid.channels);
            let mut ax = std::vec![f32::NAN; y.len()];
            avg_pool(&x, &grid, 0..grid.pooled_rows(), &mut ax);
            let mut aty = std::vec![f32::NAN; x.len()];
            avg_pool_adjoint(&y, &grid, &mut aty);
            assert_adjoint(&ax, &y, &x, &aty, &std::format!("{grid:?}"));
        }
    }

    #[test]
    fn prolong_adjoint_is_the_transpose() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for grid in grids() {
            let [d, h, w] = grid.prolonged();
            let x = rng.fill(grid.size.iter().product::<usize>() * grid.channels);
            let y = rng.fill(d * h * w * grid.channels);
            let mut ax = std::vec![f32::NAN; y.len()];
            prolong(&x, &grid, 0..grid.prolonged_rows(), &mut ax);
            let mut aty = std::vec![f32::NAN; x.len()];
            prolong_adjoint(&y, &grid, &mut aty);
            assert_adjoint(&ax, &y, &x, &aty, &std::format!("{grid:?}"));
        }
    }

    #[test]
    fn adjoints_by_hand() {
        // Pool of a 2×3 fine grid: one block, the trailing column gets nothing.
        let fine = Grid {
            dims: 2,
            size: [1, 2, 3],
            channels: 1,
        };
        let mut dx = [f32::NAN; 6];
        avg_pool_adjoint(&[8.0], &fine, &mut dx);
        assert_eq!(dx, [2.0, 2.0, 0.0, 2.0, 2.0, 0.0]);
        // Prolongation of a 1×3 row (see the forward test): both fine rows clamp to row 0.
        // A unit at fine x = 0 goes back whole to coarse 0 (both taps clamp there); at
        // x = 1 it splits ¾ / ¼.
        let coarse = Grid {
            dims: 2,
            size: [1, 1, 3],
            channels: 1,
        };
        let mut dx = [f32::NAN; 3];
        let mut dy = [0.0; 12];
        dy[0] = 1.0;
        prolong_adjoint(&dy, &coarse, &mut dx);
        assert_eq!(dx, [1.0, 0.0, 0.0]);
        dy[0] = 0.0;
        dy[1] = 1.0;
        prolong_adjoint(&dy, &coarse, &mut dx);
        assert_eq!(dx, [0.75, 0.25, 0.0]);
        // Every fine cell's weights sum to 1, so the adjoint conserves the total.
        prolong_adjoint(&[1.0; 12], &coarse, &mut dx);
        assert_eq!(dx, [4.0, 4.0, 4.0]);
    }
}
