//! The MSNet program ([`msnet::graph`]) lowered to burn tensors.
//!
//! Activations are always rank 5, `[B, C, D, H, W]`, with `D = 1` in 2D, so one lowering
//! serves both; 2D convolutions drop the unit depth axis and call burn's 2D kernels (the
//! faster path on GPU backends). Pooling and prolongation are written from reshapes, sums,
//! slices and concatenation, which burn's autodiff differentiates (burn has no 3D
//! interpolation, and its linear `interpolate` is not pinned to MSNET.md's operator).

use burn::module::Param;
use burn::tensor::activation::softmax;
use burn::tensor::module::{conv_transpose2d, conv_transpose3d, conv2d, conv3d};
use burn::tensor::ops::{ConvOptions, ConvTransposeOptions};
use burn::tensor::{Device, Tensor, TensorData};
use msnet::graph::Lowering;
use msnet::spec::{ConvKind, ConvSpec};

/// Lowers the program against a set of conv weights (`[o, i, 1, k, k]` in 2D).
pub struct BurnLowering<'a> {
    pub weights: &'a [Param<Tensor<5>>],
    pub dims: usize,
    pub device: &'a Device,
}

fn squeeze_depth(x: Tensor<5>) -> Tensor<4> {
    let [b, c, _, h, w] = x.dims();
    x.reshape([b, c, h, w])
}

fn unsqueeze_depth(x: Tensor<4>) -> Tensor<5> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, 1, h, w])
}

impl BurnLowering<'_> {
    /// Sum of `x` over consecutive pairs along axis `axis` (size halves).
    fn pair_sum(x: Tensor<5>, axis: usize) -> Tensor<5> {
        let dims = x.dims();
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product();
        let n = dims[axis];
        let mut out_dims = dims;
        out_dims[axis] = n / 2;
        x.reshape([outer, n / 2, 2, inner])
            .sum_dim(2)
            .reshape(out_dims)
    }

    /// ×2 linear interpolation along one axis, half-pixel centres, edge-clamped.
    fn prolong_axis(x: Tensor<5>, axis: usize) -> Tensor<5> {
        let dims = x.dims();
        let n = dims[axis];
        let (prev, next) = if n == 1 {
            (x.clone(), x.clone())
        } else {
            let first = x.clone().narrow(axis, 0, 1);
            let last = x.clone().narrow(axis, n - 1, 1);
            (
                Tensor::cat(vec![first, x.clone().narrow(axis, 0, n - 1)], axis),
                Tensor::cat(vec![x.clone().narrow(axis, 1, n - 1), last], axis),
            )
        };
        let core = x.mul_scalar(0.75);
        let even = core.clone() + prev.mul_scalar(0.25);
        let odd = core + next.mul_scalar(0.25);
        let mut out_dims = dims;
        out_dims[axis] = 2 * n;
        Tensor::stack::<6>(vec![even, odd], axis + 1).reshape(out_dims)
    }

    fn spatial_axes(&self) -> &'static [usize] {
        if self.dims == 3 { &[2, 3, 4] } else { &[3, 4] }
    }
}

impl Lowering for BurnLowering<'_> {
    type Value = Tensor<5>;

    fn normalize(&mut self, x: &Tensor<5>, mean: &[f32], std: &[f32]) -> Tensor<5> {
        let c = mean.len();
        let mean =
            Tensor::<5>::from_data(TensorData::new(mean.to_vec(), [1, c, 1, 1, 1]), self.device);
        let inv: Vec<f32> = std.iter().map(|s| 1.0 / s).collect();
        let inv = Tensor::<5>::from_data(TensorData::new(inv, [1, c, 1, 1, 1]), self.device);
        (x.clone() - mean) * inv
    }

    fn conv(&mut self, layer: &ConvSpec, x: &Tensor<5>) -> Tensor<5> {
        let w = self.weights[layer.index].val();
        let s = layer.stride;
        match (self.dims, layer.kind) {
            (2, ConvKind::Conv) => unsqueeze_depth(conv2d(
                squeeze_depth(x.clone()),
                squeeze_depth(w),
                None,
                ConvOptions::new([s, s], [1, 1], [1, 1], 1),
            )),
            (2, ConvKind::ConvTranspose) => unsqueeze_depth(conv_transpose2d(
                squeeze_depth(x.clone()),
                squeeze_depth(w),
                None,
                ConvTransposeOptions::new([s, s], [1, 1], [0, 0], [1, 1], 1),
            )),
            (_, ConvKind::Conv) => conv3d(
                x.clone(),
                w,
                None,
                ConvOptions::new([s, s, s], [1, 1, 1], [1, 1, 1], 1),
            ),
            (_, ConvKind::ConvTranspose) => conv_transpose3d(
                x.clone(),
                w,
                None,
                ConvTransposeOptions::new([s, s, s], [1, 1, 1], [0, 0, 0], [1, 1, 1], 1),
            ),
        }
    }

    fn relu(&mut self, x: &Tensor<5>) -> Tensor<5> {
        burn::tensor::activation::relu(x.clone())
    }

    fn add(&mut self, a: &Tensor<5>, b: &Tensor<5>) -> Tensor<5> {
        a.clone() + b.clone()
    }

    fn sub(&mut self, a: &Tensor<5>, b: &Tensor<5>) -> Tensor<5> {
        a.clone() - b.clone()
    }

    fn mul(&mut self, a: &Tensor<5>, b: &Tensor<5>) -> Tensor<5> {
        a.clone() * b.clone()
    }

    fn affine(&mut self, x: &Tensor<5>, scale: f32, shift: f32) -> Tensor<5> {
        let y = if scale == 1.0 {
            x.clone()
        } else {
            x.clone().mul_scalar(scale)
        };
        if shift == 0.0 { y } else { y.add_scalar(shift) }
    }

    fn square(&mut self, x: &Tensor<5>) -> Tensor<5> {
        x.clone() * x.clone()
    }

    fn phase_softmax(&mut self, x: &Tensor<5>, phases: usize) -> Tensor<5> {
        let dims = x.dims();
        let [b, c, d, h, w] = dims;
        let grouped = x.clone().reshape([b, phases, c / phases, d * h * w]);
        softmax(grouped, 1).reshape(dims)
    }

    fn avg_pool(&mut self, x: &Tensor<5>) -> Tensor<5> {
        let axes = self.spatial_axes();
        let pooled = axes
            .iter()
            .fold(x.clone(), |acc, &axis| Self::pair_sum(acc, axis));
        pooled.mul_scalar(1.0 / (1usize << axes.len()) as f32)
    }

    fn prolong(&mut self, x: &Tensor<5>) -> Tensor<5> {
        self.spatial_axes()
            .iter()
            .fold(x.clone(), |acc, &axis| Self::prolong_axis(acc, axis))
    }

    fn class_softmax(&mut self, x: &Tensor<5>) -> Tensor<5> {
        softmax(x.clone(), 1)
    }
}
