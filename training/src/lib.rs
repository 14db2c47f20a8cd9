//! # msnet-training: the training loop, whatever computes the gradients
//!
//! Owns everything about a training run that does not depend on the engine: the mini-batch
//! order ([`batch`]), the learning-rate schedule and options ([`TrainOptions`]), the loop
//! ([`train()`]) with its progress reports, Ctrl-C stop and non-finite stop, checkpoints and
//! their crash-safe swap ([`checkpoint`]), resume, validation during training
//! ([`validation`]) and the training record. An engine ([`Engine`]: burn in
//! `msnet-trainer`, the native CPU trainer in `msnet-native`) only does one optimisation step,
//! hands its weights and optimiser state over, and predicts.
//!
//! It must not link an engine (no burn, no tract), define any part of the network (that is
//! `msnet`'s), or know how an engine computes or stores its optimiser state beyond the opaque
//! bytes and the file name the engine gives.

pub mod augment;
pub mod batch;
pub mod checkpoint;
pub mod engine;
pub mod train;
pub mod validation;

pub use engine::Engine;
pub use train::{
    Outcome, Report, Run, Step, TrainOptions, check_options, check_samples, mean_tail,
    push_recent_loss, step_report, train,
};
pub use validation::Validation;

use std::path::PathBuf;

/// Why training could not run or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Model(#[from] msnet::model::ModelError),
    #[error(transparent)]
    Fs(#[from] msnet::fsutil::FsError),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    #[error(transparent)]
    Metrics(#[from] msnet_eval::metrics::MetricsError),
    #[error("invalid training setup: {0}")]
    Options(String),
    #[error(
        "the loss or the weights became NaN or infinite at iteration {iteration}; training stopped and {checkpoint}. Try a lower --lr or check the input data"
    )]
    NonFinite {
        iteration: usize,
        checkpoint: String,
    },
    #[error(
        "{}: already holds a model or checkpoint ({}); continue that run with --resume, or start afresh with --force (which discards it), or use another --out",
        out.display(),
        found.display()
    )]
    OutputInUse { out: PathBuf, found: PathBuf },
}
