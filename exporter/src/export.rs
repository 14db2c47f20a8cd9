//! `msnet export`: a trained model directory to its deployable artifacts, self-checked.
//!
//! Writes into the model directory:
//! - `model.onnx` ([`crate::onnx`]),
//! - `model.nnef.tgz` ([`crate::nnef`]),
//! - `model.msplan` ([`msnet_compiler`]), the plan `msnet-runtime` executes,
//! - `golden/` ([`msnet_eval::golden`]): the generated inputs with the reference engine's outputs
//!   and a manifest holding the sha256 of every model file.
//!
//! Before anything is moved into place, the written files are read back: the golden bundle's
//! inputs are run by tract on the ONNX and NNEF files and by `msnet-runtime` on the plan
//! ([`golden::check_engines`]) and compared with the bundle's outputs, the reference's (the
//! trainer's burn forward pass); any value beyond `atol + rtol·|ref|` or any argmax
//! difference fails the export. All
//! artifacts are staged and committed together ([`crate::stage`]), so a failed export leaves
//! the directory as it was, and a killed one leaves a swap that the next export completes
//! before anything else.

use std::path::Path;

use msnet::model::{CONFIG_FILE, WEIGHTS_FILE};
use msnet::{Model, fsutil};
use msnet_eval::golden::{
    self, BundleInfo, Comparison, Engine, EngineError, FileDigest, Manifest, Reference, Tolerance,
};

use crate::ExportError;
use crate::nnef::nnef_bytes;
use crate::onnx::{INPUT, OUTPUT, build_onnx, check_weights};
use crate::stage::{self, Staging};
use crate::tract_check::TractModel;
use msnet_compiler::{CompiledPlan, compile_plan};
use msnet_runtime::host::{PlanBuffer, Session};
use prost::Message;

/// File name of the ONNX artifact.
pub const ONNX_FILE: &str = "model.onnx";
/// File name of the NNEF plan.
pub const NNEF_FILE: &str = "model.nnef.tgz";
/// File name of the runtime plan (defined by the runtime that reads it).
pub use msnet_runtime::format::PLAN_FILE;
/// Everything an export writes, in the order it is moved into place.
pub const ARTIFACTS: [&str; 4] = [ONNX_FILE, NNEF_FILE, PLAN_FILE, golden::GOLDEN_DIR];

/// How one golden case came out in the self-check.
#[derive(Clone, Debug)]
pub struct CaseCheck {
    pub name: String,
    /// tract on the ONNX file vs the reference.
    pub onnx: Comparison,
    /// tract-nnef on the NNEF plan vs the reference.
    pub nnef: Comparison,
    /// msnet-runtime on the runtime plan vs the reference.
    pub runtime: Comparison,
    /// Largest `|onnx − nnef|`.
    pub onnx_vs_nnef: f32,
    /// How ill-conditioned the model is at this input: the largest change of msnet-runtime's
    /// output when the input is scaled by `1 + `[`ROUNDING_PROBE`] (a few float32 ulps). When
    /// this alone exceeds the tolerance, no two engines can be expected to agree.
    pub rounding_sensitivity: f32,
}

/// The relative input change that probes a model's sensitivity to float32 rounding.
pub const ROUNDING_PROBE: f32 = 1e-6;

/// What an export wrote and measured.
#[derive(Clone, Debug)]
pub struct ExportReport {
    /// The input size `[D, H, W]` of the artifacts.
    pub size: [usize; 3],
    /// The manifest written to `golden/manifest.json`.
    pub manifest: Manifest,
    /// The runtime plan's op count, arena and cost.
    pub plan: PlanSummary,
    pub cases: Vec<CaseCheck>,
}

