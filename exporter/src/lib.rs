//! # msnet-exporter: trained models to deployable artifacts
//!
//! This crate owns one step of the pipeline: turning a trained model directory
//! ([`msnet::Model`], `config.json` + `model.safetensors`) into files other engines load, and
//! proving they agree ([`export`]):
//! - [`onnx`]: the ONNX model (`model.onnx`), built with `tract_onnx::pb` and prost;
//! - [`nnef`]: the fixed-shape tract plan (`model.nnef.tgz`);
//! - the runtime plan (`model.msplan`) that `msnet-runtime` executes, compiled by
//!   [`msnet_compiler`];
//! - golden bundles (`golden/`, format in [`msnet_eval::golden`]);
//! - [`tract_check`]: running the ONNX and NNEF files with tract for the self-check;
//! - [`tuned`]: the tuned ONNX variant (`model.tuned.onnx`), a benchmark artifact checked
//!   against the golden bundle;
//! - [`stage`]: the all-or-nothing write of the artifacts, and recovery after a kill.
//!
//! It must not define any part of the network: the ONNX graph is produced by lowering the one
//! MSNet program, [`msnet::graph::forward`], onto ONNX nodes ([`onnx::OnnxLowering`]); a change
//! to the network is made there and reaches every engine. It does not train either: weights
//! come from the trainer's model directories, bit for bit.

pub mod export;
pub mod nnef;
pub mod onnx;
pub mod stage;
pub mod tract_check;
pub mod tuned;

pub use export::{
    ARTIFACTS, CaseCheck, ExportReport, NNEF_FILE, ONNX_FILE, PLAN_FILE, ROUNDING_PROBE, export,
};
pub use msnet_compiler::{CompiledPlan, compile_plan};
pub use msnet_eval::golden::Reference;
pub use nnef::nnef_bytes;
pub use onnx::{
    OnnxLowering, OnnxVariant, build_onnx, build_onnx_variant, check_structure, check_weights,
    onnx_bytes, write_onnx,
};
pub use tract_check::{Comparison, TractModel, compare, run_onnx_tract};
pub use tuned::{TUNED_ONNX_FILE, TunedReport, write_tuned_onnx};

/// Why an export or an export check failed. Messages name the file, tensor, node or shape
/// concerned.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The model's config cannot describe a valid MSNet.
    #[error(transparent)]
    Config(#[from] msnet::config::ConfigError),
    /// The model's weights do not match its config.
    #[error(transparent)]
    Weights(#[from] msnet::weights::WeightsError),
    /// A weight is NaN or infinite: the model is broken, exporting it would hide that.
    #[error("cannot export: weight tensor `{name}` holds a non-finite value at index {index}")]
    NonFinite { name: String, index: usize },
    /// The reference forward pass overflows: the weights are finite but too large for float32
    /// somewhere in the network (a diverged run), so no engine can reproduce its outputs.
    #[error(
        "cannot export: the reference ({reference}) gives non-finite outputs on golden input \
         `{case}`: the network overflows float32; its largest weight is {largest:e} in `{layer}` \
         (weights this large usually come from a diverged training run)"
    )]
    Overflow {
        reference: String,
        case: String,
        layer: String,
        largest: f32,
    },
    /// The runtime plan could not be compiled.
    #[error(transparent)]
    Compile(#[from] msnet_compiler::CompileError),
    /// The model directory could not be read.
    #[error(transparent)]
    Model(#[from] msnet::model::ModelError),
    /// The requested input shape cannot run through this network.
    #[error("cannot export for input shape {shape:?} ([D, H, W]): {reason}")]
    Shape { shape: [usize; 3], reason: String },
    /// An ONNX graph is malformed (dangling input, missing output, wrong opset...).
    #[error("invalid ONNX graph: {0}")]
    Structure(String),
    /// An ONNX initializer does not hold the model's weight tensor bit for bit.
    #[error("ONNX initializer `{name}` does not match the model weights: {reason}")]
    WeightMismatch { name: String, reason: String },
    /// The bytes are not an ONNX model.
    #[error("not an ONNX model: {0}")]
    Decode(String),
    /// tract failed to load, optimise or run the model.
    #[error("tract: {stage}: {message}")]
    Tract {
        stage: &'static str,
        message: String,
    },
    /// The runtime rejected the compiled plan or failed to run it.
    #[error("runtime plan: {0}")]
    Runtime(String),
    /// An input of the wrong length for its shape.
    #[error("input of {found} values does not fill shape {shape:?} ({expected} values)")]
    Input {
        shape: Vec<usize>,
        expected: usize,
        found: usize,
    },
    /// The written artifacts do not reproduce the reference outputs.
    #[error(
        "self-check failed, nothing was written: {0} (tolerance: atol 1e-4 + rtol 5e-4, \
         identical argmax)"
    )]
    SelfCheck(String),
    /// Writing the artifact failed.
    #[error(transparent)]
    Fs(#[from] msnet::fsutil::FsError),
    /// Writing the golden bundle failed.
    #[error(transparent)]
    Golden(#[from] msnet_eval::golden::GoldenError),
}
