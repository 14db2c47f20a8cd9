//! # msnet-trainer: MSNet trained with burn
//!
//! Owns the burn lowering of the MSNet program ([`lowering`], [`network`]), the soft Dice
//! loss, the training loop with checkpoints, resume and validation, the U-Net baseline of the
//! paper's comparisons ([`baseline`], training only), and burn inference (the reference the
//! exporter checks other engines against). It reads the network only through
//! [`msnet::graph`] and [`msnet::spec`], and must not define any part of the network itself,
//! nor know about ONNX or the runtime.

pub mod baseline;
pub mod batch;
pub mod checkpoint;
pub mod device;
pub mod infer;
pub mod loss;
pub mod lowering;
pub mod network;
pub mod train;
pub mod validation;

pub use infer::Predictor;
pub use network::MsNet;
pub use train::{
    BaselineReport, BaselineRun, Outcome, Report, Run, Step, TrainOptions, baseline_labels, train,
    train_baseline,
};
pub use validation::Validation;

/// Why training could not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("{0}")]
    Model(#[from] msnet::model::ModelError),
    #[error("{0}")]
    Fs(#[from] msnet::fsutil::FsError),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error("{0}")]
    Metrics(#[from] msnet::metrics::MetricsError),
    #[error("invalid training setup: {0}")]
    Options(String),
    #[error(
        "the loss or the weights became NaN or infinite at iteration {iteration}; training stopped and {checkpoint}. Try a lower --lr or check the input data"
    )]
    NonFinite {
        iteration: usize,
        checkpoint: String,
    },
}
