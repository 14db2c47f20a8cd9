//! # msnet: MSNet defined once
//!
//! The network description every engine shares, and nothing engine-specific:
//! - [`config`]: `config.json`, the values that fix a network and its input;
//! - [`spec`]: the layer list (names, kinds, shapes); [`graph`]: the V-cycle program, written
//!   once; [`ir`]: that program recorded as a typed graph whose ops know their shapes and
//!   costs. Every engine is a pass over the graph: [`cost`], the ONNX and plan lowerings, the
//!   native trainer's forward and backward (burn lowers the program directly, since it needs
//!   autodiff tensors);
//! - [`weights`] and [`model`]: the safetensors weight file and model directories;
//! - [`sample`]: what a network trains on (an image and its labels) and the names of the
//!   datasets a training record can name;
//! - [`fsutil`]: atomic writes and reads whose errors name the file, for every writer.
//!
//! It must not depend on burn, tract or any engine, nor read images or datasets: images and
//! volumes are `msnet-io`, the datasets `msnet-datasets`, metrics and golden bundles
//! `msnet-eval`.

pub mod config;
pub mod cost;
pub mod fsutil;
pub mod graph;
pub mod ir;
pub mod model;
pub mod sample;
pub mod spec;
pub mod weights;

pub use config::Config;
pub use model::Model;
pub use spec::Spec;
pub use weights::Weights;