/// Exports the model in `dir` at input size `shape` (default: the config's `input_size`),
/// checking the artifacts against `reference`. `log` receives one line per step.
pub fn export(
    dir: &Path,
    shape: Option<[usize; 3]>,
    reference: &dyn Reference,
    log: &mut dyn FnMut(&str),
) -> Result<ExportReport, ExportError> {
    let model = Model::load(dir)?;
    for note in stage::recover(dir)? {
        log(&note);
    }
    let cfg = model.config();
    let size = shape.unwrap_or(cfg.input_size);

    log(&format!(
        "building the ONNX graph for input {size:?} ([D, H, W])"
    ));
    let proto = build_onnx(&model, Some(size))?;
    check_weights(&proto, &model)?;
    let onnx = proto.encode_to_vec();
    log("translating to an NNEF plan (tract-nnef, decluttered)");
    let nnef = nnef_bytes(&onnx)?;
    log("compiling the runtime plan (fusion, arena planning)");
    let plan = compile_plan(&model, size)?;

    let inputs = golden::inputs(cfg, size);
    log(&format!(
        "computing reference outputs for {} golden inputs with {}",
        inputs.len(),
        reference.name()
    ));
    let outputs: Vec<Vec<f32>> = inputs
        .iter()
        .map(|input| reference.forward(&input.data, size))
        .collect();
    check_finite_outputs(&model, reference.name(), &inputs, &outputs)?;

    let stage = Staging::new(dir)?;
    fsutil::write_atomic(&stage.path(ONNX_FILE), &onnx)?;
    fsutil::write_atomic(&stage.path(NNEF_FILE), &nnef)?;
    fsutil::write_atomic(&stage.path(PLAN_FILE), &plan.bytes)?;
    let model_files = vec![
        FileDigest::of(CONFIG_FILE, &dir.join(CONFIG_FILE))?,
        FileDigest::of(WEIGHTS_FILE, &dir.join(WEIGHTS_FILE))?,
        FileDigest::of(ONNX_FILE, &stage.path(ONNX_FILE))?,
        FileDigest::of(NNEF_FILE, &stage.path(NNEF_FILE))?,
        FileDigest::of(PLAN_FILE, &stage.path(PLAN_FILE))?,
    ];
    let info = BundleInfo {
        reference: reference.name(),
        input_name: INPUT.into(),
        output_name: OUTPUT.into(),
        model_files,
    };
    let manifest = golden::write_bundle(
        &stage.path(golden::GOLDEN_DIR),
        cfg,
        size,
        &inputs,
        &outputs,
        info,
    )?;

    log("self-check: reloading the files (tract, msnet-runtime) and running every golden input");
    let checks = self_check(&stage, cfg.classes)?;
    let failures: Vec<String> = checks.iter().flat_map(case_failures).collect();
    if !failures.is_empty() {
        let mut failures = failures.join("; ");
        let (layer, largest) = largest_weight(&model);
        if largest > HUGE_WEIGHT {
            failures.push_str(&format!(
                "; the cause: the largest weight is {largest:e} in `{layer}`, and weights this \
                 large (a diverged training run) make float32 results depend on the order of \
                 operations, so no two engines agree"
            ));
        }
        return Err(ExportError::SelfCheck(failures));
    }

    stage.commit(&ARTIFACTS)?;
    Ok(ExportReport {
        size,
        manifest,
        plan: PlanSummary::from(&plan),
        cases: checks,
    })
}

/// Refuses reference outputs that overflowed, naming the case and the largest weight: the
/// cause, where comparing engines against an infinite reference would only report an
/// infinite difference.
fn check_finite_outputs(
    model: &Model,
    reference: String,
    inputs: &[golden::GoldenInput],
    outputs: &[Vec<f32>],
) -> Result<(), ExportError> {
    let Some(case) = inputs
        .iter()
        .zip(outputs)
        .find(|(_, out)| out.iter().any(|v| !v.is_finite()))
        .map(|(input, _)| input.name.to_string())
    else {
        return Ok(());
    };
    let (layer, largest) = largest_weight(model);
    Err(ExportError::Overflow {
        reference,
        case,
        layer,
        largest,
    })
}

/// Weights beyond this magnitude are far outside what training makes (initial bounds are at
/// most 6/sqrt(fan_in), the shipped models stay under 1): a failed self-check with such a
/// weight is blamed on it.
const HUGE_WEIGHT: f32 = 1e3;

/// The layer holding the largest weight magnitude, and that magnitude.
fn largest_weight(model: &Model) -> (String, f32) {
    model
        .spec
        .convs
        .iter()
        .zip(&model.weights.tensors)
        .map(|(c, w)| (c.name.clone(), w.iter().fold(0.0f32, |m, v| m.max(v.abs()))))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default()
}

