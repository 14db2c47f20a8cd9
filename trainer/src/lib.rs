//! # msnet-trainer: MSNet trained with burn
//!
//! Owns the burn lowering of the MSNet program ([`lowering`], [`network`]), the soft Dice
//! loss, the burn training engine ([`BurnEngine`], driven by `msnet-training`'s loop, which
//! owns batches, schedule, checkpoints, resume and validation), the U-Net baseline of the
//! paper's comparisons ([`baseline`], training only, with its own loop and checkpoints,
//! [`baseline_checkpoint`]), and burn inference (the reference the exporter checks other
//! engines against). It reads the network only through [`msnet::graph`] and [`msnet::spec`],
//! and must not define any part of the network itself, nor know about ONNX or the runtime.

pub mod baseline;
pub mod baseline_checkpoint;
pub mod batch;
pub mod device;
pub mod engine;
pub mod infer;
pub mod loss;
pub mod lowering;
pub mod network;
pub mod train;

pub use engine::BurnEngine;
pub use infer::Predictor;
pub use network::MsNet;
pub use train::{BaselineReport, BaselineRun, baseline_labels, train_baseline};
