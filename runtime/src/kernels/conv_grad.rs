//! Backward of the convolution in [`conv`](super::conv): the weight gradient, for the native
//! trainer. Same layout contract as the forward kernel (channels last, weights
//! `[kd][3][3][cin][cout]`, zero padding 1, stride 1 or 2, work split by flattened output rows
//! `z * oh + y`). The input gradient is not here: it is a convolution of the output gradient
//! and needs no kernel of its own shape.
//!
//! `dw[t][ci][co] += Σ_p x[in(p, t)][ci] · dy[p][co]` over the output positions `p` of the
//! given rows. Both kernels *accumulate* into `dw`, so a caller can sum row ranges (or
//! batches) into one buffer, or give each thread its own buffer and add them in a fixed order.
//!
//! Why the fast path looks like the forward one turned inside out: for one tap and one input
//! channel, the gradients of all output channels are a contiguous vector, and they all take
//! the same input scalar times the contiguous `dy` vector of a position. So output channels go
//! in SIMD lanes, the input scalar is broadcast, and a block of (merged `kx`, `ci`) entries ×
//! output channels stays in registers while the kernel walks the positions of a tile of
//! output rows for one `(kz, ky)` tap row; only then is the block added into `dw`. That keeps
//! `dw` traffic to one read-modify-write per tile instead of one per position.
//!
//! Summation order, which a trainer needs for reproducible runs: every `dw` element gets its
//! terms in ascending position order (row, then `x`) within a tile of
//! `TILE_POSITIONS.div_ceil(ow)` rows counted from `rows.start`, summed from zero, and each
//! tile's sum is added into `dw` in tile order. That is a function of the shape and `rows`
//! alone, the same on every path; the paths differ only in whether the multiply-add is fused.
//! (The reference adds each term straight into `dw`, so it rounds differently.)

use core::ops::Range;

#[cfg(target_arch = "x86_64")]
use super::conv::avx::AVX512_MIN_COUT;
#[cfg(target_arch = "aarch64")]
use super::conv::neon::Neon;
use super::conv::{ConvKernel, ConvShape, Isa, Portable, Simd, check};

/// Output positions per tile (at least one whole row): enough that the register block's
/// read-modify-write of `dw` is noise next to the multiply-adds even on the 4×4 levels, few
/// enough that a tile's `dy` stays in L1.
const TILE_POSITIONS: usize = 64;

