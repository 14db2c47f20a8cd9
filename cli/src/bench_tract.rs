//! `msnet bench-tract`: tract's latency on an exported model (`model.onnx` through
//! tract-onnx, `model.nnef.tgz` through tract-nnef), as JSON lines, so the inference benchmark
//! can set tract beside msnet-runtime and ONNX Runtime. tract runs on one thread.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use msnet_exporter::{NNEF_FILE, ONNX_FILE, TractModel};
use serde_json::json;

#[derive(Args)]
pub struct BenchTractArgs {
    /// An exported model directory (model.onnx, model.nnef.tgz).
    #[arg(long)]
    model: PathBuf,
    /// Timed runs (after 2 warm-up runs).
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

pub fn run(a: &BenchTractArgs) -> Result<ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    for (engine, file) in [("tract-onnx", ONNX_FILE), ("tract-nnef", NNEF_FILE)] {
        let path = a.model.join(file);
        let bytes = std::fs::read(&path)
            .with_context(|| format!("cannot read {} (run `msnet export`)", path.display()))?;
        let model = if file == ONNX_FILE {
            TractModel::from_onnx(&bytes)?
        } else {
            TractModel::from_nnef(&bytes)?
        };
        let len: usize = model.input_shape().iter().product();
        let input: Vec<f32> = (0..len)
            .map(|i| 0.5 + 0.4 * ((i % 251) as f32 * 0.05).sin())
            .collect();
        for _ in 0..2 {
            model.run(&input)?;
        }
        let mut times: Vec<f64> = (0..a.runs)
            .map(|_| {
                let t = Instant::now();
                model.run(&input).map(|_| t.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        println!(
            "{}",
            json!({
                "engine": engine,
                "threads": 1,
                "input": model.input_shape(),
                "runs": a.runs,
                "median_ms": times[times.len() / 2],
                "min_ms": times[0],
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
