//! Vector-Jacobian products of the MSNet ops that the runtime has no kernel for, on plain
//! slices in the runtime's layouts (channels last; the class softmax's output channels
//! first). Each takes the output gradient `dy` and what the op saved, and puts the input
//! gradient into `dx` in a [`Mode`]: the first contribution to a value's gradient writes, later
//! ones add, so no buffer is ever zeroed. The convolution and the grid transfers are the
//! runtime's own kernels (`conv`, `weight_grad`, `avg_pool_adjoint`, `prolong_adjoint`),
//! driven by [`crate::backward`].

use msnet_runtime::kernels::conv::ConvShape;

/// How a gradient contribution lands in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The first contribution: overwrite whatever the buffer held.
    Write,
    /// A later one: add.
    Add,
}

impl Mode {
    /// `dst[i] (=|+=) f(a[i])` for every `i`. Zipped slices rather than indices, so the
    /// compiler sees equal lengths and vectorises without bounds checks.
    #[inline]
    pub fn apply1(self, dst: &mut [f32], a: &[f32], f: impl Fn(f32) -> f32) {
        let pairs = dst.iter_mut().zip(a);
        match self {
            Mode::Write => pairs.for_each(|(d, &a)| *d = f(a)),
            Mode::Add => pairs.for_each(|(d, &a)| *d += f(a)),
        }
    }

    /// `dst[i] (=|+=) f(a[i], b[i])` for every `i`.
    #[inline]
    pub fn apply2(self, dst: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
        let triples = dst.iter_mut().zip(a).zip(b);
        match self {
            Mode::Write => triples.for_each(|((d, &a), &b)| *d = f(a, b)),
            Mode::Add => triples.for_each(|((d, &a), &b)| *d += f(a, b)),
        }
    }
}

/// ReLU from its output `y`: `dx = dy` where `y > 0`, else 0 (the subgradient 0 at 0, as
/// burn's and PyTorch's).
pub fn relu(y: &[f32], dy: &[f32], mode: Mode, dx: &mut [f32]) {
    mode.apply2(dx, y, dy, |y, dy| if y > 0.0 { dy } else { 0.0 });
}

/// `dx = scale · dy` (add, subtract, affine).
pub fn scaled(dy: &[f32], scale: f32, mode: Mode, dx: &mut [f32]) {
    mode.apply1(dx, dy, |dy| scale * dy);
}

/// One factor of a product: `dx = dy · other`.
pub fn mul(other: &[f32], dy: &[f32], mode: Mode, dx: &mut [f32]) {
    mode.apply2(dx, other, dy, |o, dy| dy * o);
}

/// `x²`: `dx = 2x · dy`.
pub fn square(x: &[f32], dy: &[f32], mode: Mode, dx: &mut [f32]) {
    mode.apply2(dx, x, dy, |x, dy| 2.0 * x * dy);
}

/// The grouped phase softmax from its output `y` (`[pixels][phases · I]`, group `i` is the
/// channels `n · I + i`): `dx = y ⊙ (dy − Σ_group y ⊙ dy)`.
pub fn phase_softmax(
    y: &[f32],
    dy: &[f32],
    channels: usize,
    phases: usize,
    mode: Mode,
    dx: &mut [f32],
) {
    let per_phase = channels / phases;
    let mut dot = vec![0f32; per_phase];
    for p in 0..y.len() / channels {
        let at = p * channels;
        let (y, dy) = (&y[at..at + channels], &dy[at..at + channels]);
        dot.fill(0.0);
        for n in 0..phases {
            for (i, d) in dot.iter_mut().enumerate() {
                *d += y[n * per_phase + i] * dy[n * per_phase + i];
            }
        }
        let dx = &mut dx[at..at + channels];
        for ((dx, y), dy) in dx
            .chunks_exact_mut(per_phase)
            .zip(y.chunks_exact(per_phase))
            .zip(dy.chunks_exact(per_phase))
        {
            let rows = dx.iter_mut().zip(y).zip(dy).zip(dot.iter());
            match mode {
                Mode::Write => rows.for_each(|(((d, &y), &g), &s)| *d = y * (g - s)),
                Mode::Add => rows.for_each(|(((d, &y), &g), &s)| *d += y * (g - s)),
            }
        }
    }
}

