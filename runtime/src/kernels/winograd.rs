//! Winograd F(2×2, 3×3) for the 2D, stride-1, 16→16 convolutions: the bulk of MSNet's work
//! (every smoother, and the stride-1 transposed convolutions, which the plan compiler and the
//! native trainer store as convolutions with the flipped kernel, `msnet::weights`).
//!
//! Same contract as [`super::conv::conv_reference`] (layout, zero padding 1, fused ReLU, a
//! range of output rows), for the shapes [`fits`] accepts. Each 2×2 block of outputs comes
//! from a 4×4 input patch `d` and the 3×3 kernel `g` as `Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`:
//! 16 products per input and output channel instead of 36, 2.25× fewer multiply-adds, for
//! the price of the transforms (additions only, and halvings in `G`, which are exact).
//!
//! Layout: output channels in SIMD lanes, as in the direct kernel. The input transform works
//! on input-channel vectors, the per-element products (`M[t][co] = Σ_ci V[t][ci] U[t][ci][co]`)
//! broadcast `V` and share each weight vector across a block of tiles, which is the direct
//! kernel's register blocking with the 16 tile elements as the "taps".
//!
//! Weight transform: done per call, into a 16 KiB stack buffer (`U`, 16 × 16 × 16 floats),
//! rather than once at load. A transform at load would need caller-provided storage of 16/9
//! of every eligible convolution's weights, and a `Program` or plan format change to carry
//! it; per call it is 256 3×3 → 4×4 transforms, vectorised across channel pairs, repeated
//! once per call (per thread task), never per tile. Measured with a scratch program on the
//! development Xeon (AVX-512F, busy machine): a whole call on a one-tile 1×2 input, weight
//! transform, buffer set-up and one tile, takes 0.8 µs, against 0.1 µs direct; at the coarsest
//! grid of a 112×112 frame (7×7) the Winograd call still took 2.7 µs against 3.6 µs direct,
//! and a frame makes 68 such calls at one thread (under 55 µs of a 19 ms frame). Not nothing
//! at 7×7, but less than the products it saves there, so no load-time storage is needed.
//! The stack use is the weight buffer plus a tile buffer of `16 × 12 × 16` floats (12 KiB);
//! only this kernel's callers pay it, and [`super::conv::ConvKernel::best`] does not choose it
//! on the portable path (the Cortex-M build keeps the direct kernel by default).
//!
//! Accuracy: the sums are reassociated (transforms before products), so results differ from
//! the direct kernel by rounding; the tests bound the difference by a multiple of the sum of
//! |terms| (`TOL` in the tests), and every shipped model passes its golden check on it.

use core::ops::Range;

use super::conv::{ConvShape, Simd, check};

/// Channels in and out of the convolutions this kernel takes: MSNet's width.
pub const C: usize = 16;

/// Whether the Winograd kernel takes this convolution: 2D, stride 1, 16 → 16 channels.
/// Everything else (the first and last convolutions, stride 2, 3D) stays on the direct kernel.
pub fn fits(shape: &ConvShape) -> bool {
    shape.dims == 2 && shape.stride == 1 && shape.cin == C && shape.cout == C
}

/// The transformed weights `U[t][ci][co] = (G g Gᵀ)[t]` for the 16 tile elements `t = 4r + c`,
/// with `G = [[1, 0, 0], [½, ½, ½], [½, -½, ½], [0, 0, 1]]`.
fn transform_weights(w: &[f32], u: &mut [f32; 16 * C * C]) {
    // Fixed-size views, so that the loop over channel pairs has no bounds checks and runs on
    // whole vectors: each (ci, co) pair is independent and contiguous across pairs.
    let w: &[f32; 9 * C * C] = w.try_into().expect("winograd: weights length");
    for i in 0..C * C {
        // k[ky][kx]: the 3×3 kernel of this channel pair (w is [3][3][ci][co]).
        let k: [[f32; 3]; 3] =
            core::array::from_fn(|ky| core::array::from_fn(|kx| w[(ky * 3 + kx) * C * C + i]));
        // G k, a 4×3 matrix, then (G k) Gᵀ row by row.
        let gk = |kx: usize| {
            let (a, b, c) = (k[0][kx], k[1][kx], k[2][kx]);
            [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c]
        };
        let cols = [gk(0), gk(1), gk(2)];
        for r in 0..4 {
            let (a, b, c) = (cols[0][r], cols[1][r], cols[2][r]);
            let row = [a, (a + b + c) * 0.5, (a - b + c) * 0.5, c];
            for (cc, v) in row.into_iter().enumerate() {
                u[(r * 4 + cc) * C * C + i] = v;
            }
        }
    }
}

