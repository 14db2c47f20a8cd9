//! `msnet bench-train`: training throughput (forward + backward + Adam) of an engine on
//! generated phantoms, printed as JSON. A benchmark, not a test: run it on the machine you
//! care about.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use msnet::config::TrainingRecord;
use msnet::{Config, Spec};
use msnet_io::phantom::nested_ellipses;
use msnet_training::{Run, TrainOptions};
use serde_json::json;

use crate::setup::parse_size;
use crate::train::EngineArgs;

#[derive(Args)]
pub struct BenchArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Input size HxW (2D) or DxHxW (3D).
    #[arg(long, default_value = "112x112")]
    size: String,
    /// Input channels (default: 3 in 2D, 1 in 3D).
    #[arg(long)]
    in_channels: Option<usize>,
    /// Classes (default: 3 in 2D, 4 in 3D).
    #[arg(long)]
    classes: Option<usize>,
    /// Images per iteration.
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    /// Timed iterations (after 2 warm-up iterations).
    #[arg(long, default_value_t = 10)]
    iterations: usize,
}

pub fn run(a: &BenchArgs) -> Result<ExitCode> {
    let shape = parse_size("--size", &a.size)?;
    let dims = if a.size.matches(['x', 'X']).count() == 2 {
        3
    } else {
        2
    };
    let in_ch = a.in_channels.unwrap_or(if dims == 3 { 1 } else { 3 });
    let classes = a.classes.unwrap_or(if dims == 3 { 4 } else { 3 });
    let mut config = Config::new(dims, in_ch, classes);
    config.input_size = shape;
    config.validate()?;
    let spec = Spec::new(&config);
    let samples: Vec<_> = (0..a.batch_size.max(1) as u64 * 2)
        .map(|s| nested_ellipses(s, in_ch, shape, classes))
        .collect();
    let out = std::env::temp_dir().join(format!("msnet-bench-{}", std::process::id()));
    let record = TrainingRecord::new("phantom", vec![], vec![]);
    let warmup = 2;
    let mut stamps = Vec::new();
    let started = Instant::now();
    let opts = TrainOptions {
        iterations: warmup + a.iterations,
        batch_size: a.batch_size,
        checkpoint_every: usize::MAX,
        ..TrainOptions::default()
    };
    let mut engine = a.engine.build(&spec, &opts)?;
    let _ = std::fs::remove_dir_all(&out);
    msnet_training::train(
        &mut *engine,
        &spec,
        &samples,
        &opts,
        Run {
            out: &out,
            resume: false,
            record,
            validation: None,
        },
        &mut |_| stamps.push(started.elapsed().as_secs_f64()),
        &AtomicBool::new(false),
    )?;
    let _ = std::fs::remove_dir_all(&out);
    let timed = stamps[warmup - 1..].windows(2).map(|w| w[1] - w[0]);
    let mut per_iter: Vec<f64> = timed.collect();
    per_iter.sort_by(f64::total_cmp);
    let median = per_iter[per_iter.len() / 2];
    // A training step's arithmetic: the forward pass, and per convolution its data and weight
    // gradients (each as many multiply-adds as the forward convolution); elementwise work
    // counted once.
    let cost = msnet::ir::Graph::record(&spec).cost();
    let training_flops = (cost.flops + 2 * 2 * cost.macs) as f64 * a.batch_size as f64;
    let mean = per_iter.iter().sum::<f64>() / per_iter.len() as f64;
    let report = json!({
        "benchmark": "train_step",
        "dims": dims,
        "size": shape,
        "in_channels": in_ch,
        "classes": classes,
        "parameters": spec.parameter_count(),
        "batch_size": a.batch_size,
        "iterations": a.iterations,
        "median_seconds_per_iteration": median,
        "mean_seconds_per_iteration": mean,
        "images_per_second": a.batch_size as f64 / median,
        "gflops_per_second": training_flops / median / 1e9,
        "peak_rss_mib": peak_rss_mib(),
        "engine": engine.name(),
        "threads": if engine.name() == "native" { Some(a.engine.threads()) } else { None },
        "backend": engine.describe(),
    });
    println!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// The process's peak resident memory (Linux `VmHWM`), if the platform reports it.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}
