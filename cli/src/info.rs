//! `msnet info`: what a network is and what it costs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use msnet::{Config, Model, Spec};

#[derive(Args)]
pub struct InfoArgs {
    /// A model directory (config.json + model.safetensors); overrides the flags below.
    #[arg(long)]
    model: Option<PathBuf>,
    /// 2 for images, 3 for volumes.
    #[arg(long, default_value_t = 2)]
    dims: usize,
    /// Input channels (3 RGB, 1 gray/MRI).
    #[arg(long, default_value_t = 3)]
    in_channels: usize,
    /// Output classes, background included.
    #[arg(long, default_value_t = 3)]
    classes: usize,
}

pub fn run(a: &InfoArgs) -> Result<ExitCode> {
    let config = match &a.model {
        Some(dir) => Model::load(dir)?.spec.config,
        None => {
            let c = Config::new(a.dims, a.in_channels, a.classes);
            c.validate()?;
            c
        }
    };
    let spec = Spec::new(&config);
    let cost = msnet::cost::forward_cost(&spec);
    let [d, h, w] = config.input_size;
    let size = if config.dims == 3 {
        format!("{d}x{h}x{w}")
    } else {
        format!("{h}x{w}")
    };
    println!(
        "network: MSNet {}D, {} -> {} classes",
        config.dims, config.in_channels, config.classes
    );
    println!(
        "grids: {}, channels: {}, phases: {}, lambda {} alpha {} eps {} dt {}",
        config.grids,
        config.channels,
        config.phases,
        config.lambda,
        config.alpha,
        config.eps,
        config.dt
    );
    println!(
        "layers: {} convolutions (bias-free 3x3{})",
        spec.convs.len(),
        if config.dims == 3 { "x3" } else { "" }
    );
    println!("parameters: {}", spec.parameter_count());
    println!(
        "forward at {size}: {} convolutions, {:.3} GFLOP",
        cost.convs,
        cost.flops() / 1e9
    );
    if let Some(t) = &config.training {
        println!(
            "trained: {} on {} images (seed {}), {} iterations, final loss {:.4}",
            t.dataset,
            t.train.len(),
            t.seed,
            t.iterations,
            t.final_loss
        );
    }
    Ok(ExitCode::SUCCESS)
}
