//! Running an exported ONNX model with tract, and comparing its output with a reference
//! (the burn forward pass).

use std::panic::{AssertUnwindSafe, catch_unwind};

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::ExportError;
use crate::onnx::check_structure;

/// Absolute part of the agreement tolerance: `|a - b| <= ATOL + RTOL * |a|`.
pub const ATOL: f32 = 1e-4;
/// Relative part of the agreement tolerance.
pub const RTOL: f32 = 5e-4;

fn tract_err(stage: &'static str) -> impl FnOnce(TractError) -> ExportError {
    move |e| ExportError::Tract {
        stage,
        message: format!("{e:#}"),
    }
}

fn run(proto: &ModelProto, input: &[f32], shape: &[usize]) -> Result<Vec<f32>, ExportError> {
    let model = tract_onnx::onnx()
        .model_for_proto_model(proto)
        .map_err(tract_err("loading the ONNX graph"))?;
    let plan = model
        .into_optimized()
        .map_err(tract_err("optimising"))?
        .into_runnable()
        .map_err(tract_err("planning"))?;
    let tensor = Tensor::from_shape(shape, input).map_err(tract_err("building the input"))?;
    let outputs = plan
        .run(tvec![tensor.into_tvalue()])
        .map_err(tract_err("running"))?;
    let output = outputs.first().ok_or_else(|| ExportError::Tract {
        stage: "running",
        message: "the model produced no output".into(),
    })?;
    let view = output
        .to_plain_array_view::<f32>()
        .map_err(tract_err("reading the output"))?;
    Ok(view.iter().copied().collect())
}

/// Loads ONNX `bytes` with tract-onnx, optimises it, and runs it once on `input` (row-major,
/// of `shape`, e.g. `[1, in, H, W]`). Returns the first output, flattened row-major.
///
/// The graph is checked with [`check_structure`] first, so a malformed graph is an error
/// rather than a tract panic; any panic left inside tract is caught and reported as an error.
pub fn run_onnx_tract(
    bytes: &[u8],
    input: &[f32],
    shape: &[usize],
) -> Result<Vec<f32>, ExportError> {
    let expected: usize = shape.iter().product();
    if expected != input.len() {
        return Err(ExportError::Input {
            shape: shape.to_vec(),
            expected,
            found: input.len(),
        });
    }
    let proto = ModelProto::decode(bytes).map_err(|e| ExportError::Decode(e.to_string()))?;
    check_structure(&proto)?;
    catch_unwind(AssertUnwindSafe(|| run(&proto, input, shape))).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        Err(ExportError::Tract {
            stage: "panicked",
            message,
        })
    })
}

/// How closely two engines agree on one output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Largest `|reference - other|` (infinite if the lengths differ or a value is NaN).
    pub max_abs_diff: f32,
    /// `|a - b| <= ATOL + RTOL * |a|` for every value (`a` from the reference).
    pub within_tolerance: bool,
    /// The per-voxel argmax over classes is the same everywhere.
    pub argmax_equal: bool,
}

/// Per-voxel argmax over the class axis of `[classes, voxels]` values; ties go to the lower
/// class.
fn argmax(values: &[f32], classes: usize) -> Vec<usize> {
    let voxels = values.len() / classes.max(1);
    (0..voxels)
        .map(|j| {
            (1..classes).fold(0, |best, c| {
                if values[c * voxels + j] > values[best * voxels + j] {
                    c
                } else {
                    best
                }
            })
        })
        .collect()
}

/// Compares `other` with `reference`, both `[classes, voxels]` row-major (a batch of 1).
pub fn compare(reference: &[f32], other: &[f32], classes: usize) -> Comparison {
    if reference.len() != other.len() || classes == 0 || !reference.len().is_multiple_of(classes) {
        return Comparison {
            max_abs_diff: f32::INFINITY,
            within_tolerance: false,
            argmax_equal: false,
        };
    }
    let mut max_abs_diff = 0.0f32;
    let mut within_tolerance = true;
    for (&a, &b) in reference.iter().zip(other) {
        let d = (a - b).abs();
        if d.is_nan() {
            max_abs_diff = f32::INFINITY;
            within_tolerance = false;
            continue;
        }
        max_abs_diff = max_abs_diff.max(d);
        within_tolerance &= d <= ATOL + RTOL * a.abs();
    }
    Comparison {
        max_abs_diff,
        within_tolerance,
        argmax_equal: argmax(reference, classes) == argmax(other, classes),
    }
}
