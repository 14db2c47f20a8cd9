//! Soft multi-class Dice loss on softmax probabilities (paper, section 6.1):
//! `1 - (1/N) sum_n (2 sum_j y_jn y*_jn + e) / (sum_j y_jn + sum_j y*_jn + e)`, with the sums
//! over every voxel `j` of the whole batch and smoothing `e = 1`.

use burn::tensor::Tensor;

/// Smoothing term `e`: keeps the ratio defined for a class absent from a batch.
pub const DICE_SMOOTH: f32 = 1.0;

/// The loss, a one-element tensor. `probs` and `one_hot` are `[B, N, D, H, W]`.
pub fn soft_dice(probs: Tensor<5>, one_hot: Tensor<5>) -> Tensor<1> {
    let [b, n, d, h, w] = probs.dims();
    let flat = |t: Tensor<5>| t.swap_dims(0, 1).reshape([n, b * d * h * w]);
    let (p, y) = (flat(probs), flat(one_hot));
    let overlap = (p.clone() * y.clone()).sum_dim(1).mul_scalar(2.0);
    let total = p.sum_dim(1) + y.sum_dim(1);
    let dice = overlap.add_scalar(DICE_SMOOTH) / total.add_scalar(DICE_SMOOTH);
    dice.mean().neg().add_scalar(1.0)
}