/// The checks of both kernels' contract (buffer lengths, rows, a shape that [`fits`]), then
/// the transformed weights.
fn checked_weights(
    shape: &ConvShape,
    x: &[f32],
    w: &[f32],
    rows: &Range<usize>,
    out: &[f32],
) -> [f32; 16 * C * C] {
    check("winograd", shape, x.len(), w.len(), rows, out.len());
    assert!(fits(shape), "winograd: not a 2D stride-1 16→16 convolution");
    let mut u = [0.0f32; 16 * C * C];
    transform_weights(w, &mut u);
    u
}

/// Plain scalar reference: the Winograd algorithm in obvious loops, one tile and one channel
/// pair at a time, the twin the fast paths are tested against (same contract as
/// [`super::conv::conv_reference`]; panics unless [`fits`]).
pub fn winograd_reference(
    shape: &ConvShape,
    x: &[f32],
    w: &[f32],
    relu: bool,
    rows: Range<usize>,
    out: &mut [f32],
) {
    let u = checked_weights(shape, x, w, &rows, out);
    let [_, h, wd] = shape.input;
    // Bᵀ = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]] and Aᵀ = [[1, 1, 1, 0],
    // [0, 1, -1, -1]], as matrices.
    let bt = [
        [1.0f32, 0.0, -1.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],
        [0.0, -1.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, -1.0],
    ];
    let at = [[1.0f32, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]];
    let px = |y: isize, xx: isize, ci: usize| -> f32 {
        if y < 0 || xx < 0 || y as usize >= h || xx as usize >= wd {
            0.0
        } else {
            x[(y as usize * wd + xx as usize) * C + ci]
        }
    };
    // Tiles start on even rows, whatever the range (see `conv_with`).
    let mut y0 = rows.start & !1;
    while y0 < rows.end {
        for x0 in (0..wd).step_by(2) {
            let mut m = [[[0.0f32; C]; 4]; 4];
            for ci in 0..C {
                let d: [[f32; 4]; 4] = core::array::from_fn(|i| {
                    core::array::from_fn(|j| {
                        px(
                            y0 as isize - 1 + i as isize,
                            x0 as isize - 1 + j as isize,
                            ci,
                        )
                    })
                });
                for r in 0..4 {
                    for c in 0..4 {
                        let mut v = 0.0f32;
                        for i in 0..4 {
                            for j in 0..4 {
                                v += bt[r][i] * d[i][j] * bt[c][j];
                            }
                        }
                        for co in 0..C {
                            m[r][c][co] += v * u[((r * 4 + c) * C + ci) * C + co];
                        }
                    }
                }
            }
            for a in 0..2 {
                for b in 0..2 {
                    let (y, xx) = (y0 + a, x0 + b);
                    if !rows.contains(&y) || xx >= wd {
                        continue;
                    }
                    for co in 0..C {
                        let mut s = 0.0f32;
                        for r in 0..4 {
                            for c in 0..4 {
                                s += at[a][r] * m[r][c][co] * at[b][c];
                            }
                        }
                        let o = &mut out[((y - rows.start) * wd + xx) * C + co];
                        *o = if relu { s.max(0.0) } else { s };
                    }
                }
            }
        }
        y0 += 2;
    }
}

/// Most tiles in a block: sizes the tile buffer (`16 × 12 × 16` floats, 12 KiB).
const MAX_NX: usize = 12;

/// What a block of tiles needs: the input, the transformed weights, the geometry, the buffer.
struct Geo<'t> {
    x: *const f32,
    u: &'t [f32; 16 * C * C],
    h: usize,
    wd: usize,
    /// `[(t * NX + j) * C + c]`: tile element t of tile j, channel c (input, then output).
    buf: *mut f32,
}