/// The class softmax of one sample, whose output `y` and gradient `dy` are channels first
/// (`[classes][pixels]`), to the gradient of its channels-last logits `dx`
/// (`[pixels][classes]`): `dx = y ⊙ (dy − Σ_c y ⊙ dy)`.
pub fn class_softmax(y: &[f32], dy: &[f32], classes: usize, mode: Mode, dx: &mut [f32]) {
    let pixels = y.len() / classes;
    for p in 0..pixels {
        let dot: f32 = (0..classes)
            .map(|c| y[c * pixels + p] * dy[c * pixels + p])
            .sum();
        for (c, d) in dx[p * classes..(p + 1) * classes].iter_mut().enumerate() {
            let v = y[c * pixels + p] * (dy[c * pixels + p] - dot);
            match mode {
                Mode::Write => *d = v,
                Mode::Add => *d += v,
            }
        }
    }
}

/// The kernel of a convolution's data gradient: for a stride-1, padding-1 convolution with
/// kernel `w` (`[t][cin][cout]`), `dx` is the stride-1 convolution of `dy` with the flipped
/// kernel whose channel roles swap, `w'[t'][co][ci] = w[T − 1 − t'][ci][co]`.
pub fn data_grad_kernel(cin: usize, cout: usize, w: &[f32], out: &mut [f32]) {
    let taps = w.len() / (cin * cout);
    for t in 0..taps {
        for ci in 0..cin {
            for co in 0..cout {
                out[((taps - 1 - t) * cout + co) * cin + ci] = w[(t * cin + ci) * cout + co];
            }
        }
    }
}