/// Plain scalar reference: the obvious loops, the twin the fast path is tested against.
///
/// Adds into `dw` (`shape.weights_len()` values) the weight gradient of output rows `rows`
/// (row = `z * oh + y`), where `dy` holds exactly those rows of the output gradient:
/// `dy.len() == rows.len() * ow * cout`. Panics on inconsistent lengths.
pub fn weight_grad_reference(
    shape: &ConvShape,
    x: &[f32],
    dy: &[f32],
    rows: Range<usize>,
    dw: &mut [f32],
) {
    check("weight_grad", shape, x.len(), dw.len(), &rows, dy.len());
    let [d, h, wd] = shape.input;
    let [_, oh, ow] = shape.output();
    let (cin, cout, s) = (shape.cin, shape.cout, shape.stride);
    // Input coordinate of tap k (0..3) for output coordinate o, if inside 0..n.
    let at = |o: usize, k: usize, n: usize| (o * s + k).checked_sub(1).filter(|&i| i < n);
    for (i, r) in rows.enumerate() {
        let (z, y) = (r / oh, r % oh);
        for ox in 0..ow {
            let g = &dy[(i * ow + ox) * cout..][..cout];
            for kz in 0..shape.depth_taps() {
                let zi = if shape.dims == 3 {
                    at(z, kz, d)
                } else {
                    Some(0)
                };
                let Some(zi) = zi else { continue };
                for ky in 0..3 {
                    let Some(yi) = at(y, ky, h) else { continue };
                    for kx in 0..3 {
                        let Some(xi) = at(ox, kx, wd) else { continue };
                        for ci in 0..cin {
                            let xv = x[((zi * h + yi) * wd + xi) * cin + ci];
                            let t = ((kz * 3 + ky) * 3 + kx) * cin + ci;
                            for (dw, &g) in dw[t * cout..][..cout].iter_mut().zip(g) {
                                *dw += xv * g;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The name of the path [`weight_grad`] takes on this CPU: `avx512f`, `avx2+fma`, `neon`, or
/// `portable` (the lanes of the forward [`path`](super::conv::path), [`ConvKernel::best`],
/// always direct: [`ConvKernel::direct`]).
pub fn weight_grad_path() -> &'static str {
    ConvKernel::best().direct().name()
}

/// The fastest path available on this CPU ([`ConvKernel::best`]; same contract as
/// [`weight_grad_reference`], the summation order is in the module docs).
pub fn weight_grad(shape: &ConvShape, x: &[f32], dy: &[f32], rows: Range<usize>, dw: &mut [f32]) {
    ConvKernel::best().weight_grad(shape, x, dy, rows, dw);
}

impl ConvKernel {
    /// The weight gradient on this path (same contract as [`weight_grad_reference`]).
    pub fn weight_grad(
        self,
        shape: &ConvShape,
        x: &[f32],
        dy: &[f32],
        rows: Range<usize>,
        dw: &mut [f32],
    ) {
        match self.0 {
            // SAFETY (both `Avx512` arms): a `ConvKernel` of `Avx512` is only made where
            // AVX-512F, AVX2 and FMA were detected. Narrow outputs go to the AVX2 kernel, as in
            // the forward convolution (`AVX512_MIN_COUT`).
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if shape.cout < AVX512_MIN_COUT => unsafe {
                avx::weight_grad(shape, x, dy, rows, dw)
            },
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => unsafe { avx::weight_grad512(shape, x, dy, rows, dw) },
            // SAFETY: a `ConvKernel` of `Avx2` is only made where AVX2 and FMA were detected.
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => unsafe { avx::weight_grad(shape, x, dy, rows, dw) },
            // SAFETY: NEON is baseline on aarch64. 32 registers: 6 entries × 4 vectors = 24
            // accumulators + 4 `dy` vectors + 1 broadcast.
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => unsafe { weight_grad_with::<Neon, 4, 6, 8>(shape, x, dy, rows, dw) },
            Isa::Portable => weight_grad_portable(shape, x, dy, rows, dw),
        }
    }
}

/// The path for CPUs without a SIMD backend here, and a baseline to compare the others with.
fn weight_grad_portable(
    shape: &ConvShape,
    x: &[f32],
    dy: &[f32],
    rows: Range<usize>,
    dw: &mut [f32],
) {
    // SAFETY: `Portable` needs no CPU feature.
    unsafe { weight_grad_with::<Portable, 2, 6, 8>(shape, x, dy, rows, dw) }
}

#[cfg(target_arch = "x86_64")]
mod avx {
    use super::super::conv::avx::{Avx2, Avx512};
    use super::{ConvShape, Range};

    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn weight_grad(
        shape: &ConvShape,
        x: &[f32],
        dy: &[f32],
        rows: Range<usize>,
        dw: &mut [f32],
    ) {
        // SAFETY: the features `Avx2` needs are enabled on this function (caller's contract).
        // 6 entries × 16 channels = 12 accumulators + 2 `dy` vectors + 1 broadcast (and the
        // narrow block 12 + 1 + 1): at most 15 of the 16 ymm registers.
        unsafe { super::weight_grad_with::<Avx2, 2, 6, 12>(shape, x, dy, rows, dw) }
    }

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn weight_grad512(
        shape: &ConvShape,
        x: &[f32],
        dy: &[f32],
        rows: Range<usize>,
        dw: &mut [f32],
    ) {
        // SAFETY: the features `Avx512` needs are enabled on this function (caller's
        // contract). 12 entries × 32 channels = 24 accumulators + 2 `dy` vectors + 1 broadcast
        // (and the narrow block 24 + 1 + 1): at most 27 of the 32 zmm registers.
        unsafe { super::weight_grad_with::<Avx512, 2, 12, 24>(shape, x, dy, rows, dw) }
    }
}

/// What the register block needs: one `(kz, ky)` tap row over the rows of one tile.
struct Geo<'t> {
    x: *const f32,
    dy: *const f32,
    dw: *mut f32,
    /// The tile's rows that see this tap row inside the input: (input row offset in `x`,
    /// row offset in `dy`).
    rows: &'t [(usize, usize)],
    /// Offset of this tap row's `[3][cin][cout]` in `dw`.
    wo: usize,
    cin: usize,
    cout: usize,
    stride: usize,
    /// Input width.
    wd: usize,
    ow: usize,
    /// Output x in `lo..hi` have all three `kx` taps inside the input.
    lo: usize,
    hi: usize,
}

/// The blocked driver, generic over the SIMD flavour: output channels go in chunks of `NVW`
/// vectors with blocks of `NKW` merged (kx, ci) entries, the rest one vector at a time with
/// blocks of `NKN` (sized so the accumulators, `dy` vectors and a broadcast fill the
/// registers).
///
/// # Safety
/// `S`'s CPU features must be enabled in the (inlining) caller.
#[inline(always)]
unsafe fn weight_grad_with<S: Simd, const NVW: usize, const NKW: usize, const NKN: usize>(
    shape: &ConvShape,
    x: &[f32],
    dy: &[f32],
    rows: Range<usize>,
    dw: &mut [f32],
) {
    check("weight_grad", shape, x.len(), dw.len(), &rows, dy.len());
    // Also covers ow == 0 and cout == 0, which the tiling below could not divide by.
    if dy.is_empty() {
        return;
    }
    let [d, h, wd] = shape.input;
    let [_, oh, ow] = shape.output();
    let (cin, cout, s) = (shape.cin, shape.cout, shape.stride);
    let kn = 3 * cin;
    let lo = 1.min(ow);
    // Output x whose right tap x * s + 1 is still inside: x <= (wd - 2) / s.
    let hi = if wd >= 2 {
        ((wd - 2) / s + 1).min(ow)
    } else {
        0
    }
    .max(lo);
    let in_range = |o: usize, k: usize, n: usize| (o * s + k).checked_sub(1).filter(|&i| i < n);
    let tile = TILE_POSITIONS.div_ceil(ow);
    // SAFETY (for every block below): `check` validated the lengths of `x`, `dy` and `dw`
    // against the shape and `rows`; the row offsets are those of in-range rows, `lo`/`hi` and
    // the edge ranges keep every `x` read inside its row, and the chunks and blocks cover
    // `0..cout` and `0..kn` exactly, the last vector masked.
    let one = unsafe { S::splat(&1.0) };
    let mut t0 = rows.start;
    while t0 < rows.end {
        let t1 = (t0 + tile).min(rows.end);
        for kz in 0..shape.depth_taps() {
            for ky in 0..3 {
                // Rows outside the input in z or y contribute nothing: leave them out.
                let mut offs = [(0usize, 0usize); TILE_POSITIONS];
                let mut n = 0;
                for r in t0..t1 {
                    let (z, y) = (r / oh, r % oh);
                    let zi = if shape.dims == 3 {
                        in_range(z, kz, d)
                    } else {
                        Some(0)
                    };
                    let (Some(zi), Some(yi)) = (zi, in_range(y, ky, h)) else {
                        continue;
                    };
                    offs[n] = ((zi * h + yi) * wd * cin, (r - rows.start) * ow * cout);
                    n += 1;
                }
                if n == 0 {
                    continue;
                }
                let g = Geo {
                    x: x.as_ptr(),
                    dy: dy.as_ptr(),
                    dw: dw.as_mut_ptr(),
                    rows: &offs[..n],
                    wo: (kz * 3 + ky) * kn * cout,
                    cin,
                    cout,
                    stride: s,
                    wd,
                    ow,
                    lo,
                    hi,
                };
                unsafe {
                    let mut co = 0;
                    while cout - co >= NVW * S::N {
                        entries::<S, NVW, NKW, false>(&g, co, S::mask(S::N), one);
                        co += NVW * S::N;
                    }
                    while cout - co >= S::N {
                        entries::<S, 1, NKN, false>(&g, co, S::mask(S::N), one);
                        co += S::N;
                    }
                    if co < cout {
                        entries::<S, 1, NKN, true>(&g, co, S::mask(cout - co), one);
                    }
                }
            }
        }
        t0 = t1;
    }
}

/// All merged (kx, ci) entries of one tap row for output channels `co .. co + NV * N` (the
/// last vector partial under `PART`), in blocks of `NK`, then 4, 2, 1.
///
/// # Safety
/// As for [`weight_grad_with`].
#[inline(always)]
unsafe fn entries<S: Simd, const NV: usize, const NK: usize, const PART: bool>(
    g: &Geo,
    co: usize,
    m: S::M,
    one: S::V,
) {
    let kn = 3 * g.cin;
    let mut k = 0;
    unsafe {
        while k + NK <= kn {
            block::<S, NV, NK, PART>(g, k, co, m, one);
            k += NK;
        }
        while k + 4 <= kn {
            block::<S, NV, 4, PART>(g, k, co, m, one);
            k += 4;
        }
        if k + 2 <= kn {
            block::<S, NV, 2, PART>(g, k, co, m, one);
            k += 2;
        }
        if k < kn {
            block::<S, NV, 1, PART>(g, k, co, m, one);
        }
    }
}

/// `dy` of output channels `co..` at `p`, the last vector partial under `PART`.
///
/// # Safety
/// `p` must be valid for the vectors (or the mask's lanes of the last one).
#[inline(always)]
unsafe fn load_dy<S: Simd, const NV: usize, const PART: bool>(
    p: *const f32,
    m: S::M,
) -> [S::V; NV] {
    let mut v = [unsafe { S::zero() }; NV];
    for (i, v) in v.iter_mut().enumerate() {
        *v = unsafe {
            if PART && i == NV - 1 {
                S::load_part(p.add(i * S::N), m)
            } else {
                S::load(p.add(i * S::N))
            }
        };
    }
    v
}

/// The register block: `NK` merged (kx, ci) entries from `k0` × `NV` vectors of output
/// channels from `co`, summed over every position of the tile's rows in ascending order, then
/// added into `dw`.
///
/// # Safety
/// As for [`weight_grad_with`]; `k0 + NK <= 3 * cin`.
#[inline(always)]
unsafe fn block<S: Simd, const NV: usize, const NK: usize, const PART: bool>(
    g: &Geo,
    k0: usize,
    co: usize,
    m: S::M,
    one: S::V,
) {
    let xstep = g.stride * g.cin;
    let cout = g.cout;
    let mut acc = [[unsafe { S::zero() }; NV]; NK];
    for &(xo, yo) in g.rows {
        let xrow = unsafe { g.x.add(xo) };
        let dyrow = unsafe { g.dy.add(yo + co) };
        for ox in 0..g.lo {
            unsafe { edge::<S, NV, NK, PART>(g, &mut acc, xrow, dyrow, ox, k0, m) };
        }
        for ox in g.lo..g.hi {
            let dv = unsafe { load_dy::<S, NV, PART>(dyrow.add(ox * cout), m) };
            // Input index of (position ox, merged k) is ox * s * cin + k - cin: column
            // ox * s - 1 + kx. ox >= 1 here, so this never goes below the row start.
            let xp = unsafe { xrow.add(ox * xstep + k0 - g.cin) };
            for (j, acc) in acc.iter_mut().enumerate() {
                let b = unsafe { S::splat(xp.add(j)) };
                for (a, &dv) in acc.iter_mut().zip(&dv) {
                    *a = unsafe { S::fma(b, dv, *a) };
                }
            }
        }
        for ox in g.hi..g.ow {
            unsafe { edge::<S, NV, NK, PART>(g, &mut acc, xrow, dyrow, ox, k0, m) };
        }
    }
    for (j, acc) in acc.iter().enumerate() {
        for (v, &a) in acc.iter().enumerate() {
            unsafe {
                let p = g.dw.add(g.wo + (k0 + j) * cout + co + v * S::N);
                let last = PART && v == NV - 1;
                let old = if last { S::load_part(p, m) } else { S::load(p) };
                // a * 1 + old is exactly the rounded sum, so no `add` is needed in `Simd`.
                let new = S::fma(a, one, old);
                if last {
                    S::store_part(p, m, new);
                } else {
                    S::store(p, new);
                }
            }
        }
    }
}

/// A border position: only the entries whose kx tap is inside the input, a contiguous
/// sub-range of the merged (kx, ci) range that may cut through the block. (A function, not a
/// closure: a closure would be compiled without the caller's target features and its
/// intrinsics would become calls.)
///
/// # Safety
/// As for [`block`]; `ox < ow`.
#[inline(always)]
unsafe fn edge<S: Simd, const NV: usize, const NK: usize, const PART: bool>(
    g: &Geo,
    acc: &mut [[S::V; NV]; NK],
    xrow: *const f32,
    dyrow: *const f32,
    ox: usize,
    k0: usize,
    m: S::M,
) {
    let cin = g.cin;
    let lo = if ox == 0 { cin } else { 0 };
    let hi = if ox * g.stride + 1 >= g.wd {
        2 * cin
    } else {
        3 * cin
    };
    let dv = unsafe { load_dy::<S, NV, PART>(dyrow.add(ox * g.cout), m) };
    for (j, acc) in acc.iter_mut().enumerate() {
        let k = k0 + j;
        if k < lo || k >= hi {
            continue;
        }
        // k >= cin when ox == 0, so the index does not underflow.
        let b = unsafe { S::splat(xrow.add(ox * g.stride * cin + k - cin)) };
        for (a, &dv) in acc.iter_mut().zip(&dv) {
            *a = unsafe { S::fma(b, dv, *a) };
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::super::conv::conv_reference;
    use super::*;
    use crate::kernels::test_support::{XorShift, assert_close, shape};
    use std::vec;
    use std::vec::Vec;

    type Kernel = fn(&ConvShape, &[f32], &[f32], Range<usize>, &mut [f32]);
    trait KernelFn: Fn(&ConvShape, &[f32], &[f32], Range<usize>, &mut [f32]) {}
    impl<K: Fn(&ConvShape, &[f32], &[f32], Range<usize>, &mut [f32])> KernelFn for K {}

    fn row_len(s: &ConvShape) -> usize {
        s.output()[2] * s.cout
    }

    /// `kernel` over `rows` into a fresh `dw` that starts at `init`.
    fn run(
        k: impl KernelFn,
        s: &ConvShape,
        x: &[f32],
        dy: &[f32],
        rows: Range<usize>,
        init: &[f32],
    ) -> Vec<f32> {
        let mut dw = init.to_vec();
        let n = row_len(s);
        k(s, x, &dy[rows.start * n..rows.end * n], rows, &mut dw);
        dw
    }

    fn shapes() -> Vec<ConvShape> {
        let mut v = Vec::new();
        let sizes2: &[[usize; 3]] = &[
            [1, 1, 1],
            [1, 1, 2],
            [1, 2, 1],
            [1, 2, 2],
            [1, 3, 3],
            [1, 5, 7],
            [1, 7, 5],
            [1, 8, 8],
            [1, 4, 17],
            [1, 3, 29],
            [1, 40, 1],
        ];
        let sizes3: &[[usize; 3]] = &[
            [1, 1, 1],
            [2, 2, 2],
            [3, 3, 3],
            [4, 5, 7],
            [5, 4, 9],
            [2, 3, 14],
        ];
        let chans = [1, 2, 3, 4, 16, 17];
        for stride in [1, 2] {
            for &cin in &chans {
                for &cout in &chans {
                    for &input in sizes2 {
                        v.push(shape(2, input, cin, cout, stride));
                    }
                    for &input in sizes3 {
                        v.push(shape(3, input, cin, cout, stride));
                    }
                }
            }
        }
        for (cin, cout) in [(5, 12), (2, 24), (3, 32), (16, 35), (7, 48), (17, 51)] {
            v.push(shape(2, [1, 6, 9], cin, cout, 1));
            v.push(shape(3, [3, 4, 5], cin, cout, 2));
        }
        v
    }

    /// Per-element sum of |terms|: the reference on |x|, |dy| from zero.
    fn abs_scale(s: &ConvShape, x: &[f32], dy: &[f32], rows: Range<usize>) -> Vec<f32> {
        let ax: Vec<f32> = x.iter().map(|v| v.abs()).collect();
        let ady: Vec<f32> = dy.iter().map(|v| v.abs()).collect();
        run(
            weight_grad_reference,
            s,
            &ax,
            &ady,
            rows,
            &vec![0.0; s.weights_len()],
        )
    }

    /// Row ranges to try: all, the first, the last, a middle third, and a range longer than a
    /// tile that does not start on a tile boundary.
    fn ranges(s: &ConvShape) -> Vec<Range<usize>> {
        let n = s.rows();
        let mut v = vec![
            0..n,
            0..1.min(n),
            n.saturating_sub(1)..n,
            n / 3..(2 * n / 3 + 1).min(n),
        ];
        if n > 2 {
            v.push(1..n - 1);
        }
        v
    }

    #[test]
    fn reference_by_hand() {
        // 1×3 input, one channel, stride 1: dw at tap kx sums x[ox - 1 + kx] · dy[ox].
        let s = shape(2, [1, 1, 3], 1, 1, 1);
        let x = [1.0, 2.0, 4.0];
        let dy = [1.0, 10.0, 100.0];
        let mut dw = [0.0f32; 9];
        weight_grad_reference(&s, &x, &dy, 0..1, &mut dw);
        // Rows ky = 0, 2 fall outside the height-1 input.
        let want_mid = [10.0 + 200.0, 1.0 + 20.0 + 400.0, 2.0 + 40.0];
        assert_eq!(
            dw,
            [
                0.0,
                0.0,
                0.0,
                want_mid[0],
                want_mid[1],
                want_mid[2],
                0.0,
                0.0,
                0.0
            ]
        );
        // Stride 2 on a 3×3 input of 1..=9, dy = 1: each tap sums the input it sees from the
        // four output positions (centres at the corners), zero-padded.
        let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let s2 = shape(2, [1, 3, 3], 1, 1, 2);
        let mut dw = [0.0f32; 9];
        weight_grad_reference(&s2, &x, &[1.0; 4], 0..2, &mut dw);
        assert_eq!(dw, [5.0, 10.0, 5.0, 10.0, 20.0, 10.0, 5.0, 10.0, 5.0]);
        // cin = 2, cout = 2 on one pixel: only the centre tap, the outer product x ⊗ dy.
        let s3 = shape(2, [1, 1, 1], 2, 2, 1);
        let mut dw = [0.0f32; 36];
        weight_grad_reference(&s3, &[2.0, 3.0], &[5.0, 7.0], 0..1, &mut dw);
        let mut want = [0.0f32; 36];
        want[16..20].copy_from_slice(&[10.0, 14.0, 15.0, 21.0]);
        assert_eq!(dw, want);
        // 3D along depth: x = 1, 2, 3 on a 3×1×1 column, dy = 1, 10, 100; tap kz reads
        // x[z - 1 + kz].
        let s4 = shape(3, [3, 1, 1], 1, 1, 1);
        let mut dw = [0.0f32; 27];
        weight_grad_reference(&s4, &[1.0, 2.0, 3.0], &[1.0, 10.0, 100.0], 0..3, &mut dw);
        let mut want = [0.0f32; 27];
        want[4] = 10.0 + 200.0;
        want[9 + 4] = 1.0 + 20.0 + 300.0;
        want[18 + 4] = 2.0 + 30.0;
        assert_eq!(dw, want);
    }

    /// The reference against the forward kernel's definition: conv is linear in `w`, so
    /// `<conv(x, w), dy> = <w, dW(x, dy)>` for any `w` (in f64, scaled by the sum of |terms|).
    #[test]
    fn reference_is_the_adjoint_of_conv() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for s in shapes() {
            let x = rng.fill(s.input_len());
            let w = rng.fill(s.weights_len());
            let dy = rng.fill(s.output_len());
            let mut y = vec![0.0; s.output_len()];
            conv_reference(&s, &x, &w, false, 0..s.rows(), &mut y);
            let mut dw = vec![0.0; s.weights_len()];
            weight_grad_reference(&s, &x, &dy, 0..s.rows(), &mut dw);
            let lhs: f64 = y.iter().zip(&dy).map(|(&a, &b)| a as f64 * b as f64).sum();
            let rhs: f64 = w.iter().zip(&dw).map(|(&a, &b)| a as f64 * b as f64).sum();
            let scale = abs_scale(&s, &x, &dy, 0..s.rows());
            let mag: f64 = w
                .iter()
                .zip(&scale)
                .map(|(&a, &b)| (a as f64 * b as f64).abs())
                .sum();
            assert!(
                (lhs - rhs).abs() <= 1e-5 * mag.max(1e-20),
                "{s:?}: <conv x w, dy> = {lhs}, <w, dW> = {rhs}"
            );
        }
    }

    /// A kernel against the reference on every shape and row range, accumulating onto a
    /// non-zero `dw`.
    fn check_kernel(k: impl KernelFn, name: &str) {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        for s in shapes() {
            let x = rng.fill(s.input_len());
            let dy = rng.fill(s.output_len());
            let init = rng.fill(s.weights_len());
            for rows in ranges(&s) {
                let what = std::format!("{name} {s:?} rows {rows:?}");
                let want = run(weight_grad_reference, &s, &x, &dy, rows.clone(), &init);
                let got = run(&k, &s, &x, &dy, rows.clone(), &init);
                let mut scale = abs_scale(&s, &x, &dy, rows);
                scale.iter_mut().zip(&init).for_each(|(s, i)| *s += i.abs());
                assert_close(&got, &want, &scale, &what);
            }
        }
    }

    #[test]
    fn weight_grad_matches_reference() {
        check_kernel(weight_grad, "weight_grad");
    }

    #[test]
    fn portable_matches_reference() {
        check_kernel(weight_grad_portable, "portable");
    }

    /// The kernel called `name` against the reference, or a note that this CPU lacks it.
    fn check_named(name: &str) {
        match ConvKernel::named(name) {
            Ok(k) => check_kernel(|s, x, dy, rows, dw| k.weight_grad(s, x, dy, rows, dw), name),
            Err(e) => std::eprintln!("skipped: {e}"),
        }
    }

    #[test]
    fn avx512_matches_reference() {
        check_named("avx512f");
    }

    #[test]
    fn avx2_matches_reference() {
        check_named("avx2+fma");
    }

    /// The driver as NEON runs it (four vectors in the wide chunk), on the portable lanes.
    fn weight_grad_portable_wide(
        s: &ConvShape,
        x: &[f32],
        dy: &[f32],
        rows: Range<usize>,
        dw: &mut [f32],
    ) {
        // SAFETY: `Portable` needs no CPU feature.
        unsafe { weight_grad_with::<Portable, 4, 6, 8>(s, x, dy, rows, dw) }
    }

    #[test]
    fn wide_chunks_match_reference() {
        check_kernel(weight_grad_portable_wide, "portable, 4-vector chunks");
    }

    #[test]
    fn larger_shapes_match_reference() {
        let mut rng = XorShift(7);
        for s in [
            shape(2, [1, 32, 32], 16, 16, 1),
            shape(2, [1, 33, 31], 16, 16, 2),
            shape(2, [1, 20, 40], 3, 16, 1),
            shape(2, [1, 24, 24], 16, 4, 1),
            shape(3, [6, 12, 13], 16, 16, 1),
            shape(3, [7, 12, 12], 16, 16, 2),
            shape(3, [4, 10, 10], 1, 16, 1),
        ] {
            let x = rng.fill(s.input_len());
            let dy = rng.fill(s.output_len());
            let zero = vec![0.0; s.weights_len()];
            let n = s.rows();
            for rows in [0..n, n / 3..2 * n / 3 + 1] {
                let want = run(weight_grad_reference, &s, &x, &dy, rows.clone(), &zero);
                let got = run(weight_grad, &s, &x, &dy, rows.clone(), &zero);
                let scale = abs_scale(&s, &x, &dy, rows.clone());
                assert_close(&got, &want, &scale, &std::format!("{s:?} rows {rows:?}"));
            }
        }
    }

    /// The summation order of the module docs, spelled out in scalars: `fused` says whether
    /// the multiply-add rounds once.
    fn ordered(
        s: &ConvShape,
        x: &[f32],
        dy: &[f32],
        rows: Range<usize>,
        dw: &mut [f32],
        fused: bool,
    ) {
        let [d, h, wd] = s.input;
        let [_, oh, ow] = s.output();
        let (cin, cout, st) = (s.cin, s.cout, s.stride);
        let at = |o: usize, k: usize, n: usize| (o * st + k).checked_sub(1).filter(|&i| i < n);
        let kzs = if s.dims == 3 { 3 } else { 1 };
        let tile = TILE_POSITIONS.div_ceil(ow.max(1));
        let mut t0 = rows.start;
        while t0 < rows.end {
            let t1 = (t0 + tile).min(rows.end);
            for kz in 0..kzs {
                for ky in 0..3 {
                    for kx in 0..3 {
                        for ci in 0..cin {
                            for co in 0..cout {
                                let mut acc = 0.0f32;
                                for r in t0..t1 {
                                    let (z, y) = (r / oh, r % oh);
                                    let zi = if s.dims == 3 { at(z, kz, d) } else { Some(0) };
                                    let (Some(zi), Some(yi)) = (zi, at(y, ky, h)) else {
                                        continue;
                                    };
                                    for ox in 0..ow {
                                        let Some(xi) = at(ox, kx, wd) else { continue };
                                        let a = x[((zi * h + yi) * wd + xi) * cin + ci];
                                        let b = dy[((r - rows.start) * ow + ox) * cout + co];
                                        acc = if fused {
                                            a.mul_add(b, acc)
                                        } else {
                                            a * b + acc
                                        };
                                    }
                                }
                                dw[(((kz * 3 + ky) * 3 + kx) * cin + ci) * cout + co] += acc;
                            }
                        }
                    }
                }
            }
            t0 = t1;
        }
    }

    /// The documented order holds to the bit: the result is a function of shape and rows.
    #[test]
    fn summation_order_is_the_documented_one() {
        let mut rng = XorShift(11);
        let fused = weight_grad_path() != "portable";
        let cases = [
            shape(2, [1, 5, 7], 3, 17, 1),
            shape(2, [1, 9, 3], 16, 2, 2),
            shape(2, [1, 70, 1], 1, 4, 1),
            shape(3, [4, 5, 7], 16, 16, 1),
            shape(3, [5, 6, 3], 2, 3, 2),
            shape(2, [1, 6, 9], 17, 51, 1),
        ];
        for s in cases {
            let x = rng.fill(s.input_len());
            let dy = rng.fill(s.output_len());
            let init = rng.fill(s.weights_len());
            for rows in ranges(&s) {
                let n = row_len(&s);
                let what = std::format!("{s:?} rows {rows:?}");
                let dyr = &dy[rows.start * n..rows.end * n];
                for (k, f, name) in [
                    (weight_grad as Kernel, fused, "weight_grad"),
                    (weight_grad_portable as Kernel, false, "portable"),
                    (weight_grad_portable_wide as Kernel, false, "portable wide"),
                ] {
                    let mut want = init.clone();
                    ordered(&s, &x, dyr, rows.clone(), &mut want, f);
                    let got = run(k, &s, &x, &dy, rows.clone(), &init);
                    assert_eq!(got, want, "{name} {what}");
                }
                // Every path this CPU runs, so the fused ones agree with each other to the bit.
                for k in ConvKernel::available() {
                    let mut want = init.clone();
                    ordered(&s, &x, dyr, rows.clone(), &mut want, k.0 != Isa::Portable);
                    let got = run(
                        |s, x, dy, rows, dw| k.weight_grad(s, x, dy, rows, dw),
                        &s,
                        &x,
                        &dy,
                        rows.clone(),
                        &init,
                    );
                    assert_eq!(got, want, "{} {what}", k.name());
                }
            }
        }
    }

    #[test]
    fn accumulates_rather_than_overwrites() {
        let mut rng = XorShift(3);
        let s = shape(3, [3, 4, 5], 3, 16, 1);
        let x = rng.fill(s.input_len());
        let dy = rng.fill(s.output_len());
        let n = s.rows();
        let zero = vec![0.0; s.weights_len()];
        let scale = abs_scale(&s, &x, &dy, 0..n);
        for k in [
            weight_grad as Kernel,
            weight_grad_portable,
            weight_grad_reference,
        ] {
            // Onto a constant: the gradient shifted by it.
            let fresh = run(k, &s, &x, &dy, 0..n, &zero);
            let shifted = run(k, &s, &x, &dy, 0..n, &vec![2.5; s.weights_len()]);
            let want: Vec<f32> = fresh.iter().map(|v| v + 2.5).collect();
            let sc: Vec<f32> = scale.iter().map(|v| v + 2.5).collect();
            assert_close(&shifted, &want, &sc, "onto a constant");
            // Two row ranges into one buffer: the whole gradient.
            let mut dw = zero.clone();
            let m = n / 2;
            let r = row_len(&s);
            k(&s, &x, &dy[..m * r], 0..m, &mut dw);
            k(&s, &x, &dy[m * r..], m..n, &mut dw);
            assert_close(&dw, &fresh, &scale, "split rows");
        }
    }

    #[test]
    fn empty_row_range_is_a_no_op() {
        let s = shape(2, [1, 4, 4], 2, 3, 1);
        let x = [1.0; 32];
        let mut dw = [0.5; 54];
        weight_grad(&s, &x, &[], 2..2, &mut dw);
        weight_grad_reference(&s, &x, &[], 4..4, &mut dw);
        assert!(dw.iter().all(|&v| v == 0.5));
    }

    #[test]
    fn path_is_named() {
        assert!(["avx512f", "avx2+fma", "neon", "portable"].contains(&weight_grad_path()));
        assert_eq!(
            weight_grad_path(),
            super::super::conv::path().trim_end_matches("-winograd")
        );
    }

    #[test]
    #[should_panic(expected = "weight_grad: output length")]
    fn wrong_dy_length_panics() {
        let s = shape(2, [1, 4, 4], 2, 3, 1);
        weight_grad(&s, &[0.0; 32], &[0.0; 23], 0..2, &mut [0.0; 54]);
    }

    #[test]
    #[should_panic(expected = "weight_grad: weights length")]
    fn wrong_dw_length_panics() {
        let s = shape(2, [1, 4, 4], 2, 3, 1);
        weight_grad(&s, &[0.0; 32], &[0.0; 24], 0..2, &mut [0.0; 53]);
    }
}
