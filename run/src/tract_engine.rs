//! A second engine for cross-checks on a device (feature `tract`): the model's NNEF plan
//! (`model.nnef.tgz`, written by `msnet export`) run by tract-core with tract-nnef's loader,
//! never tract-onnx. It allocates per run and is several times slower than msnet-runtime; it
//! is there to show that two independent engines agree on this very board.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use msnet_eval::golden::{Engine, EngineError};
use tract_core::prelude::*;

/// The NNEF file `msnet export` writes next to the plan.
pub const NNEF_FILE: &str = "model.nnef.tgz";

pub struct TractNnef {
    plan: Arc<TypedRunnableModel>,
    input_shape: Vec<usize>,
}

/// Runs `f`, turning a panic inside tract into an error naming `what`.
fn guard<T>(what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(anyhow!("tract panicked {what}")))
}

impl TractNnef {
    /// Loads and plans `DIR/model.nnef.tgz`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(NNEF_FILE);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read {} (needed for --tract)", path.display()))?;
        guard("loading the NNEF plan", || {
            let model = tract_nnef::nnef()
                .model_for_read(&mut &bytes[..])
                .map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
            let input_shape = model
                .input_fact(0)
                .map_err(|e| anyhow!("{}: {e:#}", path.display()))?
                .shape
                .as_concrete()
                .ok_or_else(|| anyhow!("{}: the input shape is not fixed", path.display()))?
                .to_vec();
            let plan = model
                .into_optimized()
                .and_then(|m| m.into_runnable())
                .map_err(|e| anyhow!("{}: {e:#}", path.display()))?;
            Ok(Self { plan, input_shape })
        })
    }

    /// Runs one input (channels-first, the plan's input shape) and returns the probabilities.
    pub fn run(&self, input: &[f32]) -> Result<Vec<f32>> {
        let expected: usize = self.input_shape.iter().product();
        if input.len() != expected {
            bail!(
                "tract's input {:?} holds {expected} values, got {}",
                self.input_shape,
                input.len()
            );
        }
        guard("running", || {
            let tensor = Tensor::from_shape(&self.input_shape, input)?;
            let outputs = self.plan.run(tvec![tensor.into_tvalue()])?;
            let output = outputs
                .first()
                .ok_or_else(|| anyhow!("tract produced no output"))?;
            Ok(output
                .to_plain_array_view::<f32>()?
                .iter()
                .copied()
                .collect())
        })
    }
}

impl Engine for TractNnef {
    fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, EngineError> {
        Ok(self.run(input)?)
    }
}