/// The output gradient `dy` of a stride-2 convolution of one sample, spread onto the input
/// grid (`z[2o] = dy[o]`, zero elsewhere; `z` is `[d][h][w][cout]` of the input's size).
/// Output `o` read the inputs `2o − 1 … 2o + 1`, so the data gradient is the stride-1 data
/// gradient of `z`.
pub fn spread_stride2(shape: &ConvShape, dy: &[f32], z: &mut [f32]) {
    let [d, h, w] = shape.input;
    let [od, oh, ow] = shape.output();
    let c = shape.cout;
    z.fill(0.0);
    let step_d = if shape.dims == 3 { 2 } else { 1 };
    for zo in 0..od {
        for yo in 0..oh {
            for xo in 0..ow {
                let src = ((zo * oh + yo) * ow + xo) * c;
                let dst = (((zo * step_d) * h + yo * 2) * w + xo * 2) * c;
                z[dst..dst + c].copy_from_slice(&dy[src..src + c]);
            }
        }
    }
    debug_assert_eq!(z.len(), d * h * w * c);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use msnet_runtime::kernels::{conv, conv_grad, elementwise, resample, softmax};

    /// Seeded values in `[-1, 1)`.
    pub(crate) fn values(n: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn dot(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    /// A vector-Jacobian product under test: `(x, dy) -> dx`.
    type Vjp<'a> = &'a dyn Fn(&[f32], &[f32]) -> Vec<f32>;

    /// Checks a VJP against the central difference of `<f(x), r>` along a random direction:
    /// `<vjp(r), v> ≈ (<f(x + hv), r> − <f(x − hv), r>) / 2h`.
    pub(crate) fn check_vjp(
        what: &str,
        x: &[f32],
        outputs: usize,
        f: &dyn Fn(&[f32]) -> Vec<f32>,
        vjp: Vjp<'_>,
    ) {
        let r = values(outputs, 11);
        let v = values(x.len(), 12);
        let h = 1e-2f32;
        let shifted =
            |sign: f32| -> Vec<f32> { x.iter().zip(&v).map(|(&x, &v)| x + sign * h * v).collect() };
        let numeric = (dot(&f(&shifted(1.0)), &r) - dot(&f(&shifted(-1.0)), &r)) / (2.0 * h as f64);
        let analytic = dot(&vjp(x, &r), &v);
        let err = (numeric - analytic).abs() / numeric.abs().max(analytic.abs()).max(1e-3);
        assert!(
            err < 2e-3,
            "{what}: finite difference {numeric}, vector-Jacobian product {analytic}"
        );
    }

    #[test]
    fn elementwise_rules_match_finite_differences() {
        let x = values(97, 1);
        let other = values(97, 2);
        let relu_f = |x: &[f32]| {
            let mut y = vec![0.0; x.len()];
            elementwise::relu(x, &mut y);
            y
        };
        check_vjp("relu", &x, 97, &relu_f, &|x, dy| {
            let mut dx = vec![0.0; x.len()];
            relu(&relu_f(x), dy, Mode::Write, &mut dx);
            dx
        });
        let mul_f = |x: &[f32]| {
            let mut y = vec![0.0; x.len()];
            elementwise::mul(x, &other, &mut y);
            y
        };
        check_vjp("mul", &x, 97, &mul_f, &|_, dy| {
            let mut dx = vec![0.0; 97];
            mul(&other, dy, Mode::Write, &mut dx);
            dx
        });
        let sq_f = |x: &[f32]| {
            let mut y = vec![0.0; x.len()];
            elementwise::scaled_square(x, 1.0, &mut y);
            y
        };
        check_vjp("square", &x, 97, &sq_f, &|x, dy| {
            let mut dx = vec![0.0; 97];
            square(x, dy, Mode::Write, &mut dx);
            dx
        });
        let affine_f = |x: &[f32]| {
            let mut y = vec![0.0; x.len()];
            elementwise::affine(x, -0.7, 0.3, &mut y);
            y
        };
        check_vjp("affine", &x, 97, &affine_f, &|_, dy| {
            let mut dx = vec![0.0; 97];
            scaled(dy, -0.7, Mode::Write, &mut dx);
            dx
        });
    }

    #[test]
    fn add_mode_accumulates_onto_what_is_there() {
        let dy = [1.0, 2.0, 3.0];
        let mut dx = [10.0, 20.0, 30.0];
        scaled(&dy, 2.0, Mode::Add, &mut dx);
        assert_eq!(dx, [12.0, 24.0, 36.0]);
        scaled(&dy, 2.0, Mode::Write, &mut dx);
        assert_eq!(dx, [2.0, 4.0, 6.0]);
    }

    #[test]
    fn softmax_rules_match_finite_differences() {
        let (channels, phases, pixels) = (8, 4, 5);
        let x: Vec<f32> = values(channels * pixels, 3)
            .iter()
            .map(|v| 3.0 * v)
            .collect();
        let f = |x: &[f32]| {
            let mut y = vec![0.0; x.len()];
            softmax::phase_softmax(x, channels, phases, &mut y);
            y
        };
        check_vjp("phase softmax", &x, x.len(), &f, &|x, dy| {
            let mut dx = vec![0.0; x.len()];
            phase_softmax(&f(x), dy, channels, phases, Mode::Write, &mut dx);
            dx
        });
        let classes = 3;
        let x: Vec<f32> = values(classes * pixels, 4)
            .iter()
            .map(|v| 2.0 * v)
            .collect();
        let f = |x: &[f32]| {
            let mut y = vec![0.0; x.len()];
            softmax::class_softmax(x, classes, &mut y);
            y
        };
        check_vjp("class softmax", &x, x.len(), &f, &|x, dy| {
            let mut dx = vec![0.0; x.len()];
            class_softmax(&f(x), dy, classes, Mode::Write, &mut dx);
            dx
        });
    }

    fn conv_shapes() -> Vec<ConvShape> {
        let mut shapes = Vec::new();
        for (dims, input) in [(2, [1, 6, 5]), (3, [4, 3, 5])] {
            for stride in [1, 2] {
                shapes.push(ConvShape {
                    dims,
                    input,
                    cin: 3,
                    cout: 4,
                    stride,
                });
            }
        }
        shapes
    }

    /// The data gradient as `backward` computes it: the stride-1 convolution of `dy` (spread
    /// onto the input grid for stride 2) with the flipped kernel.
    fn conv_data_grad(shape: &ConvShape, w: &[f32], dy: &[f32]) -> Vec<f32> {
        let mut flipped = vec![0.0; w.len()];
        data_grad_kernel(shape.cin, shape.cout, w, &mut flipped);
        let back = ConvShape {
            cin: shape.cout,
            cout: shape.cin,
            stride: 1,
            ..*shape
        };
        let spread;
        let source = if shape.stride == 2 {
            let mut z = vec![0.0; back.input_len()];
            spread_stride2(shape, dy, &mut z);
            spread = z;
            &spread
        } else {
            dy
        };
        let mut dx = vec![0.0; shape.input_len()];
        conv::conv(&back, source, &flipped, false, 0..back.rows(), &mut dx);
        dx
    }

    #[test]
    fn convolution_gradients_match_finite_differences() {
        for shape in conv_shapes() {
            let x = values(shape.input_len(), 5);
            let w = values(shape.weights_len(), 6);
            let fx = |x: &[f32]| {
                let mut y = vec![0.0; shape.output_len()];
                conv::conv_reference(&shape, x, &w, false, 0..shape.rows(), &mut y);
                y
            };
            let what = format!("conv data gradient {shape:?}");
            check_vjp(&what, &x, shape.output_len(), &fx, &|_, dy| {
                conv_data_grad(&shape, &w, dy)
            });
            let fw = |w: &[f32]| {
                let mut y = vec![0.0; shape.output_len()];
                conv::conv_reference(&shape, &x, w, false, 0..shape.rows(), &mut y);
                y
            };
            let what = format!("conv weight gradient {shape:?}");
            check_vjp(&what, &w, shape.output_len(), &fw, &|w, dy| {
                let mut dw = vec![0.0; w.len()];
                conv_grad::weight_grad(&shape, &x, dy, 0..shape.rows(), &mut dw);
                dw
            });
        }
    }

    #[test]
    fn grid_transfer_adjoints_match_finite_differences() {
        for (dims, size) in [(2, [1, 4, 6]), (3, [2, 4, 2])] {
            let fine = resample::Grid {
                dims,
                size,
                channels: 3,
            };
            let len = size.iter().product::<usize>() * 3;
            let x = values(len, 7);
            let pooled = len / if dims == 3 { 8 } else { 4 };
            let pool = |x: &[f32]| {
                let mut y = vec![0.0; pooled];
                resample::avg_pool(x, &fine, 0..fine.pooled_rows(), &mut y);
                y
            };
            check_vjp("avg pool", &x, pooled, &pool, &|x, dy| {
                let mut dx = vec![0.0; x.len()];
                resample::avg_pool_adjoint(dy, &fine, &mut dx);
                dx
            });
            let fine_len = len * if dims == 3 { 8 } else { 4 };
            let prolong = |x: &[f32]| {
                let mut y = vec![0.0; fine_len];
                resample::prolong(x, &fine, 0..fine.prolonged_rows(), &mut y);
                y
            };
            check_vjp("prolong", &x, fine_len, &prolong, &|x, dy| {
                let mut dx = vec![0.0; x.len()];
                resample::prolong_adjoint(dy, &fine, &mut dx);
                dx
            });
        }
    }
}
