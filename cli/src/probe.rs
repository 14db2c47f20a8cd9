//! `msnet probe`: a freshly initialised network (or given weights) on real training samples:
//! each phase softmax's saturation, the class probabilities against the labels' shares, and
//! every layer's gradient next to its weights. It tells whether a run can leave the
//! background plateau (`msnet_native::probe`) without training it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;
use msnet::{Spec, Weights};
use msnet_datasets::DatasetKind;
use msnet_native::{NativeOptions, NativeTrainer};
use serde_json::json;

use crate::train::NetworkArgs;
use crate::{DataArgs, setup};

#[derive(Args)]
pub struct ProbeArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Number of training images (volumes) S, chosen by --seed, as for `train`.
    #[arg(long, default_value_t = 10)]
    train_size: usize,
    /// Seed of the split and of the weight initialisation, as for `train`.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    network: NetworkArgs,
    /// Probe these weights (a `model.safetensors` of this network, e.g. a run's
    /// `checkpoint/model.safetensors`) instead of the initialisation: where a run that sits
    /// on a plateau stands.
    #[arg(long)]
    weights: Option<PathBuf>,
    /// How many training samples to probe, each on its own (the first of the seeded list).
    #[arg(long, default_value_t = 1)]
    samples: usize,
    /// Threads of the native engine.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

/// Prints one JSON line per probed sample.
pub fn run(a: &ProbeArgs) -> Result<ExitCode> {
    let kind = a.data.dataset.map_or(DatasetKind::Wbc, |d| d.0);
    let opts = setup::load_options(&a.data, kind, a.train_size, a.seed)?;
    let ds = msnet_datasets::load(&opts)?;
    if a.samples == 0 || a.samples > ds.train.len() {
        bail!(
            "--samples {}: the training set of S = {} has {} samples",
            a.samples,
            a.train_size,
            ds.train.len()
        );
    }
    let config = a.network.config(&ds)?;
    let spec = Spec::new(&config);
    let weights = match &a.weights {
        Some(path) => Weights::load(&spec, path)?,
        None => msnet::weights::init(&spec, a.seed, a.network.init()),
    };
    let mut trainer = NativeTrainer::new(
        &spec,
        &weights,
        NativeOptions {
            threads: a.threads,
            loss: a.network.loss,
            ..NativeOptions::default()
        },
    )?;
    for sample in &ds.train[..a.samples] {
        let p = trainer.probe(&[sample])?;
        let phases: Vec<_> = p
            .phases
            .iter()
            .map(|s| {
                json!({"node": s.node, "max_abs_input": s.max_abs_input,
                       "mean_abs_input": s.mean_abs_input, "saturated": s.saturated})
            })
            .collect();
        let layers: Vec<_> = p
            .layers
            .iter()
            .map(|l| {
                json!({"layer": l.layer, "weight_rms": l.weight_rms,
                       "gradient_rms": l.gradient_rms})
            })
            .collect();
        println!(
            "{}",
            json!({
                "sample": sample.name, "eps": config.eps, "init": a.network.init().gain,
                "out_init": a.network.init().out_gain, "loss": p.loss,
                "class_means": p.class_means, "class_shares": p.class_shares,
                "phases": phases, "layers": layers,
            })
        );
    }
    Ok(ExitCode::SUCCESS)
}
