//! Running exported artifacts with tract: the ONNX model (tract-onnx) and the NNEF plan
//! (tract-nnef with its tract-core registry only, as a device without tract-onnx loads it).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use prost::Message;
use tract_onnx::pb::ModelProto;
use tract_onnx::prelude::*;

use crate::ExportError;
use crate::onnx::check_structure;

pub use msnet_eval::golden::{ATOL, Comparison, RTOL, compare};
use msnet_eval::golden::{Engine, EngineError};

pub(crate) fn tract_err(stage: &'static str) -> impl FnOnce(TractError) -> ExportError {
    move |e| ExportError::Tract {
        stage,
        message: format!("{e:#}"),
    }
}

/// Runs `f`, turning a panic inside tract into an [`ExportError::Tract`].
fn guard<T>(
    stage: &'static str,
    f: impl FnOnce() -> Result<T, ExportError>,
) -> Result<T, ExportError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into());
        Err(ExportError::Tract {
            stage,
            message: format!("panicked: {message}"),
        })
    })
}

/// A model optimised and planned by tract, with a fixed input shape.
pub struct TractModel {
    plan: Arc<TypedRunnableModel>,
    input_shape: Vec<usize>,
}

impl TractModel {
    /// Loads ONNX `bytes` with tract-onnx. The graph is checked with [`check_structure`]
    /// first, so a malformed graph is an error rather than a tract panic.
    pub fn from_onnx(bytes: &[u8]) -> Result<Self, ExportError> {
        let proto = ModelProto::decode(bytes).map_err(|e| ExportError::Decode(e.to_string()))?;
        check_structure(&proto)?;
        guard("loading the ONNX graph", || {
            let model = tract_onnx::onnx()
                .model_for_proto_model(&proto)
                .map_err(tract_err("loading the ONNX graph"))?
                .into_typed()
                .map_err(tract_err("typing the ONNX graph"))?;
            Self::plan(model)
        })
    }

    /// Loads an NNEF plan (`.nnef.tgz` bytes) with tract-nnef and the tract-core operator
    /// registry alone: what a device build without tract-onnx can load.
    pub fn from_nnef(bytes: &[u8]) -> Result<Self, ExportError> {
        guard("loading the NNEF plan", || {
            let model = tract_nnef::nnef()
                .model_for_read(&mut &bytes[..])
                .map_err(tract_err("loading the NNEF plan"))?;
            Self::plan(model)
        })
    }

    fn plan(model: TypedModel) -> Result<Self, ExportError> {
        let input_shape = model
            .input_fact(0)
            .map_err(tract_err("reading the input shape"))?
            .shape
            .as_concrete()
            .ok_or_else(|| ExportError::Tract {
                stage: "reading the input shape",
                message: "the input shape is not fixed".into(),
            })?
            .to_vec();
        let plan = model
            .into_optimized()
            .map_err(tract_err("optimising"))?
            .into_runnable()
            .map_err(tract_err("planning"))?;
        Ok(Self { plan, input_shape })
    }

    /// The fixed input shape, e.g. `[1, in, H, W]`.
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Runs the model once on `input` (row-major, of [`Self::input_shape`]); returns the first
    /// output flattened row-major.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>, ExportError> {
        let expected: usize = self.input_shape.iter().product();
        if expected != input.len() {
            return Err(ExportError::Input {
                shape: self.input_shape.clone(),
                expected,
                found: input.len(),
            });
        }
        guard("running", || {
            let tensor = Tensor::from_shape(&self.input_shape, input)
                .map_err(tract_err("building the input"))?;
            let outputs = self
                .plan
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
        })
    }
}

impl Engine for TractModel {
    fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, EngineError> {
        Ok(self.run(input)?)
    }
}

/// Loads ONNX `bytes` with tract-onnx and runs it once on `input` of `shape` (which must be the
/// model's input shape). Returns the first output, flattened row-major.
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
    let model = TractModel::from_onnx(bytes)?;
    if model.input_shape() != shape {
        return Err(ExportError::Input {
            shape: model.input_shape().to_vec(),
            expected: model.input_shape().iter().product(),
            found: input.len(),
        });
    }
    model.run(input)
}