/// The fast kernel, generic over the SIMD flavour: row pairs, each as blocks of `NX` tiles
/// (then 4, 2, 1) × `NV` vectors of output channels (`NV * S::N == C`).
///
/// Tiles start on even output rows whatever `rows` is, and a pair with a row outside `rows`
/// is computed whole and stored half (one wasted row at each end of a call at most): so an
/// output's bits do not depend on how the rows were split between threads.
///
/// # Safety
/// `S`'s CPU features must be enabled in the (inlining) caller.
#[inline(always)]
pub(super) unsafe fn conv_with<S: Simd, const NV: usize, const NX: usize>(
    shape: &ConvShape,
    x: &[f32],
    w: &[f32],
    relu: bool,
    rows: Range<usize>,
    out: &mut [f32],
) {
    const { assert!(NX <= MAX_NX) };
    assert_eq!(NV * S::N, C, "winograd: lanes");
    let u = checked_weights(shape, x, w, &rows, out);
    if out.is_empty() {
        return;
    }
    let [_, h, wd] = shape.input;
    let mut buf = [0.0f32; 16 * MAX_NX * C];
    let g = Geo {
        x: x.as_ptr(),
        u: &u,
        h,
        wd,
        buf: buf.as_mut_ptr(),
    };
    let tiles = wd.div_ceil(2);
    let mut y0 = rows.start & !1;
    while y0 < rows.end {
        // The tile's rows y0 + keep.start .. y0 + keep.end are in `rows`: the ones to store.
        let keep = rows.start.max(y0) - y0..rows.end.min(y0 + 2) - y0;
        // SAFETY: the stored rows are inside `rows`, so inside `out`; every input read is
        // bounds-checked against h and wd in `block`.
        unsafe {
            let orow = out
                .as_mut_ptr()
                .add((y0 + keep.start - rows.start) * wd * C);
            let mut t = 0;
            while t + NX <= tiles {
                block::<S, NV, NX>(&g, y0, t, orow, keep.clone(), relu);
                t += NX;
            }
            while t + 4 <= tiles {
                block::<S, NV, 4>(&g, y0, t, orow, keep.clone(), relu);
                t += 4;
            }
            if t + 2 <= tiles {
                block::<S, NV, 2>(&g, y0, t, orow, keep.clone(), relu);
                t += 2;
            }
            if t < tiles {
                block::<S, NV, 1>(&g, y0, t, orow, keep, relu);
            }
        }
        y0 += 2;
    }
}

// Additions as FMAs with ±1: exact (one rounding, like an add), so the `Simd` lanes need no
// operations beyond the direct kernel's. Functions, not closures: a closure would be compiled
// without the caller's target features.

/// `a + b`.
///
/// # Safety
/// As for [`conv_with`].
#[inline(always)]
unsafe fn add<S: Simd>(a: S::V, b: S::V) -> S::V {
    unsafe { S::fma(a, S::splat(&1.0), b) }
}

/// `a - b`.
///
/// # Safety
/// As for [`conv_with`].
#[inline(always)]
unsafe fn sub<S: Simd>(a: S::V, b: S::V) -> S::V {
    unsafe { S::fma(b, S::splat(&-1.0), a) }
}

/// Input pixel (y - 1, x - 1) at channels `v ..`, or zeros in the padding (`y`, `x` are
/// output coordinates plus tap offset, so the padding is at -1 and past the end).
///
/// # Safety
/// As for [`conv_with`]; `v + S::N <= C`.
#[inline(always)]
unsafe fn pixel<S: Simd>(g: &Geo, y: usize, x: usize, v: usize) -> S::V {
    let (yi, xi) = (y.wrapping_sub(1), x.wrapping_sub(1));
    if yi < g.h && xi < g.wd {
        // SAFETY: (yi, xi) is inside the input, whose length `check` validated.
        unsafe { S::load(g.x.add((yi * g.wd + xi) * C + v)) }
    } else {
        unsafe { S::zero() }
    }
}

