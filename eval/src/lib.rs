//! # msnet-eval: how well a model does, and whether an engine gives the reference's answer
//!
//! - [`metrics`]: the paper's accuracy, IoU, Dice (DSC) and average surface distance;
//! - [`overlay`]: paper-style contour figures;
//! - [`golden`]: golden bundles (deterministic inputs, reference outputs, tolerance) that every
//!   engine is checked against.
//!
//! What labels mean (the argmax, the disc/cup convention, the vertical cup-to-disc ratio) is
//! `msnet-labels`, re-exported as [`labels`], so the host and the camera share one rule.
//!
//! It must not depend on the dataset loaders or on any engine: the device command links it to
//! verify and to draw overlays.

pub mod golden;
pub mod metrics;
pub mod overlay;

pub use msnet_labels as labels;
