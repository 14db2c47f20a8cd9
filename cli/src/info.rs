//! `msnet info`: what a network is and what it costs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;
use msnet::graph::{self, Lowering};
use msnet::spec::ConvSpec;
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

/// Counts convolutions and multiply-adds of the forward pass by lowering the program onto
/// shapes only.
struct Cost {
    dims: usize,
    convs: usize,
    macs: u64,
}

impl Lowering for Cost {
    type Value = [usize; 4];
    fn normalize(&mut self, x: &[usize; 4], _: &[f32], _: &[f32]) -> [usize; 4] {
        *x
    }
    fn conv(&mut self, l: &ConvSpec, x: &[usize; 4]) -> [usize; 4] {
        let s = l.stride;
        let d = if self.dims == 3 { x[1].div_ceil(s) } else { 1 };
        let out = [l.out_channels, d, x[2].div_ceil(s), x[3].div_ceil(s)];
        self.convs += 1;
        self.macs += (out.iter().product::<usize>() * l.fan_in()) as u64;
        out
    }
    fn relu(&mut self, x: &[usize; 4]) -> [usize; 4] {
        *x
    }
    fn add(&mut self, a: &[usize; 4], _: &[usize; 4]) -> [usize; 4] {
        *a
    }
    fn sub(&mut self, a: &[usize; 4], _: &[usize; 4]) -> [usize; 4] {
        *a
    }
    fn mul(&mut self, a: &[usize; 4], _: &[usize; 4]) -> [usize; 4] {
        *a
    }
    fn affine(&mut self, x: &[usize; 4], _: f32, _: f32) -> [usize; 4] {
        *x
    }
    fn square(&mut self, x: &[usize; 4]) -> [usize; 4] {
        *x
    }
    fn phase_softmax(&mut self, x: &[usize; 4], _: usize) -> [usize; 4] {
        *x
    }
    fn avg_pool(&mut self, x: &[usize; 4]) -> [usize; 4] {
        let d = if self.dims == 3 { x[1] / 2 } else { 1 };
        [x[0], d, x[2] / 2, x[3] / 2]
    }
    fn prolong(&mut self, x: &[usize; 4]) -> [usize; 4] {
        let d = if self.dims == 3 { x[1] * 2 } else { 1 };
        [x[0], d, x[2] * 2, x[3] * 2]
    }
    fn class_softmax(&mut self, x: &[usize; 4]) -> [usize; 4] {
        *x
    }
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
    let mut cost = Cost {
        dims: config.dims,
        convs: 0,
        macs: 0,
    };
    let [d, h, w] = config.input_size;
    graph::forward(&mut cost, &spec, &[config.in_channels, d, h, w]);
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
        2.0 * cost.macs as f64 / 1e9
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
