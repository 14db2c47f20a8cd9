//! Compute kernels. Arena tensors are channels-last, `[D][H][W][C]` (D = 1 in 2D): a pixel's
//! channels are contiguous, which makes the softmaxes over channels and the convolution's
//! output-channel vectors cheap. Kernels work on slices whose lengths the plan validator has
//! checked; they never allocate.

pub mod conv;
pub mod conv_grad;
pub mod elementwise;
pub mod layout;
pub mod resample;
pub mod softmax;
#[cfg(test)]
mod test_support;
pub mod winograd;
