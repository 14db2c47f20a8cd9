//! # msnet-native: MSNet trained on the runtime's own kernels
//!
//! The training engine without burn or tract. It runs the typed graph ([`msnet::ir`]) forward
//! over a mini-batch with msnet-runtime's kernels (channels last, the same convolution,
//! softmax and grid-transfer code the device runs), keeps every node's value, and sweeps back
//! once with a vector-Jacobian rule per op ([`vjp`], [`backward`]): the convolution's data
//! gradient is the same convolution kernel on flipped weights, its weight gradient the
//! runtime's `conv_grad` kernel. Then the soft Dice loss ([`loss`]) and Adam ([`adam`]).
//!
//! It owns the backward rules, the loss, the optimiser and their workspace. It must not
//! define the network (the graph comes from `msnet`), copy a kernel (they come from
//! `msnet-runtime`), or know about files beyond the optimiser state it serialises.
//!
//! Weights live in the kernels' layout (`msnet::weights::to_kernel_layout`), where a
//! transposed convolution is the convolution with the flipped kernel, so every layer is one
//! kind of convolution here; they are converted back only when saved.

pub mod adam;
pub mod backward;
pub mod engine;
pub mod loss;
pub mod network;
pub mod parallel;
pub mod probe;
pub mod reference;
pub mod trainer;
pub mod vjp;

pub use network::{Network, Workspace};
pub use reference::NativeReference;
pub use trainer::{NativeError, NativeOptions, NativeTrainer};
