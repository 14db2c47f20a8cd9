//! `model.tuned.onnx`: the tuned ONNX variant ([`OnnxVariant::Tuned`]) of an exported model,
//! written only after it reproduces the model's golden bundle.
//!
//! It is a benchmark artifact (the fastest ONNX of the network we know for ONNX Runtime, so
//! msnet-runtime is compared with the best that engine can do), not part of the deployed
//! set: `golden/manifest.json` does not list it, and an export never depends on it. It is
//! built at the golden bundle's input size, from the weights whose digests the manifest holds,
//! and checked like `model.onnx` in the export's self-check: tract-onnx runs it on every golden
//! input, against the reference outputs under the manifest's tolerance. The plain
//! `model.onnx` runs beside it, so the report also says how far the two graphs differ.

use std::collections::BTreeMap;
use std::path::Path;

use msnet::{Model, fsutil};
use msnet_eval::golden::{self, Comparison, compare_with};
use prost::Message;
use tract_onnx::pb::ModelProto;

use crate::ExportError;
use crate::export::ONNX_FILE;
use crate::onnx::{OnnxVariant, build_onnx_variant};
use crate::tract_check::TractModel;

/// File name of the tuned variant.
pub const TUNED_ONNX_FILE: &str = "model.tuned.onnx";

/// How one golden case came out.
#[derive(Clone, Debug)]
pub struct TunedCase {
    pub name: String,
    /// tract on the tuned graph vs the golden reference.
    pub tuned: Comparison,
    /// Largest `|tuned − plain|`, both run by tract.
    pub tuned_vs_plain: f32,
}

/// What [`write_tuned_onnx`] wrote and measured.
#[derive(Clone, Debug)]
pub struct TunedReport {
    /// The input size `[D, H, W]` (the golden bundle's).
    pub size: [usize; 3],
    pub bytes: usize,
    /// Node count per operator in `model.onnx` and in the tuned graph.
    pub plain_ops: BTreeMap<String, usize>,
    pub tuned_ops: BTreeMap<String, usize>,
    pub cases: Vec<TunedCase>,
}

/// Node count per operator type.
pub fn op_counts(proto: &ModelProto) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for node in proto.graph.iter().flat_map(|g| &g.node) {
        *counts.entry(node.op_type.clone()).or_insert(0) += 1;
    }
    counts
}

/// Writes `dir/model.tuned.onnx` for the model exported in `dir` (by `msnet export`: its
/// golden bundle must match the model files), after tract has run it on every golden input
/// within the manifest's tolerance. On any failure nothing is written.
pub fn write_tuned_onnx(dir: &Path, log: &mut dyn FnMut(&str)) -> Result<TunedReport, ExportError> {
    let model = Model::load(dir)?;
    let (manifest, cases) = golden::load(dir)?;
    golden::check_digests(dir, &manifest)?;
    let size = match manifest.input_shape.get(2..) {
        Some(&[h, w]) => [1, h, w],
        Some(&[d, h, w]) => [d, h, w],
        _ => {
            return Err(ExportError::Structure(format!(
                "golden input shape {:?} is neither [1, C, H, W] nor [1, C, D, H, W]",
                manifest.input_shape
            )));
        }
    };
    log(&format!(
        "building the tuned ONNX graph for input {size:?} ([D, H, W])"
    ));
    let tuned = build_onnx_variant(&model, Some(size), OnnxVariant::Tuned)?;
    let bytes = tuned.encode_to_vec();
    let plain_bytes = fsutil::read(&dir.join(ONNX_FILE))?;
    let plain = ModelProto::decode(&plain_bytes[..])
        .map_err(|e| ExportError::Decode(format!("{ONNX_FILE}: {e}")))?;

    log(&format!(
        "checking it with tract-onnx on {} golden inputs, beside {ONNX_FILE}",
        cases.len()
    ));
    let tuned_model = TractModel::from_onnx(&bytes)?;
    let plain_model = TractModel::from_onnx(&plain_bytes)?;
    let classes = model.config().classes;
    let checks = cases
        .iter()
        .map(|case| {
            let from_tuned = tuned_model.run(&case.input)?;
            let from_plain = plain_model.run(&case.input)?;
            Ok(TunedCase {
                name: case.name.clone(),
                tuned: compare_with(&case.output, &from_tuned, classes, manifest.tolerance),
                tuned_vs_plain: golden::compare(&from_plain, &from_tuned, classes).max_abs_diff,
            })
        })
        .collect::<Result<Vec<_>, ExportError>>()?;
    let failures: Vec<String> = checks
        .iter()
        .filter(|c| !c.tuned.agrees())
        .map(|c| {
            format!(
                "case `{}`: tract on {TUNED_ONNX_FILE} max abs diff {:.3e}, worst \
                 diff/tolerance {:.3}{}",
                c.name,
                c.tuned.max_abs_diff,
                c.tuned.worst_ratio,
                if c.tuned.argmax_equal {
                    ""
                } else {
                    ", argmax differs"
                }
            )
        })
        .collect();
    if !failures.is_empty() {
        return Err(ExportError::SelfCheck(failures.join("; ")));
    }
    fsutil::write_atomic(&dir.join(TUNED_ONNX_FILE), &bytes)?;
    Ok(TunedReport {
        size,
        bytes: bytes.len(),
        plain_ops: op_counts(&plain),
        tuned_ops: op_counts(&tuned),
        cases: checks,
    })
}
