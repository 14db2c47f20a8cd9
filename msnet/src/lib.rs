//! # msnet: MSNet defined once
//!
//! The core of MSNet Edge. It owns what every engine shares and nothing engine-specific:
//! - [`config`]: `config.json`, the values that fix a network and its input;
//! - [`spec`]: the layer list (names, kinds, shapes); [`graph`]: the V-cycle program, written
//!   once; [`ir`]: that program recorded as a typed graph whose ops know their shapes and
//!   costs. Every engine is a pass over the graph: [`cost`], the exporter's ONNX and plan
//!   lowerings, the native trainer's forward and backward (burn lowers the program directly,
//!   since it needs autodiff tensors);
//! - [`weights`] and [`model`]: the safetensors weight file and model directories;
//! - [`golden`]: golden bundles (deterministic inputs, reference outputs, tolerance) that
//!   every engine is checked against;
//! - [`metrics`] and [`overlay`]: the paper's Acc / IoU / DSC / ASD and contour figures ; [`labels`]: what
//!   labels mean, the argmax and the disc/cup convention (`msnet-labels`, shared with the
//!   device);
//! - [`data`] and [`io`]: the datasets (WBC, Drishti-GS1, ACDC, user folders), image and
//!   NIfTI reading; [`fit`]: how an image is brought to a 2D model's input and its prediction
//!   back, one rule per model for the loader and the device alike.
//!
//! It must not depend on burn, tract or any engine: those crates depend on it.

pub mod config;
pub mod cost;
pub mod data;
pub mod fit;
pub mod fsutil;
pub mod golden;
pub mod graph;
pub mod io;
pub mod ir;
pub mod metrics;
pub mod model;
pub mod overlay;
pub mod phantom;
pub mod spec;
pub mod weights;

/// What labels mean (the argmax, the disc/cup convention): `msnet-labels`, re-exported.
pub use msnet_labels as labels;

pub use config::Config;
pub use model::Model;
pub use spec::Spec;
pub use weights::Weights;
