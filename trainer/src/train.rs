//! Burn's optimisation step (shared by [`crate::BurnEngine`] and the U-Net baseline) and the
//! baseline's own loop. MSNet's loop is `msnet_training::train`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use msnet::config::InitSpec;
use msnet::sample::Sample;
use msnet::{Spec, Weights};
use msnet_training::batch::batch_indices;
use msnet_training::validation::{self, Validation};
use msnet_training::{
    Outcome, Step, TrainError, TrainOptions, check_options, mean_tail, step_report,
};

use crate::baseline::UNet;
use crate::network::MsNet;
use crate::{batch, loss};

/// Burn's Adam with the paper's settings: β 0.9/0.999 (burn's defaults) and `epsilon`.
pub fn adam(epsilon: f32) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(0.9)
        .with_beta_2(0.999)
        .with_epsilon(epsilon)
        .init()
}

/// One optimisation step on `batch`: forward, soft Dice, backward, Adam at `lr`. Returns the
/// module (updated, or untouched with the optimiser when the loss is non-finite) and the loss
/// (`Err` when non-finite).
pub(crate) fn optimise<M: Module>(
    model: M,
    forward: &dyn Fn(&M, Tensor<5>) -> Tensor<5>,
    batch: &[&Sample],
    classes: usize,
    device: &Device,
    lr: f64,
    optimizer: &mut ModuleOptimizer,
) -> (M, Result<f64, f64>) {
    let images = batch::images(batch, device);
    let targets = batch::one_hot(batch, classes, device);
    let loss = loss::soft_dice(forward(&model, images), targets);
    let value = loss.clone().into_scalar::<f32>() as f64;
    if !value.is_finite() {
        return (model, Err(value));
    }
    let grads = GradientsParams::from_grads(loss.backward(), &model);
    (optimizer.step(lr, model, grads), Ok(value))
}

/// What a baseline run gives back.
pub struct BaselineReport {
    pub outcome: Outcome,
    pub net: UNet,
    /// Training seconds.
    pub seconds: f64,
    /// Mean loss of the last 20 iterations.
    pub final_loss: f64,
}

/// Where a baseline run writes and what it scores.
pub struct BaselineRun<'a> {
    /// Folder of `validation.csv`.
    pub out: &'a Path,
    /// Class names; their count is the network's output classes.
    pub class_names: &'a [String],
    pub validation: Option<Validation<'a>>,
}

/// Trains the U-Net baseline the way MSNet is trained: the same batches (seeded by
/// `opts.seed`), loss, optimiser and schedule. It writes no checkpoints: a stopped run returns
/// what it has, and the caller decides whether to keep it. Validation lines go to
/// `out/validation.csv` as for MSNet.
pub fn train_baseline(
    net: UNet,
    samples: &[Sample],
    opts: &TrainOptions,
    run: BaselineRun<'_>,
    on_step: &mut dyn FnMut(&Step),
    stop: &AtomicBool,
) -> Result<BaselineReport, TrainError> {
    let BaselineRun {
        out,
        class_names,
        validation,
    } = run;
    let classes = class_names.len();
    check_options(opts)?;
    if validation.is_some() {
        validation::start_log(out, false, class_names)?;
    }
    let device = net.devices().first().cloned().unwrap_or_default();
    let mut optimizer = adam(opts.adam_epsilon);
    let started = Instant::now();
    let mut net = net;
    let mut losses = Vec::new();
    let forward = |m: &UNet, x: Tensor<5>| m.forward(x);
    for it in 0..opts.iterations {
        if stop.load(Ordering::SeqCst) {
            return Ok(BaselineReport {
                outcome: Outcome::Interrupted { iteration: it },
                net,
                seconds: started.elapsed().as_secs_f64(),
                final_loss: mean_tail(&losses),
            });
        }
        let picked: Vec<&Sample> = batch_indices(samples.len(), opts.batch_size, opts.seed, it)
            .into_iter()
            .map(|i| &samples[i])
            .collect();
        let (next, value) = optimise(
            net,
            &forward,
            &picked,
            classes,
            &device,
            opts.lr_at(it),
            &mut optimizer,
        );
        net = next;
        let Ok(value) = value else {
            return Err(TrainError::NonFinite {
                iteration: it + 1,
                checkpoint: "the baseline writes no checkpoints".into(),
            });
        };
        losses.push(value);
        let scored = match &validation {
            Some(v) if v.due(it + 1, opts.iterations) => {
                let m = validation::score(
                    &mut |batch| baseline_labels(&net, batch, classes),
                    v.samples,
                    class_names,
                )?;
                validation::append(out, it + 1, mean_tail(&losses), &m)?;
                Some(m.mean_all)
            }
            _ => None,
        };
        on_step(&step_report(opts, it + 1, 0, value, started, scored));
    }
    Ok(BaselineReport {
        outcome: Outcome::Finished,
        net,
        seconds: started.elapsed().as_secs_f64(),
        final_loss: mean_tail(&losses),
    })
}

/// Predicted classes of the baseline for each sample.
pub fn baseline_labels(net: &UNet, samples: &[&Sample], classes: usize) -> Vec<Vec<u8>> {
    let Some(device) = net.devices().first().cloned() else {
        return Vec::new();
    };
    let probs = net.forward(batch::images(samples, &device));
    let flat = probs
        .into_data()
        .try_into_vec::<f32>()
        .unwrap_or_else(|e| unreachable!("probabilities are f32: {e:?}"));
    let per = flat.len() / samples.len().max(1);
    flat.chunks(per.max(1))
        .map(|p| msnet_labels::argmax(p, classes))
        .collect()
}

/// Weights of a freshly initialised network on `device` (for tests and benchmarks).
pub fn initial_network(spec: &Spec, seed: u64, init: InitSpec, device: &Device) -> MsNet {
    let weights: Weights = msnet::weights::init(spec, seed, init);
    MsNet::from_weights(spec, &weights, device)
}