/// What went wrong in one case of the self-check, if anything: each engine beyond tolerance,
/// and, when the model itself is that sensitive there, why no engine could do better.
fn case_failures(c: &CaseCheck) -> Vec<String> {
    let mut failures: Vec<String> = [
        ("tract-onnx", &c.onnx),
        ("tract-nnef", &c.nnef),
        ("msnet-runtime", &c.runtime),
    ]
    .into_iter()
    .filter(|(_, cmp)| !cmp.agrees())
    .map(|(engine, cmp)| {
        format!(
            "case `{}`: {engine} max abs diff {:.3e}{}{}",
            c.name,
            cmp.max_abs_diff,
            if cmp.within_tolerance {
                ""
            } else {
                ", beyond tolerance"
            },
            if cmp.argmax_equal {
                ""
            } else {
                ", argmax differs"
            }
        )
    })
    .collect();
    if !failures.is_empty() && c.rounding_sensitivity > golden::ATOL {
        failures.push(format!(
            "case `{}`: the model is ill-conditioned there (scaling the input by \
             1 + {ROUNDING_PROBE:e} moves its outputs by {:.3e}, so float32 rounding alone \
             nears the tolerance)",
            c.name, c.rounding_sensitivity
        ));
    }
    failures
}

/// msnet-runtime on each input scaled by `1 + `[`ROUNDING_PROBE`].
struct RoundingProbe<'a>(Session<'a>);

impl Engine for RoundingProbe<'_> {
    fn infer(&mut self, input: &[f32]) -> Result<Vec<f32>, EngineError> {
        let probe: Vec<f32> = input.iter().map(|v| v * (1.0 + ROUNDING_PROBE)).collect();
        self.0.infer(&probe)
    }
}

/// Reloads the staged files and runs the staged golden bundle with each engine.
fn self_check(stage: &Staging, classes: usize) -> Result<Vec<CaseCheck>, ExportError> {
    let (_, cases) = golden::load(stage.root())?;
    let mut onnx = TractModel::from_onnx(&fsutil::read(&stage.path(ONNX_FILE))?)?;
    let mut nnef = TractModel::from_nnef(&fsutil::read(&stage.path(NNEF_FILE))?)?;
    let plan_buffer = PlanBuffer::from_bytes(&fsutil::read(&stage.path(PLAN_FILE))?);
    let plan = plan_buffer
        .plan()
        .map_err(|e| ExportError::Runtime(e.to_string()))?;
    let session = || Session::new(plan).map_err(|e| ExportError::Runtime(e.to_string()));
    let (mut runtime, mut probe) = (session()?, RoundingProbe(session()?));
    let diffs = golden::check_engines(
        &cases,
        &mut [
            ("tract-onnx", &mut onnx),
            ("tract-nnef", &mut nnef),
            ("msnet-runtime", &mut runtime),
            ("msnet-runtime (rounding probe)", &mut probe),
        ],
        classes,
        Tolerance::default(),
    )?;
    Ok(diffs
        .into_iter()
        .map(|d| {
            let [onnx, nnef, runtime, probe] = &d.engines[..] else {
                unreachable!("four engines were run")
            };
            CaseCheck {
                onnx: onnx.comparison,
                nnef: nnef.comparison,
                runtime: runtime.comparison,
                onnx_vs_nnef: golden::compare(&onnx.output, &nnef.output, classes).max_abs_diff,
                rounding_sensitivity: golden::compare(&runtime.output, &probe.output, classes)
                    .max_abs_diff,
                name: d.case,
            }
        })
        .collect())
}

/// The runtime plan's size and cost, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlanSummary {
    pub ops: usize,
    pub bytes: usize,
    /// Arena length in f32 elements.
    pub arena_len: usize,
    /// The liveness lower bound of the arena, in f32 elements.
    pub arena_lower_bound: usize,
    pub macs: u64,
}

impl From<&CompiledPlan> for PlanSummary {
    fn from(p: &CompiledPlan) -> Self {
        Self {
            ops: p.ops,
            bytes: p.bytes.len(),
            arena_len: p.arena_len,
            arena_lower_bound: p.arena_lower_bound,
            macs: p.macs,
        }
    }
}