/// `NX` tiles from tile column `t0` of the row pair at `y0`: input transform into the buffer,
/// products per tile element (written back over their inputs), output transform and store of
/// the tile rows `keep` (a sub-range of `0..2`).
///
/// # Safety
/// As for [`conv_with`]; `orow` is output row `y0 + keep.start` in the output, which holds
/// the rows up to `y0 + keep.end`, and tiles `t0 .. t0 + NX` start inside the width.
#[inline(always)]
// The second pass of each transform reads element r of every column: a transpose, which an
// iterator over one array cannot say.
#[allow(clippy::needless_range_loop)]
unsafe fn block<S: Simd, const NV: usize, const NX: usize>(
    g: &Geo,
    y0: usize,
    t0: usize,
    orow: *mut f32,
    keep: Range<usize>,
    relu: bool,
) {
    let bp = g.buf;
    // SAFETY (the whole body): buffer offsets stay below 16 * NX * C <= the buffer's length;
    // input reads go through `pixel`; output stores are at rows in `keep` and columns < wd.
    unsafe {
        let zero = S::zero();
        for j in 0..NX {
            let x0 = 2 * (t0 + j);
            for v in (0..C).step_by(S::N) {
                // Bᵀ d: rows of the patch combined, per column; Bᵀ = [[1, 0, -1, 0],
                // [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]].
                let mut cols = [[zero; 4]; 4];
                for (jx, col) in cols.iter_mut().enumerate() {
                    let d: [S::V; 4] = [
                        pixel::<S>(g, y0, x0 + jx, v),
                        pixel::<S>(g, y0 + 1, x0 + jx, v),
                        pixel::<S>(g, y0 + 2, x0 + jx, v),
                        pixel::<S>(g, y0 + 3, x0 + jx, v),
                    ];
                    *col = [
                        sub::<S>(d[0], d[2]),
                        add::<S>(d[1], d[2]),
                        sub::<S>(d[2], d[1]),
                        sub::<S>(d[1], d[3]),
                    ];
                }
                // (Bᵀ d) B: the same on each row.
                for r in 0..4 {
                    let e = [cols[0][r], cols[1][r], cols[2][r], cols[3][r]];
                    let vt = [
                        sub::<S>(e[0], e[2]),
                        add::<S>(e[1], e[2]),
                        sub::<S>(e[2], e[1]),
                        sub::<S>(e[1], e[3]),
                    ];
                    for (c, vt) in vt.into_iter().enumerate() {
                        S::store(bp.add(((r * 4 + c) * NX + j) * C + v), vt);
                    }
                }
            }
        }
        // Products per tile element, all NX tiles × NV vectors in registers, so each weight
        // vector loaded serves NX tiles; the results overwrite the element's inputs.
        for t in 0..16 {
            let up = g.u.as_ptr().add(t * C * C);
            let tp = bp.add(t * NX * C);
            let mut acc = [[zero; NV]; NX];
            for ci in 0..C {
                let mut wv = [zero; NV];
                for (v, wv) in wv.iter_mut().enumerate() {
                    *wv = S::load(up.add(ci * C + v * S::N));
                }
                for (j, acc) in acc.iter_mut().enumerate() {
                    let b = S::splat(tp.add(j * C + ci));
                    for (a, &wv) in acc.iter_mut().zip(&wv) {
                        *a = S::fma(b, wv, *a);
                    }
                }
            }
            for (j, acc) in acc.iter().enumerate() {
                for (v, &a) in acc.iter().enumerate() {
                    S::store(tp.add(j * C + v * S::N), a);
                }
            }
        }
        // Output transform Y = Aᵀ M A with Aᵀ = [[1, 1, 1, 0], [0, 1, -1, -1]], and the store.
        for j in 0..NX {
            let x0 = 2 * (t0 + j);
            let cols = (g.wd - x0).min(2);
            for v in (0..C).step_by(S::N) {
                // Aᵀ M, column by column: s[c] holds rows 0 and 1.
                let mut s = [[zero; 2]; 4];
                for (c, s) in s.iter_mut().enumerate() {
                    let m = |r: usize| bp.add(((r * 4 + c) * NX + j) * C + v);
                    let (m0, m1, m2, m3) =
                        (S::load(m(0)), S::load(m(1)), S::load(m(2)), S::load(m(3)));
                    *s = [
                        add::<S>(add::<S>(m0, m1), m2),
                        sub::<S>(sub::<S>(m1, m2), m3),
                    ];
                }
                // (Aᵀ M) A, row by row.
                for a in keep.clone() {
                    let s = [s[0][a], s[1][a], s[2][a], s[3][a]];
                    let y = [
                        add::<S>(add::<S>(s[0], s[1]), s[2]),
                        sub::<S>(sub::<S>(s[1], s[2]), s[3]),
                    ];
                    for (b, y) in y.into_iter().enumerate().take(cols) {
                        let y = if relu { S::relu(y) } else { y };
                        S::store(orow.add(((a - keep.start) * g.wd + x0 + b) * C + v), y);
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
    use crate::kernels::conv::{ConvKernel, conv_reference};
    use crate::kernels::test_support::{XorShift, shape};
    use std::string::String;
    use std::vec;
    use std::vec::Vec;

    /// Error bound against the direct convolution, as a fraction of the sum of |terms| of each
    /// output: the direct kernels' bound (`test_support::assert_close`). Winograd reassociates
    /// the sums, but F(2, 3)'s transforms only add and halve: the largest ratio these tests
    /// see, printed by `winograd_matches_direct`, is 2.6e-7 on x86_64.
    const TOL: f32 = 1e-5;

    /// 2D 16→16 stride-1 shapes: every height and width from 1 to 9 (odd and even, down to the
    /// coarsest grid of a 112×112 input, 7×7, and below), then widths around the 12-tile and
    /// 4-tile blocks.
    fn shapes() -> Vec<ConvShape> {
        let mut v = Vec::new();
        for h in 1..=9 {
            for w in 1..=9 {
                v.push(shape(2, [1, h, w], C, C, 1));
            }
        }
        for (h, w) in [
            (3, 23),
            (4, 24),
            (5, 25),
            (2, 31),
            (3, 32),
            (4, 49),
            (14, 14),
            (28, 28),
        ] {
            v.push(shape(2, [1, h, w], C, C, 1));
        }
        v
    }

    fn run(k: &dyn Fn(Range<usize>, &mut [f32]), s: &ConvShape, rows: Range<usize>) -> Vec<f32> {
        let row_len = s.output_len() / s.rows();
        let mut out = vec![f32::NAN; rows.len() * row_len];
        k(rows, &mut out);
        out
    }

    /// Largest |got - want| / Σ|terms| over the outputs.
    fn worst(got: &[f32], want: &[f32], scale: &[f32]) -> f32 {
        assert_eq!(got.len(), want.len());
        got.iter()
            .zip(want)
            .zip(scale)
            .map(|((g, w), s)| {
                assert!(g.is_finite(), "not finite: {g}");
                (g - w).abs() / s.max(1e-20)
            })
            .fold(0.0, f32::max)
    }

    /// Each Winograd kernel this CPU runs, and the scalar twin, against the direct reference,
    /// with and without ReLU; and row chunks of 1, 2 and 3 (starting on odd rows, ending half
    /// way through a row pair) against the whole output, to the bit, as the engine's thread
    /// split needs (the twin likewise).
    #[test]
    fn winograd_matches_direct() {
        let mut kernels: Vec<(String, ConvKernel)> = ConvKernel::available()
            .filter(|k| k.name().ends_with("-winograd"))
            .map(|k| (k.name().into(), k))
            .collect();
        assert!(!kernels.is_empty(), "portable-winograd runs everywhere");
        kernels.sort_by(|a, b| a.0.cmp(&b.0));
        let mut rng = XorShift(0x1234_5678_9ABC_DEF1);
        let mut seen = 0.0f32;
        for s in shapes() {
            let x = rng.fill(s.input_len());
            let w = rng.fill(s.weights_len());
            let (ax, aw): (Vec<f32>, Vec<f32>) = (
                x.iter().map(|v| v.abs()).collect(),
                w.iter().map(|v| v.abs()).collect(),
            );
            let mut scale = vec![0.0; s.output_len()];
            conv_reference(&s, &ax, &aw, false, 0..s.rows(), &mut scale);
            let row_len = s.output_len() / s.rows();
            for relu in [false, true] {
                let direct = run(
                    &|r, o| conv_reference(&s, &x, &w, relu, r, o),
                    &s,
                    0..s.rows(),
                );
                let twin = run(
                    &|r, o| winograd_reference(&s, &x, &w, relu, r, o),
                    &s,
                    0..s.rows(),
                );
                let e = worst(&twin, &direct, &scale);
                assert!(e <= TOL, "reference {s:?} relu {relu}: {e:e}");
                seen = seen.max(e);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                let chunked = |f: &dyn Fn(Range<usize>, &mut [f32]), chunk: usize| {
                    let mut out = vec![f32::NAN; s.output_len()];
                    for r in (0..s.rows()).step_by(chunk) {
                        let e = (r + chunk).min(s.rows());
                        out[r * row_len..e * row_len].copy_from_slice(&run(f, &s, r..e));
                    }
                    bits(&out)
                };
                let f = |r: Range<usize>, o: &mut [f32]| winograd_reference(&s, &x, &w, relu, r, o);
                assert_eq!(chunked(&f, 3), bits(&twin), "reference {s:?} chunk 3");
                for (name, k) in &kernels {
                    let f = |r: Range<usize>, o: &mut [f32]| k.conv(&s, &x, &w, relu, r, o);
                    let got = run(&f, &s, 0..s.rows());
                    let e = worst(&got, &direct, &scale);
                    assert!(e <= TOL, "{name} {s:?} relu {relu}: {e:e}");
                    seen = seen.max(e);
                    for chunk in [1, 2, 3] {
                        assert_eq!(chunked(&f, chunk), bits(&got), "{name} {s:?} chunk {chunk}");
                    }
                }
            }
        }
        std::eprintln!("largest error / sum of |terms|: {seen:e}");
    }

    /// The lanes are channels, and each output sums the same terms in the same order on every
    /// lane width: the x86 Winograd kernels agree to the bit, as the direct ones do.
    #[test]
    fn winograd_avx512_agrees_with_avx2_to_the_bit() {
        let (Ok(a), Ok(b)) = (
            ConvKernel::named("avx512-winograd"),
            ConvKernel::named("avx2-winograd"),
        ) else {
            std::eprintln!("skipped: this CPU lacks AVX-512F or AVX2+FMA");
            return;
        };
        let mut rng = XorShift(99);
        for s in shapes() {
            let x = rng.fill(s.input_len());
            let w = rng.fill(s.weights_len());
            let ya = run(&|r, o| a.conv(&s, &x, &w, true, r, o), &s, 0..s.rows());
            let yb = run(&|r, o| b.conv(&s, &x, &w, true, r, o), &s, 0..s.rows());
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&ya), bits(&yb), "{s:?}");
        }
    }

    /// Shapes Winograd does not take run on the same lanes' direct kernel, to the bit.
    #[test]
    fn other_shapes_run_direct() {
        let mut rng = XorShift(5);
        for s in [
            shape(2, [1, 9, 9], C, C, 2),
            shape(2, [1, 9, 9], 3, C, 1),
            shape(2, [1, 9, 9], C, 3, 1),
            shape(3, [3, 5, 5], C, C, 1),
        ] {
            assert!(!fits(&s), "{s:?}");
            let x = rng.fill(s.input_len());
            let w = rng.fill(s.weights_len());
            for k in ConvKernel::available().filter(|k| k.name().ends_with("-winograd")) {
                let direct = k.direct();
                let got = run(&|r, o| k.conv(&s, &x, &w, false, r, o), &s, 0..s.rows());
                let want = run(
                    &|r, o| direct.conv(&s, &x, &w, false, r, o),
                    &s,
                    0..s.rows(),
                );
                assert_eq!(got, want, "{} {s:?}", k.name());
            }
        }
        assert!(fits(&shape(2, [1, 1, 1], C, C, 1)));
    }

    /// The weight transform by hand: a kernel of ones gives G 1 Gᵀ = (1, 1.5, 0.5, 1)ᵀ (1, 1.5,
    /// 0.5, 1) on each channel pair.
    #[test]
    fn weight_transform_by_hand() {
        let mut u = [0.0f32; 16 * C * C];
        transform_weights(&[1.0; 9 * C * C], &mut u);
        let g = [1.0f32, 1.5, 0.5, 1.0];
        for t in 0..16 {
            let want = g[t / 4] * g[t % 4];
            assert!(u[t * C * C..][..C * C].iter().all(|&v| v == want), "t {t}");
        }
    }
}
