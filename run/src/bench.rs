//! `msnet-run bench`: latency per frame of the runtime on this device, as JSON or text.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Result, bail};
use clap::Args;
use msnet_run::preprocess::{DEFAULT_MAX_IMAGE_MIB, ImageBudget, read_model_image};
use msnet_runtime::alloc_count::allocations;

use crate::model::{Kernel, Model, Threads};

#[derive(Args)]
pub struct BenchArgs {
    /// Model directory holding config.json and model.msplan.
    #[arg(long)]
    model: PathBuf,
    #[command(flatten)]
    threads: Threads,
    #[command(flatten)]
    kernel: Kernel,
    /// Timed frames (after the warm-up).
    #[arg(long, default_value_t = 30)]
    runs: usize,
    /// Untimed frames first (caches, page faults, CPU frequency). The first is always run: it
    /// ends the time from load to the first output.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Time this input instead of the synthetic one: an image (2D models; decoded and resized
    /// as `segment` does) or an `.npy` of the plan's input (a golden case:
    /// MODEL/golden/NAME.input.npy). A trained model's speed can depend on the values (tiny
    /// floats are slow on some CPUs), so measure on real inputs too.
    #[arg(long, value_name = "FILE")]
    input: Option<PathBuf>,
}

/// The input `--input` names, as the plan takes it.
fn read_input(path: &Path, model: &Model) -> Result<Vec<f32>> {
    let plan = model.plan();
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        let array = msnet_io::npy::read_npy_f32(path)?;
        if array.len() != plan.input_len() {
            bail!(
                "{}: shape {:?} holds {} values, the plan takes {} ({:?} × {} channels)",
                path.display(),
                array.shape(),
                array.len(),
                plan.input_len(),
                plan.size(),
                model.config.in_channels
            );
        }
        return Ok(array.into_iter().collect());
    }
    let [d, h, w] = plan.size();
    if d != 1 {
        bail!(
            "{}: a 3D model takes an .npy input, not an image",
            path.display()
        );
    }
    let budget = ImageBudget {
        max_image_mib: DEFAULT_MAX_IMAGE_MIB,
    };
    Ok(read_model_image(
        path,
        &budget,
        model.config.in_channels,
        [h, w],
        msnet_io::fit::InputFit::of(&model.config),
    )?
    .input)
}

pub fn run(a: &BenchArgs) -> Result<ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    // From here to the first output is what a device pays once at start-up: read and check
    // the files, parse and prepare the plan, start the thread pool, run one frame.
    let start = Instant::now();
    let model = Model::load(&a.model)?;
    let plan = model.plan();
    let mut session = model.session(&a.threads)?;
    let load_ms = start.elapsed().as_secs_f64() * 1e3;
    a.kernel.apply(&mut session)?;
    let input: Vec<f32> = match &a.input {
        Some(path) => read_input(path, &model)?,
        // A smooth, structured input in [0, 1].
        None => (0..plan.input_len())
            .map(|i| 0.5 + 0.4 * ((i % 251) as f32 * 0.05).sin())
            .collect(),
    };
    let input_name = a
        .input
        .as_ref()
        .map_or("synthetic".to_string(), |p| p.display().to_string());
    let mut output = vec![0.0; plan.output_len()];
    // Without the input's decoding: a device's input comes from its camera, not a file.
    let first = Instant::now();
    session.run(&input, &mut output)?;
    let first_output_ms = load_ms + first.elapsed().as_secs_f64() * 1e3;
    for _ in 1..a.warmup {
        session.run(&input, &mut output)?;
    }
    let mut times = Vec::with_capacity(a.runs);
    let before = allocations();
    for _ in 0..a.runs {
        let t = Instant::now();
        session.run(&input, &mut output)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let allocs = allocations() - before;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let min = times[0];
    let gflop = 2.0 * plan.header().macs as f64 * 1e-9;
    let report = serde_json::json!({
        "engine": "msnet-runtime",
        "model": a.model.display().to_string(),
        "input": input_name,
        "input_size": plan.size(),
        "threads": session.threads(),
        "runs": a.runs,
        "load_ms": load_ms,
        "load_to_first_output_ms": first_output_ms,
        "median_ms": median,
        "min_ms": min,
        "allocations_per_frame": allocs as f64 / a.runs as f64,
        "arena_bytes": plan.arena_len() * 4,
        "gflop_per_frame": gflop,
        "gflops_at_median": gflop / (median * 1e-3),
        "arch": std::env::consts::ARCH,
        "conv_kernel": session.conv_kernel().name(),
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "{} on {input_name}: input {:?}, {} thread(s), conv kernel {}, {} runs: median {median:.2} ms, min {min:.2} ms, {:.1} GFLOP/s, \
             {} allocations per frame, arena {:.2} MiB; load {load_ms:.2} ms, to the first output \
             {first_output_ms:.2} ms",
            a.model.display(),
            plan.size(),
            session.threads(),
            session.conv_kernel().name(),
            a.runs,
            gflop / (median * 1e-3),
            allocs as f64 / a.runs as f64,
            plan.arena_len() as f64 * 4.0 / (1024.0 * 1024.0)
        );
    }
    Ok(ExitCode::SUCCESS)
}
