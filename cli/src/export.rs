//! `msnet export`: a trained model directory to `model.onnx`, `model.nnef.tgz` and `golden/`,
//! self-checked against the burn forward pass.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use msnet::Model;
use msnet_exporter::{NNEF_FILE, ONNX_FILE, PLAN_FILE, ROUNDING_PROBE, TUNED_ONNX_FILE};
use msnet_trainer::{Predictor, device};

use crate::setup::parse_size;

#[derive(Args)]
pub struct ExportArgs {
    /// The trained model directory (config.json + model.safetensors). The artifacts are
    /// written into it: model.onnx, model.nnef.tgz, model.msplan (the msnet-runtime plan) and
    /// golden/ (inputs, reference outputs, manifest.json with tolerances and sha256 of the
    /// model files).
    model: PathBuf,
    /// Fixed input size of the artifacts, HxW (2D) or DxHxW (3D), each side divisible by 16.
    /// Default: the size the model was trained at (config.json `input_size`).
    #[arg(long)]
    shape: Option<String>,
    /// Also write model.tuned.onnx: the same network as an ONNX graph tuned for ONNX Runtime
    /// (repeated nodes once, softmax as exp / sum, ConvTranspose as the flipped Conv), checked
    /// with tract on the golden inputs. A benchmark artifact: the manifest does not list it.
    /// Without this flag, a model.tuned.onnx left by an earlier export is removed, since it no
    /// longer matches the new artifacts.
    #[arg(long)]
    tuned_onnx: bool,
}

pub fn run(a: &ExportArgs) -> Result<ExitCode> {
    let shape = a
        .shape
        .as_deref()
        .map(|s| parse_size("--shape", s))
        .transpose()?;
    let model = Model::load(&a.model)?;
    let reference = Predictor::new(&model, device::device());
    let report =
        msnet_exporter::export(&a.model, shape, &reference, &mut |line| eprintln!("{line}"))
            .with_context(|| format!("exporting {}", a.model.display()))?;

    println!("wrote into {}:", a.model.display());
    for f in &report.manifest.model_files {
        if [ONNX_FILE, NNEF_FILE, PLAN_FILE].contains(&f.file.as_str()) {
            println!("  {:<16} {:>9} bytes  sha256 {}", f.file, f.bytes, f.sha256);
        }
    }
    println!(
        "  {:<16} {} cases, input {:?}, output {:?}",
        "golden/",
        report.manifest.cases.len(),
        report.manifest.input_shape,
        report.manifest.output_shape
    );
    let p = &report.plan;
    let mib = |floats: usize| floats as f64 * 4.0 / (1024.0 * 1024.0);
    println!(
        "runtime plan: {} ops, arena {:.2} MiB (liveness lower bound {:.2} MiB, ratio {:.3}), \
         {:.3} GFLOP per frame",
        p.ops,
        mib(p.arena_len),
        mib(p.arena_lower_bound),
        p.arena_len as f64 / p.arena_lower_bound as f64,
        2.0 * p.macs as f64 * 1e-9
    );
    println!(
        "self-check: max abs diff against {} (passes: atol 1e-4 + rtol 5e-4, same argmax where the reference has no tie);\n  \
         rounding: how far the runtime's own output moves when the input is scaled by 1 + {:e}",
        report.manifest.reference, ROUNDING_PROBE
    );
    println!(
        "  {:<10} {:>12} {:>12} {:>14} {:>14} {:>12}   worst diff/tolerance",
        "case", "tract-onnx", "tract-nnef", "msnet-runtime", "onnx vs nnef", "rounding"
    );
    for c in &report.cases {
        println!(
            "  {:<10} {:>12.3e} {:>12.3e} {:>14.3e} {:>14.3e} {:>12.3e}   {:.3}",
            c.name,
            c.onnx.max_abs_diff,
            c.nnef.max_abs_diff,
            c.runtime.max_abs_diff,
            c.onnx_vs_nnef,
            c.rounding_sensitivity,
            c.onnx
                .worst_ratio
                .max(c.nnef.worst_ratio)
                .max(c.runtime.worst_ratio)
        );
    }
    if a.tuned_onnx {
        let t = msnet_exporter::write_tuned_onnx(&a.model, &mut |line| eprintln!("{line}"))
            .with_context(|| format!("writing {TUNED_ONNX_FILE} in {}", a.model.display()))?;
        let total = |ops: &std::collections::BTreeMap<String, usize>| ops.values().sum::<usize>();
        let list = |ops: &std::collections::BTreeMap<String, usize>| {
            ops.iter()
                .map(|(op, n)| format!("{op} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "  {TUNED_ONNX_FILE:<16} {:>9} bytes  {} nodes ({}); {ONNX_FILE}: {} nodes ({})",
            t.bytes,
            total(&t.tuned_ops),
            list(&t.tuned_ops),
            total(&t.plain_ops),
            list(&t.plain_ops)
        );
        println!(
            "  {:<10} {:>12} {:>14}   worst diff/tolerance",
            "case", "tuned", "tuned vs plain"
        );
        for c in &t.cases {
            println!(
                "  {:<10} {:>12.3e} {:>14.3e}   {:.3}",
                c.name, c.tuned.max_abs_diff, c.tuned_vs_plain, c.tuned.worst_ratio
            );
        }
    } else {
        let stale = a.model.join(TUNED_ONNX_FILE);
        if stale.exists() {
            std::fs::remove_file(&stale)
                .with_context(|| format!("removing the stale {}", stale.display()))?;
            eprintln!(
                "removed {} (from an earlier export; pass --tuned-onnx to write it again)",
                stale.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
